"""The command line, one module per stage; ``main`` parses and dispatches."""

from app.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
