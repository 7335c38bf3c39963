"""Segmented sessions (issue 12): candidates run as cached segments stay bit-exact with the exported model, a
one-unit change creates only the segments it touches, and what cannot be cut (or differs) runs whole."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.evaluate.builds import ProtoCache
from autoprec.evaluate.exported import score_exported
from autoprec.evaluate.segments import Plan, SegmentedSession, Segmenter
from autoprec.evaluate.simulator import Simulator
from autoprec.ir import FEATURE, CalibratedModel
from tests.test_core import mixed_assignment, run_onnx


def own_evaluator(workdir: Path, tmp_path: Path, samples: int = 2) -> Evaluator:
    """An evaluator with a worker of its own (a copy of the model): no sessions cached by other tests."""
    shutil.copy(workdir / "calibrated_model.onnx", tmp_path / "calibrated_model.onnx")
    return Evaluator(EvalSpec(str(tmp_path / "calibrated_model.onnx"), str(workdir / "calibration_data"), samples))


def inner_node(evaluator: Evaluator, plan: Plan, segment: int) -> str:
    """A feature calibration node whose Q/DQ pair lies inside `segment` of `plan` (its integer tensor is no cut)."""
    graph = evaluator.simulator.build({n: "int8" for n in evaluator.model.calibration}).proto.graph
    names = {graph.node[k].name for k in plan.segments[segment].nodes}
    cut = plan.cut_types
    inside = [
        name for name, cal in evaluator.model.calibration.items()
        if cal.tensor_type == FEATURE and f"{name}/QuantizeLinear" in names and f"{name}/quantized" not in cut
    ]  # fmt: skip
    return inside[0]


def cut_node(evaluator: Evaluator, plan: Plan) -> str:
    """A calibration node whose integer tensor is a cut tensor of `plan` (raising it changes a cut's dtype)."""
    return next(name for name in evaluator.model.calibration if f"{name}/quantized" in plan.cut_types)


def assert_equals_export(evaluator: Evaluator, assignment: dict[str, str], indices: list[int]) -> None:
    """Outputs (bit for bit) and scores (exactly) of `assignment` equal its exported QDQ model's."""
    simulated = evaluator.outputs_of(assignment, indices)
    exported = run_onnx(evaluator.model.to_onnx(assignment), [evaluator.sample(i) for i in indices], evaluator.outputs)
    for got, want in zip(simulated, exported):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    scores, on_export = evaluator.evaluate(assignment, indices), score_exported(evaluator, assignment, indices)
    for output in evaluator.outputs:
        for metric, values in on_export.values[output].items():
            np.testing.assert_array_equal(scores.values[output][metric], values)


@pytest.mark.parametrize("name", ["vad", "magika"])
def test_segmented_candidates_equal_the_whole_graph_and_the_export(name, request, tmp_path):
    evaluator = own_evaluator(request.getfixturevalue(f"{name}_workdir"), tmp_path)
    model, simulator = evaluator.model, evaluator.simulator
    int8 = {n: "int8" for n in model.calibration}
    session = simulator.session(int8)
    assert isinstance(session, SegmentedSession) and len(session.parts) >= 2
    at_cut = {**int8, cut_node(evaluator, session.plan): "int16"}  # an int16 tensor passed between segments
    for assignment in (int8, at_cut, {n: "int16" for n in model.calibration}, mixed_assignment(model)):
        assert_equals_export(evaluator, assignment, [0, 1])
        assert isinstance(simulator.session(assignment), SegmentedSession)
    assert session.plan.verified is True  # the guard compared the first run with the whole graph's


def test_a_one_unit_change_creates_only_the_segments_it_touches(vad_workdir, tmp_path):
    evaluator = own_evaluator(vad_workdir, tmp_path)
    simulator, segmenter = evaluator.simulator, evaluator.simulator.segmenter
    base = {n: "int16" for n in evaluator.model.calibration}
    evaluator.evaluate(base)
    plan = simulator.session(base).plan
    segments = len(plan.segments)
    assert segments >= 4
    for segment in (1, segments - 1):
        changed = {**base, inner_node(evaluator, plan, segment): "int8"}
        created, reused = segmenter.created, segmenter.reused
        evaluator.evaluate(changed)
        assert segmenter.created == created + 1  # only the segment holding the changed Q/DQ pair is new
        assert segmenter.reused == reused + segments - 1
        assert_equals_export(evaluator, changed, [0, 1])
    at_cut = {**base, cut_node(evaluator, plan): "int8"}  # the segment that makes the cut tensor and the reader(s)
    created = segmenter.created
    evaluator.evaluate(at_cut)
    assert 2 <= segmenter.created - created < segments
    assert_equals_export(evaluator, at_cut, [0, 1])


def test_an_uncuttable_structure_runs_whole(magika_workdir, tmp_path):
    evaluator = own_evaluator(magika_workdir, tmp_path)
    float32 = {n: "float32" for n in evaluator.model.calibration}  # no Q/DQ: no clean cut
    session = evaluator.simulator.session(float32)
    assert isinstance(session, ort.InferenceSession)
    assert_equals_export(evaluator, float32, [0, 1])


def test_the_guard_runs_a_structure_whole_when_its_segments_differ(vad_workdir, caplog, tmp_path):
    evaluator = own_evaluator(vad_workdir, tmp_path)
    simulator = evaluator.simulator
    segmenter = Segmenter(simulator.open)  # its own plans: this structure is not verified yet
    base = {n: "int8" for n in evaluator.model.calibration}
    session = segmenter.session(simulator.build(base))
    last = len(session.plan.segments) - 1
    other = segmenter.session(simulator.build({**base, inner_node(evaluator, session.plan, last): "int16"}))
    session.parts[last] = other.parts[last]  # a last segment that computes something else than the whole graph
    with caplog.at_level(logging.DEBUG, logger="autoprec.evaluate.segments"):
        outputs = session.run(evaluator.outputs, evaluator.sample(0))
    assert session.plan.verified is False and "runs whole" in caplog.text
    exported = run_onnx(evaluator.model.to_onnx(base), [evaluator.sample(0)], evaluator.outputs)[0]
    for a, b in zip(outputs, exported):
        np.testing.assert_array_equal(a, b)  # the whole graph's outputs, not the segments'
    again = segmenter.session(simulator.build({**base, inner_node(evaluator, session.plan, last): "int16"}))
    assert isinstance(again, ort.InferenceSession)  # the structure now runs whole


def test_layout_segments_equal_the_export(layout_workdir, tmp_path):
    evaluator = own_evaluator(layout_workdir, tmp_path)
    simulator, segmenter = evaluator.simulator, evaluator.simulator.segmenter
    names = sorted(evaluator.model.calibration)
    half = {n: ("int8", "int16")[k % 2] for k, n in enumerate(names)}
    assert_equals_export(evaluator, half, [0, 1])
    plan = simulator.session(half).plan
    assert plan.verified is True and len(plan.segments) >= 4
    node = inner_node(evaluator, plan, len(plan.segments) // 2)
    changed = {**half, node: "int8" if half[node] == "int16" else "int16"}
    created = segmenter.created
    assert_equals_export(evaluator, changed, [0, 1])
    assert segmenter.created == created + 1


@pytest.mark.parametrize("name", ["vad", "magika"])
def test_a_patched_build_equals_a_fresh_one(name, request):
    model = CalibratedModel.load(request.getfixturevalue(f"{name}_workdir") / "calibrated_model.onnx")
    simulator, fresh = Simulator(model), Simulator(model)
    int8, mixed = {n: "int8" for n in model.calibration}, mixed_assignment(model)
    one = next(n for n in model.calibration if mixed[n] == "int8")
    float16 = {**int8, one: "float16"}  # other nodes: not patched
    sequence = [int8, {n: "int16" for n in model.calibration}, mixed, {**mixed, one: "int16"}, mixed, float16, int8]
    patched = simulator._protos.patched
    for assignment in sequence:
        got = simulator.build(assignment)
        want = fresh.build(assignment)
        fresh._protos = ProtoCache(model)  # always built by to_onnx
        assert got.proto.SerializeToString() == want.proto.SerializeToString()
        assert got.in_memory == want.in_memory
    assert simulator._protos.patched == patched + 3  # int16, the one-node change of mixed, back to mixed
