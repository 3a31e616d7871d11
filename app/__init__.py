"""Synth Studio's headless core, one folder per stage of the pipeline.

``core`` (errors, paths, settings, tasks) < ``store`` (the notebook file, all SQL) <
stages in product order ``data`` > ``prompts`` > ``generate`` > ``quality`` > ``map`` >
``review`` > ``export`` (a stage may use the ones before it) < ``jobs``/``cells`` (one
function per user action) < ``cli``. Nothing under ``app`` imports Qt; the window in
``widgets`` calls into it. See docs/architecture.md.
"""

__version__ = "0.1.0"
