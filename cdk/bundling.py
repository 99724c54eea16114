"""Lambda assets without Docker: pip's cross-platform install into a folder, trimmed and precompiled.

``LocalBundler.try_bundle`` runs::

    pip install --platform manylinux_2_<N>_<arch> ... --platform manylinux2014_<arch>
                --only-binary=:all: --implementation cp --python-version <runtime>
                --no-compile --target <cache> -r <requirements resolved for the target>

where N walks down from the glibc of the runtime's OS (python3.11 runs on Amazon Linux 2,
glibc 2.26; python3.12+ on Amazon Linux 2023, glibc 2.34), so pip never picks a wheel that
would fail to load on Lambda. Environment markers in requirements.txt are evaluated for the
target (pip evaluates them for the interpreter running it). The installed, trimmed and
byte-compiled dependency folder is cached under ``.build/asset-cache/<sha256>`` keyed by the
resolved requirements, platform tags and runtime, so the next synth only copies (hard links).
Then the handler folder, ``modelserve/`` (+ ``monitoring/``) and the model bundle (as
``bundle/``) are copied in.

Docker bundling (the runtime's SAM build image) stays as CDK's fallback when ``try_bundle``
returns False (no pip), or when asked for with ``MS_BUNDLING=docker``.

Switches (environment variable, or CDK context ``-c key=value``):
- ``MS_SKIP_BUNDLING=1`` / ``MS_BUNDLING=skip`` / ``-c modelserve:bundling=skip``: assets are
  the source folders only (no dependencies); for tests and quick synths, never for a deploy.
- ``MS_PREBUILT_ASSETS=<dir>`` / ``-c modelserve:prebuilt-assets=<dir>``: use
  ``<dir>/inference`` and ``<dir>/drift_check`` as built (e.g. by ``benchmarks/bench_bundle_size.py``).
- ``MS_BYTECODE_PYTHON=<path>``: interpreter used for bytecode (must be the runtime's version).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

from modelserve.schema import MODEL_FILE

from . import asset_trim

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_ROOT = REPO_ROOT / ".build" / "asset-cache"

# glibc minor version of the OS under each Lambda Python runtime
RUNTIME_GLIBC_MINOR = {"3.11": 26, "3.12": 34, "3.13": 34}
RUNTIME_OS = {"3.11": "Amazon Linux 2 (glibc 2.26)", "3.12": "Amazon Linux 2023 (glibc 2.34)", "3.13": "Amazon Linux 2023 (glibc 2.34)"}
PIP_ARCH = {"arm64": "aarch64", "x86_64": "x86_64"}
DOCKER_PLATFORM = {"arm64": "linux/arm64", "x86_64": "linux/amd64"}

ENV_MODE = "MS_BUNDLING"
ENV_SKIP = "MS_SKIP_BUNDLING"
ENV_PREBUILT = "MS_PREBUILT_ASSETS"
ENV_BYTECODE_PYTHON = "MS_BYTECODE_PYTHON"
CTX_MODE = "modelserve:bundling"
CTX_PREBUILT = "modelserve:prebuilt-assets"
MODES = ("local", "docker", "skip", "prebuilt")
BUNDLE_DIR_IN_ASSET = "bundle"
CHALLENGER_DIR_IN_ASSET = "bundle_challenger"  # the challenger's bundle (challenger_mode on; docs/versions.md)
# what the drift check leaves out of the challenger's bundle: it reads the manifest and the reference
# sample (the challenger's own drift report), never scores, so the ONNX graph would be dead weight
DRIFT_CHECK_CHALLENGER_EXCLUDE: tuple[str, ...] = (MODEL_FILE,)

# What each function's asset carries of this repo, besides lambda/<name>/ and the model bundle: the
# packages of the code it runs, nothing else (developer tools, tests and benchmarks never ship).
ASSET_PACKAGES: dict[str, tuple[str, ...]] = {
    "inference": ("modelserve", "serving"),
    "drift_check": ("modelserve", "driftcheck", "monitoring"),
}
_SOURCE_IGNORE = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache")
_SOURCE_IGNORE_SUFFIXES = (".pyc", ".pyo")

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class AssetSpec:
    """What goes into one function's asset."""

    name: str  # "inference" | "drift_check": also the folder name of a prebuilt asset
    handler_dir: Path  # lambda/<name>: handler.py + requirements.txt
    packages: tuple[Path, ...]  # repo packages copied whole (modelserve, monitoring)
    bundle_dir: Path  # the model bundle folder, copied as bundle/
    python_version: str  # "3.12"
    architecture: str  # "arm64" | "x86_64"
    prune: tuple[str, ...] = ()  # extra paths (relative to the asset root) removed from the dependencies
    challenger_dir: Path | None = None  # a second bundle, copied as bundle_challenger/ (challenger on)
    challenger_exclude: tuple[str, ...] = ()  # files of the challenger's bundle left out (the drift check: its graph)

    @property
    def requirements(self) -> Path:
        return self.handler_dir / "requirements.txt"

    @property
    def runtime(self) -> lambda_.Runtime:
        return python_runtime(self.python_version)


