"""SnapStart (the ``snap_start`` setting): what a restored environment must not keep from its snapshot.

With SnapStart, Lambda runs init once when a version is published, snapshots the memory, and starts
each new environment from that snapshot. Everything init built is then shared by every environment:

- AWS clients: their connections and the credentials they resolved belong to the snapshot's moment.
  ``before_snapshot`` drops them (none is in the snapshot); ``after_restore`` drops any built since;
  the next capture or feedback builds new ones (``aws_clients.ClientFactory``).
- random generators: a generator seeded at init would give every restored environment the same
  sequence (the same capture-sampling decisions). ``after_restore`` reseeds each capturer's
  generator and the ``random`` module's from ``os.urandom``. A/B assignment needs none: it is a hash
  of the client id or of the request id (uuid4, read from ``os.urandom`` per request).
- the capture extension: registered with the Extensions API during init, like any extension, so it
  is in the snapshot with its worker waiting on its next event, as Lambda snapshots every extension;
  nothing of it is per environment (the Runtime API it talks to resumes from the same snapshot), so
  the hooks leave it as it is (docs/performance.md#snapstart).

The hooks are registered with the runtime's ``snapshot_restore_py`` (in Lambda's Python 3.12+
runtimes; absent elsewhere, where registering is skipped).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from typing import Any

from .aws_clients import ClientFactory
from .capture import Capturer
from .service import InferenceService


def capturers_of(service: InferenceService) -> list[Capturer]:
    """Every capturer of the function: the champion's, and a challenger's (its own, or a shadow's)."""
    found: dict[int, Capturer] = {}
    pending: list[Any] = [service.capturer, getattr(getattr(service, "challenger", None), "capturer", None)]
    while pending:
        capturer = pending.pop()
        if isinstance(capturer, Capturer) and id(capturer) not in found:
            found[id(capturer)] = capturer
            pending.append(getattr(capturer, "challenger_capturer", None))
    return list(found.values())


class SnapStartHooks:
    """The before-snapshot and after-restore hooks of one inference function."""

    def __init__(self, clients: ClientFactory | None, generators: Iterable[random.Random]) -> None:
        self.clients = clients
        self.generators = list(generators)
        self.restores = 0

    @classmethod
    def of(cls, clients: ClientFactory | None, service: InferenceService) -> SnapStartHooks:
        return cls(clients, [c.rng for c in capturers_of(service)])

    def before_snapshot(self) -> None:
        """No AWS client, open connection or resolved credentials go into the snapshot."""
        if self.clients is not None:
            self.clients.reset()

    def after_restore(self) -> None:
        """This environment's own clients (on first use) and its own random sequences."""
        if self.clients is not None:
            self.clients.reset()
        for generator in self.generators:
            generator.seed(os.urandom(32))
        random.seed(os.urandom(32))
        self.restores += 1

    def register(self, runtime: Any = None) -> bool:
        """Register both hooks with ``runtime`` (default: the Lambda runtime's ``snapshot_restore_py``);
        False where there is none (local runs, tests), where the hooks are never called anyway."""
        if runtime is None:
            try:
                import snapshot_restore_py  # in Lambda's Python 3.12+ runtimes
            except ImportError:
                return False
            runtime = snapshot_restore_py
        runtime.register_before_snapshot(self.before_snapshot)
        runtime.register_after_restore(self.after_restore)
        return True
