"""The `autoprec` command line: `main` maps every outcome to one exit code.

0 ok / target met, 1 target not met, 2 user error (one line naming the problem and the fix),
130 interrupted. `--debug` shows tracebacks.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from autoprec.cli.parser import build_parser
from autoprec.errors import UserError

console = Console(stderr=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        if getattr(args, "debug", False):
            raise
        console.print(f"[red]autoprec: error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130
