"""The GPU time a ZeroGPU call asks for: pure arithmetic, no numpy, no model."""
import pytest

from engine.jobs import gpu_time
from engine.jobs.gpu_time import Work, frames_per_call, seconds_for, work_seconds


def test_the_ask_grows_with_steps_images_size_and_strength():
    base = Work(images=4, steps=30, width=768, height=768)
    assert seconds_for(base) < seconds_for(Work(images=4, steps=60, width=768, height=768))
    assert seconds_for(base) < seconds_for(Work(images=8, steps=30, width=768, height=768))
    assert seconds_for(base) < seconds_for(Work(images=4, steps=30, width=1024, height=1024))
    assert work_seconds(Work(strength=0.3)) < work_seconds(Work(strength=0.9)) < work_seconds(Work())


def test_the_ask_is_the_overhead_plus_the_work_with_its_margin():
    work = Work(images=10, steps=50, width=512, height=512)
    expected = gpu_time.CALL_OVERHEAD_SECONDS + gpu_time.MARGIN * 10 * (
        50 * gpu_time.STEP_SECONDS_512 + gpu_time.DECODE_SECONDS_512)
    assert seconds_for(work) == pytest.approx(expected, abs=1)


@pytest.mark.parametrize("work", [Work(images=0), Work(steps=1, width=64, height=64), Work(images=-3, steps=0)])
def test_tiny_or_empty_jobs_still_ask_for_the_minimum(work):
    assert seconds_for(work) == gpu_time.MIN_SECONDS


def test_the_ask_never_passes_the_tiers_maximum():
    huge = Work(images=16, steps=150, width=1024, height=1024)
    assert seconds_for(huge) == gpu_time.ZEROGPU_MAX_SECONDS
    assert seconds_for(huge, maximum=120) == 120
    assert gpu_time.ZEROGPU_DEFAULT_SECONDS < gpu_time.ZEROGPU_MAX_SECONDS


def test_several_works_add_up():
    one = Work(images=3, steps=40)
    assert seconds_for(one, one) == seconds_for(Work(images=6, steps=40))


@pytest.mark.parametrize("batch", [1, 2, 3, 8])
def test_frames_per_call_are_whole_batches_and_fit_the_default_ask(batch):
    work = Work(steps=25, width=512, height=512)
    frames = frames_per_call(work, batch)
    assert frames % batch == 0 and frames >= batch
    if frames > batch:  # more than the minimum: the call fits the target
        assert seconds_for(Work(images=frames, steps=25)) <= gpu_time.CHUNK_TARGET_SECONDS + 1


def test_slower_frames_mean_fewer_frames_per_call_but_never_none():
    assert frames_per_call(Work(steps=10)) > frames_per_call(Work(steps=40)) > frames_per_call(Work(steps=150)) >= 1
    assert frames_per_call(Work(steps=150, width=1024, height=1024), batch=4) == 4


def test_the_sentence_names_the_seconds_asked():
    assert "45 s" in gpu_time.describe(45)


def test_a_training_call_asks_more_with_more_steps_size_samples_and_prior_preservation():
    from engine.jobs.gpu_time import train_seconds

    base = train_seconds(200, 512)
    assert train_seconds(100, 512) < base < train_seconds(300, 512)
    assert train_seconds(200, 256) < base < train_seconds(200, 768)
    assert base < train_seconds(200, 512, sample_every=50) and base < train_seconds(200, 512, prior_preservation=True)
    assert train_seconds(200, 512, prior_preservation=True) < train_seconds(200, 512, prior_preservation=True,
                                                                            class_images=50)
    assert train_seconds(1, 64) == gpu_time.MIN_SECONDS and train_seconds(5000, 1024) == gpu_time.ZEROGPU_MAX_SECONDS


def test_a_training_step_costs_what_the_train_tab_says_zerogpu_takes():
    from engine.train.estimate import ZEROGPU_STEP_S_512

    assert gpu_time.STEP_SECONDS_512 * gpu_time.TRAIN_STEP_FACTOR == pytest.approx(ZEROGPU_STEP_S_512)


def test_a_training_call_is_a_few_hundred_steps_within_its_target():
    from engine.jobs.gpu_time import train_seconds, train_steps_per_call

    steps = train_steps_per_call(512, sample_every=100)
    assert 100 <= steps <= gpu_time.MAX_TRAIN_STEPS_PER_CALL
    assert train_seconds(steps, 512, 100) <= gpu_time.TRAIN_TARGET_SECONDS < train_seconds(steps + 5, 512, 100)
    assert train_steps_per_call(768) < train_steps_per_call(512) < train_steps_per_call(256)
    assert train_steps_per_call(64) == gpu_time.MAX_TRAIN_STEPS_PER_CALL  # small sizes: capped
    assert train_steps_per_call(1024, 1, 150, prior_preservation=True) == 1  # never fewer than one step
    first = train_steps_per_call(512, 100, 20, prior_preservation=True, class_images=50)
    assert train_seconds(first, 512, 100, 20, True, 50) <= gpu_time.ZEROGPU_MAX_SECONDS  # class images fit too
