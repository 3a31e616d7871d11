"""Helpers shared by the CLI modules."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from backends.protocols import SamplerSettings

EXIT_USER_ERROR = 2
EXIT_CANCELLED = 130


def _print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def _short(text: str | None, width: int = 70) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _settings(args: argparse.Namespace) -> SamplerSettings:
    return SamplerSettings(
        temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        max_tokens=args.max_tokens, stop=tuple(args.stop or ()),
    )
