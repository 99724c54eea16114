"""Dynamic int8 quantization of a bundle's graph, with what it costs (size, latency, quality) and
a refusal past the tolerance."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelserve.schema import BundleManifest, FeatureSpec, Task
from serving.model import ModelRunner

from .frames import table_from_frame
from .graph_checks import largest_diff, runner_for
from .performance import quality


class QuantizationRejected(ValueError):
    """int8 quantization cost more accuracy than allowed."""


def quantize_checked(
    manifest: BundleManifest,
    model_bytes: bytes,
    reference: Any,
    specs: Sequence[FeatureSpec],
    target: Any,
    accuracy_tolerance: float,
) -> tuple[bytes, dict[str, Any]]:
    """Dynamic int8 quantization with its size, latency and accuracy change; refuse past the tolerance."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "f32.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(model_bytes)
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        q_bytes = dst.read_bytes()
    table = table_from_frame(reference, specs)
    before, after = runner_for(manifest, model_bytes), runner_for(manifest, q_bytes)
    p_before, p_after = before.predict(table), after.predict(table)
    q_before = quality(manifest.outputs, p_before, target)
    q_after = quality(manifest.outputs, p_after, target)
    key = "accuracy" if manifest.outputs.task is Task.CLASSIFICATION else "neg_mae"
    drop = (q_before[key] - q_after[key]) if key == "accuracy" else (q_after["mae"] - q_before["mae"])
    classifier = manifest.outputs.task is Task.CLASSIFICATION
    report = {
        ("parity_vs_float_max_abs_diff" if classifier else "parity_vs_float_max_rel_diff"): largest_diff(
            p_before.probabilities if classifier else p_before.labels,
            p_after.probabilities if classifier else p_after.labels,
            relative=not classifier,
        ),
        "bytes_before": len(model_bytes),
        "bytes_after": len(q_bytes),
        "latency_ms_before": _median_latency_ms(before, table),
        "latency_ms_after": _median_latency_ms(after, table),
        "quality_before": q_before,
        "quality_after": q_after,
        "quality_drop": drop,
        "labels_changed": int(np.sum(p_before.labels != p_after.labels)),
        "graph_changed": q_bytes != model_bytes,
    }
    if drop > accuracy_tolerance:
        raise QuantizationRejected(
            f"int8 quantization drops quality by {drop:.4f} (> tolerance {accuracy_tolerance}); bundle not written. {report}"
        )
    return q_bytes, report


def _median_latency_ms(runner: ModelRunner, table: dict[str, np.ndarray], repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        runner.predict(table)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))
