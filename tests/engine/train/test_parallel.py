"""`accelerate launch -m engine train` on 2 CPU processes: one LoRA, one loss CSV, and the same LoRA a single process
makes from the doubled batch (the gradients were averaged, the ranks agreed)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from engine.cli import main
from engine.train import parallel
from tests.engine.train.test_train import shapes

REPO = Path(__file__).resolve().parents[3]
TRAIN = ["--class-word", "object", "--steps", "3", "--rank", "4", "--resolution", "64", "--lr", "1e-2",
         "--sample-every", "0", "--sample-steps", "2", "--checkpoint-every", "2", "--model", "tiny", "--device", "cpu",
         "--dtype", "float32", "--backend", "torch"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lora_difference(a: Path, b: Path) -> float:
    first, second = load_file(a), load_file(b)
    assert first.keys() == second.keys()
    return max(float((first[k].float() - second[k].float()).abs().max()) for k in first)


def test_two_processes_train_one_lora_equal_to_the_doubled_batch(tmp_path, output_dir):
    folder = shapes(tmp_path / "shapes", 3)
    launcher = Path(sys.executable).with_name("accelerate")
    command = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
               "-m", "engine", "train", "--images", str(folder), "--name", "pair", *TRAIN,
               "--lora-dir", str(tmp_path / "Lora2")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STUDIO_OUTPUT_DIR": str(tmp_path / "out2")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    # the main process alone reports and writes
    assert done.stderr.count("step 3/3") == 1 and done.stdout.count("pair.safetensors") == 1, done.stdout
    run = tmp_path / "out2" / "train" / "pair"
    assert len((run / "loss.csv").read_text().splitlines()) == 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002.pt", "step-000003.pt"]
    assert [p.name for p in (tmp_path / "Lora2").iterdir()] == ["pair.safetensors"]

    # one process on the doubled batch lands on the same LoRA; one on a single photo per step does not
    for lora_dir, batch in (("Lora1x2", "2"), ("Lora1x1", "1")):
        assert main(["train", "--images", str(folder), "--name", "pair", *TRAIN, "--batch-size", batch,
                     "--lora-dir", str(tmp_path / lora_dir)]) == 0
    assert lora_difference(tmp_path / "Lora2" / "pair.safetensors", tmp_path / "Lora1x2" / "pair.safetensors") < 1e-3
    assert lora_difference(tmp_path / "Lora2" / "pair.safetensors", tmp_path / "Lora1x1" / "pair.safetensors") > 1e-2


def test_one_process_is_single_and_shares_everything():
    assert parallel.current() == parallel.SINGLE and parallel.join("cpu") == parallel.SINGLE
    assert parallel.SINGLE.share([3, 1, 2]) == [3, 1, 2]
    generator = torch.Generator().manual_seed(1)
    noise, steps = parallel.SINGLE.draw(torch.Size((2, 4, 8, 8)), 2, generator, 1000)
    expected = torch.Generator().manual_seed(1)
    assert torch.equal(noise, torch.randn((2, 4, 8, 8), generator=expected))
    assert torch.equal(steps, torch.randint(0, 1000, (2,), generator=expected))


def test_each_rank_draws_its_rows_of_the_global_batch():
    """Two ranks with a photo and a class image each hold rows (0, 2) and (1, 3) of the 4-row global draw."""
    whole = torch.Generator().manual_seed(3)
    noise = torch.randn((4, 1, 2, 2), generator=whole)
    steps = torch.randint(0, 1000, (4,), generator=whole)
    for rank, rows in ((0, [0, 2]), (1, [1, 3])):
        mine, mine_steps = parallel.Parallel(rank, 2).draw(torch.Size((2, 1, 2, 2)), 2,
                                                           torch.Generator().manual_seed(3), 1000)
        assert torch.equal(mine, noise[rows]) and torch.equal(mine_steps, steps[rows])
    assert parallel.Parallel(1, 2).share([5, 6, 7, 8]) == [7, 8]
