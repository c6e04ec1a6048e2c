"""Encode prompts of any length in 77-token chunks, as A1111 does, so nothing past token 75 is cut silently."""
from __future__ import annotations

import math

import torch

CHUNK_TOKENS = 75  # CLIP's window is 77: start token + 75 + end token


def token_ids(tokenizer, text: str) -> list[int]:
    """The prompt's tokens without start/end markers and without truncation."""
    return tokenizer(text, add_special_tokens=False, truncation=False).input_ids


def chunk_ids(tokenizer, ids: list[int], num_chunks: int) -> torch.Tensor:
    """Cut ids into `num_chunks` windows of 77, each framed by start/end tokens and padded."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    rows = []
    for i in range(num_chunks):
        body = ids[i * CHUNK_TOKENS:(i + 1) * CHUNK_TOKENS]
        row = [bos, *body, eos]
        rows.append(row + [pad] * (CHUNK_TOKENS + 2 - len(row)))
    return torch.tensor(rows, dtype=torch.long)


def prompt_chunks(tokenizer, *texts: str) -> int:
    """How many 77-token windows the longest of these prompts needs."""
    return chunk_count(*(token_ids(tokenizer, t or "") for t in texts))


def chunk_count(*id_lists: list[int]) -> int:
    """Both prompts must have the same number of chunks for classifier-free guidance."""
    return max(1, *(math.ceil(len(ids) / CHUNK_TOKENS) for ids in id_lists))


@torch.inference_mode()
def encode_chunks(text_encoder, rows: torch.Tensor) -> torch.Tensor:
    """Encode each 77-token window and join them along the sequence axis: shape (1, 77*n, dim)."""
    device = text_encoder.device
    hidden = text_encoder(rows.to(device))[0]
    return hidden.reshape(1, -1, hidden.shape[-1])


def encode_prompt_pair(tokenizer, text_encoder, prompt: str, negative_prompt: str = "",
                       dtype: torch.dtype | None = None, min_chunks: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt and negative-prompt embeddings of equal length, ready for `prompt_embeds=`.

    `min_chunks` pads to at least that many 77-token windows, so several prompts can be blended or batched.
    """
    pos_ids, neg_ids = token_ids(tokenizer, prompt), token_ids(tokenizer, negative_prompt or "")
    n = max(chunk_count(pos_ids, neg_ids), min_chunks)
    pos = encode_chunks(text_encoder, chunk_ids(tokenizer, pos_ids, n))
    neg = encode_chunks(text_encoder, chunk_ids(tokenizer, neg_ids, n))
    dtype = dtype or text_encoder.dtype
    return pos.to(dtype), neg.to(dtype)
