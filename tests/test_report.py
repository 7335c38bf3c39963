"""report.html, `candidates --pareto` and HMCT's debug plots on real models, checked as a person would
(headless Chromium renders the page) and against the engine's own numbers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import autoprec
from autoprec import demo
from autoprec.calibrate import calibrate
from autoprec.engine.saved import load_saved
from autoprec.engine.sensitivity import Sensitivity
from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.hardware import get_profile
from autoprec.report.curve import depth_curve, ranking_curve
from autoprec.report.html import write_report
from autoprec.report.notes import baseline_candidates
from autoprec.report.pareto import pareto_front, worst_margin
from tests.conftest import cli_env

PLOTS = ("pareto", "history", "sensitivity", "curve", "config")


@pytest.fixture(scope="module")
def vad_search(vad_workdir, tmp_path_factory):
    out = tmp_path_factory.mktemp("vad-report") / "out"
    autoprec.search(vad_workdir, target=0.87, budget=10, out=out)
    return out


def test_search_writes_a_self_contained_report(vad_search):
    page = (vad_search / "report.html").read_text()
    saved = load_saved(vad_search)
    for plot in PLOTS:
        assert f"data-plot='{plot}'><svg" in page, plot
    assert "<script" not in page and not re.search(r"(src|href)=[\"']https?:", page)  # offline, no CDN
    for c in saved.candidates:  # hovering any point shows its strategy, entries and per-output scores
        assert f"<title>evaluation #{c['index']} {c['strategy']}: cost {c['cost']:.4f}, {c['entries']} entries" in page
    winner = saved.result["winner"]
    assert f"Winner #{winner['index']} from {winner['strategy']} meets the target" in page
    for t in saved.target.outputs:
        assert f"<td>{t.output}</td><td>{t.describe().replace('>', '&gt;')}</td>" in page


def test_search_into_a_folder_named_in_bytes_that_are_not_utf8(vad_workdir, tmp_path, run_cli):
    """The search and its report work; the report shows the byte it cannot name as "?", and no temp file is left."""
    out = tmp_path / "out\udcfe"  # the folder b"out\xfe"
    code, err = run_cli("search", vad_workdir, "--out", out, "--budget", "3", "--quiet")
    assert code in (0, 1) and "Traceback" not in err, err
    assert f"<h1>autoprec search report: {tmp_path}/out?</h1>" in (out / "report.html").read_text()
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_ledger_shows_cost_margin_and_strategy_in_optuna_dashboard(vad_search):
    """optuna-dashboard reads the study: the value is named cost, each trial carries strategy and worst_margin."""
    import optuna

    from autoprec.engine.ledger import open_storage

    study = optuna.load_study(storage=open_storage(str(vad_search / "ledger.journal")), study_name="autoprec")
    assert study.metric_names == ["cost"]
    saved = load_saved(vad_search)
    by_index = {c["index"]: c for c in saved.candidates}
    trials = [t for t in study.trials if "record" in t.user_attrs]
    assert len(trials) == len(saved.candidates)
    for position, trial in enumerate(trials):
        c = by_index[position]
        assert trial.user_attrs["strategy"] == c["strategy"] and trial.user_attrs["passed"] == c["passed"]
        assert trial.user_attrs["worst_margin"] == pytest.approx(worst_margin(c, saved.target), abs=1e-12)
        assert trial.value == pytest.approx(c["cost"], abs=1e-6)


def test_ranking_curve_ends_are_the_baselines(vad_workdir, vad_search):
    evaluator = Evaluator(EvalSpec(str(vad_workdir / "calibrated_model.onnx"), str(vad_workdir / "calibration_data")))
    saved = load_saved(vad_search)
    sensitivity = Sensitivity.from_json(json.loads((vad_search / "sensitivity-node-single.json").read_text()))
    curve = ranking_curve(evaluator, get_profile("generic"), sensitivity, saved.target, [0, 1], points=5)
    assert curve["k"][0] == 0 and curve["k"][-1] == len(curve["units"]) and len(curve["k"]) == 5
    int8 = evaluator.evaluate({n: "int8" for n in evaluator.model.calibration}, [0, 1])
    int16 = evaluator.evaluate({n: "int16" for n in evaluator.model.calibration}, [0, 1])
    for t in saved.target.outputs:
        assert curve["outputs"][t.output][0] == pytest.approx(t.value(int8), abs=1e-9)
        assert curve["outputs"][t.output][-1] == pytest.approx(t.value(int16), abs=1e-9)


def test_candidates_pareto_shows_only_the_non_dominated(vad_search, run_cli):
    code, err = run_cli("candidates", "--out", vad_search, "--pareto")
    assert code == 0, err
    saved = load_saved(vad_search)
    front = pareto_front(saved.candidates, saved.target)
    points = [(c["cost"], worst_margin(c, saved.target)) for c in saved.candidates]
    for c in front:
        cost, margin = c["cost"], worst_margin(c, saved.target)
        assert not any(o <= cost and m >= margin and (o, m) != (cost, margin) for o, m in points)
    rows = [line for line in run_cli("candidates", "--out", vad_search, "--pareto").stdout.splitlines()
            if line.startswith("│ ") and line.split("│")[1].strip().isdigit()]  # fmt: skip
    assert len(rows) == len(front) < len(saved.candidates)


def test_a_candidate_that_failed_the_held_out_check_is_no_choice(vad_search, tmp_path, run_cli):
    """A cheaper candidate that met the target on the search samples and then failed the held-out check (as the
    engine records it in candidates.json: `holds` false) is neither on the Pareto front nor among the passing
    choices; the report says how many there were, marks the front's checked rows and draws it hollow."""
    out = tmp_path / "out"
    shutil.copytree(vad_search, out)
    saved = load_saved(out)
    winner = saved.result["winner"]
    cheaper = min(
        (c for c in saved.candidates if worst_margin(c, saved.target) >= 0 and c["index"] != winner["index"]),
        key=lambda c: c["cost"],
    )
    assert cheaper in pareto_front(saved.candidates, saved.target)
    summaries = json.loads((out / "candidates.json").read_text())
    for c in summaries:
        if c["index"] == cheaper["index"]:
            c["holds"] = False
            c["cost"] = min(c["cost"], winner["cost"] / 2)  # cheaper than the winner, as a ruled-out one is
        elif c["index"] == winner["index"]:
            c["holds"] = True
    (out / "candidates.json").write_text(json.dumps(summaries))
    saved = load_saved(out)
    assert cheaper["index"] not in [c["index"] for c in pareto_front(saved.candidates, saved.target)]
    page = write_report(out).read_text()
    assert "1 cheaper candidates (from cost" in page and "failed the held-out check: not choices." in page
    assert re.search(
        rf"<title>evaluation #{cheaper['index']} [^<\n]*\nfailed the held-out check\n", page
    )  # its hover text
    assert f"<td>#{winner['index']} {winner['strategy']}</td>" in page and "<td>holds</td>" in page
    code, err = run_cli("candidates", "--out", out, "--pareto")
    assert code == 0, err