def python_runtime(version: str) -> lambda_.Runtime:
    known = {
        "3.11": lambda_.Runtime.PYTHON_3_11,
        "3.12": lambda_.Runtime.PYTHON_3_12,
        "3.13": lambda_.Runtime.PYTHON_3_13,
    }
    return known.get(version) or lambda_.Runtime(f"python{version}", lambda_.RuntimeFamily.PYTHON)


# ---------------------------------------------------------------- pip inputs


def platform_tags(python_version: str, architecture: str) -> list[str]:
    """Every manylinux tag the runtime's glibc can load, newest first."""
    arch = PIP_ARCH[architecture]
    glibc = RUNTIME_GLIBC_MINOR.get(python_version, 34)
    tags = [f"manylinux_2_{m}_{arch}" for m in range(glibc, 16, -1)] + [f"manylinux2014_{arch}"]
    if arch == "x86_64":
        tags += [f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return tags


def _marker_environment(python_version: str, architecture: str) -> dict[str, str]:
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{python_version}.0",
        "os_name": "posix",
        "platform_machine": PIP_ARCH[architecture],
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": f"{python_version}.0",
        "python_version": python_version,
        "sys_platform": "linux",
    }


def _marker_class() -> Any:
    try:
        from packaging.markers import Marker
    except ImportError:  # pip always vendors it
        from pip._vendor.packaging.markers import Marker  # type: ignore[no-redef]
    return Marker


def resolve_requirements(path: Path, python_version: str, architecture: str) -> str:
    """requirements.txt with environment markers evaluated for the Lambda target, not this machine.

    Lines whose marker is false are dropped, true markers are removed; ``-r``/``-c`` includes get
    absolute paths (and are not resolved further: keep markers in the top file)."""
    Marker = _marker_class()
    env = _marker_environment(python_version, architecture)
    out: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.startswith(("-r ", "-c ", "--requirement ", "--constraint ")):
            opt, _, target = line.partition(" ")
            out.append(f"{opt} {(path.parent / target.strip()).resolve()}")
            continue
        if line.startswith("-"):
            out.append(line)
            continue
        req, sep, marker = line.partition(";")
        if sep and not Marker(marker.strip()).evaluate(env):
            continue
        out.append(req.strip())
    return "\n".join(out) + "\n"


def dependency_key(spec: AssetSpec, resolved_requirements: str, bytecode: bool) -> str:
    h = hashlib.sha256()
    for part in (
        resolved_requirements,
        " ".join(platform_tags(spec.python_version, spec.architecture)),
        spec.python_version,
        spec.architecture,
        asset_trim.TRIM_VERSION,
        " ".join(spec.prune),
        f"bytecode={bytecode}",
    ):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _iter_files(root: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SOURCE_IGNORE)
        for f in sorted(filenames):
            if not f.endswith(_SOURCE_IGNORE_SUFFIXES):
                yield Path(dirpath) / f


