"""Requests share the model while they want the same LoRA set; one wanting another set waits until it is free."""
from __future__ import annotations

import itertools
import threading
from contextlib import contextmanager
from typing import Callable, Hashable

NOTHING: tuple = ()


class AdapterSwitch:
    """Holds which LoRA set the shared model carries, and switches it only when no request is using it.

    `apply(wanted, payload)` changes the model to the set `wanted` (NOTHING: the plain model); it runs with no
    request inside. If it fails it must leave the plain model behind. Waiting requests for another set make
    newcomers for the current set wait too, so nobody waits for ever.
    """

    def __init__(self, apply: Callable[[Hashable, object], None]):
        self._apply = apply
        self._cond = threading.Condition()
        self._local = threading.local()
        self._waiting: dict[int, Hashable] = {}  # ticket -> wanted set, in arrival order
        self._tickets = itertools.count()
        self.current: Hashable = NOTHING
        self.inside = 0

    def held(self) -> Hashable | None:
        """The set this thread's job holds, or None outside any job."""
        return getattr(self._local, "held", None)

    @contextmanager
    def use(self, wanted: Hashable, payload: object = None):
        """Run the body with the model carrying `wanted`; nested calls in the same thread share the outer set."""
        held = self.held()
        if held is not None:
            yield held
            return
        with self._cond:
            ticket = next(self._tickets)
            self._waiting[ticket] = wanted
            try:
                while not self._may_enter(ticket, wanted):
                    self._cond.wait()
            finally:
                del self._waiting[ticket]
            if self.current != wanted:
                try:
                    self._apply(wanted, payload)
                except BaseException:
                    self.current = NOTHING
                    self._cond.notify_all()
                    raise
                self.current = wanted
            self.inside += 1
        self._local.held = wanted
        try:
            yield wanted
        finally:
            self._local.held = None
            with self._cond:
                self.inside -= 1
                self._cond.notify_all()

    def reset(self) -> None:
        """The model was dropped (a model switch): the next one starts plain."""
        with self._cond:
            self.current = NOTHING

    def _may_enter(self, ticket: int, wanted: Hashable) -> bool:
        """First come, first served between sets; a job joins those running only when no other set is waiting."""
        if self.inside and self.current != wanted:
            return False
        others = (t for t, key in self._waiting.items() if key != wanted)
        if self.inside:
            return next(others, None) is None
        return all(t > ticket for t in others)
