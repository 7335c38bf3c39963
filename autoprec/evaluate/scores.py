"""Scores: per output, per metric, one value per sample; aggregated over samples by a target."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autoprec.evaluate.metrics import get_metric
from autoprec.model_io import restore, strict


@dataclass
class Scores:
    """Scores of one candidate: output -> metric -> one value per sample."""

    values: dict[str, dict[str, np.ndarray]]

    def aggregate(self, output: str, metric: str, how: str = "mean") -> float:
        per_sample = self.values[output][get_metric(metric).name]
        if how == "mean":
            return float(np.mean(per_sample))
        worst = np.min if get_metric(metric).higher_is_better else np.max
        return float(worst(per_sample))

    def to_json(self) -> dict:
        """Strict-JSON-ready values (a NaN or Inf score as a string, see `autoprec.model_io.strict`)."""
        return strict({out: {m: v.tolist() for m, v in metrics.items()} for out, metrics in self.values.items()})

    @classmethod
    def from_json(cls, data: dict) -> Scores:
        values = restore(data)
        return cls({out: {m: np.asarray(v, dtype=np.float64) for m, v in d.items()} for out, d in values.items()})
