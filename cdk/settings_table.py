"""The settings table of the docs, generated from ``Settings.describe()`` (so the README stays in sync).

One row per cdk.json key, grouped by who reads it: the stack only, or the function(s) whose
environment carries it.

    python -m cdk.settings_table                  # print the Markdown table
    python -m cdk.settings_table --write FILE     # replace the table between the markers in FILE
    python -m cdk.settings_table --check FILE     # exit 1 when FILE's table is out of date

Markers: ``<!-- settings-table:start -->`` and ``<!-- settings-table:end -->``.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path
from typing import Any

from modelserve.settings import SettingInfo, Settings

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


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
    for s in Settings.describe():
        in_json = _show(ctx[s.name]) if s.name in ctx else ""
        read_by = ", ".join(s.read_by)
        lines.append(f"| `{s.name}` | {read_by} | {_show(s.default)} | {in_json} | {_allowed(s)} | {s.description} |")
    return "\n".join(lines) + "\n"


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
    t = table()
    if args.write:
        p = Path(args.write)
        p.write_text(replace_in(p.read_text(), t))
    elif args.check:
        p = Path(args.check)
        if replace_in(p.read_text(), t) != p.read_text():
            print(f"{p}: the settings table is out of date; run python -m cdk.settings_table --write {p}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
