"""The drift-check function's AWS side (shipped in the drift-check asset only): reads the capture window
from S3, runs the ``monitoring`` library on it, writes reports and publishes CloudWatch metrics."""
