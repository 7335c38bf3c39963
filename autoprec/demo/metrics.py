"""Task metrics of the demo models: what a user of the model acts on, scored against the float model's own.

`autoprec demo magika` searches on `label_agreement` instead of output cosine: magika is a classifier, and what
its users deploy is the label. Near 1.0, a mean cosine of its probabilities is a flip-rate target in disguise
(one flipped file in 16 costs 0.03-0.06 of the mean) that also fails configs whose probabilities move without a
label changing (benchmarks/RESULTS.md, "Held-out check").
"""

from __future__ import annotations

import numpy as np


def label_agreement(floats: list[dict[str, np.ndarray]], quantized: list[dict[str, np.ndarray]]) -> float:
    """A classifier's task: the share of samples (rows of the first output, over all samples) whose top-1
    label matches the float model's."""
    name = next(iter(floats[0]))
    labels = [
        np.concatenate([s[name].reshape(-1, s[name].shape[-1]).argmax(-1) for s in o]) for o in (floats, quantized)
    ]
    return float(np.mean(labels[0] == labels[1]))