def source_hash(spec: AssetSpec) -> str:
    """Asset hash over everything that ends up in the asset: CDK re-bundles only when it changes."""
    h = hashlib.sha256()
    h.update(resolve_requirements(spec.requirements, spec.python_version, spec.architecture).encode())
    h.update(" ".join(platform_tags(spec.python_version, spec.architecture)).encode())
    h.update(f"{spec.python_version}|{spec.architecture}|{asset_trim.TRIM_VERSION}|{' '.join(spec.prune)}".encode())
    challenger = [("challenger", spec.challenger_dir)] if spec.challenger_dir is not None else []
    for label, root in [("handler", spec.handler_dir), ("bundle", spec.bundle_dir)] + challenger + [(p.name, p) for p in spec.packages]:
        for f in _iter_files(root):
            if label == "challenger" and f.relative_to(root).as_posix() in spec.challenger_exclude:
                continue
            h.update(f"{label}/{f.relative_to(root).as_posix()}\0".encode())
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


# ---------------------------------------------------------------- interpreters


def _python_version_of(exe: str) -> str | None:
    try:
        out = subprocess.run(
            [exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_python(version: str) -> str | None:
    """An interpreter of exactly ``version`` (for bytecode): MS_BYTECODE_PYTHON, this one, PATH, pyenv."""
    candidates: list[str] = []
    if os.environ.get(ENV_BYTECODE_PYTHON):
        candidates.append(os.environ[ENV_BYTECODE_PYTHON])
    if "%d.%d" % sys.version_info[:2] == version:
        candidates.append(sys.executable)
    for name in (f"python{version}",):
        found = shutil.which(name)
        if found:
            candidates.append(found)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for exe in candidates:
        if exe and os.path.exists(exe) and _python_version_of(exe) == version:
            return exe
    return None


# ---------------------------------------------------------------- building


@dataclass
class BuildResult:
    output_dir: Path
    dependency_dir: Path
    cache_hit: bool
    seconds_install: float = 0.0
    seconds_assemble: float = 0.0
    bytecode_python: str | None = None
    files: int = 0
    bytes: int = 0
    trimmed_bytes: int = 0
    notes: list[str] = field(default_factory=list)


class BundlingError(RuntimeError):
    pass


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def install_dependencies(spec: AssetSpec, cache_root: Path = CACHE_ROOT, log: Log = _stderr) -> tuple[Path, bool, dict[str, Any]]:
    """The cached dependency folder for ``spec`` (built now if missing): (path, cache_hit, info)."""
    resolved = resolve_requirements(spec.requirements, spec.python_version, spec.architecture)
    py = find_python(spec.python_version)
    key = dependency_key(spec, resolved, bytecode=py is not None)
    final = cache_root / key
    marker = final / ".modelserve-deps.json"
    if marker.is_file():
        return final, True, json.loads(marker.read_text())

    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = cache_root / f"{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    req_file = cache_root / f"{key}.requirements.txt"
    req_file.write_text(resolved)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        "--target",
        str(tmp),
        "--implementation",
        "cp",
        "--python-version",
        spec.python_version,
        "--only-binary=:all:",
        "--no-compile",
    ]
    for tag in platform_tags(spec.python_version, spec.architecture):
        cmd += ["--platform", tag]
    cmd += ["-r", str(req_file)]
    log(f"[bundling {spec.name}] pip install for python{spec.python_version} {spec.architecture} -> {tmp}")
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        hint = (
            f"python{spec.python_version} Lambda functions run on {RUNTIME_OS.get(spec.python_version, 'Amazon Linux')}: "
            f"only wheels tagged manylinux <= 2.{RUNTIME_GLIBC_MINOR.get(spec.python_version, 34)} load there. "
            "Pin versions that publish such wheels in "
            f"{spec.requirements.relative_to(REPO_ROOT) if spec.requirements.is_relative_to(REPO_ROOT) else spec.requirements}, "
            "or choose a newer python_runtime (3.12+ runs on Amazon Linux 2023)."
        )
        raise BundlingError(f"pip could not install the {spec.name} dependencies:\n{tail}\n{hint}")
    seconds_pip = time.monotonic() - t0

    report = asset_trim.trim(tmp, extra=spec.prune)
    seconds_compile = 0.0
    if py:
        t1 = time.monotonic()
        _compile(py, tmp, log, spec.name)
        seconds_compile = time.monotonic() - t1
    else:
        log(
            f"[bundling {spec.name}] WARNING: no python{spec.python_version} interpreter found "
            f"(set {ENV_BYTECODE_PYTHON}); shipping without precompiled bytecode (slower cold starts)"
        )
    info = {
        "python_version": spec.python_version,
        "architecture": spec.architecture,
        "platform_tags": platform_tags(spec.python_version, spec.architecture),
        "requirements": resolved,
        "bytecode_python": py,
        "trimmed_files": report.removed_files,
        "trimmed_bytes": report.removed_bytes,
        "seconds_pip": round(seconds_pip, 1),
        "seconds_compile": round(seconds_compile, 1),
    }
    (tmp / ".modelserve-deps.json").write_text(json.dumps(info, indent=2))
    try:
        os.replace(tmp, final)
    except OSError:  # another synth finished the same key first
        shutil.rmtree(tmp, ignore_errors=True)
    log(
        f"[bundling {spec.name}] dependencies ready in {seconds_pip:.0f} s pip + {seconds_compile:.0f} s bytecode; "
        f"trimmed {report.removed_bytes / 2**20:.1f} MiB; cached as {final}"
    )
    return final, False, info


def _compile(py: str, root: Path, log: Log, name: str) -> None:
    proc = subprocess.run(
        [py, "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash", str(root)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:  # a module with syntax for another version is not fatal: it just stays uncompiled
        log(f"[bundling {name}] bytecode: some files did not compile:\n" + "\n".join(proc.stdout.splitlines()[-5:]))


def _copy_sources(src: Path, dst: Path, skip_requirements: bool = False, exclude: tuple[str, ...] = ()) -> None:
    """``exclude``: file names left out of ``src``'s top folder."""

    def ignore(dirpath: str, names: list[str]) -> set[str]:
        out = {n for n in names if n in _SOURCE_IGNORE or n.endswith(_SOURCE_IGNORE_SUFFIXES)}
        if Path(dirpath) == src:
            out |= {n for n in names if n in exclude}
        if skip_requirements:
            out |= {n for n in names if n.startswith("requirements") and n.endswith(".txt")}
        return out

    shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True)


def assemble(spec: AssetSpec, output_dir: str | Path, cache_root: Path = CACHE_ROOT, log: Log = _stderr) -> BuildResult:
    """Build the complete asset folder for ``spec`` into ``output_dir``."""
    output_dir = Path(output_dir)
    t0 = time.monotonic()
    deps, hit, info = install_dependencies(spec, cache_root, log)
    t1 = time.monotonic()
    output_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        deps,
        output_dir,
        dirs_exist_ok=True,
        copy_function=_link_or_copy,
        ignore=lambda d, names: {".modelserve-deps.json"} if Path(d) == deps else set(),
    )
    _copy_sources(spec.handler_dir, output_dir, skip_requirements=True)
    for pkg in spec.packages:
        _copy_sources(pkg, output_dir / pkg.name)
    _copy_sources(spec.bundle_dir, output_dir / BUNDLE_DIR_IN_ASSET)
    if spec.challenger_dir is not None:
        _copy_sources(spec.challenger_dir, output_dir / CHALLENGER_DIR_IN_ASSET, exclude=spec.challenger_exclude)
    py = info.get("bytecode_python")
    if py and os.path.exists(py):
        # only our own code: the dependencies came precompiled from the cache
        subprocess.run(
            [
                py,
                "-m",
                "compileall",
                "-q",
                "--invalidation-mode",
                "unchecked-hash",
                *[str(output_dir / p.name) for p in spec.packages],
                *[str(output_dir / f.name) for f in spec.handler_dir.glob("*.py")],
            ],
            capture_output=True,
            text=True,
        )
    files, size = asset_trim.tree_size(output_dir)
    result = BuildResult(
        output_dir=output_dir,
        dependency_dir=deps,
        cache_hit=hit,
        seconds_install=t1 - t0,
        seconds_assemble=time.monotonic() - t1,
        bytecode_python=py,
        files=files,
        bytes=size,
        trimmed_bytes=int(info.get("trimmed_bytes", 0)),
    )
    log(
        f"[bundling {spec.name}] asset {size / 2**20:.1f} MiB in {files} files "
        f"({'cached dependencies' if hit else 'fresh install'}, {result.seconds_install + result.seconds_assemble:.1f} s)"
    )
    return result


@jsii.implements(cdk.ILocalBundling)
class LocalBundler:
    """CDK local bundling hook: builds the asset with pip on this machine, no Docker."""

    def __init__(self, spec: AssetSpec, cache_root: Path = CACHE_ROOT) -> None:
        self.spec = spec
        self.cache_root = cache_root

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_: Any) -> bool:
        try:
            import pip  # noqa: F401
        except ImportError:
            _stderr(f"[bundling {self.spec.name}] pip is not available: falling back to Docker bundling")
            return False
        assemble(self.spec, output_dir, self.cache_root)
        return True


