"""Every way a user's input can be wrong: one-line error on stderr, exit code 2, nothing written.

Each case runs the real command line (`python -m autoprec.cli`) in a subprocess on a real model
(silero VAD or magika) with one thing broken, and checks the folder it ran in is byte-for-byte
unchanged afterwards.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from autoprec import api, demo
from autoprec.errors import UserError
from autoprec.hardware import get_profile

PREFIX = "autoprec: error: "


def snapshot(root: Path) -> dict[str, str]:
    """relative path -> sha256 of the file (or 'dir') for everything under `root`."""
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def vad_model(root: Path) -> Path:
    target = root / "vad.onnx"
    shutil.copyfile(demo.fetch_model("vad"), target)
    return target


def vad_data(root: Path, request) -> Path:
    target = root / "data"
    shutil.copytree(request.getfixturevalue("demo_data")("vad"), target)
    return target


def magika_data(root: Path, request) -> Path:
    target = root / "data"
    shutil.copytree(request.getfixturevalue("demo_data")("magika"), target)
    return target


def calibrate_args(model: Path, data: Path, *extra: str) -> list[str]:
    return ["calibrate", str(model), "--data", str(data), "-o", str(model.parent / "out"), *extra]


@pytest.fixture(scope="session")
def vad_search(vad_workdir, tmp_path_factory) -> Path:
    """The output folder of a short search on VAD."""
    out = tmp_path_factory.mktemp("vad-search") / "out"
    api.search(vad_workdir, target=0.85, budget=6, out=out, report=False)
    return out


def edited_search(root: Path, request, name: str, text: str) -> Path:
    """A copy of the VAD search's folder with its file `name` replaced by `text` (a hand edit)."""
    out = root / "search"
    shutil.copytree(request.getfixturevalue("vad_search"), out)
    (out / name).write_text(text)
    return out


def profile_args(root: Path, request, profile: str) -> list:
    work = root / "work"
    shutil.copytree(request.getfixturevalue("vad_workdir"), work)
    return ["baseline", work, "--profile", profile]


# --- the cases: each prepares `root` and returns (argv, regex the error must match) ------------


def case_model_missing(root, request):
    return calibrate_args(root / "nosuch.onnx", vad_data(root, request)), r"nosuch\.onnx: no such file"


def case_model_is_folder(root, request):
    folder = root / "model.onnx"
    folder.mkdir()
    return calibrate_args(folder, vad_data(root, request)), r"model\.onnx: is a folder"


def case_text_renamed_onnx(root, request):
    fake = root / "notes.onnx"
    fake.write_text("These are my notes, not a model.\nSecond line: conv weights are in the other file.\n")
    return calibrate_args(fake, vad_data(root, request)), r"notes\.onnx: not (a readable ONNX|an ONNX) model"


def case_truncated_onnx(root, request):
    data = demo.fetch_model("vad").read_bytes()
    cut = root / "vad.onnx"
    cut.write_bytes(data[: len(data) // 2])
    return calibrate_args(cut, vad_data(root, request)), r"vad\.onnx: not (a readable ONNX|an ONNX) model"


def case_external_data_escapes(root, request):
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1, 4])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "16")):
        weight.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
        "evil",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = root / "models" / "evil.onnx"
    path.parent.mkdir()
    path.write_bytes(model.SerializeToString())
    data = root / "data"
    (data / "x").mkdir(parents=True)
    np.save(data / "x" / "0.npy", np.ones((1, 4), dtype=np.float32))
    return calibrate_args(path, data), r"external data '\.\./\.\./etc/passwd'.*outside the model's folder"


def case_data_missing_input(root, request):
    data = vad_data(root, request)
    shutil.rmtree(data / "c")
    return calibrate_args(vad_model(root), data), r"no folder for model input 'c'"


def case_wrong_shape(root, request):
    data = vad_data(root, request)
    np.save(data / "h" / "1.npy", np.zeros((1, 1, 64), dtype=np.float32))
    expected = r"sample 1 of input 'h' has shape \[1, 1, 64\]; the model wants \[1x1x128\]"
    return calibrate_args(vad_model(root), data), expected


