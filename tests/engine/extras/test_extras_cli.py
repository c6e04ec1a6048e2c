"""`python -m engine extras`: a PNG with its recipe kept, and one line with exit 2 for each bad input."""
import subprocess
import sys

import pytest
from PIL import Image

from engine.cli import main
from engine.files import pnginfo
from tests.engine.extras.conftest import compact_file


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "in.png"
    pnginfo.save_png(Image.new("RGB", (40, 30), (120, 60, 200)), path, "a cat\nSteps: 20, Seed: 5, Size: 40x30")
    return path


def test_the_readme_command_writes_the_upscaled_png(photo, tmp_path):
    out = tmp_path / "big.png"
    done = subprocess.run([sys.executable, "-m", "engine", "extras", "--image", str(photo), "--upscale", "2",
                           "--upscaler", "lanczos", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == (80, 60)
    fields = pnginfo.parse_parameters(pnginfo.read_parameters(out))
    assert fields["prompt"] == "a cat" and fields["Postprocess upscale by"] == "2"


def test_a_model_file_path_and_an_exact_size(photo, tmp_path):
    model = compact_file(tmp_path / "4x_tiny.pth")
    out = tmp_path / "sized.png"
    assert main(["extras", "--image", str(photo), "--to", "100x70", "--upscaler", str(model), "--out", str(out)]) == 0
    assert Image.open(out).size == (100, 70)
    assert "Postprocess upscaler: 4x_tiny" in pnginfo.read_parameters(out)


@pytest.mark.parametrize("args, message", [
    (["--upscale", "9"], "from 1 to 8"),
    (["--upscaler", "R-ESRGAN 4x+"], "Unknown upscaler"),
    (["--to", "big"], "WIDTHxHEIGHT"),
    (["--image", "missing.png"], "was not found"),
    (["--out", "out.jpg"], "ending in .png"),
])
def test_bad_input_is_one_line_and_exit_2(photo, tmp_path, capsys, args, message):
    argv = ["extras", "--image", str(photo), "--out", str(tmp_path / "out.png")] + args
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_not_an_image_is_a_sentence(tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("hello")
    assert main(["extras", "--image", str(text), "--out", str(tmp_path / "o.png")]) == 2
    assert "error:" in capsys.readouterr().err
