"""Synth Studio's headless core: store, templates, pipeline steps and the CLI.

Nothing under ``app`` imports Qt; the window in ``widgets`` calls into it.
"""

__version__ = "0.1.0"
