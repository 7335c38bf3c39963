"""Unexpected failures: the traceback goes to a log file, the terminal gets one line (exit code 3)."""

from __future__ import annotations

import tempfile
import traceback
from pathlib import Path

LOG_NAME = "autoprec-error.log"


def write_crash_log(exc: BaseException, out_dir: str | Path | None) -> Path | None:
    """Write the traceback of `exc` into `out_dir/autoprec-error.log` if that folder exists and is writable,
    else into a new temp file; None if nothing could be written."""
    text = "".join(traceback.format_exception(exc))
    if out_dir is not None and Path(out_dir).is_dir():
        path = Path(out_dir) / LOG_NAME
        try:
            path.write_text(text)
            return path
        except OSError:
            pass
    try:
        with tempfile.NamedTemporaryFile("w", prefix="autoprec-error-", suffix=".log", delete=False) as file:
            file.write(text)
            return Path(file.name)
    except OSError:
        return None


def crash_line(exc: BaseException, log: Path | None) -> str:
    """One line: what failed, where the details are, and how to see the traceback."""
    lines = str(exc).strip().splitlines()
    what = f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__
    where = f"traceback written to {log}" if log else "no log could be written"
    return f"{what}; {where}; rerun with --debug for the traceback"
