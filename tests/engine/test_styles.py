"""A1111's styles.csv: reading it, {prompt} substitution, appending, order, and bad files (no model needed)."""
import os
import time

import pytest

from engine.text import styles
from engine.text.styles import EXAMPLE_STYLES, Style, StyleFile, apply_styles, merge_prompt, read_styles, use_styles

A1111_CSV = (
    "name,prompt,negative_prompt\n"
    '"Cinematic","cinematic still of {prompt}, moody","cartoon, {prompt}"\n'
    'Sharp,"sharp focus, 8k",blurry\n'
    "# a comment row,ignored,ignored\n"
    ",no name,ignored\n"
    "Negative only,,lowres\n"
)


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "styles.csv"
    path.write_text(A1111_CSV, encoding="utf-8")
    return path


def test_merge_prompt_follows_a1111():
    assert merge_prompt("photo of {prompt}, 35mm", "a cat") == "photo of a cat, 35mm"
    assert merge_prompt("35mm, film grain", "a cat") == "a cat, 35mm, film grain"
    assert merge_prompt("35mm", "") == "35mm"
    assert merge_prompt("", "a cat ") == "a cat"
    assert merge_prompt("{prompt} and {prompt}", "x") == "x and x"


def test_read_styles_skips_comments_and_nameless_rows(csv_file):
    found = read_styles(csv_file)
    assert list(found) == ["Cinematic", "Sharp", "Negative only"]
    assert found["Sharp"] == Style("Sharp", "sharp focus, 8k", "blurry")
    assert found["Negative only"].prompt == ""


def test_styles_apply_in_order_to_both_prompts(csv_file):
    found = read_styles(csv_file)
    prompt, negative = apply_styles(found, ["Cinematic", "Sharp"], "a lighthouse", "text")
    assert prompt == "cinematic still of a lighthouse, moody, sharp focus, 8k"
    assert negative == "cartoon, text, blurry"
    assert apply_styles(found, [], "a (cat:1.2)", "dog") == ("a (cat:1.2)", "dog")
    assert apply_styles(found, ["Negative only"], "a cat", "") == ("a cat", "lowres")


def test_an_unknown_style_names_the_known_ones(csv_file):
    with pytest.raises(ValueError, match="no style named 'Anime'; the styles are: Cinematic, Sharp"):
        apply_styles(read_styles(csv_file), ["Anime"], "a cat", "")


def test_old_text_column_and_byte_order_mark(tmp_path):
    path = tmp_path / "old.csv"
    path.write_bytes("\ufeffname,text\nOld,\"{prompt}, old style\"\n".encode("utf-8"))
    assert read_styles(path)["Old"] == Style("Old", "{prompt}, old style", "")


@pytest.mark.parametrize("content, words", [
    (b"title,body\nx,y\n", "needs a header row with the columns name, prompt"),
    (b"", "needs a header row"),
    (b"name,prompt\n\xff\xfe\x00bad", "not UTF-8"),
])
def test_bad_files_get_a_sentence(tmp_path, content, words):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=words):
        read_styles(path)


def test_the_chosen_file_is_checked_at_start_up(tmp_path, monkeypatch):
    monkeypatch.setattr(styles, "_active", None)
    with pytest.raises(ValueError, match="was not found; check the path given to --styles"):
        use_styles(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("just,some\nwords,here\n")
    with pytest.raises(ValueError, match="needs a header row"):
        use_styles(bad)
    good = tmp_path / "good.csv"
    good.write_text(A1111_CSV)
    assert use_styles(good).names() == ["Cinematic", "Sharp", "Negative only"]
    assert styles.active_styles().path == good


def test_default_is_the_env_then_the_app_folder_then_the_examples(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_STYLES", str(tmp_path / "mine.csv"))
    assert styles.default_path() == tmp_path / "mine.csv"
    monkeypatch.delenv("STUDIO_STYLES")
    monkeypatch.setattr(styles, "APP_STYLES", tmp_path / "styles.csv")
    assert styles.default_path() == EXAMPLE_STYLES
    (tmp_path / "styles.csv").write_text(A1111_CSV)
    assert styles.default_path() == tmp_path / "styles.csv"


def test_the_file_is_read_again_when_it_changes(csv_file):
    style_file = StyleFile(csv_file)
    assert "Sharp" in style_file.names()
    csv_file.write_text("name,prompt,negative_prompt\nNew,\"{prompt}, new\",\n")
    later = time.time() + 5
    os.utime(csv_file, (later, later))
    assert style_file.names() == ["New"]
    assert style_file.apply(["New"], "a cat", "") == ("a cat, new", "")
    csv_file.unlink()
    assert style_file.names() == []


def test_the_shipped_examples_are_valid():
    shipped = read_styles(EXAMPLE_STYLES)
    assert len(shipped) >= 5
    for style in shipped.values():
        assert "(" not in style.prompt + style.negative_prompt  # plain words, no weights
        assert not style.prompt or "{prompt}" in style.prompt

