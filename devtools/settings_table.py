"""The settings table of the docs, generated from ``Settings.describe()`` (so the README stays in sync),
and the drift thresholds of ``DriftSettings``, generated from the drift checks' own declarations.

One row per cdk.json key, grouped by who reads it: the stack only, or the function(s) whose
environment carries it.

    python -m devtools.settings_table                  # print the Markdown table
    python -m devtools.settings_table --write FILE     # regenerate the drift thresholds, then the table in FILE
    python -m devtools.settings_table --check FILE     # exit 1 when either is out of date

Markers: ``<!-- settings-table:start -->`` and ``<!-- settings-table:end -->`` in FILE; in
``modelserve/settings.py`` the lines ``# drift-thresholds:start`` / ``# drift-thresholds:end``.

Why generated: a drift threshold is declared once, next to its check in ``monitoring`` (default, range,
help; ``setting=...`` makes it a deploy setting). ``modelserve`` may not import ``monitoring`` (it ships
in the inference asset too, without it), so the deploy settings carry a generated copy of the
declarations, kept current by ``--check`` (``tests/unit/test_settings.py``); the CDK app, the env
round trip and the synth-time validation then work on plain pydantic fields.
"""

from __future__ import annotations

import argparse
import importlib
import json
import numbers
import sys
import typing
from pathlib import Path
from typing import Any

from modelserve import settings as settings_module
from modelserve.settings import SettingInfo

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
SETTINGS_PY = ROOT / "modelserve" / "settings.py"
DRIFT_START, DRIFT_END = "    # drift-thresholds:start", "    # drift-thresholds:end"


def _allowed(setting: SettingInfo) -> str:
    field = setting.field
    ann = field.annotation
    if typing.get_origin(ann) is typing.Literal:
        return ", ".join(f"`{a}`" for a in typing.get_args(ann))
    bounds = []
    for m in field.metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                bounds.append(f"{sym} {v}")
        if getattr(m, "pattern", None):
            bounds.append(f"`{m.pattern}`".replace("|", "\\|"))
    return " and ".join(bounds)


def _show(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, tuple):
        return "`[]`" if not v else f"`{json.dumps(list(v))}`"
    return f"`{v}`"


def table(cdk_json: Path = ROOT / "cdk.json") -> str:
    ctx = json.loads(cdk_json.read_text()).get("context", {}) if cdk_json.is_file() else {}
    lines = [
        "| Setting | Read by | Default | In cdk.json | Allowed | What it does |",
        "|---|---|---|---|---|---|",
    ]
    for s in settings_module.Settings.describe():  # looked up now: --write reloads the module
        in_json = _show(ctx[s.name]) if s.name in ctx else ""
        read_by = ", ".join(s.read_by)
        lines.append(f"| `{s.name}` | {read_by} | {_show(s.default)} | {in_json} | {_allowed(s)} | {s.description} |")
    return "\n".join(lines) + "\n"


def _annotation(spec: Any) -> str:
    if spec.choices:
        kind = "Literal[" + ", ".join(json.dumps(c) for c in spec.choices) + "]"
    else:
        kind = {bool: "bool", str: "str", numbers.Integral: "int", numbers.Real: "float"}[spec.kind]
    return f"{kind} | None" if spec.optional else kind


def _bounds(spec: Any) -> list[str]:
    b = spec.bounds
    out = []
    if b.low is not None:
        out.append(f"{'gt' if b.low_open else 'ge'}={b.low!r}")
    if b.high is not None:
        out.append(f"{'lt' if b.high_open else 'le'}={b.high!r}")
    return out


def drift_threshold_fields() -> str:
    """The ``DriftSettings`` fields of every drift threshold declared with a deploy setting, as source
    (one argument a line with a trailing comma: ``ruff format`` leaves it as written)."""
    # imported here: the drift library (numpy, scipy) is a developer dependency, not the CDK app's
    from monitoring import DriftConfig

    lines = []
    for spec in DriftConfig.thresholds():
        if spec.setting is None:
            continue
        args = [json.dumps(spec.default) if isinstance(spec.default, str) else repr(spec.default), *_bounds(spec)]
        args.append(f"description={json.dumps(spec.help)}")
        lines.append(f"    {spec.setting}: {_annotation(spec)} = Field(")
        lines += [f"        {a}," for a in args]
        lines.append("    )")
    return "\n".join(lines) + "\n"


def replace_drift_fields(text: str, fields: str) -> str:
    if DRIFT_START not in text or DRIFT_END not in text:
        raise ValueError(f"markers {DRIFT_START.strip()} / {DRIFT_END.strip()} not found")
    head, rest = text.split(DRIFT_START, 1)
    first_line, rest = rest.split("\n", 1)  # the start marker's line may carry a comment
    _, tail = rest.split(DRIFT_END, 1)
    return f"{head}{DRIFT_START}{first_line}\n{fields}{DRIFT_END}{tail}"


def replace_in(text: str, new_table: str) -> str:
    if START not in text or END not in text:
        raise ValueError(f"markers {START} / {END} not found")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{new_table}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--write", metavar="FILE")
    g.add_argument("--check", metavar="FILE")
    args = ap.parse_args(argv)
    source = SETTINGS_PY.read_text()
    generated = replace_drift_fields(source, drift_threshold_fields())
    if args.write:
        if generated != source:
            SETTINGS_PY.write_text(generated)
            importlib.reload(settings_module)  # the table below lists the regenerated fields
        p = Path(args.write)
        p.write_text(replace_in(p.read_text(), table()))
    elif args.check:
        p = Path(args.check)
        stale = [SETTINGS_PY] if generated != source else []
        stale += [p] if replace_in(p.read_text(), table()) != p.read_text() else []
        for path in stale:
            print(f"{path}: out of date; run python -m devtools.settings_table --write {p}", file=sys.stderr)
        if stale:
            return 1
    else:
        sys.stdout.write(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
