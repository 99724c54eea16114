#!/usr/bin/env python3
"""CDK entry point: `npx cdk synth` / `npx cdk deploy` run this through cdk.json ("python3 app.py").

If the project's virtual environment (.venv, made by `make setup`) exists and this is another
interpreter, the app re-runs itself with .venv's Python, so nothing has to be activated first.
Settings come from cdk.json's context and `-c key=value`; a wrong value stops here with a message
naming the key, the value and what is allowed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def _venv_python() -> Path | None:
    venv = ROOT / ".venv"
    exe = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not exe.exists() or os.environ.get("MS_NO_VENV_REEXEC"):
        return None
    if Path(sys.prefix).resolve() == venv.resolve():
        return None
    return exe


def main() -> int:
    venv_python = _venv_python()
    if venv_python is not None:
        return subprocess.call([str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])
    sys.path.insert(0, str(ROOT))
    try:
        import aws_cdk  # noqa: F401
    except ImportError:
        print(
            f"aws-cdk-lib is not installed for {sys.executable}. Run `make setup` (creates .venv with "
            "requirements-dev.txt) or `pip install -r requirements.txt`, then run the CDK CLI again.",
            file=sys.stderr,
        )
        return 1
    from cdk.application import build_app
    from modelserve.settings import SettingsError

    try:
        app, _stack = build_app()
    except SettingsError as exc:
        print(f"\ncdk synth stopped: {exc}\n", file=sys.stderr)
        return 1
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
