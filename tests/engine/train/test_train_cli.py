"""`python -m engine train`: progress lines, the LoRA, samples and loss CSV; bad input exits 2 with one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.cli import main
from tests.engine.train.test_train import shapes

TINY = ["--model", "tiny", "--device", "cpu", "--dtype", "float32", "--backend", "torch"]


def test_train_writes_the_lora_samples_and_loss_csv(tmp_path, output_dir):
    folder = shapes(tmp_path / "shapes", 3)
    lora_dir = tmp_path / "Lora"
    args = ["train", "--images", str(folder), "--name", "disc", "--class-word", "object", "--steps", "4",
            "--rank", "4", "--resolution", "64", "--sample-every", "2", "--sample-steps", "2", *TINY,
            "--lora-dir", str(lora_dir)]
    done = subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0, done.stderr
    assert "step 1/4  loss" in done.stderr and "step 4/4" in done.stderr and "eta 0:00" in done.stderr
    assert "sample " in done.stderr
    assert done.stdout.startswith(str(lora_dir / "disc.safetensors")) and "4/4 steps" in done.stdout
    run = output_dir / "train" / "disc"
    assert len((run / "loss.csv").read_text().splitlines()) == 5
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step-000002-1.png", "step-000002-2.png", "step-000004-1.png", "step-000004-2.png"]
    assert main([*args, "--steps", "2"]) == 2  # the name is taken now


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    folder = shapes(tmp_path / "two", 2)
    cases = [
        (["--images", str(folder), "--name", "x"], "at least 3 photos"),
        (["--images", str(folder)], "give --images and --name"),
        (["--images", str(folder), "--name", "a/b"], "path characters"),
        (["--resume", "nobody"], "no training named nobody"),
        (["--resume", "x", "--full"], "Full DreamBooth keeps no checkpoints to resume"),
        (["--images", str(folder), "--name", "x", "--full"], "at least 3 photos"),  # the tiny model trains fully
    ]
    for extra, words in cases:
        assert main(["train", *extra, *TINY, "--lora-dir", str(tmp_path / "Lora")]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
