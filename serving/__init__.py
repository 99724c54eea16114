"""The inference function's code (shipped in the inference asset only): request validation, the ONNX
model runner, the request -> answer service, the ASGI app (Starlette routing), capture sinks, and the wiring that
builds them from settings and AWS clients."""
