"""Diffusion Studio's Gradio-free core: models, schedulers, generation, video and the CLI."""
