"""The output folder of a search: locked for one process, cleared of autoprec's own files only on `--force`,
and left as it was found when a run stops before its first evaluation (refused, crashed, or out of disk)."""

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


@contextmanager
def search_folder(out_dir: Path, resume: bool, force: bool) -> Iterator[None]:
    """Hold `out_dir` for one search: lock it, clear or check earlier results, clean up after an early stop."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir} is a file; choose another --out folder")
    with output_folder(out_dir), writing(out_dir), OutputLock(out_dir):
        before = set(out_dir.iterdir())
        _prepare(out_dir, resume, force)
        try:
            yield
        except BaseException:
            if not holds_evaluations(out_dir / LEDGER):
                for path in set(out_dir.iterdir()) - before:
                    if path.is_file():
                        path.unlink()
            raise


def _prepare(out_dir: Path, resume: bool, force: bool) -> None:
    ledger = out_dir / LEDGER
    clashing = [name for name in OUTPUT_FILES if (out_dir / name).exists()]
    if clashing and not (ledger.exists() or (out_dir / "result.json").exists()):  # not an autoprec search's files
        raise UserError(f"{out_dir} holds a {clashing[0]} that no autoprec search wrote; choose another --out folder")
    if force:
        for path in [out_dir / name for name in OUTPUT_FILES] + [p for g in CACHES for p in out_dir.glob(g)]:
            path.unlink(missing_ok=True)
    elif not resume and ledger.exists() and not holds_evaluations(ledger):
        ledger.unlink()  # left by a run that stopped before its first evaluation: nothing to resume
    if not (resume or force) and any((out_dir / name).exists() for name in OUTPUT_FILES):
        raise UserError(f"{out_dir} holds an earlier search; pass --resume to continue it or --force to replace it")
