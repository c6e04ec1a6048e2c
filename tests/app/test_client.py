from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from engine.files import pnginfo

T2I = dict(prompt="a red apple", negative_prompt="", num_inference_steps=3, guidance_scale=7, width=64,
           height=64, seed=11, batch_count=1, sampler="Euler")


def paths(gallery):
    return [item["image"] for item in gallery]


def test_every_generating_listener_has_its_api_name(client):
    names = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/txt2img", "/img2img", "/inpaint", "/png_info", "/select_model"} <= set(names)
    params = [p["parameter_name"] for p in names["/txt2img"]["parameters"]]
    assert params[:3] == ["prompt", "negative_prompt", "num_inference_steps"]


def test_txt2img_returns_pngs_that_carry_their_parameters(client):
    gallery, _, info, params, steps_video = client.predict(**{**T2I, "batch_count": 2}, api_name="/txt2img")
    assert steps_video is None
    files = paths(gallery)
    assert len(files) == 2 and "11, 12" in info
    fields = pnginfo.parse_parameters(pnginfo.read_parameters(files[1]))
    assert fields["Seed"] == "12" and fields["prompt"] == "a red apple"
    assert params.startswith("a red apple")


def test_same_settings_give_the_same_image_over_the_api(client):
    a = paths(client.predict(**T2I, api_name="/txt2img")[0])[0]
    b = paths(client.predict(**T2I, api_name="/txt2img")[0])[0]
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_bad_input_gets_a_sentence_and_the_server_keeps_serving(client, tmp_path):
    broken = tmp_path / "broken.png"
    Image.new("RGB", (64, 64)).save(broken)
    broken.write_bytes(broken.read_bytes()[:60])
    with pytest.raises(Exception, match="damaged|not an image"):
        client.predict(image=handle_file(str(broken)), prompt="x", negative_prompt="", strength=0.5,
                       num_inference_steps=2, guidance_scale=7, size=64, seed=1, batch_count=1, sampler="Euler",
                       api_name="/img2img")
    assert paths(client.predict(**T2I, api_name="/txt2img")[0])


def test_img2img_keeps_aspect_ratio(client, tmp_path):
    photo = tmp_path / "wide.png"
    Image.new("RGB", (200, 100), (10, 120, 200)).save(photo)
    gallery = client.predict(image=handle_file(str(photo)), prompt="x", negative_prompt="", strength=0.5,
                             num_inference_steps=2, guidance_scale=7, size=128, seed=1, batch_count=1,
                             sampler="DDIM", api_name="/img2img")[0]
    assert Image.open(paths(gallery)[0]).size == (128, 64)


def test_inpaint_through_the_editor_value(client, tmp_path):
    photo, layer = tmp_path / "photo.png", tmp_path / "layer.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(photo)
    strokes = np.zeros((64, 96, 4), np.uint8)
    strokes[10:40, 20:60] = (255, 48, 48, 255)
    Image.fromarray(strokes).save(layer)
    editor = {"background": handle_file(str(photo)), "layers": [handle_file(str(layer))], "composite": None}
    gallery = client.predict(editor=editor, prompt="x", negative_prompt="", strength=1.0, mask_blur=0,
                             inpaint_area="Only masked", padding=8, num_inference_steps=2, guidance_scale=7,
                             size=64, seed=2, batch_count=1, sampler="Euler", api_name="/inpaint")[0]
    out = np.asarray(Image.open(paths(gallery)[0]).convert("RGB"))
    before = np.asarray(Image.open(photo).convert("RGB"))
    assert out.shape == before.shape
    assert np.array_equal(out[45:], before[45:])


def test_inpaint_without_paint_says_what_to_do(client, tmp_path):
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (90, 90, 90)).save(photo)
    editor = {"background": handle_file(str(photo)), "layers": [], "composite": None}
    with pytest.raises(Exception, match="Paint the area to change"):
        client.predict(editor=editor, prompt="x", negative_prompt="", strength=1.0, mask_blur=0,
                       inpaint_area="Whole picture", padding=8, num_inference_steps=2, guidance_scale=7, size=64,
                       seed=2, batch_count=1, sampler="Euler", api_name="/inpaint")


