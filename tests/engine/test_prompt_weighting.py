"""A1111 prompt syntax: the parser on A1111's own examples, weights on CLIP states, BREAK, escapes, plain prompts."""
import math

import pytest
import torch

from engine.text.prompts import (
    CHUNK_TOKENS,
    apply_weights,
    encode_prompt_pair,
    parse_prompt_attention,
    prompt_chunks,
    weighted_chunks,
)


# 1. the parser, on the examples in A1111's own docstring (modules/prompt_parser.py)
@pytest.mark.parametrize("text, expected", [
    ("normal text", [["normal text", 1.0]]),
    ("an (important) word", [["an ", 1.0], ["important", 1.1], [" word", 1.0]]),
    ("(unbalanced", [["unbalanced", 1.1]]),
    ("\\(literal\\]", [["(literal]", 1.0]]),
    ("(unnecessary)(parens)", [["unnecessaryparens", 1.1]]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [["a ", 1.0], ["house", 1.5730000000000004], [" ", 1.1], ["on", 1.0], [" a ", 1.1], ["hill", 0.55],
      [", sun, ", 1.1], ["sky", 1.4641000000000006], [".", 1.1]]),
])
def test_parser_matches_a1111_examples(text, expected):
    assert [list(run) for run in parse_prompt_attention(text)] == expected


@pytest.mark.parametrize("text, expected", [
    ("((word))", [("word", 1.1 * 1.1)]),
    ("(word:1.3)", [("word", 1.3)]),
    ("(word: 0.7 )", [("word", 0.7)]),
    ("[word]", [("word", 1 / 1.1)]),
    ("[[word]]", [("word", 1 / 1.1 / 1.1)]),
    ("a \\[b\\] c\\\\d", [("a [b] c\\d", 1.0)]),
    ("16:9 frame)", [("16:9 frame)", 1.0)]),  # a colon and a stray ")" outside brackets are plain text
    ("", [("", 1.0)]),
])
def test_parser_weights_and_escapes(text, expected):
    got = parse_prompt_attention(text)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert all(math.isclose(w, e) for (_, w), (_, e) in zip(got, expected))


def test_break_is_a_marker_even_inside_brackets():
    assert parse_prompt_attention("a BREAK b") == [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]
    assert parse_prompt_attention("(a BREAK b)") == [("a", 1.1), ("BREAK", -1.0), ("b", 1.1)]
    assert parse_prompt_attention("BREAKFAST") == [("BREAKFAST", 1.0)]  # only the whole word


def test_a_weight_that_is_not_a_number_gets_a_sentence():
    with pytest.raises(ValueError, match=r"not a number.*\(word:1\.2\)"):
        parse_prompt_attention("(word:1.2.3)")


# 2. chunks
def test_break_closes_the_chunk(tiny_manager):
    tok = tiny_manager.base().tokenizer
    chunks = weighted_chunks(tok, "a red apple BREAK a green pear")
    assert len(chunks) == 2
    assert chunks[0][0] == tok("a red apple", add_special_tokens=False).input_ids
    assert chunks[1][0] == tok("a green pear", add_special_tokens=False).input_ids
    assert prompt_chunks(tok, "a BREAK b BREAK c", "") == 3
    assert len(weighted_chunks(tok, "BREAK a")) == 2  # A1111 keeps the empty first chunk
    assert len(weighted_chunks(tok, "a BREAK")) == 1


def test_long_prompts_are_cut_every_75_tokens_with_weights_kept(tiny_manager):
    tok = tiny_manager.base().tokenizer
    words = " ".join(["cat"] * 80)
    chunks = weighted_chunks(tok, f"({words})")
    assert [len(ids) for ids, _ in chunks] == [CHUNK_TOKENS, 5]
    assert all(math.isclose(w, 1.1) for _, weights in chunks for w in weights)


# 3. the embeddings
def old_encode(tok, enc, prompt, negative="", min_chunks=1):
    """The encoder before prompt weighting: plain tokens in 75-token chunks (kept here to pin plain prompts)."""
    def ids_of(text):
        return tok(text, add_special_tokens=False, truncation=False).input_ids

    def rows(ids, n):
        out = []
        for i in range(n):
            row = [tok.bos_token_id, *ids[i * 75:(i + 1) * 75], tok.eos_token_id]
            out.append(row + [tok.pad_token_id] * (77 - len(row)))
        return torch.tensor(out, dtype=torch.long)

    pos_ids, neg_ids = ids_of(prompt), ids_of(negative)
    n = max(1, math.ceil(len(pos_ids) / 75), math.ceil(len(neg_ids) / 75), min_chunks)
    with torch.inference_mode():
        pos = enc(rows(pos_ids, n))[0].reshape(1, -1, enc.config.hidden_size)
        neg = enc(rows(neg_ids, n))[0].reshape(1, -1, enc.config.hidden_size)
    return pos, neg


PLAIN = [
    ("a red apple", ""),
    ("", ""),
    ("portrait photo of a woman, 85mm: soft light, f/1.8", "blurry, lowres, watermark"),
    (", ".join(f"word{i}" for i in range(60)), "cartoon"),
    ("a cat", ", ".join(f"bad{i}" for i in range(90))),
    (" ".join(["tree"] * 150), ""),  # exactly two full chunks
]


@pytest.mark.parametrize("prompt, negative", PLAIN)
def test_plain_prompts_encode_bit_for_bit_as_before(tiny_manager, prompt, negative):
    base = tiny_manager.base()
    pos, neg = encode_prompt_pair(base.tokenizer, base.text_encoder, prompt, negative)
    ref_pos, ref_neg = old_encode(base.tokenizer, base.text_encoder, prompt, negative)
    assert torch.equal(pos, ref_pos) and torch.equal(neg, ref_neg)
    pos3, _ = encode_prompt_pair(base.tokenizer, base.text_encoder, prompt, negative, min_chunks=3)
    ref3, _ = old_encode(base.tokenizer, base.text_encoder, prompt, negative, min_chunks=3)
    assert torch.equal(pos3, ref3)


