"""Face restoration: restorer loading, refusals, and that only the face region changes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from engine.extras import restore
from engine.extras.restore import crop_matrix, face_matrix, list_restorers, paste_face, restore_faces
from engine.extras.restorers import load_restorer


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    yield tiny_restorer_weights(tmp_path_factory.mktemp("weights"))
    load_restorer.cache_clear()


def tiny_restorer_weights(root):
    """A weights folder with a tiny random RestoreFormer spandrel recognises, an upscaler and junk."""
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.RestoreFormer import RestoreFormer

    (root / "GFPGAN").mkdir()
    (root / "Codeformer").mkdir()
    torch.manual_seed(0)
    tiny = RestoreFormer(n_embed=16, embed_dim=8, ch=32, ch_mult=(1,) * 6, num_res_blocks=1, z_channels=8)
    save_file({k: v.contiguous() for k, v in tiny.state_dict().items()}, root / "GFPGAN" / "RestoreFormer.safetensors")
    upscaler = Compact(num_in_ch=3, num_out_ch=3, num_feat=4, num_conv=1, upscale=2)
    save_file({k: v.contiguous() for k, v in upscaler.state_dict().items()}, root / "GFPGAN" / "tiny-upscaler.safetensors")
    (root / "Codeformer" / "damaged.pth").write_bytes(b"not a model at all")
    return root


def test_list_restorers_names_families_and_stems(weights, tmp_path):
    assert list_restorers(weights) == ["RestoreFormer", "damaged", "tiny-upscaler"]
    assert list_restorers(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "words"),
    [("tiny-upscaler", "not a face restorer"), ("damaged", "is not a face restorer spandrel can read"),
     ("GFPGAN", "No face restorer named 'GFPGAN'")],
)
def test_wrong_kind_damaged_and_missing_models_are_refused(weights, astronaut, name, words):
    with pytest.raises(ValueError, match=words):
        restore_faces(astronaut, name, 1.0, weights_dir=weights)


@pytest.mark.parametrize("visibility", [-0.1, 1.5, "1", True])
def test_visibility_outside_0_1_is_refused(weights, astronaut, visibility):
    with pytest.raises(ValueError, match="between 0 and 1"):
        restore_faces(astronaut, "RestoreFormer", visibility, weights_dir=weights)


def test_visibility_0_gives_the_input_back(weights, astronaut):
    out = restore_faces(astronaut, "RestoreFormer", 0.0, weights_dir=weights)
    assert np.array_equal(np.asarray(out), np.asarray(astronaut))


def test_no_face_leaves_the_picture_unchanged(weights):
    plain = Image.fromarray(np.random.default_rng(1).integers(0, 255, (200, 200, 3), np.uint8))
    out = restore_faces(plain, "RestoreFormer", 1.0, weights_dir=weights)
    assert np.array_equal(np.asarray(out), np.asarray(plain))


def test_paste_back_changes_only_the_face_square_and_blends_by_visibility():
    photo = np.random.default_rng(2).random((300, 400, 3), dtype=np.float32)
    box = (150, 80, 230, 160)
    matrix = crop_matrix(box)
    white = np.ones((restore.SIDE, restore.SIDE, 3), np.float32)
    full, half = paste_face(photo, white, matrix, 1.0), paste_face(photo, white, matrix, 0.5)
    changed = np.any(full != photo, axis=2)
    rows, cols = np.nonzero(changed)
    side = restore.MARGIN * 80
    assert rows.min() >= 120 - side / 2 - 1 and rows.max() <= 120 + side / 2 + 1
    assert cols.min() >= 190 - side / 2 - 1 and cols.max() <= 190 + side / 2 + 1
    assert np.allclose(full[120, 190], 1.0)  # the middle is fully restored
    assert np.allclose(half[120, 190], (photo[120, 190] + 1) / 2, atol=1e-5)


def test_a_tilted_face_is_aligned_on_the_ffhq_template_with_dlibs_landmarks(astronaut):
    import cv2

    from engine.faces.detect import detect_faces
    from engine.faces.landmarks import five_points, template

    if five_points(np.zeros((8, 8, 3), np.uint8), (0, 0, 8, 8)) is None:
        pytest.skip("needs dlib's landmarks: pip install dlib-bin face-recognition-models")
    turn = cv2.getRotationMatrix2D((256, 256), 12, 1.0)  # the head tilted by 12 degrees
    tilted = cv2.warpAffine(np.asarray(astronaut), turn, (512, 512), borderMode=cv2.BORDER_REFLECT)
    box = detect_faces(Image.fromarray(tilted))[0].box
    matrix = face_matrix(tilted, box)
    points = five_points(tilted, box)
    assert np.abs(points @ matrix[:, :2].T + matrix[:, 2] - template(restore.SIDE)).max() < 8
    upright = face_matrix(np.asarray(astronaut), detect_faces(astronaut)[0].box)

    def angle(m):
        return np.degrees(np.arctan2(m[1, 0], m[0, 0]))

    assert abs(angle(matrix) - angle(upright) - 12) < 3  # turned back by the tilt
    assert not np.allclose(matrix, crop_matrix(box))


def test_without_landmarks_the_crop_is_the_square_around_the_box(astronaut, monkeypatch):
    from engine.faces import landmarks

    monkeypatch.setattr(landmarks, "_predictor", lambda: None)
    box = (176, 66, 272, 162)
    assert np.array_equal(face_matrix(np.asarray(astronaut), box), crop_matrix(box))


def test_only_the_face_region_changes_with_a_real_restorer(weights, astronaut):
    out = restore_faces(astronaut, "RestoreFormer", 1.0, weights_dir=weights)
    before, after = np.asarray(astronaut), np.asarray(out)
    assert out.size == astronaut.size and out.mode == astronaut.mode
    changed = np.any(before != after, axis=2)
    assert changed.any()
    from engine.faces.detect import detect_faces

    face = detect_faces(astronaut)[0]
    matrix = face_matrix(np.asarray(astronaut), face.box)
    ys, xs = np.nonzero(changed)
    corners = np.stack([xs, ys], 1) @ matrix[:, :2].T + matrix[:, 2]  # into crop space
    inside = (corners >= -1).all(1) & (corners <= restore.SIDE + 1).all(1)
    assert inside.all()


def test_gender_swap_with_restore_faces_keeps_the_background_and_writes_png_info(weights, tiny_manager, astronaut,
                                                                                  monkeypatch):
    from engine.faces.gender import GenderRequest, gender_swap
    from engine.faces.portrait import find_face_area
    from engine.files import pnginfo

    monkeypatch.setattr(tiny_manager, "weights_dir", weights)
    req = GenderRequest(direction="man", variants=1, num_inference_steps=2, size=64, sampler="Euler", seed=4,
                        restore_faces="RestoreFormer", visibility=0.7)
    variant = gender_swap(tiny_manager, req, astronaut).variants[0]
    plain = gender_swap(tiny_manager, dataclasses.replace(req, restore_faces=None), astronaut).variants[0]
    outside = np.asarray(find_face_area(astronaut).mask) == 0
    assert np.array_equal(np.asarray(variant.image)[outside], np.asarray(astronaut)[outside])
    assert not np.array_equal(np.asarray(variant.image), np.asarray(plain.image))  # the restorer did run
    fields = pnginfo.parse_parameters(variant.parameters)
    assert fields["Face restoration"] == "RestoreFormer" and fields["Face restoration visibility"] == "0.7"


def test_face_job_refuses_a_missing_restorer_before_generating(weights, tiny_manager, astronaut, monkeypatch):
    from engine.faces.gender import GenderRequest, gender_swap

    monkeypatch.setattr(tiny_manager, "weights_dir", weights)
    with pytest.raises(ValueError, match="No face restorer named 'CodeFormer'"):
        gender_swap(tiny_manager, GenderRequest(direction="man", variants=1, size=64, restore_faces="CodeFormer"),
                    astronaut)


@pytest.mark.parametrize(("flags", "words"), [(["--restore-faces", "Nope"], "No face restorer named 'Nope'"),
                                              (["--restore-faces", "RestoreFormer", "--visibility", "2"],
                                               "between 0 and 1")])
def test_cli_face_job_bad_restore_flags_exit_2(weights, tmp_path, astronaut, monkeypatch, capsys, flags, words):
    from engine import cli
    from engine.pipeline import manager as manager_module

    photo = tmp_path / "in.png"
    astronaut.save(photo)
    monkeypatch.setattr(manager_module, "WEIGHTS_DIR", weights)
    real_init = manager_module.PipelineManager.__init__

    def with_weights(self, *args, **kwargs):
        real_init(self, *args, **{**kwargs, "weights_dir": weights})

    monkeypatch.setattr(manager_module.PipelineManager, "__init__", with_weights)
    args = ["gender-swap", "--model", "tiny", "--image", str(photo), "--to", "man", "--steps", "2",
            "--size", "64", "--variants", "1", "--out", str(tmp_path / "out.png"), *flags]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_extras_restores_then_upscales_and_writes_face_restoration(weights, astronaut):
    from engine.extras.request import ExtrasRequest
    from engine.extras.run import run_extras
    from engine.extras.upscale import upscale
    from engine.files import pnginfo

    small = astronaut.resize((256, 256))
    result = run_extras(ExtrasRequest(small, upscale_by=1.5, restore_faces="RestoreFormer", visibility=0.5), weights)
    expected = upscale(restore_faces(small, "RestoreFormer", 0.5, weights_dir=weights), (384, 384), "Lanczos", weights)
    assert result.image.tobytes() == expected.tobytes()
    fields = pnginfo.parse_parameters(result.parameters)
    assert fields["Face restoration"] == "RestoreFormer" and fields["Face restoration visibility"] == "0.5"


def test_extras_cli_restore_flags(weights, astronaut, tmp_path, monkeypatch, capsys):
    from engine.cli import main

    monkeypatch.setattr("engine.pipeline.models.WEIGHTS_DIR", weights)
    photo = tmp_path / "face.png"
    astronaut.resize((128, 128)).save(photo)
    out = tmp_path / "out.png"
    assert main(["extras", "--image", str(photo), "--restore-faces", "RestoreFormer", "--out", str(out)]) == 0
    assert "Face restoration: RestoreFormer" in Image.open(out).text["parameters"]
    assert main(["extras", "--image", str(photo), "--restore-faces", "RestoreFormer", "--visibility", "2",
                 "--out", str(out)]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    assert main(["extras", "--image", str(photo), "--restore-faces", "GFPGANv9", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No face restorer named 'GFPGANv9'" in err and str(weights) not in err

def test_crop_boxes_follow_the_face_into_the_regenerated_crop():
    from engine.faces.detect import Face
    from engine.faces.portrait import FacePart, crop_boxes

    part = FacePart([1], (100, 50, 300, 250), Image.new("L", (400, 300)), [Face(150, 100, 100, 80, 30.0)])
    assert crop_boxes(part, (64, 64)) == [(16, 16, 48, 42)]
    assert crop_boxes(FacePart([], (0, 0, 400, 300), Image.new("L", (400, 300))), (128, 96)) == []


def test_aging_with_restore_faces_keeps_the_background(weights, tiny_manager, astronaut, monkeypatch, tmp_path):
    from engine.faces.aging import AgingRequest, aging_timelapse
    from engine.faces.portrait import find_face_area
    from engine.files import pnginfo

    monkeypatch.setattr(tiny_manager, "weights_dir", weights)
    req = AgingRequest(ages=[20, 60], num_inference_steps=2, size=64, sampler="Euler", seed=3, transition_frames=0,
                       restore_faces="RestoreFormer")
    result = aging_timelapse(tiny_manager, req, astronaut, tmp_path)
    outside = np.asarray(find_face_area(astronaut).mask) == 0
    for age, image in result.keyframes:
        saved = tmp_path / f"age_{age:03d}.png"
        assert np.array_equal(np.asarray(image)[outside], np.asarray(astronaut)[outside])
        assert np.array_equal(np.asarray(Image.open(saved).convert("RGB"))[outside], np.asarray(astronaut)[outside])
        assert pnginfo.parse_parameters(pnginfo.read_parameters(saved))["Face restoration"] == "RestoreFormer"
