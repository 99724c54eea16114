"""Whether a model bundle fits in the inference function: Lambda's limit on unzipped code, and the
runtime the bundle shares it with. Standard library only: the CDK app checks it at synth."""

from __future__ import annotations

from pathlib import Path

# Lambda's limit on a function's code, unzipped (layers included): 250 MB
LAMBDA_UNZIPPED_LIMIT_BYTES = 262_144_000
# the inference asset without its bundle (handler, packages, onnxruntime, numpy): 88-98 MiB as built
# by `make assets` (.build/assets-report.txt, arm64 / x86_64); rounded up
INFERENCE_RUNTIME_BYTES = 100 * 2**20


def folder_bytes(root: str | Path) -> int:
    """The bytes of every file under ``root``."""
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())


def budget_bytes(budget_mib: float) -> int:
    """The setting ``inference_size_budget_mib`` in bytes."""
    return int(budget_mib * 2**20)


def size_budget_problem(
    bundle_bytes: int, runtime_bytes: int = INFERENCE_RUNTIME_BYTES, limit_bytes: int = LAMBDA_UNZIPPED_LIMIT_BYTES
) -> str | None:
    """Why the bundle(s) cannot fit in the inference function next to its runtime; None when they fit."""
    total = bundle_bytes + runtime_bytes
    if total <= limit_bytes:
        return None
    whose = (
        "Lambda's limit on a function's unzipped code is 250 MB"
        if limit_bytes >= LAMBDA_UNZIPPED_LIMIT_BYTES
        else "the setting inference_size_budget_mib; Lambda's own limit is 250 MB"
    )
    return (
        f"the model bundle ({bundle_bytes / 2**20:.1f} MiB) and the inference runtime ({runtime_bytes / 2**20:.0f} MiB) make "
        f"{total / 2**20:.1f} MiB, over the budget of {limit_bytes / 2**20:.1f} MiB ({whose}); "
        "shrink the model (fewer or shallower trees, --quantize) or serve it from a container image"
    )
