"""ControlNet preprocessors: each map's size and mode, Canny's edges and thresholds, the resize modes' geometry,
and annotator files found on disk (random weights of the real architectures, made here) without a download."""
from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from PIL import Image

from engine.control import annotators
from engine.control import preprocess as pp
from tests.engine.test_animate import tiny_depth_model

NEEDS_FILES = ("depth_anything_v2", "softedge_pidinet", "softedge_hed", "lineart_realistic", "openpose", "mlsd")


@pytest.fixture(autouse=True)
def empty_hub_cache(tmp_path_factory, monkeypatch):
    """Nothing from this machine's HF cache or STUDIO_DEPTH_MODEL leaks in: each test sees only what it makes."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path_factory.mktemp("hub")))
    monkeypatch.delenv("STUDIO_DEPTH_MODEL", raising=False)


def _networks():
    """The controlnet_aux network classes, randomly initialised, as each file of lllyasviel/Annotators holds them."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from controlnet_aux.hed import ControlNetHED_Apache2
        from controlnet_aux.lineart import Generator
        from controlnet_aux.mlsd.models.mbv2_mlsd_large import MobileV2_MLSD_Large
        from controlnet_aux.open_pose.model import bodypose_model
        from controlnet_aux.pidi.model import pidinet
    return {
        # PiDiNet's checkpoint wraps a DataParallel state dict; OpenPose's drops the first name component.
        "table5_pidinet.pth": lambda: {"state_dict": {f"module.{k}": v for k, v in pidinet().state_dict().items()}},
        "ControlNetHED.pth": lambda: ControlNetHED_Apache2().state_dict(),
        "sk_model.pth": lambda: Generator(3, 1, 3).state_dict(),
        "body_pose_model.pth": lambda: {k.split(".", 1)[1]: v for k, v in bodypose_model().state_dict().items()},
        "mlsd_large_512_fp32.pth": lambda: MobileV2_MLSD_Large().state_dict(),
    }


def write_annotator(folder, filename):
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(_networks()[filename](), folder / filename)
    return folder / filename


@pytest.fixture(scope="module")
def full_weights(tmp_path_factory):
    """A weights folder with every annotator file (random weights) and a tiny depth model."""
    root = tmp_path_factory.mktemp("weights")
    for filename in _networks():
        write_annotator(root / "Annotators", filename)
    tiny_depth_model(root / "Depth-Anything-tiny")
    return root


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (80, 120, 3), dtype=np.uint8))


def square(size=64, low=0, high=255):
    values = np.full((size, size, 3), low, dtype=np.uint8)
    values[16:48, 16:48] = high
    return values


# ---- names

def test_names_are_a1111s_and_short_names_resolve():
    assert pp.PREPROCESSORS[0] == "none" and len(set(pp.PREPROCESSORS)) == 11
    for name in ("canny", "depth_anything_v2", "softedge_pidinet", "softedge_hed", "lineart_realistic", "openpose",
                 "mlsd", "invert (from white bg & black line)", "tile_resample", "inpaint_only"):
        assert name in pp.PREPROCESSORS
    assert pp.canonical_preprocessor("scribble") == pp.SCRIBBLE
    assert pp.canonical_preprocessor(" Canny ") == "canny"
    assert all(pp.canonical_preprocessor(short) in pp.PREPROCESSORS for short in pp.PREPROCESSOR_ALIASES)
    with pytest.raises(ValueError, match="not a ControlNet preprocessor; choose one of none, canny"):
        pp.canonical_preprocessor("depth_zoe")


# ---- each map's size and mode

@pytest.mark.parametrize("name", pp.PREPROCESSORS)
def test_each_preprocessor_makes_an_rgb_map_of_the_size(name, full_weights, photo):
    mask = np.zeros((80, 120), dtype=np.uint8)
    mask[20:50, 30:70] = 255
    for width, height in ((64, 96), (96, 64)):
        result = pp.preprocess(name, photo, width=width, height=height, mask=mask, weights_dir=full_weights)
        assert isinstance(result, Image.Image) and result.mode == "RGB" and result.size == (width, height)


def test_every_preprocessor_is_available_with_its_files(full_weights):
    infos = pp.preprocessors(full_weights)
    assert [i.name for i in infos] == list(pp.PREPROCESSORS)
    assert all(i.available and i.why_not == "" for i in infos)


def test_depth_uses_the_loader_animate_uses(full_weights):
    from engine.video.animate import depth

    folder = str((full_weights / "Depth-Anything-tiny").resolve())
    values = np.asarray(pp.preprocess("depth", square(), width=64, height=64, weights_dir=full_weights))
    assert folder in depth._LOADED  # the one copy Animate's 3D mode would use
    assert values.min() == 0 and values.max() == 255  # normalised: the farthest black, the nearest white
    assert (values[:, :, 0] == values[:, :, 1]).all()


