"""The ledger: every evaluated candidate, as a trial of an Optuna study in an Optuna storage.

The default storage is Optuna's journal file in the output folder (`ledger.journal`).
`--storage postgresql://...` (or any Optuna RDB URL, or a `.journal` file) with `--study NAME` lets
several `autoprec search` workers on several machines share one study: a worker claims an assignment
by asking the study for a trial and tagging it with the assignment's key; the lowest trial number
holding a key owns it, the others wait for its result. Nothing is evaluated twice, the budget is
counted over the whole study, and a finished evaluation is committed before the next one starts,
so a killed search loses nothing.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileSymlinkLock
from optuna.trial import FrozenTrial, TrialState

from autoprec.engine.journal import repair_journal
from autoprec.errors import UserError

optuna.logging.set_verbosity(optuna.logging.WARNING)
IDENTITY_ATTR = "autoprec.identity"
HOLDOUT_ATTR = "holdout_of"  # a held-out check: the checked candidate's key (not a candidate: no budget)
CLAIMED_ATTR = "autoprec.claimed"
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Record:
    """One evaluated candidate as stored: its key, proposer, changes from all-int8, and scores."""

    number: int
    key: str
    strategy: str
    changes: dict[str, str]
    scores: dict


def check_storage(url: str) -> None:
    """Refuse a storage that cannot be opened, creating nothing: a journal file's folder must be a writable
    folder; a database must answer (its tables may be created: the URL names the user's own database)."""
    if not url.endswith(".journal"):
        open_storage(url)
        return
    folder = Path(url).absolute().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        why = "is not a writable folder" if folder.exists() else "does not exist"
        raise UserError(f"cannot open the journal storage {url} ({folder} {why}); choose a writable path for --storage")


def open_storage(url: str, attempts: int = 3) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL (RDB: sqlite://, postgresql://, mysql://) or a `.journal` file path.
    Opening is retried: workers that start together race to create the tables of a fresh database."""
    if url.endswith(".journal"):
        try:
            return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:  # well-formed lines, bad ops
            raise UserError(
                f"ledger {url} holds operations Optuna cannot replay ({type(exc).__name__}: {str(exc)[:100]}); "
                "move it away to start over (or --force)"
            ) from exc
        except OSError as exc:  # a missing folder, a read-only or full file system, no permission
            raise UserError(
                f"cannot open the journal storage {url} ({exc.strerror or exc}); choose a writable path for --storage"
            ) from exc
    failure: Exception | None = None
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except ImportError as exc:
            raise UserError(
                f"storage '{url}' needs a database driver that is not installed "
                "(PostgreSQL: pip install 'psycopg[binary]')"
            ) from exc
        except Exception as exc:  # sqlalchemy raises many types for an unreachable or invalid URL
            failure = exc
            time.sleep(0.5 * (attempt + 1))
    first = str(failure).strip().splitlines()[0][:200] if str(failure).strip() else type(failure).__name__
    raise UserError(f"cannot open storage '{url}' ({first}); check the URL and that the server runs") from failure


class Ledger:
    """The study holding every candidate of one search (shared by all workers that join it)."""

    def __init__(self, storage: str | optuna.storages.BaseStorage, study: str, identity: dict[str, str] | None,
                 join: bool, exclusive: bool, stale_after: float = 600.0):  # fmt: skip
        if isinstance(storage, str) and storage.endswith(".journal"):
            _repair(storage, exclusive)
        self.storage = open_storage(storage) if isinstance(storage, str) else storage
        self.stale_after = stale_after
        exists = study in optuna.study.get_all_study_names(self.storage)
        if not exists:
            try:
                self.study = optuna.create_study(storage=self.storage, study_name=study, direction="minimize")
            except optuna.exceptions.DuplicatedStudyError:
                exists = True  # a worker started at the same moment created it after we looked: join it
            else:
                with warnings.catch_warnings():  # experimental in Optuna, stable in use since 3.2
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    self.study.set_metric_names(["cost"])  # optuna-dashboard's name for the trial value
                if identity is not None:
                    self.study.set_user_attr(IDENTITY_ATTR, identity)
        if exists and not join:
            raise UserError(f"study '{study}' holds an earlier search; pass --resume to continue it or --force")
        if exists:
            self.study = optuna.load_study(storage=self.storage, study_name=study)
            stored = self._identity() if identity else {}
            expected = {**stored, **identity} if identity else {}  # a key on either side must match
            differs = [k for k in expected if stored.get(k) != identity.get(k)]
            if differs:
                other = "--out" if exclusive else "--study"  # exclusive: the ledger of one --out folder
                raise UserError(
                    f"study '{study}' belongs to a search with another {differs[0]}; pass --force to start over "
                    f"(its results are replaced) or use another {other}"
                )
        self.exclusive = exclusive
        self._study_id = self.storage.get_study_id_from_name(study)
        if exclusive:
            for trial in self._trials((TrialState.RUNNING,)):
                self.release(trial._trial_id)

    def _identity(self, wait: float = 10.0) -> dict:
        """The study's identity; a worker that just created the study may not have written it yet."""
        deadline = time.time() + wait
        while IDENTITY_ATTR not in self.study.user_attrs and time.time() < deadline:
            time.sleep(POLL_SECONDS)
        return self.study.user_attrs.get(IDENTITY_ATTR, {})

    def _trials(self, states: tuple[TrialState, ...]) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states)

    def records(self) -> list[Record]:
        """Every completed candidate, in the order it was finished (trial number)."""
        return [_record(t) for t in self._trials((TrialState.COMPLETE,)) if "record" in t.user_attrs]

    def claim(self, key: str, budget: int, wait: bool = True) -> int | Record | None:
        """Claim `key`: our trial id if we must evaluate it, the Record if someone already did,
        None if the budget is spent (or, with `wait=False`, if another worker is evaluating it now).
        The claim trial is created with its key in one storage operation, so the lowest trial number
        holding a key is its owner for every reader."""
        while True:
            trial_id = self.storage.create_new_trial(self._study_id, template_trial=_claim_template(key))
            number = self.storage.get_trial_number_from_id(trial_id)
            live = [t for t in self._trials((TrialState.RUNNING, TrialState.COMPLETE)) if "key" in t.user_attrs]
            owners: dict[str, FrozenTrial] = {}
            for trial in sorted(live, key=lambda t: t.number):
                owners.setdefault(trial.user_attrs["key"], trial)
            owner = owners[key]
            if owner.number == number:  # the budget counts owned keys only, not other workers' losing claims
                if sum(t.number <= number for t in owners.values()) > budget:
                    self.release(trial_id)
                    return None
                return trial_id
            self.release(trial_id)
            if not wait and owner.state == TrialState.RUNNING:
                return None
            done = self._wait(owner)
            if done is not None:
                return done

    def _wait(self, owner: FrozenTrial) -> Record | None:
        """The owner's record once it completes; None if it failed or went stale."""
        while True:
            trial = self.storage.get_trial(owner._trial_id)
            if trial.state == TrialState.COMPLETE:
                return _record(trial)
            if trial.state != TrialState.RUNNING:
                return None
            if time.time() - _claimed_at(trial) > self.stale_after:
                self.release(owner._trial_id)
                return None
            time.sleep(POLL_SECONDS)

    def complete(
        self, trial_id: int, strategy: str, changes: dict[str, str], scores: dict, cost: float,
        shown: dict[str, float | str | bool] | None = None,
    ) -> None:  # fmt: skip
        """Store a finished evaluation (committed before this returns); `shown`: extra user attrs for
        optuna-dashboard's trial table (the strategy is always one)."""
        record = {"strategy": strategy, "changes": changes, "scores": scores}
        for key, value in {"strategy": strategy, **(shown or {})}.items():
            self.storage.set_trial_user_attr(trial_id, key, value)
        self.storage.set_trial_user_attr(trial_id, "record", record)
        self.storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [cost])

    def holdouts(self) -> dict[str, dict]:
        """Held-out scores stored so far, by the checked candidate's key."""
        trials = self._trials((TrialState.COMPLETE,))
        return {t.user_attrs[HOLDOUT_ATTR]: t.user_attrs["scores"] for t in trials if HOLDOUT_ATTR in t.user_attrs}

    def store_holdout(self, key: str, scores: dict) -> None:
        """Store the held-out scores of candidate `key` (one storage operation; not counted in the budget)."""
        now = datetime.now()
        trial = FrozenTrial(
            number=-1, state=TrialState.COMPLETE, value=0.0, datetime_start=now, datetime_complete=now, params={},
            distributions={}, user_attrs={HOLDOUT_ATTR: key, "scores": scores}, system_attrs={},
            intermediate_values={}, trial_id=-1,
        )  # fmt: skip
        self.storage.create_new_trial(self._study_id, template_trial=trial)

    def release(self, trial_id: int) -> None:
        """Give a claim back (the evaluation did not happen)."""
        self.storage.set_trial_state_values(trial_id, TrialState.FAIL)


