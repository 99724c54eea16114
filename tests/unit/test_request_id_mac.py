"""A signed request id's MAC is HMAC-SHA256 of "<ms>.<rows>.<base>" under the stack's key, truncated: ids a
deployed version issued stay readable by the next one (feedback arrives after deploys), whatever the MAC's
computation inside ``RequestIds``."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from serving.request_ids import MAC_HEX, IdCheck, IssuedId, RequestIds

KEY = b"a-key-of-at-least-the-minimum-length-for-ids"


def test_an_issued_id_carries_the_hmac_sha256_of_its_parts() -> None:
    at = datetime(2026, 12, 6, 12, 0, 0, 250_000, tzinfo=UTC)
    issued = RequestIds(KEY).issue("0f" * 16, 3, at)
    ms, rows, mac, base = issued.split(".")
    expected = hmac.new(KEY, f"{ms}.{rows}.{base}".encode(), hashlib.sha256).hexdigest()[:MAC_HEX]
    assert (int(ms, 16), rows, base, mac) == (int(at.timestamp() * 1000), "3", "0f" * 16, expected)


def test_ids_issued_by_one_instance_are_read_by_another_and_a_changed_mac_is_forged() -> None:
    at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    ids = [RequestIds(KEY).issue(f"{i:032x}", i + 1, at) for i in range(3)]
    reader = RequestIds(KEY)
    assert [reader.read(i) for i in ids] == [IssuedId(at, n) for n in (1, 2, 3)]
    ms, rows, mac, base = ids[0].split(".")
    forged = f"{ms}.{rows}.{'0' if mac[0] != '0' else '1'}{mac[1:]}.{base}"
    assert reader.read(forged) is IdCheck.FORGED
    assert RequestIds(KEY[::-1]).read(ids[0]) is IdCheck.FORGED  # another key