# ---- canny

def test_canny_finds_the_square_edges_and_nothing_else():
    edges = np.asarray(pp.preprocess("canny", square(), width=64, height=64))[:, :, 0]
    assert set(np.unique(edges)) == {0, 255}
    ring = np.zeros((64, 64), dtype=bool)
    ring[14:50, 14:50] = True
    ring[18:46, 18:46] = False
    assert edges[ring].sum() > 0 and edges[~ring].sum() == 0
    assert edges[16, 30] == 255 or edges[15, 30] == 255  # the top edge is found along its length


def test_canny_thresholds_decide_which_edges_count():
    faint = square(low=100, high=130)
    assert np.asarray(pp.preprocess("canny", faint, width=64, height=64, low_threshold=10, high_threshold=20)).any()
    assert not np.asarray(pp.preprocess("canny", faint, width=64, height=64, low_threshold=200,
                                        high_threshold=250)).any()


@pytest.mark.parametrize("low, high, message", [
    (-1, 200, "low threshold must be a whole number from 0 to 255"),
    (100, 256, "high threshold must be a whole number from 0 to 255"),
    (1.5, 200, "low threshold must be a whole number"),
    ("a", 200, "low threshold must be a whole number"),
    (True, 200, "low threshold must be a whole number"),
    (150, 100, r"low threshold \(150\) must not be above the high threshold \(100\)"),
])
def test_canny_thresholds_are_checked(low, high, message):
    with pytest.raises(ValueError, match=message):
        pp.preprocess("canny", square(), width=64, height=64, low_threshold=low, high_threshold=high)


# ---- scribble, tile, inpaint, none

def test_scribble_is_white_lines_on_black_whichever_way_it_was_drawn():
    dark_on_light = np.full((64, 64, 3), 250, dtype=np.uint8)
    dark_on_light[30:34, 8:56] = 20
    light_on_dark = 255 - dark_on_light
    for drawing in (dark_on_light, light_on_dark):
        values = np.asarray(pp.preprocess("scribble", drawing, width=64, height=64))
        assert set(np.unique(values)) == {0, 255}
        assert (values[30:34, 8:56] == 255).all() and values[:28].max() == 0


def test_tile_and_none_are_the_image_resampled(photo):
    for name in ("tile_resample", "none"):
        result = pp.preprocess(name, photo, width=120, height=80, resize_mode="Just Resize")
        assert np.array_equal(np.asarray(result), np.asarray(photo))


def test_inpaint_marks_the_masked_pixels(photo):
    mask = np.zeros((80, 120), dtype=np.uint8)
    mask[:, :60] = 255
    preview = np.asarray(pp.preprocess("inpaint", photo, width=120, height=80, mask=mask))
    assert preview[:, :60].max() == 0 and np.array_equal(preview[:, 60:], np.asarray(photo)[:, 60:])
    condition = pp.inpaint_condition(photo, mask)
    assert condition.shape == (1, 3, 80, 120) and condition.dtype == torch.float32
    assert (condition[..., :60] == -1).all()
    assert torch.allclose(condition[0, :, :, 60:], torch.from_numpy(np.asarray(photo)[:, 60:] / 255.0).permute(2, 0, 1)
                          .float())
    filled = pp.inpaint_condition(photo, mask, width=120, height=120, resize_mode="Resize and Fill")
    assert filled.shape == (1, 3, 120, 120) and (filled[..., :20, 60:] == -1).all()  # the fill is painted too
    with pytest.raises(ValueError, match="needs a mask"):
        pp.preprocess("inpaint_only", photo, width=64, height=64)


# ---- unavailable and bad input

def test_missing_files_are_listed_with_what_to_put_where(tmp_path, photo):
    infos = {i.name: i for i in pp.preprocessors(tmp_path)}
    for name in NEEDS_FILES:
        assert not infos[name].available
        assert infos[name].why_not.endswith('see the README section "ControlNet preprocessors".')
        with pytest.raises(ValueError) as raised:
            pp.preprocess(name, photo, width=64, height=64, weights_dir=tmp_path)
        assert str(raised.value) == infos[name].why_not
    assert "table5_pidinet.pth (2.9 MB)" in infos["softedge_pidinet"].why_not
    assert "lllyasviel/Annotators in weights/Annotators" in infos["mlsd"].why_not
    assert "Depth-Anything-V2-Small-hf" in infos["depth_anything_v2"].why_not
    assert all(infos[n].available for n in pp.PREPROCESSORS if n not in NEEDS_FILES)


