"""Prior preservation: class images made by the loaded model itself, cached per model, class and size, reused."""
from __future__ import annotations

import re
from pathlib import Path

import torch
from PIL import Image

CLASS_SEED = 4321


def class_prompt(class_word: str) -> str:
    return f"photo of a {class_word}"


def class_folder(root: Path, model: str, class_word: str, size: int) -> Path:
    """root/<model>/<class>-<size>/: one cache per model, class word and size."""
    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "x"

    return root / safe(model) / f"{safe(class_word)}-{size}"


def class_images(base, unet, text_encoder, folder: Path, class_word: str, count: int, size: int, steps: int,
                 on_image=None) -> list[Image.Image]:
    """`count` class images, the ones already in `folder` reused and the rest made now (seed CLASS_SEED + i).

    `unet` and `text_encoder` are the plain twins (no LoRA yet), so the images are the model's own idea of the class.
    """
    from engine.train.samples import render

    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(count):
        path = folder / f"{i:04d}.png"
        if path.is_file():
            images.append(Image.open(path).convert("RGB"))
            continue
        with torch.no_grad():
            image = render(base, unet, text_encoder, [class_prompt(class_word)], size, steps, CLASS_SEED + i)[0]
        temporary = path.with_name(f".{path.name}.tmp.png")
        image.save(temporary)
        temporary.replace(path)
        images.append(image)
        if on_image:
            on_image(i + 1, count)
    return images
