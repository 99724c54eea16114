"""The inference function's settings at init: read as they are when the stack validated them, else validated.

The stack validates every setting at synth and writes, next to the variables, their digest
(``modelserve/settings_env.py``). When the variables still hash to it, they are exactly values pydantic accepted
at synth: they are read with plain parsing into ``ServingSettingsView`` (generated from ``ServingSettings``,
``serving/settings_view.py``), and init never imports pydantic (docs/performance.md#cold-start). Without a
digest or with one that differs (a local run, tests, a variable edited in the console), ``ServingSettings``
validates them as before, and a wrong value stops init with its message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from modelserve.settings_env import env_name, verified_deploy_time_names

from .settings_view import FIELD_KINDS, ServingSettingsView

if TYPE_CHECKING:
    from modelserve.settings import ServingSettings

    FunctionSettings = ServingSettings | ServingSettingsView


def _tuple(raw: str) -> tuple[str, ...]:
    # as ServingSettings reads a list: the JSON list to_env writes, or comma-separated (the stack's MS_CORS_ORIGINS)
    items = json.loads(raw) if raw.strip().startswith("[") else [s for s in raw.split(",") if s.strip()]
    return tuple(str(s).strip() for s in items)


def _bool(raw: str) -> bool:
    return raw.strip().lower() in ("true", "1", "yes", "on")  # to_env writes str(bool): True / False


def _optional_str(raw: str) -> str | None:
    return None if raw in ("", "None") else raw


PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": _bool,
    "tuple": _tuple,
    "optional_str": _optional_str,
}
VARIABLES = {env_name(field): field for field in FIELD_KINDS}  # MS_<FIELD> -> field


def function_settings(environ: Mapping[str, str] | None = None) -> FunctionSettings:
    """The settings the stack set: a ``ServingSettingsView`` when they match their synth digest, else the
    validated ``ServingSettings`` (raises ``SettingsError`` naming a wrong value)."""
    environ = os.environ if environ is None else environ
    if verified_deploy_time_names(environ, VARIABLES) is None:
        from modelserve.settings import ServingSettings  # pydantic: only where the digest cannot vouch for the values

        return ServingSettings.from_env(environ)
    values = {field: PARSERS[FIELD_KINDS[field]](environ[name]) for name, field in VARIABLES.items() if name in environ}
    return ServingSettingsView(**values)
