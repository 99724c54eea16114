"""The checks' threshold declarations are light: ``monitoring/config.py`` alone loads no numpy, scipy or
other drift module (import cycles of the whole project: ``tests/unit/test_import_cycles.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CONFIG_PY = Path(__file__).resolve().parents[3] / "monitoring" / "config.py"


def test_the_threshold_declarations_import_nothing_heavy() -> None:
    # the module alone (not the package, whose __init__ loads the checks): standard library only
    code = (
        "import sys, importlib.util as u\n"
        f"spec = u.spec_from_file_location('config', {str(CONFIG_PY)!r})\n"
        "m = sys.modules['config'] = u.module_from_spec(spec)\n"
        "spec.loader.exec_module(m)\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('numpy', 'scipy', 'monitoring')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
