"""Data-parallel training under `accelerate launch` (or torchrun): one process per GPU, the LoRA's gradients averaged.

Each step's batch is `batch_size` examples per process: the processes draw the same global batch (and the same
noise and timesteps for it) from the seed, and each trains on its own share. Their LoRA gradients are averaged
(torch.distributed all_reduce) before clipping and the optimiser step, so every process keeps the same LoRA, and the
run equals one process training on the whole global batch. Only the main process (rank 0) writes the run folder,
checkpoints, samples, the loss CSV and the LoRA, and reports progress.

In one process (the app, the CLI without a launcher, a Ray worker) `current()` answers `SINGLE`, whose every
method does nothing: the training loop reads the same either way.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Parallel:
    """This process's place among the training processes."""

    rank: int = 0  # 0 is the main process, the one that writes files and reports
    world: int = 1  # how many processes train together

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, items: list) -> list:
        """This process's contiguous part of a global list whose length is a multiple of `world`."""
        size = len(items) // self.world
        return list(items[self.rank * size:(self.rank + 1) * size])

    def draw(self, shape: torch.Size, groups: int, generator: torch.Generator,
             train_timesteps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's noise and timesteps for this process's rows, drawn for the whole global batch.

        `shape` is this process's batch: `groups` blocks (the photos, then the class images) of equal size. The
        global batch holds each block `world` times over, so one process draws exactly what a single process
        training the global batch would, and keeps its rows.
        """
        rows = shape[0] * self.world
        noise = torch.randn((rows, *shape[1:]), generator=generator)
        timesteps = torch.randint(0, train_timesteps, (rows,), generator=generator)
        if self.world == 1:
            return noise, timesteps
        block, mine = shape[0] // groups, []
        for group in range(groups):
            first = group * block * self.world + self.rank * block
            mine.extend(range(first, first + block))
        return noise[mine], timesteps[mine]

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Average each parameter's gradient over the processes, in place (one flat all_reduce)."""
        if self.world == 1:
            return
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        start = 0
        for p, g in zip(params, grads):
            p.grad = flat[start:start + g.numel()].view_as(g).clone()
            start += g.numel()

    def average(self, value: torch.Tensor) -> torch.Tensor:
        """A scalar averaged over the processes: the step's loss on the whole global batch."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        value = value.detach().float().clone()
        dist.all_reduce(value)
        return value / self.world

    def any(self, flag: bool) -> bool:
        """True on every process when any one says True: Stop ends all of them at the same step."""
        if self.world == 1:
            return flag
        import torch.distributed as dist

        value = torch.tensor([1.0 if flag else 0.0], device=_device())
        dist.all_reduce(value)
        return bool(value.item() > 0)

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    @contextmanager
    def main_first(self):
        """The main process runs the block first (making a cache), the others after it (reading that cache)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()


SINGLE = Parallel()


def current() -> Parallel:
    """This process's place: SINGLE unless `join()` started a process group here."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return Parallel(dist.get_rank(), dist.get_world_size())


def launched() -> bool:
    """True in a process started by `accelerate launch` or torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: str) -> Parallel:
    """Join the launcher's process group (NCCL on CUDA, Gloo on CPU); SINGLE when not launched with several processes.

    On CUDA each process takes the GPU of its local rank, so `--device cuda` (or auto) means a different GPU in each.
    """
    if not launched():
        return SINGLE
    import torch.distributed as dist

    if not dist.is_available():
        raise ValueError("This PyTorch has no torch.distributed; run the training as one process (python -m engine).")
    cuda = str(device).startswith("cuda")
    if cuda:
        if str(device) != "cuda":
            raise ValueError("With several processes each takes its own GPU; use --device cuda (or auto), not "
                             f"{device}.")
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return current()


def leave() -> None:
    """Leave the process group, when `join()` made one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _device() -> str:
    import torch.distributed as dist

    return "cuda" if dist.get_backend() == "nccl" else "cpu"