# ---------------------------------------------------------------- CDK Code


def resolve_mode(context: Any) -> tuple[str, Path | None]:
    """(mode, prebuilt folder) from the environment, then CDK context. ``context`` is a construct node."""
    prebuilt = os.environ.get(ENV_PREBUILT) or context.try_get_context(CTX_PREBUILT)
    if os.environ.get(ENV_SKIP, "").strip().lower() in ("1", "true", "yes"):
        mode = "skip"
    elif prebuilt:
        mode = "prebuilt"
    else:
        mode = (os.environ.get(ENV_MODE) or context.try_get_context(CTX_MODE) or "local").strip().lower()
    if mode not in MODES:
        raise ValueError(f"bundling mode {mode!r} ({ENV_MODE} / -c {CTX_MODE}): allowed {list(MODES)}")
    if mode == "prebuilt" and not prebuilt:
        raise ValueError(f"bundling mode 'prebuilt' needs {ENV_PREBUILT}=<dir> or -c {CTX_PREBUILT}=<dir>")
    return mode, (Path(prebuilt).resolve() if prebuilt else None)


def _docker_command(spec: AssetSpec) -> list[str]:
    steps = [
        "export HOME=/tmp PIP_CACHE_DIR=/tmp/pip-cache",
        "pip install --disable-pip-version-check --no-compile -r /asset-input/requirements.txt -t /asset-output",
        "cp -r /asset-input/. /asset-output/",
        "rm -f /asset-output/requirements*.txt",
        *[f"cp -r /src/{p.name} /asset-output/{p.name}" for p in spec.packages],
        f"cp -r /src/bundle /asset-output/{BUNDLE_DIR_IN_ASSET}",
        *([f"cp -r /src/challenger /asset-output/{CHALLENGER_DIR_IN_ASSET}"] if spec.challenger_dir is not None else []),
        *[f"rm -f /asset-output/{CHALLENGER_DIR_IN_ASSET}/{name}" for name in (spec.challenger_exclude if spec.challenger_dir else ())],
        "python /src/trim/asset_trim.py /asset-output " + " ".join(spec.prune),
    ]
    return ["bash", "-c", " && ".join(steps)]


