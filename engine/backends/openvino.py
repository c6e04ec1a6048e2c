"""The OpenVINO back end: the shared UNet converted once with `ov.convert_model`, compiled per image shape.

Why `ov.convert_model` wrapped as a UNet, and not the alternatives:

- `torch.compile(backend="openvino")` failed here with torch 2.13 (a dynamo guard `IndexError` at its first call);
- optimum-intel exports whole pipelines from hub ids and brings its own pipeline classes, where every tab here
  runs diffusers' own pipelines over one set of weights with per-request schedulers;
- `ov.convert_model` of the UNet alone worked, and its compiled model is called exactly like the UNet, so every
  pipeline, tab and scheduler stays as it is: `OpenVINOUNet` is what `PipelineManager.pipeline` hands out in
  place of the UNet, and it runs PyTorch's UNet for anything it cannot serve.

How a shape becomes fast:

1. Conversion (about a minute for SD 1.5, once per model): an fp32 copy of the UNet is traced and saved as
   OpenVINO IR under the disk cache, in a folder named by a fingerprint of the weights. The copy is freed after.
2. Compilation (seconds, once per shape): the IR is read (memory-mapped), reshaped to the request's static shape
   (batch, latent height and width, prompt tokens: static shapes run much faster than dynamic ones) and
   compiled for the CPU with OpenVINO's `CACHE_DIR`, so a restart or a second use of the size loads the compiled
   blob from disk instead of compiling again.
3. The first request at a new shape runs on PyTorch while steps 1-2 run in a background thread (a log line says
   so, and `status()` says how long); when the IR is already on disk, step 2 alone runs before the request,
   which then uses OpenVINO. A request never switches back end half way: the choice is made once per request
   and shape, so the same seed gives the same pixels on each back end.

Memory, one copy of the weights: the compiled model holds its own copy of the UNet's weights (bf16, about 1.7 GB
for SD 1.5). PyTorch's UNet, which the Fast toggle, the identity adapter, LoRAs and not-yet-compiled shapes still
need, then reads identical weights from a memory-mapped file in the disk cache (engine.backends.paging): the
kernel pages them in when a fallback runs, and the next OpenVINO request hands them back, together with the
compile-cache blob that OpenVINO keeps mapped but no longer reads. At most `MAX_SHAPES` compiled shapes are kept;
the least recently used is dropped and comes back from the disk cache.
"""
from __future__ import annotations

import copy
import gc
import hashlib
import json
import logging
import os
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.backends import INSTALL_HINT, fastpath, fused, paging, say_once
from engine.backends import int8 as int8_backend
from engine.backends.standin import BorrowedUNet

CACHE_ENV = "STUDIO_OPENVINO_CACHE"  # overrides the disk cache folder
MAX_SHAPES = 1  # compiled shapes kept in memory at once; each holds a copy of the weights (1.7 GB for SD 1.5)
TRACE_LATENT = 8  # latent side of the example input the UNet is traced with (64 px; any multiple of 8 works)
FIRST_TIME_S = 90  # what a first conversion plus compile of SD 1.5 took here, said in the status line

log = logging.getLogger("engine.backends.openvino")
_used = threading.local()


def cache_root() -> Path:
    """The disk cache: $STUDIO_OPENVINO_CACHE, else ~/.cache/diffusion-studio/openvino (XDG_CACHE_HOME honoured)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "diffusion-studio" / "openvino"


def import_openvino():
    """The `openvino` module, or a ValueError saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise ValueError(f"OpenVINO is not installed; run {INSTALL_HINT} or use --backend torch.") from None
    return openvino


