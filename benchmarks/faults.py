"""What the fault handling costs and what it recovers, on magika (`python -m benchmarks.faults`).

- startup: opening the local ledger of a finished search (repair check + folder lock) vs opening it
  with Optuna alone; a resume that finds everything in the ledger;
- a journal cut in the middle of a line: records dropped, evaluations kept, resume time;
- writes: `save_json` of candidates.json (temp file + fsync + rename) per call;
- foreign QDQ: silero VAD through onnxruntime's quantize_static, all-int8 mean cosine against the
  rebuilt float graph, against `--float-model`, and what onnxruntime gives running that QDQ model.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import optuna
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from autoprec import demo
from autoprec.api import search
from autoprec.calibrate import calibrate
from autoprec.data import load_samples, model_inputs, save_samples
from autoprec.engine.journal import intact_length, repair_journal
from autoprec.engine.ledger import Ledger, open_storage
from autoprec.engine.lock import OutputLock
from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.model_io import save_json
from benchmarks.trust_overhead import best_of

STRATEGIES = {"strategies": ("baselines", "optuna"), "options": {"optuna.share": "1.0"}}


def ledger_part(root: Path) -> dict:
    save_samples(demo.make_samples("magika", 3), root / "data")
    calibrate(demo.fetch_model("magika"), root / "data", root / "mo")
    out = root / "out"
    started = time.perf_counter()
    search(root / "mo", target=0.999, budget=40, out=out, **STRATEGIES)
    fresh = time.perf_counter() - started
    journal = out / "ledger.journal"

    def ours() -> None:
        with OutputLock(out):
            Ledger(str(journal), "autoprec", None, join=True, exclusive=True).records()

    def optuna_only() -> None:  # the same reads, without repair or lock
        optuna.load_study(storage=open_storage(str(journal)), study_name="autoprec").get_trials(deepcopy=False)

    data = journal.read_bytes()
    cut = len(data) * 2 // 3 + 7
    torn = root / "torn"
    torn.mkdir()
    (torn / "ledger.journal").write_bytes(data[:cut])
    kept_lines = intact_length(data[:cut])[0]
    started = time.perf_counter()
    resumed = search(root / "mo", target=0.999, budget=40, out=torn, resume=True, **STRATEGIES)
    resume_torn = time.perf_counter() - started
    started = time.perf_counter()
    search(root / "mo", target=0.999, budget=40, out=out, resume=True, **STRATEGIES)
    resume_full = time.perf_counter() - started
    candidates = json.loads((out / "candidates.json").read_text())
    return {
        "journal_bytes": len(data),
        "fresh_search_s": round(fresh, 2),
        "open_ledger_with_repair_and_lock_ms": round(best_of(5, ours) * 1000, 1),
        "open_journal_optuna_only_ms": round(best_of(5, optuna_only) * 1000, 1),
        "repair_check_ms": round(best_of(5, lambda: repair_journal(journal)) * 1000, 2),
        "resume_nothing_left_s": round(resume_full, 2),
        "torn_cut_at_byte": cut,
        "torn_intact_bytes": kept_lines,
        "torn_evaluations_reevaluated": (resumed.state.evaluator.model_runs - resumed.state.sensitivity_runs)
        // resumed.state.evaluator.num_samples,
        "resume_torn_s": round(resume_torn, 2),
        "save_json_candidates_ms": round(best_of(5, lambda: save_json(candidates, out / "c.json")) * 1000, 2),
    }


class _Reader(CalibrationDataReader):
    def __init__(self, samples: list[dict]):
        self._items = iter(samples)

    def get_next(self) -> dict | None:
        return next(self._items, None)


def foreign_part(root: Path) -> dict:
    original = demo.fetch_model("vad")
    samples = demo.make_samples("vad", 3)
    save_samples(samples, root / "vad-data")
    qdq = root / "vad_qdq.onnx"
    quantize_static(str(original), str(qdq), _Reader(samples), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
    result = {}
    for label, reference in (("rebuilt", None), ("float_model", str(original))):
        evaluator = Evaluator(EvalSpec(str(qdq), str(root / "vad-data"), float_model=reference))
        scores = evaluator.evaluate(evaluator.model.assignment())
        result[label] = {o: round(float(np.mean(scores.values[o]["cosine-similarity"])), 4) for o in evaluator.outputs}
    quantized, floats = ort.InferenceSession(str(qdq)), ort.InferenceSession(str(original))
    names = [o.name for o in quantized.get_outputs()]
    truth: dict[str, list[float]] = {n: [] for n in names}
    for sample in load_samples(root / "vad-data", model_inputs(onnx.load(str(qdq)))):
        for n, q, f in zip(names, quantized.run(names, sample), floats.run(names, sample)):
            truth[n].append(float(np.dot(q.ravel(), f.ravel()) / np.linalg.norm(q) / np.linalg.norm(f)))
    result["onnxruntime_qdq_vs_float"] = {n: round(float(np.mean(v)), 4) for n, v in truth.items()}
    return result


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        report = {"load_before": os.getloadavg()[0], "ledger": ledger_part(root), "foreign_qdq": foreign_part(root)}
        report["load_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