def asset_code(spec: AssetSpec, mode: str, prebuilt: Path | None = None, cache_root: Path = CACHE_ROOT) -> lambda_.Code:
    """The ``lambda.Code`` of one function for a bundling mode (see the module docstring)."""
    if mode == "skip":
        return lambda_.Code.from_asset(str(spec.handler_dir), exclude=list(_SOURCE_IGNORE))
    if mode == "prebuilt":
        folder = (prebuilt or Path(".")) / spec.name
        if not (folder / "handler.py").is_file() and not (folder / "handler.pyc").is_file():
            raise FileNotFoundError(f"prebuilt asset {folder} has no handler.py")
        return lambda_.Code.from_asset(str(folder))
    volumes = [cdk.DockerVolume(host_path=str(p), container_path=f"/src/{p.name}") for p in spec.packages]
    volumes += [
        cdk.DockerVolume(host_path=str(spec.bundle_dir.resolve()), container_path="/src/bundle"),
        cdk.DockerVolume(host_path=str(Path(asset_trim.__file__).resolve().parent), container_path="/src/trim"),
    ]
    if spec.challenger_dir is not None:
        volumes.append(cdk.DockerVolume(host_path=str(spec.challenger_dir.resolve()), container_path="/src/challenger"))
    return lambda_.Code.from_asset(
        str(spec.handler_dir),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        asset_hash=source_hash(spec),
        bundling=cdk.BundlingOptions(
            image=spec.runtime.bundling_image,
            command=_docker_command(spec),
            volumes=volumes,
            platform=DOCKER_PLATFORM[spec.architecture],
            local=LocalBundler(spec, cache_root) if mode == "local" else None,
        ),
    )
