"""Video: a latent walk's cost a frame, batching, and the MP4 share."""
from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import GUIDANCE, NEGATIVE, PROMPT, PROMPT_2, SAMPLER, SEED, Clock


def walk_request(size: int, steps: int, frames: int, batch_size: int):
    from engine.video.walk_request import WalkRequest

    return WalkRequest(prompts=[PROMPT, PROMPT_2], seeds=[SEED, SEED + 1], negative_prompt=NEGATIVE,
                       num_frames=frames, fps=8, num_inference_steps=steps, guidance_scale=GUIDANCE, width=size,
                       height=size, sampler=SAMPLER, batch_size=batch_size)


def run_walk(manager, size: int, steps: int, frames: int, batch_size: int, folder: Path) -> dict:
    """A latent walk through the engine, timed, then its MP4 encode timed again alone for its share."""
    from PIL import Image

    from engine import video
    from engine.video.run_folder import RunPaths
    from engine.video.walk import latent_walk

    paths = RunPaths.in_folder(Path(tempfile.mkdtemp(prefix=f"walk-b{batch_size}-", dir=folder)), "walk")
    with Clock() as clock:
        result = latent_walk(manager, walk_request(size, steps, frames, batch_size), paths)
    images = [Image.open(p).convert("RGB") for p in result.frames]
    with Clock() as encode:
        video.write_mp4(images, folder / "encode-again.mp4", 8)
    return {"seconds": clock.wall, "cpu_seconds": clock.cpu, "frames": len(result.frames),
            "seconds_per_frame": clock.wall / frames, "cpu_seconds_per_frame": clock.cpu / frames,
            "mp4_encode_seconds": encode.wall, "mp4_share": encode.wall / clock.wall}