def case_wrong_dtype(root, request):
    data = magika_data(root, request)
    tokens = np.load(data / "bytes" / "0.npy")
    np.save(data / "bytes" / "0.npy", tokens.astype(np.float32) / 256)
    model = root / "magika.onnx"
    shutil.copyfile(demo.fetch_model("magika"), model)
    return calibrate_args(model, data), r"input 'bytes' has dtype float32, the model wants integer int32"


def case_nan_in_data(root, request):
    data = vad_data(root, request)
    audio = np.load(data / "input" / "2.npy")
    audio[5, 100] = np.nan
    np.save(data / "input" / "2.npy", audio)
    return calibrate_args(vad_model(root), data), r"sample 2 of input 'input' contains NaN or Inf"


def case_inf_in_data(root, request):
    data = vad_data(root, request)
    audio = np.load(data / "input" / "0.npy")
    audio[0, 0] = -np.inf
    np.save(data / "input" / "0.npy", audio)
    return calibrate_args(vad_model(root), data), r"sample 0 of input 'input' contains NaN or Inf"


def case_float64_beyond_float32(root, request):
    data = vad_data(root, request)
    audio = np.load(data / "input" / "1.npy").astype(np.float64)
    audio[0, 3] = 1e300  # finite in float64, Inf in the model's float32
    np.save(data / "input" / "1.npy", audio)
    expected = r"sample 1 of input 'input' has values beyond float32's range \(1e\+300\); scale or clip them$"
    return calibrate_args(vad_model(root), data), expected


def case_holdout_beyond_float32(root, request):
    work = root / "work"
    shutil.copytree(request.getfixturevalue("vad_workdir"), work)
    held = vad_data(root, request)
    audio = np.load(held / "input" / "0.npy").astype(np.float64)
    audio[0, 0] = -1e39
    np.save(held / "input" / "0.npy", audio)
    args = ["search", str(work), "--holdout", str(held), "--out", str(root / "out"), "--quiet"]
    return args, r"data: sample 0 of input 'input' has values beyond float32's range \(-1e\+39\)"


def case_int64_beyond_int32(root, request):
    data = magika_data(root, request)
    tokens = np.load(data / "bytes" / "0.npy").astype(np.int64)
    tokens[0, 0] = 1 << 40
    np.save(data / "bytes" / "0.npy", tokens)
    model = root / "magika.onnx"
    shutil.copyfile(demo.fetch_model("magika"), model)
    return calibrate_args(model, data), r"sample 0 of input 'bytes' has values beyond int32's range \(1099511627776\)"


def case_sample_renamed(root, request):
    work = root / "work"
    shutil.copytree(request.getfixturevalue("vad_workdir"), work)
    data = vad_data(root, request)
    (data / "input" / "2.npy").rename(data / "input" / "99.npy")  # would pair input 3 with h 2, and so on
    args = ["search", str(work), "--data", str(data), "--out", str(root / "out"), "--quiet"]
    return args, r"data: sample file 2\.npy is in h/ but not in input/; give every input folder the same sample files"


def case_sample_not_numbered(root, request):
    data = vad_data(root, request)
    (data / "h" / "1.npy").rename(data / "h" / "one.npy")
    return calibrate_args(vad_model(root), data), r"data/h/one\.npy: not a sample file name; name an input's samples"


def case_empty_data_folder(root, request):
    data = root / "data"
    data.mkdir()
    return calibrate_args(vad_model(root), data), r"data: (no folder for model input|holds no samples)"


def case_input_folders_without_samples(root, request):
    data = root / "data"
    for name in ("input", "h", "c"):
        (data / name).mkdir(parents=True)
    return calibrate_args(vad_model(root), data), r"data: holds no samples"


def case_pickled_npy(root, request):
    data = vad_data(root, request)
    objects = np.empty(2, dtype=object)
    objects[0], objects[1] = {"payload": 1}, [1, 2, 3]
    np.save(data / "h" / "0.npy", objects, allow_pickle=True)
    return calibrate_args(vad_model(root), data), r"h/0\.npy: holds pickled objects"


def case_data_path_missing(root, request):
    return calibrate_args(vad_model(root), root / "nodata"), r"nodata: no such data file or folder"


