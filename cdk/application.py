"""Build the CDK app: settings from context (validated once), the bundle's manifest, cdk-nag, the stack.

``app.py`` calls ``build_app()``; tests call it with a context dict and an output folder.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")

import aws_cdk as cdk  # noqa: E402

from modelserve.schema import MANIFEST_FILE, MODEL_FILE, BundleManifest  # noqa: E402
from modelserve.settings import Settings, SettingsError  # noqa: E402
from modelserve.size_budget import budget_bytes, folder_bytes, size_budget_problem  # noqa: E402
from modelserve.versions import compatibility_problems  # noqa: E402

from . import nag  # noqa: E402
from .bundling import REPO_ROOT, resolve_mode  # noqa: E402
from .stack import ModelServingStack  # noqa: E402

CTX_STACK_NAME = "modelserve:stack-name"


class BundleNotFound(SettingsError):
    """The model bundle folder named by model_bundle_path is missing or incomplete."""


def cdk_json_context(repo_root: Path = REPO_ROOT) -> dict[str, Any]:
    """The ``context`` block of cdk.json (feature flags and settings)."""
    return dict(json.loads((repo_root / "cdk.json").read_text()).get("context", {}))


def load_manifest(settings: Settings, repo_root: Path = REPO_ROOT, key: str = "model_bundle_path") -> tuple[Path, BundleManifest]:
    """The bundle folder named by setting ``key`` and its manifest."""
    bundle_dir = Path(getattr(settings, key))
    if not bundle_dir.is_absolute():
        bundle_dir = repo_root / bundle_dir
    manifest_path = bundle_dir / MANIFEST_FILE
    if not manifest_path.is_file() or not (bundle_dir / MODEL_FILE).is_file():
        raise BundleNotFound(
            f"setting {key!r} = {getattr(settings, key)!r}: no {MANIFEST_FILE} and {MODEL_FILE} in "
            f"{bundle_dir}. Build the sample bundle with `python -m devtools build-sample`, or point "
            f"{key} at your exported bundle (cdk.json or -c {key}=...)."
        )
    return bundle_dir, BundleManifest.from_dict(json.loads(manifest_path.read_text()))


def load_challenger(settings: Settings, champion: BundleManifest, repo_root: Path = REPO_ROOT) -> tuple[Path, BundleManifest] | None:
    """The challenger bundle when challenger_mode is on (refused here, at synth, when it cannot run next to the champion)."""
    if settings.challenger_mode == "off":
        return None
    folder, manifest = load_manifest(settings, repo_root, "challenger_bundle_path")
    problems = compatibility_problems(champion, manifest)
    if problems:
        raise SettingsError(f"setting 'challenger_bundle_path' = {settings.challenger_bundle_path!r}: " + "; ".join(problems))
    return folder, manifest


def check_size_budget(settings: Settings, bundle_dir: Path, challenger_dir: Path | None) -> None:
    """Refuse at synth a bundle (with its challenger: both ship in the inference asset) that cannot fit Lambda's limit."""
    size = folder_bytes(bundle_dir) + (folder_bytes(challenger_dir) if challenger_dir else 0)
    problem = size_budget_problem(size, limit_bytes=budget_bytes(settings.inference_size_budget_mib))
    if problem:
        which = "model_bundle_path" + (" + challenger_bundle_path" if challenger_dir else "")
        raise SettingsError(f"setting {which} = {settings.model_bundle_path!r}: {problem}")


def stack_name_for(model_name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9-]", "-", f"ModelServe-{model_name}").strip("-")
    return name[:128]


def build_app(
    context: Mapping[str, Any] | None = None,
    outdir: str | None = None,
    repo_root: Path = REPO_ROOT,
) -> tuple[cdk.App, ModelServingStack]:
    """The app with its one stack. Raises SettingsError (naming key, value, allowed values) on bad settings."""
    app = cdk.App(context=dict(context) if context is not None else None, outdir=outdir)
    all_context = app.node.get_all_context()
    settings = Settings.from_context(all_context)
    bundle_dir, manifest = load_manifest(settings, repo_root)
    challenger = load_challenger(settings, manifest, repo_root)
    check_size_budget(settings, bundle_dir, challenger[0] if challenger else None)
    mode, prebuilt = resolve_mode(app.node)
    nag.register(app)
    name = app.node.try_get_context(CTX_STACK_NAME) or stack_name_for(manifest.model_name)
    stack = ModelServingStack(
        app,
        name,
        settings=settings,
        manifest=manifest,
        bundle_dir=bundle_dir,
        bundling_mode=mode,
        prebuilt_assets=prebuilt,
        repo_root=repo_root,
        challenger=challenger,
        env=cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")),
    )
    return app, stack
