"""Faults: kill -9 and resume, torn journals, concurrent runs, stale locks, read-only folders, a full disk (a real
small tmpfs), dangerous --force, data folder names. The search cases run the real search on magika and check the
ledger's evaluations: none lost, none repeated, scores unchanged."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import pytest

from autoprec import demo
from autoprec.api import search
from autoprec.data import InputSpec, load_samples, save_samples
from autoprec.engine.journal import intact_length, repair_journal
from autoprec.engine.ledger import Ledger
from autoprec.engine.lock import LOCK_NAME
from autoprec.errors import UserError
from tests.conftest import cli_env

TARGET = "0.999"  # magika: all-int8 ~0.0 cosine, all-int16 1.0
OPTUNA = ["--strategies", "baselines,optuna", "--option", "optuna.share=1.0"]
PREFIX = "autoprec: error: "


def records(journal: Path) -> dict[str, dict]:
    """key -> scores of every evaluation in a (possibly torn) journal, read from a repaired copy."""
    with tempfile.TemporaryDirectory() as folder:  # not next to it: that disk may be full
        copy = Path(folder) / "copy.journal"
        shutil.copyfile(journal, copy)
        repair_journal(copy)
        found = Ledger(str(copy), "autoprec", None, join=True, exclusive=False).records()
    keys = [r.key for r in found]
    assert len(keys) == len(set(keys)), "an evaluation was repeated"
    return {r.key: r.scores for r in found}


def record_count(journal: Path) -> int:
    return journal.read_bytes().count(b'"record"') if journal.exists() else 0


def start(workdir: Path, out: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "autoprec.cli", "search", str(workdir), "--target", TARGET, "--out", str(out)]
    return subprocess.Popen([*args, "--quiet", *extra], env=cli_env(), stderr=subprocess.PIPE, text=True)


def one_line_error(code: int, err: str, *words: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith(PREFIX), err
    assert all(w in err for w in words), err


def test_kill_9_at_random_points_then_resume(magika_workdir, tmp_path):
    out, budget = tmp_path / "out", 30
    journal = out / "ledger.journal"
    rng = random.Random(9)
    kept: dict[str, dict] = {}
    for point in sorted(rng.sample(range(4, budget - 4), 3)):
        worker = start(magika_workdir, out, "--budget", str(budget), *OPTUNA, *(["--resume"] if kept else []))
        deadline = time.time() + 240
        while record_count(journal) < point and worker.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.random() * 0.3)  # land anywhere: mid-evaluation, mid-write
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        now = records(journal)
        assert all(now[key] == scores for key, scores in kept.items())  # nothing lost, nothing changed
        assert len(now) >= len(kept)
        kept = now
    worker = start(magika_workdir, out, "--budget", str(budget), *OPTUNA, "--resume")
    _, err = worker.communicate(timeout=300)
    assert worker.returncode in (0, 1), err
    assert "lock" not in err, err  # promptly: no waiting on a journal lock the killed process left behind
    final = records(journal)
    assert all(final[key] == scores for key, scores in kept.items())
    assert len(final) == json.loads((out / "result.json").read_text())["evaluations"] <= budget
    assert not (out / LOCK_NAME).exists()


@pytest.fixture(scope="module")
def finished_journal(magika_workdir, tmp_path_factory) -> bytes:
    """The journal of a finished 16-evaluation search on magika."""
    out = tmp_path_factory.mktemp("finished") / "out"
    search(magika_workdir, target=float(TARGET), budget=16, out=out, strategies=("baselines", "optuna"),
           options={"optuna.share": "1.0"})  # fmt: skip
    return (out / "ledger.journal").read_bytes()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_torn_journal_is_repaired_and_resumed(seed, finished_journal, magika_workdir, tmp_path, capsys):
    """Seeds 1-3: the local ledger; seed 4: the same journal shared through --storage."""
    rng = random.Random(seed)
    cut = rng.randrange(len(finished_journal) // 4, len(finished_journal) - 1)
    garbage = b"" if seed == 1 else b'{"op_code": 8, "trial_id\x00\xff garbage\n'
    out = tmp_path / "out"
    out.mkdir()
    journal = out / "ledger.journal"
    journal.write_bytes(finished_journal[:cut] + garbage)
    intact = finished_journal[: intact_length(finished_journal[:cut])[0]]
    before = records(journal)
    shared = {"storage": str(journal), "study": "autoprec"} if seed == 4 else {}
    search(magika_workdir, target=float(TARGET), budget=16, out=out, resume=True, strategies=("baselines", "optuna"),
           options={"optuna.share": "1.0"}, **shared)  # fmt: skip
    err = capsys.readouterr().err
    assert "dropped" in err and "torn" in err
    assert (out / "ledger.journal.torn-1").read_bytes() == finished_journal[len(intact) : cut] + garbage
    after = records(journal)
    assert all(after[key] == scores for key, scores in before.items())  # every intact evaluation kept
    assert journal.read_bytes().startswith(intact) and journal.read_bytes().endswith(b"\n")
    assert intact_length(journal.read_bytes())[0] == len(journal.read_bytes())  # nothing written onto a torn line
    assert json.loads((out / "result.json").read_text())["evaluations"] == len(after)


def test_a_journal_optuna_cannot_replay_is_a_one_line_error(finished_journal, magika_workdir, tmp_path, run_cli):
    out = tmp_path / "out"
    out.mkdir()
    bad = b'{"op_code": 4, "worker_id": "w", "study_id": 0}\n'  # well-formed, but a trial without its fields
    (out / "ledger.journal").write_bytes(finished_journal + bad)
    code, err = run_cli("search", magika_workdir, "--target", TARGET, "--out", out, "--resume", "--quiet")
    one_line_error(code, err, "cannot replay")
    assert (out / "ledger.journal").read_bytes() == finished_journal + bad  # left for the user to inspect


def test_concurrent_resume_is_refused_and_the_first_finishes(magika_workdir, tmp_path, run_cli):
    out = tmp_path / "out"
    first = start(magika_workdir, out, "--budget", "40", *OPTUNA)
    deadline = time.time() + 120
    while record_count(out / "ledger.journal") < 3 and time.time() < deadline:
        time.sleep(0.05)
    code, err = run_cli("search", magika_workdir, "--target", TARGET, "--out", out, "--budget", "40", *OPTUNA,
                        "--resume", "--quiet")  # fmt: skip
    one_line_error(code, err, "in use by another autoprec search", f"pid {first.pid}")
    _, first_err = first.communicate(timeout=300)
    assert first.returncode in (0, 1) and "Traceback" not in first_err, first_err
    ledger = Ledger(str(out / "ledger.journal"), "autoprec", None, join=True, exclusive=False)
    assert not [t for t in ledger.study.get_trials() if t.state.name == "FAIL"]  # no claim of the first hijacked
    assert json.loads((out / "result.json").read_text())["evaluations"] == len(ledger.records())


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize(
    ("holder", "taken_over"),
    [
        ({"pid": "dead", "host": "this", "heartbeat": "now"}, True),
        ({"pid": 1, "host": "other-machine", "heartbeat": "2020-01-01T00:00:00+00:00"}, True),
        ({"pid": 1, "host": "other-machine", "heartbeat": "now"}, False),
    ],
)
def test_stale_lock_is_taken_over_and_a_live_one_refuses(holder, taken_over, magika_workdir, tmp_path, run_cli):
    out = tmp_path / "out"
    out.mkdir()
    holder = holder | {
        "pid": _dead_pid() if holder["pid"] == "dead" else holder["pid"],
        "host": socket.gethostname() if holder["host"] == "this" else holder["host"],
        "heartbeat": datetime.now(UTC).isoformat() if holder["heartbeat"] == "now" else holder["heartbeat"],
    }
    (out / LOCK_NAME).write_text(json.dumps(holder))
    code, err = run_cli("search", magika_workdir, "--target", TARGET, "--out", out, "--budget", "3", "--quiet")
    if taken_over:
        assert code in (0, 1), err
        assert not (out / LOCK_NAME).exists()
    else:
        one_line_error(code, err, "other-machine")
        assert json.loads((out / LOCK_NAME).read_text()) == holder
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing else written


def test_a_crash_before_the_first_evaluation_does_not_block_the_next_run(magika_workdir, tmp_path, run_cli):
    out = tmp_path / "out"
    out.mkdir()
    ledger = Ledger(str(out / "ledger.journal"), "autoprec", {"model": "x"}, join=False, exclusive=True)
    ledger.claim("some-key", 10)  # then the process died: a study with one RUNNING claim, no evaluation
    code, err = run_cli("search", magika_workdir, "--target", TARGET, "--out", out, "--budget", "3", "--quiet")
    assert code in (0, 1), err
    assert len(records(out / "ledger.journal")) == 3


def test_a_refused_run_leaves_nothing_behind(magika_workdir, tmp_path, run_cli):
    code, err = run_cli("search", magika_workdir, "--target", TARGET, "--out", tmp_path / "a" / "out",
                        "--option", "optuna.space=abc", "--quiet")  # fmt: skip
    assert code == 2, err
    code, err = run_cli("search", magika_workdir, "--target", TARGET, "--out", tmp_path / "b", "--quiet")
    assert code in (0, 1), err
    finished = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}
    assert {"candidates.json", "ledger.journal", "quant_config.json", "result.json"} <= set(finished)
    code, err = run_cli("search", magika_workdir, "--target", "0.5", "--out", tmp_path / "b", "--resume", "--quiet")
    one_line_error(code, err, "another target", "pass --force to start over", "another --out")
    assert {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()} == finished  # byte for byte
    # --force with a held-out folder whose samples do not fit the model: refused before the old search is removed
    save_samples([{"bytes": np.zeros((1, 5), np.int32)}], tmp_path / "bad")
    code, err = run_cli("search", magika_workdir, "--target", TARGET, "--out", tmp_path / "b", "--force",
                        "--holdout", tmp_path / "bad", "--quiet")  # fmt: skip
    one_line_error(code, err, "has shape [1, 5]")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "bad"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()} == finished  # byte for byte
    code, err = run_cli("search", magika_workdir, "--target", "0.5", "--out", tmp_path / "b", "--force", "--quiet")
    assert code == 0, err  # what the error said to do


def test_force_keeps_the_earlier_search_until_the_new_one_has_evaluated(magika_workdir, tmp_path, run_cli):
    """--force moves the earlier search aside, not away: a run that stops before its first evaluation (a bad
    --storage, a task metric that raises, a kill) leaves it as it was; one that evaluates replaces it."""
    out = tmp_path / "out"
    code, err = run_cli("search", magika_workdir, "--target", TARGET, "--out", out, "--budget", "3", "--quiet")
    assert code in (0, 1), err
    finished = {p.name: p.read_bytes() for p in out.iterdir()}
    code, err = run_cli("search", magika_workdir, "--target", TARGET, "--out", out, "--force", "--quiet",
                        "--storage", tmp_path / "no-such-folder" / "x.journal")  # fmt: skip
    one_line_error(code, err, "no-such-folder does not exist", "--storage")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == finished
    (tmp_path / "metric.py").write_text("def score(floats, quantized):\n    raise ValueError('boom')\n")
    code, err = run_cli("search", magika_workdir, "--target", TARGET, "--out", out, "--force", "--quiet",
                        "--task-metric", f"{tmp_path / 'metric.py'}:score")  # fmt: skip
    one_line_error(code, err, "--task-metric raised ValueError: boom")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == finished
    # a --force run killed before its first evaluation left the earlier search aside: the next run restores it
    aside = out / ".autoprec-replaced"
    aside.mkdir()
    for name in finished:
        (out / name).rename(aside / name)
    (out / "ledger.journal").write_bytes(b"")
    code, err = run_cli("search", magika_workdir, "--target", "0.5", "--out", out, "--resume", "--quiet")
    one_line_error(code, err, "another target")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == finished
    code, err = run_cli("search", magika_workdir, "--target", TARGET, "--out", out, "--force", "--budget", "4",
                        "--quiet")  # fmt: skip
    assert code in (0, 1), err
    assert len(records(out / "ledger.journal")) == 4 and not aside.exists()


def test_force_never_replaces_files_no_search_wrote(magika_workdir, tmp_path, run_cli):
    """A folder holding the user's own report.html (no ledger, no result.json) is not an earlier search: refused,
    with or without --force, and left as it was."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.html").write_text("my report")
    (mine / "notes.txt").write_text("mine")
    for force in ((), ("--force",)):
        code, err = run_cli("search", magika_workdir, "--target", TARGET, "--out", mine, "--quiet", *force)
        one_line_error(code, err, "report.html that no autoprec search wrote")
        assert {p.name: p.read_text() for p in mine.iterdir()} == {"report.html": "my report", "notes.txt": "mine"}
    (mine / "report.html").unlink()
    (mine / "ledger.journal").write_text("my ledger, not Optuna's\n")  # a file of that name is not one either
    for force in ((), ("--force",)):
        code, err = run_cli("search", magika_workdir, "--target", TARGET, "--out", mine, "--quiet", *force)
        one_line_error(code, err, "is not a ledger autoprec wrote")
        assert {p.name: p.read_text() for p in mine.iterdir()} == {
            "ledger.journal": "my ledger, not Optuna's\n",
            "notes.txt": "mine",
        }