def test_escaped_brackets_are_literal_text(tiny_manager):
    base = tiny_manager.base()
    pos, _ = encode_prompt_pair(base.tokenizer, base.text_encoder, "a \\(red\\) \\[apple\\]")
    ref, _ = old_encode(base.tokenizer, base.text_encoder, "a (red) [apple]")
    assert torch.equal(pos, ref)


def test_weights_scale_states_then_restore_the_chunk_mean():
    """A1111's formula: z *= w per token, then z *= original_mean / new_mean, per chunk."""
    torch.manual_seed(0)
    hidden = torch.randn(2, 77, 16) + 0.5  # a real CLIP's final layer norm has a bias, so its mean is not 0
    weights = torch.ones(2, 77)
    weights[1, 3] = 1.5
    out = apply_weights(hidden, weights)
    assert torch.equal(out[0], hidden[0])  # a chunk without weights is untouched
    assert torch.isclose(out[1].mean(), hidden[1].mean(), rtol=1e-5)
    c = hidden[1].mean() / (hidden[1] * weights[1][:, None]).mean()
    assert torch.allclose(out[1, 3], hidden[1, 3] * 1.5 * c, rtol=1e-5)
    assert torch.allclose(out[1, 4], hidden[1, 4] * c, rtol=1e-5)


def test_a_mean_of_about_zero_is_not_divided_by():
    hidden = torch.randn(1, 77, 16)
    hidden = hidden - hidden.mean()  # mean about 0, as after a layer norm without bias
    weights = torch.ones(1, 77)
    weights[0, 2] = 2.0
    out = apply_weights(hidden, weights)
    assert torch.allclose(out[0, 2], hidden[0, 2] * 2) and torch.equal(out[0, 5], hidden[0, 5])


@pytest.mark.parametrize("prompt, weight", [("a (cat:1.5)", 1.5), ("a (cat)", 1.1), ("a ((cat))", 1.21),
                                            ("a [cat]", 1 / 1.1), ("a (cat:0.5)", 0.5)])
def test_a_weight_scales_its_token_in_the_embedding(tiny_manager, prompt, weight):
    base = tiny_manager.base()
    tok, enc = base.tokenizer, base.text_encoder
    plain, _ = encode_prompt_pair(tok, enc, "a cat")
    weighted, _ = encode_prompt_pair(tok, enc, prompt)
    cat = 2  # start token, "a", "cat"
    # the tiny model's states average to 0 (see apply_weights), so only the weight itself applies here
    assert torch.allclose(weighted[0, cat], plain[0, cat] * weight, rtol=1e-5)
    others = [i for i in range(77) if i != cat]
    assert torch.equal(weighted[0, others], plain[0, others])
    # the direction: up-weighted tokens grow against their neighbours, down-weighted ones shrink
    relative = weighted[0, cat].norm() / weighted[0, 1].norm()
    before = plain[0, cat].norm() / plain[0, 1].norm()
    assert (relative > before) == (weight > 1)


def test_weights_apply_to_the_negative_prompt_too(tiny_manager):
    base = tiny_manager.base()
    tok, enc = base.tokenizer, base.text_encoder
    _, plain = encode_prompt_pair(tok, enc, "a cat", "blurry photo")
    _, weighted = encode_prompt_pair(tok, enc, "a cat", "(blurry:1.4) photo")
    assert weighted.shape == plain.shape
    assert torch.allclose(weighted[0, 1], plain[0, 1] * 1.4, rtol=1e-5)
    assert torch.equal(weighted[0, 2], plain[0, 2])


def test_weights_in_a_later_chunk_leave_the_first_alone(tiny_manager):
    base = tiny_manager.base()
    tok, enc = base.tokenizer, base.text_encoder
    words = " ".join(["tree"] * 80)
    plain, _ = encode_prompt_pair(tok, enc, f"{words} house")
    weighted, _ = encode_prompt_pair(tok, enc, f"{words} (house:1.3)")
    assert plain.shape[1] == weighted.shape[1] == 2 * 77
    assert torch.equal(weighted[:, :77], plain[:, :77])
    assert not torch.equal(weighted[:, 77:], plain[:, 77:])


def test_break_starts_a_new_chunk_encoded_on_its_own(tiny_manager):
    base = tiny_manager.base()
    tok, enc = base.tokenizer, base.text_encoder
    both, neg = encode_prompt_pair(tok, enc, "a red apple BREAK a green pear", "blurry")
    first, _ = encode_prompt_pair(tok, enc, "a red apple")
    second, _ = encode_prompt_pair(tok, enc, "a green pear")
    assert both.shape[1] == neg.shape[1] == 2 * 77
    assert torch.equal(both[:, :77], first) and torch.equal(both[:, 77:], second)


def test_weighted_prompt_changes_the_image_and_stays_deterministic(tiny_manager):
    from engine.image.generate import text_to_image
    from engine.image.request import ImageRequest

    def run(prompt):
        req = ImageRequest(prompt=prompt, num_inference_steps=2, width=64, height=64, seed=3)
        return text_to_image(tiny_manager, req).images[0]

    plain, weighted, again = run("a cat"), run("a (cat:1.6)"), run("a (cat:1.6)")
    assert plain.image.tobytes() != weighted.image.tobytes()
    assert weighted.image.tobytes() == again.image.tobytes()
    assert weighted.parameters.startswith("a (cat:1.6)\n")  # the prompt is recorded as written
