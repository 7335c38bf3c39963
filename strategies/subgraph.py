"""Subgraph promotion (the YoloP story): raise a whole output head or branch block to int16 on top of
the failing candidate closest to passing, keep the one that fixes (or clearly improves) a failing
output, then shrink it: rank its units by damage per cost on the outputs it feeds and bisect. A subgraph
that stays whole is published in `results.subgraphs` (emitted as `subgraph_config`); a shrunk
one ends up as node_config entries. What it scored and promoted is published in `results.subgraph_search`.

Candidates: user subgraphs (`--subgraph NAME:IN:OUT`, tried first), the heads of the failing
outputs and fork/join blocks feeding them. A head is the region that feeds only some outputs: first
only the failing output (strict head), then the next wider scope of outputs sharing a trunk (a
detector level's tower feeds its cls and reg outputs), up to half the model's units.

    autoprec search --subgraph det_head:Conv_559,Conv_707:Concat_1003 --option subgraph.share=0.33
"""

from __future__ import annotations

import math

from autoprec.engine.regions import MAX_BLOCK_NODES, Region, discover
from autoprec.strategy import Candidate, Option, SearchView, Strategy, SubgraphSpec, at_least, fraction

EXPENSIVE = 0.3  # applies while the best passing candidate costs more than this share of all-int16
SCORING_SHARE = 1 / 3  # of the remaining budget, at most (--option subgraph.share=...)
MIN_PROMISE = 0.01  # regions whose sensitivity loss is below this share of the top one are not scored
MIN_GAIN = 0.1  # a promotion that fixes no output must cut the shortfall by this fraction
MAX_ROUNDS = 4  # promote, then look again at the outputs still failing


# --- the strategy -----------------------------------------------------------------------------
class Subgraph(Strategy):
    """Promote a whole head or block that repairs a failing output, then shrink it."""

    name = "subgraph"
    options = {
        "share": Option(SCORING_SHARE, fraction, "share of the remaining budget for scoring regions"),
        "block_nodes": Option(MAX_BLOCK_NODES, at_least(2), "largest fork/join block, in nodes"),
    }

    def applies(self, search: SearchView) -> bool:
        best = search.best
        expensive = best is None or best.cost > EXPENSIVE
        return search.remaining > 1 and bool(search.units) and expensive and base_candidate(search) is not None

    def run(self, search: SearchView) -> None:
        base = base_candidate(search)
        start = set(search.raised_units(base))
        sensitivity = search.sensitivity()
        metric = _metric(search)
        allowance = max(1, int(search.remaining * search.option("share")))
        max_block_nodes = search.option("block_nodes")
        current, promoted, tried, log = base, [], set(), []
        for _ in range(MAX_ROUNDS):
            if current.passed or allowance <= 0 or search.remaining <= 1:
                break
            failing = list(current.failing)
            pool: dict[frozenset[str], Region] = {}
            regions = discover(search.model, search.units, failing, search.user_subgraphs, max_block_nodes)
            for region in regions:
                new = region.units - start
                if new and frozenset(start | new) not in tried:
                    pool.setdefault(new, region)

            promise = {new: _promise(sensitivity, metric, pool[new], new, failing) for new in pool}
            ranked = sorted(pool, key=lambda new: (pool[new].kind != "user", -promise[new], len(new)))
            floor = MIN_PROMISE * max(promise.values(), default=0.0)
            ranked = [new for new in ranked if pool[new].kind == "user" or promise[new] > floor][:allowance]
            if not ranked:
                break
            tried.update(frozenset(start | new) for new in ranked)
            allowance -= len(ranked)
            scored = search.evaluate_units([start | new for new in ranked])
            results = [(pool[new], c) for new, c in zip(ranked, scored) if c is not None]
            log += [
                {"subgraph": r.name, "units": len(r.units), "candidate": c.index, "failing": c.failing,
                 "shortfall": c.shortfall} for r, c in results
            ]  # fmt: skip
            choice = _choose(current, results)
            if choice is None:
                break
            promoted.append(choice[0])
            start |= choice[0].units
            current = choice[1]
        search.results.subgraph_search = {
            "base": base.index,
            "scored": log,
            "promoted": [r.name for r in promoted],
            "passed": current.passed,
        }
        if current.passed:
            self._shrink(search, promoted, start, sensitivity, metric, base.failing)

    def _shrink(self, search, promoted, start, sensitivity, metric, failing) -> None:
        """Per promoted subgraph: its units ranked by damage per cost on the (failing) outputs it feeds,
        bisected on top of everything else raised. Kept whole -> recorded for subgraph_config."""
        kept = set(start)
        shrunk = {}
        for region in promoted:
            others = kept - region.units
            outs = [o for o in failing if o in region.feeds] or sorted(region.feeds)
            ranking = [u for u in sensitivity.ranking(metric, outs, search.unit_costs) if u in region.units]
            best, _ = search.sweep(ranking, others)
            if best is None:
                continue
            raised = set(search.raised_units(best))
            kept = others | (region.units & raised)
            shrunk[region.name] = {"units": len(region.units), "kept": len(region.units & raised)}
            if region.units <= raised:
                spec = region.spec()
                search.results.subgraphs[region.name] = SubgraphSpec(
                    spec["inputs"], spec["outputs"], spec["qtype"], sorted(region.units)
                )
        search.results.subgraph_search["shrunk"] = shrunk


