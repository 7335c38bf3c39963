"""The `autoprec` command line: `main` maps every outcome to one exit code.

0 ok / target met, 1 target not met, 2 user error (one line naming the problem and the fix),
3 internal error (one line; the traceback goes to a log file), 130 interrupted (search: `--resume` continues).
`--debug` shows tracebacks.
"""

from __future__ import annotations

import onnxruntime as ort
from rich.console import Console
from rich.markup import escape

from autoprec.cli.crash import crash_line, write_crash_log
from autoprec.cli.parser import build_parser
from autoprec.errors import UserError

console = Console(stderr=True)
# what to do after Ctrl-C, per command
AFTER_INTERRUPT = {"search": "; finished evaluations are kept: rerun with --resume to continue"}


def main(argv: list[str] | None = None) -> int:
    ort.set_default_logger_severity(4)  # only fatal: every failure onnxruntime reports reaches the user as one line
    parser = build_parser()
    args = parser.parse_args(argv)
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
        _error("internal error", crash_line(exc, write_crash_log(exc, getattr(args, "out", None))))
        return 3


def _interrupted(command: str) -> int:
    console.print(f"[yellow]interrupted[/]{AFTER_INTERRUPT.get(command, '')}", soft_wrap=True)
    return 130


def _raised_during_interrupt(exc: BaseException) -> bool:
    """True if `exc` was raised while a KeyboardInterrupt was being handled."""
    context = exc.__context__
    while context is not None and not isinstance(context, KeyboardInterrupt):
        context = context.__context__
    return context is not None


def _error(label: str, message: str) -> None:
    console.print(f"[red]autoprec: {label}:[/] {escape(message)}", highlight=False, soft_wrap=True)