def test_png_info_loads_parameters_back(client):
    made = paths(client.predict(**{**T2I, "seed": 99, "sampler": "DPM++ 2M Karras"}, api_name="/txt2img")[0])[0]
    out = client.predict(handle_file(made), api_name="/png_info")
    text, seed, sampler = out[0], out[8], out[9]
    assert "Seed: 99" in text and seed == 99 and sampler == "DPM++ 2M Karras"


def test_denoising_video_has_a_frame_per_step(client):
    from engine import video

    out = client.predict(**{**T2I, "num_inference_steps": 5, "denoise_video": True}, api_name="/txt2img")
    info = video.video_info(out[4])
    assert info["codec"] == "h264" and info["frames"] == 5 + 4  # five steps, then the final frame held


def test_latent_walk_over_the_api_returns_a_video_and_frames(client):
    from engine import video

    player, frames, files, _, info, plan = client.predict(
        prompts="a cat\na dog", seeds="1, 2", negative_prompt="", num_frames=6, fps=6, num_inference_steps=2,
        guidance_scale=7, sampler="Euler", width=64, height=64, loop=False, smooth=False, batch_size=2,
        api_name="/latent_walk")
    assert video.video_info(player)["frames"] == 6 and len(frames) == 6
    assert "6 frames at 6 fps = 1.0 s" in info and plan == ""
    assert any(str(f).endswith(".json") for f in files)


def test_walk_bad_input_gets_a_sentence(client):
    with pytest.raises(Exception, match="at least 2 prompts"):
        client.predict(prompts="just one", seeds="", negative_prompt="", num_frames=6, fps=6,
                       num_inference_steps=2, guidance_scale=7, sampler="Euler", width=64, height=64, loop=False,
                       smooth=False, batch_size=1, api_name="/latent_walk")
    with pytest.raises(Exception, match="not a whole number"):
        client.predict(prompts="a\nb", seeds="1, x", negative_prompt="", num_frames=6, fps=6,
                       num_inference_steps=2, guidance_scale=7, sampler="Euler", width=64, height=64, loop=False,
                       smooth=False, batch_size=1, api_name="/latent_walk")


def test_dream_over_the_api(client):
    from engine import video

    player, frames, *_ = client.predict(
        prompt="a forest", negative_prompt="", num_keyframes=3, seed=5, num_frames=5, fps=5,
        num_inference_steps=2, guidance_scale=7, sampler="DDIM", width=64, height=64, loop=True, batch_size=1,
        api_name="/dream")
    assert video.video_info(player)["frames"] == 5 and len(frames) == 5


EXAMPLE = str(Path(__file__).resolve().parents[2] / "presets" / "examples" / "astronaut.jpg")
FACE_FAST = dict(num_inference_steps=2, guidance_scale=5, seed=3, sampler="Euler", face=1, padding=0.5,
                 whole_photo=False)


def test_aging_over_the_api_gives_video_stills_grid_and_comparison(client):
    from engine import video

    player, stills, grid, compare, _, info = client.predict(
        photo=handle_file(EXAMPLE), ages="20, 60", subject="woman", strength=0.5, transition_frames=1, fps=4,
        captions=True, api_name="/aging", **FACE_FAST)
    assert len(stills) == 2 and [s["caption"] for s in stills] == ["Age 20", "Age 60"]
    assert video.video_info(player)["frames"] > 2 and grid and len(compare) == 2
    assert "Seed: 3" in info


def test_aging_bad_ages_get_a_sentence(client):
    with pytest.raises(Exception, match="must rise"):
        client.predict(photo=handle_file(EXAMPLE), ages="60, 20", subject="woman", strength=0.5,
                       transition_frames=0, fps=4, captions=True, api_name="/aging", **FACE_FAST)


def test_gender_swap_over_the_api_keeps_the_size(client):
    gallery, compare, _, info = client.predict(photo=handle_file(EXAMPLE), direction="to man", strength=0.5,
                                               variants=2, api_name="/gender_swap", **FACE_FAST)
    assert len(gallery) == 2 and "Seeds: 3, 4" in info
    assert Image.open(paths(gallery)[0]).size == Image.open(EXAMPLE).size


def test_no_face_offers_the_whole_photo(client, tmp_path):
    blank = tmp_path / "sky.png"
    Image.new("RGB", (256, 256), (120, 160, 220)).save(blank)
    with pytest.raises(Exception, match="Whole photo"):
        client.predict(photo=handle_file(str(blank)), direction="to woman", strength=0.5, variants=1,
                       api_name="/gender_swap", **FACE_FAST)


