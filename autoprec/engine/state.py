"""SearchState: the one place candidates are evaluated, counted, stored and ranked.

Strategies see it through `autoprec.strategy.SearchView`. Every evaluation goes through
`SearchState.evaluate`, which deduplicates through the ledger, enforces the budget and persists each
result before returning it. A killed search resumes by replaying the strategies: every assignment
already in the ledger comes back without being evaluated again.

With a held-out check (`autoprec.engine.holdout`), candidates are scored on the search samples only and
every would-be winner is checked on the held-out ones: one that fails there is no longer passing, and the
working target (`autoprec.engine.margin`) is tightened by the part of the gap it showed beyond the noise.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from autoprec.engine.baselines import baseline_assignments
from autoprec.engine.bisect import bisect
from autoprec.engine.cost import ChipCost
from autoprec.engine.holdout import HoldoutCheck
from autoprec.engine.ledger import Ledger, Record
from autoprec.engine.margin import WorkingTarget, working_target
from autoprec.engine.ranges import load_or_measure_ranges
from autoprec.engine.results import Results
from autoprec.engine.sensitivity import Sensitivity, load_or_measure
from autoprec.engine.target import Target
from autoprec.engine.units import Unit, raise_units, search_units
from autoprec.errors import UserError
from autoprec.evaluate import Evaluator, Scores
from autoprec.hardware import HardwareProfile
from autoprec.model_io import strict


def assignment_key(assignment: dict[str, str]) -> str:
    """A short stable hash of an assignment: the ledger's key for "already evaluated"."""
    return hashlib.sha256(json.dumps(sorted(assignment.items())).encode()).hexdigest()[:20]


@dataclass
class Candidate:
    """An evaluated assignment: its scores, cost, whether it meets every target, and who proposed it."""

    index: int
    assignment: dict[str, str]
    scores: Scores
    cost: float
    passed: bool
    shortfall: float
    strategy: str
    failing: list[str] = field(default_factory=list)
    meets: bool = False  # meets the target on the search samples (without working margins)
    holdout: Scores | None = None  # scores on the held-out samples, once checked
    holds: bool | None = None  # meets the target on them (None: not checked)
    tightened: list[str] = field(default_factory=list)  # outputs whose working margin its held-out failure raised

    @property
    def key(self) -> str:
        return assignment_key(self.assignment)

    def changes(self) -> dict[str, str]:
        """Calibration nodes not at plain int8 (the all-int8 base): int16, float32, ec, or int8 with another
        calibration method's range ("int8@kl")."""
        return {n: q for n, q in self.assignment.items() if q != "int8"}

    def rank_key(self) -> tuple:
        """Passing first by cost then fewest entries; failing after, by shortfall."""
        return (0, self.cost, len(self.changes())) if self.passed else (1, self.shortfall, self.cost)


