"""`python -m engine txt2img --hires-scale ...`: Hires. fix from the shell."""
from PIL import Image

from engine.cli import main
from engine.files import pnginfo

TINY = ["--model", "tiny", "--dtype", "float32", "--steps", "2", "--width", "64", "--height", "64"]


def test_hires_flags_make_the_large_image_and_record_it(tmp_path, capsys):
    out = tmp_path / "big.png"
    assert main(["txt2img", "--prompt", "a barn", "--seed", "4", "--out", str(out), *TINY, "--hires-scale", "2",
                 "--hires-upscaler", "Lanczos", "--hires-steps", "1", "--hires-strength", "0.3"]) == 0
    assert Image.open(out).size == (128, 128)
    fields = pnginfo.parse_parameters(pnginfo.read_parameters(out))
    assert (fields["Size"], fields["Hires upscale"], fields["Hires upscaler"], fields["Hires steps"],
            fields["Denoising strength"]) == ("64x64", "2", "Lanczos", "1", "0.3")
    assert "seed 4" in capsys.readouterr().out


def test_without_hires_scale_nothing_changes(tmp_path):
    out = tmp_path / "small.png"
    assert main(["txt2img", "--prompt", "a barn", "--seed", "4", "--out", str(out), *TINY,
                 "--hires-upscaler", "Lanczos"]) == 0
    assert Image.open(out).size == (64, 64) and "Hires" not in pnginfo.read_parameters(out)


def test_bad_hires_flags_exit_2_with_one_line(tmp_path, capsys):
    for flags, words in ((["--hires-scale", "0.5"], "Hires upscale must be from 1 to 4"),
                         (["--hires-scale", "2", "--hires-upscaler", "ESRGAN"], "Unknown Hires upscaler"),
                         (["--hires-scale", "40"], "Hires upscale must be")):
        assert main(["txt2img", "--out", str(tmp_path / "x.png"), *TINY, *flags]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err and "Traceback" not in err