def case_qdq_free_model_to_baseline(root, request):
    args = ["baseline", str(vad_model(root)), "--data", str(vad_data(root, request)), "--json"]
    return args, r"vad\.onnx: no calibration nodes"


def case_unknown_profile(root, request):
    # a complete, valid calibrated workdir: only the profile is wrong
    work = root / "work"
    shutil.copytree(request.getfixturevalue("vad_workdir"), work)
    return ["baseline", str(work), "--profile", "nosuchchip"], r"unknown hardware profile 'nosuchchip'"


def case_profile_wrong_type(root, request):
    (root / "chip.json").write_text('{"name": "chip", "forced_int8": {}, "asymmetric": "no"}')
    expected = r"chip\.json: field 'asymmetric' must be true or false, got \"no\"$"
    return profile_args(root, request, "chip.json"), expected


def case_profile_file_missing(root, request):
    expected = r"nosuch\.json: no such file; pass a hardware profile \.json file, or one of generic"
    return profile_args(root, request, "nosuch.json"), expected


def case_report_result_edited(root, request):
    out = edited_search(root, request, "result.json", '{"meets_target": "x"}')
    expected = r"search: unreadable search results \(result\.json: no valid 'meets_target'\); run the search again"
    return ["report", out], expected


def case_report_no_candidates(root, request):
    out = edited_search(root, request, "candidates.json", "[]")
    return ["report", out], r"search: unreadable search results \(candidates\.json: no candidates\)"


def case_report_candidate_edited(root, request):
    out = edited_search(root, request, "candidates.json", '[{"index": 0, "strategy": "baselines"}]')
    return ["report", out], r"unreadable search results \(candidates\.json: candidate 0: no valid 'passed'\)"


def case_report_a_file(root, request):
    (root / "afile").write_text("my notes\n")
    return ["report", root / "afile"], r"afile: is a file, not a folder; give the folder a search wrote \(its --out\)$"


def case_demo_output_holds_user_files(root, request):
    mine = root / "work" / "vad" / "model_output" / "notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("keep me\n")
    expected = (  # and no --force: the demo has none
        r"model_output holds files autoprec did not write \(notes\.txt\); the demo replaces only its own files "
        r"there: move them away, or choose another -o folder$"
    )
    return ["demo", "vad", "-o", root / "work"], expected


def case_output_exists(root, request):
    out = root / "out"
    out.mkdir()
    (out / "calibrated_model.onnx").write_bytes(b"my previous result")
    (out / "notes.txt").write_text("keep me\n")
    return calibrate_args(vad_model(root), vad_data(root, request)), r"out exists; pass --force"


def case_demo_target_impossible(root, request):
    # refused before the demo fetches, calibrates or writes anything (the check test_bad_input_fails_cleanly makes)
    return ["demo", "vad", "--target", "1.5"], r"target 1\.5 for every output is impossible: cosine lies in \(0, 1\]"


def case_demo_budget_0(root, request):
    return ["demo", "magika", "--budget", "0"], r"--budget must be at least 1 evaluation, got 0"


def case_export_search_missing(root, request):
    args = ["export", "--search", root / "nosuch", "-o", root / "z.onnx"]
    return args, r"nosuch: no such folder; give the folder a search wrote \(its --out\)"


def case_export_search_not_a_search(root, request):
    (root / "notasearch").mkdir()
    args = ["export", "--search", root / "notasearch", "-o", root / "z.onnx"]
    return args, r"notasearch: holds no search results \(no result\.json\)"


# --- output paths: a file in the way, a folder that takes no new files (/proc), a folder named as the file ----------

UNDER_FILE = r"cannot create \S*afile/x: \S*afile is a file; choose another output folder$"
IS_FILE = r"\S*afile is a file; choose another output folder$"
IN_PROC = r"cannot (create|write) /proc/x(\.onnx)?: (/proc takes no new files|permission denied)"


def a_file(root: Path) -> Path:
    path = root / "afile"
    path.write_text("my notes\n")
    return path


def proc() -> Path:
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc")
    return Path("/proc/x")


def vad_work(root: Path, request) -> Path:
    work = root / "work"
    shutil.copytree(request.getfixturevalue("vad_workdir"), work)
    return work


