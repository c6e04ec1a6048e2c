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