def test_a_random_pidinet_file_in_annotators_becomes_available_and_runs(tmp_path, photo, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert not {i.name: i for i in pp.preprocessors(tmp_path)}["softedge_pidinet"].available
    write_annotator(tmp_path / "Annotators", "table5_pidinet.pth")
    assert {i.name: i for i in pp.preprocessors(tmp_path)}["softedge_pidinet"].available
    result = pp.preprocess("softedge", photo, width=72, height=40, weights_dir=tmp_path)
    assert result.size == (72, 40) and result.mode == "RGB"


def test_an_annotator_in_the_hf_cache_is_found_without_a_download(tmp_path, photo, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    repo = cache / "models--lllyasviel--Annotators"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    write_annotator(repo / "snapshots" / ("0" * 40), "mlsd_large_512_fp32.pth")
    weights = tmp_path / "weights"
    assert annotators.find_file("mlsd_large_512_fp32.pth", weights).parent.name == "0" * 40
    assert {i.name: i for i in pp.preprocessors(weights)}["mlsd"].available
    assert pp.preprocess("mlsd", photo, width=64, height=64, weights_dir=weights).size == (64, 64)


def test_a_damaged_annotator_file_says_so(tmp_path, photo):
    (tmp_path / "Annotators").mkdir()
    (tmp_path / "Annotators" / "sk_model.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="sk_model.pth could not be loaded as the lineart_realistic annotator"):
        pp.preprocess("lineart", photo, width=64, height=64, weights_dir=tmp_path)


def test_a_control_image_that_is_not_an_image_says_so(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.png is not an image"):
        pp.preprocess("canny", text, width=64, height=64)
    with pytest.raises(ValueError, match="not an image"):
        pp.preprocess("none", b"hello", width=64, height=64)
    with pytest.raises(ValueError, match="width must be a whole number of pixels"):
        pp.preprocess("none", square(), width=0, height=64)
    with pytest.raises(ValueError, match="not a resize mode"):
        pp.preprocess("none", square(), width=64, height=64, resize_mode="Stretch")


# ---- the resize modes' geometry

def quarters(width=100, height=50):
    """Four vertical bands: red, green, blue, white, so a crop or a pad shows where it fell."""
    values = np.zeros((height, width, 3), dtype=np.uint8)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    for i, colour in enumerate(colours):
        values[:, i * width // 4:(i + 1) * width // 4] = colour
    return Image.fromarray(values)


def test_just_resize_stretches():
    result = pp.resize_for_control(quarters(), 40, 40, "Just Resize")
    values = np.asarray(result)
    assert result.size == (40, 40)
    assert tuple(values[20, 2]) == (255, 0, 0) and tuple(values[20, 37]) == (255, 255, 255)


def test_crop_and_resize_covers_and_keeps_the_centre():
    result = pp.resize_for_control(quarters(), 50, 50, "Crop and Resize")
    values = np.asarray(result)
    assert result.size == (50, 50)
    assert tuple(values[25, 0]) == (0, 255, 0) and tuple(values[25, 49]) == (0, 0, 255)  # red and white cut off
    assert pp.fitted_size((100, 50), 50, 50, "Crop and Resize") == (100, 50)


def test_resize_and_fill_fits_centres_and_pads_with_the_border_median():
    result = pp.resize_for_control(quarters(), 50, 50, "Resize and Fill")
    values = np.asarray(result)
    assert result.size == (50, 50) and pp.fitted_size((100, 50), 50, 50, "Resize and Fill") == (50, 25)
    assert tuple(values[25, 1]) == (255, 0, 0) and tuple(values[25, 48]) == (255, 255, 255)  # nothing cut off
    # the border is as much red and white (R 255) as green and blue, and its sides are red and white: the median
    # is R 255 and G, B half-way
    assert (values[:12] == (255, 127, 127)).all() and (values[37:] == (255, 127, 127)).all()
    assert tuple(values[12, 0]) == (255, 0, 0) and tuple(values[36, 0]) == (255, 0, 0)
    black = np.zeros((50, 25), dtype=np.uint8)
    assert np.asarray(pp.resize_for_control(Image.fromarray(black), 50, 50, "Resize and Fill", fill=255))[:, :12].min() \
        == 255


def test_maps_keep_the_image_geometry_in_every_mode():
    """A square's edges land where the resized square lands, in all three modes (the map is made before the crop)."""
    image = Image.fromarray(square(64)).resize((128, 64), Image.Resampling.NEAREST)  # a 64x32 square, centred
    for mode in pp.RESIZE_MODES:
        expected = np.asarray(pp.resize_for_control(image, 64, 64, mode).convert("L")) > 127
        edges = np.asarray(pp.preprocess("canny", image, width=64, height=64, resize_mode=mode))[:, :, 0] > 0
        rows, cols = np.nonzero(edges)
        filled_rows, filled_cols = np.nonzero(expected)
        assert abs(rows.min() - filled_rows.min()) <= 2 and abs(cols.max() - filled_cols.max()) <= 2
