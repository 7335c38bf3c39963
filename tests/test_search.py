"""The search end to end, on real public models (silero VAD, magika) run by onnxruntime.

What is checked, each against an independent re-computation rather than the search's own word:
the target is met on every output within the budget; the emitted quant_config reproduces the
reported scores exactly; the winner is 1-minimal (every single-unit drop re-evaluated here fails);
a SIGKILLed search resumes to the same result as an uninterrupted one without re-evaluating what
the ledger holds; an unreachable target exits 1 with the best-so-far config; no assignment is
evaluated twice; per-output and lower-is-better targets; bad input is one clean line with exit 2;
the sensitivity command's JSON and its cache.

Targets sit between all-int8 and all-int16 on every output (4 samples, see conftest.NUM_SAMPLES):
VAD all-int8 mean cosine ~ (0.88, 0.59, 0.69), all-int16 ~ (0.854, 0.92, 0.98) -> 0.85;
magika all-int8 ~ 0.0 (argmax-like logits collapse), all-int16 ~ 1 - 1e-10 -> 0.999.
The layout model is not searched here: its sensitivity pass alone (405 units) takes minutes.
The ledger (an Optuna study in OUT/ledger.journal) is read here with Optuna's own loader, read-only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from autoprec import api, demo
from autoprec.calibrate import CalibrationSettings, calibrate
from autoprec.engine.baselines import baseline_assignments
from autoprec.engine.ledger import default_storage, open_storage
from autoprec.engine.outputs import OUTPUT_FILES
from autoprec.engine.state import assignment_key
from autoprec.engine.target import build_target
from autoprec.engine.units import search_units
from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.hardware import get_profile, lower_qtype
from autoprec.ir import FEATURE, WEIGHT
from autoprec.quant_config import from_quant_config

TARGETS = {"vad": 0.85, "magika": 0.999}
BUDGET = 50
PREFIX = "autoprec: error: "
WIDTH = 80  # COLUMNS pinned below: rich's width when stderr is not a terminal


# --- helpers ------------------------------------------------------------------------------------


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE"}}
    env["COLUMNS"] = str(WIDTH)
    env["NO_COLOR"] = "1"
    return env


def cli(*args, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m autoprec.cli ARGS...` in a subprocess (text output captured)."""
    return subprocess.run(
        [sys.executable, "-m", "autoprec.cli", *map(str, args)],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_popen(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "autoprec.cli", *map(str, args)],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def read_json(path: Path) -> dict | list:
    return json.loads(Path(path).read_text())


def ledger_rows(out: Path) -> list[tuple]:
    """(trial number, key, strategy, changes, scores, cost) of every finished ledger entry, in order.

    Read-only: the study is loaded (never created) and the file is opened only once it exists, so
    polling a running search cannot disturb it."""
    url = default_storage(out)
    if url.endswith(".journal") and not Path(url).exists():
        return []
    try:
        study = optuna.load_study(study_name="autoprec", storage=open_storage(url))
    except KeyError:  # the search has not created its study yet
        return []
    return [
        (t.number, t.user_attrs["key"], t.user_attrs["record"]["strategy"], t.user_attrs["record"]["changes"],
         t.user_attrs["record"]["scores"], t.value)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if "record" in t.user_attrs
    ]  # fmt: skip


def ledger_strategies(out: Path) -> list[str]:
    """Proposer of every finished ledger entry (polling helper; empty on any transient read error)."""
    try:
        return [row[2] for row in ledger_rows(out)]
    except (ValueError, OSError):  # a line being appended right now
        return []


def workdir(request, name: str) -> Path:
    return request.getfixturevalue(f"{name}_workdir")


def evaluator_of(model_dir: Path, num_samples: int | None = None) -> Evaluator:
    model, data = model_dir / "calibrated_model.onnx", model_dir / "calibration_data"
    return Evaluator(EvalSpec(str(model), str(data), num_samples))


def winner_values(result: dict) -> dict[str, float]:
    return {out: v["value"] for out, v in result["winner"]["outputs"].items()}


@pytest.fixture(scope="module")
def cli_search(request, tmp_path_factory):
    """name -> (exit code, stderr, out folder) of `autoprec search` at the model's target, budget 50 (run once)."""
    cache: dict[str, tuple[int, str, Path]] = {}

    def get(name: str) -> tuple[int, str, Path]:
        if name not in cache:
            out = tmp_path_factory.mktemp(f"search-{name}") / "out"
            proc = cli("search", workdir(request, name), "--target", TARGETS[name], "--budget", BUDGET,
                       "--out", out, "--quiet")  # fmt: skip
            cache[name] = (proc.returncode, proc.stderr, out)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def api_search(request, tmp_path_factory):
    """name -> SearchResult of `autoprec.api.search` at the model's target, budget 50 (run once)."""
    cache = {}

    def get(name: str):
        if name not in cache:
            out = tmp_path_factory.mktemp(f"api-{name}") / "out"
            cache[name] = (api.search(workdir(request, name), target=TARGETS[name], budget=BUDGET, out=out), out)
        return cache[name]

    return get


# --- 1. the target is met on every output within the budget ---------------------------------


@pytest.mark.parametrize("name", ["vad", "magika"])
def test_search_meets_target_on_every_output(name, cli_search):
    code, stderr, out = cli_search(name)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    for file in OUTPUT_FILES:
        assert (out / file).is_file(), f"{file} not written"
    result = read_json(out / "result.json")
    assert result["meets_target"] is True
    assert 1 <= result["evaluations"] <= BUDGET
    winner = result["winner"]
    assert winner["passed"] is True
    assert set(winner["outputs"]) == {t["output"] for t in result["target"]}
    for output, v in winner["outputs"].items():
        assert v["value"] >= TARGETS[name], output
        assert v["gap"] == 0.0, output
    # the target is a real mixed-precision problem here: all-int8 fails, the winner is much cheaper than int16
    candidates = {c["index"]: c for c in read_json(out / "candidates.json")}
    assert candidates[0]["entries"] == 0 and candidates[0]["passed"] is False, "all-int8 should fail this target"
    assert winner["units"] and winner["entries"] > 0
    assert 0 < winner["cost"] < 0.5


@pytest.mark.parametrize("name", ["vad", "magika"])
def test_api_and_cli_agree(name, cli_search, api_search):
    """The Python API is the same job as the command line: same winner, same number of evaluations."""
    _, _, out = cli_search(name)
    result, api_out = api_search(name)
    cli_result = read_json(out / "result.json")
    assert result.met is True
    assert result.best is result.winner
    assert result.state.used == cli_result["evaluations"] == read_json(api_out / "result.json")["evaluations"]
    assert result.winner.changes() == cli_result["winner"]["changes"]
    assert sorted(result.state.raised_units(result.winner)) == sorted(cli_result["winner"]["units"])
    assert read_json(api_out / "quant_config.json") == read_json(out / "quant_config.json")


# --- 2. the emitted quant_config reproduces the reported scores exactly -------------------------


@pytest.mark.parametrize("name", ["vad", "magika"])
def test_quant_config_reproduces_reported_scores(name, request, cli_search):
    _, _, out = cli_search(name)
    result = read_json(out / "result.json")
    config = read_json(out / "quant_config.json")
    model_dir = workdir(request, name)

    proc = cli("evaluate", model_dir, "--config", out / "quant_config.json", "--target", TARGETS[name], "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["meets_target"] is True
    assert {o: v["value"] for o, v in report["outputs"].items()} == winner_values(result)

    # in-process: the config maps back to exactly the winner's assignment, and scores the same
    evaluator = evaluator_of(model_dir)
    assignment = from_quant_config(evaluator.model, config, get_profile(result["profile"]))
    assert {n: q for n, q in assignment.items() if q != "int8"} == result["winner"]["changes"]
    scores = evaluator.evaluate(assignment)
    target = build_target(evaluator.outputs, TARGETS[name])
    assert {t.output: t.value(scores) for t in target.outputs} == winner_values(result)


# --- 3. the prune step leaves a 1-minimal set -------------------------------------------------


@pytest.mark.parametrize("name", ["vad", "magika"])
def test_winner_is_one_minimal(name, request, api_search):
    result, out = api_search(name)
    state = result.state
    assert result.met
    assert read_json(out / "result.json")["one_minimal"] is True
    assert state.results.one_minimal is True

    # independent of the search: a fresh evaluator, the units and target rebuilt from the public helpers
    model_dir = workdir(request, name)
    evaluator = evaluator_of(model_dir)
    units = {u.name: u for u in search_units(evaluator.model, get_profile("generic"))}
    target = build_target(evaluator.outputs, TARGETS[name])
    profile = get_profile("generic")
    winner = result.winner.assignment
    assert any(q != "int8" for q in winner.values()), "the winner raises nothing although all-int8 fails"
    assert target.passes(evaluator.evaluate(winner))
    # prune's entries: a unit's activations, or its weights; lowering any one of them one lattice step fails
    for unit in units.values():
        for kind in (FEATURE, WEIGHT):
            entry = [n for n in unit.calibration if evaluator.model.calibration[n].tensor_type == kind]
            lowered = {n: lower_qtype(profile.allowed(evaluator.model, evaluator.model.calibration[n]), winner[n])
                       for n in entry}  # fmt: skip
            if any(lowered.values()):
                assignment = {**winner, **{n: q for n, q in lowered.items() if q}}
                scores = evaluator.evaluate(assignment)
                assert not target.passes(scores), f"lowering {entry} still meets the target: not 1-minimal"


# --- 4. resume after SIGKILL --------------------------------------------------------------------


def resume_args(workdir: Path) -> list:
    return ["search", workdir, "--target", TARGETS["magika"], "--budget", BUDGET,
            "--num-samples", 2, "--sensitivity-samples", 1, "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def magika_uninterrupted(magika_workdir, tmp_path_factory) -> Path:
    """The search the resume tests must reproduce, run without interruption."""
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    proc = cli(*resume_args(magika_workdir), "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


KILL_WHEN = {
    "sweep": lambda strategies: len(strategies) >= 3,  # baselines done, inside the threshold sweep
    "optuna": lambda strategies: strategies.count("optuna") >= 3,  # inside the Optuna strategy
}


@pytest.mark.parametrize("phase", ["sweep", "optuna"])
def test_resume_after_sigkill_matches_uninterrupted_search(phase, magika_workdir, magika_uninterrupted, tmp_path):
    args = resume_args(magika_workdir)
    fresh_rows = ledger_rows(magika_uninterrupted)
    assert KILL_WHEN[phase]([row[2] for row in fresh_rows]), f"the search never reaches the {phase} phase"
    killed = tmp_path / "killed"

    proc = cli_popen(*args, "--out", killed)
    deadline = time.monotonic() + 240
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if KILL_WHEN[phase](ledger_strategies(killed)):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the search ended before it could be killed mid-way"
    before = ledger_rows(killed)
    assert KILL_WHEN[phase]([row[2] for row in before])
    assert not (killed / "result.json").exists()

    # without --resume or --force: refused, the ledger untouched
    again = cli(*args, "--out", killed)
    assert again.returncode == 2, again.stderr
    assert "--resume" in again.stderr and "Traceback" not in again.stderr
    assert ledger_rows(killed) == before

    resumed = cli(*args, "--out", killed, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr

    after = ledger_rows(killed)
    assert after[: len(before)] == before, "resuming changed entries written before the kill"
    keys = [row[1] for row in after]
    assert len(keys) == len(set(keys)), "an assignment was evaluated twice"
    # the same candidates, proposed by the same strategies, in the same order as without the kill
    # (trial numbers may differ: the claim the kill interrupted is released and claimed again)
    assert [row[1:] for row in after] == [row[1:] for row in fresh_rows]

    resumed_result, fresh_result = read_json(killed / "result.json"), read_json(magika_uninterrupted / "result.json")
    assert resumed_result["meets_target"] is True
    assert resumed_result["evaluations"] == fresh_result["evaluations"] == len(after)
    assert len(before) < len(after), "the kill came after the last evaluation"
    assert resumed_result["winner"] == fresh_result["winner"]
    assert read_json(killed / "quant_config.json") == read_json(magika_uninterrupted / "quant_config.json")
    # what the ledger held before the kill came back without running the model again
    runs_per_evaluation = fresh_result["evaluation_model_runs"] / fresh_result["evaluations"]
    assert resumed_result["evaluation_model_runs"] == runs_per_evaluation * (len(after) - len(before))
    assert resumed_result["sensitivity_model_runs"] == 0, "the cached sensitivity pass was measured again"

    # and promptly: no waiting on a lock the killed process left behind
    assert "lock" not in resumed.stderr, resumed.stderr


def test_ctrl_c_exits_130_and_says_how_to_continue(magika_workdir, tmp_path):
    out, args = tmp_path / "out", resume_args(magika_workdir)
    journal = out / "ledger.journal"
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoprec.cli", *map(str, args), "--out", str(out)],
        env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    # a text scan for finished trials (optuna's op 6), fast enough to interrupt the search early even under load
    while (
        proc.poll() is None
        and time.monotonic() < deadline
        and (not journal.exists() or journal.read_text(errors="replace").count('"op_code":6') < 2)
    ):
        time.sleep(0.01)
    assert proc.poll() is None, "the search ended before Ctrl-C"
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == (
        "interrupted; finished evaluations are kept: rerun with --resume to continue"
    ), stderr
    kept = ledger_rows(out)
    assert kept, "the evaluations finished before Ctrl-C were not kept"

    resumed = cli(*args, "--out", out, "--resume")  # what the message says to do
    assert resumed.returncode == 0, resumed.stderr
    assert ledger_rows(out)[: len(kept)] == kept


EARLY_CTRL_C = """
import os, signal, sys

class CtrlC:  # Ctrl-C as onnxruntime starts to import: where one lands in the first second, the imports
    def find_spec(self, name, path=None, target=None):
        if name == "onnxruntime":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)

signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if the tests run in the background
sys.meta_path.insert(0, CtrlC())
from autoprec.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_during_the_imports_exits_130_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", EARLY_CTRL_C, "search", tmp_path, "--out", tmp_path / "out"],
        env=cli_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "interrupted\n"  # nothing started: no --resume advice
    assert not (tmp_path / "out").exists()


def test_resume_with_a_smaller_budget_says_it_is_spent(vad_workdir, tmp_path):
    """--budget counts every run's evaluations: a resume under what the ledger holds evaluates nothing and says so,
    rather than "6/3 evaluations"."""
    out, args = tmp_path / "out", ["search", vad_workdir, "--target", TARGETS["vad"], "--quiet"]
    first = cli(*args, "--budget", 6, "--out", out)
    assert first.returncode in (0, 1), first.stderr
    used, rows = read_json(out / "result.json")["evaluations"], ledger_rows(out)
    assert used > 3
    resumed = cli(*args, "--budget", 3, "--out", out, "--resume")
    assert resumed.returncode == first.returncode, resumed.stderr
    line = " ".join(resumed.stderr.split())
    assert f"; {used} evaluations, past --budget 3 (it counts every run's: raise it to search on), sensitivity" in line
    assert "/3 evaluations" not in line
    assert ledger_rows(out) == rows, "a resume past its budget evaluated"


# --- 5. an unreachable target -------------------------------------------------------------------


def test_unreachable_target_exits_1_with_best_so_far(vad_workdir, tmp_path):
    out = tmp_path / "out"
    proc = cli("search", vad_workdir, "--target", 0.99999999, "--budget", 5, "--out", out, "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "NOT met" in proc.stderr
    result = read_json(out / "result.json")
    assert result["meets_target"] is False
    assert result["one_minimal"] is False
    assert result["evaluations"] <= 5
    winner = result["winner"]
    assert winner is not None and winner["passed"] is False
    gaps = {o: v["gap"] for o, v in winner["outputs"].items()}
    assert any(g > 0 for g in gaps.values()), gaps
    for output, v in winner["outputs"].items():
        assert v["gap"] == pytest.approx(max(0.0, 0.99999999 - v["value"]), abs=1e-15), output
    # the best so far is the failing candidate closest to the target, and its config is written
    failing = [c for c in read_json(out / "candidates.json") if not c["passed"]]
    assert winner["shortfall"] == min(c["shortfall"] for c in failing)
    evaluator = evaluator_of(vad_workdir)
    assignment = from_quant_config(evaluator.model, read_json(out / "quant_config.json"), get_profile("generic"))
    assert {n: q for n, q in assignment.items() if q != "int8"} == winner["changes"]


# --- 6. identical assignments are never evaluated twice ---------------------------------------


@pytest.mark.parametrize("name", ["vad", "magika"])
def test_no_assignment_evaluated_twice(name, request, cli_search):
    _, _, out = cli_search(name)
    rows = ledger_rows(out)
    result = read_json(out / "result.json")
    assert len(rows) == result["evaluations"]
    numbers = [row[0] for row in rows]
    assert numbers == sorted(set(numbers))
    keys = [row[1] for row in rows]
    assert len(set(keys)) == len(keys), "the ledger holds one assignment twice"
    # the keys are the assignments' (all-int8 plus the stored changes), so distinct keys = distinct assignments
    evaluator = evaluator_of(workdir(request, name))
    base = baseline_assignments(evaluator.model, get_profile("generic"))["all-int8"]
    assignments = [{**base, **row[3]} for row in rows]
    assert [assignment_key(a) for a in assignments] == keys, "ledger keys do not match their assignments"
    assert len({json.dumps(sorted(a.items())) for a in assignments}) == len(assignments)
    candidates = read_json(out / "candidates.json")
    assert sorted(c["index"] for c in candidates) == list(range(len(rows)))
    assert {c["index"]: c["changes"] for c in candidates} == {i: row[3] for i, row in enumerate(rows)}


# --- 7. per-output targets and a lower-is-better metric ---------------------------------------


def test_stricter_target_on_one_output_changes_the_winner(vad_workdir, cli_search, tmp_path):
    _, _, uniform_out = cli_search("vad")
    uniform = read_json(uniform_out / "result.json")
    int16 = next(c for c in read_json(uniform_out / "candidates.json") if c["index"] == 1)
    assert int16["units"], "candidate 1 should be the all-int16 baseline"
    # the output with the most room between the uniform winner and all-int16: tighten it halfway
    headroom = {o: int16["outputs"][o]["value"] - v for o, v in winner_values(uniform).items()}
    output = max(headroom, key=headroom.get)
    assert headroom[output] > 0.005, headroom
    strict = winner_values(uniform)[output] + headroom[output] / 2
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({output: {"threshold": strict}}))

    out = tmp_path / "out"
    proc = cli("search", vad_workdir, "--target", TARGETS["vad"], "--targets", targets, "--budget", BUDGET,
               "--out", out, "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = read_json(out / "result.json")
    assert result["meets_target"] is True
    thresholds = {t["output"]: t["threshold"] for t in result["target"]}
    assert thresholds == {o: (strict if o == output else TARGETS["vad"]) for o in thresholds}
    values = winner_values(result)
    assert values[output] >= strict
    assert all(v >= TARGETS["vad"] for v in values.values())
    assert result["winner"]["changes"] != uniform["winner"]["changes"]
    assert result["winner"]["cost"] > uniform["winner"]["cost"]


def test_mse_target_lower_is_better(vad_workdir, tmp_path):
    evaluator = evaluator_of(vad_workdir)
    baselines = baseline_assignments(evaluator.model, get_profile("generic"))
    int8, int16 = evaluator.evaluate_many([baselines["all-int8"], baselines["all-int16"]])
    worst8 = max(int8.aggregate(o, "mse") for o in evaluator.outputs)
    worst16 = max(int16.aggregate(o, "mse") for o in evaluator.outputs)
    assert worst16 < worst8 / 2, (worst16, worst8)
    threshold = float(np.sqrt(worst8 * worst16))  # all-int16 passes, all-int8 does not

    out = tmp_path / "mse"
    proc = cli("search", vad_workdir, "--metric", "mse", "--target", threshold, "--budget", BUDGET, "--out", out,
               "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = read_json(out / "result.json")
    assert result["meets_target"] is True
    assert {t["metric"] for t in result["target"]} == {"mse"}
    assert all(0 <= v <= threshold for v in winner_values(result).values())
    assert result["winner"]["entries"] > 0, "all-int8 fails this mse target, the winner must raise something"
    assert 0 < result["winner"]["cost"] < 1
    check = cli("evaluate", vad_workdir, "--config", out / "quant_config.json", "--metric", "mse",
                "--target", threshold, "--json")  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert {o: v["value"] for o, v in json.loads(check.stdout)["outputs"].items()} == winner_values(result)

    # a loose mse threshold (above all-int8's worst output) is met by the empty config
    loose = tmp_path / "loose"
    proc = cli("search", vad_workdir, "--metric", "mse", "--target", worst8 * 1.5, "--budget", BUDGET,
               "--out", loose, "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = read_json(loose / "result.json")
    assert result["meets_target"] is True
    assert result["winner"]["entries"] == 0
    assert read_json(loose / "quant_config.json")["node_config"] == {}


# --- 8. bad input: one line on stderr, exit 2, no traceback -----------------------------------


def _targets_file(root: Path) -> list:
    path = root / "targets.json"
    path.write_text(json.dumps({"speech_probs": {"threshold": 0.9}, "nosuch_output": {"threshold": 0.9}}))
    return ["--targets", path]


def _bad_config(root: Path) -> Path:
    path = root / "quant_config.json"
    path.write_text(json.dumps({"model_config": {"all_node_type": "int8"},
                                "node_config": {"/no/such/Conv": {"qtype": "int16"}}}))  # fmt: skip
    return path


BAD_SEARCH = {
    "target-above-1": (lambda root: ["--target", 1.5], r"1\.5.*\(0, 1\]"),
    "target-0": (lambda root: ["--target", 0], r"target 0 .*\(0, 1\]"),
    "budget-0": (lambda root: ["--budget", 0], r"budget.*at least 1.*got 0"),
    "budget-negative": (lambda root: ["--budget", -3], r"budget.*at least 1.*got -3"),
    "metric-unknown": (lambda root: ["--metric", "nosuch"], r"unknown metric 'nosuch'"),
    "strategy-unknown": (lambda root: ["--strategies", "baselines,nosuch"], r"unknown strategy 'nosuch'"),
    "targets-unknown-output": (_targets_file, r"unknown output 'nosuch_output'"),
}


def assert_clean_error(proc: subprocess.CompletedProcess, pattern: str) -> None:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    text = " ".join(line.strip() for line in proc.stderr.splitlines() if line.strip())
    assert text.startswith(PREFIX), proc.stderr
    assert re.search(pattern, text), f"{pattern!r} not in {text!r}"
    assert len(proc.stderr.strip().splitlines()) == 1, f"error is not one line:\n{proc.stderr}"


@pytest.mark.parametrize("case", sorted(BAD_SEARCH))
def test_bad_search_input(case, vad_workdir, tmp_path):
    make_args, pattern = BAD_SEARCH[case]
    out = tmp_path / "out"
    proc = cli("search", vad_workdir, *make_args(tmp_path), "--out", out, "--quiet", cwd=tmp_path)
    assert not out.exists(), "a refused search left its output folder behind"
    assert_clean_error(proc, pattern)


def test_bad_evaluate_config_unknown_node(vad_workdir, tmp_path):
    proc = cli("evaluate", vad_workdir, "--config", _bad_config(tmp_path), "--target", 0.87, "--json", cwd=tmp_path)
    assert proc.stdout == ""
    assert_clean_error(proc, r"unknown node '/no/such/Conv'")


def test_bad_sensitivity_output_node(vad_workdir, tmp_path):
    out = tmp_path / "sens"
    proc = cli("sensitivity", vad_workdir, "--output-node", "nosuch", "--out", out, "--json", cwd=tmp_path)
    assert proc.stdout == ""
    assert_clean_error(proc, r"--output-node 'nosuch'")


@pytest.fixture(scope="module")
def vad_other_workdir(tmp_path_factory, vad_workdir) -> Path:
    """The same VAD and data calibrated differently (per-tensor weights): another calibrated model."""
    out = tmp_path_factory.mktemp("vad-per-tensor") / "model_output"
    calibrate(demo.fetch_model("vad"), vad_workdir / "calibration_data", out, CalibrationSettings(per_channel=False))
    return out


def test_resume_against_another_model_is_refused(vad_workdir, vad_other_workdir, cli_search, tmp_path):
    _, _, done = cli_search("vad")
    out = tmp_path / "out"
    shutil.copytree(done, out)
    results = {name: (out / name).read_bytes() for name in ("quant_config.json", "candidates.json", "result.json")}
    rows = ledger_rows(out)
    assert (vad_other_workdir / "calibrated_model.onnx").read_bytes() != (
        vad_workdir / "calibrated_model.onnx"
    ).read_bytes()
    proc = cli("search", vad_other_workdir, "--target", TARGETS["vad"], "--budget", BUDGET, "--out", out,
               "--resume", "--quiet")  # fmt: skip
    assert_clean_error(proc, r"another model")
    assert {name: (out / name).read_bytes() for name in results} == results, "a refused resume changed the results"
    assert ledger_rows(out) == rows


# --- 9. sensitivity: JSON for every unit, worst first, cached -------------------------------


def test_sensitivity_json_every_unit_sorted_and_cached(vad_workdir, tmp_path):
    out = tmp_path / "sens"
    args = ["sensitivity", vad_workdir, "--metrics", "cosine-similarity,mse", "--out", out]
    first = cli(*args, "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)

    evaluator = evaluator_of(vad_workdir)
    units = {u.name: u for u in search_units(evaluator.model, get_profile("generic"))}
    assert set(report) == set(units)
    for node, values in report.items():
        assert set(values) == {"cosine-similarity", "mse"}, node
        assert -1.0 <= values["cosine-similarity"] <= 1.0 + 1e-9 and values["mse"] >= 0, node
    cosines = [v["cosine-similarity"] for v in report.values()]
    assert cosines == sorted(cosines), "not sorted worst (lowest cosine) first"
    assert cosines[0] < cosines[-1]

    # the values are `get_sensitivity_of_nodes` single mode: only this unit int8, the rest float, 2 samples,
    # the worst output (min cosine / max mse) of the per-output means
    worst = next(iter(report))
    assignment = {n: "float32" for n in evaluator.model.calibration}
    assignment.update({c: "int8" for c in units[worst].calibration})
    scores = evaluator.evaluate(assignment, [0, 1])
    assert report[worst]["cosine-similarity"] == pytest.approx(
        min(scores.aggregate(o, "cosine-similarity") for o in evaluator.outputs), abs=1e-12
    )
    assert report[worst]["mse"] == pytest.approx(max(scores.aggregate(o, "mse") for o in evaluator.outputs), rel=1e-9)

    cache = [p for p in out.iterdir() if p.name.startswith("sensitivity-")]
    assert len(cache) == 1, sorted(p.name for p in out.iterdir())
    stamp = (cache[0].stat().st_mtime_ns, cache[0].read_bytes())
    second = cli(*args, "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == report
    assert (cache[0].stat().st_mtime_ns, cache[0].read_bytes()) == stamp, "the second call measured again"
    third = cli(*args)
    assert third.returncode == 0, third.stderr
    assert re.search(r"\b0 model runs\b", " ".join(third.stderr.split())), third.stderr
