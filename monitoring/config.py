"""The thresholds of the drift check: each check declares its own, one declaration per threshold.

A check's settings are a frozen :class:`CheckConfig` dataclass written next to the check's class, each
field a :func:`threshold` (default, range, help text, and the deploy setting it is tuned by, if any),
and registered beside it with :func:`register_config` (NannyML's ``MethodFactory.register``):

    @register_config
    @dataclass(frozen=True)
    class OutlierConfig(CheckConfig):
        outlier_rate_threshold: float = threshold(0.05, ge=0, le=1, setting=True, help="Alarm when outlier rate exceeds")

:class:`DriftConfig` is every registered config under one flat namespace (``DriftConfig(alpha=0.01)``,
``config.alpha``, ``to_dict`` / ``from_dict``); a check reads its own typed section with
``config.section(OutlierConfig)``. The deploy settings' drift thresholds are generated from the same
declarations (``python -m devtools.settings_table --write docs/deploy.md`` rewrites them in
``modelserve/settings.py``; ``driftcheck.drift_service.drift_config`` maps them back by
:attr:`Threshold.setting`).

This module imports only the standard library: the settings generator reads it without numpy or scipy.
"""

from __future__ import annotations

import inspect
import math
import numbers
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

_THRESHOLD = "threshold"  # the dataclass field metadata key of a declaration


@dataclass(frozen=True)
class Bounds:
    """An interval a threshold must lie in; ``None`` ends are open to infinity."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if math.isnan(value):
            return False
        above = self.low is None or (self.low < value if self.low_open else self.low <= value)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{'(' if self.low_open or self.low is None else '['}{low}, {high}{')' if self.high_open or self.high is None else ']'}"


@dataclass(frozen=True)
class Threshold:
    """One declared threshold: what the settings table, the deploy settings and the config check read."""

    name: str
    kind: type  # bool, str, numbers.Integral or numbers.Real
    default: Any
    help: str
    bounds: Bounds = Bounds()
    choices: tuple[str, ...] = ()
    optional: bool = False  # None is allowed (and means "not set")
    setting: str | None = None  # the deploy setting (cdk.json key) that tunes it; None: library only

    def check(self, value: Any) -> None:
        """Raise TypeError / ValueError naming the threshold when ``value`` is not allowed."""
        if value is None and self.optional:
            return
        if not isinstance(value, self.kind) or (isinstance(value, bool) and self.kind is not bool):
            raise TypeError(f"DriftConfig.{self.name} must be {self.kind.__name__}, got {value!r}")
        if self.choices and value not in self.choices:
            raise ValueError(f"DriftConfig.{self.name} must be one of {list(self.choices)}, got {value!r}")
        if isinstance(value, numbers.Real) and not self.bounds.contains(float(value)):
            raise ValueError(f"DriftConfig.{self.name} must be in {self.bounds}, got {value!r}")


def threshold(
    default: Any,
    *,
    help: str,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[str, ...] = (),
    setting: str | bool = False,
) -> Any:
    """A :class:`CheckConfig` field: its default, range (``ge``/``gt``/``le``/``lt``), help text, and
    ``setting``: True to tune it by a deploy setting of the same name, a string for another name."""
    bounds = Bounds(gt if gt is not None else ge, lt if lt is not None else le, gt is not None, lt is not None)
    declared = {"help": help, "bounds": bounds, "choices": choices, "setting": setting}
    return field(default=default, metadata={_THRESHOLD: declared})


_KINDS: dict[Any, type] = {bool: bool, str: str, int: numbers.Integral, float: numbers.Real}


def _kind_of(annotation: Any) -> tuple[type, bool]:
    """The runtime kind of a field's annotation and whether None is allowed (``int | None``)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _KINDS[inner[0]], len(inner) < len(args)
    if typing.get_origin(annotation) is typing.Literal:
        return str, False
    return _KINDS[annotation], False


@dataclass(frozen=True)
class CheckConfig:
    """The base of a check's config: subclass it as a frozen dataclass of :func:`threshold` fields.
    Every value is checked (kind, range, choices) when the config is built."""

    _declared: ClassVar[dict[type, tuple[Threshold, ...]]] = {}

    def __post_init__(self) -> None:
        for spec in self.thresholds():
            spec.check(getattr(self, spec.name))

    @classmethod
    def thresholds(cls) -> tuple[Threshold, ...]:
        """The declarations of this config's fields, in their order."""
        if cls not in CheckConfig._declared:
            hints = typing.get_type_hints(cls)
            specs = []
            for f in fields(cls):
                declared = f.metadata.get(_THRESHOLD)
                if declared is None:
                    raise TypeError(f"{cls.__name__}.{f.name} is not declared with threshold(...)")
                kind, optional = _kind_of(hints[f.name])
                setting = f.name if declared["setting"] is True else (declared["setting"] or None)
                default = None if f.default is MISSING else f.default
                specs.append(Threshold(f.name, kind, default, declared["help"], declared["bounds"], declared["choices"], optional, setting))
            CheckConfig._declared[cls] = tuple(specs)
        return CheckConfig._declared[cls]


