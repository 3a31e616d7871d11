"""Qt widgets: they present what the notebook says and pass user intent to ``app``."""
