"""Where one image's seconds go: text encoder, UNet, VAE, watermark and write, timed around the loaded components'
calls for one run and put back afterwards; what is left (scheduler, LoRA switches, image conversion) is "other"."""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

STAGES = ("text_encoder", "unet", "vae", "watermark", "write")


class StageClock:
    """Seconds spent in each stage, from timers wrapped around methods; `restore` puts every method back."""

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.calls = dict.fromkeys(STAGES, 0)
        self._undo: list = []

    def wrap(self, owner, name: str, stage: str) -> None:
        """Time every call of `owner.name` as `stage` (an instance attribute, so only this object is affected)."""
        original = getattr(owner, name)
        own = name in vars(owner)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start
                self.calls[stage] += 1

        setattr(owner, name, timed)
        self._undo.append((owner, name, original if own else None))

    def restore(self) -> None:
        while self._undo:
            owner, name, original = self._undo.pop()
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)

    def breakdown(self, total: float) -> dict:
        """The stages in seconds, "other" for the rest of `total`, and `total` itself."""
        out = {stage: self.seconds[stage] for stage in STAGES}
        out["other"] = total - sum(out.values())
        out["total"] = total
        return out


@contextmanager
def timed_stages(manager):
    """For the block, every pipeline the manager hands out times its UNet and VAE decode, and its text encoder
    is timed; the PNG writer's watermark is timed too. Everything is put back on leaving."""
    from engine.files import pnginfo

    clock = StageClock()
    original = manager.pipeline

    def staged_pipeline(*args, **kwargs):
        pipe = original(*args, **kwargs)
        clock.wrap(pipe.unet, "forward", "unet")
        clock.wrap(pipe.vae, "decode", "vae")
        return pipe

    manager.pipeline = staged_pipeline
    clock._undo.append((manager, "pipeline", None))
    clock.wrap(manager.base().text_encoder, "forward", "text_encoder")
    clock.wrap(pnginfo, "_watermarked", "watermark")
    try:
        yield clock
    finally:
        clock.restore()


def staged_image(manager, req, folder: Path, name: str = "image") -> dict:
    """One image made and saved as the app does (engine call, then a watermarked PNG with its parameters), with
    the seconds of each stage; the prompt's embeddings are encoded afresh, as a new prompt's are."""
    from engine.files import pnginfo
    from engine.image.generate import text_to_image

    manager._embeds.clear()  # the manager caches embeddings per prompt; a staged run pays the encoder once
    runner = manager.openvino()
    compiles = runner.compiles if runner is not None else 0
    folder.mkdir(parents=True, exist_ok=True)
    with timed_stages(manager) as clock:
        start = time.perf_counter()
        result = text_to_image(manager, req)
        made = time.perf_counter()
        first = result.images[0]
        before_write = clock.seconds["watermark"]
        pnginfo.save_png(first.image, folder / f"{name}.png", first.parameters)
        end = time.perf_counter()
    clock.seconds["write"] = (end - made) - (clock.seconds["watermark"] - before_write)
    out = clock.breakdown(end - start)
    out["image_s"] = made - start  # the engine's part, as the other image figures are timed
    out["unet_calls"] = clock.calls["unet"]
    out["openvino_compiles"] = (runner.compiles - compiles) if runner is not None else 0  # a switch lands in "unet"
    out["backend"] = pnginfo.parse_parameters(first.parameters).get("Backend")
    out["parameters"] = first.parameters.splitlines()[-1]
    return out
