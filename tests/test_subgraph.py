"""Subgraph promotion on the real layout detector (PP-PicoDet, 8 outputs: cls and reg per level).

Checked against independent re-computation: the heads found are what a forward walk of the graph
says feeds only those outputs; raising a head moves its output's real score; a local failure (one
level's tower left int8 while the rest is int16) is repaired by promoting that tower and shrunk;
the search pipeline `baselines,subgraph,prune` records what it tried and its config round-trips;
subgraph specs in a quant_config raise exactly the nodes between inputs and outputs; bad names are
one clean line.

Layout at all-int8 is broken everywhere (mean cosines 0.18-0.80: the stem's convs), so a head alone
cannot pass there; it still moves its own output. Its sensitivity pass (405 units) is run once per
module on one sample and handed to each test through the search's on-disk cache.
"""

from __future__ import annotations

import json
import shutil
from collections import deque
from pathlib import Path

import pytest
from autoprec.strategies.subgraph import Subgraph

from autoprec import api
from autoprec.engine.driver import run_search
from autoprec.engine.ledger import Ledger, default_storage
from autoprec.engine.outputs import write_outputs
from autoprec.engine.regions import discover, fork_join_blocks
from autoprec.engine.state import SearchState
from autoprec.engine.target import OutputTarget, Target, build_target
from autoprec.errors import UserError
from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.hardware import get_profile
from autoprec.quant_config import from_quant_config, subgraph_nodes, to_quant_config
from autoprec.strategy import SearchView

COSINE = "cosine-similarity"
NUM_SAMPLES = 2  # evaluated per candidate
SENSITIVITY_SAMPLES = 1
JOBS = 2
SENSITIVITY_FILE = "sensitivity-node-single.json"


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluator(layout_workdir) -> Evaluator:
    model, data = layout_workdir / "calibrated_model.onnx", layout_workdir / "calibration_data"
    return Evaluator(EvalSpec(str(model), str(data), NUM_SAMPLES), jobs=JOBS)


def new_state(evaluator: Evaluator, out: Path, budget: int, target: float = 0.99) -> SearchState:
    out.mkdir(parents=True, exist_ok=True)
    return make_state(evaluator, build_target(evaluator.outputs, target), budget, out)


def make_state(evaluator: Evaluator, target: Target, budget: int, out: Path) -> SearchState:
    out.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(default_storage(out), "autoprec", None, join=False, exclusive=True)
    return SearchState(evaluator, target, get_profile("generic"), ledger, budget, out, SENSITIVITY_SAMPLES)


@pytest.fixture(scope="module")
def sensitivity_cache(evaluator, tmp_path_factory) -> Path:
    """The layout sensitivity pass, measured once by the engine (its cache file, reused by copying)."""
    out = tmp_path_factory.mktemp("layout-sensitivity")
    new_state(evaluator, out, budget=1).sensitivity()
    return out / SENSITIVITY_FILE


def outputs_fed(model, node: str) -> set[str]:
    """Model outputs reachable forward from `node` (an independent BFS, not the strategy's code)."""
    graph_outputs = {o.name for o in model.model.graph.output}
    seen, queue, found = {node}, deque([node]), set()
    while queue:
        for tensor in model.nodes[queue.popleft()].output:
            if tensor in graph_outputs:
                found.add(tensor)
            for consumer in model.consumers.get(tensor, []):
                if consumer.name not in seen:
                    seen.add(consumer.name)
                    queue.append(consumer.name)
    return found


def cosines(candidate, outputs) -> dict[str, float]:
    return {o: candidate.scores.aggregate(o, COSINE) for o in outputs}


# --- discovery and a real evaluation --------------------------------------------------------------


