"""Why this prediction: interventional Shapley values of each row's features, against the bundle's reference sample.

The value of a coalition S of features for a row x is the model's mean output over the background rows
b_1..b_N with the features of S taken from x and the others from b_j (interventional, as
``shap.explainers.Exact`` with an ``Independent`` masker computes it). The explained output is the
probability of the explained class (classifier) or the prediction (regressor).

- exact (M <= ``EXACT_MAX_FEATURES``): every one of the 2^M coalitions, Shapley's weights applied to
  their values; ``base_value + sum(values) == output`` up to float64 rounding.
- permutation (more features): ``SAMPLED_PERMUTATIONS`` random orderings drawn once with a fixed seed
  (half of them the reverses of the other half: antithetic pairs), each feature's mean marginal
  contribution over them; each ordering telescopes, so additivity holds too. Each value carries its
  error bound: the half-width of a 95 % confidence interval over the pairs (normal approximation).

Either way, the mixed rows of every explained row, coalition and background row are built with numpy on
the validated columns and scored in ONE batched call of the model (``ModelRunner.explained_outputs``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelserve.schema import BundleManifest, Table, Task

from .model import ModelRunner
from .validation import BAD_SHAPE, WRONG_TYPE, FieldError, RequestError

EXACT_MAX_FEATURES = 12  # 2^12 = 4,096 coalitions per row and background row; beyond it, sampling
SAMPLED_PERMUTATIONS = 32  # 16 antithetic pairs
SAMPLING_SEED = 0  # the same orderings for every request: the same row gets the same answer
CONFIDENCE = 0.95
_Z = 1.959963984540054  # two-sided 95 % normal quantile

EXACT, PERMUTATION = "exact", "permutation"
# refusal reasons of an explanation
EXPLAIN_TOO_LARGE = "explain_too_large"  # 413: rows x coalitions x background rows over explain_max_evaluations
EXPLAIN_UNAVAILABLE = "explain_unavailable"  # 422: no reference sample, a model without probabilities, or an answer format without room
# the request keys (JSON body) and OIP parameters that ask for explanations
EXPLAIN_KEY, EXPLAIN_CLASS_KEY = "explain", "explain_class"


@dataclass(frozen=True)
class ExplainRequest:
    """What a request asked to have explained: ``explain_class`` as sent (None: each row's predicted class)."""

    explain_class: Any = None


def explain_request(options: Mapping[str, Any] | None) -> ExplainRequest | None:
    """The request's ``explain`` / ``explain_class`` options (None or {}: none given) as an ``ExplainRequest``,
    or None when no explanation is asked for. Refuses (422) a non-boolean ``explain`` and a class without it."""
    if not options:
        return None
    explain = options.get(EXPLAIN_KEY, False)
    if type(explain) is not bool:
        raise RequestError(
            WRONG_TYPE, f'"{EXPLAIN_KEY}" must be true or false', [FieldError(WRONG_TYPE, "expected true or false", field=EXPLAIN_KEY)]
        )
    if EXPLAIN_CLASS_KEY in options and not explain:
        raise RequestError(BAD_SHAPE, f'"{EXPLAIN_CLASS_KEY}" is only read with "{EXPLAIN_KEY}": true')
    return ExplainRequest(options.get(EXPLAIN_CLASS_KEY)) if explain else None


def split_explain_options(payload: Any) -> tuple[Any, dict[str, Any]]:
    """A JSON body without its ``explain`` / ``explain_class`` keys, and those keys (the rest is validated as rows)."""
    if not isinstance(payload, dict) or not (EXPLAIN_KEY in payload or EXPLAIN_CLASS_KEY in payload):
        return payload, {}
    rest = {k: v for k, v in payload.items() if k not in (EXPLAIN_KEY, EXPLAIN_CLASS_KEY)}
    return rest, {k: payload[k] for k in (EXPLAIN_KEY, EXPLAIN_CLASS_KEY) if k in payload}


def background_positions(sample_rows: int, wanted: int) -> np.ndarray:
    """Which rows of the reference sample are the background: ``wanted`` rows evenly spaced over it (all of
    them when it has no more). Evenly spaced, not the first rows: exporters often write the sample sorted
    (by class, by date), and the first rows would be one class or one period."""
    if wanted >= sample_rows:
        return np.arange(sample_rows)
    return np.floor(np.arange(wanted) * (sample_rows / wanted)).astype(np.intp)


def exact_coalitions(m: int) -> np.ndarray:
    """All 2^m coalitions as a ``[2^m, m]`` bool matrix; row c holds feature i when bit i of c is set."""
    return ((np.arange(2**m)[:, None] >> np.arange(m)) & 1).astype(bool)


def shapley_weights(coalitions: np.ndarray) -> np.ndarray:
    """``[m, C]``: Shapley values = coalition values @ this.T. Feature i gains |S|!(m-|S|-1)!/m! times
    v(S ∪ {i}) - v(S): weight +w(|c|-1) on each coalition c holding i, -w(|c|) on each not holding it."""
    m = coalitions.shape[1]
    w = np.array([math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m) for s in range(m)])
    sizes = coalitions.sum(axis=1)
    with_i = w[np.clip(sizes - 1, 0, m - 1)][:, None]
    without_i = -w[np.clip(sizes, 0, m - 1)][:, None]
    return np.where(coalitions, with_i, without_i).T