def test_walk_can_also_write_a_gif(client):
    from engine import video

    _, _, files, *_ = client.predict(
        prompts="a cat\na dog", seeds="1, 2", negative_prompt="", num_frames=3, fps=3, num_inference_steps=1,
        guidance_scale=7, sampler="Euler", width=64, height=64, loop=False, smooth=False, batch_size=1, gif=True,
        api_name="/latent_walk")
    gifs = [f for f in files if str(f).endswith(".gif")]
    assert len(gifs) == 1 and video.video_info(gifs[0])["frames"] == 3


def test_all_faces_over_the_api_keeps_everything_outside_the_faces(client, tmp_path):
    """A group photo: every face regenerated in its own region; the background byte for byte."""
    from engine.faces.portrait import find_face_area

    photo = Image.open(EXAMPLE).convert("RGB")
    group = Image.new("RGB", (1024, 512))
    group.paste(photo, (0, 0))
    group.paste(photo, (512, 0))
    path = tmp_path / "group.png"
    group.save(path)
    gallery, _, _, info = client.predict(photo=handle_file(str(path)), direction="to man", strength=0.5,
                                         variants=1, all_faces=True, api_name="/gender_swap", **FACE_FAST)
    result = np.asarray(Image.open(paths(gallery)[0]).convert("RGB"))
    outside = np.asarray(find_face_area(group, all_faces=True).mask) == 0
    assert np.array_equal(result[outside], np.asarray(group)[outside])
    assert not np.array_equal(result[~outside], np.asarray(group)[~outside])


def test_a_user_error_prints_no_traceback_in_the_server_console(client, capfd):
    with pytest.raises(Exception, match="Upload an image"):
        client.predict(image=None, prompt="x", negative_prompt="", strength=0.5, num_inference_steps=2,
                       guidance_scale=7, size=64, seed=1, batch_count=1, sampler="Euler", api_name="/img2img")
    assert "Traceback" not in capfd.readouterr().err


def test_user_errors_are_logged_in_one_line(caplog):
    import logging

    from tabs.session import user_error

    with caplog.at_level(logging.INFO, logger="diffusion_studio"):
        error = user_error("Upload a photo to start.")
    assert error.print_exception is False
    assert [r.getMessage() for r in caplog.records] == ["user error: Upload a photo to start."]


def test_an_age_range_bomb_gets_a_short_sentence_at_once(client):
    import time

    start = time.perf_counter()
    with pytest.raises(Exception) as error:
        client.predict(photo=handle_file(EXAMPLE), ages="1-10000000/1", subject="woman", strength=0.5,
                       transition_frames=0, fps=4, captions=True, api_name="/aging", **FACE_FAST)
    assert time.perf_counter() - start < 10
    assert "Every age must be from 1 to 100; got the range '1-10000000/1'." in str(error.value)
    assert len(str(error.value)) < 300


def test_prompts_over_the_cap_get_a_sentence_that_states_it(client):
    with pytest.raises(Exception, match=r"The prompt is 100,000 characters long; the cap is 1,000 CLIP tokens"):
        client.predict(**{**T2I, "prompt": "a" * 100_000}, api_name="/txt2img")
    with pytest.raises(Exception, match=r"The negative prompt is 1,001 CLIP tokens long; the cap is 1,000 tokens"):
        client.predict(**{**T2I, "negative_prompt": "blurry " * 1001}, api_name="/txt2img")
    with pytest.raises(Exception, match=r"Prompt 2 is 1,001 CLIP tokens long"):
        client.predict(prompts="a cat\n" + "cat " * 1001, seeds="", negative_prompt="", num_frames=4, fps=4,
                       num_inference_steps=1, guidance_scale=7, sampler="Euler", width=64, height=64, loop=False,
                       smooth=False, batch_size=1, api_name="/latent_walk")


def test_an_unknown_lora_names_no_server_folder(client):
    with pytest.raises(Exception) as error:
        client.predict(**{**T2I, "prompt": "a boat <lora:nope:1>"}, api_name="/txt2img")
    message = str(error.value)
    assert "No LoRA named 'nope'" in message and "the LoRA folder" in message
    assert str(Path(__file__).resolve().parents[2]) not in message and "/weights" not in message
