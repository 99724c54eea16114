"""The contracts both Lambda functions share (shipped in both assets): the bundle schema and loader,
the capture / feedback record format and every S3 key scheme, settings, logging and metric names.

Nothing here imports the serving code, the drift side, ``monitoring`` or the developer tools.
"""
