"""AWS clients built on first use, not at init: the first answer needs no boto3.

The capture sinks and the feedback writer hold a ``LazyClient``; the first capture (on the capture
thread, after the answer) or the first feedback builds the boto3 session and the client. ``reset``
drops them all, so the next call builds fresh ones: what a SnapStart restore needs (connections and
credentials of the snapshot are not this environment's).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class LazyClient:
    """A boto3 client built by ``build`` on its first attribute access (thread-safe), then used as is."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._client is not None

    def get(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build()
                client = self._client
        return client

    def reset(self) -> None:
        with self._lock:
            self._client = None

    def __getattr__(self, name: str) -> Any:  # only reached for the client's own attributes (put_object, ...)
        return getattr(self.get(), name)


class ClientFactory:
    """The inference function's AWS clients: one boto3 session (built when the first client is), each
    client lazy. ``session``: a ready session (tests, tools); else ``boto3.session.Session()``."""

    def __init__(self, session: Any = None) -> None:
        self._given_session = session
        self._session: Any = session
        self._lock = threading.Lock()
        self._clients: list[LazyClient] = []

    def session(self) -> Any:
        with self._lock:
            if self._session is None:
                import boto3  # here, not at import: the answer path never needs it

                self._session = boto3.session.Session()
            return self._session

    def client(self, service_name: str, budget_s: float | None = None) -> LazyClient:
        """A lazy client; with ``budget_s``, the capture clients' timeouts and no SDK retries."""

        def build() -> Any:
            config = None
            if budget_s is not None:
                from .post_response import capture_client_config

                config = capture_client_config(budget_s)
            return self.session().client(service_name, config=config)

        lazy = LazyClient(build)
        self._clients.append(lazy)
        return lazy

    def reset(self) -> None:
        """Drop every client and the session this factory built: the next call builds new ones."""
        with self._lock:
            self._session = self._given_session
        for lazy in self._clients:
            lazy.reset()
