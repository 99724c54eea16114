"""CloudWatch metric names emitted by the inference function (EMF). Dimensions: ModelName, ModelVersion
and, in a deployed stack, Deployment."""

DIM_MODEL_NAME = "ModelName"
DIM_MODEL_VERSION = "ModelVersion"
# the stack name: two stacks of one model publish apart (the stack sets ENV_DEPLOYMENT on both functions)
DIM_DEPLOYMENT = "Deployment"
ENV_DEPLOYMENT = "MS_DEPLOYMENT"
DIM_FEATURE = "Feature"
DIM_REASON = "Reason"
# the drift check's metrics: which window of captures they describe ("24h", "1h"; window_label)
DIM_WINDOW = "Window"

ROWS_SCORED = "RowsScored"
PREDICTION_LATENCY_MS = "PredictionLatencyMs"
CAPTURE_ERRORS = "CaptureErrors"
CAPTURED_ROWS = "CapturedRows"
VALIDATION_REJECTS = "ValidationRejects"
FEEDBACK_ROWS = "FeedbackRows"
FEEDBACK_ERRORS = "FeedbackErrors"

# published by the drift-check function itself (the monitoring library's names are in monitoring.metric_names)
CORRUPT_CAPTURE_OBJECTS = "CorruptCaptureObjects"
# from a CloudWatch Logs metric filter on the functions' "metrics_error" log lines (EMF itself failed)
METRICS_ERRORS = "MetricsErrors"
# the log message a function writes when its EMF metrics fail; the metric filter matches its prefix
METRICS_ERROR_MESSAGE = "metrics_error: EMF metrics could not be written"


def window_label(hours: float) -> str:
    """The Window dimension's value for a window of this many hours: "24h", "1h"; "90m" when not whole hours."""
    minutes = round(hours * 60)
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def drift_windows(window_hours: int, short_window_hours: int) -> list[tuple[str, int]]:
    """(Window label, hours) of every window the drift check publishes, the main one first; the short
    window only when it is on and shorter than the main one."""
    windows = [(window_label(window_hours), window_hours)]
    if 0 < short_window_hours < window_hours:
        windows.append((window_label(short_window_hours), short_window_hours))
    return windows