def test_head_of_the_worst_output_feeds_only_it_and_raising_it_helps(evaluator, tmp_path):
    """On a base where the shared trunk is int16 and every level's tower int8 (the YoloP picture: the
    damage sits in the heads), the worst output's head is found and raising it repairs that output."""
    state = new_state(evaluator, tmp_path / "out", budget=10)
    model, outputs = state.model, evaluator.outputs
    fed = {n.name: outputs_fed(model, n.name) for n in model.model.graph.node}
    towers = {n for n, f in fed.items() if 0 < len(f) <= 2}
    trunk = [u.name for u in state.units if not set(u.nodes) & towers]
    int8, base = state.evaluate_units([[], trunk], "test")
    before = cosines(base, outputs)
    worst = min(outputs, key=before.get)
    assert worst in base.failing and len(base.failing) < len(outputs)
    producer = model.producers[worst].name

    heads = [r for r in discover(state.model, state.units, base.failing) if r.kind == "head" and worst in r.feeds]
    strict = next(r for r in heads if r.feeds == {worst})
    assert producer in strict.nodes
    assert all(fed[n] == {worst} for n in strict.nodes)
    # It starts right after the last node shared with another output.
    inputs = {p.name for n in strict.nodes for t in model.nodes[n].input if (p := model.producers.get(t))}
    assert inputs - strict.nodes and all(fed[n] - {worst} for n in inputs - strict.nodes)

    # The next head widens to the outputs sharing this level's tower (PicoDet: cls + reg of a level).
    wider = min((r for r in heads if r.feeds > {worst}), key=lambda r: len(r.feeds))
    assert strict.nodes < wider.nodes and len(wider.feeds) == 2
    assert all(fed[n] <= wider.feeds for n in wider.nodes)
    assert set(subgraph_nodes(model, list(wider.inputs), list(wider.outputs))) == wider.nodes

    on_strict, on_wider, wider_on_int8 = state.evaluate_units(
        [set(trunk) | strict.units, set(trunk) | wider.units, wider.units], "test"
    )
    after_strict, after_wider = cosines(on_strict, outputs), cosines(on_wider, outputs)
    print(
        f"\nworst output {worst} (trunk int16, towers int8; all-int8 {cosines(int8, outputs)[worst]:.4f}): "
        f"{before[worst]:.4f}; + strict head ({len(strict.units)} units) {after_strict[worst]:.4f}; "
        f"+ {wider.name} ({len(wider.units)} units) {after_wider[worst]:.4f}"
    )
    assert after_strict[worst] > before[worst]
    assert after_wider[worst] >= 0.99 and not set(wider.feeds) & set(on_wider.failing)
    # A head leaves every output it does not feed bit-identical (here on all-int8).
    for out in set(outputs) - wider.feeds:
        assert cosines(wider_on_int8, [out])[out] == cosines(int8, [out])[out]


def test_fork_join_blocks_are_real_branch_blocks(evaluator):
    model = evaluator.model
    blocks = fork_join_blocks(model, 30)
    assert blocks
    for starts, join in blocks:
        nodes = subgraph_nodes(model, starts, [join])
        assert len(nodes) <= 30 and join in nodes and set(starts) <= set(nodes)
        tensors = {t for s in starts for t in model.nodes[s].input}
        assert any({c.name for c in model.consumers[t]} == set(starts) for t in tensors)  # one fork
    sizes = sorted(len(subgraph_nodes(model, s, [j])) for s, j in blocks)
    assert sizes[-1] > 3  # more than the hardswish x * relu6(x + 3) diamonds (SE and channel-split blocks)


# --- the strategy ---------------------------------------------------------------------------------


def test_promotes_and_shrinks_the_head_of_a_local_failure(evaluator, sensitivity_cache, tmp_path):
    """Every unit int16 except the first level's tower (the nodes feeding only its cls and reg outputs):
    those two outputs fail, the rest pass. The strategy must find a region that repairs them."""
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(sensitivity_cache, out)
    state = new_state(evaluator, out, budget=30)
    model, outputs = state.model, evaluator.outputs
    first = outputs[0]
    fed = {n.name: outputs_fed(model, n.name) for n in model.model.graph.node}
    level = min((f for f in fed.values() if first in f and len(f) > 1), key=len)  # first level's cls + reg
    tower = {n for n, f in fed.items() if f and f <= level}
    kept_int8 = [u.name for u in state.units if set(u.nodes) & tower]
    rest = [u.name for u in state.units if u.name not in kept_int8]

    int8, int16, base = state.evaluate_units([[], [u.name for u in state.units], rest], "test")
    assert int16.passed and not int8.passed
    assert set(base.failing) == level, cosines(base, outputs)  # the failure is local to the tower
    strategy = Subgraph()
    view = SearchView(state, strategy)
    assert strategy.applies(view)
    strategy.run(view)

    notes = state.results.subgraph_search
    assert notes["base"] == base.index and notes["passed"]
    promoted = notes["promoted"]
    assert promoted and promoted[0].startswith(f"head_{first}")
    scored = notes["scored"]
    assert 0 < len(scored) <= 30 // 3
    for row in scored:  # what the notes say is what was evaluated
        candidate = state.candidates[row["candidate"]]
        assert candidate.failing == row["failing"] and candidate.shortfall == row["shortfall"]

    best = state.best
    assert best.passed and best.cost < int16.cost
    raised = set(state.raised_units(best))
    assert set(rest) <= raised
    lifted = raised & set(kept_int8)
    assert 0 < len(lifted) <= len(kept_int8)
    print(
        f"\nlocal failure {sorted(level)} at cost {base.cost:.3f}: promoted {promoted[0]}, "
        f"{len(lifted)}/{len(kept_int8)} tower units kept after shrinking, best cost {best.cost:.3f} "
        f"(all-int16 {int16.cost:.3f}); {len(scored)} scored, {state.used} evaluations"
    )
    recorded = state.results.subgraphs
    if lifted == set(kept_int8):  # stayed whole: recorded for subgraph_config, and the config round-trips
        assert len(recorded) == 1
        spec = {k: v for k, v in next(iter(recorded.values())).items() if k != "units"}
        config = to_quant_config(model, best.assignment, state.profile, {"head": spec})
        assert from_quant_config(model, config, state.profile) == best.assignment
    else:  # shrunk: nothing recorded, its units are plain node_config entries
        assert not recorded


