"""`python -m engine txt2img|img2img --variation-seed N --variation-strength S`: variations from the shell."""
import numpy as np
from PIL import Image

from engine.cli import main
from engine.files import pnginfo

TINY = ["--model", "tiny", "--dtype", "float32", "--steps", "2", "--width", "64", "--height", "64"]


def test_txt2img_variation_flags_are_used_saved_and_printed(tmp_path, capsys):
    out, plain = tmp_path / "v.png", tmp_path / "plain.png"
    assert main(["txt2img", "--prompt", "a barn", "--seed", "4", "--out", str(out), *TINY, "--variation-seed", "9",
                 "--variation-strength", "0.3", "--batch-count", "2"]) == 0
    assert main(["txt2img", "--prompt", "a barn", "--seed", "4", "--out", str(plain), *TINY]) == 0
    fields = pnginfo.parse_parameters(pnginfo.read_parameters(out))
    assert (fields["Seed"], fields["Variation seed"], fields["Variation seed strength"]) == ("4", "9", "0.3")
    assert pnginfo.parse_parameters(pnginfo.read_parameters(tmp_path / "v-2.png"))["Variation seed"] == "10"
    assert "Variation" not in pnginfo.read_parameters(plain)
    assert not np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(plain)))
    printed = capsys.readouterr().out
    assert "seed 4  variation seed 9" in printed and "seed 4  variation seed 10" in printed


def test_img2img_takes_the_flags(tmp_path, photo_64):
    photo, out = tmp_path / "in.png", tmp_path / "out.png"
    photo_64.save(photo)
    assert main(["img2img", "--image", str(photo), "--prompt", "a barn", "--seed", "4", "--out", str(out), *TINY,
                 "--variation-seed", "9", "--variation-strength", "0.5"]) == 0
    assert "Variation seed: 9, Variation seed strength: 0.5" in pnginfo.read_parameters(out)


def test_a_bad_variation_strength_exits_2_with_one_line(tmp_path, capsys):
    for flags, words in ((["--variation-strength", "1.5"], "Variation strength must be from 0 (off) to 1"),
                         (["--variation-strength", "x"], "--variation-strength"),
                         (["--variation-seed", "-7", "--variation-strength", "0.2"], "Variation seed must be -1")):
        assert main(["txt2img", "--out", str(tmp_path / "x.png"), *TINY, *flags]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err and "Traceback" not in err