def weights_key(unet, precision: str) -> str:
    """A short fingerprint of the UNet's config and weights (sampled), naming its folder in the disk cache."""
    config = {key: value for key, value in unet.config.items() if not key.startswith("_")}  # "_" keys: bookkeeping
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    digest.update(precision.encode())
    params = list(unet.state_dict().items())
    for name, tensor in params[:: max(1, len(params) // 64)]:
        flat = tensor.detach().reshape(-1)[:4096].float().contiguous()
        digest.update(name.encode())
        digest.update(flat.numpy().tobytes())
    return digest.hexdigest()[:16]


def note_used(name: str, fused: bool = False) -> None:
    """Record which back end ran the UNet in this thread, and whether a fused LoRA model (read back for PNG info)."""
    _used.name = name
    _used.fused = fused


def last_fused() -> bool:
    """Whether OpenVINO's last UNet call in this thread ran a model with a LoRA fused in (never quantised)."""
    return getattr(_used, "fused", False)


def last_used(default: str = "torch") -> str:
    """The back end that last ran the UNet in this thread."""
    return getattr(_used, "name", default)


@dataclass(frozen=True)
class Shape:
    """A static input shape: one compiled model each."""

    batch: int
    height: int  # latent rows (pixels / 8)
    width: int  # latent columns
    tokens: int  # prompt embedding length (77 per chunk)
    channels: int  # latent channels (4; 9 for inpainting UNets)

    @property
    def label(self) -> str:
        return f"{self.width * 8}x{self.height * 8} (batch {self.batch})"


class _Traceable(torch.nn.Module):
    """The UNet with plain positional tensors in and one tensor out, as conversion needs."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]


class OpenVINOUNetRunner:
    """The OpenVINO side of one loaded model: conversion, compiled shapes and their disk cache.

    Args:
        unet: the shared PyTorch UNet; read to convert it, then its weights move to a mapped file (same values).
        precision (`str`, *optional*, defaults to "bf16"): OpenVINO's inference precision, "bf16" or "f32".
        cache_dir (`Path`, *optional*): the disk cache; defaults to `cache_root()`.
        background (`bool`, *optional*, defaults to True): convert in a background thread while the request that
            asked runs on PyTorch; False converts before that request (the command line, tests).
        max_shapes (`int`, *optional*, defaults to `MAX_SHAPES`): compiled shapes kept in memory.
        sharers (`callable`, *optional*): returns the modules whose parameters are the UNet's own tensors (the
            identity adapter's UNet); they follow the UNet into the mapped file, so no copy stays behind.
        variant (`callable`, *optional*): with LoRAs loaded, returns the cache name of a model with them fused in
            (engine.backends.fused: the few-step LoRA alone), or None when they must run on PyTorch.
        int8 (`bool`, *optional*, defaults to False): quantise the converted UNet with NNCF (engine.backends.int8),
            cached in a folder of its own; `precision` then applies to the layers left in floating point.
        calibration (`callable`, *optional*): returns recorded UNet inputs to calibrate int8 on
            (`int8.record_unet_inputs`); needed when `int8` is True.
    """

    def __init__(self, unet, precision: str = "bf16", cache_dir: Path | None = None, background: bool = True,
                 max_shapes: int = MAX_SHAPES, sharers=None, int8: bool = False, calibration=None, variant=None):
        self.ov = import_openvino()
        if precision not in ("bf16", "f32"):
            raise ValueError(f"OpenVINO precision must be bf16 or f32; got {precision!r}.")
        if int8:
            int8_backend.import_nncf()
            if calibration is None:
                raise ValueError("int8 needs calibration inputs recorded from the loaded model.")
        self.int8 = bool(int8)
        self.first_time_s = int8_backend.FIRST_TIME_S if self.int8 else FIRST_TIME_S  # said in the status line
        self.calibration = calibration
        self.variant = variant or (lambda: None)  # the fused LoRA's cache name for the active LoRAs, or None
        self.unet = unet
        self.precision = precision
        self.background = background
        self.max_shapes = max(1, int(max_shapes))
        self.folder = Path(cache_dir or cache_root()) / weights_key(unet, int8_backend.RECIPE if int8 else precision)
        self.ir = self.folder / "unet.xml"
        self.torch_weights = self.folder / "unet-torch.pt"  # PyTorch's UNet, mapped while OpenVINO serves
        self.torch_file_backed = False
        self.sharers = sharers or (lambda: [])
        self.upsample_factor = 2 ** sum(1 for block in unet.up_blocks if getattr(block, "upsamplers", None))
        self.conversions = 0  # counters, for tests and the benchmark
        self.compiles = 0
        self.cache_loads = 0  # compiles answered from OpenVINO's CACHE_DIR
        self.timings: dict[str, float] = {}  # last conversion and compile seconds
        self._core = self.ov.Core()
        self._compiled: OrderedDict[tuple, object] = OrderedDict()  # (variant, shape): variant None is plain
        self._last_variant: str | None = None
        self._threads: dict[tuple, threading.Thread] = {}
        self._errors: dict[tuple, str] = {}
        self._lock = threading.RLock()
        self._convert_lock = threading.Lock()

    # 1. what a request may run on
    def shape_of(self, sample: torch.Tensor, encoder_hidden_states: torch.Tensor) -> Shape:
        b, c, h, w = sample.shape
        return Shape(b, h, w, encoder_hidden_states.shape[1], c)

    def torch_reason(self, sample, timestep, encoder_hidden_states, extras: dict) -> str | None:
        """Why this UNet call must run on PyTorch, or None when OpenVINO can serve it."""
        if getattr(self.unet, "_hf_peft_config_loaded", False) and self.variant() is None:
            return "A LoRA is loaded into the UNet: it runs on PyTorch (OpenVINO has the plain weights)."
        if extras.get("cross_attention_kwargs"):
            return "Requests with attention options (LoRA scale, IP-Adapter) run on PyTorch."
        if any(value is not None and key != "cross_attention_kwargs" for key, value in extras.items()):
            return "Requests that pass extra inputs to the UNet (ControlNet, adapters) run on PyTorch."
        if torch.is_tensor(timestep) and timestep.numel() > 1 and not bool((timestep == timestep.flatten()[0]).all()):
            return "Requests with a different timestep per image run on PyTorch."
        if sample.ndim != 4 or encoder_hidden_states.ndim != 3:
            return "Inputs of an unusual shape run on PyTorch."
        if sample.shape[-1] % self.upsample_factor or sample.shape[-2] % self.upsample_factor:
            return (f"Sizes that are not a multiple of {self.upsample_factor * 8} pixels run on PyTorch "
                    "(OpenVINO's model is traced for those).")
        return None

    def folder_for(self, variant: str | None) -> Path:
        """The disk cache folder of the plain model (None) or of one with a LoRA fused in, side by side."""
        return self.folder if variant is None else self.folder.with_name(f"{self.folder.name}-{variant}")

    def ir_for(self, variant: str | None) -> Path:
        return self.folder_for(variant) / "unet.xml"

    def ensure(self, shape: Shape, variant: str | None = None):
        """The compiled model for `shape`, preparing it if needed; None means: run this request on PyTorch.

        From the disk cache (IR on disk) the model is compiled now, in seconds. Otherwise the conversion starts
        in the background (or now, when `background` is False) and this request runs on PyTorch. `variant`
        names a model with the active LoRA fused in (see `variant` in the class); None is the plain model.
        """
        key = (variant, shape)
        with self._lock:
            if key in self._compiled:
                self._compiled.move_to_end(key)
                self._last_variant = variant
                return self._compiled[key]
            if key in self._errors:
                return None
            thread = self._threads.get(key)
            cached = self.ir_for(variant).exists()
            if thread is None and self.background and not cached:
                say_once(f"OpenVINO: preparing the fast path for {shape.label} in the background (about "
                         f"{self.first_time_s} s the first time, then cached on disk); until then images of that size "
                         "run on PyTorch.")
                thread = threading.Thread(target=self._prepare_quietly, args=(shape, variant), daemon=True,
                                          name=f"openvino-{shape.label}")
                self._threads[key] = thread
                thread.start()
                return None
        if thread is not None:
            if not cached:
                return None  # still converting: this request stays on PyTorch
            thread.join()  # compiling from the disk cache: seconds
            with self._lock:
                return self._compiled.get(key)
        if not cached:
            say_once(f"OpenVINO: converting the UNet once for this model before the first image (about "
                     f"{self.first_time_s} s, then cached on disk).")
        self._prepare_quietly(shape, variant)
        with self._lock:
            return self._compiled.get(key)

    def ready(self, shape: Shape, variant: str | None = None) -> bool:
        with self._lock:
            return (variant, shape) in self._compiled

    def wait(self, timeout: float | None = None) -> None:
        """Wait for background preparations (the benchmark and tests)."""
        for thread in list(self._threads.values()):
            thread.join(timeout)

    # 2. conversion and compilation
    def _prepare_quietly(self, shape: Shape, variant: str | None = None) -> None:
        try:
            self.prepare(shape, variant)
        except Exception as exc:  # any failure leaves that shape on PyTorch, said once
            with self._lock:
                self._errors[(variant, shape)] = f"{type(exc).__name__}: {exc}"
            say_once(f"OpenVINO could not prepare {shape.label}; that size runs on PyTorch ({exc}).")
        finally:
            with self._lock:
                self._threads.pop((variant, shape), None)

    def prepare(self, shape: Shape, variant: str | None = None):
        """Convert (once per model) and compile (once per shape, or load from the disk cache); returns the model."""
        folder = self.folder_for(variant)
        with self._convert_lock:
            if not self.ir_for(variant).exists():
                self.convert(variant)
        switching = self._last_variant != variant and bool(self._compiled)
        with self._lock:  # drop the least recently used shape first, so two copies of the weights never meet
            while len(self._compiled) >= self.max_shapes:
                (_, dropped), _ = self._compiled.popitem(last=False)
                log.info("OpenVINO: dropped the compiled model for %s (it reloads from the disk cache).",
                         dropped.label)
        gc.collect()
        start = time.perf_counter()
        model = self._core.read_model(str(self.ir_for(variant)))
        model.reshape({0: [shape.batch, shape.channels, shape.height, shape.width], 1: [],
                       2: [shape.batch, shape.tokens, self.unet.config.cross_attention_dim]})
        config = {"INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": "LATENCY",
                  "CACHE_DIR": str(folder / "compiled")}
        compiled = self._core.compile_model(model, "CPU", config)
        del model
        from_cache = self._loaded_from_cache(compiled)
        if variant is None:
            self._file_back_torch()
        self.page_out()
        with self._lock:
            self.compiles += 1
            self.cache_loads += int(from_cache)
            self.timings["compile_s"] = time.perf_counter() - start
            if switching:  # the plain and the fused model share one slot: a switch reloads from the disk cache
                self.timings["fewstep_switch_s"] = self.timings["compile_s"]
            self._compiled[(variant, shape)] = compiled
            self._last_variant = variant
        log.warning("OpenVINO: ready for %s (%s in %.1f s).", shape.label,
                    "loaded from the disk cache" if from_cache else "compiled", self.timings["compile_s"])
        return compiled

    def convert(self, variant: str | None = None) -> None:
        """Trace an fp32 copy of the UNet and save it as IR in the disk cache (once per model and fused LoRA)."""
        start = time.perf_counter()
        unet = self.unet
        config = unet.config
        quantise = self.int8 and variant is None  # a fused few-step model stays in float beside the int8 one
        calibration = self.calibration() if quantise else None  # recorded on PyTorch, before the fp32 copy
        # OpenVINO's CPU plugin compiles fp32 graphs, not bf16 ones; a fused LoRA changes the copy, never the shared UNet
        copy_needed = unet.dtype != torch.float32 or variant is not None
        source = copy.deepcopy(unet).to(torch.float32) if copy_needed else unet
        if variant is not None:
            fused.fuse_active(source)
        folder, ir = self.folder_for(variant), self.ir_for(variant)
        try:
            side = TRACE_LATENT * max(1, self.upsample_factor // 8)
            generator = torch.Generator().manual_seed(0)
            example = (torch.randn(2, config.in_channels, side, side, generator=generator), torch.tensor(500.0),
                       torch.randn(2, 77, config.cross_attention_dim, generator=generator))
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on shape checks baked in as constants
                model = self.ov.convert_model(_Traceable(source).eval(), example_input=example)
            if quantise:
                source = None  # free the fp32 copy before NNCF makes its own
                gc.collect()
                model, timings = int8_backend.quantize(model, calibration)
                self.timings.update(timings)
            folder.mkdir(parents=True, exist_ok=True)
            partial = folder / f"unet.partial-{os.getpid()}-{threading.get_ident()}.xml"
            self.ov.save_model(model, str(partial), compress_to_fp16=self.precision == "bf16" and not quantise)
            del model
            partial.with_suffix(".bin").replace(ir.with_suffix(".bin"))
            partial.replace(ir)
        finally:
            del source
            gc.collect()
            fastpath.trim_memory()
        with self._lock:
            self.conversions += 1
            self.timings["convert_s"] = time.perf_counter() - start
        log.warning("OpenVINO: converted the UNet in %.0f s (saved in %s).", self.timings["convert_s"], folder)

    # 3. one copy of the weights in memory
    def _file_back_torch(self) -> None:
        """Move PyTorch's UNet weights into a mapped file once OpenVINO holds a copy (paged in by fallbacks)."""
        with self._convert_lock:
            if self.torch_file_backed or getattr(self.unet, "_hf_peft_config_loaded", False):
                return
            try:
                self.torch_file_backed = paging.file_back(self.unet, self.torch_weights)
                if self.torch_file_backed:
                    mapped = self.unet.state_dict()
                    for module in self.sharers():
                        module.load_state_dict(mapped, strict=False, assign=True)
            except (OSError, RuntimeError) as exc:
                say_once(f"OpenVINO: PyTorch's UNet stays in memory beside OpenVINO's copy ({exc}).")
                return
        gc.collect()
        fastpath.trim_memory()
        if self.torch_file_backed:
            log.info("OpenVINO: PyTorch's UNet now reads its weights from %s when a fallback needs them.",
                     self.torch_weights)

    def page_out(self) -> int:
        """Hand back the pages of the mapped files in the disk cache (PyTorch's UNet after a fallback, the
        compile-cache blobs after loading); contents never change, they are read back when touched."""
        return paging.page_out(self.folder) + sum(
            paging.page_out(path) for path in self.folder.parent.glob(f"{self.folder.name}-*") if path.is_dir())

    def fewstep_switch_s(self) -> float | None:
        """Seconds the last switch between the plain and a fused few-step model took (a load from the disk cache)."""
        return self.timings.get("fewstep_switch_s")

    @staticmethod
    def _loaded_from_cache(compiled) -> bool:
        try:
            return bool(compiled.get_property("LOADED_FROM_CACHE"))
        except Exception:
            return False

    # 4. telling the user
    def status(self) -> str:
        """One sentence: which shapes are ready, and what is being prepared and for how long."""
        with self._lock:
            ready = [shape.label + (" (few-step LoRA fused)" if variant else "") for variant, shape in self._compiled]
            preparing = [shape.label for _, shape in self._threads]
        parts = []
        if ready:
            parts.append(f"OpenVINO{' int8' if self.int8 else ''} ready for {', '.join(ready)}.")
        if preparing:
            parts.append(f"OpenVINO is preparing {', '.join(preparing)} in the background (about {self.first_time_s} s "
                         "the first time); those images run on PyTorch until then.")
        if not parts:
            parts.append("OpenVINO prepares each new image size on first use (seconds from the disk cache, about "
                         f"{self.first_time_s} s the first time); PyTorch runs it meanwhile.")
        return " ".join(parts)

    def view(self, unet=None) -> "OpenVINOUNet":
        """A per-request UNet for a pipeline: OpenVINO where it can, PyTorch otherwise."""
        return OpenVINOUNet(unet if unet is not None else self.unet, self)


class OpenVINOUNet(BorrowedUNet):
    """A per-request stand-in for the shared UNet that runs it on OpenVINO when the shape is compiled.

    It owns no weights: the PyTorch UNet is borrowed for its config and for every call OpenVINO can't serve.
    The back end is chosen once per request and shape, so a request never mixes them. Make one per request.
    """

    def __init__(self, unet, runner: OpenVINOUNetRunner):
        super().__init__(unet)
        self.runner = runner
        self.ov_calls = 0  # counters, for tests and the benchmark
        self.torch_calls = 0
        self._chosen: dict[Shape, object] = {}
        self._fused: dict[Shape, bool] = {}  # whether the chosen model has the few-step LoRA fused in
        self._requests: dict[Shape, object] = {}

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor, timestep_cond=None,
                cross_attention_kwargs=None, added_cond_kwargs=None, return_dict: bool = True, **extra):
        # 1. can OpenVINO serve this call, and is this shape compiled (decided once per request and shape)?
        extras = {"timestep_cond": timestep_cond, "cross_attention_kwargs": cross_attention_kwargs,
                  "added_cond_kwargs": added_cond_kwargs, **extra}
        reason = self.runner.torch_reason(sample, timestep, encoder_hidden_states, extras)
        compiled = None
        if reason is not None:
            say_once(reason)
        else:
            shape = self.runner.shape_of(sample, encoder_hidden_states)
            if shape not in self._chosen:
                variant = self.runner.variant() if getattr(self.runner.unet, "_hf_peft_config_loaded", False) else None
                self._chosen[shape] = self.runner.ensure(shape, variant)
                self._fused[shape] = variant is not None
                if self._chosen[shape] is not None:
                    self.runner.page_out()  # what a fallback paged in since: once a request
            compiled = self._chosen[shape]
        # 2. PyTorch
        if compiled is None:
            note_used("torch")
            self.torch_calls += 1
            return self.unet(sample, timestep, encoder_hidden_states, timestep_cond=timestep_cond,
                             cross_attention_kwargs=cross_attention_kwargs, added_cond_kwargs=added_cond_kwargs,
                             return_dict=return_dict, **extra)
        # 3. OpenVINO
        note_used("openvino", fused=self._fused.get(shape, False))
        self.ov_calls += 1
        request = self._requests.get(shape)
        if request is None:
            request = self._requests[shape] = compiled.create_infer_request()
        t = timestep.flatten()[0] if torch.is_tensor(timestep) else timestep
        request.infer({0: sample.detach().float().contiguous().numpy(),
                       1: np.asarray(float(t), dtype=np.float32),
                       2: encoder_hidden_states.detach().float().contiguous().numpy()}, share_inputs=True)
        out = torch.from_numpy(request.get_output_tensor(0).data.copy()).to(sample.dtype)
        if not return_dict:
            return (out,)
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        return UNet2DConditionOutput(sample=out)
