"""`python -m engine ... --style NAME --styles PATH`: styles from the shell, on the tiny model."""
from engine.cli import main
from engine.files import pnginfo
from tests.engine.test_styles import A1111_CSV


def test_the_cli_applies_styles(tmp_path, capsys):
    path = tmp_path / "styles.csv"
    path.write_text(A1111_CSV)
    out = tmp_path / "styled.png"
    tiny = ["--model", "tiny", "--dtype", "float32", "--steps", "1", "--width", "64", "--height", "64"]
    assert main(["txt2img", "--prompt", "a barn", "--style", "Cinematic", "--style", "Sharp", "--styles", str(path),
                 "--out", str(out), *tiny]) == 0
    fields = pnginfo.parse_parameters(pnginfo.read_parameters(out))
    assert fields["prompt"] == "cinematic still of a barn, moody, sharp focus, 8k"
    assert fields["negative_prompt"] == "cartoon,, blurry"  # A1111 joins the same way
    capsys.readouterr()
    assert main(["txt2img", "--prompt", "x", "--style", "Anime", "--styles", str(path), "--out", str(out), *tiny]) == 2
    assert "no style named 'Anime'" in capsys.readouterr().err
    assert main(["txt2img", "--style", "A", "--styles", str(tmp_path / "none.csv"), "--out", str(out), *tiny]) == 2
    assert "was not found" in capsys.readouterr().err
