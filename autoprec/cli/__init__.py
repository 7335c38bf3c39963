"""The `autoprec` command line: `main` maps every outcome to one exit code.

0 ok / target met, 1 target not met, 2 user error (one line naming the problem and the fix),
3 internal error (one line; the traceback goes to a log file), 130 interrupted (search: `--resume` continues).
`--debug` shows tracebacks.

Only what `main` needs to catch Ctrl-C is imported here: everything else (onnxruntime, rich, the commands) is
imported by `main`, so that a Ctrl-C during those imports (most of the first second) is an interruption too.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from autoprec.errors import UserError

if TYPE_CHECKING:
    import argparse

    from rich.console import Console

# what to do after Ctrl-C, per command
AFTER_INTERRUPT = {"search": "; finished evaluations are kept: rerun with --resume to continue"}


def main(argv: list[str] | None = None) -> int:
    with _interrupts_deferred() as interrupted:
        args = _parse(argv)
    if interrupted:  # nothing started yet
        return _interrupted("")
    debug = getattr(args, "debug", False)
    try:
        return args.func(args)
    except UserError as exc:
        if debug:
            raise
        _error("error", str(exc))
        return 2
    except KeyboardInterrupt:
        return _interrupted(args.command)
    except Exception as exc:  # anything else is autoprec's own failure: exit 3, never 1 ("target not met")
        if _raised_during_interrupt(exc):  # cleanup that failed as Ctrl-C unwound it (Optuna's journal lock does)
            return _interrupted(args.command)
        if debug:
            raise
        from autoprec.cli.crash import crash_line, write_crash_log

        _error("internal error", crash_line(exc, write_crash_log(exc, getattr(args, "out", None))))
        return 3


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The parsed command line; imports onnxruntime and every command's modules on the way."""
    import onnxruntime as ort

    from autoprec.cli.parser import build_parser

    ort.set_default_logger_severity(4)  # only fatal: every failure onnxruntime reports reaches the user as one line
    return build_parser().parse_args(argv)


@contextmanager
def _interrupts_deferred() -> Iterator[list[int]]:
    """Inside, Ctrl-C is only recorded in the yielded list (a C extension interrupted while it imports turns it into
    an ImportError and a traceback of its own); left alone where Ctrl-C is ignored, or off the main thread."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield received
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupted(command: str) -> int:
    _console().print(f"[yellow]interrupted[/]{AFTER_INTERRUPT.get(command, '')}", soft_wrap=True)
    return 130


def _raised_during_interrupt(exc: BaseException) -> bool:
    """True if `exc` was raised while a KeyboardInterrupt was being handled."""
    context = exc.__context__
    while context is not None and not isinstance(context, KeyboardInterrupt):
        context = context.__context__
    return context is not None


def _error(label: str, message: str) -> None:
    from rich.markup import escape

    _console().print(f"[red]autoprec: {label}:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _console() -> Console:
    """rich's console on stderr."""
    from rich.console import Console

    return Console(stderr=True)
