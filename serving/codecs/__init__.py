"""The request formats of the inference API, one codec each (``base.py``: the pipeline and the registry).

Importing the package registers the built-in codecs in ``CODECS``; the route's default first.
"""

from __future__ import annotations

from . import arrow_stream, json_rows, oip_tensors  # noqa: F401 - registers the built-in codecs
from .base import CODECS, OIP, PREDICT, Codec, CodecRegistry, CodecRoute, Decoded, Problem

__all__ = ["CODECS", "OIP", "PREDICT", "Codec", "CodecRegistry", "CodecRoute", "Decoded", "Problem"]
