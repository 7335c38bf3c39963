"""The driver: load the strategy pipeline, run it on a SearchState, collect the result."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from autoprec.engine.state import Candidate, SearchState
from autoprec.errors import UserError
from autoprec.strategy import Option, SearchView, Strategy

GROUP = "autoprec.strategies"
HOLDOUT_REPASSES = 2  # pipeline passes after the one that a held-out failure tightened the target in


def load_strategies(names: Iterable[str], options: dict[str, str] | None = None) -> list[Strategy]:
    """Strategies by name from the `autoprec.strategies` entry-point group (built-ins and plug-ins), each
    checked on load; `options` (`strategy.key` -> text) are checked against the chosen strategies."""
    available = {ep.name: ep for ep in entry_points(group=GROUP)}
    chosen = []
    for name in names:
        if name not in available:
            raise UserError(f"unknown strategy '{name}'; available: {', '.join(sorted(available))}")
        chosen.append(_instantiate(name, available[name]))
    _check_options(chosen, options or {})
    return chosen


def _instantiate(name: str, entry_point) -> Strategy:
    try:
        cls = entry_point.load()
        strategy = cls()
    except Exception as exc:  # a third-party plug-in can fail in any way while importing or constructing
        raise UserError(
            f"strategy plug-in '{name}' ({entry_point.value}) failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    problems = []
    if not isinstance(getattr(strategy, "name", None), str) or not strategy.name:
        problems.append("no `name` string")
    if not callable(getattr(strategy, "run", None)):
        problems.append("no `run(search)` method")
    if not callable(getattr(strategy, "applies", None)):
        problems.append("no `applies(search)` method")
    options = getattr(strategy, "options", {})
    if not isinstance(options, dict) or not all(isinstance(o, Option) for o in options.values()):
        problems.append("`options` is not a dict of autoprec.strategy.Option")
    if problems:
        raise UserError(
            f"strategy plug-in '{name}' ({entry_point.value}) is not a strategy: {'; '.join(problems)} "
            "(subclass autoprec.strategy.Strategy)"
        )
    return strategy


def _check_options(strategies: list[Strategy], options: dict[str, str]) -> None:
    """Every option names a chosen strategy and one of its declared keys, and its value parses."""
    by_name = {s.name: s for s in strategies}
    for key, value in options.items():
        owner, _, option = key.partition(".")
        if owner not in by_name:
            raise UserError(f"--option {key}: strategy '{owner}' is not in --strategies ({', '.join(by_name)})")
        declared = by_name[owner].options
        if option not in declared:
            known = ", ".join(f"{owner}.{k}" for k in declared) or "none"
            raise UserError(f"--option {key}: unknown option of '{owner}'; its options: {known}")
        try:
            declared[option].parse(value)
        except (ValueError, TypeError) as exc:
            raise UserError(f"--option {key}={value}: {exc or 'invalid value'} ({declared[option].help})") from exc


@dataclass
class SearchResult:
    """What a search found: the minimal passing candidate (or the best failing one) and everything tried."""

    best: Candidate | None
    closest: Candidate | None
    candidates: list[Candidate]
    state: SearchState
    seconds: float
    strategies: list[str] = field(default_factory=list)
    exported: dict[str, dict] | None = None  # the winner re-scored on its exported model (engine.verify)

    @property
    def met(self) -> bool:
        return self.best is not None

    @property
    def winner(self) -> Candidate | None:
        return self.best or self.closest


def run_search(state: SearchState, strategies: list[Strategy]) -> SearchResult:
    """Run the strategies in order until one finishes the search or the budget is spent. When a held-out
    check tightened the working target during a pass, the pipeline runs again on what is left of the budget."""
    started = time.perf_counter()
    for _ in range(1 + HOLDOUT_REPASSES):
        margins = state.target.margins
        for strategy in strategies:
            if state.done or state.remaining <= 0:
                break
            view = SearchView(state, strategy)
            if strategy.applies(view):
                strategy.run(view)
        if state.target.margins == margins or state.done or state.remaining <= 0:
            break
    state.sync()
    ranked = state.ranked()
    closest = next((c for c in ranked if not c.passed), None)
    return SearchResult(state.best, closest, ranked, state, time.perf_counter() - started, [s.name for s in strategies])