def test_tables_name_a_shared_target_once_and_fit_80_columns(vad_search, vad_workdir, run_cli):
    saved = load_saved(vad_search)
    listed = run_cli("candidates", "--out", vad_search, "--top", "5")
    config = run_cli("evaluate", "--config", vad_search / "quant_config.json", cwd=vad_workdir)
    for result, target in ((listed, 0.87), (config, 0.99)):  # `evaluate` checks 0.99 unless told
        code, err = result
        assert code == 0, err
        words = " ".join(result.stdout.split())  # the title may wrap
        assert f"target on every output: mean cosine-similarity >= {target}" in words
        assert words.count(f">= {target}") == 1  # in the title, not repeated on the rows
        assert max(len(line) for line in result.stdout.splitlines()) <= 80
    for output in saved.candidates[0]["outputs"]:  # whole output names, not cut with an ellipsis
        assert re.search(rf"│ {re.escape(output)} +│", config.stdout)


def test_report_names_each_baseline_by_what_it_changed(demo_data, tmp_path):
    workdir = tmp_path / "model_output"
    calibrate(demo.fetch_model("vad"), demo_data("vad"), workdir)  # auto: keeps best-int8's ranges
    out = tmp_path / "out"
    autoprec.search(workdir, target=0.999, budget=3, out=out, strategies=["baselines"])
    saved = load_saved(out)
    names = [name for name, _ in baseline_candidates(saved)]
    assert names == ["all-int8", "best-int8", "all-int16"]
    page = write_report(out).read_text()
    assert re.search(r"<th>all-int8</th><th>best-int8</th><th>all-int16</th>", page)
    for name, candidate in baseline_candidates(saved):  # each column holds that candidate's own numbers
        worst = min(info["value"] for info in candidate["outputs"].values())
        assert f"{worst:.6f}" in page
        assert name != "all-int16" or all(q.startswith("int16") for q in candidate["changes"].values())


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
def test_report_renders_in_headless_chromium(vad_search, tmp_path):
    url = (vad_search / "report.html").as_uri()
    base = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    for plot in PLOTS:  # each plot drawn: an svg with marks in it
        start = dom.stdout.index(f'data-plot="{plot}"')
        figure = dom.stdout[start : dom.stdout.index("</figure>", start)]
        assert figure.count("<path") > 5, plot
    shot = tmp_path / "report.png"
    subprocess.run([*base, "--window-size=1200,2400", f"--screenshot={shot}", url], capture_output=True, timeout=120,
                   check=True)  # fmt: skip
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2400, 1200) and (pixels < 250).mean() > 0.05  # far from a blank page


