"""The Extras tab through gradio_client: one picture upscaled with its PNG info kept, a batch zip, bad input."""
import zipfile

import pytest
from PIL import Image

from engine.files import pnginfo

FORM = dict(source="One picture", files=None, resize_mode="Scale by", upscale_by=2, width=0, height=0,
            upscaler="Lanczos")


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "boat.png"
    pnginfo.save_png(Image.new("RGB", (40, 24), (10, 90, 160)), path, "a boat\nSteps: 20, Seed: 3, Size: 40x24")
    return path


def test_one_picture_comes_back_twice_as_large_with_its_recipe(client, picture):
    from gradio_client import handle_file

    slider, download, info = client.predict(**FORM, photo=handle_file(str(picture)), api_name="/extras")
    assert Image.open(download).size == (80, 48) and "40×24 → 80×48" in info
    fields = pnginfo.parse_parameters(pnginfo.read_parameters(download))
    assert fields["prompt"] == "a boat" and fields["Postprocess upscale by"] == "2"


def test_a_batch_makes_a_zip_and_names_the_file_it_skipped(client, picture, tmp_path):
    from gradio_client import handle_file

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    batch = {**FORM, "source": "Batch (images or a zip)", "resize_mode": "Scale to", "width": 50, "height": 50,
             "files": [handle_file(str(picture)), handle_file(str(bad))]}
    _, download, info = client.predict(**batch, photo=None, api_name="/extras")
    with zipfile.ZipFile(download) as archive:
        assert archive.namelist() == ["boat.png"]
    assert "1 of 2 pictures" in info and "Skipped broken.png" in info


@pytest.mark.parametrize("change, sentence", [
    ({}, "Upload a picture to upscale."),
    ({"resize_mode": "Scale to", "width": 90000, "height": 90000}, "megapixel cap"),
    ({"source": "Batch (images or a zip)"}, "Add some images or a zip"),
])
def test_bad_input_gets_its_sentence(client, picture, change, sentence):
    from gradio_client import handle_file

    photo = None if not change else handle_file(str(picture))
    with pytest.raises(Exception, match=sentence):
        client.predict(**{**FORM, **change}, photo=photo, api_name="/extras")
