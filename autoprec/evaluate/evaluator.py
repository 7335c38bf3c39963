"""The Evaluator: assignment -> per-output, per-sample scores against the float model.

Each candidate is simulated on the static QDQ graph it would be exported as, with one fixed
onnxruntime configuration (`session.disable_quant_qdq=1`, one intra-op thread per process):
see `autoprec.evaluate.simulator`. Float references are computed once per process. Work is spread over
`jobs` worker processes (joblib/loky); only assignments and sample indices travel to them. Fewer assignments than
`jobs` run in this process instead, their samples over `jobs` threads sharing one session.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from autoprec.data import Sample, load_samples, model_inputs
from autoprec.engine.cost import op_costs
from autoprec.evaluate.incremental import Incremental
from autoprec.evaluate.metrics import compare
from autoprec.evaluate.reference import reconstruction_note, reference_session
from autoprec.evaluate.runs import run_sample, run_threaded
from autoprec.evaluate.scores import Scores
from autoprec.evaluate.segments import Segmenter, segment_count
from autoprec.evaluate.simulator import Simulator
from autoprec.evaluate.task import TASK, TASK_SAMPLES, load_task_metric, pseudo_values, relative_score
from autoprec.ir import CalibratedModel

Assignment = dict[str, str]


@dataclass(frozen=True)
class EvalSpec:
    """What an Evaluator works on; small and hashable, so it is what worker processes receive."""

    model_path: str
    data_path: str
    num_samples: int | None = None
    task_metric: str | None = None  # module:function; workers then also return the raw outputs
    runtime: str = "as-searched"  # or "ort-default": candidates run as onnxruntime's default session deploys them
    float_model: str | None = None  # the true float reference (default: the float graph inside the QDQ model)


class _Worker:
    """Per-process state: the model, its samples, a simulator and the cached float references."""

    def __init__(self, spec: EvalSpec):
        self.model = CalibratedModel.load(spec.model_path)
        self.samples: list[Sample] = load_samples(spec.data_path, model_inputs(self.model.model), spec.num_samples)
        self.simulator = Simulator(self.model, runtime=spec.runtime)
        if spec.runtime == "as-searched" and segment_count() > 1:  # segments cached by content ("ort-default": whole)
            self.simulator.segmenter = Segmenter(self.simulator.open, segment_count())
        self.outputs = [o.name for o in self.model.model.graph.output]
        self._references: dict[int, list[np.ndarray]] = {}
        self._incremental: dict[str, Incremental] = {}
        self.executed = 0.0  # full-model-run equivalents of the runs made by this process
        self._reference = reference_session(spec.float_model, self.model.model) if spec.float_model else None

    def run(self, assignment: Assignment | None, indices: list[int], threads: int = 1) -> list[list[np.ndarray]]:
        """Outputs of `assignment` (None: the float model) on the samples `indices`; a candidate's samples run
        `threads` at a time, sharing its one session (`run_threaded`)."""
        session = self.simulator.session(assignment)
        self.executed += len(indices)
        if assignment is None:  # the float model failing on a sample is the data's fault; a candidate failing is ours
            return [run_sample(session, self.outputs, self.samples[i], i) for i in indices]
        return run_threaded(session, self.outputs, [self.samples[i] for i in indices], threads)

    def incremental(self, background: Assignment) -> Incremental:
        """The incremental runner against `background` (one per background, kept for the process)."""
        key = json.dumps(sorted(background.items()))
        if key not in self._incremental:
            macs = op_costs(self.model, self.samples[0])
            self._incremental[key] = Incremental(self.simulator, self.samples, self.outputs, background, macs)
        return self._incremental[key]

    def references(self, indices: list[int]) -> list[list[np.ndarray]]:
        missing = [i for i in indices if i not in self._references]
        if missing:
            if self._reference is not None:
                computed = [run_sample(self._reference, self.outputs, self.samples[i], i) for i in missing]
            else:
                computed = self.run(None, missing)
            for i, outputs in zip(missing, computed):
                self._references[i] = outputs
        return [self._references[i] for i in indices]

    def scores(
        self, assignment: Assignment, indices: list[int], background: Assignment | None = None, threads: int = 1
    ) -> dict[str, dict[str, list[float]]]:
        """Metrics per output and sample against float; with `background`, run only what differs from it; without,
        the samples run `threads` at a time."""
        refs = self.references(indices)
        result: dict[str, dict[str, list[float]]] = {o: {} for o in self.outputs}
        unchanged: dict[tuple[int, str], dict[str, float]] = {}
        if background is None:
            self.last_outputs = self.run(assignment, indices, threads)
        else:
            runner = self.incremental(background)
            before = runner.executed
            self.last_outputs = runner.run(assignment, indices)
            self.executed += runner.executed - before
            unchanged = runner.unchanged_scores  # outputs the part does not reach score as the background's
        for i, ref, out in zip(indices, refs, self.last_outputs):
            for name, r, q in zip(self.outputs, ref, out):
                if background is None or name in runner.changed:
                    values = compare(r, q)
                else:
                    if (i, name) not in unchanged:
                        unchanged[(i, name)] = compare(r, q)
                    values = unchanged[(i, name)]
                for metric, value in values.items():
                    result[name].setdefault(metric, []).append(value)
        return result


_WORKERS: dict[EvalSpec, tuple[tuple, _Worker]] = {}


def _worker(spec: EvalSpec) -> _Worker:
    """This process's worker for `spec`, rebuilt when the model or data files changed on disk."""
    signature = _signature(spec)
    if spec not in _WORKERS or _WORKERS[spec][0] != signature:
        _WORKERS[spec] = (signature, _Worker(spec))
    return _WORKERS[spec][1]


