"""Unsigned symmetric activations: zero point 0, and a tensor that is never negative uses the unsigned range.

Chips without asymmetric quantization commonly still have unsigned int8 for tensors that are never negative
(post-ReLU, magnitudes, probabilities): AIMET QuantSim's `use_unsigned_symmetric` (its default), OpenVINO/NNCF's
unsigned activations, x86 VNNI's u8 operand. Such a tensor quantizes over [0, T] with 2^bits - 1 steps (uint8:
scale T/255, zero point 0) instead of [-T, T] with 2^(bits-1) - 1 (int8: T/127), twice the resolution, with
no zero point to add. Signed tensors stay symmetric. A profile turns it on (`HardwareProfile.unsigned`).

In the IR this is the asymmetric form with rmin = 0 (`CalibrationNode.symmetric` False): its quantization
parameters are exactly uint8 (int16 nodes: uint16) with zero point 0, and the QDQ export writes them so. The
thresholds are the symmetric scheme's (a percentile of |x|, which is x there; mse's threshold is fitted to 255
steps).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from autoprec.calibration.methods import Collection
from autoprec.ir import FEATURE, CalibrationNode


def make_unsigned(nodes: Mapping[str, CalibrationNode], collection: Collection) -> list[str]:
    """Make every feature node whose tensor's calibrated minimum is >= 0 unsigned: each alternative range
    becomes [0, T] with T from `Collection.unsigned_ranges`, and its own range the first alternative.
    Returns the names of the nodes changed."""
    unsigned = [c for c in nodes.values() if c.tensor_type == FEATURE and collection.minmax[c.tensor][0] >= 0]
    labels = {label for cal in unsigned for label in cal.alternatives}
    ranges = {label: collection.unsigned_ranges(label) for label in labels}
    for cal in unsigned:
        cal.symmetric = False
        cal.alternatives = {label: (0.0, float(ranges[label][cal.tensor][1])) for label in cal.alternatives}
        cal.rmin, cal.rmax = (np.float64(v) for v in next(iter(cal.alternatives.values())))
    return [cal.name for cal in unsigned]
