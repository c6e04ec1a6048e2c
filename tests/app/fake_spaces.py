"""A stand-in for Hugging Face's `spaces` package with ZeroGPU on: it records every `GPU(...)` wrapping with its
duration callable, and makes each call cross a pickle boundary as ZeroGPU's forked worker does (arguments in,
yields and results out), noting any torch tensor that would cross."""
from __future__ import annotations

import functools
import inspect
import pickle
import sys
import types
from dataclasses import dataclass, field, fields, is_dataclass

import gradio as gr


@dataclass
class Wrapping:
    """One `spaces.GPU(fn, duration=...)`: the function, its duration callable, and what each call asked for."""

    fn: object
    duration: object
    asked: list = field(default_factory=list)


def _tensors(value, seen=None) -> list[str]:
    """Where torch tensors hide in a value that would cross to or from the GPU worker."""
    import torch

    seen = seen if seen is not None else set()
    if id(value) in seen:
        return []
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        return [type(value).__name__]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v, seen)]
    if isinstance(value, (list, tuple, set)):
        return [t for v in value for t in _tensors(v, seen)]
    if is_dataclass(value) and not isinstance(value, type):
        return [t for f in fields(value) for t in _tensors(getattr(value, f.name), seen)]
    return []


class FakeSpaces(types.ModuleType):
    """`import spaces` while installed: ZeroGPU reported on, GPU(...) recorded."""

    def __init__(self):
        super().__init__("spaces")
        self.config = types.SimpleNamespace(Config=types.SimpleNamespace(zero_gpu=True))
        self.wrappings: list[Wrapping] = []
        self.tensors: list[str] = []  # tensors that would have crossed the boundary
        self.calls = 0
        self.refuse_after: int | None = None  # refuse every call after this many, as an exhausted quota does

    def GPU(self, task=None, *, duration=None, size=None):  # noqa: N802 (the package's name)
        if task is None:
            return functools.partial(self.GPU, duration=duration, size=size)
        record = Wrapping(task, duration)
        self.wrappings.append(record)

        def enter(args, kwargs):
            if self.refuse_after is not None and self.calls >= self.refuse_after:
                raise gr.Error("You have exceeded your GPU quota (20s left vs. 60s requested).")
            self.calls += 1
            asked = duration(*args, **kwargs) if callable(duration) else duration
            record.asked.append(asked)
            self.tensors += _tensors((args, kwargs))
            keep = {k: v for k, v in kwargs.items() if isinstance(v, gr.Progress)}  # spaces forwards progress itself
            args, kwargs = pickle.loads(pickle.dumps((args, {k: v for k, v in kwargs.items() if k not in keep})))
            return args, {**kwargs, **keep}

        def leave(value):
            self.tensors += _tensors(value)
            return pickle.loads(pickle.dumps(value))

        if inspect.isgeneratorfunction(task):
            @functools.wraps(task)
            def wrapper(*args, **kwargs):
                args, kwargs = enter(args, kwargs)
                for item in task(*args, **kwargs):
                    yield leave(item)
        else:
            @functools.wraps(task)
            def wrapper(*args, **kwargs):
                args, kwargs = enter(args, kwargs)
                return leave(task(*args, **kwargs))
        wrapper.zerogpu = None  # as the real decorator marks what it wrapped
        return wrapper

    def wrapped(self) -> set:
        return {w.fn for w in self.wrappings}


def install(monkeypatch) -> FakeSpaces:
    """Put the stand-in in sys.modules (monkeypatch restores whatever was there) and return it."""
    fake = FakeSpaces()
    monkeypatch.setitem(sys.modules, "spaces", fake)
    return fake