def test_a_head_that_cannot_shrink_is_emitted_as_subgraph_config(evaluator, sensitivity_cache, tmp_path):
    """Targets at the all-int16 scores themselves: no unit of the failing tower can stay int8, so the
    promoted head stays whole, is recorded, and quant_config.json carries it as subgraph_config."""
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(sensitivity_cache, out)
    probe = new_state(evaluator, tmp_path / "probe", budget=1)
    everything = [u.name for u in probe.units]
    at16 = cosines(probe.evaluate_units([everything], "probe")[0], evaluator.outputs)
    target = Target(tuple(OutputTarget(o, COSINE, value - 1e-9) for o, value in at16.items()))
    state = make_state(evaluator, target, 30, out)
    model, first = state.model, evaluator.outputs[0]
    fed = {n.name: outputs_fed(model, n.name) for n in model.model.graph.node}
    level = min((f for f in fed.values() if first in f and len(f) > 1), key=len)
    tower_units = {u.name for u in state.units if any(fed[n] and fed[n] <= level for n in u.nodes)}
    state.evaluate_units([[], everything, set(everything) - tower_units], "test")
    result = run_search(state, [Subgraph()])
    write_outputs(result, out)

    recorded = state.results.subgraphs
    assert list(recorded) == state.results.subgraph_search["promoted"]
    name, spec = next(iter(recorded.items()))
    assert set(spec.units) == tower_units
    assert set(subgraph_nodes(model, spec.inputs, spec.outputs)) == {n for n, f in fed.items() if f and f <= level}
    config = json.loads((out / "quant_config.json").read_text())
    assert config["subgraph_config"] == {name: spec.config()}
    assert from_quant_config(model, config, state.profile) == result.winner.assignment
    print(f"\nkept whole: {name} ({len(tower_units)} units) -> subgraph_config {config['subgraph_config']}")


def test_search_baselines_subgraph_prune_on_layout(layout_workdir, sensitivity_cache, tmp_path):
    """all-int16 meets 0.99 everywhere; all-int8 is broken everywhere, so heads scored on it can't
    pass: the strategy must spend at most a third of the budget, promote nothing it cannot justify,
    and leave prune a passing config."""
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(sensitivity_cache, out)
    budget = 20
    result = api.search(
        layout_workdir, target=0.99, budget=budget, strategies=["baselines", "subgraph", "prune"], out=out,
        jobs=JOBS, num_samples=NUM_SAMPLES, sensitivity_samples=SENSITIVITY_SAMPLES,
    )  # fmt: skip
    state = result.state
    assert state.sensitivity_runs == 0  # the cache was used
    assert result.met and result.best.passed and state.used <= budget
    int8 = state.known(state.baselines["all-int8"])
    notes = state.results.subgraph_search
    assert notes["base"] == int8.index
    ours = [c for c in result.candidates if c.strategy == "subgraph"]
    assert 0 < len(ours) <= (budget - 2) // 3 + 1
    for row in notes["scored"]:
        candidate = state.candidates[row["candidate"]]
        assert candidate.failing == row["failing"] and candidate.shortfall == row["shortfall"]

    def justified(row: dict) -> bool:  # the strategy's rule, recomputed against all-int8 (the first round's base)
        fixed = set(int8.failing) - set(row["failing"])
        return row["shortfall"] < int8.shortfall and (bool(fixed) or row["shortfall"] <= 0.9 * int8.shortfall)

    assert notes["scored"]  # heads were really scored, so the checks below are not vacuous
    if notes["promoted"]:  # the first promotion was justified against the base
        assert justified(next(r for r in notes["scored"] if r["subgraph"] == notes["promoted"][0]))
    else:  # nothing promoted: then no scored region was justified
        assert not any(justified(r) for r in notes["scored"])
    for name in notes["promoted"]:  # every promotion is a real gain over all-int8
        row = next(r for r in notes["scored"] if r["subgraph"] == name)
        assert len(row["failing"]) < len(int8.failing) or row["shortfall"] <= 0.9 * int8.shortfall
    gains = [int8.shortfall - row["shortfall"] for row in notes["scored"]]
    print(
        f"\nsubgraph from all-int8 (shortfall {int8.shortfall:.3f}): {len(ours)} evaluations, best gain "
        f"{max(gains):.3f}, promoted {notes['promoted']}; winner cost {result.best.cost:.3f}"
    )
    config = json.loads((out / "quant_config.json").read_text())
    assert from_quant_config(state.model, config, state.profile) == result.best.assignment
    assert ("subgraph_config" in config) == any(
        set(spec.units) <= set(state.raised_units(result.best)) for spec in state.results.subgraphs.values()
    )


