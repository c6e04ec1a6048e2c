"""Diffusion Studio's Gradio-free core: models, schedulers, generation, video and the CLI."""
from engine.notices import quiet_torchvision_fallback

quiet_torchvision_fallback()  # before any engine module imports diffusers, which imports transformers' processors