def base_candidate(search: SearchView) -> Candidate | None:
    """The failing candidate closest to passing (cheaper than the best passing one, made of whole units).

    A head repairs local damage: on top of the candidate that already repaired most of the model (a
    sweep's largest failing step, typically), what still fails is what a head or block can fix. Right
    after the baselines that is all-int8 (the YoloP case: one head fails, the rest is fine)."""
    best = search.best
    failing = [
        c
        for c in search.candidates
        if not c.passed
        and math.isfinite(c.shortfall)  # a NaN output is no base to repair
        and (best is None or c.cost < best.cost)
        and c.assignment == search.raise_units(search.raised_units(c))
    ]
    return min(failing, key=lambda c: (c.shortfall, c.cost)) if failing else None


def _choose(current: Candidate, results: list[tuple[Region, Candidate]]) -> tuple[Region, Candidate] | None:
    """The cheapest passing one; else, among those fixing a failing output or cutting the shortfall by
    MIN_GAIN, the one repairing most per added cost (cheap heads first, like a hand-picked det head)."""
    passing = [r for r in results if r[1].passed]
    if passing:
        return min(passing, key=lambda r: r[1].cost)

    def useful(c: Candidate) -> bool:
        fixed = set(current.failing) - set(c.failing)
        return c.shortfall < current.shortfall and (bool(fixed) or c.shortfall <= (1 - MIN_GAIN) * current.shortfall)

    def efficiency(c: Candidate) -> float:
        return (current.shortfall - c.shortfall) / max(c.cost - current.cost, 1e-9)

    candidates = [r for r in results if useful(r[1])]
    return max(candidates, key=lambda r: efficiency(r[1])) if candidates else None


def _promise(sensitivity, metric: str, region: Region, new: frozenset[str], failing: list[str]) -> float:
    """How much damage raising `new` (a region's units not raised yet) can repair on the failing outputs
    it feeds: the sum of the units' sensitivity losses there."""
    outs = [o for o in failing if o in region.feeds]
    return sum(sensitivity.loss(u, metric, outs) for u in sorted(new)) if outs else 0.0  # sorted: same sum on resume


def _metric(search: SearchView) -> str:
    """The targets' metric when they share one (sensitivity ranks by it), else cosine."""
    metrics = {t.metric for t in search.target.outputs}
    return metrics.pop() if len(metrics) == 1 else "cosine-similarity"