def test_debug_plots_reproduce_hmct_on_real_numbers(vad_workdir, vad_search, run_cli):
    code, err = run_cli("debug", "runall", "--out", vad_search, "--top", "1")
    assert code == 0, err
    debug = vad_search / "debug"
    names = {p.name for p in debug.glob("*.png")}
    assert {"error_curve.png", "ranking_curve.png"} <= names
    assert any(n.startswith("distribution_") for n in names) and any(n.startswith("channels_") for n in names)
    assert all((debug / n).stat().st_size > 10_000 for n in names)
    code, err = run_cli("debug", "distribution", "/stft/Conv", "--out", vad_search)
    assert code == 0 and (debug / "distribution_stft_Conv_input1.png").is_file()
    code, err = run_cli("debug", "channels", "no_such_node", "--out", vad_search)
    assert code == 2 and "unknown node 'no_such_node'" in err
    # the error curve's last point is the model output: all-int8 there is what the evaluator scores
    evaluator = Evaluator(EvalSpec(str(vad_workdir / "calibrated_model.onnx"), str(vad_workdir / "calibration_data")))
    curve = depth_curve(evaluator, [0, 1], ("all",))
    output = evaluator.outputs[0]
    producer = evaluator.model.producers[output].name
    at_output = curve["curves"]["all"][curve["nodes"].index(producer)]
    scores = evaluator.evaluate({n: "int8" for n in evaluator.model.calibration}, [0, 1])
    assert at_output == pytest.approx(scores.aggregate(output, "cosine-similarity"), abs=1e-6)
    code, err = run_cli("report", vad_search)
    assert code == 0, err
    assert (vad_search / "report.html").read_text().count("data-plot='debug'><img") == len(list(debug.glob("*.png")))


BLOCK_MATPLOTLIB = (
    "import sys; sys.modules['matplotlib'] = None; from autoprec.cli import main; sys.exit(main(sys.argv[1:]))"
)


def test_without_matplotlib_commands_name_the_extra(vad_workdir, vad_search, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-c", BLOCK_MATPLOTLIB, *map(str, args)], capture_output=True,
                              text=True, env=cli_env(), cwd=tmp_path, timeout=300)  # fmt: skip

    done = run("report", vad_search)
    assert done.returncode == 2 and "autoprec[report]" in done.stderr and len(done.stderr.strip().splitlines()) <= 2
    done = run("search", vad_workdir, "--target", "0.87", "--budget", "3", "--out", "out", "--quiet")
    assert done.returncode in (0, 1) and "report.html skipped" in done.stderr
    assert (tmp_path / "out" / "quant_config.json").is_file() and not (tmp_path / "out" / "report.html").exists()