ConfigT = TypeVar("ConfigT", bound=CheckConfig)

# the registered configs, ordered by module (the preset's order: order_modules), then by registration
# (definition order within a module): the order of DriftConfig's keys and of the generated settings,
# whatever order the modules happen to be imported in
_REGISTERED: list[type[CheckConfig]] = []
_MODULE_ORDER: dict[str, int] = {}


def _sort_registered() -> None:
    _REGISTERED.sort(key=lambda c: (_MODULE_ORDER.get(c.__module__, len(_MODULE_ORDER)), c.__module__))


def order_modules(modules: Iterable[str]) -> None:
    """List the configs of these modules first, in this order (the preset's checks; others follow by name)."""
    _MODULE_ORDER.clear()
    _MODULE_ORDER.update({m: i for i, m in reversed(list(enumerate(modules)))})
    _sort_registered()


def register_config(cls: type[ConfigT]) -> type[ConfigT]:
    """Make a check's config part of :class:`DriftConfig` (a decorator, beside the class). A threshold
    name must be unique across the registered configs: the flat namespace has one meaning per name."""
    if cls in _REGISTERED:
        return cls
    taken = {spec.name: other for other in _REGISTERED for spec in other.thresholds()}
    clash = [spec.name for spec in cls.thresholds() if spec.name in taken]
    if clash:
        raise ValueError(f"{cls.__name__} declares {clash}, already declared by {taken[clash[0]].__name__}")
    _REGISTERED.append(cls)
    _sort_registered()  # stable: definition order holds within a module
    return cls


def unregister_config(cls: type[CheckConfig]) -> None:
    """Remove a registered config (a test's toy check cleans up after itself)."""
    if cls in _REGISTERED:
        _REGISTERED.remove(cls)


def registered_configs() -> tuple[type[CheckConfig], ...]:
    return tuple(_REGISTERED)


class DriftConfig:
    """Every registered check's config, by threshold name. ``DriftConfig(alpha=0.01)`` overrides one
    default; an unknown name raises naming it, a value of the wrong kind or range raises naming the
    threshold and its range. Frozen; equal when every value is equal."""

    __slots__ = ("_sections",)

    def __init__(self, **values: Any) -> None:
        configs = registered_configs()
        owner = {spec.name: cls for cls in configs for spec in cls.thresholds()}
        unknown = sorted(set(values) - set(owner))
        if unknown:
            raise TypeError(f"unknown DriftConfig keys {unknown}; known keys: {sorted(owner)}")
        sections = {cls: cls(**{k: v for k, v in values.items() if owner[k] is cls}) for cls in configs}
        object.__setattr__(self, "_sections", sections)

    @classmethod
    def thresholds(cls) -> tuple[Threshold, ...]:
        """Every registered threshold's declaration."""
        return tuple(spec for config in registered_configs() for spec in config.thresholds())

    def section(self, config: type[ConfigT]) -> ConfigT:
        """A check's own typed config (``config.section(OutlierConfig).outlier_rate_threshold``)."""
        found = self._sections.get(config)
        if found is None:
            raise KeyError(f"{config.__name__} is not a registered check config")
        return typing.cast(ConfigT, found)

    def __getattr__(self, name: str) -> Any:
        for section in object.__getattribute__(self, "_sections").values():
            if name in section.__dataclass_fields__:
                return getattr(section, name)
        raise AttributeError(f"DriftConfig has no threshold {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("DriftConfig is frozen; build another with replace(...)")

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        for section in self._sections.values():
            for spec in section.thresholds():
                yield spec.name, getattr(section, spec.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DriftConfig) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        changed = [f"{name}={value!r}" for (name, value), spec in zip(self, self.thresholds()) if value != spec.default]
        return f"DriftConfig({', '.join(changed)})"

    def replace(self, **changes: Any) -> DriftConfig:
        return DriftConfig(**{**self.to_dict(), **changes})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DriftConfig:
        """The config from a mapping (e.g. JSON); an unknown key raises naming it (a misspelt
        ``alpah`` must not silently leave the default in place)."""
        known = {spec.name for spec in cls.thresholds()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown DriftConfig keys {unknown}; known keys: {sorted(known)}")
        return cls(**dict(values))

    def arguments_for(self, fn: Callable[..., Any], **renamed: str) -> dict[str, Any]:
        """The settings ``fn`` takes, as keyword arguments: each of its parameters named like a threshold of
        this config (``renamed``: parameter -> threshold, where the names differ). One mapping for every
        detector a check builds from the config, so a new threshold reaches it by its name."""
        values = self.to_dict()
        wanted = {param: renamed.get(param, param) for param in inspect.signature(fn).parameters}
        return {param: values[name] for param, name in wanted.items() if name in values}

    def to_dict(self) -> dict[str, Any]:
        return dict(self)
