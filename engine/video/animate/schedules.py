"""Deforum's keyframe schedules and keyframed prompts, read safely.

A schedule is `frame:(value)` pairs separated by commas, e.g. `0:(1.0), 30:(1.02)` or
`0:(1.0025+0.002*sin(1.25*3.14*t/30))`. Between keyframes the values are interpolated linearly; before the first
keyframe the first value holds and after the last one the last value holds. A value may be an expression of `t`,
the frame number: it is parsed with Python's `ast` and only numbers, `t`, `+ - * / // % **`, unary minus and the
maths functions in `FUNCTIONS` are allowed. Nothing is ever passed to `eval`.
"""
from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass

import numpy as np

from engine.text.limits import excerpt, listed

FUNCTIONS = {
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin, "acos": math.acos, "atan": math.atan,
    "atan2": math.atan2, "sinh": math.sinh, "cosh": math.cosh, "tanh": math.tanh, "sqrt": math.sqrt,
    "exp": math.exp, "log": math.log, "log10": math.log10, "abs": abs, "floor": math.floor, "ceil": math.ceil,
    "round": round, "min": min, "max": max, "pow": math.pow,
}
CONSTANTS = {"pi": math.pi, "e": math.e}
MAX_EXPRESSION = 500  # characters; schedules are short formulas, not programs
MAX_KEYFRAMES = 1000  # keyframes in one schedule, or prompts in one animation: one per frame of the longest
MAX_KEYFRAME = 100_000  # the furthest frame a keyframe may name (past the last frame it only shapes the values before)
MAX_TEXT = 100_000  # characters in one schedule or one animation's prompt lines
MAX_POWER = 1e6  # x ** y with |y| above this is refused: it only ever overflows

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_PAIR = re.compile(r"\s*(-?\d+(?:\.\d*)?)\s*:\s*\(")


@dataclass
class Schedule:
    """A parsed schedule: keyframes (frame numbers) and their compiled value expressions."""

    name: str
    text: str
    keyframes: list[int]
    expressions: list[ast.Expression]

    def value(self, frame: int, index: int) -> float:
        return _evaluate(self.expressions[index], float(frame), self.name)

    def series(self, num_frames: int) -> np.ndarray:
        """The value at every frame 0..num_frames-1: expressions at keyframes, linear in between."""
        keys = self.keyframes
        out = np.empty(num_frames, dtype=np.float64)
        for frame in range(num_frames):
            after = next((i for i, k in enumerate(keys) if k >= frame), None)
            if after is None:  # past the last keyframe: the last expression holds
                out[frame] = self.value(frame, len(keys) - 1)
            elif keys[after] == frame or after == 0:  # on a keyframe, or before the first
                out[frame] = self.value(frame, after)
            else:  # between two keyframes: each side's expression at this frame, mixed linearly
                a, b = keys[after - 1], keys[after]
                w = (frame - a) / (b - a)
                out[frame] = (1 - w) * self.value(frame, after - 1) + w * self.value(frame, after)
        return out

    def notes(self, num_frames: int) -> list[str]:
        """A sentence for each keyframe at or beyond the last frame (kept, but it never shows)."""
        late = [k for k in self.keyframes if k >= num_frames]
        if not late:
            return []
        return [f"The {self.name} schedule has a keyframe at frame {listed(late)}, beyond the last "
                f"frame ({num_frames - 1}); it only shapes the values before it."]


