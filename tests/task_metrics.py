"""Task metrics used by the tests: user functions as `--task-metric tests/task_metrics.py:NAME` takes them."""

from __future__ import annotations

import numpy as np

from autoprec.demo.metrics import label_agreement


def speech_agreement(floats: list[dict], quantized: list[dict]) -> float:
    """silero-vad's task: the share of frames whose speech / no-speech decision (p > 0.5) matches float."""
    decide = [np.concatenate([s["speech_probs"] for s in outputs]) > 0.5 for outputs in (floats, quantized)]
    return float(np.mean(decide[0] == decide[1]))


def not_finite(floats: list[dict], quantized: list[dict]) -> float:
    return float("nan")


def labels_kept_pooled(floats: list[dict], quantized: list[dict]) -> float:
    """magika's share of labels kept, returned as one pooled number instead of one value per file."""
    return float(np.mean(label_agreement(floats, quantized)))


def one_value_too_many(floats: list[dict], quantized: list[dict]) -> np.ndarray:
    return np.ones(len(quantized) + 1)


def infinite_when_changed(floats: list[dict], quantized: list[dict]) -> np.ndarray:
    """One value per clip: 1 where speech_probs is float's bit for bit, else inf (a user's division by zero)."""
    same = [np.array_equal(f["speech_probs"], q["speech_probs"]) for f, q in zip(floats, quantized)]
    return np.where(same, 1.0, np.inf)


def speech_recall(floats: list[dict], quantized: list[dict]) -> float:
    """The share of float's speech frames (p > 0.5) that stay speech: NaN (0/0) on clips without speech."""
    speech = [np.concatenate([s["speech_probs"] for s in outputs]).ravel() > 0.5 for outputs in (floats, quantized)]
    return float(np.sum(speech[0] & speech[1]) / np.sum(speech[0])) if speech[0].any() else float("nan")
