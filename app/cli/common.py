"""What every CLI module shares: exit codes, output helpers, model arguments and loading,
one cancellable run (a tqdm bar plus Ctrl-C wired to the task's cancel flag), and the one
line that explains a disk, permission or locking problem."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from app.core.errors import environment_problem as problem_in_words
from app.core.tasks import TaskState
from backends.protocols import SamplerSettings

if TYPE_CHECKING:
    from app.report.compute import TableComparison

EXIT_USER_ERROR = 2
EXIT_CANCELLED = 130


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def short(text: str | None, width: int = 70) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def sampler_settings(args: argparse.Namespace) -> SamplerSettings:
    return SamplerSettings(
        temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        max_tokens=args.max_tokens, stop=tuple(args.stop or ()),
    )


FORCE_STOP_AFTER_S = 1.0
"""How long Ctrl-C waits for the work to stop at its next check before stopping it where it is."""


@contextmanager
def cancellable(desc: str, *, quiet: bool = False, unit: str = "item") -> Iterator[TaskState]:
    """A task whose progress draws a tqdm bar on stderr and whose cancel flag Ctrl-C sets.

    The work stops cleanly at its next check and keeps what it committed; the
    previous SIGINT handler is restored afterwards. Work that does not reach a check
    within :data:`FORCE_STOP_AFTER_S` (a request to a server that never answers, a
    model still loading) gets a ``KeyboardInterrupt`` where it waits, as does a
    second Ctrl-C: the command ends at once with what was committed before.
    """
    from tqdm import tqdm

    bars: list[Any] = []  # drawn at the first progress report, so a bad input's error stays one line

    def progress(done: int, total: int, message: str) -> None:
        if quiet:
            return
        if not bars:
            bars.append(tqdm(total=None, desc=desc, unit=unit, file=sys.stderr, leave=False))
        bar = bars[0]
        bar.total = total or None
        bar.n = done
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    task = TaskState(progress)
    in_main = threading.current_thread() is threading.main_thread()
    finished = threading.Lock()  # held once the work is over: no forced stop after that
    timers: list[threading.Timer] = []

    def force_stop() -> None:
        # a signal aimed at the main thread interrupts the call it waits in (a socket read), so the
        # handler below runs now rather than when that call returns
        if finished.acquire(blocking=False):
            try:
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            finally:
                finished.release()

    def on_ctrl_c(*_: object) -> None:
        if task.is_interruption_requested():
            raise KeyboardInterrupt  # asked twice, or the work did not stop in time
        task.request_interruption()
        if hasattr(signal, "pthread_kill"):  # not on Windows: there the work stops at its next check
            timers.append(threading.Timer(FORCE_STOP_AFTER_S, force_stop))
            timers[-1].daemon = True
            timers[-1].start()

    previous = signal.signal(signal.SIGINT, on_ctrl_c) if in_main else None
    try:
        yield task
    finally:
        finished.acquire()
        if in_main:
            signal.signal(signal.SIGINT, previous)
        for timer in timers:
            timer.cancel()
        for bar in bars:
            bar.close()


# -- models ------------------------------------------------------------------------------------


def add_model_args(s: argparse.ArgumentParser, what: str = "model") -> None:
    s.add_argument("--model", metavar="PATH", help=f"{what} GGUF file (default: the bundled SmolLM2-135M-Instruct)")
    s.add_argument("--backend", default="llama-cpp", help="llama-cpp (default), openai (any OpenAI-compatible server with logprobs: --model http://HOST:PORT/v1[#name]) or fake (deterministic, for tests)")
    s.add_argument("--n-ctx", type=int, default=2048)
    s.add_argument("--threads", type=int, default=None, help="compute threads (default: every core)")
    s.add_argument("--api-key", metavar="KEY", default=None,
                   help="key for a server model, sent as Authorization: Bearer and never stored (default: the key "
                        "the model manager stored for that server, else $SYNTH_STUDIO_API_KEY or $OPENAI_API_KEY)")


def add_sampler_args(s: argparse.ArgumentParser, temperature: float) -> None:
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--temperature", type=float, default=temperature)
    s.add_argument("--top-p", type=float, default=0.95)
    s.add_argument("--top-k", type=int, default=40)
    s.add_argument("--max-tokens", type=int, default=256)
    s.add_argument("--stop", action="append", metavar="TEXT")


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """Backend options from the model arguments (only those the command has)."""
    opts = {"n_ctx": getattr(args, "n_ctx", None), "n_threads": getattr(args, "threads", None),
            "n_gpu_layers": getattr(args, "n_gpu_layers", None), "api_key": getattr(args, "api_key", None)}
    return {k: v for k, v in opts.items() if v is not None}


def check_model(args: argparse.Namespace) -> str | None:
    """A clear error for a bad model file before any model load; returns the resolved path."""
    from app.generate.model_choice import is_server_url

    if args.backend == "llama-cpp" and not is_server_url(args.model):
        from backends.llama_cpp_backend import describe_model

        return describe_model(args.model).path
    model: str | None = args.model
    return model


def load_model(args: argparse.Namespace) -> Any:
    """The generator/judge the command's model arguments name, checked first."""
    import backends

    path = check_model(args)
    return backends.load_generator(args.backend, path, **model_options(args))


def print_column_comparison(table: TableComparison, what: str, *, shared: str = "the new rows") -> None:
    """Per-column similarity of generated rows to the input rows (``metrics``, ``tabular``)."""
    print(f"  columns, real vs synthetic ({table.real_rows} input rows vs {table.synthetic_rows} {what}; "
          "1 = the same distribution):")
    for c in table.columns:
        print(f"    {c.column:<22} {c.kind:<12} {c.metric:<13} {c.score:.3f}")
    if not table.columns:
        print(f"    no column to compare: the input rows and {shared} share no numeric or categorical column")
    if table.text_columns:
        print(f"    free text (compared in synth-studio report): {', '.join(table.text_columns)}")
    for note in table.notes:
        print(f"    note: {note}")


# -- problems with the disk, permissions or another program ------------------------------------

def environment_problem(exc: BaseException, args: argparse.Namespace) -> str | None:
    """One line for a problem a person fixes outside the studio (a full disk, a read-only file or
    folder, another program writing the notebook), or None when ``exc`` is not one (a bug); the
    notebook (and output file) are the command's (app.core.errors.environment_problem)."""
    notebook = getattr(args, "notebook", None)
    return problem_in_words(exc, notebook=str(notebook) if notebook else None, out=getattr(args, "out", None))