class SearchState:
    """The search's state: budget, candidates, base assignment, shared analyses and published results.

    Built from already-opened parts (evaluator, ledger): construction reads nothing from disk.
    """

    def __init__(
        self,
        evaluator: Evaluator,
        target: Target,
        profile: HardwareProfile,
        ledger: Ledger,
        budget: int,
        out_dir: Path,
        sensitivity_samples: int = 2,
        options: dict[str, str] | None = None,
        user_subgraphs: dict[str, dict] | None = None,
        on_evaluated: Callable[[Candidate], None] | None = None,
        on_sensitivity: Callable[[int, int], None] | None = None,
        sensitivity_method: str = "incremental",
        search_indices: list[int] | None = None,
        holdout: HoldoutCheck | None = None,
        on_holdout: Callable[[Candidate], None] | None = None,
    ):
        if budget < 1:
            raise UserError(f"budget must be at least 1 evaluation, got {budget}")
        self.evaluator = evaluator
        self.model = evaluator.model
        self.target: WorkingTarget = target if isinstance(target, WorkingTarget) else working_target(target)
        self.plain_target = self.target  # without the margins held-out failures add
        self.goal = Target(self.target.outputs)  # the user's target on point estimates: what held-out scores meet
        self.search_indices = list(range(evaluator.num_samples)) if search_indices is None else search_indices
        self.holdout = holdout
        self.on_holdout = on_holdout
        self.profile = profile
        self.ledger = ledger
        self.budget = budget
        self.out_dir = out_dir
        self.options = options or {}
        self.user_subgraphs = user_subgraphs or {}
        self.on_evaluated = on_evaluated
        self.on_sensitivity = on_sensitivity
        self.sensitivity_method = sensitivity_method
        self.units: list[Unit] = search_units(self.model, profile)
        self.unit_by_name = {u.name: u for u in self.units}
        self.baselines = baseline_assignments(self.model, profile)
        self.base = self.baselines["all-int8"]
        self.chip = ChipCost(self.model, profile.costs, evaluator.sample(0))
        self.cost_scale = self.chip.extra(self.baselines["all-int16"]) or 1.0
        self.unit_costs = {u.name: self.cost(raise_units(self.base, [u])) for u in self.units}
        self.sensitivity_indices = self.search_indices[:sensitivity_samples]
        self.results = Results()
        self.candidates: list[Candidate] = []
        self._by_key: dict[str, Candidate] = {}
        self._seen: set[int] = set()
        # A lone search replays its strategies and takes stored results as they are asked for, so a resumed
        # run walks exactly the path of an uninterrupted one; shared workers take in everything at once.
        self._stored = {r.key: r for r in ledger.records()} if ledger.exclusive else {}
        if not ledger.exclusive:
            self.sync()
        self._sensitivity: dict[tuple[str, str], Sensitivity] = {}
        self._ranges: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
        self.done = False
        self.sensitivity_runs = 0
        self.sensitivity_seconds = 0.0
        self.sensitivity_equivalents = 0.0  # full-model-run equivalents (MACs run / model MACs per sample)

    # --- budget and results ---------------------------------------------------------------
    @property
    def used(self) -> int:
        return len(self.candidates)

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    @property
    def best(self) -> Candidate | None:
        """The cheapest passing candidate (ties: fewest entries); with a held-out check, one that holds."""
        passing = [c for c in self.candidates if c.passed and (self.holdout is None or c.holds)]
        return min(passing, key=Candidate.rank_key) if passing else None

    def ranked(self) -> list[Candidate]:
        return sorted(self.candidates, key=Candidate.rank_key)

    def cost(self, assignment: dict[str, str]) -> float:
        """The one cost of an assignment: modelled chip time above all-int8, all-int16 = 1.0 (engine.cost)."""
        return self.chip.extra(assignment) / self.cost_scale

    # --- evaluation -----------------------------------------------------------------------
    def evaluate(self, assignments: list[dict[str, str]], strategy: str) -> list[Candidate | None]:
        """Evaluate assignments (known ones come from the ledger); None where the budget ran out."""
        if not self.ledger.exclusive:
            self.sync()
        keys = [assignment_key(a) for a in assignments]
        claims: dict[str, tuple[int, dict[str, str]]] = {}
        for assignment, key in zip(assignments, keys):
            if key in self._by_key or key in claims:
                continue
            if key in self._stored:
                if self.remaining - len(claims) > 0:
                    self._restore(self._stored.pop(key))
                continue
            claim = self.ledger.claim(key, self.budget)
            if claim is None:
                break
            if isinstance(claim, Record):
                self._restore(claim)
            else:
                claims[key] = (claim, assignment)
        if claims:
            try:
                scored = self.evaluator.evaluate_many([a for _, a in claims.values()], self.search_indices)
            except BaseException:
                for trial_id, _ in claims.values():
                    self.ledger.release(trial_id)
                raise
            for (trial_id, assignment), scores in zip(claims.values(), scored):
                candidate = self._make(assignment, scores, strategy)
                margin = -max(t.gap(scores) for t in self.target.outputs)
                shown = {"worst_margin": strict(margin), "passed": candidate.passed}
                self.ledger.complete(trial_id, strategy, candidate.changes(), scores.to_json(), candidate.cost, shown)
                self._remember(candidate)
        self._confirm()
        return [self._by_key.get(key) for key in keys]

    def sync(self) -> None:
        """Take in every candidate the ledger holds that this process has not seen (resume, other workers)."""
        self._stored.clear()
        for record in self.ledger.records():
            if record.number not in self._seen:
                self._restore(record)
        self._confirm()

    def known(self, assignment: dict[str, str]) -> Candidate | None:
        """The candidate of an already evaluated assignment, without evaluating anything."""
        return self._by_key.get(assignment_key(assignment))

    def evaluate_units(self, unit_sets: list[Iterable[str]], strategy: str) -> list[Candidate | None]:
        """Evaluate the base with each set of units raised to int16."""
        return self.evaluate([self.raise_units(s) for s in unit_sets], strategy)

    def raise_units(self, names: Iterable[str], base: dict[str, str] | None = None, qtype: str = "int16") -> dict:
        return raise_units(base or self.base, [self.unit_by_name[n] for n in names], qtype)

    def raised_units(self, candidate: Candidate) -> list[str]:
        """Units fully raised to int16 in a candidate."""
        return [u.name for u in self.units if all(candidate.assignment[c] == "int16" for c in u.calibration)]

    def _make(self, assignment: dict[str, str], scores: Scores, strategy: str) -> Candidate:
        meets = self.plain_target.passes(scores)
        candidate = Candidate(self.used, assignment, scores, self.cost(assignment), meets, 0.0, strategy, meets=meets)
        self._judge(candidate)
        return candidate

    def _judge(self, candidate: Candidate) -> None:
        """Pass/fail as strategies see it: a checked candidate by its check, an unchecked one on the working target."""
        target = self.plain_target if candidate.holds else self.target
        candidate.failing = target.failing(candidate.scores)
        candidate.shortfall = target.shortfall(candidate.scores)
        candidate.passed = not candidate.failing and candidate.holds is not False

    def _confirm(self) -> None:
        """Check would-be winners (candidates meeting the target, cheapest first, cheaper than the best that
        holds) on the held-out samples; one that fails there by more than the held-out noise tightens the working
        target by its gap beyond that noise (`WorkingTarget.tightened`), one within the noise is only ruled out."""
        while self.holdout is not None:
            best = self.best
            bar = (best.cost, len(best.changes())) if best else (float("inf"), 0)
            unchecked = [c for c in self.candidates if c.meets and c.holds is None and (c.cost, len(c.changes())) < bar]
            if not unchecked:
                return
            candidate = min(unchecked, key=lambda c: (c.cost, len(c.changes())))
            candidate.holdout = self.holdout.scores(candidate.assignment, candidate.key)
            candidate.holds = self.goal.passes(candidate.holdout)
            if not candidate.holds:
                tightened = self.target.tightened(candidate.scores, candidate.holdout)
                candidate.tightened = [o for o, m in tightened.margins if m > self.target.margin(o)]
                self.target = tightened
                for other in self.candidates:
                    self._judge(other)
            self._judge(candidate)
            if self.on_holdout:
                self.on_holdout(candidate)

    def _restore(self, record: Record) -> None:
        self._seen.add(record.number)
        if record.key in self._by_key:
            return
        assignment = {**self.baselines["all-int8"], **record.changes}
        self._remember(self._make(assignment, Scores.from_json(record.scores), record.strategy))

    def _remember(self, candidate: Candidate) -> None:
        self.candidates.append(candidate)
        self._by_key[candidate.key] = candidate
        if self.on_evaluated:
            self.on_evaluated(candidate)

    # --- shared analyses --------------------------------------------------------------------
    def sensitivity(self, node_type: str = "node", mode: str = "single") -> Sensitivity:
        """The sensitivity pass: measured once, kept in memory, and cached on disk in the output folder so a
        second search reuses it."""
        if (node_type, mode) not in self._sensitivity:  # the cache file name holds node type and mode
            result = load_or_measure(
                self.evaluator, self.profile, self.out_dir, node_type, mode, self.sensitivity_indices,
                self.on_sensitivity, self.sensitivity_method, None if self.ledger.exclusive else self.ledger,
            )  # fmt: skip
            self.sensitivity_runs += result.model_runs
            self.sensitivity_seconds += result.seconds
            self.sensitivity_equivalents += result.equivalents
            self._sensitivity[(node_type, mode)] = result
        return self._sensitivity[(node_type, mode)]

    def range_sensitivity(self, units: list[str]) -> dict[str, dict[str, dict[str, float]]]:
        """unit -> alternative range label (and OWN: the base) -> output -> mean cosine of the base with only
        that unit at that range (`autoprec.engine.ranges`), on the sensitivity samples: measured once per base
        and unit, cached in the output folder, counted with the sensitivity pass."""
        base = assignment_key(self.base)
        missing = [self.unit_by_name[u] for u in units if (base, u) not in self._ranges]
        if missing:
            started, runs = time.perf_counter(), self.evaluator.model_runs
            indices = self.sensitivity_indices
            measured = load_or_measure_ranges(self.evaluator, missing, indices, self.base, self.out_dir)
            self._ranges.update({(base, u): v for u, v in measured.items()})
            self.sensitivity_runs += self.evaluator.model_runs - runs
            self.sensitivity_seconds += time.perf_counter() - started
        return {u: self._ranges[(base, u)] for u in units}

    def sweep(self, ranking: list[str], start: Iterable[str], strategy: str) -> tuple[Candidate | None, set[str]]:
        """Smallest prefix of `ranking` that, raised on top of `start`, passes (bisection, ~log2 N evaluations).

        Returns the passing candidate (None if even the full prefix fails or the budget ends) and the
        largest failing set met on the way (for output filtering)."""
        start = set(start)
        ranking = [u for u in ranking if u not in start]
        full = self.evaluate_units([start | set(ranking)], strategy)[0]
        if full is None or not full.passed:
            return None, start
        found = {len(ranking): full}

        def passes(k: int) -> bool | None:
            candidate = self.evaluate_units([start | set(ranking[:k])], strategy)[0] if self.remaining > 0 else None
            if candidate is not None:
                found[k] = candidate
            return None if candidate is None else candidate.passed

        low, high = bisect(0, len(ranking), passes)
        return found[high], start | set(ranking[:low])
