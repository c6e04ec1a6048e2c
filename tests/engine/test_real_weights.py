"""Checks that only mean something with a real SD 1.5 checkpoint: set STUDIO_REAL_WEIGHTS to its path or hub id."""
import os

import pytest

pytestmark = pytest.mark.weights


@pytest.fixture(scope="module")
def real_manager():
    from engine.pipeline.manager import PipelineManager

    return PipelineManager(os.environ["STUDIO_REAL_WEIGHTS"])


def test_aging_keeps_the_person_recognisable(real_manager, astronaut, tmp_path):
    from engine.faces.aging import AgingRequest, aging_timelapse

    pytest.importorskip("dlib")
    result = aging_timelapse(real_manager, AgingRequest(ages=[30, 70], subject="woman", seed=1,
                                                        transition_frames=0), astronaut, tmp_path)
    assert result.identity is not None and max(result.identity) <= 0.6, result.identity


def test_gender_swap_changes_the_face_but_keeps_the_person_close(real_manager, astronaut):
    from engine.faces.gender import GenderRequest, gender_swap

    pytest.importorskip("dlib")
    variant = gender_swap(real_manager, GenderRequest(direction="man", variants=1, seed=1), astronaut).variants[0]
    assert variant.identity is not None and 0.05 < variant.identity <= 0.75


INT8_CLIP_DROP = 0.02  # most CLIP score int8 may lose against bf16 on the same seeds
INT8_PIXEL_MEAN = 0.08  # else: mean absolute pixel difference (0-1) between the int8 and bf16 images


def _clip_scores(images, prompts):
    """CLIP image-text similarity per image, with a CLIP model already on disk; None where there is none."""
    try:
        from transformers import CLIPModel, CLIPProcessor

        name = os.environ.get("STUDIO_CLIP_MODEL", "openai/clip-vit-base-patch32")
        model = CLIPModel.from_pretrained(name, local_files_only=True)
        processor = CLIPProcessor.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError):
        return None
    import torch

    with torch.no_grad():
        inputs = processor(text=prompts, images=images, return_tensors="pt", padding=True)
        out = model(**inputs)
    image = out.image_embeds / out.image_embeds.norm(dim=-1, keepdim=True)
    text = out.text_embeds / out.text_embeds.norm(dim=-1, keepdim=True)
    return (image * text).sum(-1).tolist()


def test_int8_keeps_images_close_to_bf16_on_real_weights(tmp_path, monkeypatch):
    import numpy as np

    from engine.image.generate import text_to_image
    from engine.image.request import ImageRequest
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    monkeypatch.setenv("STUDIO_OPENVINO_CACHE", str(tmp_path))
    prompts = ["a lighthouse on a cliff at sunset, photograph", "a bowl of fruit on a table, oil painting"]
    images = {}
    for precision in ("bf16", "int8"):
        manager = PipelineManager(os.environ["STUDIO_REAL_WEIGHTS"],
                                  RuntimeOptions(device="cpu", backend="openvino", openvino_background=False,
                                                 precision=precision))
        images[precision] = [text_to_image(manager, ImageRequest(prompt=p, seed=7, num_inference_steps=20))
                             .images[0] for p in prompts]
        assert all(("Precision: int8" in i.parameters) == (precision == "int8") for i in images[precision])
        del manager
    scores = {k: _clip_scores([i.image for i in v], prompts) for k, v in images.items()}
    if scores["bf16"] is not None:
        drops = [b - q for b, q in zip(scores["bf16"], scores["int8"])]
        assert max(drops) <= INT8_CLIP_DROP, (scores, drops)
    else:
        for bf16, q in zip(images["bf16"], images["int8"]):
            diff = np.abs(np.asarray(bf16.image, dtype=float) - np.asarray(q.image, dtype=float)) / 255
            assert diff.mean() <= INT8_PIXEL_MEAN, diff.mean()