def _signature(spec: EvalSpec) -> tuple:
    """(path, size, mtime) of the model files and of every data file: changes when a file is rewritten."""
    paths = [Path(spec.model_path), Path(spec.data_path), *([Path(spec.float_model)] if spec.float_model else [])]
    files = [p for p in paths if p.is_file()] + sorted(f for f in Path(spec.data_path).rglob("*") if f.is_file())
    return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)


def _score_chunk(
    spec: EvalSpec, assignment: Assignment, indices: list[int], background: Assignment | None = None, threads: int = 1
) -> tuple[dict, list | None, float]:
    """Scores of one assignment on some samples in this process (`threads` samples at a time), its raw outputs if a
    task metric needs them, and the full-model-run equivalents it took."""
    worker = _worker(spec)
    before = worker.executed
    scores = worker.scores(assignment, indices, background, threads)
    return scores, (worker.last_outputs if spec.task_metric else None), worker.executed - before


def _score_changes(
    spec: EvalSpec, background: Assignment, changes: list[Assignment], indices: list[int], upcoming: list[list[str]]
) -> tuple[list[tuple[dict, list | None]], float]:
    """Scores (and raw outputs) of `background` updated by each of `changes`, run incrementally, and the
    full-model-run equivalents it took. The activations every change in `upcoming` (calibration node lists)
    will need are cached first, in one background run per sample."""
    worker = _worker(spec)
    before = worker.executed
    runner = worker.incremental(background)
    prefetch_start = runner.executed
    runner.prefetch(set().union(*(runner.expected_cut(c) for c in upcoming)), indices)
    worker.executed += runner.executed - prefetch_start
    parts = [_score_chunk(spec, {**background, **change}, indices, background)[:2] for change in changes]
    return parts, worker.executed - before