@contextmanager
def tmpfs(folder: Path, size: str, read_only: bool = False):
    """A real small tmpfs mounted at `folder` (needs root), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        if read_only:
            (folder / "existing").mkdir()
            subprocess.run(["mount", "-o", "remount,ro", folder], check=True)
        yield folder
    finally:
        subprocess.run(["umount", folder], check=True)
        folder.rmdir()


def test_read_only_output_folder_is_a_one_line_error(magika_workdir, tmp_path, run_cli):
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        for out in (ro / "new", ro / "existing"):
            code, err = run_cli("search", magika_workdir, "--target", TARGET, "--out", out, "--quiet")
            one_line_error(code, err, "read-only")
        code, err = run_cli("calibrate", magika_workdir / "calibrated_model.onnx", "--data",
                            magika_workdir / "calibration_data", "-o", ro / "existing", "--force")  # fmt: skip
        assert code == 2 and "Traceback" not in err
        assert sorted(p.name for p in ro.rglob("*")) == ["existing"]


def test_full_disk_is_a_one_line_error_and_resume_recovers(magika_workdir, tmp_path, run_cli):
    with tmpfs(tmp_path / "disk", "64k") as disk:
        out = disk / "out"
        args = ["search", magika_workdir, "--target", TARGET, "--out", out, "--budget", "30", *OPTUNA, "--quiet"]
        code, err = run_cli(*args)
        one_line_error(code, err, "disk is full")
        assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
        assert not (out / "quant_config.json").exists() and not (out / LOCK_NAME).exists()
        kept = records(out / "ledger.journal")
        assert kept
        subprocess.run(["mount", "-o", "remount,size=8m", disk], check=True)
        code, err = run_cli(*args, "--resume")
        assert code in (0, 1), err
        final = records(out / "ledger.journal")
        assert all(final[key] == scores for key, scores in kept.items())


def test_full_disk_before_the_first_evaluation_leaves_nothing(magika_workdir, tmp_path, run_cli):
    with tmpfs(tmp_path / "disk", "4k") as disk:
        (disk / "filler").write_bytes(b"x" * 4096)  # the disk is now full
        code, err = run_cli("search", magika_workdir, "--target", TARGET, "--out", disk / "out", "--quiet")
        one_line_error(code, err, "disk is full")
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_calibrate_force_never_removes_user_files(magika_workdir, tmp_path, run_cli):
    model = magika_workdir / "calibrated_model.onnx"
    here = tmp_path / "project"
    here.mkdir()
    (here / "notes.txt").write_text("mine")
    shutil.copytree(magika_workdir / "calibration_data", here / "data")
    shutil.copyfile(demo.fetch_model("magika"), tmp_path / "magika.onnx")
    code, err = run_cli("calibrate", "../magika.onnx", "--data", "data", "-o", ".", "--force", cwd=here)
    one_line_error(code, err, "did not write", "notes.txt")
    assert (here / "notes.txt").read_text() == "mine" and (here / "data").is_dir()
    out = tmp_path / "mo"
    for _ in range(2):  # --force over its own output folder replaces it
        code, err = run_cli("calibrate", "magika.onnx", "--data", here / "data", "-o", out, "--force")
        assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["calibrated_model.onnx", "calibration_data",
                                                      "calibration_settings.json"]  # fmt: skip
    code, err = run_cli("calibrate", model, "--data", here / "data", "-o", tmp_path / "again")
    one_line_error(code, err, "already quantized", "autoprec baseline")
    assert not (tmp_path / "again").exists()


def test_data_folder_names_are_injective_and_stay_inside(tmp_path):
    names = ["a/b", "a_b", "..", ".", "x:y", "%41", "A", "../../escape"]
    inputs = [InputSpec(n, (2,), np.dtype(np.float32)) for n in names]
    sample = {n: np.full(2, i, np.float32) for i, n in enumerate(names)}
    root = tmp_path / "data"
    save_samples([sample], root)
    folders = list(root.iterdir())
    assert len(folders) == len(names) and all(f.parent == root for f in folders)
    assert not (tmp_path / "escape").exists()
    loaded = load_samples(root, inputs)[0]
    assert all(np.array_equal(loaded[n], sample[n]) for n in names)
    legacy = tmp_path / "legacy"  # the old layout ('/' and ':' -> '_') is read where unambiguous
    (legacy / "enc_x").mkdir(parents=True)
    np.save(legacy / "enc_x" / "0.npy", np.ones(2, np.float32))
    assert load_samples(legacy, [InputSpec("enc/x", (2,), np.dtype(np.float32))])[0]["enc/x"].sum() == 2
    np.save(legacy / "enc_x" / "1.npy", np.ones(2, np.float32))
    (legacy / "raw:name").mkdir()  # as an HMCT tool writes it
    np.save(legacy / "raw:name" / "0.npy", np.zeros(2, np.float32))
    np.save(legacy / "raw:name" / "1.npy", np.zeros(2, np.float32))
    assert load_samples(legacy, [InputSpec("raw:name", (2,), np.dtype(np.float32))])[1]["raw:name"].sum() == 0
    ambiguous = [InputSpec("enc/x", (2,), np.dtype(np.float32)), InputSpec("enc_x", (2,), np.dtype(np.float32))]
    with pytest.raises(UserError, match="no folder for model input 'enc/x'"):  # enc_x is enc_x's, not enc/x's
        load_samples(legacy, ambiguous)


def test_hmct_samples_pair_by_number_in_numeric_order(tmp_path):
    inputs = [InputSpec(n, (2,), np.dtype(np.float32)) for n in ("x", "y")]
    samples = [{"x": np.full(2, i, np.float32), "y": np.full(2, -i, np.float32)} for i in range(12)]
    root = tmp_path / "data"
    save_samples(samples, root)
    for name in ("x", "y"):  # a gap in the numbering, the same in every folder, shifts nothing
        (root / name / "5.npy").unlink()
    loaded = load_samples(root, inputs)
    numbers = [i for i in range(12) if i != 5]  # 2 before 10: numeric, not by name
    assert [int(s["x"][0]) for s in loaded] == numbers and [int(s["y"][0]) for s in loaded] == [-i for i in numbers]


def test_corrupt_caches_in_a_search_folder_are_measured_again(vad_workdir, tmp_path, run_cli):
    out = tmp_path / "out"
    args = ("search", vad_workdir, "--out", out, "--budget", "5", "--holdout", "0.5", "--quiet")
    code, err = run_cli(*args)
    assert code == 0, err
    caches = ["sensitivity-node-single.json", "sensitivity-float-drop.json", "sensitivity-curve.json",
              "holdout-split.json"]  # fmt: skip
    before = {name: json.loads((out / name).read_text()) for name in caches}
    (out / caches[0]).write_text('{"bad":')  # torn
    misshapen = {**before[caches[1]], "values": {"/stft/Conv": 3}}  # its own key, not its shape
    (out / caches[1]).write_text(json.dumps(misshapen))
    (out / caches[2]).write_bytes(b"\xff\xfe")  # not even text
    (out / caches[3]).write_text("[]")
    code, err = run_cli(*args, "--resume")
    assert code == 0, err
    assert {name: json.loads((out / name).read_text()) for name in caches} == before


def test_budget_counts_evaluations_not_losing_claims(tmp_path):
    from autoprec.engine.ledger import _claim_template

    ledger = Ledger(str(tmp_path / "shared.journal"), "s", None, join=True, exclusive=False)
    owner = ledger.claim("A", budget=2)
    ledger.complete(owner, "test", {}, {}, 0.0)
    ledger.storage.create_new_trial(ledger._study_id, template_trial=_claim_template("A"))  # another worker's
    # claim of A, about to lose to the owner and be released: it is not an evaluation and costs no budget
    assert isinstance(ledger.claim("B", budget=2), int)
    assert ledger.claim("C", budget=2) is None  # A and B spend the budget of 2
    claimed = next(t for t in ledger.study.get_trials() if t.user_attrs.get("key") == "B")
    assert abs(claimed.user_attrs["autoprec.claimed"] - time.time()) < 60  # epoch seconds: no time zone to confuse


def test_atomic_writes_on_a_full_disk_leave_the_old_file_and_no_temp(tmp_path):
    from autoprec.model_io import save_json, save_model

    with tmpfs(tmp_path / "disk", "16k") as disk:
        save_json({"old": True}, disk / "result.json")
        with pytest.raises(UserError, match="disk is full"):
            save_json({"big": "x" * 100_000}, disk / "result.json")
        with pytest.raises(UserError, match="disk is full"):
            save_model(onnx.load(str(demo.fetch_model("magika"))), disk / "model.onnx")
        assert json.loads((disk / "result.json").read_text()) == {"old": True}
        assert sorted(p.name for p in disk.iterdir()) == ["result.json"]


def test_a_write_that_cannot_encode_its_text_leaves_no_temp(tmp_path):
    from autoprec.model_io import save_text

    with pytest.raises(UnicodeEncodeError):
        save_text("a name that is not UTF-8: \udcfe", tmp_path / "report.html")
    assert list(tmp_path.iterdir()) == []


def test_a_failure_the_output_path_does_not_explain_stays_internal(tmp_path):
    """`writing` names a file in the way or a folder that takes no new files; a failure inside an output folder
    that exists (a missing file autoprec should have written, a lock another run holds) is not the user's."""
    from autoprec.model_io import writing

    with pytest.raises(FileNotFoundError), writing(tmp_path):
        (tmp_path / "missing" / "x.json").read_text()
    lock = tmp_path / "held.lock"
    lock.write_text("")
    with pytest.raises(FileExistsError), writing(lock):
        os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
