"""Ray Serve against in-process: images per minute with 1 and 2 replicas, and what one request costs to route.

Run from the repository root: `python -m bench.ray` (full-size SD 1.5 architecture with random weights at
256x256), `python -m bench.ray --quick` (fewer images and steps). It starts its own local Ray on this
machine's cores. Prints a JSON report.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

if not __package__:  # run as a script: keep this file from hiding the `ray` package
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Ray gives each replica OMP_NUM_THREADS = its cores; the in-process figures get the same, or they compare
# OpenMP's defaults instead of the two ways of serving (3x slower here on a busy machine without it)
os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from bench.common import machine, memory  # noqa: E402


def sd15_manager():
    """The benchmark's full-size random SD 1.5 manager on PyTorch (no OpenVINO conversion per replica)."""
    from bench.common import bench_manager

    manager = bench_manager()
    manager.options.backend = "torch"
    return manager


def request(size: int, steps: int, seed: int):
    from bench.common import image_request

    return image_request(size, steps, seed)


def local_throughput(size: int, steps: int, images: int) -> dict:
    """One manager in this process, images one after another (the app's --concurrency 1)."""
    from engine.backends import fastpath
    from engine.image.generate import text_to_image

    manager = sd15_manager()
    manager.base()
    text_to_image(manager, request(size, steps, 0))  # warm-up
    start = time.perf_counter()
    for seed in range(images):
        text_to_image(manager, request(size, steps, seed + 1))
    seconds = time.perf_counter() - start
    rss = memory()
    del manager
    gc.collect()
    fastpath.trim_memory()  # give the weights back before the replicas load theirs
    return {"images": images, "seconds": round(seconds, 2), "images_per_min": round(images * 60 / seconds, 2),
            "rss_gb": rss}


def serve_throughput(replicas: int, cpus: int, size: int, steps: int, images: int) -> dict:
    """`replicas` replicas of the full-size model, `cpus` cores (and torch threads) each; all images sent at once."""
    from ray import serve

    from engine.backends.ray import RayRunner
    from engine.image.generate import text_to_image
    from engine.jobs.runner import replica_of, run_job
    from engine.pipeline.manager import PipelineManager
    from server.ray_app import build

    started = time.perf_counter()
    handle = serve.run(build(replicas=replicas, cpus=cpus, factory="bench.ray:sd15_manager"), name="bench",
                       route_prefix=None)
    ready = time.perf_counter() - started
    front = PipelineManager("tiny")  # holds no weights: only the model's name travels
    front.runner = RayRunner(handle)

    def one(seed):
        return run_job(text_to_image, front, request(size, steps, seed), None, None)

    with ThreadPoolExecutor(replicas) as pool:  # warm-up: one image per replica
        list(pool.map(one, range(100, 100 + replicas)))
    start = time.perf_counter()
    with ThreadPoolExecutor(images) as pool:
        results = list(pool.map(one, range(1, images + 1)))
    seconds = time.perf_counter() - start
    serve.delete("bench")
    return {"replicas": replicas, "cpus_per_replica": cpus, "images": images, "seconds": round(seconds, 2),
            "images_per_min": round(images * 60 / seconds, 2), "deploy_seconds": round(ready, 1),
            "replicas_used": len({replica_of(r) for r in results})}


def overhead(runs: int) -> dict:
    """Median latency of a one-step 64x64 tiny-model image, in this process and through one Serve replica."""
    from ray import serve

    from engine.backends.ray import RayRunner
    from engine.image.generate import text_to_image
    from engine.image.request import ImageRequest
    from engine.jobs.runner import run_job
    from engine.pipeline.manager import PipelineManager, RuntimeOptions
    from server.ray_app import build

    options = RuntimeOptions(device="cpu", dtype="float32")
    req = ImageRequest(prompt="a red apple", num_inference_steps=1, width=64, height=64, seed=1, sampler="Euler")
    local = PipelineManager("tiny", options)
    front = PipelineManager("tiny", options)
    front.runner = RayRunner(serve.run(build("tiny", options, replicas=1), name="overhead", route_prefix=None))

    def timed(manager, with_steps: bool) -> float:
        steps = []
        start = time.perf_counter()
        run_job(text_to_image, manager, req, steps.append if with_steps else None, None)
        return time.perf_counter() - start

    report = {}
    for name, manager in (("in_process", local), ("serve", front)):
        for with_steps in (False, True):
            timed(manager, with_steps)
            times = [timed(manager, with_steps) for _ in range(runs)]
            report[f"{name}{'_with_progress' if with_steps else ''}_ms"] = round(statistics.median(times) * 1000, 1)
    report["overhead_ms"] = round(report["serve_ms"] - report["in_process_ms"], 1)
    report["overhead_with_progress_ms"] = round(report["serve_with_progress_ms"]
                                                - report["in_process_with_progress_ms"], 1)
    serve.delete("overhead")
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 images of 4 steps per setting")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=None, help="default 10 (4 with --quick)")
    p.add_argument("--images", type=int, default=None, help="images per setting (default 6; 2 with --quick)")
    p.add_argument("--runs", type=int, default=20, help="timed requests for the overhead")
    p.add_argument("--skip-throughput", action="store_true")
    args = p.parse_args(argv)
    steps = args.steps or (4 if args.quick else 10)
    images = args.images or (2 if args.quick else 6)

    import ray
    from ray import serve

    from engine.pipeline.models import REPO_ROOT

    cores = os.cpu_count() or 1
    report = {"machine": machine(), "load_before": os.getloadavg(), "size": args.size, "steps": steps,
              "images_per_setting": images}

    def note(name, value):  # each figure as soon as it is measured, in case a long run is cut short
        report[name] = value
        print(json.dumps({name: value}), file=sys.stderr, flush=True)

    if not args.skip_throughput:
        note("in_process", local_throughput(args.size, steps, images))
    ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}})
    serve.start(proxy_location="Disabled")
    try:
        note("overhead", overhead(args.runs))
        if not args.skip_throughput:
            note("serve_1_replica", serve_throughput(1, cores, args.size, steps, images))
            note("serve_2_replicas", serve_throughput(2, max(1, cores // 2), args.size, steps, images))
            report["speedup_2_over_1"] = round(report["serve_2_replicas"]["images_per_min"]
                                               / report["serve_1_replica"]["images_per_min"], 2)
    finally:
        serve.shutdown()
        ray.shutdown()
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
