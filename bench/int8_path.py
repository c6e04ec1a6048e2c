"""The int8 model as the app runs it with --precision int8: the manager's OpenVINO runner swapped for an int8 one
over the same UNet and disk cache (the int8 child has quantised it there), for 20-step images and the memory check."""
from __future__ import annotations

from bench.common import settle


def use_int8(manager) -> dict:
    """Put an int8 runner in the manager's place for the rest of the run; the bf16 compiled models are dropped."""
    from engine.backends import int8 as int8_backend
    from engine.backends.openvino import OpenVINOUNetRunner

    old = manager.openvino()
    if old is None:
        return {"error": "OpenVINO is not the back end here; int8 runs only on it."}
    base = manager.base()
    components = base.components
    runner = OpenVINOUNetRunner(base.unet, precision=old.precision, cache_dir=old.folder.parent, background=False,
                                int8=True, calibration=lambda: int8_backend.record_unet_inputs(components),
                                variant=manager.fused_variant)
    cached = runner.ir.exists()
    with old._lock:
        old._compiled.clear()
    manager._openvino = runner
    settle()
    return {"from_disk_cache": cached, "folder": runner.folder.name}


def all_tabs_with_int8_and_fewstep(manager, size: int, steps: int, folder, fewstep_req) -> dict:
    """Peak RSS of one default image against every tab plus a few-step image, with the int8 model in use."""
    from bench.common import memory, reset_peak
    from bench.memory import run_all_tabs, text_to_image_once
    from engine.image.generate import text_to_image

    settle()
    reset_peak()
    text_to_image_once(manager, size, steps)
    one = memory()["peak_gb"]
    precision = manager.precision_used()
    notes = run_all_tabs(manager, size, steps, folder)
    result = text_to_image(manager, fewstep_req)
    all_tabs = memory()["peak_gb"]
    backend = result.images[0].parameters.rsplit("Backend: ", 1)[-1].split(",")[0]
    return {"peak_one_image_gb": one, "peak_all_tabs_gb": all_tabs, "rss_all_tabs_over_one": all_tabs / one,
            "tab_jobs": notes, "fewstep_backend": backend,
            "default_image_precision": precision}
