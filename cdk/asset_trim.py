"""Trim a Lambda asset folder and precompile its bytecode. Standard library only.

Used by the local bundler (``cdk/bundling.py``) and, inside the Docker fallback, run as a script:
``python asset_trim.py <asset dir>`` (the bundling image's Python is the runtime's, so the
bytecode matches).

What goes: things Lambda never loads (tests, type stubs, C sources and headers, console scripts,
onnxruntime's training / transformers / tools / quantization sub-packages), boto3 and botocore
(the Python runtime ships them) and ``__pycache__`` left by anything. ``*.dist-info`` stays (small,
and importlib.metadata lookups need it).
"""

from __future__ import annotations

import compileall
import os
import py_compile
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

# bump when the rules change: part of the dependency cache key
TRIM_VERSION = "5"

# top-level distributions the Lambda Python runtime already provides
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
# sub-packages never imported by inference (onnxruntime.InferenceSession needs none of them)
PRUNED_SUBPACKAGES = (
    "onnxruntime/training",
    "onnxruntime/transformers",
    "onnxruntime/tools",
    "onnxruntime/quantization",
    "onnxruntime/datasets",
    "onnxruntime/backend",
    "aws_lambda_powertools/event_handler",  # Powertools' own HTTP router: Starlette's routes here
)
# Distributions onnxruntime declares only for the sub-packages pruned above (model tools, quantization):
# InferenceSession never imports them. Removed only from an asset that has onnxruntime.
ONNXRUNTIME_TOOL_DEPS = ("google/protobuf", "google/_upb", "protobuf", "flatbuffers", "sympy", "mpmath", "coloredlogs", "humanfriendly")
PRUNED_DIR_NAMES = ("__pycache__", "tests", "bin")
PRUNED_SUFFIXES = (".pyi", ".pyx", ".pxd", ".pxi", ".c", ".cc", ".cpp", ".h", ".hpp", ".a")


@dataclass
class TrimReport:
    removed_files: int = 0
    removed_bytes: int = 0
    removed: list[str] = field(default_factory=list)  # top-level paths removed whole

    def add(self, path: Path) -> None:
        n, b = _count(path)
        self.removed_files += n
        self.removed_bytes += b


def _count(path: Path) -> tuple[int, int]:
    if path.is_symlink() or path.is_file():
        return 1, path.lstat().st_size
    n = b = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            n += 1
            b += os.lstat(p).st_size
    return n, b


def _remove(path: Path, report: TrimReport, rel_root: Path) -> None:
    report.add(path)
    report.removed.append(str(path.relative_to(rel_root)))
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


# The serving asset's extra cuts (to stay under its size budget): sub-packages the inference path never
# imports, checked by benchmarks/bench_bundle_size.py, which imports the handler from the built asset
# and answers /health and /predict. Add back here whatever new code starts to import.
SERVING_PRUNE = (
    "numpy/f2py",  # a build tool for Fortran extensions (scipy's compiled modules do import it: drift check keeps it)
    "numpy/ma",
    "numpy/polynomial",
    # numpy imports these lazily (numpy.__getattr__); nothing on the inference path touches them:
    # 4.3 MiB, the room nanoarrow (Arrow bodies) takes
    "numpy/random",
    "numpy/fft",
    "pydantic/v1",  # the pydantic 1 compatibility layer
    *(
        f"aws_lambda_powertools/utilities/{u}"
        for u in (
            "parser",
            "data_classes",
            "batch",
            "idempotency",
            "kafka",
            "streaming",
            "feature_flags",
            "data_masking",
            "validation",
            "auth_alpha",
            "circuit_breaker",
            "parameters",
        )
    ),
)


def trim(root: str | os.PathLike[str], keep_bin: bool = False, extra: tuple[str, ...] = ()) -> TrimReport:
    """Remove from ``root`` (a pip --target folder) what Lambda never needs, plus the ``extra`` paths."""
    root = Path(root)
    report = TrimReport()
    for sub in extra:
        _remove_if_present(root / sub, report, root)
    for name in RUNTIME_PROVIDED:
        for p in list(root.glob(f"{name}")) + list(root.glob(f"{name}-*.dist-info")):
            _remove(p, report, root)
    for sub in PRUNED_SUBPACKAGES:
        _remove_if_present(root / sub, report, root)
    if (root / "onnxruntime").is_dir():
        _trim_onnxruntime_tools(root, report)
    _trim_tree(root, report, keep_bin)
    return report


def _remove_if_present(path: Path, report: TrimReport, rel_root: Path) -> None:
    if path.exists():
        _remove(path, report, rel_root)


def _trim_onnxruntime_tools(root: Path, report: TrimReport) -> None:
    """The distributions only onnxruntime's pruned tools need, an emptied ``google`` namespace, and the
    runtime's second copy."""
    for name in ONNXRUNTIME_TOOL_DEPS:
        for p in [root / name, *root.glob(f"{name.split('/')[-1]}-*.dist-info")]:
            _remove_if_present(p, report, root)
    google = root / "google"
    if google.is_dir() and not any(c for c in google.iterdir() if c.name != "__pycache__"):
        _remove(google, report, root)
    _drop_duplicate_onnxruntime_library(root, report)


def _trim_tree(root: Path, report: TrimReport, keep_bin: bool) -> None:
    """Everywhere below ``root``: tests, caches and sources Lambda never loads (``bin`` only at the top,
    and only unless ``keep_bin``: console scripts)."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=True):
        here = Path(dirpath)
        for d in list(dirnames):
            if d in PRUNED_DIR_NAMES and not (d == "bin" and (keep_bin or here != root)):
                _remove(here / d, report, root)
                dirnames.remove(d)
        for f in filenames:
            if f.endswith(PRUNED_SUFFIXES):
                p = here / f
                report.add(p)
                p.unlink()


def _drop_duplicate_onnxruntime_library(root: Path, report: TrimReport) -> None:
    """The wheel ships the runtime twice: statically inside the Python extension and as libonnxruntime.so
    (for C API users). When the extension does not load the shared library, the latter is dead weight."""
    capi = root / "onnxruntime" / "capi"
    extensions = list(capi.glob("onnxruntime_pybind11_state*.so"))
    if len(extensions) != 1 or b"libonnxruntime.so" in extensions[0].read_bytes():
        return
    for lib in capi.glob("libonnxruntime.so*"):
        _remove(lib, report, root)


def compile_bytecode(root: str | os.PathLike[str], workers: int = 0) -> bool:
    """Precompile every module into __pycache__ with unchecked hashes (Lambda's /var/task is read-only,
    so without this every cold start compiles in memory). Must run on the runtime's Python version."""
    return bool(
        compileall.compile_dir(
            str(root),
            quiet=1,
            workers=workers,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    )


def tree_size(root: str | os.PathLike[str]) -> tuple[int, int]:
    """(files, bytes) under root, symlinks counted as themselves."""
    return _count(Path(root))


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python asset_trim.py <asset dir> [extra relative paths to remove]", file=sys.stderr)
        return 2
    report = trim(argv[1], extra=tuple(argv[2:]))
    ok = compile_bytecode(argv[1])
    files, size = tree_size(argv[1])
    print(
        f"trimmed {report.removed_files} files ({report.removed_bytes / 2**20:.1f} MiB); "
        f"asset {files} files, {size / 2**20:.1f} MiB; bytecode {'ok' if ok else 'had errors'}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
