"""HMCT's own calibrated model, in and out.

A hand-built HMCT model (tests/hmct_fixtures.py: per tensor, per channel, asymmetric, int16, legacy
`bits`, float16, float32, switch OFF, grouped ConvTranspose, a node on a graph output) is imported and
simulated; the simulation must equal, bit for bit, an onnxruntime run of the same graph with each
HzCalibration replaced by its Q/DQ (or cast) equivalent. Raising recomputes scales as HMCT does;
export writes exactly what was searched and reads back identically. The config means what HMCT
reads. A real search inside an HMCT-style model_output folder (silero VAD converted to HzCalibration
form) meets its target and writes both hand-off forms, whose numbers are the ones the search reported.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hmct_fixtures import build, kernel_equivalent, samples
from onnx import helper

from autoprec.errors import UserError
from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.evaluate.simulator import Simulator, session_options
from autoprec.hardware import get_profile
from autoprec.ir import CalibratedModel
from autoprec.ir.hmct_attrs import read_attributes
from autoprec.ir.hmct_export import to_hmct
from autoprec.ir.hmct_import import from_hmct
from autoprec.quant_config import from_quant_config, to_quant_config

OUTPUTS = ["c3_calibrated", "c1"]
# searchable nodes of the fixture: (tensor type, qtype, per-channel axis, symmetric)
EXPECTED = {
    "x_HzCalibration": ("feature", "int8", None, True),
    "w1_HzCalibration": ("weight", "int8", 0, True),
    "r1_HzCalibration": ("feature", "int8", None, False),
    "w2_HzCalibration": ("weight", "int16", 0, True),
    "c2_HzCalibration": ("feature", "int16", None, True),  # legacy bits=16
    "wt_HzCalibration": ("weight", "int8", 1, True),  # grouped ConvTranspose: 4 scales on an axis of 2
    "m1_HzCalibration": ("feature", "int16", None, True),
    "w3_HzCalibration": ("weight", "int8", 0, True),
    "c3_HzCalibration": ("feature", "int8", None, True),  # on a graph output
}
GENERIC = get_profile("generic")
CHANGES = {"x_HzCalibration": "int16", "w1_HzCalibration": "int16", "r1_HzCalibration": "int16",
           "w2_HzCalibration": "int8", "c2_HzCalibration": "int8", "wt_HzCalibration": "int16"}  # fmt: skip


@pytest.fixture
def hmct_file(tmp_path):
    path = tmp_path / "calibrated_model.onnx"
    onnx.save(build(), path)
    return path


def run_ort(model: onnx.ModelProto, feeds: list[dict]) -> list[list[np.ndarray]]:
    session = ort.InferenceSession(model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    return [session.run(OUTPUTS, feed) for feed in feeds]


def run_sim(model: CalibratedModel, assignment: dict | None, feeds: list[dict]) -> list[list[np.ndarray]]:
    session = Simulator(model).session(assignment)
    return [session.run(OUTPUTS, feed) for feed in feeds]


def assert_bit_exact(a: list[list[np.ndarray]], b: list[list[np.ndarray]]) -> None:
    for sample_a, sample_b in zip(a, b, strict=True):
        for x, y in zip(sample_a, sample_b, strict=True):
            assert x.dtype == y.dtype and np.array_equal(x, y), np.abs(x - y).max()


def test_import_reads_every_attribute_case(hmct_file):
    model = CalibratedModel.load(hmct_file)
    got = {n: (c.tensor_type, c.qtype, c.axis, c.symmetric) for n, c in model.calibration.items()}
    assert got == EXPECTED  # float16, float32 and switch OFF nodes are not search nodes
    assert not any(n.op_type == "HzCalibration" for n in model.model.graph.node)
    assert model.calibration["c3_HzCalibration"].consumers == [("c3_HzCalibration/output", 0)]
    assert [n for n, c in model.calibration.items() if c.folded] == ["c3_HzCalibration"]  # never raised
    params = model.calibration["wt_HzCalibration"].quant_params()
    assert params.scale.shape == (4,)  # Cout * g scales kept, expanded per group when quantizing
    r1 = model.calibration["r1_HzCalibration"]
    assert (float(r1.rmin), float(r1.rmax)) == (0.0, 4.0)
    assert int(r1.quant_params().zero_point) == 127 - round(4.0 / float(np.float32(4.0 / 255)))


def test_simulation_equals_the_kernel_bit_for_bit(hmct_file):
    """Each HzCalibration as its Q/DQ (or cast) equivalent in onnxruntime == autoprec's simulation."""
    original = onnx.load(hmct_file)
    model = CalibratedModel.load(hmct_file)
    feeds = samples(3)
    assert_bit_exact(run_sim(model, model.assignment(), feeds), run_ort(kernel_equivalent(original), feeds))
    for assignment in (model.assignment(), {**model.assignment(), **CHANGES}):  # and its QDQ export, grouped too
        assert_bit_exact(run_sim(model, assignment, feeds), run_ort(model.to_onnx(assignment), feeds))
    # the float reference: every search node passing through (float16 stays its cast: the search never changes it)
    passing = onnx.load(hmct_file)
    for node in passing.graph.node:
        if node.name in model.calibration:
            node.attribute.append(helper.make_attribute("switch", "OFF"))
    assert_bit_exact(run_sim(model, None, feeds), run_ort(kernel_equivalent(passing), feeds))
    assert not np.array_equal(run_sim(model, None, feeds)[0][0], run_ort(kernel_equivalent(original), feeds)[0][0])


