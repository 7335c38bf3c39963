"""The strategy API: everything a strategy author needs, in one module.

A strategy is one step of the search pipeline (`--strategies baselines,threshold_sweep,...`). It
proposes candidates through a `SearchView` and never touches ONNX, sessions or storage.

Lifecycle, per search, for each strategy in pipeline order:

1. the driver loads the class from the `autoprec.strategies` entry-point group and instantiates it
   with no arguments (a class without a `name`, a `run` method or with a malformed `options` table is
   refused on load, naming the plug-in); `--option NAME.KEY=VALUE` values are parsed by the
   strategy's `options` table before anything is evaluated;
2. when its turn comes, and only if the search is not finished and budget remains, the driver calls
   `applies(search)`: a cheap check on published results and candidates (no evaluation);
3. if it applies, `run(search)` is called once. It may evaluate candidates (`search.evaluate`,
   `search.evaluate_units`, `search.sweep`), read the cached analyses (`search.sensitivity`),
   publish typed results for later strategies (`search.results.sweep = SweepResult(...)`), change
   the base assignment later strategies build on (`search.set_base`) and end the search
   (`search.finish`). Nothing else of the search can be changed from a strategy.

Evaluations are deduplicated and persisted by the engine: proposing an assignment twice costs
nothing, and a resumed search replays `run` with stored results coming back instantly, so `run`
must be deterministic given the candidates it gets back.

Example, a complete plug-in (register it in your package's pyproject.toml under
`[project.entry-points."autoprec.strategies"]` as `top_k = "mypkg.top_k:TopK"`)::

    from autoprec.strategy import Option, SearchView, Strategy

    class TopK(Strategy):
        \"\"\"Raise the k most sensitive units at once.\"\"\"

        name = "top_k"
        options = {"k": Option(10, int, "units to raise")}

        def applies(self, search: SearchView) -> bool:
            return bool(search.units)  # nothing to raise in a model without units

        def run(self, search: SearchView) -> None:
            ranking = search.sensitivity().ranking("cosine-similarity")
            search.evaluate_units([ranking[: search.option("k")]])
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import optuna

from autoprec.engine.bisect import bisect
from autoprec.engine.ranges import OWN, unit_ranges
from autoprec.engine.results import CompensationResult, FallbackResult, Results, SubgraphSpec, SweepResult
from autoprec.engine.sensitivity import Sensitivity, sensitivity_items
from autoprec.engine.state import Candidate, SearchState, assignment_key
from autoprec.engine.target import Target
from autoprec.engine.units import Unit
from autoprec.hardware import HardwareProfile, lower_qtype
from autoprec.ir import QTYPES, CalibratedModel

__all__ = [
    "OWN", "Candidate", "CompensationResult", "FallbackResult", "Option", "Results", "SearchView", "Sensitivity",
    "Strategy",
    "SubgraphSpec", "SweepResult", "Unit", "assignment_key", "at_least", "bisect", "fraction",
]  # fmt: skip


@dataclass(frozen=True)
class Option:
    """A strategy setting, given as `--option <strategy>.<key>=<value>`: its default, the parser of the
    text value (on a bad one, raise a ValueError saying what is valid) and a one-line help (what it sets)."""

    default: Any
    parse: Callable[[str], Any] = str
    help: str = ""


def fraction(text: str) -> float:
    """Option parser: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan  # not a number: refused below, with the range
    if not 0.0 < value <= 1.0:
        raise ValueError(f"must lie in (0, 1], got {text}")
    return value


