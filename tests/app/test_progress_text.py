"""Progress lines a user can match to the fields: a schedule that strength shortened says so, in the fields' own
numbers ("step 7 of 13 (25 steps × strength 0.55)"), in every img2img-style job."""
from __future__ import annotations

from engine.faces.portrait import FaceStep
from engine.image.request import StepUpdate
from engine.video.animate.frames import AnimateUpdate
from tabs import aging, gender_swap
from tabs.running import describe_step
from tabs.xyz_common import describe_cell


def test_image_jobs_say_where_the_step_count_comes_from():
    update = StepUpdate(0, 2, 7, 13, None, num_inference_steps=25, strength=0.55)
    assert describe_step(update)[1] == "Image 1/2, step 7 of 13 (25 steps × strength 0.55)"
    assert describe_cell(update)[1] == "Cell 1/2, step 7 of 13 (25 steps × strength 0.55)"
    assert describe_step(StepUpdate(0, 1, 7, 20, None))[1] == "Image 1/1, step 7 of 20"  # text to image
    full = StepUpdate(0, 1, 7, 20, None, num_inference_steps=20, strength=1.0)
    assert describe_step(full)[1] == "Image 1/1, step 7 of 20"  # nothing to explain


def test_face_tabs_say_it_too():
    step = FaceStep(2, 8, "age 40", 1, 1, 7, 13, "face 1", num_inference_steps=25, strength=0.55)
    assert aging.describe(step)[1] == "Frame 2 of 8 (age 40), step 7 of 13 (25 steps × strength 0.55)"
    variant = FaceStep(1, 2, "variant 1", 1, 1, 3, 13, "face 1", num_inference_steps=25, strength=0.55)
    assert gender_swap.describe(variant)[1] == "Variant 1 of 2, step 3 of 13 (25 steps × strength 0.55)"


def test_animate_says_it_with_deforums_strength():
    update = AnimateUpdate(3, 24, None, 2, 24, 5, 7, num_inference_steps=20, strength=0.65)
    assert update.text == "frame 3/24, diffusion 2/24, step 5 of 7 (20 steps × (1 − strength 0.65))"
    first = AnimateUpdate(0, 24, None, 1, 24, 5, 20, num_inference_steps=20)  # frame 0, from noise
    assert first.text == "frame 0/24, diffusion 1/24, step 5 of 20"
