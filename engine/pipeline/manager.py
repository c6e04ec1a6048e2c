"""One cached set of model weights serving every tab: tasks share tensors, each request gets its own scheduler."""
from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from engine import backends
from engine.backends import fast_choice, fastpath, fused
from engine.backends import int8 as int8_backend
from engine.backends import openvino as ov_backend
from engine.control.models import ControlNetCache
from engine.faces import identity
from engine.jobs.gate import Gate
from engine.loaders import fewstep, lora
from engine.loaders.embeddings import EmbeddingStore
from engine.loaders.switch import NOTHING, AdapterSwitch
from engine.pipeline import tiny_vae
from engine.pipeline.devices import dtype_name, pick_device, pick_dtype
from engine.pipeline.models import (
    DEFAULT_HUB_MODEL,
    TINY,
    WEIGHTS_DIR,
    ModelDefaults,
    ModelSource,
    default_model,
    hub_cached,
    load_pipeline,
    model_choices,
    model_defaults,
    resolve_model,
)
from engine.pipeline.schedulers import make_scheduler
from engine.text.limits import whole_number
from engine.text.prompts import MAX_TOKENS, check_characters, check_length, encode_prompt_pair, prompt_chunks

TASKS = ("txt2img", "img2img", "inpaint")
log = logging.getLogger("diffusion_studio")
EMBED_CACHE_SIZE = 32
MAX_PROMPT_TOKENS_CAP = 100_000  # the highest --max-prompt-tokens: far past any real prompt
LORA_FILES_KEPT = 4  # LoRA files kept read in memory (a few MB to a few hundred MB each)


@dataclass
class RuntimeOptions:
    """How the weights are placed in memory; set once from the command line."""

    device: str = "auto"  # auto, cpu, cuda or mps
    dtype: str = "auto"  # auto picks fp16 on GPUs, bf16 on CPUs with bf16 instructions, else fp32
    cpu_offload: bool = False  # keep idle components in RAM (CUDA only)
    vae_tiling: bool = False  # decode large images in tiles to save memory
    attention_slicing: bool = False  # compute attention in slices to save memory
    concurrency: int = 1  # generations running at once (UI and REST together)
    queue_size: int = 20  # requests allowed to wait beyond those; more get "busy"
    compile_unet: bool = False  # torch.compile the UNet: ~1.18x a step on CPU after a minute's warm-up per size
    backend: str = "auto"  # auto, torch or openvino: where the UNet runs (engine.backends)
    openvino_background: bool = True  # convert for a new size in the background while PyTorch serves it
    max_prompt_tokens: int = MAX_TOKENS  # the longest prompt (and negative prompt) accepted, in CLIP tokens
    precision: str = "auto"  # auto, bf16 or int8: int8 quantises OpenVINO's UNet with NNCF (engine.backends.int8)


def task_class(task: str):
    """The diffusers pipeline class behind a tab's task."""
    import diffusers

    classes = {"txt2img": diffusers.StableDiffusionPipeline,
               "img2img": diffusers.StableDiffusionImg2ImgPipeline,
               "inpaint": diffusers.StableDiffusionInpaintPipeline}
    try:
        return classes[task]
    except KeyError:
        raise ValueError(f"Unknown task {task!r}; use one of {', '.join(TASKS)}.") from None