def test_raise_recomputes_scales_and_export_is_what_was_searched(hmct_file, tmp_path):
    original = onnx.load(hmct_file)
    model = CalibratedModel.load(hmct_file)
    assignment = {**model.assignment(), **CHANGES}
    exported = to_hmct(original, model, assignment)
    before = {n.name: read_attributes(n) for n in original.graph.node if n.op_type == "HzCalibration"}
    after = {n.name: read_attributes(n) for n in exported.graph.node if n.op_type == "HzCalibration"}
    assert set(before) == set(after) and len(exported.graph.node) == len(original.graph.node)
    for name, attrs in after.items():
        old = before[name]
        changed = {k for k in set(attrs) | set(old) if attrs.get(k) != old.get(k)}
        if name not in CHANGES:
            assert not changed, name
            continue
        assert changed <= {"qtype", "bits", "scales", "zero_point"}, (name, changed)
        bits = 16 if CHANGES[name] == "int16" else 8
        assert attrs.get("qtype", f"int{attrs.get('bits')}") == CHANGES[name]
        if name != "r1_HzCalibration":  # symmetric: threshold / (2^(N-1) - 1)
            expected = (np.asarray(old["thresholds"], np.float64) / (2 ** (bits - 1) - 1)).astype(np.float32)
            assert np.array_equal(np.asarray(attrs["scales"], np.float32), expected), name
    assert "bits" in after["c2_HzCalibration"] and "qtype" not in after["c2_HzCalibration"]  # legacy form kept
    with pytest.raises(UserError, match="no HzCalibration form"):  # HMCT's int16-ec encoding is not public
        to_hmct(original, model, {"w1_HzCalibration": "ec"})
    floats = to_hmct(original, model, {"x_HzCalibration": "float16"})  # a float qtype: a fixed node on read-back
    assert "x_HzCalibration" not in from_hmct(floats).calibration
    r1_scale = np.float32((4.0 - 0.0) / 65535)
    assert attrs_equal(after["r1_HzCalibration"]["scales"], [r1_scale])
    assert after["r1_HzCalibration"]["zero_point"] == [int(32767 - np.round(4.0 / np.float64(r1_scale)))]

    feeds = samples(2)  # HMCT compiles exactly what was simulated
    assert_bit_exact(run_sim(model, assignment, feeds), run_ort(kernel_equivalent(exported), feeds))
    back = from_hmct(exported)  # import -> export -> import: identity on qtypes, scales and thresholds
    assert back.assignment() == assignment
    for name, cal in back.calibration.items():
        mine, theirs = model.calibration[name], cal
        assert np.array_equal(mine.rmin, theirs.rmin) and np.array_equal(mine.rmax, theirs.rmax)
        for qtype in ("int8", "int16"):
            p, q = mine.quant_params(qtype if name in CHANGES else None), theirs.quant_params(qtype)
            if name in CHANGES or qtype == mine.qtype:
                assert np.array_equal(p.scale, q.scale) and np.array_equal(p.zero_point, q.zero_point), name


def attrs_equal(a: list[float], b: list) -> bool:
    return np.array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


@pytest.mark.parametrize(
    "node, attrs, message",
    [
        ("x_HzCalibration", {"qtype": "int16-ec"}, "qtype 'int16-ec' is not supported"),
        ("x_HzCalibration", {"quant_attrs": 69905 | 0x2}, "power-of-two"),
        ("x_HzCalibration", {"constant": 0}, "still being calibrated"),
        ("x_HzCalibration", {"scales": [0.0]}, "finite and positive"),
        ("r1_HzCalibration", {"thresholds": [0.0, 1.0, 2.0, 3.0]}, "asymmetric thresholds"),
        ("w1_HzCalibration", {"thresholds": [1.0, 2.0]}, "2 thresholds but 8 scales"),
        ("x_HzCalibration", {"quant_attrs": 139537}, "weight node on a computed tensor"),
    ],
)
def test_what_autoprec_cannot_reproduce_is_a_one_line_error(node, attrs, message, tmp_path, run_cli):
    model = build()
    target = next(n for n in model.graph.node if n.name == node)
    for key, value in attrs.items():
        for old in [a for a in target.attribute if a.name == key]:
            target.attribute.remove(old)
        target.attribute.append(helper.make_attribute(key, value))
    (tmp_path / "m").mkdir()
    onnx.save(model, tmp_path / "m" / "calibrated_model.onnx")
    with pytest.raises(UserError, match=message):
        CalibratedModel.load(tmp_path / "m" / "calibrated_model.onnx")
    if "int16-ec" in str(attrs):
        code, stderr = run_cli("baseline", tmp_path / "m")
        assert code == 2 and len(stderr.strip().splitlines()) == 1 and message in stderr