def empty_config(root: Path) -> Path:
    config = root / "quant_config.json"
    config.write_text("{}")  # every unit at the model's own qtype
    return config


def case_calibrate_out_under_file(root, request):
    args = ["calibrate", vad_model(root), "--data", vad_data(root, request), "-o", a_file(root) / "x"]
    return args, UNDER_FILE


def case_calibrate_out_in_proc(root, request):
    return ["calibrate", vad_model(root), "--data", vad_data(root, request), "-o", proc()], IN_PROC


def case_demo_data_out_is_file(root, request):
    return ["demo-data", "vad", "--num-samples", "2", "-o", a_file(root)], IS_FILE


def case_demo_data_out_in_proc(root, request):
    return ["demo-data", "vad", "--num-samples", "2", "-o", proc()], IN_PROC


def case_search_out_under_file(root, request):
    return ["search", vad_work(root, request), "--out", a_file(root) / "x", "--quiet"], UNDER_FILE


def case_sensitivity_out_is_file(root, request):
    return ["sensitivity", vad_work(root, request), "--out", a_file(root)], IS_FILE


def case_export_out_under_file(root, request):
    args = ["export", vad_work(root, request), "--config", empty_config(root), "-o", a_file(root) / "x.onnx"]
    return args, IS_FILE  # the folder of the exported file is a file


def case_export_out_in_proc(root, request):
    args = ["export", vad_work(root, request), "--config", empty_config(root), "-o", proc().with_suffix(".onnx")]
    return args, IN_PROC


def case_export_out_is_folder(root, request):
    (root / "model.onnx").mkdir()  # refused up front even with --force: nothing scored, no crash log inside it
    args = ["export", vad_work(root, request), "--config", empty_config(root), "-o", root / "model.onnx", "--force"]
    return args, r"\S*model\.onnx is a folder, not a file; choose another -o$"


def case_debug_out_is_file(root, request):
    args = ["debug", "error-curve", "-w", vad_work(root, request), "--out", a_file(root)]
    return args, r"cannot create \S*afile/debug: \S*afile is a file; choose another output folder$"


def case_demo_out_under_file(root, request):
    return ["demo", "vad", "-o", a_file(root) / "x"], r"cannot create \S*afile/x/vad: \S*afile is a file"


def case_demo_data_force_keeps_user_files(root, request):
    (root / "vad.onnx").write_text("my model")
    (root / "calibration_data" / "input").mkdir(parents=True)
    (root / "calibration_data" / "mynote.txt").write_text("keep me")
    args = ["demo-data", "vad", "--num-samples", "2", "-o", root, "--force"]
    return args, r"calibration_data holds files autoprec did not write \(calibration_data/mynote\.txt\)"


