"""Task metrics of the demo models: what a user of the model acts on, scored against the float model's own.

`autoprec demo magika` and `autoprec demo ocr_det` search on these instead of output cosine
(benchmarks/RESULTS.md, "Held-out check"):
- magika is a classifier, and what its users get is the label it reports. Near 1.0, a mean cosine of its
  probabilities is a flip-rate target in disguise (one flipped file in 16 costs 0.03-0.06 of the mean) that also
  fails configs whose probabilities move without the reported label changing.
- ocr_det is a text detector whose map is binarized into text regions. On a page without text the float map is
  ~0 everywhere, and the cosine of two ~0 maps is noise (0.86-0.96 on unseen photos where float and quantized
  both find no text pixel): such pages failed winners that detect exactly what float detects.
"""

from __future__ import annotations

import numpy as np

CONFIDENT = 0.5  # magika's medium-confidence threshold: below it, magika reports a generic label, not the model's
NO_LABEL = -1


def label_agreement(floats: list[dict[str, np.ndarray]], quantized: list[dict[str, np.ndarray]]) -> np.ndarray:
    """A classifier's task, per sample: the share of its rows (of the first output; magika classifies one file
    per run) whose reported label matches the float model's, 0 or 1 for one row; the score is their mean. The
    reported label is the top class when its probability is at least CONFIDENT, else none: a near tie of the
    float model (e.g. 0.36 against 0.34, which all-int16 can flip) is no label either way."""
    name = next(iter(floats[0]))

    def reported(sample: dict[str, np.ndarray]) -> np.ndarray:
        probs = sample[name].reshape(-1, sample[name].shape[-1])
        return np.where(probs.max(-1) >= CONFIDENT, probs.argmax(-1), NO_LABEL)

    return np.array([np.mean(reported(f) == reported(q)) for f, q in zip(floats, quantized)])


TEXT_THRESHOLD = 0.3  # rapidocr's DBNet `thresh`: map pixels above it are text, the boxes are cut from that mask


def text_mask_iou(floats: list[dict[str, np.ndarray]], quantized: list[dict[str, np.ndarray]]) -> float:
    """A text detector's task: the intersection over union of the float and quantized text masks (first output
    above TEXT_THRESHOLD), pooled over all samples (a page where neither finds text adds nothing); 1 when
    neither finds any text."""
    name = next(iter(floats[0]))
    inter = union = 0
    for f, q in zip(floats, quantized):
        a, b = f[name] > TEXT_THRESHOLD, q[name] > TEXT_THRESHOLD
        inter, union = inter + int(np.count_nonzero(a & b)), union + int(np.count_nonzero(a | b))
    return inter / union if union else 1.0