def _repair(journal: str, exclusive: bool) -> None:
    """Cut a torn or garbage tail off a journal file before Optuna reads it (and before anything is appended onto
    a partial line), under Optuna's own journal lock, so no worker is appending meanwhile."""
    if exclusive and Path(journal + ".lock").is_symlink():  # left by a writer killed mid-append: as our folder
        JournalFileSymlinkLock(journal).release()  # lock proves, no live process holds it
    if not Path(journal).exists():
        return
    lock = JournalFileSymlinkLock(journal)
    lock.acquire()
    try:
        dropped = repair_journal(Path(journal))
    finally:
        lock.release()
    if dropped:
        print(f"autoprec: ledger {journal} ended in a torn or unreadable part: dropped {dropped} record(s) after "
              f"the last intact one (kept in {journal}.torn-*)", file=sys.stderr)  # fmt: skip


def _claim_template(key: str) -> FrozenTrial:
    """A RUNNING trial holding `key`; its claim time is epoch seconds (storages disagree on naive datetimes)."""
    return FrozenTrial(
        number=-1, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(UTC),
        datetime_complete=None, params={}, distributions={}, user_attrs={"key": key, CLAIMED_ATTR: time.time()},
        system_attrs={}, intermediate_values={}, trial_id=-1,
    )  # fmt: skip


def _claimed_at(trial: FrozenTrial) -> float:
    """When a claim was made, in epoch seconds (claims of older versions: Optuna's start time, naive local)."""
    if CLAIMED_ATTR in trial.user_attrs:
        return float(trial.user_attrs[CLAIMED_ATTR])
    return trial.datetime_start.timestamp() if trial.datetime_start else time.time()


def _record(trial: FrozenTrial) -> Record:
    record = trial.user_attrs["record"]
    return Record(trial.number, trial.user_attrs["key"], record["strategy"], record["changes"], record["scores"])


def default_storage(out_dir: Path) -> str:
    """The local ledger: Optuna's journal file (7x cheaper per evaluation than SQLite here, and safe for
    several processes on one machine)."""
    return str((out_dir / "ledger.journal").resolve())
