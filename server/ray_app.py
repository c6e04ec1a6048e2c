"""The engine as a Ray Serve application: one PipelineManager per replica, running the jobs the front end sends.

`serve run --name diffusion_studio server.ray_app:app` starts it (builder arguments: model=tiny replicas=2 ...;
or a Serve config file, deploy/serve.yaml); `python app.py --ray` starts it too, with the UI and REST API in front.
Each replica runs one job at a time (max_ongoing_requests=1, the engine's one slot) and streams its progress.
"""
from __future__ import annotations

import asyncio
import importlib
import os
import threading
from dataclasses import asdict, fields

from engine.backends.ray import NAMESPACE, JobCall, import_ray, stop_board, unpack
from engine.image.request import RunControl
from engine.jobs.runner import job_function
from engine.pipeline.manager import RuntimeOptions

APP_NAME = "diffusion_studio"
DEPLOYMENT = "Engine"
DEFAULT_QUEUE = 20  # requests that may wait for a replica beyond those running; more are told "busy"
OPTION_NAMES = {f.name for f in fields(RuntimeOptions)}


class Engine:
    """One replica: the weights of one model and the jobs sent to it, one at a time."""

    def __init__(self, model: str | None = None, options: dict | None = None, weights_dir: str | None = None,
                 cpus: int | None = None, factory: str | None = None, folders: dict | None = None):
        from pathlib import Path

        from ray import serve

        from engine.pipeline.manager import PipelineManager
        from engine.pipeline.models import WEIGHTS_DIR

        self.replica = serve.get_replica_context().replica_id.unique_id
        if factory:  # "module:function" returning a manager (the benchmark's full-size random model)
            module, name = factory.split(":")
            self.manager = getattr(importlib.import_module(module), name)()
        else:
            self.manager = PipelineManager(model, RuntimeOptions(**(options or {})),
                                           weights_dir=Path(weights_dir) if weights_dir else WEIGHTS_DIR,
                                           **{key: Path(value) for key, value in (folders or {}).items() if value})
        self.manager.replica = self.replica  # PNG info names the replica (engine.image.generate.parameters_text)
        self.board = stop_board()
        self.lock = threading.Lock()
        try:
            self.manager.base()  # a replica counts as ready once its weights are in memory
        except ValueError:
            pass  # the first job says why (manager.load_error)
        if cpus and self.manager.device == "cpu":  # replicas sharing a machine don't fight over its cores
            self.manager.threads = max(1, min(self.manager.threads, int(cpus)))

    async def run(self, call: JobCall):
        """Stream one job: ("started", replica, pid), its callbacks' calls, then ("result", ...) or ("error", ...)."""
        loop = asyncio.get_running_loop()
        messages: asyncio.Queue = asyncio.Queue()
        control = RunControl()

        def send(message):
            loop.call_soon_threadsafe(messages.put_nowait, message)

        def work():
            try:
                with self.lock:
                    if call.model and call.model != self.manager.model_name:
                        self.manager.select(call.model)
                    args, kwargs = unpack(call, self.manager, control, send)
                    send(("result", job_function(call.job)(*args, **kwargs)))
            except Exception as exc:  # noqa: BLE001 - the front end raises it again in its own process
                send(("error", _portable_error(exc)))

        stopped = asyncio.ensure_future(self._stop_on_board(call.job_id, control))
        yield ("started", self.replica, os.getpid())
        threading.Thread(target=work, name=f"job-{call.job_id[:8]}", daemon=True).start()
        try:
            while True:
                message = await messages.get()
                yield message
                if message[0] in ("result", "error"):
                    return
        finally:
            control.stop()  # a caller that went away ends the job at its next step
            stopped.cancel()
            self.board.forget.remote(call.job_id)

    async def _stop_on_board(self, job_id: str, control: RunControl) -> None:
        if await self.board.wait.remote(job_id):
            control.stop()

    def status(self) -> dict:
        """This replica's id, process and model, for checks and the docs' examples."""
        return {"replica": self.replica, "pid": os.getpid(), "model": self.manager.model_name,
                "status": self.manager.status()}


