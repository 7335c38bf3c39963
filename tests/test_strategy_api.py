"""The public strategy API, used the way a third-party author would: the README's plug-in, installed as a
real distribution with an entry point, run by `autoprec search`; broken plug-ins and bad options refused."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autoprec.engine.bisect import bisect
from tests.conftest import cli_env

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_plugin() -> str:
    """The plug-in code block of README's "Writing a strategy" section, verbatim."""
    section = README.read_text().split("### Writing a strategy", 1)[1]
    block = re.search(r"```python\n(# mypkg/top_k.py\n.*?)```", section, re.S)
    assert block, "README lost its plug-in example"
    return block.group(1)


def install_plugin(root: Path, code: str, entry: str = "mypkg.top_k:TopK", name: str = "top_k") -> dict[str, str]:
    """A real (unpacked) distribution on PYTHONPATH with an `autoprec.strategies` entry point."""
    (root / "mypkg").mkdir(parents=True)
    (root / "mypkg" / "__init__.py").write_text("")
    (root / "mypkg" / "top_k.py").write_text(code)
    info = root / "mypkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[autoprec.strategies]\n{name} = {entry}\n")
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    return env


def autoprec(env: dict[str, str], cwd: Path, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autoprec.cli", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip


def test_the_readme_plugin_runs_as_a_third_party_strategy(magika_workdir, tmp_path):
    env = install_plugin(tmp_path / "site", readme_plugin())
    out = tmp_path / "out"
    proc = autoprec(env, tmp_path, "search", magika_workdir, "--target", "0.9999", "--budget", "4", "--out", out,
                    "--strategies", "baselines,top_k", "--option", "top_k.k=3", "--quiet")  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    candidates = json.loads((out / "candidates.json").read_text())
    mine = [c for c in candidates if c["strategy"] == "top_k"]
    baselines = json.loads((out / "result.json").read_text())
    assert baselines["strategies"] == ["baselines", "top_k"]
    assert not any(c["strategy"] == "baselines" and c["passed"] and c["entries"] == 0 for c in candidates)
    assert len(mine) == 1 and len(mine[0]["units"]) == 3  # k=3 from --option, parsed by the plug-in's Option


@pytest.mark.parametrize(
    "code, entry, expected",
    [
        ("class TopK:\n    name = 'top_k'\n", "mypkg.top_k:TopK", r"strategy plug-in 'top_k' .* no `run\(search\)`"),
        ("raise RuntimeError('boom')\n", "mypkg.top_k:TopK", r"plug-in 'top_k' .* failed to load: RuntimeError"),
        ("from autoprec.strategy import Strategy\nclass TopK(Strategy):\n    name = 'top_k'\n",
         "mypkg.top_k:TopK", r"strategy plug-in 'top_k' .* failed to load: TypeError"),  # run not implemented
    ],
)  # fmt: skip
def test_a_broken_plugin_is_refused_on_load_in_one_line(magika_workdir, tmp_path, code, entry, expected):
    env = install_plugin(tmp_path / "site", code, entry)
    proc = autoprec(env, tmp_path, "search", magika_workdir, "--strategies", "baselines,top_k", "--out",
                    tmp_path / "out")  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(expected, lines[0]), proc.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.parametrize(
    "option, expected",
    [
        (  # the choices said once
            "optuna.sampler=grid",
            r"--option optuna.sampler=grid: unknown sampler 'grid'; use one of tpe, nsga2, random \(the sampler of "
            r"the study\)$",
        ),
        (
            "optuna.space=abc",
            r"--option optuna.space=abc: must be a whole number of at least 1, got abc \(units in the search space\)$",
        ),
        ("optuna.spaces=3", r"unknown option of 'optuna'; its options: optuna.sampler, optuna.space, optuna.share"),
        ("subgraph.share=2", r"must lie in \(0, 1\], got 2 \(share of the remaining budget for scoring regions\)$"),
        ("nosuch.k=1", r"strategy 'nosuch' is not in --strategies"),
        ("optuna", r"write it as KEY=VALUE"),
    ],
)
def test_options_are_checked_before_the_first_evaluation(run_cli, magika_workdir, tmp_path, option, expected):
    code, stderr = run_cli("search", magika_workdir, "--out", tmp_path / "out", "--option", option)
    assert code == 2 and re.search(expected, stderr), stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_bisect_finds_the_boundary_in_log_steps():
    asked = []

    def is_high(k: int) -> bool:
        asked.append(k)
        return k >= 37

    assert bisect(0, 100, is_high) == (36, 37)
    assert len(asked) <= 7 and 0 not in asked and 100 not in asked
    assert bisect(0, 100, lambda k: None) == (0, 100)  # stopped (budget): nothing narrowed
