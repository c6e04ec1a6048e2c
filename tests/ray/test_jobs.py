"""Every job the tabs run also runs on a replica: same pixels where it is an image, files where it is a video."""
from __future__ import annotations

import numpy as np
from PIL import Image

from engine.files import pnginfo
from engine.image.generate import image_to_image, inpaint
from engine.image.request import ImageRequest
from engine.jobs.runner import replica_of, run_job
from engine.video.run_folder import RunPaths

IMAGE = dict(prompt="a red apple", num_inference_steps=3, width=64, height=64, seed=4, sampler="Euler",
             strength=0.6)


def test_img2img_and_inpaint_match_in_process_and_uploads_travel_as_bytes(ray_manager, tiny_manager, photo_64,
                                                                          tmp_path):
    upload = tmp_path / "upload.png"  # a path outside the outputs folder, as a browser upload arrives
    photo_64.save(upload)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    for job, extra in ((image_to_image, (str(upload),)), (inpaint, (str(upload), mask))):
        remote = run_job(job, ray_manager, ImageRequest(**IMAGE), *extra, None, None)
        local = job(tiny_manager, ImageRequest(**IMAGE), *extra)
        assert replica_of(remote)
        assert np.array_equal(np.asarray(remote.images[0].image), np.asarray(local.images[0].image)), job.__name__


def test_plot_aging_animate_and_text_to_video_run_on_a_replica(ray_manager, astronaut, tmp_path):
    from engine.faces.aging import AgingRequest, aging_timelapse
    from engine.video.animate import AnimateRequest, animate
    from engine.video.motion.text2video import Text2VideoRequest, text_to_video
    from engine.xyz import PlotRequest, run_plot

    cells = []
    plot = run_job(run_plot, ray_manager, PlotRequest(ImageRequest(**IMAGE), x="Steps: 1, 2"), None,
                   cells.append, None)
    assert len(plot.cells) == 2 and all(plot.cells) and plot.grids and cells

    aging = run_job(aging_timelapse, ray_manager, AgingRequest(ages=[20, 60], num_inference_steps=2, size=64,
                                                               seed=1, fps=4), astronaut, tmp_path / "aging")
    assert [age for age, _ in aging.keyframes] == [20, 60] and aging.video.exists()
    still = next(p for p in sorted((tmp_path / "aging").glob("*.png")) if p.name != "grid.png")
    assert pnginfo.parse_parameters(pnginfo.read_parameters(still))["Replica"] == replica_of(aging)

    frames = []
    anim = run_job(animate, ray_manager, AnimateRequest(prompts={0: "a forest"}, num_frames=4, width=64, height=64,
                                                        num_inference_steps=2, sampler="Euler", seed=3, fps=8),
                   RunPaths.in_folder(tmp_path / "anim", "anim"), frames.append, None)
    assert len(anim.frames) == 4 and anim.video.exists() and frames

    clip = run_job(text_to_video, ray_manager, Text2VideoRequest(prompt="a cat walking", num_frames=8,
                                                                 num_inference_steps=2, width=64, height=64, seed=1),
                   RunPaths.in_folder(tmp_path / "clip", "clip"), None, None)
    assert len(clip.frames) == 8 and clip.video.exists()
    assert all(replica_of(r) for r in (plot, aging, anim, clip))
