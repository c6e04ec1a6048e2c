import pytest

from engine.pipeline.schedulers import SAMPLERS, a1111_fields, from_a1111_fields, is_stochastic, make_scheduler, sampler_names

A1111_NAMES = ["DPM++ 2M", "DPM++ 2M Karras", "DPM++ 2M SDE", "DPM++ 2M SDE Karras", "DPM++ SDE",
               "DPM++ SDE Karras", "DPM2", "DPM2 a", "Euler", "Euler a", "Heun", "LMS", "DDIM", "PNDM", "UniPC",
               "LCM"]
BASE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
        "steps_offset": 1, "set_alpha_to_one": False, "skip_prk_steps": True, "clip_sample": False}


def test_every_a1111_name_is_offered():
    assert set(A1111_NAMES) <= set(sampler_names())


@pytest.mark.parametrize("name", sampler_names())
def test_each_sampler_builds_its_class_with_its_settings(name):
    scheduler = make_scheduler(name, BASE)
    assert type(scheduler).__name__ == SAMPLERS[name].cls_name
    for key, value in SAMPLERS[name].settings.items():
        assert scheduler.config[key] == value
    scheduler.set_timesteps(10)


def test_each_request_gets_a_fresh_scheduler():
    a, b = make_scheduler("DPM++ 2M Karras", BASE), make_scheduler("DPM++ 2M Karras", BASE)
    a.set_timesteps(5)
    b.set_timesteps(30)
    assert a is not b and len(a.timesteps) == 5 and len(b.timesteps) == 30


def test_unknown_sampler_names_the_choices():
    with pytest.raises(ValueError, match="Unknown sampler 'Foo'.*Euler a"):
        make_scheduler("Foo", BASE)


def test_a1111_fields_round_trip():
    assert a1111_fields("DPM++ 2M Karras") == {"Sampler": "DPM++ 2M", "Schedule type": "Karras"}
    assert a1111_fields("Euler a") == {"Sampler": "Euler a"}
    for name in sampler_names():
        fields = a1111_fields(name)
        assert from_a1111_fields(fields["Sampler"], fields.get("Schedule type")) == name
    assert from_a1111_fields("DPM++ 2M", "Automatic") == "DPM++ 2M"
    assert from_a1111_fields("Restart") is None


def test_ancestral_and_sde_samplers_are_flagged_for_video():
    assert is_stochastic("Euler a") and is_stochastic("DPM2 a") and is_stochastic("DPM++ 2M SDE")
    assert not is_stochastic("DPM++ 2M Karras") and not is_stochastic("DDIM")
