"""How many worker processes to use: a number, or `auto` for the cores this process may run on."""

from __future__ import annotations

import argparse
import os

from autoprec.errors import UserError


class JobsError(UserError, argparse.ArgumentTypeError):
    """An invalid --jobs value (argparse reports it for the CLI; the API raises it as a UserError)."""


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def parse_jobs(value: int | str) -> int:
    """`--jobs` as given: a positive number, or `auto` (the available cores)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return available_cores()
    try:
        jobs = int(value)
    except (TypeError, ValueError):
        raise JobsError(f"--jobs must be a number or 'auto', got '{value}'") from None
    if jobs < 1:
        raise JobsError(f"--jobs must be at least 1 (or 'auto'), got {jobs}")
    return jobs
