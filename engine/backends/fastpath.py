"""The CPU fast path: what measurably speeds up Stable Diffusion here, and the per-request "fast" toggle.

Each piece was measured with `python bench/run.py` (figures in BENCHMARKS.md); only the ones that won stayed:

- `tune_allocator()`: glibc's malloc hands every large activation buffer back to the kernel when it is freed and
  takes fresh zeroed pages on the next step. Keeping those buffers in the heap made a 512x512 UNet step 1.15x
  and a short image 1.31x faster, close to preloading tcmalloc (1.17x, 1.54x) and without a launcher; jemalloc
  was slower (0.84x). It changes process-wide settings, so call it once the weights are loaded, never at import;
  `trim_memory()` after a load or unload gives the loading's temporary buffers back to the OS.
- `threads_for()` / `use_threads()`: a model as small as the test model (`tiny`) does so little work per operation that two
  threads spend their time waiting for each other; on 2 busy cores a 128-px image took 0.5-9 s with two
  threads and a steady 0.3-0.9 s with one. Small models run on one thread, full-size ones on all.
- `compile_unet()`: `torch.compile` of the UNet, behind a flag: 1.18x per step once warm, but the first call at
  each new image size or batch waits about a minute for the compiler, so it stays off by default.
- `FeatureCacheUNet` / `apply_fast()`: the "fast" toggle, off by default. DeepCache-style feature reuse: every
  `interval`-th step runs the whole UNet and keeps what enters the last layer of its last up block; the steps in
  between run only the input convolution and that shallowest layer (about 10% of a full step), reusing the kept
  deep features. 2.3x faster at 512x512 and 20 steps; the final latent moves 5.5% (random weights).

The toggle is per request and thread-safe: the wrapper owns no weights (the shared UNet is borrowed, never
changed) and keeps its cache on itself, so each request gets its own wrapper and nothing leaks between
requests that share one UNet.
"""
from __future__ import annotations

import ctypes
import inspect
import sys
import threading

import torch

from engine.backends.standin import BorrowedUNet

FAST_INTERVAL = 3  # fast toggle: a full UNet pass every 3rd step, the shallow branch alone in between
ALLOCATOR_TRIM_BYTES = 1 << 30  # glibc keeps up to this much freed memory at the heap's top instead of returning it
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameter numbers from glibc's malloc.h
SMALL_MODEL_PARAMETERS = 20_000_000  # UNets below this run on one thread (the tiny model has ~0.5M; SD 1.5 860M)
_allocator_lock = threading.Lock()
_allocator_tuned = False
DEFAULT_THREADS = torch.get_num_threads()  # what torch chose for this machine, before any change


# 1. process settings
def tune_allocator() -> bool:
    """Make glibc keep freed large buffers for reuse instead of unmapping them; True if the setting is in force.

    A no-op (False) off Linux/glibc, or when another allocator such as tcmalloc was preloaded. Idempotent.
    """
    global _allocator_tuned
    with _allocator_lock:
        if _allocator_tuned:
            return True
        if not sys.platform.startswith("linux"):
            return False
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.gnu_get_libc_version  # glibc only; musl has no mallopt tuning of this kind
        except (OSError, AttributeError):
            return False
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, ALLOCATOR_TRIM_BYTES) == 1
        _allocator_tuned = ok
        return ok


