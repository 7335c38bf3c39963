"""The output folder of a search: locked for one process, cleared of autoprec's own files only on `--force`,
and left as it was found when a run stops before its first evaluation (refused, crashed, or out of disk): what
`--force` replaces is moved aside into `.autoprec-replaced/` until the new search has evaluated something, and
moved back otherwise (by the next run, if this one was killed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autoprec.engine.journal import holds_evaluations
from autoprec.engine.lock import OutputLock
from autoprec.engine.outputs import OUTPUT_FILES
from autoprec.errors import UserError
from autoprec.model_io import output_folder, writing

LEDGER = "ledger.journal"
CACHES = ("sensitivity-*.json", ".*.tmp")  # sensitivity caches of earlier searches; temp files of killed writes
REPLACED = ".autoprec-replaced"  # what --force replaces, kept until the new search has evaluated something


@contextmanager
def search_folder(out_dir: Path, resume: bool, force: bool) -> Iterator[None]:
    """Hold `out_dir` for one search: lock it, clear or check earlier results, clean up after an early stop."""
    with output_folder(out_dir), writing(out_dir), OutputLock(out_dir):
        _settle_replaced(out_dir, keep_new=holds_evaluations(out_dir / LEDGER))  # left by a killed run
        before = set(out_dir.iterdir())
        _prepare(out_dir, resume, force)
        try:
            yield
        except BaseException:
            evaluated = holds_evaluations(out_dir / LEDGER)
            if not evaluated:
                for path in set(out_dir.iterdir()) - before:
                    if path.is_file():
                        path.unlink()
            _settle_replaced(out_dir, keep_new=evaluated)
            raise
        _settle_replaced(out_dir, keep_new=True)


def _prepare(out_dir: Path, resume: bool, force: bool) -> None:
    ledger = out_dir / LEDGER
    clashing = [name for name in OUTPUT_FILES if (out_dir / name).exists()]
    if clashing and not (ledger.exists() or (out_dir / "result.json").exists()):  # not an autoprec search's files
        raise UserError(f"{out_dir} holds a {clashing[0]} that no autoprec search wrote; choose another --out folder")
    if ledger.exists() and not _is_journal(ledger):
        raise UserError(f"{ledger} is not a ledger autoprec wrote; move it away or choose another --out folder")
    if force:
        replaced = out_dir / REPLACED
        replaced.mkdir()
        for path in [out_dir / name for name in OUTPUT_FILES] + [p for g in CACHES for p in out_dir.glob(g)]:
            if path.exists():
                path.rename(replaced / path.name)
    elif not resume and ledger.exists() and not holds_evaluations(ledger):
        ledger.unlink()  # left by a run that stopped before its first evaluation: nothing to resume
    if not (resume or force) and any((out_dir / name).exists() for name in OUTPUT_FILES):
        raise UserError(f"{out_dir} holds an earlier search; pass --resume to continue it or --force to replace it")


def _is_journal(path: Path) -> bool:
    """True for what may be an Optuna journal: empty, or starting with a JSON object (its first operation line,
    whole or torn)."""
    data = path.read_bytes().lstrip()
    return not data or data.startswith(b"{")


def _settle_replaced(out_dir: Path, keep_new: bool) -> None:
    """Drop what `--force` moved aside (`keep_new`: the new search stands), or move it back over the new files."""
    replaced = out_dir / REPLACED
    if not replaced.is_dir():
        return
    for path in replaced.iterdir():
        if keep_new:
            path.unlink()
        else:
            path.replace(out_dir / path.name)
    replaced.rmdir()