@dataclass
class Evaluator:
    """Evaluates assignments of one calibrated model on one sample set, `jobs` processes wide."""

    spec: EvalSpec
    jobs: int = 1
    model_runs: int = field(default=0, init=False)
    equivalents: float = field(default=0.0, init=False)  # full-model-run equivalents (MACs run / model MACs)
    seconds: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        local = _worker(self.spec)
        local.references(list(range(len(local.samples))))  # every sample runs on the float model, or a UserError
        self.model = local.model
        self.outputs = local.outputs
        self.num_samples = len(local.samples)
        model_digest = hashlib.sha256(Path(self.spec.model_path).read_bytes())
        if self.spec.float_model:  # another reference gives other scores: another ledger and sensitivity identity
            model_digest.update(Path(self.spec.float_model).read_bytes())
        self.model_hash = model_digest.hexdigest()[:20]
        digest = hashlib.sha256()
        for sample in local.samples:
            for name in sorted(sample):
                digest.update(name.encode() + np.ascontiguousarray(sample[name]).tobytes())
        self.data_hash = digest.hexdigest()[:20]
        if not self.spec.float_model and (note := reconstruction_note(self.model)):
            print(note, file=sys.stderr)
        self._task = load_task_metric(self.spec.task_metric) if self.spec.task_metric else None
        self._task_base: dict[tuple[int, ...], float] = {}
        if self._task is not None:  # check the function on the float outputs before anything is written
            self._task_values(local.references(list(range(self.num_samples))), list(range(self.num_samples)))

    def sample(self, index: int) -> Sample:
        """One input sample (as fed to the model)."""
        return _worker(self.spec).samples[index]

    @property
    def simulator(self) -> Simulator:
        """This process's simulator (sessions for any assignment)."""
        return _worker(self.spec).simulator

    def references(self, indices: list[int]) -> list[list[np.ndarray]]:
        """The float model's outputs (in `outputs` order) of the samples `indices`, computed once."""
        return _worker(self.spec).references(indices)

    def outputs_of(self, assignment: Assignment | None, indices: list[int]) -> list[list[np.ndarray]]:
        """The raw outputs of `assignment` (None: the float model) on the samples `indices`, in this process."""
        return _worker(self.spec).run(assignment, indices)

    def evaluate(self, assignment: Assignment, indices: list[int] | None = None) -> Scores:
        """Scores of one assignment (all samples unless `indices`)."""
        return self.evaluate_many([assignment], indices)[0]

    def evaluate_many(self, assignments: list[Assignment], indices: list[int] | None = None) -> list[Scores]:
        """Scores of several assignments, spread over the worker processes; fewer assignments than jobs run in this
        process, one after the other, each with its samples over `jobs` threads sharing its sessions (created once,
        not once per worker)."""
        indices = list(range(self.num_samples)) if indices is None else list(indices)
        started = time.perf_counter()
        threads = self.jobs if len(assignments) < self.jobs else 1
        splits = 1 if threads > 1 else max(1, min(len(indices), self.jobs // max(1, len(assignments))))
        chunks = [c.tolist() for c in np.array_split(np.asarray(indices), splits) if len(c)]
        tasks = [(a, chunk) for a in assignments for chunk in chunks]
        if self.jobs > 1 and len(tasks) > 1 and threads == 1:
            parts = Parallel(n_jobs=self.jobs, backend="loky")(
                delayed(_score_chunk)(self.spec, a, chunk) for a, chunk in tasks
            )
        else:
            parts = []
            for k, (assignment, chunk) in enumerate(tasks):
                if k + 1 < len(tasks):  # the next candidate's session builds while this one runs
                    _worker(self.spec).simulator.prepare(tasks[k + 1][0])
                parts.append(_score_chunk(self.spec, assignment, chunk, threads=threads))
        self.model_runs += len(assignments) * len(indices)
        self.equivalents += sum(executed for _, _, executed in parts)
        results = self._collect([part[:2] for part in parts], len(chunks), indices)
        self.seconds += time.perf_counter() - started
        return results

    def evaluate_changes(
        self, background: Assignment, changes: list[Assignment], indices: list[int] | None = None,
        upcoming: list[list[str]] | None = None,
    ) -> list[Scores]:  # fmt: skip
        """Scores of `background` updated by each of `changes`, each running only the part of the graph its change
        affects, fed with the background's cached activations (same numbers as `evaluate_many` to rounding).
        `upcoming`: calibration node lists of changes later calls will bring, cached in the same background run."""
        if self.spec.runtime != "as-searched":  # parts are cut from the searched graph, not the deployed one
            return self.evaluate_many([{**background, **change} for change in changes], indices)
        indices = list(range(self.num_samples)) if indices is None else list(indices)
        upcoming = upcoming or [list(c) for c in changes]
        started = time.perf_counter()
        shares = [changes[k :: self.jobs] for k in range(min(self.jobs, len(changes)))]
        if len(shares) > 1:
            done = Parallel(n_jobs=self.jobs, backend="loky")(
                delayed(_score_changes)(self.spec, background, share, indices, upcoming) for share in shares
            )
        else:
            done = [_score_changes(self.spec, background, changes, indices, upcoming)]
        parts: list = [None] * len(changes)
        for k, (share, executed) in enumerate(done):
            parts[k :: self.jobs] = share
            self.equivalents += executed
        self.model_runs += len(changes) * len(indices)
        results = self._collect(parts, 1, indices)
        self.seconds += time.perf_counter() - started
        return results

    def _collect(self, parts: list[tuple[dict, list | None]], chunks: int, indices: list[int]) -> list[Scores]:
        """Scores per assignment from its `chunks` consecutive parts (sample chunks of `indices`)."""
        results = []
        for k in range(len(parts) // chunks):
            mine = parts[k * chunks : (k + 1) * chunks]
            values = {
                out: {m: np.concatenate([p[out][m] for p, _ in mine]) for m in mine[0][0][out]} for out in self.outputs
            }
            if self._task is not None:
                outputs = [o for _, chunk in mine for o in chunk]
                values[TASK] = self._task_values(outputs, indices)
            results.append(Scores(values))
        return results

    def _task_values(self, outputs: list[list[np.ndarray]], indices: list[int]) -> dict[str, np.ndarray]:
        """The task metric of these outputs relative to the float model's own task score, and its per-sample values
        (TASK_SAMPLES): the function's own, or the jackknife pseudo-values of the one number it returns."""
        named = [dict(zip(self.outputs, sample)) for sample in outputs]
        floats = [dict(zip(self.outputs, s)) for s in _worker(self.spec).references(indices)]

        def score(positions: list[int], whole: bool = False) -> float | np.ndarray:
            key = tuple(indices[p] for p in positions)
            picked = [floats[p] for p in positions]
            if key not in self._task_base:
                self._task_base[key] = float(np.mean(relative_score(self._task, picked, picked, 1.0)))
            base = self._task_base[key]
            if not whole and not (np.isfinite(base) and base != 0.0):  # float's own score needs the samples left out
                return float("nan")  # an undefined jackknife value (the whole set's is the user's error)
            return relative_score(self._task, picked, [named[p] for p in positions], base)

        total = score(list(range(len(indices))), whole=True)
        if isinstance(total, np.ndarray):  # one value per sample, the score their mean
            return {TASK: np.array([float(np.mean(total))]), TASK_SAMPLES: total}
        return {TASK: np.array([total]), TASK_SAMPLES: pseudo_values(score, len(indices), total)}
