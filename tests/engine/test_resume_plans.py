"""`--resume PLAN` writes only beside the plan: a crafted plan's paths are never followed."""
import json

import pytest

from engine import video
from engine.cli import main
from engine.video.run_folder import plan_run_paths

TINY = ["--model", "tiny", "--width", "64", "--height", "64", "--steps", "2", "--scheduler", "Euler"]


def craft(plan_path, elsewhere, **extra):
    """Point a real plan's frames, video and settings at a folder outside the run, and drop its frames."""
    plan = json.loads(plan_path.read_text())
    plan.update(frames_dir=str(elsewhere), video=str(elsewhere / "evil.mp4"),
                settings=str(elsewhere / "evil-settings.json"), **extra)
    plan_path.write_text(json.dumps(plan))
    for frame in plan_path.parent.glob(f"{plan_path.stem}-frames/**/*.png"):
        frame.unlink()
    plan_path.with_suffix(".mp4").unlink()


@pytest.fixture
def elsewhere(tmp_path):
    folder = tmp_path / "etc"
    folder.mkdir()
    return folder


def test_a_crafted_walk_plan_writes_beside_the_plan_only(tmp_path, elsewhere, capsys):
    run = tmp_path / "run"
    run.mkdir()
    assert main(["walk", *TINY, "--prompt", "a cat", "--prompt", "a dog", "--seed", "1", "--frames", "4",
                 "--out", str(run / "w.mp4")]) == 0
    craft(run / "w.json", elsewhere)

    assert main(["walk", "--resume", str(run / "w.json")]) == 0
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in (run / "w-frames").glob("*.png")) == [f"{i:05d}.png" for i in range(4)]
    assert video.video_info(run / "w.mp4")["frames"] == 4
    assert str(run / "w.mp4") in capsys.readouterr().out


def test_a_relative_escape_in_the_plan_is_not_followed_either(tmp_path, capsys):
    run = tmp_path / "deep" / "run"
    run.mkdir(parents=True)
    assert main(["dream", *TINY, "--prompt", "a lake", "--seed", "2", "--keyframes", "2", "--frames", "3",
                 "--out", str(run / "d.mp4")]) == 0
    plan = json.loads((run / "d.json").read_text())
    plan.update(frames_dir="../../escaped", video="../../escaped.mp4")
    (run / "d.json").write_text(json.dumps(plan))
    assert plan_run_paths(run / "d.json", plan).frames == (run / "d-frames").resolve()
    assert plan_run_paths(run / "d.json", plan).video == run / "d.mp4"
    assert main(["dream", "--resume", str(run / "d.json")]) == 0
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "escaped.mp4").exists()


def test_the_ui_layout_keeps_its_frames_folder():
    from pathlib import Path

    paths = plan_run_paths(Path("/runs/1/walk.json"), {"frames_dir": "frames", "video": "walk.mp4"})
    assert (paths.frames, paths.video) == (Path("/runs/1/frames"), Path("/runs/1/walk.mp4"))


def test_a_crafted_animate_plan_writes_beside_the_plan_only(tmp_path, elsewhere):
    run = tmp_path / "run"
    run.mkdir()
    assert main(["animate", *TINY, "--mode", "2D", "--prompt", "0: a forest", "--frames", "3", "--cadence", "1",
                 "--seed", "3", "--out", str(run / "a.mp4")]) == 0
    craft(run / "a.json", elsewhere)
    (run / "a-settings.json").unlink()

    assert main(["animate", "--resume", str(run / "a.json")]) == 0
    assert list(elsewhere.iterdir()) == []
    assert video.video_info(run / "a.mp4")["frames"] == 3
    assert len(list((run / "a-frames").glob("*.png"))) == 3


def test_an_init_image_named_outside_the_run_is_not_read(tmp_path, elsewhere, astronaut, capsys):
    run = tmp_path / "run"
    run.mkdir()
    astronaut.resize((64, 64)).save(tmp_path / "init.png")
    assert main(["animate", *TINY, "--mode", "2D", "--prompt", "0: a forest", "--frames", "2", "--seed", "3",
                 "--image", str(tmp_path / "init.png"), "--out", str(run / "a.mp4")]) == 0
    astronaut.save(elsewhere / "private.png")
    craft(run / "a.json", elsewhere)
    plan = json.loads((run / "a.json").read_text())
    plan["request"]["init_image"] = str(elsewhere / "private.png")
    (run / "a.json").write_text(json.dumps(plan))
    capsys.readouterr()
    assert main(["animate", "--resume", str(run / "a.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(run / "private.png") in err


@pytest.mark.parametrize("job", ["walk", "animate"])
def test_resume_refuses_an_out_elsewhere_rather_than_ignoring_it(tmp_path, capsys, job):
    run = tmp_path / "run"
    run.mkdir()
    start = (["walk", *TINY, "--prompt", "a", "--prompt", "b", "--frames", "2"] if job == "walk"
             else ["animate", *TINY, "--prompt", "0: a", "--frames", "2"])
    assert main([*start, "--out", str(run / "v.mp4")]) == 0
    capsys.readouterr()
    assert main([job, "--resume", str(run / "v.json"), "--out", str(tmp_path / "other.mp4")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "leave out --out" in err and not (tmp_path / "other.mp4").exists()
    assert main([job, "--resume", str(run / "v.json"), "--out", str(run / "v.mp4")]) == 0
