"""What a fitted scikit-learn estimator is, looked at before skl2onnx converts it: how it takes its
input (one column per feature or one table), what its labels are, and the mistakes skl2onnx would
report with a message that names something else (or convert wrongly without a word).

Each diagnosis names the real cause and the fix, one line per mistake.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelserve.schema import FeatureKind, FeatureSpec, LabelType


@dataclass(frozen=True)
class EstimatorShape:
    """How the graph is fed and what the labels are, decided from the fitted estimator."""

    takes_columns: bool  # the first step selects columns by name (a ColumnTransformer): one graph input per feature
    first_step: str  # the class name of the step the data reaches first
    label_type: LabelType | None  # classifiers: the type of ``classes_``; None for a regressor


def inner_estimator(estimator: Any) -> Any:
    """The estimator that does the work inside a search or a calibration wrapper (for inspection only:
    skl2onnx converts the wrappers themselves)."""
    if hasattr(estimator, "best_estimator_"):  # GridSearchCV, RandomizedSearchCV, HalvingGridSearchCV
        return inner_estimator(estimator.best_estimator_)
    return estimator


def steps(estimator: Any) -> Iterator[Any]:
    """Every estimator inside ``estimator`` (pipelines, column transformers, searches, calibration), itself included."""
    estimator = inner_estimator(estimator)
    yield estimator
    if hasattr(estimator, "steps"):
        for _, step in estimator.steps:
            if step not in (None, "passthrough"):
                yield from steps(step)
    for _, transformer, _ in getattr(estimator, "transformers_", []) or []:
        if not isinstance(transformer, str):
            yield from steps(transformer)
    for calibrated in getattr(estimator, "calibrated_classifiers_", []) or []:
        yield from steps(calibrated.estimator)


def first_step(estimator: Any) -> Any:
    """The step the data reaches first (through pipelines, searches and calibration wrappers)."""
    estimator = inner_estimator(estimator)
    if hasattr(estimator, "steps"):
        for _, step in estimator.steps:
            if step not in (None, "passthrough"):
                return first_step(step)
    calibrated = getattr(estimator, "calibrated_classifiers_", None)
    if calibrated:
        return first_step(calibrated[0].estimator)
    return estimator


def estimator_shape(estimator: Any) -> EstimatorShape:
    first = first_step(estimator)
    # a ColumnTransformer fitted on a DataFrame selects columns by name: skl2onnx matches its inputs by those names
    takes_columns = hasattr(first, "transformers_") and hasattr(first, "feature_names_in_")
    classes = getattr(estimator, "classes_", None)
    is_classifier = classes is not None and hasattr(estimator, "predict_proba")
    return EstimatorShape(takes_columns, type(first).__name__, label_type_of(classes) if is_classifier else None)


def label_type_of(classes: Any) -> LabelType:
    """The type the labels come in: bool, int (integral floats too: 1.0 is the class 1), or string."""
    values = np.asarray(classes)
    if values.dtype.kind == "b" or (len(values) and all(isinstance(v, (bool, np.bool_)) for v in values.tolist())):
        return LabelType.BOOLEAN
    if values.dtype.kind in "iu":
        return LabelType.INTEGER
    if values.dtype.kind == "f" and bool(np.all(np.isfinite(values) & (values == np.trunc(values)))):
        return LabelType.INTEGER
    return LabelType.STRING


def diagnose(estimator: Any, specs: Sequence[FeatureSpec], shape: EstimatorShape) -> list[str]:
    """What skl2onnx would get wrong or refuse with a message naming something else; one line each."""
    problems = []
    for step in steps(estimator):
        native = getattr(step, "is_categorical_", None)
        if type(step).__name__.startswith("HistGradientBoosting") and native is not None and bool(np.any(native)):
            problems.append(
                f"{type(step).__name__} with native categorical features (categorical_features=...): skl2onnx converts it wrongly "
                "(its probabilities can differ from scikit-learn's by up to 1); encode those columns in a ColumnTransformer "
                "(OneHotEncoder or OrdinalEncoder) and fit with categorical_features=None"
            )
            break
    calibration = calibration_around_pipeline(estimator)
    if calibration:
        problems.append(calibration)
    problems += _custom_functions(estimator)
    problems += _encoders_fed_numbers(estimator, specs)
    text = [f.name for f in specs if f.kind is FeatureKind.CATEGORICAL]
    if not shape.takes_columns and text:
        problems.append(
            f"the model's first step ({shape.first_step}) takes one table of numbers, but features {text[:5]} are categorical text: "
            "put a ColumnTransformer first that encodes them (e.g. OneHotEncoder) and passes the numeric columns through"
        )
    return problems


def calibration_around_pipeline(estimator: Any) -> str | None:
    """skl2onnx converts a CalibratedClassifierCV whose estimator is a Pipeline wrongly (every probability
    off); calibrating the pipeline's last step converts right."""
    for step in steps(estimator):
        calibrated = getattr(step, "calibrated_classifiers_", None)
        if calibrated and hasattr(calibrated[0].estimator, "steps"):
            return (
                "CalibratedClassifierCV around a Pipeline: skl2onnx converts it wrongly (every probability differs, by up to 1); "
                "calibrate the pipeline's last step instead: Pipeline([..., ('model', CalibratedClassifierCV(model))])"
            )
    return None