def _portable_error(exc: Exception) -> Exception:
    """The job's exception, or a RuntimeError with its text when it can't travel."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(str(exc))


def deployment_options(replicas: int | None = None, autoscaling: dict | None = None, gpus: float | None = None,
                       queue_size: int = DEFAULT_QUEUE, cpus: int | None = None) -> dict:
    """Serve settings: a fixed replica count or autoscaling, one GPU per replica where the cluster has GPUs.

    CPU replicas reserve `cpus` cores each (default 1, with no cap on torch's threads).
    """
    ray, _ = import_ray()
    if gpus is None:
        gpus = 1 if ray.is_initialized() and ray.cluster_resources().get("GPU", 0) >= 1 else 0
    actor = {"num_gpus": gpus} if gpus else {"num_cpus": cpus or 1}
    options = {"name": DEPLOYMENT, "max_ongoing_requests": 1, "max_queued_requests": queue_size,
               "ray_actor_options": actor, "health_check_period_s": 2, "graceful_shutdown_timeout_s": 5}
    if autoscaling:
        options["autoscaling_config"] = autoscaling
    else:
        options["num_replicas"] = max(1, int(replicas or 1))
    return options


def build(model: str | None = None, options: RuntimeOptions | None = None, replicas: int | None = None,
          autoscaling: dict | None = None, weights_dir: str | None = None, queue_size: int = DEFAULT_QUEUE,
          cpus: int | None = None, factory: str | None = None, folders: dict | None = None):
    """The bound Serve application for `serve.run`; `cpus` also caps each CPU replica's torch threads.

    `folders` holds the manager's `lora_dir` and `embeddings_dir` where they are not under `weights_dir`.
    """
    _, serve = import_ray()
    settings = {k: v for k, v in asdict(options or RuntimeOptions()).items() if k in OPTION_NAMES}
    deployment = serve.deployment(Engine, **deployment_options(replicas, autoscaling, queue_size=queue_size,
                                                               cpus=cpus))
    return deployment.bind(model, settings, weights_dir, cpus, factory, folders)


def app(args: dict):
    """Builder for `serve run server.ray_app:app [model=tiny] [replicas=2] [device=cpu] [dtype=float32] ...`.

    Autoscaling instead of a fixed count: min_replicas=, max_replicas=, target_ongoing_requests=. Unset values
    come from the STUDIO_* environment variables, as in app.py.
    """
    env = os.environ.get
    args = {k.replace("-", "_"): v for k, v in (args or {}).items()}
    model = args.pop("model", env("STUDIO_MODEL"))
    replicas = int(args.pop("replicas", env("STUDIO_RAY_REPLICAS", 1)))
    weights_dir = args.pop("weights_dir", env("STUDIO_WEIGHTS_DIR"))
    folders = {name: args.pop(name, env(f"STUDIO_{name.upper()}")) for name in ("lora_dir", "embeddings_dir")}
    queue_size = int(args.pop("queue_size", env("STUDIO_QUEUE_SIZE", DEFAULT_QUEUE)))
    cpus = args.pop("replica_cpus", None)
    scaling = {name: float(args.pop(name)) for name in ("min_replicas", "max_replicas", "target_ongoing_requests")
               if name in args}
    autoscaling = None
    if scaling:  # e.g. min_replicas=0 max_replicas=4 target_ongoing_requests=1
        autoscaling = {"min_replicas": int(scaling.get("min_replicas", 1)),
                       "max_replicas": int(scaling.get("max_replicas", max(replicas, 1))),
                       "target_ongoing_requests": scaling.get("target_ongoing_requests", 1)}
    options = {name: args.pop(name, env(f"STUDIO_{name.upper()}")) for name in ("device", "dtype", "backend")}
    unknown = set(args) - OPTION_NAMES
    if unknown:
        raise ValueError(f"Unknown argument(s) {', '.join(sorted(unknown))}; use model, replicas, weights_dir, "
                         "lora_dir, embeddings_dir, queue_size, replica_cpus, min_replicas, max_replicas, "
                         "target_ongoing_requests, device, dtype or backend.")
    runtime = RuntimeOptions(**{k: v for k, v in options.items() if v is not None})
    return build(model, runtime, replicas=replicas, autoscaling=autoscaling, weights_dir=weights_dir,
                 queue_size=queue_size, cpus=int(cpus) if cpus else None, folders=folders)


def serve_engine(address: str | None, model: str | None, options: RuntimeOptions, replicas: int,
                 weights_dir: str | None = None, queue_size: int = DEFAULT_QUEUE, num_cpus: int | None = None,
                 folders: dict | None = None):
    """Connect to Ray (a local one starts without `address`) and return a handle to the engine deployment.

    An engine application already running on the cluster (`serve run` or `serve deploy`) is used as it is;
    otherwise one is deployed with `replicas` replicas.
    """
    ray, serve = import_ray()
    from engine.files.outputs import output_root
    from engine.pipeline.models import REPO_ROOT

    if not ray.is_initialized():
        env_vars = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
                    "STUDIO_OUTPUT_DIR": str(output_root())}
        for name in ("HF_HUB_OFFLINE", "HF_HOME"):
            if os.environ.get(name):
                env_vars[name] = os.environ[name]
        ray.init(address=address or "local", namespace=NAMESPACE, include_dashboard=False, num_cpus=num_cpus,
                 runtime_env={"env_vars": env_vars}, log_to_driver=False)
    try:
        return serve.get_app_handle(APP_NAME)
    except Exception:  # noqa: BLE001 - no such application yet: deploy it
        pass
    serve.start(proxy_location="Disabled")
    return serve.run(build(model, options, replicas=replicas, weights_dir=weights_dir, queue_size=queue_size,
                           folders=folders),
                     name=APP_NAME, route_prefix=None)
