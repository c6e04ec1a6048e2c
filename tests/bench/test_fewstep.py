"""The bench's few-step parts: its random LoRA is taken for an LCM LoRA, its TAESD is found, and the request is
what Few-step mode makes."""
from bench.fewstep import LORA_NAME, fewstep_request, make_weights


def test_lora_and_taesd_are_found_and_make_a_fewstep_image(tiny_manager, tmp_path):
    from engine.loaders import fewstep
    from engine.loaders.lora import LoraFolder, read_lora
    from engine.pipeline.manager import PipelineManager, RuntimeOptions
    from engine.pipeline.tiny_vae import find_taesd

    pipe = tiny_manager.base()
    make_weights(tmp_path, pipe.unet)
    (few,) = fewstep.find(LoraFolder(tmp_path / "Lora"))
    assert (few.lora, few.kind, few.num_inference_steps, few.guidance_scale) == (LORA_NAME, "LCM", 4, 1.0)
    tensors = read_lora(tmp_path / "Lora" / f"{LORA_NAME}.safetensors", pipe.unet.config,
                        pipe.text_encoder.get_input_embeddings().weight.shape[-1])
    assert any("ff_net_2" in key for key in tensors) and any("attn2_to_k" in key for key in tensors)
    assert find_taesd(tmp_path) is not None

    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"), weights_dir=tmp_path)
    req = fewstep_request(manager, 64)
    assert (req.sampler, req.num_inference_steps, req.guidance_scale, req.fast_decode) == ("LCM", 4, 1.0, True)
    assert f"<lora:{LORA_NAME}:1>" in req.prompt
    from engine.image.generate import text_to_image

    result = text_to_image(manager, req)
    assert "VAE Decoder: TAESD" in result.images[0].parameters
    assert result.images[0].image.size == (64, 64)
