import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from engine.cli import main
from engine.files import pnginfo

REPO = Path(__file__).resolve().parents[2]
TINY = ["--model", "tiny", "--dtype", "float32", "--steps", "2", "--width", "64", "--height", "64"]


def test_python_m_engine_txt2img_writes_a_png_with_parameters(tmp_path):
    out = tmp_path / "out.png"
    proc = subprocess.run([sys.executable, "-m", "engine", "txt2img", "--prompt", "a red apple", "--seed", "7",
                           "--out", str(out), *TINY], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "seed 7" in proc.stdout
    fields = pnginfo.parse_parameters(pnginfo.read_parameters(out))
    assert fields["prompt"] == "a red apple" and fields["Seed"] == "7" and fields["Steps"] == "2"


def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path, capsys):
    assert main(["txt2img", "--out", str(tmp_path / "x.png"), *TINY, "--steps", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Steps must be" in err and "Traceback" not in err


def test_usage_mistakes_exit_2_with_one_line(capsys):
    assert main(["txt2img", "--bogus"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["nojob"]) == 2


def test_not_an_image_exits_2(tmp_path, capsys):
    fake = tmp_path / "photo.png"
    fake.write_text("not an image")
    assert main(["img2img", "--image", str(fake), "--out", str(tmp_path / "x.png"), *TINY]) == 2
    assert "not an image" in capsys.readouterr().err


def test_missing_model_exits_2(tmp_path, capsys):
    assert main(["txt2img", "--model", "weights/missing.safetensors", "--out", str(tmp_path / "x.png")]) == 2
    assert "was not found" in capsys.readouterr().err


def test_img2img_and_inpaint_from_files(tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(photo)
    mask = np.zeros((80, 96), np.uint8)
    mask[20:50, 30:60] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    assert main(["img2img", "--image", str(photo), "--strength", "0.6", "--out", str(tmp_path / "a.png"), *TINY]) == 0
    assert main(["inpaint", "--image", str(photo), "--mask", str(tmp_path / "mask.png"), "--only-masked",
                 "--out", str(tmp_path / "b.png"), *TINY]) == 0
    inpainted = Image.open(tmp_path / "b.png")
    assert inpainted.size == (96, 80)
    assert "Inpaint area: Only masked" in pnginfo.read_parameters(tmp_path / "b.png")


EXAMPLE = str(REPO / "presets" / "examples" / "astronaut.jpg")
FACE = ["--model", "tiny", "--dtype", "float32", "--steps", "2", "--size", "64", "--seed", "3"]


def test_walk_and_dream_write_mp4s_with_the_asked_frames(tmp_path):
    from engine import video

    assert main(["walk", *TINY, "--prompt", "a cat", "--prompt", "a dog", "--frames", "5", "--fps", "5",
                 "--seed", "1", "--out", str(tmp_path / "walk.mp4")]) == 0
    assert video.video_info(tmp_path / "walk.mp4")["frames"] == 5
    assert (tmp_path / "walk.json").exists() and len(list((tmp_path / "walk-frames").glob("*.png"))) == 5
    assert main(["dream", *TINY, "--prompt", "a forest", "--frames", "4", "--fps", "4", "--gif",
                 "--out", str(tmp_path / "dream.mp4")]) == 0
    assert video.video_info(tmp_path / "dream.gif")["frames"] == 4


def test_walk_bad_input_exits_2(tmp_path, capsys):
    assert main(["walk", *TINY, "--prompt", "a cat", "--frames", "5", "--out", str(tmp_path / "w.mp4")]) == 2
    assert "at least 2 prompts" in capsys.readouterr().err
    assert main(["walk", *TINY, "--prompt", "a", "--prompt", "b", "--fps", "61", "--out", str(tmp_path / "w.mp4")]) == 2


def test_aging_and_gender_swap_commands(tmp_path, capsys):
    from engine import video

    assert main(["aging", *FACE, "--image", EXAMPLE, "--ages", "20,40,60", "--out", str(tmp_path / "aging.mp4")]) == 0
    assert video.video_info(tmp_path / "aging.mp4")["codec"] == "h264"
    assert (tmp_path / "aging-grid.png").exists()
    assert main(["gender-swap", *FACE, "--image", EXAMPLE, "--to", "woman", "--out", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s.png").size == Image.open(EXAMPLE).size
    assert main(["gender-swap", *FACE, "--image", EXAMPLE, "--to", "cat", "--out", str(tmp_path / "s.png")]) == 2
    assert main(["aging", *FACE, "--image", EXAMPLE, "--ages", "60,20", "--out", str(tmp_path / "a.mp4")]) == 2
    assert "must rise" in capsys.readouterr().err


def test_fast_flag_changes_the_image_and_is_recorded(tmp_path):
    base = ["txt2img", *TINY, "--steps", "6", "--prompt", "a red apple", "--seed", "3"]
    assert main([*base, "--out", str(tmp_path / "plain.png")]) == 0
    assert main([*base, "--fast", "--out", str(tmp_path / "fast.png")]) == 0
    assert "Fast: DeepCache" in pnginfo.read_parameters(tmp_path / "fast.png")
    assert "Fast" not in pnginfo.read_parameters(tmp_path / "plain.png")
    plain, fast = (np.asarray(Image.open(tmp_path / f"{n}.png"), dtype=int) for n in ("plain", "fast"))
    assert not np.array_equal(plain, fast)


def test_face_counts_from_1_and_all_takes_every_face(tmp_path, capsys):
    from engine.faces.portrait import find_face_area

    pair = Image.new("RGB", (1024, 512))
    pair.paste(Image.open(EXAMPLE), (0, 0))
    pair.paste(Image.open(EXAMPLE).resize((400, 400)), (560, 56))
    pair.save(tmp_path / "pair.png")
    photo = ["--image", str(tmp_path / "pair.png"), "--to", "woman"]
    assert main(["gender-swap", *FACE, *photo, "--face", "2", "--out", str(tmp_path / "two.png")]) == 0
    assert "2 faces were found; face 2 was used." in capsys.readouterr().err
    assert main(["gender-swap", *FACE, *photo, "--face", "all", "--out", str(tmp_path / "all.png")]) == 0
    assert "All 2 faces were regenerated." in capsys.readouterr().err
    outside = np.asarray(find_face_area(pair, all_faces=True).mask) == 0
    saved = np.asarray(Image.open(tmp_path / "all.png").convert("RGB"))
    assert np.array_equal(saved[outside], np.asarray(pair)[outside])
    for bad, message in (("0", "numbered from 1"), ("3", "pick a face from 1 to 2"), ("some", "or 'all'")):
        assert main(["gender-swap", *FACE, *photo, "--face", bad, "--out", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err


def test_keep_identity_without_the_adapter_exits_2_saying_how_to_get_it(tmp_path, capsys, monkeypatch):
    from engine.faces import identity

    monkeypatch.setattr(identity, "find_adapter", lambda weights_dir: None)
    assert main(["gender-swap", *FACE, "--image", EXAMPLE, "--to", "woman", "--keep-identity", "0.6",
                 "--out", str(tmp_path / "k.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hf download h94/IP-Adapter" in err


def test_a_pickled_embedding_gives_one_line_and_runs_nothing(tmp_path):
    """A real process, so the line torch warns on (its own site-packages path) would show on stderr."""
    import os
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    (tmp_path / "embeddings").mkdir()
    (tmp_path / "embeddings" / "evil.pt").write_bytes(pickle.dumps({"string_to_param": Payload()}, protocol=4))
    proc = subprocess.run([sys.executable, "-m", "engine", "txt2img", "--prompt", "a evil cat", "--embeddings-dir",
                           str(tmp_path / "embeddings"), "--out", str(tmp_path / "x.png"), *TINY],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: The embedding file evil.pt can't be read as plain tensors")
    assert "site-packages" not in proc.stderr and not (tmp_path / "ran").exists()


def test_a_settings_file_with_nan_exits_2_naming_the_field(tmp_path, capsys):
    settings = tmp_path / "deforum.txt"
    settings.write_text('{"animation_mode": "2D", "max_frames": NaN, "W": 64, "H": 64}')
    assert main(["animate", "--model", "tiny", "--settings", str(settings), "--out", str(tmp_path / "a.mp4")]) == 2
    err = capsys.readouterr().err
    assert err == "error: In the settings file, max_frames should be a finite number; got nan.\n"


def test_the_prompt_cap_flag_and_variable(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "x.png")
    assert main(["txt2img", *TINY, "--prompt", "cat " * 100, "--max-prompt-tokens", "80", "--out", out]) == 2
    assert capsys.readouterr().err == "error: The prompt is 100 CLIP tokens long; the cap is 80 tokens. Shorten it.\n"
    monkeypatch.setenv("STUDIO_MAX_PROMPT_TOKENS", "50")
    assert main(["walk", *TINY, "--prompt", "a", "--prompt", "cat " * 60, "--frames", "3", "--out",
                 str(tmp_path / "w.mp4")]) == 2
    assert "Prompt 2 is 60 CLIP tokens long; the cap is 50 tokens" in capsys.readouterr().err
    assert main(["txt2img", *TINY, "--prompt", "cat " * 100, "--out", out]) == 2  # the variable holds
    assert main(["txt2img", *TINY, "--prompt", "cat " * 100, "--max-prompt-tokens", "1000", "--out", out]) == 0
