"""Synth Studio's data files: templates, quality rules, sample data, icons.

Not code: this file only makes the folder an installable package, so the files ship in
the wheel and load through ``importlib.resources`` (``app.core.paths.resources_dir``).
"""
