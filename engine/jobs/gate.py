"""One line of generation slots shared by the UI's queue and the REST API, so both respect the same limit."""
from __future__ import annotations

import threading
from contextlib import contextmanager

BUSY = "Busy, try again in a moment."


class Busy(RuntimeError):
    """Every slot is taken and the waiting line is full."""


class Gate:
    """At most `limit` generations at once, and at most `max_waiting` callers waiting; beyond that, Busy at once."""

    def __init__(self, limit: int = 1, max_waiting: int = 20):
        if limit < 1 or max_waiting < 0:
            raise ValueError("The concurrency limit must be at least 1 and the queue size at least 0.")
        self.limit, self.max_waiting = limit, max_waiting
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._inside = 0  # running plus waiting
        self._running = 0

    @contextmanager
    def slot(self, refuse_when_full: bool = True):
        """Hold one slot; with the line full, Busy at once unless `refuse_when_full` is False (a job that waits)."""
        with self._lock:
            if refuse_when_full and self._inside >= self.limit + self.max_waiting:
                raise Busy(BUSY)
            self._inside += 1
        try:
            with self._slots:
                with self._lock:
                    self._running += 1
                try:
                    yield
                finally:
                    with self._lock:
                        self._running -= 1
        finally:
            with self._lock:
                self._inside -= 1

    def waiting(self) -> int:
        """Callers waiting for a slot right now (a long job gives its slot way to them)."""
        with self._lock:
            return self._inside - self._running
