"""CloudWatch metric names emitted by the inference function (EMF). Dimensions: ModelName, ModelVersion
and, in a deployed stack, Deployment."""

DIM_MODEL_NAME = "ModelName"
DIM_MODEL_VERSION = "ModelVersion"
# the stack name: two stacks of one model publish apart (the stack sets ENV_DEPLOYMENT on both functions)
DIM_DEPLOYMENT = "Deployment"
ENV_DEPLOYMENT = "MS_DEPLOYMENT"
DIM_FEATURE = "Feature"
DIM_REASON = "Reason"

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
