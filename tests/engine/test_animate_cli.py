"""`python -m engine animate`: the issue's command line, settings files with flags on top, resume, and bad input."""
import json

import pytest

from engine import video
from engine.cli import main

TINY = ["--model", "tiny", "--width", "64", "--height", "64", "--steps", "3", "--scheduler", "Euler"]


def test_the_documented_command_writes_video_frames_plan_and_settings(tmp_path, capsys):
    out = tmp_path / "anim.mp4"
    assert main(["animate", *TINY, "--mode", "2D", "--prompt", "0: a forest", "--prompt", "3: a desert",
                 "--frames", "5", "--zoom", "0:(1.04)", "--angle", "0:(0)", "--translation-x", "0:(0)",
                 "--translation-y", "0:(0)", "--strength", "0:(0.6)", "--cadence", "1", "--color-coherence", "LAB",
                 "--border", "Replicate", "--seed", "3", "--fps", "8", "--gif", "--out", str(out)]) == 0
    assert video.video_info(out)["frames"] == 5 and out.with_suffix(".gif").exists()
    assert len(list((tmp_path / "anim-frames").glob("*.png"))) == 5
    plan = json.loads((tmp_path / "anim.json").read_text())
    assert plan["request"]["prompts"] == {"0": "a forest", "3": "a desert"} and plan["request"]["seed"] == 3
    settings = json.loads((tmp_path / "anim-settings.json").read_text())
    assert settings["color_coherence"] == "Match Frame 0 LAB" and settings["max_frames"] == 5
    assert "5 frames, seed 3" in capsys.readouterr().out
    assert main(["animate", "--resume", str(tmp_path / "anim.json")]) == 0  # nothing left to make: same video


def test_flags_beside_settings_override_the_file_and_unused_keys_are_named(tmp_path, capsys):
    settings = tmp_path / "deforum.json"
    settings.write_text(json.dumps({"animation_mode": "2D", "max_frames": 6, "zoom": "0:(1.1)", "fps": 6,
                                    "diffusion_cadence": "3", "animation_prompts": {"0": "a cat"},
                                    "hybrid_motion": "None"}))
    out = tmp_path / "b.mp4"
    assert main(["animate", *TINY, "--settings", str(settings), "--frames", "4", "--zoom", "1.2",
                 "--out", str(out)]) == 0
    written = json.loads((tmp_path / "b-settings.json").read_text())
    assert (written["max_frames"], written["zoom"], written["diffusion_cadence"], written["fps"]) == (4, "0:(1.2)",
                                                                                                      3, 6)
    assert "Not used from the settings file: hybrid_motion." in capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    (["--zoom", "0:(__import__('os'))"], "calls '__import__'"),
    (["--zoom", "0:(1), 2:(0)"], "Zoom must stay above 0"),
    (["--frames", "5000"], "from 1 to 1000"),
    (["--mode", "4d"], "invalid choice"),
    (["--mode", "video"], "needs a source video"),
    (["--settings", "missing.json"], "can't be read"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, says):
    assert main(["animate", *TINY, "--out", str(tmp_path / "x.mp4"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err
