"""The schema file of ``export-onnx --schema``: a typed model that refuses what it does not know.

A typo must not pass silently (``"probabilty_output"`` would otherwise drop the probabilities from
every answer): unknown keys, kinds and tasks are refused, naming the key and the nearest valid one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from modelserve.schema import FeatureKind, InputLayout, LabelType, Task

from .problems import ExportProblems, nearest


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureDecl(_Strict):
    """A feature as declared; what is left out comes from the reference data and the model."""

    name: StrictStr = Field(min_length=1)
    kind: FeatureKind | None = None  # None: from the model's input type, else inferred from the reference
    nullable: StrictBool | None = None
    categories: list[StrictStr] | None = None
    min: StrictFloat | StrictInt | None = None
    max: StrictFloat | StrictInt | None = None


class OutputsDecl(_Strict):
    """Which ONNX outputs hold the label / value and the probabilities.

    Left out, they are found from the graph's output types (one label-like and one probability-like
    output); ``null`` says the model has none (a probabilities-only classifier has no label output).
    """

    task: Task
    classes: list[StrictStr | StrictInt | StrictBool] | None = None
    label_output: StrictStr | None = None
    probability_output: StrictStr | None = None
    threshold: float | None = Field(default=None, gt=0.0, lt=1.0)
    # the labels' own type in answers (JSON integers or booleans); left out: strings, as the graph's classes are named
    label_type: LabelType | None = None

    def given(self, key: str) -> bool:
        return key in self.model_fields_set


class SchemaFile(_Strict):
    model_name: StrictStr = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    features: list[FeatureDecl] = Field(min_length=1)
    outputs: OutputsDecl
    input_layout: InputLayout = InputLayout.PER_COLUMN
    single_input_name: StrictStr | None = None


def parse_schema(data: Any, source: str = "schema") -> SchemaFile:
    """Validate a parsed schema; ExportProblems with one line per problem."""
    try:
        schema = SchemaFile.model_validate(data)
    except ValidationError as exc:
        raise ExportProblems([f"{source}: {line}" for line in _one_per_mistake(exc.errors())]) from None
    names = [f.name for f in schema.features]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ExportProblems([f"{source}: features: {n!r} is declared twice" for n in duplicates])
    return schema


def load_schema_file(path: str | Path) -> SchemaFile:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ExportProblems([f"--schema: no such file: {path}"]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportProblems([f"{path}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}"]) from None
    return parse_schema(data, str(path))


_MODELS: dict[str, type[BaseModel]] = {"features": FeatureDecl, "outputs": OutputsDecl}


def _one_per_mistake(errors: list[Any]) -> list[str]:
    """One line per mistake, not per feature: the same error at features[0..n] is said once, with how many."""
    groups: dict[str, list[Any]] = {}
    for error in errors:
        loc = tuple("*" if isinstance(p, int) else p for p in error["loc"])
        groups.setdefault(repr((loc, error["type"], error.get("input") if error["type"] == "enum" else None)), []).append(error)
    lines = []
    for same in groups.values():
        first = _describe(same[0])
        if len(same) == 1:
            lines.append(first)
            continue
        where = _where(tuple("*" if isinstance(p, int) else p for p in same[0]["loc"]))
        what = first.split(": ", 1)[1] if ": " in first else first
        hint = _list_item_hint(same[0])
        lines.append(f"{where}: {what} ({len(same)} entries, first at {_where(tuple(same[0]['loc']))}){hint}")
    return lines


def _list_item_hint(error: Any) -> str:
    if len(error["loc"]) == 2 and error["loc"][0] == "features" and isinstance(error.get("input"), str):
        return '; each feature is an object: {"name": "..."}'
    return ""


def _where(loc: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) or p == "*" else (f".{p}" if i else str(p)) for i, p in enumerate(loc)) or "(top level)"


def _describe(error: Any) -> str:
    loc = tuple(error["loc"])
    where = _where(loc)
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        return f"{where}: unknown key{nearest(str(loc[-1]), list(model.model_fields))}; valid keys: {', '.join(model.model_fields)}"
    if kind == "enum":
        choices = _enum_choices(loc)
        return f"{where}: {value!r} is not one of {', '.join(choices)}{nearest(str(value), choices)}"
    if kind == "missing":
        return f"{where}: required key missing"
    return f"{where}: {error['msg']} (got {value!r})" if value is not None and not isinstance(value, dict) else f"{where}: {error['msg']}"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    named = [p for p in loc if isinstance(p, str)]
    return _MODELS.get(named[-1], SchemaFile) if named else SchemaFile


def _enum_choices(loc: tuple[Any, ...]) -> list[str]:
    key = next((p for p in reversed(loc) if isinstance(p, str)), "")
    enums: dict[str, list[str]] = {
        "kind": [e.value for e in FeatureKind],
        "task": [e.value for e in Task],
        "input_layout": [e.value for e in InputLayout],
        "label_type": [e.value for e in LabelType],
    }
    return enums.get(key, [])
