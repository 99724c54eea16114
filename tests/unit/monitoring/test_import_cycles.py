"""The drift library and the drift-check function have no import cycles: each module can be read
(and imported) after the ones it names, and a check's module never needs the config or the report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest


def _cycles(package: str) -> list[tuple[str, str]]:
    graph = grimp.build_graph(package)  # annotation-only (TYPE_CHECKING) imports count too
    return sorted(
        (a, b)
        for a in graph.modules
        for b in graph.find_modules_directly_imported_by(a)
        if a < b and graph.chain_exists(importer=b, imported=a)
    )


@pytest.mark.parametrize("package", ["monitoring", "driftcheck", "modelserve"])
def test_a_package_has_no_import_cycles(package: str) -> None:
    assert _cycles(package) == []


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
