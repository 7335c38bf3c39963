"""Cheaper candidates (issue 12): what a candidate evaluation reuses stays bit-exact with the exported model, and
one candidate at jobs 2 runs in this process over threads, its sessions created once."""

from __future__ import annotations

import numpy as np
import pytest

from autoprec.evaluate import Evaluator
from autoprec.evaluate.evaluator import _worker
from autoprec.evaluate.exported import score_exported
from autoprec.ir import CalibratedModel
from tests.test_core import mixed_assignment, run_onnx, spec_of
from tests.test_segments import own_evaluator


def test_a_candidate_run_again_reuses_its_session_and_equals_the_export(vad_workdir):
    evaluator = Evaluator(spec_of(vad_workdir, 4))
    simulator = evaluator.simulator
    model = CalibratedModel.load(vad_workdir / "calibrated_model.onnx")
    assignment = mixed_assignment(model)
    before = simulator.builds
    first = evaluator.evaluate(assignment, [0, 1])
    again = evaluator.evaluate(assignment, [2, 3])  # e.g. a held-out check of the same candidate
    assert simulator.builds == before + 1  # one onnxruntime session for both calls
    cached = evaluator.outputs_of(assignment, [0, 1, 2, 3])
    assert simulator.builds == before + 1
    exported = run_onnx(model.to_onnx(assignment), [evaluator.sample(i) for i in range(4)], evaluator.outputs)
    for got, want in zip(cached, exported):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)  # bit for bit, through the reused session
    on_export = score_exported(evaluator, assignment)
    for output in evaluator.outputs:
        for metric, values in on_export.values[output].items():
            np.testing.assert_array_equal(np.concatenate([first.values[output][metric], again.values[output][metric]]),
                                          values)  # fmt: skip


def test_other_assignments_get_their_own_sessions(vad_workdir):
    evaluator = Evaluator(spec_of(vad_workdir, 2))
    simulator = evaluator.simulator
    model = evaluator.model
    mixed = mixed_assignment(model)
    all_int8 = {name: "int8" for name in model.calibration}
    before = simulator.builds
    scores = [evaluator.evaluate(a) for a in (mixed, all_int8, mixed)]
    assert simulator.builds == before + 2  # the third call is the first assignment again
    cosines = [s.values[evaluator.outputs[0]]["cosine-similarity"] for s in scores]
    assert not np.array_equal(cosines[0], cosines[1])
    np.testing.assert_array_equal(cosines[0], cosines[2])


def test_a_batch_builds_the_next_session_while_one_runs_and_equals_the_export(magika_workdir):
    evaluator = Evaluator(spec_of(magika_workdir, 2))
    simulator = evaluator.simulator
    model = evaluator.model
    batch = [mixed_assignment(model), {n: "int8" for n in model.calibration}, {n: "int16" for n in model.calibration}]
    builds, prebuilt = simulator.builds, simulator.prebuilt
    scores = evaluator.evaluate_many(batch)
    assert simulator.builds == builds + 3
    assert simulator.prebuilt == prebuilt + 2  # the 2nd and 3rd were built while the one before them ran
    for assignment, got in zip(batch, scores):
        want = score_exported(evaluator, assignment)
        for output in evaluator.outputs:
            for metric, values in want.values[output].items():
                np.testing.assert_array_equal(got.values[output][metric], values)


@pytest.mark.parametrize("name", ["vad", "magika"])
def test_one_candidate_at_jobs_2_runs_here_over_threads_with_its_sessions_created_once(name, request, tmp_path):
    workdir = request.getfixturevalue(f"{name}_workdir")
    copies = []
    for jobs in (1, 2):  # each on a copy of the model: a worker of its own, no segment sessions cached by others
        (tmp_path / str(jobs)).mkdir()
        copies.append(own_evaluator(workdir, tmp_path / str(jobs), 4))
        copies[-1].jobs = jobs
    serial, threaded = copies
    model = serial.model
    mixed = mixed_assignment(model)
    neighbour = {**mixed, next(n for n in model.calibration if mixed[n] == "int16"): "int8"}  # a one-unit change
    for assignment in (mixed, neighbour):  # the first also runs the segment guard (its first sample alone)
        created, builds, executed, results = [], [], [], []
        for evaluator in (serial, threaded):
            simulator, local = evaluator.simulator, _worker(evaluator.spec)
            before = (simulator.segmenter.created, simulator.builds, local.executed)
            scores = evaluator.evaluate(assignment)
            results.append(scores.to_json())
            created.append(simulator.segmenter.created - before[0])
            builds.append(simulator.builds - before[1])
            executed.append(local.executed - before[2])
            want = score_exported(evaluator, assignment)
            for output in evaluator.outputs:
                for metric, values in want.values[output].items():
                    np.testing.assert_array_equal(scores.values[output][metric], values)
        assert results[0] == results[1]  # jobs 2 scores exactly as jobs 1
        assert builds == [1, 1] and executed == [4, 4]  # at jobs 2 too: one session, all 4 samples in this process
        assert created[1] == created[0] > 0  # its segment sessions created once, as at jobs 1