def parse_schedule(text: str, name: str = "schedule") -> Schedule:
    """Read `0:(1.0), 30:(expr)`; a mistake raises ValueError naming the schedule and the character position."""
    text = "" if text is None else str(text)
    if not text.strip():
        raise ValueError(f"The {name} schedule is empty; write it as 0:(value), e.g. 0:(1.0).")
    if len(text) > MAX_TEXT:
        raise ValueError(f"The {name} schedule is {len(text):,} characters long; keep it under {MAX_TEXT:,}.")
    keyframes, expressions = [], []
    pos = 0
    while True:
        match = _PAIR.match(text, pos)
        if not match:
            raise ValueError(f"The {name} schedule can't be read at position {pos + 1} ({_near(text, pos)}); "
                             "write keyframes as frame:(value), separated by commas, e.g. 0:(1.0), 30:(1.02).")
        frame = _keyframe(match.group(1), f"The {name} schedule's keyframe at position {match.start(1) + 1}")
        start = match.end()
        end = _closing_paren(text, start - 1)
        if end is None:
            raise ValueError(f"The {name} schedule has an unclosed '(' at position {start}; close it with ')'.")
        keyframes.append(frame)
        if len(keyframes) > MAX_KEYFRAMES:
            raise ValueError(f"The {name} schedule has more than {MAX_KEYFRAMES:,} keyframes; keep one per frame at "
                             "most.")
        expressions.append(compile_expression(text[start:end], name, start))
        pos = end + 1
        rest = text[pos:]
        stripped = rest.lstrip()
        if not stripped:
            break
        if not stripped.startswith(","):
            where = pos + len(rest) - len(stripped)
            raise ValueError(f"The {name} schedule can't be read at position {where + 1} ({_near(text, where)}); "
                             "separate keyframes with commas.")
        pos += len(rest) - len(stripped) + 1
        if not text[pos:].strip():  # a trailing comma is harmless
            break
    if len(set(keyframes)) != len(keyframes):
        twice = sorted({k for k in keyframes if keyframes.count(k) > 1})
        raise ValueError(f"The {name} schedule gives frame {twice[0]} twice; keep one value per keyframe.")
    order = sorted(range(len(keyframes)), key=keyframes.__getitem__)
    return Schedule(name, text, [keyframes[i] for i in order], [expressions[i] for i in order])


def _keyframe(text: str, what: str) -> int:
    """A keyframe's frame number, checked by its digits before it becomes a number (a float would overflow)."""
    whole, _, fraction = text.partition(".")
    if whole.startswith("-") or fraction.strip("0"):
        raise ValueError(f"{what} ({excerpt(text, 12)}) must be a whole frame number of 0 or more.")
    if len(whole.lstrip("0")) > len(str(MAX_KEYFRAME)) or int(whole) > MAX_KEYFRAME:
        raise ValueError(f"{what} ({excerpt(text, 12)}) is past frame {MAX_KEYFRAME:,}; a keyframe beyond the last "
                         "frame only shapes the values before it.")
    return int(whole)


def schedule_series(text: str, name: str, num_frames: int) -> np.ndarray:
    """Shorthand: parse and evaluate at every frame."""
    return parse_schedule(text, name).series(num_frames)


def compile_expression(source: str, name: str = "schedule", offset: int = 0) -> ast.Expression:
    """Parse one value; anything but numbers, t, arithmetic and maths functions raises ValueError."""
    if len(source) > MAX_EXPRESSION:
        raise ValueError(f"An expression in the {name} schedule is over {MAX_EXPRESSION} characters; shorten it.")
    if not source.strip():
        raise ValueError(f"The {name} schedule has an empty value at position {offset + 1}; put a number in the "
                         "brackets.")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        where = offset + (exc.offset or 1) + (len(source) - len(source.lstrip()))
        raise ValueError(f"The {name} schedule's expression {excerpt(source.strip())} is not valid maths (at position "
                         f"{where}); use numbers, t, + - * / ** and functions such as sin(t).") from None
    for node in ast.walk(tree):
        _check_node(node, name, offset)
    _evaluate(tree, 0.0, name)  # catch e.g. an unknown arity now, not at frame 500
    return tree


def _check_node(node: ast.AST, name: str, offset: int) -> None:
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Constant, ast.Load,
               *_BINARY, *_UNARY)
    where = offset + getattr(node, "col_offset", 0) + 1
    if not isinstance(node, allowed):
        what = {ast.Attribute: "attribute access", ast.Subscript: "indexing", ast.Lambda: "a lambda",
                ast.Compare: "a comparison", ast.BoolOp: "and/or", ast.IfExp: "if/else"}.get(type(node), "code")
        raise ValueError(f"The {name} schedule contains {what} at position {where}; only numbers, t, arithmetic "
                         f"and maths functions ({', '.join(sorted(FUNCTIONS))}) are allowed.")
    if isinstance(node, ast.Constant) and (isinstance(node.value, bool) or not isinstance(node.value, (int, float))):
        raise ValueError(f"The {name} schedule contains {excerpt(node.value)} at position {where}; only numbers are "
                         "allowed as constants.")
    if isinstance(node, ast.Name) and node.id != "t" and node.id not in CONSTANTS and node.id not in FUNCTIONS:
        raise ValueError(f"The {name} schedule uses the name {excerpt(node.id)} at position {where}; only t (the frame "
                         "number), pi and e are known.")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            _check_node(node.func, name, offset)  # attribute access and the like get their own sentence
            raise ValueError(f"The {name} schedule calls something other than a maths function at position "
                             f"{where}; only {', '.join(sorted(FUNCTIONS))} can be called.")
        if node.func.id not in FUNCTIONS:
            called = node.func.id
            raise ValueError(f"The {name} schedule calls {excerpt(called)} at position {where}; only the maths functions "
                             f"{', '.join(sorted(FUNCTIONS))} are allowed.")
        if node.keywords:
            raise ValueError(f"The {name} schedule passes a keyword argument at position {where}; give plain "
                             "values only.")


