"""Encode prompts of any length in 77-token chunks with A1111's attention syntax, so prompts mean what they did there.

`(word)` weighs a word 1.1×, `((word))` 1.21×, `(word:1.3)` 1.3×, `[word]` 1/1.1×; `\\(`, `\\)`, `\\[`, `\\]` and
`\\\\` are literal characters; `BREAK` starts a new 75-token chunk. A prompt without any of these encodes exactly
as plain CLIP text in 75-token chunks (nothing past token 75 is cut silently).
"""
from __future__ import annotations

import math
import re

import torch

from engine.text.limits import excerpt

CHUNK_TOKENS = 75  # CLIP's window is 77: start token + 75 + end token
MAX_TOKENS = 1000  # the default cap on a prompt's length (--max-prompt-tokens, STUDIO_MAX_PROMPT_TOKENS)
CHARACTERS_PER_TOKEN = 32  # the cheap check before tokenizing: a prompt under the cap is never this long
BREAK = "BREAK"
BREAK_WEIGHT = -1.0  # the marker weight A1111's parser gives a BREAK
ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
MAX_NESTING = 100  # brackets open at once; each closing one re-weighs everything inside it, so depth costs time
MEAN_FLOOR = 1e-4  # a chunk mean below this share of the mean magnitude is rounding noise (see apply_weights)