def _custom_functions(estimator: Any) -> list[str]:
    """FunctionTransformers with a function of their own: skl2onnx converts a FunctionTransformer only as the
    identity (its ONNX graph cannot hold arbitrary Python), and would refuse naming the class alone."""
    found = []
    for step in steps(estimator):
        func = getattr(step, "func", None)
        if type(step).__name__ == "FunctionTransformer" and func is not None:
            found.append(getattr(func, "__name__", type(func).__name__))
    if not found:
        return []
    return [
        f"FunctionTransformer(func={found[0]}): skl2onnx converts a FunctionTransformer only as the identity (a graph holds no "
        "Python); compute that column in the data before training (and in the callers' requests), use a scikit-learn "
        "transformer skl2onnx converts (e.g. PowerTransformer, SplineTransformer), or register a converter for it with "
        "skl2onnx.update_registered_converter"
    ]


def _encoders_fed_numbers(estimator: Any, specs: Sequence[FeatureSpec]) -> list[str]:
    """Features the graph would feed as numbers to an encoder that learned text categories (the pipeline
    was trained on them as text): skl2onnx refuses with "Category '1' is not an int64"."""
    first = first_step(estimator)
    kinds = {f.name: f.kind for f in specs}
    found: dict[str, str] = {}
    for _, branch, columns in getattr(first, "transformers_", []) or []:
        if isinstance(branch, str) or isinstance(columns, str) or callable(columns):
            continue
        names = [str(c) for c in np.asarray(columns, dtype=object).reshape(-1)]
        for step in steps(branch):
            learned = getattr(step, "categories_", None)
            if not isinstance(learned, list) or len(learned) != len(names):
                continue  # not an encoder of these very columns
            for name, categories in zip(names, learned):
                if np.asarray(categories).dtype.kind in "OUS" and kinds.get(name) is not FeatureKind.CATEGORICAL and name in kinds:
                    found.setdefault(name, type(step).__name__)
    if not found:
        return []
    listed = ",".join(found)
    return [
        f"features {list(found)} are numbers in the data, but the pipeline's {sorted(set(found.values()))} learned them as text categories "
        f"(trained on prepare_frame with them categorical): declare them --categorical {listed}"
    ]


def _column_branches(estimator: Any) -> Iterator[tuple[Any, list[str]]]:
    """The first step's ColumnTransformer branches and the feature names each takes."""
    first = first_step(estimator)
    for _, branch, columns in getattr(first, "transformers_", []) or []:
        if isinstance(branch, str) or callable(columns):
            continue
        names = [columns] if isinstance(columns, str) else [str(c) for c in np.asarray(columns, dtype=object).reshape(-1)]
        yield branch, names


def _is_imputer(step: Any) -> bool:
    return type(step).__name__.endswith("Imputer")


def imputed_features(estimator: Any, specs: Sequence[FeatureSpec]) -> set[str]:
    """Features the model fills in when missing: the ones its ColumnTransformer routes through an imputer,
    or every feature when the data reaches an imputer or a NaN-aware HistGradientBoosting model first."""
    first = first_step(estimator)
    if _is_imputer(first) or type(first).__name__.startswith("HistGradientBoosting"):
        return {f.name for f in specs}
    return {name for branch, names in _column_branches(estimator) if any(_is_imputer(s) for s in steps(branch)) for name in names}


def _text_imputers(estimator: Any) -> Iterator[tuple[Any, list[str]]]:
    """SimpleImputers on text columns that look for NaN: the graph's null category is the empty string."""
    for branch, names in _column_branches(estimator):
        for step in steps(branch):
            stats = getattr(step, "statistics_", None)
            missing = getattr(step, "missing_values", None)
            looks_for_nan = isinstance(missing, float) and np.isnan(missing)
            if type(step).__name__ == "SimpleImputer" and stats is not None and np.asarray(stats).dtype.kind == "O" and looks_for_nan:
                yield step, names


def imputed_text_columns(estimator: Any) -> list[str]:
    """Text features a SimpleImputer fills in when missing (NaN in the source, "" in the graph)."""
    return [name for _, names in _text_imputers(estimator) for name in names]


def for_conversion(estimator: Any) -> Any:
    """The estimator as skl2onnx should convert it: a copy whose text imputers take the graph's null
    category ("") for missing, which skl2onnx requires of text (it refuses NaN on strings)."""
    if not any(True for _ in _text_imputers(estimator)):
        return estimator
    import copy

    from modelserve.schema import CATEGORICAL_NULL_TOKEN

    converted = copy.deepcopy(estimator)
    for imputer, _ in _text_imputers(converted):
        imputer.missing_values = CATEGORICAL_NULL_TOKEN
    return converted