def trim_memory() -> bool:
    """Give freed heap memory back to the OS (after loading or unloading weights); True where glibc did it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def threads_for(unet) -> int:
    """One thread for a small model, every core for a full-size one."""
    small = sum(p.numel() for p in unet.parameters()) < SMALL_MODEL_PARAMETERS
    return 1 if small else DEFAULT_THREADS


def use_threads(count: int) -> None:
    """Set torch's thread count in the thread about to run the model (torch keeps it per thread; new threads
    inherit the last value set)."""
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


def compile_unet(pipe):
    """Compile the shared UNet in place with torch.compile (inductor); the first call per image size is slow.

    Off by default: it helps after a warm-up of about a minute per new size and holds extra memory.
    Returns the pipeline.
    """
    pipe.unet.compile()
    return pipe


# 2. the fast toggle
def supports_feature_cache(unet) -> bool:
    """Whether a UNet has the SD 1.5 layout the feature cache understands; others always run in full."""
    config = unet.config
    up_blocks = getattr(unet, "up_blocks", None)
    if not up_blocks:
        return False
    last = up_blocks[-1]
    return (getattr(last, "attentions", None) is not None and len(last.resnets) >= 2
            and len(last.attentions) == len(last.resnets) and last.upsamplers is None
            and getattr(last, "s1", None) is None  # FreeU changes what the skip connections carry
            and config.class_embed_type is None and config.addition_embed_type is None
            and unet.encoder_hid_proj is None and not config.center_input_sample)


class FeatureCacheUNet(BorrowedUNet):
    """A per-request view of a shared UNet that reuses its deep features between full steps (DeepCache).

    Args:
        unet: the shared `UNet2DConditionModel`; it is called, never modified, and its weights are not copied.
        interval (`int`, *optional*, defaults to `FAST_INTERVAL`): run the whole UNet every `interval`-th call
            of a run, the shallow branch alone on the others; 1 means always in full.

    A run starts again (full step, empty cache) when the timestep goes up or the input's shape changes, so one
    wrapper may serve several pipeline calls one after another, but never two at once: make one per request.
    """

    def __init__(self, unet, interval: int = FAST_INTERVAL):
        if int(interval) < 1:
            raise ValueError(f"The feature-cache interval must be a whole number of at least 1; got {interval}.")
        super().__init__(unet)
        self.interval = int(interval)
        self.supported = supports_feature_cache(unet)
        self.full_calls = 0  # counters, for tests and the benchmark
        self.partial_calls = 0
        self._cached: torch.Tensor | None = None
        self._calls = 0
        self._last_t: float | None = None
        self._key: tuple | None = None

    def reset(self) -> None:
        """Forget the cached features; the next call runs in full."""
        self._cached, self._calls, self._last_t, self._key = None, 0, None, None

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor, timestep_cond=None,
                cross_attention_kwargs=None, added_cond_kwargs=None, return_dict: bool = True, **extra):
        # 1. anything this wrapper does not model (ControlNet residuals, masks, other UNet kinds) runs in full
        if not self.supported or added_cond_kwargs or any(value is not None for value in extra.values()):
            self.reset()
            self.full_calls += 1
            return self.unet(sample, timestep, encoder_hidden_states, timestep_cond=timestep_cond,
                             cross_attention_kwargs=cross_attention_kwargs, added_cond_kwargs=added_cond_kwargs,
                             return_dict=return_dict, **extra)
        # 2. a new run starts high and counts down; a new shape is a new run too
        t = float(timestep.flatten()[0]) if torch.is_tensor(timestep) else float(timestep)
        key = (tuple(sample.shape), sample.dtype, sample.device)
        if self._last_t is None or t > self._last_t or key != self._key:
            self._cached, self._calls = None, 0
        self._last_t, self._key = t, key
        full = self._cached is None or self._calls % self.interval == 0
        self._calls += 1
        # 3. run the whole UNet or the shallow branch only
        emb = self._embedding(sample, timestep, timestep_cond)
        if full:
            self.full_calls += 1
            out = self._full(sample, emb, encoder_hidden_states, cross_attention_kwargs)
        else:
            self.partial_calls += 1
            out = self._partial(sample, emb, encoder_hidden_states, cross_attention_kwargs)
        if not return_dict:
            return (out,)
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        return UNet2DConditionOutput(sample=out)

    def _embedding(self, sample, timestep, timestep_cond):
        unet = self.unet
        emb = unet.time_embedding(unet.get_time_embed(sample=sample, timestep=timestep), timestep_cond)
        return unet.time_embed_act(emb) if unet.time_embed_act is not None else emb

    def _full(self, sample, emb, context, attn_kwargs):
        """UNet2DConditionModel.forward for the SD 1.5 layout, keeping what enters the last layer."""
        unet = self.unet
        hidden = unet.conv_in(sample)
        skips = (hidden,)
        for block in unet.down_blocks:
            if getattr(block, "has_cross_attention", False):
                hidden, res = block(hidden_states=hidden, temb=emb, encoder_hidden_states=context,
                                    cross_attention_kwargs=attn_kwargs)
            else:
                hidden, res = block(hidden_states=hidden, temb=emb)
            skips += res
        if unet.mid_block is not None:
            if getattr(unet.mid_block, "has_cross_attention", False):
                hidden = unet.mid_block(hidden, emb, encoder_hidden_states=context, cross_attention_kwargs=attn_kwargs)
            else:
                hidden = unet.mid_block(hidden, emb)
        odd_size = any(dim % 2**unet.num_upsamplers for dim in sample.shape[-2:])
        for block in unet.up_blocks[:-1]:
            res, skips = skips[-len(block.resnets):], skips[:-len(block.resnets)]
            size = skips[-1].shape[2:] if odd_size else None
            if getattr(block, "has_cross_attention", False):
                hidden = block(hidden_states=hidden, temb=emb, res_hidden_states_tuple=res,
                               encoder_hidden_states=context, cross_attention_kwargs=attn_kwargs, upsample_size=size)
            else:
                hidden = block(hidden_states=hidden, temb=emb, res_hidden_states_tuple=res, upsample_size=size)
        last = unet.up_blocks[-1]
        for index, (resnet, attn) in enumerate(zip(last.resnets, last.attentions)):
            if index == len(last.resnets) - 1:
                self._cached = hidden
            hidden = resnet(torch.cat([hidden, skips[-1]], dim=1), emb)
            hidden = attn(hidden, encoder_hidden_states=context, cross_attention_kwargs=attn_kwargs,
                          return_dict=False)[0]
            skips = skips[:-1]
        return self._head(hidden)

    def _partial(self, sample, emb, context, attn_kwargs):
        """The shallow branch: input convolution, the last up block's last layer on the cached features, output."""
        unet = self.unet
        last = unet.up_blocks[-1]
        hidden = last.resnets[-1](torch.cat([self._cached, unet.conv_in(sample)], dim=1), emb)
        hidden = last.attentions[-1](hidden, encoder_hidden_states=context, cross_attention_kwargs=attn_kwargs,
                                     return_dict=False)[0]
        return self._head(hidden)

    def _head(self, hidden):
        unet = self.unet
        if unet.conv_norm_out is not None:
            hidden = unet.conv_act(unet.conv_norm_out(hidden))
        return unet.conv_out(hidden)


def apply_fast(pipe, enabled: bool = True, interval: int = FAST_INTERVAL):
    """The pipeline to use for one request: `pipe` itself when off, else a copy whose UNet reuses deep features.

    The copy shares every weight and the scheduler with `pipe`; only the UNet wrapper (and its cache) is new,
    so pass a per-request pipeline (`PipelineManager.pipeline`) and never keep the result beyond the request.
    """
    if not enabled:
        return pipe
    parts = {**pipe.components, "unet": FeatureCacheUNet(pipe.unet, interval)}
    if "requires_safety_checker" in inspect.signature(type(pipe).__init__).parameters:
        parts["requires_safety_checker"] = False
    fast = type(pipe)(**parts)
    fast.set_progress_bar_config(**getattr(pipe, "_progress_bar_config", {}))
    return fast


def is_fast(pipe) -> bool:
    """Whether a pipeline runs with the fast toggle on."""
    return isinstance(pipe.unet, FeatureCacheUNet)
