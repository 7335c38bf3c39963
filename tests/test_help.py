"""`--help` of every command fits an 80-column terminal, every option says what it does, and the counts that
must be positive are parsed alike everywhere."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from autoprec.cli.parser import build_parser, positive_int


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(argv prefix, parser) of the root and every (nested) subcommand."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


COMMANDS = dict(commands(build_parser()))


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda path: " ".join(path) or "autoprec")
def test_help_fits_80_columns(path, run_cli):
    code, stderr = result = run_cli(*path, "--help")  # run_cli sets COLUMNS=80
    assert code == 0, stderr
    wide = [line for line in result.stdout.splitlines() if len(line) > 80]
    assert not wide, "\n".join(wide)
    assert "usage: autoprec" in result.stdout


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda path: " ".join(path) or "autoprec")
def test_every_option_has_help(path):
    parser = COMMANDS[path]
    missing = [a.option_strings or a.dest for a in parser._actions if a.help is None]
    assert not missing, f"autoprec {' '.join(path)}: no help for {missing}"


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda path: " ".join(path) or "autoprec")
def test_every_count_refuses_zero_alike(path):
    """--num-samples and --top of every command: argparse refuses 0 and negatives, in one message."""
    parser = COMMANDS[path]
    counts = [a for a in parser._actions if {"--num-samples", "--top"} & set(a.option_strings)]
    assert all(a.type is positive_int for a in counts), f"autoprec {' '.join(path)}: {counts}"