CASES: dict[str, Callable] = {
    "not-a-file": case_model_missing,
    "folder-as-model": case_model_is_folder,
    "text-renamed-onnx": case_text_renamed_onnx,
    "truncated-onnx": case_truncated_onnx,
    "external-data-outside-folder": case_external_data_escapes,
    "data-missing-input": case_data_missing_input,
    "wrong-shape": case_wrong_shape,
    "wrong-dtype": case_wrong_dtype,
    "nan": case_nan_in_data,
    "inf": case_inf_in_data,
    "float64-beyond-float32": case_float64_beyond_float32,
    "holdout-beyond-float32": case_holdout_beyond_float32,
    "int64-beyond-int32": case_int64_beyond_int32,
    "sample-renamed": case_sample_renamed,
    "sample-not-numbered": case_sample_not_numbered,
    "empty-data-folder": case_empty_data_folder,
    "input-folders-without-samples": case_input_folders_without_samples,
    "pickled-npy": case_pickled_npy,
    "data-path-missing": case_data_path_missing,
    "qdq-free-model-to-baseline": case_qdq_free_model_to_baseline,
    "unknown-profile": case_unknown_profile,
    "profile-wrong-type": case_profile_wrong_type,
    "profile-file-missing": case_profile_file_missing,
    "report-result-edited": case_report_result_edited,
    "report-no-candidates": case_report_no_candidates,
    "report-candidate-edited": case_report_candidate_edited,
    "report-a-file": case_report_a_file,
    "demo-output-holds-user-files": case_demo_output_holds_user_files,
    "output-folder-exists": case_output_exists,
    "demo-target-impossible": case_demo_target_impossible,
    "demo-budget-0": case_demo_budget_0,
    "export-search-missing": case_export_search_missing,
    "export-search-not-a-search": case_export_search_not_a_search,
    "calibrate-out-under-file": case_calibrate_out_under_file,
    "calibrate-out-in-proc": case_calibrate_out_in_proc,
    "demo-data-out-is-file": case_demo_data_out_is_file,
    "demo-data-out-in-proc": case_demo_data_out_in_proc,
    "search-out-under-file": case_search_out_under_file,
    "sensitivity-out-is-file": case_sensitivity_out_is_file,
    "export-out-under-file": case_export_out_under_file,
    "export-out-in-proc": case_export_out_in_proc,
    "export-out-is-folder": case_export_out_is_folder,
    "debug-out-is-file": case_debug_out_is_file,
    "demo-out-under-file": case_demo_out_under_file,
    "demo-data-force-keeps-user-files": case_demo_data_force_keeps_user_files,
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_cleanly(case, tmp_path, run_cli, request):
    root = tmp_path / "case"
    root.mkdir()
    args, expected = CASES[case](root, request)
    before = snapshot(root)

    code, stderr = result = run_cli(*args, cwd=root)

    assert "Traceback" not in stderr + result.stdout, stderr
    assert code == 2, f"exit code {code}; stderr:\n{stderr}"
    assert result.stdout == "", "nothing may be printed to stdout on an error"
    text = stderr.strip()
    assert len(text.splitlines()) == 1, f"error is not one line:\n{stderr}"
    assert text.startswith(PREFIX), stderr
    assert re.search(expected, text), (expected, stderr)
    assert snapshot(root) == before, "the failed command changed files"
    assert not list(root.glob(".autoprec-*")), "staging folder left behind"


@pytest.mark.parametrize("folder", ["scans[red]", "a[/b]"])
def test_error_message_is_printed_literally(folder, tmp_path, run_cli):
    model = tmp_path / folder / "model.onnx"
    model.parent.mkdir(parents=True)
    code, stderr = result = run_cli("calibrate", model, "--data", tmp_path / "data", "-o", tmp_path / "out")
    assert "Traceback" not in stderr + result.stdout, stderr
    assert code == 2, stderr
    assert str(model) in stderr, stderr
    assert snapshot(tmp_path) == {folder.split("/")[0]: "dir", folder: "dir"}


@pytest.mark.parametrize(
    ("args", "prog", "expected"),
    [
        (["search", "W", "--target", "abc"], "autoprec search", r"argument --target: invalid float value: 'abc'"),
        (["search", "W", "--budget", "x"], "autoprec search", r"argument --budget: invalid int value: 'x'"),
        (["search", "W", "--jobs", "0"], "autoprec search", r"argument --jobs: --jobs must be at least 1"),
        (["search", "W", "--confidence", "a"], "autoprec search", r"argument --confidence: invalid float value: 'a'"),
        (["sensitivity", "--node-type", "edge"], "autoprec sensitivity", r"argument --node-type: invalid choice"),
        (["debug", "distribution"], "autoprec debug distribution", r"required: NODE"),
        (["nosuchcommand"], "autoprec", r"argument COMMAND: invalid choice: 'nosuchcommand'"),
        ([], "autoprec", r"required: COMMAND"),
        (["calibrate", "m", "--data", "d", "--num-samples", "0"], "autoprec calibrate", r"--num-samples: must be at"),
        (["export", "-o", "q.onnx", "--num-samples", "0"], "autoprec export", r"--num-samples: must be at least 1"),
        (["debug", "error-curve", "--num-samples", "0"], "autoprec debug error-curve", r"--num-samples: must be at"),
        (["search", "W", "--top", "-1"], "autoprec search", r"argument --top: must be at least 1, got -1"),
        (["debug", "runall", "--top", "-2"], "autoprec debug runall", r"argument --top: must be at least 1, got -2"),
        (
            ["candidates", "nosuch"],
            "autoprec candidates",
            r"unrecognized arguments: nosuch; a folder goes after --out: autoprec candidates --out nosuch",
        ),
        (["search", "W", "extra"], "autoprec search", r"unrecognized arguments: extra \(see"),
    ],
)
def test_argument_error_is_one_line(args, prog, expected, tmp_path, run_cli):
    """argparse's errors too: one line naming the argument and where the help is, no usage block, exit 2."""
    code, stderr = result = run_cli(*args)
    assert code == 2, stderr
    assert result.stdout == "", result.stdout
    assert len(stderr.strip().splitlines()) == 1, f"error is not one line:\n{stderr}"
    assert stderr.startswith(f"{prog}: error: "), stderr
    assert re.search(expected, stderr), (expected, stderr)
    assert stderr.strip().endswith(f"(see {prog} --help)"), stderr
    assert snapshot(tmp_path) == {}, "a refused command wrote files"


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (
            {"name": "chip", "forced_int8": {}, "qtypes": []},
            r"field 'qtypes' must be a list of int8, int16, float16, float32 that includes int8, got \[\]$",
        ),
        (
            {"name": "chip", "forced_int8": {"Conv": "no"}},
            r"field 'forced_int8' must be an object of op type -> list of input indices, e\.g\. \{\"Conv\": \[1\]\}, "
            r"got \{\"Conv\": \"no\"\}$",
        ),
        ({"forced_int8": {}}, r"missing field 'name' \(a non-empty string\)$"),
        ({"name": "chip", "forced_int8": {}, "op_qtypes": {"Sqrt": ["int8"]}}, r"field 'op_qtypes' must be an object"),
        ({"name": "chip", "forced_int8": {}, "op_qtypes": {"Sqrt": {"o": ["int8"]}}}, r"field 'op_qtypes' must be"),
        ({"name": "chip", "forced_int8": {}, "costs": {"mac": {"int16": "x"}}}, r"field 'costs' must be an object"),
        (
            {"name": "chip", "forced_int8": {}, "costs": {"mac": {"int16": 0.5}}},
            r"field 'costs': rates must be positive, finite and not decrease",
        ),
        ({"name": "chip", "forced_int8": {}, "unsigned": 1}, r"field 'unsigned' must be true or false, got 1$"),
        (
            {"name": "chip", "forced_int8": {}, "calibration_methods": []},
            r"field 'calibration_methods' must be a non-empty list of max, percentile, kl, mse, got \[\]$",
        ),
        ({"name": "chip", "forced_int8": {}, "asymetric": False}, r"unknown field 'asymetric'; the fields are name, "),
        (["chip"], r"must be a JSON object such as"),
    ],
)
def test_profile_file_is_checked_field_by_field(profile, expected, tmp_path):
    """A hand-written profile: one line naming the field and the type it must have, nothing of Python's."""
    path = tmp_path / "chip.json"
    path.write_text(json.dumps(profile))
    with pytest.raises(UserError) as raised:
        get_profile(str(path))
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    assert re.search(expected, message), (expected, message)


def test_profile_file_with_every_field_loads(tmp_path):
    path = tmp_path / "mychip.json"
    path.write_text(json.dumps({
        "name": "mychip", "description": "a test chip", "forced_int8": {"Conv": [1]},
        "qtypes": ["int8", "int16", "float32"], "op_qtypes": {"Sqrt": {"0": ["int8", "float32"]}},
        "costs": {"mac": {"int16": 2.5}, "element": {"float32": 10}}, "asymmetric": False, "unsigned": True,
        "per_channel": False, "calibration_methods": ["max", "kl"],
    }))  # fmt: skip
    profile = get_profile(str(path))
    assert (profile.name, profile.description, profile.forced_int8) == ("mychip", "a test chip", {("Conv", 1)})
    assert profile.qtypes == ("int8", "int16", "float32")
    assert profile.op_qtypes == {("Sqrt", 0): ("int8", "float32")}
    assert (profile.costs.mac["int16"], profile.costs.element["float32"]) == (2.5, 10.0)
    assert (profile.asymmetric, profile.unsigned, profile.per_channel) == (False, True, False)
    assert profile.calibration_methods == {"max", "kl"}