def _evaluate(tree: ast.Expression, t: float, name: str) -> float:
    try:
        value = float(_eval_node(tree.body, t))
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise ValueError(f"The {name} schedule can't be worked out at frame {t:g} ({exc}); check the expression.") \
            from None
    if not math.isfinite(value):
        raise ValueError(f"The {name} schedule gives {value} at frame {t:g}; make it a finite number.")
    return value


def _eval_node(node: ast.AST, t: float):
    if isinstance(node, ast.Constant):
        return float(node.value)  # floats overflow to an error where Python's ints would grow without end
    if isinstance(node, ast.Name):
        if node.id != "t" and node.id not in CONSTANTS:
            raise ValueError(f"{node.id} is a function: call it, as in {node.id}(t)")
        return t if node.id == "t" else CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval_node(node.operand, t))
    if isinstance(node, ast.BinOp):
        left, right = _eval_node(node.left, t), _eval_node(node.right, t)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_POWER:
            raise ValueError("the power is too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.Call):
        return float(FUNCTIONS[node.func.id](*(_eval_node(a, t) for a in node.args)))
    raise ValueError("unsupported expression")  # unreachable after _check_node


def _closing_paren(text: str, open_at: int) -> int | None:
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return None


def _near(text: str, pos: int) -> str:
    piece = text[pos:pos + 12]
    return f"near {excerpt(piece)}" if piece else "at the end"


# Keyframed prompts
def parse_prompts(text: str) -> dict[int, str]:
    """`frame: prompt`, one per line (`0: a forest at dawn`); a line without a number continues frame 0's prompt."""
    if len(text or "") > MAX_TEXT:
        raise ValueError(f"The prompts are {len(text):,} characters long; keep them under {MAX_TEXT:,}.")
    prompts: dict[int, str] = {}
    for number, line in enumerate((text or "").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        match = re.match(r"^(-?\d+)\s*:\s*(.*)$", line)
        if not match:
            if prompts:
                raise ValueError(f"Prompt line {number} has no frame number; write it as 'frame: prompt', "
                                 "e.g. 48: a desert at night.")
            prompts[0] = line
            continue
        if match.group(1).startswith("-"):
            raise ValueError(f"Prompt line {number} starts at a negative frame; frames count from 0.")
        frame, prompt = _keyframe(match.group(1), f"The frame of prompt line {number}"), match.group(2).strip()
        if not prompt:
            raise ValueError(f"Prompt line {number} (frame {frame}) has no prompt; write one after the colon.")
        if frame in prompts:
            raise ValueError(f"Frame {frame} has two prompts (line {number}); keep one.")
        prompts[frame] = prompt
        if len(prompts) > MAX_KEYFRAMES:
            raise ValueError(f"There are more than {MAX_KEYFRAMES:,} prompt keyframes; keep one per frame at most.")
    if not prompts:
        raise ValueError("Write at least one prompt, as 'frame: prompt', e.g. 0: a forest at dawn.")
    if 0 not in prompts:
        first = min(prompts)
        prompts = {0: prompts[first], **{k: v for k, v in prompts.items() if k != first}}
    return dict(sorted(prompts.items()))


def format_prompts(prompts: dict[int, str]) -> str:
    return "\n".join(f"{frame}: {prompt}" for frame, prompt in sorted(prompts.items()))


def prompt_weights(prompts: dict[int, str], frame: int, blend: int) -> list[tuple[str, float]]:
    """Which prompts make up a frame: the latest keyframe's prompt, or two mixed over `blend` frames before a change.

    With `blend` B, the frames k-B .. k-1 before a keyframe k move linearly from the old prompt to the new one,
    so at frame k the prompt is exactly the keyframe's.
    """
    keys = sorted(prompts)
    current = max(k for k in keys if k <= frame) if frame >= keys[0] else keys[0]
    upcoming = next((k for k in keys if k > frame), None)
    if blend > 0 and upcoming is not None and upcoming - frame <= blend:
        start = max(upcoming - blend, current)
        w = (frame - start + 1) / (upcoming - start + 1)
        return [(prompts[current], 1 - w), (prompts[upcoming], w)]
    return [(prompts[current], 1.0)]
