"""The ledger as an Optuna study: budgets, several workers on one storage, resume after SIGKILL."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autoprec.api import search
from autoprec.engine.ledger import Ledger
from tests.conftest import cli_env

TARGET = "0.999"  # magika: all-int8 ~0.0 cosine, all-int16 1.0 (measured in the baselines)


PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server on loopback (Debian's postgresql, run as the postgres user)."""
    if not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg", reason='pip install "psycopg[binary]"')
    folder = Path(tempfile.mkdtemp(prefix="autoprec-pg-"))  # pytest's tmp folders are private to root
    shutil.chown(folder, "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_postgres, PG_BIN / "initdb", "-D", folder / "data", "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([*as_postgres, PG_BIN / "postgres", "-D", folder / "data", "-k", folder,
                               "-p", str(port), "-h", "127.0.0.1"], stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    deadline = time.time() + 30
    while subprocess.run([PG_BIN / "pg_isready", "-h", "127.0.0.1", "-p", str(port)], capture_output=True).returncode:
        assert time.time() < deadline, "PostgreSQL did not start"
        time.sleep(0.2)
    yield url
    server.terminate()
    server.wait(timeout=30)
    shutil.rmtree(folder, ignore_errors=True)


def _completed(storage) -> list:
    ledger = Ledger(str(storage), "shared", None, join=True, exclusive=False)
    return ledger.records()


def _start(workdir, out, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "autoprec.cli", "search", str(workdir), "--target", TARGET, "--out", str(out)]
    return subprocess.Popen([*args, "--quiet", *extra], env=cli_env(), stderr=subprocess.PIPE, text=True)


def test_optuna_search_never_exceeds_its_budget(magika_workdir, tmp_path):
    result = search(
        magika_workdir, target=float(TARGET), budget=9, out=tmp_path / "out",
        strategies=["baselines", "optuna"], options={"optuna.share": "1.0", "optuna.space": "12"},
    )  # fmt: skip
    summary = json.loads((tmp_path / "out" / "result.json").read_text())
    assert summary["evaluations"] == len(result.candidates) <= 9
    assert any(c.strategy == "optuna" for c in result.candidates)
    keys = [c.key for c in result.candidates]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("kind", ["journal", "postgresql"])
def test_two_workers_share_one_study_without_evaluating_twice(kind, magika_workdir, tmp_path, request):
    journal = tmp_path / "shared.journal" if kind == "journal" else request.getfixturevalue("postgres_url")
    storage = ["--storage", str(journal), "--study", "shared", "--budget", "16"]
    workers = [_start(magika_workdir, tmp_path / f"w{i}", *storage) for i in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    records = _completed(journal)
    keys = [r.key for r in records]
    assert len(keys) == len(set(keys)) <= 16
    union = set()
    for i in range(2):
        union |= {
            json.dumps(c["changes"], sort_keys=True)
            for c in json.loads((tmp_path / f"w{i}/candidates.json").read_text())
        }
    assert union == {json.dumps(r.changes, sort_keys=True) for r in records}


def test_resume_after_sigkill_mid_study(magika_workdir, tmp_path):
    journal = tmp_path / "shared.journal"
    args = ["--storage", str(journal), "--study", "shared", "--budget", "24", "--strategies", "baselines,optuna",
            "--option", "optuna.share=1.0"]  # fmt: skip
    worker = _start(magika_workdir, tmp_path / "out", *args)
    deadline = time.time() + 240
    while time.time() < deadline and (not journal.exists() or len(_completed(journal)) < 6):
        time.sleep(0.3)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    before = {r.key: r.scores for r in _completed(journal)}
    assert 6 <= len(before) < 24
    worker = _start(magika_workdir, tmp_path / "out", *args, "--resume")
    _, err = worker.communicate(timeout=300)
    assert worker.returncode in (0, 1), err
    after = _completed(journal)
    assert len({r.key for r in after}) == len(after) <= 24
    assert all(dict((r.key, r.scores) for r in after)[key] == scores for key, scores in before.items())
    assert json.loads((tmp_path / "out/result.json").read_text())["evaluations"] == len(after)


def test_unreachable_storage_is_a_one_line_error(magika_workdir, run_cli, tmp_path):
    code, err = run_cli("search", magika_workdir, "--storage", "postgresql://nobody@127.0.0.1:9/none",
                        "--out", tmp_path / "out")  # fmt: skip
    assert code == 2 and "Traceback" not in err
    assert "storage" in err and len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "out" / "quant_config.json").exists()


def test_joining_a_study_of_another_model_is_refused(magika_workdir, vad_workdir, run_cli, tmp_path):
    storage = ["--storage", tmp_path / "shared.journal", "--study", "shared", "--budget", "3", "--quiet"]
    code, err = run_cli("search", magika_workdir, "--target", TARGET, "--out", tmp_path / "a", *storage)
    assert code in (0, 1), err
    code, err = run_cli("search", vad_workdir, "--target", "0.87", "--out", tmp_path / "b", *storage)
    assert code == 2 and "another model" in err and "Traceback" not in err
    assert "use another --study" in err, err  # a shared study: not another --out