@dataclass(frozen=True)
class PermutationPlan:
    """The sampled orderings (fixed seed) and the distinct coalitions their prefixes visit."""

    ranks: np.ndarray  # [P, m]: the position of each feature in each ordering
    coalitions: np.ndarray  # [C, m] distinct prefixes
    prefix_index: np.ndarray  # [P, m + 1]: which of ``coalitions`` each prefix is

    @classmethod
    def draw(cls, m: int, permutations: int = SAMPLED_PERMUTATIONS, seed: int = SAMPLING_SEED) -> PermutationPlan:
        rng = np.random.default_rng(seed)
        half = np.array([rng.permutation(m) for _ in range(permutations // 2)])
        orders = np.concatenate([half, half[:, ::-1]])  # antithetic: each ordering and its reverse
        ranks = np.argsort(orders, axis=1)
        prefixes = ranks[:, None, :] < np.arange(m + 1)[None, :, None]  # [P, m + 1, m]
        coalitions, inverse = np.unique(prefixes.reshape(-1, m), axis=0, return_inverse=True)
        return cls(ranks, coalitions, inverse.reshape(len(orders), m + 1))


@dataclass(frozen=True)
class Explanations:
    """Per explained row: the explained output, its expected value over the background, each feature's contribution."""

    output: np.ndarray  # [R]
    base_value: np.ndarray  # [R]
    values: np.ndarray  # [R, m]
    error_bound: np.ndarray | None  # [R, m] (permutation only): 95 % half-widths
    classes: list[str] | None  # the explained class of each row (classifier)


class Explainer:
    """Explanations for one bundle: its model, its schema's features and the first ``background_rows`` rows of its reference sample."""

    def __init__(
        self,
        manifest: BundleManifest,
        runner: ModelRunner,
        background: Callable[[], Table],
        background_rows: int,
        max_evaluations: int,
        exact_max_features: int = EXACT_MAX_FEATURES,
    ) -> None:
        self.manifest, self.runner = manifest, runner
        self.names = manifest.feature_names
        self.max_evaluations = max_evaluations
        self._background_source, self._background_rows = background, background_rows
        self._background: Table | None = None
        m = len(self.names)
        self.method = EXACT if m <= exact_max_features else PERMUTATION
        self._plan: PermutationPlan | None = None
        if self.method == EXACT:
            self.coalitions = exact_coalitions(m)
            self._weights = shapley_weights(self.coalitions)
        else:
            self._plan = PermutationPlan.draw(m)
            self.coalitions = self._plan.coalitions
        self.is_classifier = manifest.outputs.task is Task.CLASSIFICATION
        self._class_position = {c: i for i, c in enumerate(manifest.outputs.classes)}

    def background(self) -> Table:
        """The background rows, read from the bundle on first use (not at init: a cold start never pays for it)."""
        if self._background is None:
            table = self._background_source()
            rows = background_positions(len(next(iter(table.values()))) if table else 0, self._background_rows)
            self._background = {name: table[name][rows] for name in self.names}
        return self._background

    @property
    def background_size(self) -> int:
        return len(self.background()[self.names[0]]) if self.names else 0

    def info(self) -> dict[str, Any]:
        """What ``GET /model`` says of explanations."""
        info: dict[str, Any] = {
            "background_rows": self.background_size,
            "method": self.method,
            "coalitions": len(self.coalitions),
            "max_evaluations": self.max_evaluations,
            "exact_max_features": EXACT_MAX_FEATURES,
        }
        if self.method == PERMUTATION:
            info.update(permutations=SAMPLED_PERMUTATIONS, seed=SAMPLING_SEED, confidence=CONFIDENCE)
        return info

    def evaluations(self, rows: int) -> int:
        """Mixed rows the model scores to explain ``rows`` rows."""
        return rows * len(self.coalitions) * self.background_size

    def check(self, rows: int) -> None:
        """Refuses, before scoring, what this explainer cannot or may not do."""
        if self.is_classifier and not self.runner.has_probabilities:
            raise RequestError(EXPLAIN_UNAVAILABLE, "this model answers no probabilities: there is no output to explain")
        if self.background_size == 0:
            raise RequestError(EXPLAIN_UNAVAILABLE, "the bundle has no reference sample: there is no background to explain against")
        n = self.evaluations(rows)
        if n > self.max_evaluations:
            per_row = self.evaluations(1)
            raise RequestError(
                EXPLAIN_TOO_LARGE,
                f"explaining {rows} row(s) takes {n:,} model evaluations ({len(self.coalitions):,} coalitions x {self.background_size} "
                f"background rows each); at most {self.max_evaluations:,} per request: send at most "
                f"{max(self.max_evaluations // per_row, 0)} row(s) with explain",
                status=413,
            )

    def explained_classes(self, labels: np.ndarray, request: ExplainRequest) -> list[str] | None:
        """The class explained in each row: ``explain_class`` when given, else the row's predicted class."""
        outputs = self.manifest.outputs
        if not self.is_classifier:
            if request.explain_class is not None:
                raise RequestError(
                    WRONG_TYPE,
                    f'"{EXPLAIN_CLASS_KEY}" is for classifiers; this model is a regressor',
                    [FieldError(WRONG_TYPE, "not a classifier", field=EXPLAIN_CLASS_KEY)],
                )
            return None
        if request.explain_class is None:
            return [str(v) for v in labels.tolist()]
        named = outputs.class_for(request.explain_class)
        if named is None:
            raise RequestError(
                WRONG_TYPE,
                f'"{EXPLAIN_CLASS_KEY}" must be one of the model\'s classes {list(outputs.classes)}',
                [FieldError(WRONG_TYPE, "not one of the model's classes", field=EXPLAIN_CLASS_KEY)],
            )
        return [named] * len(labels)

    def explain(self, table: Table, classes: list[str] | None) -> Explanations:
        """Shapley values of every row of ``table`` (validated columns) for its class in ``classes`` (classifier)."""
        rows = len(table[self.names[0]])
        columns = self.runner.explained_outputs(self.mixed_rows(table))  # [R * C * N, K]: the one model call
        n_bg = self.background_size
        per_class = columns.reshape(rows, len(self.coalitions), n_bg, columns.shape[1]).mean(axis=2)  # [R, C, K]
        picked = [self._class_position[c] for c in classes] if classes is not None else [0] * rows
        v = per_class[np.arange(rows), :, picked]  # [R, C]
        if self._plan is None:
            return Explanations(v[:, -1], v[:, 0], v @ self._weights.T, None, classes)
        return self._from_permutations(v, classes)

    def mixed_rows(self, table: Table) -> Table:
        """Each row x and coalition S against each background row b: x's values on S, b's elsewhere.
        Rows ordered (explained row, coalition, background row); columns of the validated types."""
        background = self.background()
        out: Table = {}
        for i, name in enumerate(self.names):
            x, b = table[name], background[name]
            take = self.coalitions[:, i]
            out[name] = np.where(take[None, :, None], x[:, None, None], b[None, None, :]).reshape(-1)
        return out

    def _from_permutations(self, v: np.ndarray, classes: list[str] | None) -> Explanations:
        assert self._plan is not None
        plan = self._plan
        along = v[:, plan.prefix_index]  # [R, P, m + 1]: each ordering's prefix values
        steps = np.diff(along, axis=2)  # [R, P, m]: the marginal of the feature added at each step
        per_ordering = np.take_along_axis(steps, np.broadcast_to(plan.ranks, steps.shape), axis=2)  # [R, P, m] by feature
        pairs = len(plan.ranks) // 2
        pair_means = (per_ordering[:, :pairs] + per_ordering[:, pairs:]) / 2.0
        values = pair_means.mean(axis=1)
        error = _Z * pair_means.std(axis=1, ddof=1) / math.sqrt(pairs)
        return Explanations(along[:, 0, -1], along[:, 0, 0], values, error, classes)

    def answer(self, explanations: Explanations) -> list[dict[str, Any]]:
        """The ``explanations`` of the answer, one per row, in row order."""
        out = []
        for r in range(len(explanations.output)):
            item: dict[str, Any] = {
                "output": float(explanations.output[r]),
                "base_value": float(explanations.base_value[r]),
                "values": dict(zip(self.names, explanations.values[r].tolist())),
                "method": self.method,
            }
            if explanations.classes is not None:
                item["class"] = explanations.classes[r]
            if explanations.error_bound is not None:
                item["error_bound"] = dict(zip(self.names, explanations.error_bound[r].tolist()))
            out.append(item)
        return out
