import pytest
import torch

from engine.pipeline.devices import cpu_supports_bf16, pick_device, pick_dtype


def test_bf16_only_where_the_cpu_has_bf16_instructions():
    assert cpu_supports_bf16({"avx2", "amx_bf16"})
    assert cpu_supports_bf16({"avx512_bf16"})
    assert not cpu_supports_bf16({"avx2", "avx512f"})
    assert pick_dtype("cpu", flags={"avx2"}) == torch.float32
    assert pick_dtype("cpu", flags={"amx_bf16"}) == torch.bfloat16


def test_dtype_flag_overrides_and_gpus_get_fp16():
    assert pick_dtype("cpu", "float32", flags={"amx_bf16"}) == torch.float32
    assert pick_dtype("cuda") == torch.float16
    with pytest.raises(ValueError, match="Unknown dtype"):
        pick_dtype("cpu", "float8")


def test_device_requests_are_checked():
    assert pick_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            pick_device("cuda")
    with pytest.raises(ValueError, match="Unknown device"):
        pick_device("tpu")
