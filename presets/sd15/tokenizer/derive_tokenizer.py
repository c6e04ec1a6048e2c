"""Rebuild this folder's CLIP tokenizer files offline from OpenAI's BPE merges file.

The SD 1.5 tokenizer is OpenAI CLIP's (ViT-L/14). Its merges ship, gzipped, inside the PyPI wheels
``open-clip-torch`` (``open_clip/bpe_simple_vocab_16e6.txt.gz``) and ``clip-anytorch``, so the Hugging Face
``vocab.json``/``merges.txt`` pair can be derived without any model hub. The vocabulary is built exactly as in
CLIP's ``SimpleTokenizer``: the 256 byte characters, the same with ``</w>``, the first 48,894 merges joined,
then ``<|startoftext|>`` and ``<|endoftext|>`` (49,408 entries).

Usage::

    pip download --no-deps -d /tmp/oc open-clip-torch==3.3.0
    python presets/sd15/tokenizer/derive_tokenizer.py /tmp/oc/open_clip_torch-3.3.0-py3-none-any.whl

The source may be the wheel or the ``.txt.gz`` itself; the output folder defaults to this script's folder.
"""

from __future__ import annotations

import argparse
import gzip
import json
import zipfile
from pathlib import Path

BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408
NUM_MERGES = 49152 - 256 - 2  # CLIP's SimpleTokenizer keeps merges[1:49152-256-2+1]
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 77

TOKENIZER_CONFIG = {
    "add_prefix_space": False,
    "bos_token": BOS,
    "do_lower_case": True,
    "eos_token": EOS,
    "errors": "replace",
    "model_max_length": MAX_LENGTH,
    "pad_token": EOS,
    "tokenizer_class": "CLIPTokenizer",
    "unk_token": EOS,
}


def _special(content: str) -> dict:
    return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


SPECIAL_TOKENS_MAP = {"bos_token": _special(BOS), "eos_token": _special(EOS), "pad_token": EOS, "unk_token": _special(EOS)}


def bytes_to_unicode() -> dict[int, str]:
    """Map each byte to a printable character, as GPT-2 and CLIP do, so BPE never sees whitespace or controls."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def read_bpe_text(source: Path) -> str:
    """Return the merges file's text from the open-clip wheel or from the ``.txt.gz`` itself."""
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as wheel:
            data = wheel.read(BPE_MEMBER)
    else:
        data = source.read_bytes()
    return gzip.decompress(data).decode("utf-8")


def build_vocab_and_merges(bpe_text: str) -> tuple[dict[str, int], list[str]]:
    """Reproduce CLIP's ``SimpleTokenizer`` vocabulary and merge list."""
    merges = bpe_text.split("\n")[1 : NUM_MERGES + 1]
    assert len(merges) == NUM_MERGES and all(len(m.split()) == 2 for m in merges), "unexpected merges file"
    tokens = list(bytes_to_unicode().values())
    tokens += [t + "</w>" for t in tokens]
    tokens += ["".join(m.split()) for m in merges]
    tokens += [BOS, EOS]
    vocab = {token: i for i, token in enumerate(tokens)}
    assert len(vocab) == VOCAB_SIZE, f"expected {VOCAB_SIZE} unique tokens, got {len(vocab)}"
    return vocab, merges


def write_tokenizer(vocab: dict[str, int], merges: list[str], out_dir: Path) -> None:
    """Write the four files that ``CLIPTokenizer.from_pretrained`` reads."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    for name, data in (("tokenizer_config.json", TOKENIZER_CONFIG), ("special_tokens_map.json", SPECIAL_TOKENS_MAP)):
        (out_dir / name).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="open_clip_torch-*.whl or bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    args = parser.parse_args()
    vocab, merges = build_vocab_and_merges(read_bpe_text(args.source))
    write_tokenizer(vocab, merges, args.out)
    print(f"wrote {len(vocab)} tokens and {len(merges)} merges to {args.out}")


if __name__ == "__main__":
    main()