def test_config_means_what_hmct_reads(hmct_file):
    model, profile = CalibratedModel.load(hmct_file), get_profile("generic")
    # qtype on a node: its feature inputs only; the weight follows its own calibration node
    assignment = from_quant_config(model, {"node_config": {"conv1": {"qtype": "int16"}}}, profile)
    assert {n for n, q in assignment.items() if q == "int16"} == {"x_HzCalibration"}
    assignment = from_quant_config(model, {"model_config": {"all_node_type": "int16"}}, profile)
    features = {n for n, e in EXPECTED.items() if e[0] == "feature"} - {"c3_HzCalibration"}  # c3: on an output
    assert {n for n, q in assignment.items() if q == "int16"} == features
    base = {n: "int8" for n in model.calibration}
    for changes, entry in [
        ({"x_HzCalibration": "int16", "w1_HzCalibration": "int16"}, {"qtype": "int16", "input1": "int16"}),
        ({"w1_HzCalibration": "int16"}, {"input1": "int16"}),
        ({"x_HzCalibration": "int16"}, {"qtype": "int16"}),
    ]:
        config = to_quant_config(model, {**base, **changes}, profile)
        assert config["node_config"] == {"conv1": entry}
        assert from_quant_config(model, config, profile) == {**base, **changes}


def test_search_inside_an_hmct_folder_writes_both_hand_offs(vad_workdir, tmp_path, run_cli):
    """The no-HMCT demo path: a QDQ calibrated model -> HMCT form -> search there -> both hand-off forms."""
    folder, handoff = tmp_path / "model_output", tmp_path / "handoff"
    model_file = folder / "vad_calibrated_model.onnx"  # HMCT names it <output_model_file_prefix>_calibrated_model
    code, stderr = run_cli("export", vad_workdir, "--format", "hmct", "-o", model_file)
    assert code == 0, stderr
    shutil.copytree(vad_workdir / "calibration_data", folder / "calibration_data")
    qdq = Evaluator(EvalSpec(str(vad_workdir / "calibrated_model.onnx"), str(vad_workdir / "calibration_data")))
    converted = Evaluator(EvalSpec(str(model_file), str(folder / "calibration_data")))
    assert converted.model.settings["method"] == "max"  # how autoprec calibrated, as HMCT's cali_attrs
    all8 = [{n: "int8" for n in e.model.calibration} for e in (qdq, converted)]
    assert len(all8[0]) == len(all8[1])  # the conversion keeps autoprec's exact scales: identical outputs
    for sample_a, sample_b in zip(qdq.outputs_of(all8[0], [0, 1]), converted.outputs_of(all8[1], [0, 1])):
        assert all(np.array_equal(a, b) for a, b in zip(sample_a, sample_b, strict=True))

    for command in (["baseline", "--json"], ["sensitivity", "--json", "--num-samples", "1"]):
        proc = run_cli(*command, cwd=folder)
        assert proc[0] == 0 and json.loads(proc.stdout), proc[1]
    # 0.85: all-int16 meets it, so the winner has no float16 (HMCT imports a float16 node as a fixed cast)
    code, stderr = run_cli("search", "--target", 0.85, "--budget", 12, "--quiet", cwd=folder)
    assert code == 0, stderr
    config_path = folder / "autoprec_out" / "quant_config.json"
    result = json.loads((folder / "autoprec_out" / "result.json").read_text())
    assert result["meets_target"] and result["winner"]["entries"] > 0
    code, stderr = run_cli("export", "--config", config_path, "-o", handoff / "calibrated_model.onnx", cwd=folder)
    assert code == 0, stderr
    assert json.loads((handoff / "quant_config.json").read_text()) == json.loads(config_path.read_text())
    proc = run_cli("evaluate", "--config", handoff / "quant_config.json", "--target", 0.85, "--json", cwd=folder)
    assert proc[0] == 0 and json.loads(proc.stdout)["meets_target"], proc[1]
    # the rewritten calibrated model, as HMCT compiles it (its own qtypes), gives the numbers the search reported
    shutil.copytree(folder / "calibration_data", handoff / "calibration_data")
    tuned = Evaluator(EvalSpec(str(handoff / "calibrated_model.onnx"), str(handoff / "calibration_data")))
    assert tuned.model.assignment() == from_quant_config(converted.model, json.loads(config_path.read_text()), GENERIC)
    scores = tuned.evaluate(tuned.model.assignment())
    for output, row in result["winner"]["outputs"].items():
        assert scores.aggregate(output, "cosine-similarity") == row["value"]


def test_unnamed_nodes_get_the_same_names_on_import_and_export():
    model = build()
    for node in model.graph.node:
        node.name = ""
    imported = from_hmct(model)
    raised = {name: "int16" for name, cal in imported.calibration.items() if not cal.folded}
    assert from_hmct(to_hmct(model, imported, raised)).assignment() == {**imported.assignment(), **raised}
