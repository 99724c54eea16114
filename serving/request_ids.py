"""Request ids the server issues, carrying what a label for them is checked against, at no I/O.

An issued id is ``<ms>.<rows>.<mac>.<base>``: the prediction's time in milliseconds since the epoch
(11 hex digits, so ids sort by time), the rows the request held, a truncated HMAC-SHA256 of the rest
with the stack's key (``settings.ENV_REQUEST_ID_KEY``), and the id the request came with (API Gateway's, so the
access logs still join). ``/feedback`` reads an id back without a lookup: the server issued it (the
MAC holds), the row is one the request held, and the hour the prediction was made files the label
where the drift check reads that hour's labels (``records.feedback_prediction_key``).

Without a key (local tools, tests that build a service by hand) ids are the base id as before and
labels are not checked against them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

MAC_HEX = 16  # 64 bits: forging one id takes 2^63 tries on average, each a request
MIN_KEY_BYTES = 16
# API Gateway's ids (REST: a UUID; HTTP API: 16 characters) and ours (hex); no "/": the id goes in S3 keys
_BASE = re.compile(r"[0-9A-Za-z_=-]{1,64}")
_ISSUED = re.compile(r"([0-9a-f]{11})\.([1-9][0-9]{0,6})\.([0-9a-f]{%d})\.(%s)" % (MAC_HEX, _BASE.pattern))


class IdCheck(Enum):
    """What reading a request id back found, when it is no id this server issued."""

    NOT_ISSUED_FORM = "not_issued_form"  # another shape: an id of before signing, or one the server never issued
    FORGED = "forged"  # the issued shape, but the MAC does not hold: altered or made up


@dataclass(frozen=True)
class IssuedId:
    """What an id the server issued says about its request."""

    predicted_at: datetime
    rows: int


class RequestIds:
    """Issues and reads back request ids; ``key`` None: ids are the base id, read back as unchecked.
    ``accept_unsigned``: feedback may name an id of another shape (the ``unsigned_feedback_ids`` setting)."""

    def __init__(self, key: bytes | None, accept_unsigned: bool = False) -> None:
        if key is not None and len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the request id key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key
        # the key's HMAC state, set up once: each id's MAC starts from a copy of it (the key is not re-padded per request)
        self._keyed = hmac.new(key, digestmod=hashlib.sha256) if key is not None else None
        self.accept_unsigned = accept_unsigned

    @classmethod
    def from_text(cls, key: str | None, accept_unsigned: bool = False) -> RequestIds:
        return cls(key.encode() if key else None, accept_unsigned)

    @property
    def signing(self) -> bool:
        return self._key is not None

    @property
    def feedback_id_pattern(self) -> str | None:
        """The form of every id ``/feedback`` can accept, as a JSON Schema pattern: the issued form when signing
        (unless ids of another shape are accepted too), else None. The MAC itself no pattern can say."""
        return f"^{_ISSUED.pattern}$" if self._key is not None and not self.accept_unsigned else None

    def issue(self, base: str, rows: int, at: datetime) -> str:
        """The id of a request of ``rows`` rows predicted ``at``; ``base`` itself when not signing."""
        if self._key is None or rows < 1:
            return base
        if not _BASE.fullmatch(base):  # not an id a reader could take apart again: a fresh one
            base = uuid.uuid4().hex
        ms = int(at.astimezone(UTC).timestamp() * 1000)
        unsigned = f"{ms:011x}.{rows}"
        return f"{unsigned}.{self._mac(unsigned, base)}.{base}"

    def read(self, request_id: str) -> IssuedId | IdCheck:
        """What the id says, when this server issued it (with this key)."""
        m = _ISSUED.fullmatch(request_id)
        if m is None or self._key is None:
            return IdCheck.NOT_ISSUED_FORM
        ms, rows, mac, base = m.groups()
        if not hmac.compare_digest(mac, self._mac(f"{ms}.{rows}", base)):
            return IdCheck.FORGED
        return IssuedId(datetime.fromtimestamp(int(ms, 16) / 1000.0, tz=UTC), int(rows))

    def _mac(self, unsigned: str, base: str) -> str:
        assert self._keyed is not None
        mac = self._keyed.copy()
        mac.update(f"{unsigned}.{base}".encode())
        return mac.hexdigest()[:MAC_HEX]
