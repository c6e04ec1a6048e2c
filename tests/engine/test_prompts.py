import torch

from engine.text.prompts import CHUNK_TOKENS, chunk_ids, encode_prompt_pair, token_ids


def test_long_prompts_are_encoded_in_77_token_chunks_not_cut(tiny_manager):
    base = tiny_manager.base()
    tok, enc = base.tokenizer, base.text_encoder
    long_prompt = ", ".join(f"word{i}" for i in range(60))
    assert len(token_ids(tok, long_prompt)) > CHUNK_TOKENS
    pos, neg = encode_prompt_pair(tok, enc, long_prompt, "blurry")
    assert pos.shape == neg.shape
    assert pos.shape[1] % 77 == 0 and pos.shape[1] >= 2 * 77
    # the tail really changes the embedding: a prompt differing only after token 75 encodes differently
    other, _ = encode_prompt_pair(tok, enc, long_prompt + ", red", "blurry")
    assert other.shape[1] == pos.shape[1] and not torch.equal(other[:, 77:], pos[:, 77:])
    assert torch.equal(other[:, :77], pos[:, :77])


def test_short_prompt_matches_a_single_standard_window(tiny_manager):
    base = tiny_manager.base()
    pos, neg = encode_prompt_pair(base.tokenizer, base.text_encoder, "a red apple", "")
    assert pos.shape[1] == 77 and neg.shape[1] == 77
    ids = base.tokenizer("a red apple", padding="max_length", max_length=77, return_tensors="pt").input_ids
    reference = base.text_encoder(ids)[0]
    assert torch.allclose(pos, reference, atol=1e-5)


def test_chunks_are_framed_and_padded(tiny_manager):
    tok = tiny_manager.base().tokenizer
    rows = chunk_ids(tok, list(range(1000, 1080)), 2)
    assert rows.shape == (2, 77)
    assert rows[0, 0] == tok.bos_token_id and rows[0, 76] == tok.eos_token_id
    assert rows[1, 0] == tok.bos_token_id and rows[1, 6] == tok.eos_token_id
