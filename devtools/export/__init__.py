"""Building model bundles: from a fitted scikit-learn pipeline (skl2onnx) or from a ready ONNX file.

One module per concern; the names below are the public entry points (the command line, the docs
and the tests import them from ``devtools.export``):

- ``sklearn_pipeline``: ``export_sklearn`` (``python -m devtools export``);
- ``onnx_model``: ``export_onnx`` (``python -m devtools export-onnx``) and its ``schema_file``;
- ``frames``: the training frame (``prepare_frame``), the table the graph is fed, the reference sample;
- ``graph_checks``: parity, row-by-row serving, class labels, canonical bytes;
- ``estimator``: what a fitted estimator is and the mistakes seen in it before converting;
- ``parity_diagnosis``: the cause of a parity failure, found in the source model (float32 rounding, calibration, ...);
- ``performance``: the reference performance the drift check compares labels with;
- ``quantize``: checked int8 quantization;
- ``problems``: ``ExportProblems``, every problem with an export's inputs on its own line.

Heavy imports (pandas, scikit-learn, skl2onnx, onnx) stay inside functions: this package never runs in Lambda.
"""

from __future__ import annotations

from .frames import (
    MIN_REFERENCE_ROWS,
    check_reference_size,
    class_name,
    load_frame,
    prepare_frame,
    reference_rows_from_frame,
    sample_reference,
    table_from_frame,
)
from .graph_checks import (
    PARITY_TOLERANCE,
    ParityError,
    ServingCheckError,
    canonical_bytes,
    check_parity,
    check_row_by_row,
    graph_class_labels,
)
from .onnx_model import export_onnx, load_schema
from .performance import HOLDOUT_SHARE, refit_holdout_performance, served_performance
from .problems import ExportProblems
from .quantize import QuantizationRejected, quantize_checked
from .sklearn_pipeline import TARGET_OPSET, export_sklearn

__all__ = [
    "HOLDOUT_SHARE",
    "MIN_REFERENCE_ROWS",
    "PARITY_TOLERANCE",
    "TARGET_OPSET",
    "ExportProblems",
    "ParityError",
    "QuantizationRejected",
    "ServingCheckError",
    "canonical_bytes",
    "check_parity",
    "check_reference_size",
    "check_row_by_row",
    "class_name",
    "export_onnx",
    "export_sklearn",
    "graph_class_labels",
    "load_frame",
    "load_schema",
    "prepare_frame",
    "quantize_checked",
    "reference_rows_from_frame",
    "refit_holdout_performance",
    "sample_reference",
    "served_performance",
    "table_from_frame",
]