# --- subgraph specs in a quant_config -------------------------------------------------------------


def test_subgraph_config_raises_exactly_the_nodes_between(evaluator):
    model, profile = evaluator.model, get_profile("generic")
    order = [n.name for n in model.model.graph.node]
    # A chain of the stem: conv -> hardswish (Add, Clip, Mul, Div) -> conv.
    first, last = "p2o.Conv.1", "p2o.Conv.2"
    expected = set(order[order.index(first) : order.index(last) + 1])
    config = {"subgraph_config": {"stem": {"inputs": [first], "outputs": [last], "qtype": "int16"}}}
    assignment = from_quant_config(model, config, profile)
    raised_nodes = {n for cal, q in assignment.items() if q == "int16" for n, _ in model.calibration[cal].consumers}
    assert raised_nodes == {n for n in expected if _features(model, n)}
    for node in expected:  # as HMCT reads qtype: the feature inputs; weights follow their own nodes (int8)
        assert all(assignment[c.name] == "int16" for c in _features(model, node))
        assert all(assignment[c.name] == "int8" for c in model.input_calibrations(node) if c.tensor_type == "weight")

    # A fork/join block given by its two branch starts: both branches and the join, nothing else.
    starts, join = next((s, j) for s, j in fork_join_blocks(model, 30) if len(subgraph_nodes(model, s, [j])) > 3)
    block = set(subgraph_nodes(model, starts, [join]))
    config = {"subgraph_config": {"block": {"inputs": starts, "outputs": [join]}}}
    assignment = from_quant_config(model, config, profile)
    raised_nodes = {n for cal, q in assignment.items() if q == "int16" for n, _ in model.calibration[cal].consumers}
    assert raised_nodes == {n for n in block if _features(model, n)}
    branches = [set(subgraph_nodes(model, [s], [join])) for s in starts]
    assert set().union(*branches) == block  # the block is exactly its branches, each from a start to the join


def _features(model, node: str) -> list:
    return [c for c in model.input_calibrations(node) if c.tensor_type == "feature"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"inputs": ["p2o.Conv.1"], "outputs": ["no.such.node"]}, "unknown node 'no.such.node'"),
        ({"inputs": ["p2o.Conv.2"], "outputs": ["p2o.Conv.1"]}, "is not connected"),
    ],
)
def test_bad_subgraph_in_a_config_is_one_line(evaluator, spec, message):
    with pytest.raises(UserError) as error:
        from_quant_config(evaluator.model, {"subgraph_config": {"s": spec}}, get_profile("generic"))
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("subgraph", "message"),
    [
        ("head:p2o.Conv.1:no.such.node", "unknown node 'no.such.node'"),
        ("head:p2o.Conv.2:p2o.Conv.1", "is not connected"),
        ("head-without-nodes", "--subgraph 'head-without-nodes'"),
    ],
)
def test_bad_user_subgraph_is_refused_before_searching(layout_workdir, tmp_path, run_cli, subgraph, message):
    out = tmp_path / "out"
    with pytest.raises(UserError) as error:
        api.search(layout_workdir, budget=5, out=out, subgraphs=[subgraph], num_samples=NUM_SAMPLES)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (out / "quant_config.json").exists()
    code, stderr = run_cli("search", layout_workdir, "--subgraph", subgraph, "--out", out, "--budget", "5")
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and message in " ".join(stderr.split()), stderr
