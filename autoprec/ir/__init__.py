"""The IR: calibrated models as a float graph plus calibration records, and their QDQ ONNX form.

- `records`: `CalibrationNode` (one quantize-dequantize point) and its `QuantParams`;
- `model`: `CalibratedModel`, lookups and qtype / threshold edits;
- `qdq_import` / `qdq_export`: reading any QDQ model, writing the static QDQ model of an assignment;
- `ec`: the error-compensation rewrite (`<op>_split_low`) and its arithmetic;
- `hmct_import` / `hmct_export` / `hmct_attrs`: HMCT's calibrated model (HzCalibration nodes) in and out;
- `float16`: the float16 round trip (saturating Clip -> Cast -> Cast) and its numpy twin.
"""

from autoprec.ir.ec import SPLIT_LOW
from autoprec.ir.model import CalibratedModel
from autoprec.ir.qdq_import import name_nodes
from autoprec.ir.records import (
    ASSIGNABLE,
    EC,
    EC_INPUTS,
    FEATURE,
    FLOATS,
    LEVEL,
    QTYPES,
    WEIGHT,
    CalibrationNode,
    QuantParams,
    base_qtype,
    calibration_name,
    parse_qtype,
)

__all__ = [
    "ASSIGNABLE", "EC", "EC_INPUTS", "FEATURE", "FLOATS", "LEVEL", "QTYPES", "SPLIT_LOW", "WEIGHT",
    "CalibratedModel", "CalibrationNode", "QuantParams", "base_qtype", "calibration_name", "name_nodes",
    "parse_qtype",
]  # fmt: skip
