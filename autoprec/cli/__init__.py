"""The `autoprec` command line: `main` maps every outcome to one exit code.

0 ok / target met, 1 target not met, 2 user error (one line naming the problem and the fix),
3 internal error (one line; the traceback goes to a log file), 130 interrupted. `--debug` shows tracebacks.
"""

from __future__ import annotations

import onnxruntime as ort
from rich.console import Console
from rich.markup import escape

from autoprec.cli.crash import crash_line, write_crash_log
from autoprec.cli.parser import build_parser
from autoprec.errors import UserError

console = Console(stderr=True)


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
        console.print("[yellow]interrupted[/]")
        return 130
    except Exception as exc:  # anything else is autoprec's own failure: exit 3, never 1 ("target not met")
        if debug:
            raise
        _error("internal error", crash_line(exc, write_crash_log(exc, getattr(args, "out", None))))
        return 3


def _error(label: str, message: str) -> None:
    console.print(f"[red]autoprec: {label}:[/] {escape(message)}", highlight=False, soft_wrap=True)
