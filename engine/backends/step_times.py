"""UNet step times measured in this process, by back end and Fast, so Fast's label states what it gives here."""
from __future__ import annotations

import threading
from collections import defaultdict, deque

KEEP = 60  # the latest steps of each kind and size
_lock = threading.Lock()
_times: dict[tuple[str, int], deque] = defaultdict(lambda: deque(maxlen=KEEP))


def record(kind: str, pixels: int, seconds: float) -> None:
    """One step: kind is "fast" (feature reuse) or the back end a plain step ran on ("torch", "openvino")."""
    with _lock:
        _times[(kind, pixels)].append(seconds)


def fast_speedup(backend: str, min_steps: int = 4) -> float | None:
    """Mean plain step on `backend` over mean Fast step, at the latest size both were measured; None until then."""
    with _lock:
        sizes = [pixels for (kind, pixels), steps in _times.items()
                 if kind == "fast" and len(steps) >= min_steps and len(_times.get((backend, pixels), ())) >= min_steps]
        if not sizes:
            return None
        pixels = max(sizes)
        plain, fast = _times[(backend, pixels)], _times[("fast", pixels)]
        return (sum(plain) / len(plain)) / (sum(fast) / len(fast))


def clear() -> None:
    with _lock:
        _times.clear()