def at_least(minimum: int) -> Callable[[str], int]:
    """Option parser factory: an integer >= `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"must be a whole number of at least {minimum}, got {text}") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}, got {value}")
        return value

    return parse


class Strategy(ABC):
    """Base class of a search step. Subclass it, set `name`, implement `run` (and `applies` if the step
    only makes sense in some situations). See the module docstring for when each method is called."""

    name: ClassVar[str] = ""
    options: ClassVar[Mapping[str, Option]] = {}

    def applies(self, search: SearchView) -> bool:
        """Called once, when the strategy's turn comes (budget remains, search not finished): has it
        anything to do? Must not evaluate. Default: True."""
        return True

    @abstractmethod
    def run(self, search: SearchView) -> None:
        """Called once if `applies`: propose and evaluate candidates, publish results."""


class SearchView:
    """What a strategy sees of the search: read-only state, evaluation, and the few documented changes.

    Candidates a strategy evaluates are labelled with its name (or `label`) in the ledger and tables.
    """

    def __init__(self, state: SearchState, strategy: Strategy):
        self._state = state
        self._strategy = strategy
        self._options = {
            key: spec.parse(state.options[f"{strategy.name}.{key}"])
            if f"{strategy.name}.{key}" in state.options
            else spec.default
            for key, spec in strategy.options.items()
        }

    # --- read-only state ------------------------------------------------------------------
    @property
    def model(self) -> CalibratedModel:
        """The calibrated model (read it; never edit it)."""
        return self._state.model

    @property
    def outputs(self) -> list[str]:
        """The model's output names."""
        return list(self._state.evaluator.outputs)

    @property
    def target(self) -> Target:
        return self._state.target

    @property
    def profile(self) -> HardwareProfile:
        return self._state.profile

    @property
    def units(self) -> list[Unit]:
        """The search decisions: groups of calibration nodes raised together, in graph order."""
        return list(self._state.units)

    @property
    def unit_costs(self) -> dict[str, float]:
        """Unit name -> cost of raising it (all-int16 = 1.0)."""
        return dict(self._state.unit_costs)

    @property
    def baselines(self) -> dict[str, dict[str, str]]:
        """all-int8, all-int16 (what the profile allows) and real-int16 assignments."""
        return self._state.baselines

    @property
    def base(self) -> dict[str, str]:
        """The assignment `evaluate_units` raises units on (all-int8 unless a strategy called `set_base`)."""
        return dict(self._state.base)

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        """Every candidate evaluated so far, in evaluation order."""
        return tuple(self._state.candidates)

    @property
    def best(self) -> Candidate | None:
        """The cheapest candidate meeting every target (ties: fewest entries), if any."""
        return self._state.best

    @property
    def remaining(self) -> int:
        """Evaluations left in the budget."""
        return self._state.remaining

    @property
    def results(self) -> Results:
        """Typed results published by earlier strategies; assign your own fields to publish."""
        return self._state.results

    @property
    def user_subgraphs(self) -> dict[str, dict]:
        """Subgraphs the user named with `--subgraph` (name -> inputs, outputs, qtype)."""
        return self._state.user_subgraphs

    def option(self, key: str) -> Any:
        """This strategy's option `key` (declared in `options`), parsed, or its default."""
        return self._options[key]

    def cost(self, assignment: dict[str, str]) -> float:
        return self._state.cost(assignment)

    def known(self, assignment: dict[str, str]) -> Candidate | None:
        """The candidate of an already evaluated assignment, without evaluating anything."""
        return self._state.known(assignment)

    def raise_units(
        self, names: Iterable[str], base: dict[str, str] | None = None, qtype: str = "int16"
    ) -> dict[str, str]:
        """`base` (default: the search base) with the named units at `qtype` (default int16)."""
        return self._state.raise_units(names, base, qtype)

    def raised_units(self, candidate: Candidate) -> list[str]:
        """Units fully raised to int16 in a candidate."""
        return self._state.raised_units(candidate)

    def sensitivity(self, node_type: str = "node", mode: str = "single") -> Sensitivity:
        """The cached sensitivity pass (not counted against the budget; measured on first use)."""
        return self._state.sensitivity(node_type, mode)

    def sensitivity_items(self, node_type: str = "node") -> dict[str, list[str]]:
        """The items a sensitivity pass of `node_type` would measure (item -> calibration nodes), free."""
        return sensitivity_items(self._state.evaluator, self._state.profile, node_type)

    # --- the qtype lattice int8 < int16 (ec beside it) < float16 < float32 ---------------------
    def allowed(self, node: str) -> tuple[str, ...]:
        """The qtypes calibration node `node` may take on the profile, lowest lattice level first."""
        return self._state.profile.allowed(self._state.model, self._state.model.calibration[node])

    def float_qtype(self, node: str) -> str | None:
        """The cheapest float qtype `node` may take (float16 before float32), None if none."""
        return self._state.profile.float_qtype(self._state.model, self._state.model.calibration[node])

    def lower(self, node: str, qtype: str) -> str | None:
        """The next allowed qtype below `qtype` in the lattice for `node` (ec -> int8), None at int8."""
        return lower_qtype(self.allowed(node), qtype)

    def unit_nodes(self, unit: str) -> tuple[str, ...]:
        """The calibration nodes of a unit."""
        return self._state.unit_by_name[unit].calibration

    def unit_qtypes(self, unit: str) -> tuple[str, ...]:
        """The qtypes every calibration node of a unit allows (int8, int16, and floats where allowed)."""
        allowed = [set(self.allowed(n)) for n in self.unit_nodes(unit)]
        return tuple(q for q in QTYPES if all(q in a for a in allowed))

    def unit_qtype(self, assignment: dict[str, str], unit: str) -> str | None:
        """The qtype all of a unit's calibration nodes have in `assignment`, None if they differ."""
        qtypes = {assignment[n] for n in self.unit_nodes(unit)}
        return qtypes.pop() if len(qtypes) == 1 else None

    def range_sensitivity(self, units: list[str]) -> dict[str, dict[str, dict[str, float]]]:
        """unit -> alternative int8 range label -> output -> mean cosine of the base with only that unit at that
        range; label "own": the base itself (on the sensitivity samples; not counted against the budget; measured
        once per base and unit). Evaluate a choice with the qtype "int8@<label>" on the unit's feature nodes."""
        return self._state.range_sensitivity(units)

    def range_choices(self, unit: str) -> dict[str, dict[str, str]]:
        """label -> the unit's calibration nodes at int8, feature nodes with that alternative range (distinct
        ranges, its own excluded): merge one into an assignment to try it."""
        return unit_ranges(self._state.model, self._state.unit_by_name[unit])

    # --- evaluation -------------------------------------------------------------------------
    def evaluate(self, assignments: list[dict[str, str]], label: str | None = None) -> list[Candidate | None]:
        """Evaluate assignments; known ones come back free; None where the budget ran out."""
        return self._state.evaluate(assignments, label or self._strategy.name)

    def evaluate_units(self, unit_sets: list[Iterable[str]], label: str | None = None) -> list[Candidate | None]:
        """Evaluate the base with each set of units raised to int16."""
        return self._state.evaluate_units(unit_sets, label or self._strategy.name)

    def sweep(
        self, ranking: list[str], start: Iterable[str] = (), label: str | None = None
    ) -> tuple[Candidate | None, set[str]]:
        """The smallest prefix of `ranking` that passes raised on top of `start` (a bisection): the passing
        candidate (None if the whole ranking fails) and the largest failing unit set met on the way."""
        return self._state.sweep(ranking, start, label or self._strategy.name)

    def fewest(self, count: int, assignment_of: Callable[[int], dict[str, str]]) -> tuple[Candidate | None, int]:
        """The fewest of `count` ranked fixes that pass: evaluates `assignment_of(count)` (all of them), and if it
        passes bisects the smallest k whose `assignment_of(k)` passes (~log2 count evaluations). Returns the
        candidate with all of them (None if it fails or the budget ran out) and k (`count` when not bisected)."""
        full = self.evaluate([assignment_of(count)])[0]
        if full is None or not full.passed:
            return None, count

        def passes(k: int) -> bool | None:
            candidate = self.evaluate([assignment_of(k)])[0] if self.remaining > 0 else None
            return None if candidate is None else candidate.passed

        return full, bisect(0, count, passes)[1]

    # --- changes ----------------------------------------------------------------------------
    def set_base(self, assignment: dict[str, str]) -> None:
        """Make `assignment` the base later `evaluate_units`/`sweep` calls (and later strategies) build on."""
        self._state.base = dict(assignment)

    def finish(self) -> None:
        """End the search after this strategy: later strategies do not run."""
        self._state.done = True

    def sampler_study(self, name: str, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
        """An Optuna study for this strategy's own sampler state: in the shared storage when several workers
        share the search (so their samplers see each other's trials), in memory for a lone search (rebuilt
        from the ledger on resume)."""
        ledger = self._state.ledger
        return optuna.create_study(
            storage=None if ledger.exclusive else ledger.storage,
            study_name=f"{ledger.study.study_name}.{self._strategy.name}.{name}",
            sampler=sampler,
            direction="minimize",
            load_if_exists=True,
        )