_ATTENTION = re.compile(r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\\|
\\|
\(|
\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|
]|
[^\\()\[\]:]+|
:
""", re.X)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


# 1. parsing
def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """Split a prompt into (text, weight) runs as A1111's parser does; a BREAK is the pair ("BREAK", -1.0).

    Unclosed brackets weigh everything after them, unmatched closing brackets are literal text, and runs of
    equal weight are merged.
    """
    return [(BREAK, BREAK_WEIGHT) if is_break else (run_text, weight) for run_text, weight, is_break in _runs(text)]


def _runs(text: str) -> list[tuple[str, float, bool]]:
    """(text, weight, is_break) runs; a BREAK inside brackets still breaks and takes no weight."""
    runs: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply_from(start: int, multiplier: float) -> None:
        for run in runs[start:]:
            if not run[2]:
                run[1] *= multiplier

    for match in _ATTENTION.finditer(text):
        piece, weight = match.group(0), match.group(1)
        if piece.startswith("\\"):
            runs.append([piece[1:], 1.0, False])
        elif piece in ("(", "["):
            if len(round_open) + len(square_open) >= MAX_NESTING:
                raise ValueError(f"The prompt opens more than {MAX_NESTING} brackets inside each other; close some, "
                                 "or escape them as \\( and \\[.")
            (round_open if piece == "(" else square_open).append(len(runs))
        elif weight is not None and round_open:
            multiply_from(round_open.pop(), _weight(weight))
        elif piece == ")" and round_open:
            multiply_from(round_open.pop(), ROUND_MULTIPLIER)
        elif piece == "]" and square_open:
            multiply_from(square_open.pop(), SQUARE_MULTIPLIER)
        else:
            for i, part in enumerate(_BREAK.split(piece)):
                if i > 0:
                    runs.append([BREAK, BREAK_WEIGHT, True])
                runs.append([part, 1.0, False])
    for start in round_open:
        multiply_from(start, ROUND_MULTIPLIER)
    for start in square_open:
        multiply_from(start, SQUARE_MULTIPLIER)
    if any(not math.isfinite(run[1]) for run in runs):
        raise ValueError("The prompt's weights multiply to more than any number can hold; use smaller weights, "
                         "like (word:1.5).")
    if not runs:
        runs = [["", 1.0, False]]
    merged = [runs[0]]
    for run in runs[1:]:
        last = merged[-1]
        if not run[2] and not last[2] and run[1] == last[1]:
            last[0] += run[0]
        else:
            merged.append(run)
    return [tuple(run) for run in merged]


def _weight(text: str) -> float:
    try:
        weight = float(text)
    except ValueError:
        raise ValueError(f"The prompt weight {excerpt(text)} is not a number; write it like (word:1.2).") from None
    if not math.isfinite(weight):
        raise ValueError(f"The prompt weight {excerpt(text)} is too large; write it like (word:1.2).")
    return weight


# 2. tokens in chunks
def token_ids(tokenizer, text: str) -> list[int]:
    """The prompt's tokens without start/end markers and without truncation."""
    return tokenizer(text, add_special_tokens=False, truncation=False).input_ids


def weighted_chunks(tokenizer, text: str) -> list[tuple[list[int], list[float]]]:
    """The prompt's tokens and their weights in chunks of at most 75, as A1111 cuts them.

    A chunk is closed when it is full and another token comes, or at a BREAK (an empty chunk closed by a BREAK
    still counts). Unlike A1111 a word is never moved back past a comma into the next chunk, so a plain prompt
    is cut exactly where it always was here.
    """
    runs = _runs(text or "")
    pieces = [run_text for run_text, _, is_break in runs if not is_break]
    encoded = iter(tokenizer(pieces, add_special_tokens=False, truncation=False).input_ids if pieces else [])
    chunks: list[tuple[list[int], list[float]]] = []
    ids: list[int] = []
    weights: list[float] = []
    for _, weight, is_break in runs:
        if is_break:
            chunks.append((ids, weights))
            ids, weights = [], []
            continue
        for token in next(encoded):
            if len(ids) == CHUNK_TOKENS:
                chunks.append((ids, weights))
                ids, weights = [], []
            ids.append(token)
            weights.append(weight)
    if ids or not chunks:
        chunks.append((ids, weights))
    return chunks


def chunk_ids(tokenizer, ids: list[int], num_chunks: int) -> torch.Tensor:
    """Cut ids into `num_chunks` windows of 77, each framed by start/end tokens and padded."""
    return torch.tensor([_framed(tokenizer, ids[i * CHUNK_TOKENS:(i + 1) * CHUNK_TOKENS]) for i in range(num_chunks)],
                        dtype=torch.long)


def _framed(tokenizer, body: list[int]) -> list[int]:
    """One 77-token window: start token, the body, end token, then padding."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    row = [bos, *body, eos]
    return row + [pad] * (CHUNK_TOKENS + 2 - len(row))


def prompt_chunks(tokenizer, *texts: str) -> int:
    """How many 77-token windows the longest of these prompts needs (BREAKs included)."""
    return max(1, *(len(weighted_chunks(tokenizer, t or "")) for t in texts))


def token_count(tokenizer, text: str) -> int:
    """The token positions a prompt fills in its 75-token chunks: its tokens, a BREAK filling the rest of its chunk."""
    chunks = weighted_chunks(tokenizer, text or "")
    return (len(chunks) - 1) * CHUNK_TOKENS + len(chunks[-1][0])


def check_characters(length: int, max_tokens: int = MAX_TOKENS, label: str = "The prompt") -> None:
    """Refuse, before any tokenizing, a text far too long to be under the token cap."""
    if length > max_tokens * CHARACTERS_PER_TOKEN:
        raise ValueError(f"{label} is {length:,} characters long; the cap is {max_tokens:,} CLIP tokens (at most "
                         f"{max_tokens * CHARACTERS_PER_TOKEN:,} characters). Shorten it.")


def check_length(tokenizer, text: str, max_tokens: int = MAX_TOKENS, label: str = "The prompt") -> None:
    """Refuse a prompt over `max_tokens` CLIP tokens, saying the cap; a megabyte of text never reaches the tokenizer."""
    text = text or ""
    check_characters(len(text), max_tokens, label)
    count = token_count(tokenizer, text)
    if count > max_tokens:
        breaks = " (a BREAK fills the rest of its 75-token chunk)" if BREAK in text else ""
        raise ValueError(f"{label} is {count:,} CLIP tokens long{breaks}; the cap is {max_tokens:,} tokens. "
                         "Shorten it.")


# 3. encoding
@torch.inference_mode()
def encode_chunks(text_encoder, rows: torch.Tensor) -> torch.Tensor:
    """Encode each 77-token window and join them along the sequence axis: shape (1, 77*n, dim)."""
    device = text_encoder.device
    hidden = text_encoder(rows.to(device))[0]
    return hidden.reshape(1, -1, hidden.shape[-1])


@torch.inference_mode()
def apply_weights(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Scale each token's hidden state by its weight, then restore the chunk's mean, as A1111 does.

    `hidden` is (chunks, 77, dim) and `weights` (chunks, 77); chunks whose weights are all 1 come back untouched.
    Where a mean is rounding noise next to the values (a text encoder whose final layer norm has no bias, such
    as the tiny test model) or the weights flip its sign (negative weights), dividing by it would blow the states
    up or flip them all, so there the mean is left as it is.
    """
    out = hidden.clone()
    for i in range(hidden.shape[0]):
        if bool((weights[i] == 1).all()):
            continue
        z = hidden[i].float()
        original_mean = z.mean()
        z = z * weights[i].to(z.device, torch.float32)[:, None]
        new_mean = z.mean()
        floor = MEAN_FLOOR * z.abs().mean()
        if min(original_mean.abs(), new_mean.abs()) > floor and original_mean * new_mean > 0:
            z = z * (original_mean / new_mean)
        out[i] = z.to(hidden.dtype)
    return out


def encode_weighted(tokenizer, text_encoder, chunks: list[tuple[list[int], list[float]]],
                    num_chunks: int) -> torch.Tensor:
    """Embeddings (1, 77*num_chunks, dim) of weighted chunks, padded with empty chunks up to `num_chunks`."""
    chunks = chunks + [([], [])] * (num_chunks - len(chunks))
    rows = torch.tensor([_framed(tokenizer, ids) for ids, _ in chunks], dtype=torch.long)
    weights = torch.tensor([[1.0, *w] + [1.0] * (CHUNK_TOKENS + 1 - len(w)) for _, w in chunks],
                           dtype=torch.float32)
    hidden = encode_chunks(text_encoder, rows)
    if bool((weights == 1).all()):
        return hidden
    dim = hidden.shape[-1]
    return apply_weights(hidden.reshape(num_chunks, -1, dim), weights).reshape(1, -1, dim)


def encode_prompt_pair(tokenizer, text_encoder, prompt: str, negative_prompt: str = "",
                       dtype: torch.dtype | None = None, min_chunks: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt and negative-prompt embeddings of equal length, ready for `prompt_embeds=`; both read A1111 syntax.

    `min_chunks` pads to at least that many 77-token windows, so several prompts can be blended or batched.
    """
    positive, negative = weighted_chunks(tokenizer, prompt), weighted_chunks(tokenizer, negative_prompt or "")
    n = max(len(positive), len(negative), min_chunks)
    pos = encode_weighted(tokenizer, text_encoder, positive, n)
    neg = encode_weighted(tokenizer, text_encoder, negative, n)
    dtype = dtype or text_encoder.dtype
    return pos.to(dtype), neg.to(dtype)