class PipelineManager:
    """Loads a model lazily, once, and hands out task pipelines that share its weights."""

    def __init__(self, model: str | None = None, options: RuntimeOptions | None = None,
                 weights_dir: Path = WEIGHTS_DIR, lora_dir: Path | None = None, embeddings_dir: Path | None = None):
        self.options = options or RuntimeOptions()
        backends.check_backend(self.options.backend)
        if int8_backend.resolve(self.options.precision) == "int8" and \
                backends.check_backend(self.options.backend) == "torch":
            raise ValueError("--precision int8 runs on the OpenVINO back end; use --backend openvino or auto.")
        whole_number(self.options.max_prompt_tokens, "--max-prompt-tokens", 1, MAX_PROMPT_TOKENS_CAP)
        self.weights_dir = weights_dir
        self.loras = lora.LoraFolder(lora_dir or Path(weights_dir) / "Lora")
        self.controlnets = ControlNetCache(Path(weights_dir) / "ControlNet")
        self.embeddings = EmbeddingStore(embeddings_dir or Path(weights_dir) / "embeddings")
        self._switch = AdapterSwitch(self._apply_loras)
        self._text_lock = threading.RLock()  # tokenizer and text encoder: embeddings load while nobody encodes
        self.device = pick_device(self.options.device)
        self.dtype = pick_dtype(self.device, self.options.dtype)
        self.model_name = model or default_model(weights_dir)
        self.source: ModelSource | None = None
        self.load_error: str | None = None
        self._base = None
        self._adapter = None  # the identity adapter, loaded on first use
        self._tiny_vae = None  # TAESD (engine.pipeline.tiny_vae), loaded on first use; kept across models
        self._openvino: ov_backend.OpenVINOUNetRunner | None = None  # set when the OpenVINO back end is chosen
        self.backend_choice: backends.Choice | None = None  # made when the weights load
        self._embeds: OrderedDict = OrderedDict()
        self._lora_files: OrderedDict = OrderedDict()
        self._lock = threading.RLock()
        self.threads = fastpath.DEFAULT_THREADS  # fitted to the model's size when it loads (engine.backends.fastpath)
        self.gate = Gate(self.options.concurrency, self.options.queue_size)
        self.runner = None  # where jobs run: None here, or a Ray Serve deployment (engine.jobs.runner)
        self.replica: str | None = None  # the Ray Serve replica this manager serves in, named in PNG info

    # 1. choosing and loading
    def choices(self) -> list[str]:
        """Model menu entries, with the current choice included even if it is a custom path."""
        entries = model_choices(self.weights_dir)
        return entries if self.model_name in entries else [self.model_name, *entries]

    def defaults(self) -> ModelDefaults:
        """The current model's default size and steps (128 px for the tiny model, 512 px otherwise)."""
        return model_defaults(self.model_name)

    def select(self, name: str) -> ModelSource:
        """Switch models; the old weights are freed now and the new ones load on first use."""
        source = resolve_model(name, self.weights_dir)
        with self._lock:
            if name != self.model_name:
                self.unload()
                self.model_name = name
                self.load_error = None
        return source

    def base(self):
        """The loaded text-to-image pipeline, loading it on first use."""
        with self._lock:
            if self._base is None:
                try:
                    self.source = resolve_model(self.model_name, self.weights_dir)
                    self._base = self._place(load_pipeline(self.source, self.dtype))
                    self.load_error = None
                except ValueError as exc:
                    self.load_error = str(exc)
                    raise
            return self._base

    def preload(self) -> threading.Thread:
        """Load the model in the background, so the server answers at once and the first request doesn't wait.

        A model that can't be loaded is reported in one log line and in `status()`; the next request says why.
        """
        def load():
            try:
                self.base()
            except ValueError as exc:
                log.warning("The model %s could not be loaded: %s", self.model_name, exc)

        thread = threading.Thread(target=load, name="model-preload", daemon=True)
        thread.start()
        return thread

    def unload(self) -> None:
        """Drop the weights so switching models never holds two in memory."""
        with self._lock:
            self._base, self.source, self._adapter = None, None, None
            self._openvino, self.backend_choice = None, None
            self._embeds.clear()
            self._lora_files.clear()
            self._switch.reset()
            self.controlnets.clear()
            self.embeddings.reset()
        gc.collect()
        fastpath.trim_memory()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _place(self, pipe):
        """Move to the device and apply the memory and speed options."""
        pipe.to(self.device)  # loaders already produced self.dtype
        if self.device == "cpu":
            pipe.unet.to(memory_format=torch.channels_last)
            pipe.vae.to(memory_format=torch.channels_last)
        if self.options.vae_tiling:
            pipe.vae.enable_tiling()
        if self.options.attention_slicing:
            pipe.enable_attention_slicing()
        if self.options.cpu_offload and self.device.startswith("cuda"):
            pipe.enable_model_cpu_offload()
        pipe.set_progress_bar_config(disable=True)
        if self.device == "cpu":
            self.threads = fastpath.threads_for(pipe.unet)
            fastpath.use_threads(self.threads)
            fastpath.tune_allocator()  # keep big buffers for reuse: ~20% faster images (BENCHMARKS.md)
            fastpath.trim_memory()  # and give the loading's temporary buffers back
        self._choose_backend(pipe)
        if self.options.compile_unet and self._openvino is None:
            fastpath.compile_unet(pipe)
        return pipe

    def _choose_backend(self, pipe) -> None:
        """Pick torch or OpenVINO for this model (engine.backends) and say why in the log."""
        parameters = sum(p.numel() for p in pipe.unet.parameters())
        choice = backends.choose_backend(self.options.backend, self.device, parameters)
        self._openvino = None
        int8 = int8_backend.resolve(self.options.precision) == "int8"
        if int8 and choice.name != "openvino":
            backends.say_once(f"--precision int8 is for the OpenVINO back end; this model runs bf16/fp32 ({choice.reason})")
        if choice.name == "openvino":
            components = pipe.components
            try:
                self._openvino = ov_backend.OpenVINOUNetRunner(
                    pipe.unet, precision="bf16" if self.dtype == torch.bfloat16 else "f32",
                    background=self.options.openvino_background,
                    sharers=lambda: [self._adapter.unet] if self._adapter is not None else [],
                    int8=int8, calibration=lambda: int8_backend.record_unet_inputs(components),
                    variant=self.fused_variant)
            except ValueError as exc:
                choice = backends.Choice("torch", f"PyTorch: {exc}")
        self.backend_choice = choice
        backends.log.info("Back end: %s", choice.reason)

    # 2. serving requests
    def pipeline(self, task: str, sampler: str, fast: bool = False, identity: bool = False,
                 fast_decode: bool = False):
        """A task pipeline over the shared weights with its own fresh scheduler, for one request.

        `fast` gives it its own UNet wrapper that reuses deep features between steps (engine.backends.fastpath).
        `identity` runs it on the identity adapter's UNet (same weights) with its image encoder.
        `fast_decode` decodes its images with TAESD (engine.pipeline.tiny_vae); ValueError when TAESD is absent.
        """
        base = self.base()
        if fast and self.backend == "openvino":  # feature reuse on PyTorch is slower than OpenVINO's plain run
            raise ValueError(fast_choice.ON_OPENVINO)
        if self.device == "cpu":
            fastpath.use_threads(self.threads)
        cls = task_class(task)
        parts = {**base.components, "scheduler": make_scheduler(sampler, base.scheduler.config)}
        if identity:
            adapter = self.identity_adapter()
            parts.update(unet=adapter.unet, image_encoder=adapter.image_encoder,
                         feature_extractor=adapter.feature_extractor)
        if fast:
            parts["unet"] = fastpath.FeatureCacheUNet(parts["unet"])
        if fast_decode:
            parts["vae"] = tiny_vae.FastDecodeVAE(base.vae, self.taesd())
        ov_backend.note_used("torch")
        if self._openvino is not None:  # with a LoRA loaded its view runs PyTorch (OpenVINOUNetRunner.torch_reason)
            if fast or identity:
                backends.say_once("Fast and Keep identity requests run on PyTorch: they change the UNet's inner "
                                  "layers, which OpenVINO's compiled model does not expose.")
            else:
                parts["unet"] = self._openvino.view(parts["unet"])
        pipe = cls(**parts, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def taesd(self):
        """TAESD, loaded once on first use; ValueError saying where to put it when it is absent."""
        with self._lock:
            if self._tiny_vae is None:
                location = tiny_vae.find_taesd(self.weights_dir)
                if location is None:
                    raise ValueError(tiny_vae.MISSING)
                self._tiny_vae = tiny_vae.load_taesd(location, self.device, self.dtype)
                log.info("TAESD loaded from %s: live previews and Fast decode use it.", location)
            return self._tiny_vae

    def taesd_available(self) -> bool:
        """Whether TAESD is loaded or its files are present (weights/taesd or the Hugging Face cache); loads nothing."""
        return self._tiny_vae is not None or tiny_vae.find_taesd(self.weights_dir) is not None

    def step_preview(self):
        """The live preview maker: TAESD's decode when present, else None (the cheap latent approximation)."""
        if not self.taesd_available():
            return None
        try:
            return tiny_vae.previewer(self.taesd())
        except ValueError as exc:
            log.warning("Live previews use the latent approximation: %s", exc)
            return None

    def identity_adapter(self) -> identity.IdentityAdapter:
        """The Keep identity adapter (IP-Adapter full-face), loaded once into a UNet sharing the model's weights.

        Raises ValueError with how to get it when it is not in weights/ or the Hugging Face cache.
        """
        with self._lock:
            if self._adapter is None:
                base = self.base()
                source = identity.find_adapter(self.weights_dir)
                if source is None:
                    raise ValueError(identity.MISSING)
                self._adapter = identity.load_adapter(base, source)
            return self._adapter

    def identity_available(self) -> bool:
        """Tell whether Keep identity can be offered (the adapter's files are present); loads nothing."""
        return self._adapter is not None or identity.find_adapter(self.weights_dir) is not None

    def identity_scale(self, pipe, scale: float):
        """Context manager: the adapter at `scale` for one call of `pipe` (a pipeline made with identity=True)."""
        return identity.scaled(self.identity_adapter(), pipe, scale)

    @contextmanager
    def lora_scope(self, *prompts: str, supported: str | None = None):
        """Context manager: the LoRAs tagged in a job's prompts are active for the whole job, UNet and text encoder.

        Jobs with the same LoRAs (or none) run side by side; a job with others waits until the model is free, so
        no request ever sees another's LoRAs. Afterwards the next job with other LoRAs (or none) gets the plain
        model back, with no LoRA layers left in it. `supported`, when given, names a job that can't take LoRAs:
        a tag then raises ValueError saying so.
        """
        if self._switch.held() is not None:
            yield self._switch.held()
            return
        uses = [u for u in lora.uses_in(*prompts) if u.weight != 0]
        if supported is not None and uses:
            raise ValueError(f"{supported} can't use LoRAs yet; remove the <lora:...> tag from the prompt.")
        for use in lora.uses_in(*prompts):
            self.loras.path(use.name)  # unknown names fail now, even at weight 0
        prepared = [(use, self._lora_tensors(self.loras.path(use.name))) for use in uses]
        key = tuple((use.name, use.weight, str(self.loras.path(use.name))) for use in uses) or NOTHING
        with self._switch.use(key, prepared) as held:
            yield held

    def _lora_tensors(self, path: Path) -> dict:
        """A LoRA file's checked tensors, kept for the few most recent files so repeated requests skip the read."""
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._lora_files:
                self._lora_files.move_to_end(key)
                return self._lora_files[key]
        base = self.base()
        text_width = base.text_encoder.get_input_embeddings().weight.shape[-1]
        tensors = lora.read_lora(path, base.unet.config, text_width)
        with self._lock:
            self._lora_files[key] = tensors
            while len(self._lora_files) > LORA_FILES_KEPT:
                self._lora_files.popitem(last=False)
        return tensors

    def _apply_loras(self, wanted, prepared) -> None:
        """Switch the shared model to these LoRAs (run by `lora_scope` when no job is using the model)."""
        base = self.base()
        with self._text_lock:
            if self._switch.current != NOTHING:
                lora.unload(base)
            if wanted == NOTHING:
                return
            try:
                adapters = []
                for i, (use, tensors) in enumerate(prepared):
                    adapters.append(f"lora{i}")
                    lora.load_adapter(base, tensors, adapters[-1], use.name)
                lora.set_weights(base, adapters, [use.weight for use, _ in prepared])
                if self.device == "cpu":
                    base.unet.to(memory_format=torch.channels_last)  # the new conv layers too: ~8% a step
            except BaseException:
                lora.unload(base)
                raise
        names = ", ".join(f"{use.name} ({use.weight:g})" for use, _ in prepared)
        log.info("LoRA: %s active; requests with other LoRAs wait until these finish.", names)

    def fused_variant(self) -> str | None:
        """The OpenVINO cache name of the active LoRAs fused in: the few-step LoRA alone at weight 1, else None."""
        current = self._switch.current
        if current == NOTHING or len(current) != 1:
            return None
        name, weight, path = current[0]
        if weight != 1 or fewstep.recognise(name) is None:
            return None
        return fused.variant_name(lora.short_hash(Path(path)))

    def lora_active(self) -> bool:
        """Whether the shared model carries LoRA layers now (such requests run on PyTorch)."""
        return self._switch.current != NOTHING

    def prompt_text(self, text: str) -> str:
        """What CLIP reads for a prompt: LoRA tags removed, embedding words expanded to their tokens."""
        text = lora.split_tags(text)[0]
        used = self.embeddings.used_in(text)
        if used:
            with self._text_lock:
                if self.embeddings.ensure(self.base(), used):
                    with self._lock:
                        self._embeds.clear()  # new tokens may change how earlier prompts tokenize
            text = self.embeddings.expand(text)
        return text

    def check_prompt(self, text: str, label: str = "The prompt") -> None:
        """Refuse a prompt over the cap (--max-prompt-tokens), counted in the tokens CLIP will read, with one sentence.

        `label` names the prompt in the sentence ("The negative prompt", "Prompt 2"). Characters are counted first,
        so a megabyte of text never reaches the tokenizer or the LoRA and embedding parsers.
        """
        cap = self.options.max_prompt_tokens
        check_characters(len(text or ""), cap, label)
        check_length(self.base().tokenizer, self.prompt_text(text or ""), cap, label)

    def prompt_chunks(self, *texts: str) -> int:
        """How many 77-token windows the longest of these prompts needs, as CLIP will read them."""
        return prompt_chunks(self.base().tokenizer, *(self.prompt_text(t) for t in texts))

    def network_fields(self, prompt: str, negative_prompt: str = "") -> dict[str, str]:
        """A1111's `Lora hashes` and `TI hashes` PNG-info fields for the LoRAs and embeddings a prompt uses."""
        fields = {}
        uses = lora.uses_in(prompt, negative_prompt)
        if uses:
            fields["Lora hashes"] = ", ".join(f"{u.name}: {self.loras.hash(u.name)}" for u in uses)
        embeds = self.embeddings.hashes(lora.split_tags(prompt)[0], lora.split_tags(negative_prompt)[0])
        if embeds:
            fields["TI hashes"] = ", ".join(f"{name}: {value}" for name, value in embeds.items())
        return fields

    def encode(self, prompt: str, negative_prompt: str = "", min_chunks: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt embeddings, cached so batches and video frames encode each prompt once.

        LoRA tags are taken out and embedding words expanded; outside a job's `lora_scope` the prompt's own
        LoRAs are applied for the encoding. The cache knows which LoRAs the text encoder carried.
        """
        cap = self.options.max_prompt_tokens
        check_characters(len(prompt or ""), cap, "The prompt")
        check_characters(len(negative_prompt or ""), cap, "The negative prompt")
        with self.lora_scope(prompt, negative_prompt) as active:
            text, negative = self.prompt_text(prompt), self.prompt_text(negative_prompt)
            key = (text, negative, min_chunks, active)
            with self._lock:
                if key in self._embeds:
                    self._embeds.move_to_end(key)
                    return self._embeds[key]
            base = self.base()
            check_length(base.tokenizer, text, cap, "The prompt")  # every job's prompts pass here, whatever checked them
            check_length(base.tokenizer, negative, cap, "The negative prompt")
            with self._text_lock:
                embeds = encode_prompt_pair(base.tokenizer, base.text_encoder, text, negative, self.dtype, min_chunks)
            with self._lock:
                self._embeds[key] = embeds
                while len(self._embeds) > EMBED_CACHE_SIZE:
                    self._embeds.popitem(last=False)
            return embeds

    # 3. telling the user where things stand
    @property
    def backend(self) -> str:
        """The back end this model runs on ("torch" or "openvino"); decided when the weights load."""
        return self.backend_choice.name if self.backend_choice else "torch"

    def backend_used(self) -> str:
        """The back end that ran the latest request's UNet in this thread (for PNG info)."""
        return ov_backend.last_used(self.backend)

    def precision_used(self) -> str:
        """"int8" when the last UNet call in this thread ran OpenVINO's int8 model, else "default" (a few-step
        LoRA fused into its own model is not quantised)."""
        int8 = (self._openvino is not None and self._openvino.int8 and self.backend_used() == "openvino"
                and not ov_backend.last_fused())
        return "int8" if int8 else "default"

    def openvino(self) -> ov_backend.OpenVINOUNetRunner | None:
        """The OpenVINO side of the loaded model, or None when it runs on PyTorch."""
        return self._openvino

    @property
    def model_label(self) -> str:
        """The short model name for PNG info."""
        source = self.source or resolve_model(self.model_name, self.weights_dir)
        return source.label

    def status(self) -> str:
        """One or two sentences on the current model, including why it can't load and the fix."""
        where = f"{self.device}, {dtype_name(self.dtype)}"
        if self.load_error:
            return f"⚠️ {self.load_error}"
        if self.runner is not None:
            return (f"Model: {self.model_name}, run by Ray Serve replicas (each holds its own copy of the weights; "
                    "this process holds none).")
        if self.model_name == TINY:
            return (f"Model: tiny ({where}). The tiny model has random weights: it makes coloured noise, "
                    "not pictures. It is for tests and offline demos.")
        state = "loaded" if self._base is not None else "loads on first use"
        note = ""
        if self.model_name == DEFAULT_HUB_MODEL and self._base is None and not hub_cached(DEFAULT_HUB_MODEL):
            note = (" It is not downloaded yet: the first run fetches about 2 GB from the Hugging Face hub. "
                    "Without network, put a .safetensors checkpoint in weights/ or choose tiny.")
        if self._openvino is not None:
            note += f" {self._openvino.status()}"
        return f"Model: {self.model_name} ({state}, {where}).{note}"

