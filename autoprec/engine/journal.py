"""Repairing Optuna's journal file before it is opened: a kill during a write or a full disk can leave a torn
last line (or garbage), which makes Optuna refuse the whole file and would make the next append land on the
partial line. `repair_journal` keeps the longest prefix of complete, parseable lines and moves the rest into a
backup file next to it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from autoprec.model_io import writing

OPERATIONS = range(11)  # the op codes of optuna.storages.journal._storage.JournalOperation
SET_TRIAL_USER_ATTR = 8


def intact_length(data: bytes) -> tuple[int, int]:
    """(bytes of the longest prefix of complete journal-operation lines, lines after it incl. a torn one)."""
    end = 0
    lines = data.split(b"\n")
    for index, line in enumerate(lines[:-1]):  # the last piece has no newline: torn (or empty)
        try:
            parsed = json.loads(line)
        except ValueError:
            return end, _count(lines[index:])
        if not isinstance(parsed, dict) or parsed.get("op_code") not in OPERATIONS or "worker_id" not in parsed:
            return end, _count(lines[index:])
        end += len(line) + 1
    return end, _count(lines[-1:])


def _count(pieces: list[bytes]) -> int:
    return sum(1 for piece in pieces if piece.strip())


def repair_journal(path: Path) -> int:
    """Cut `path` back to its intact prefix; the cut bytes go to `<path>.torn-<n>`. Returns the records dropped."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    keep, dropped = intact_length(data)
    if keep == len(data):
        return 0
    number = 1
    while path.with_name(f"{path.name}.torn-{number}").exists():
        number += 1
    backup = path.with_name(f"{path.name}.torn-{number}")
    with writing(backup):
        backup.write_bytes(data[keep:])
        with open(path, "r+b") as journal:
            journal.truncate(keep)
            journal.flush()
            os.fsync(journal.fileno())
    return dropped


def holds_evaluations(path: Path) -> bool:
    """True if the journal's intact part stores at least one finished evaluation (a trial's `record`)."""
    if not path.exists():
        return False
    data = path.read_bytes()
    for line in data[: intact_length(data)[0]].splitlines():
        log = json.loads(line)
        if log.get("op_code") == SET_TRIAL_USER_ATTR and "record" in log.get("user_attr", {}):
            return True
    return False
