from bench.flops import efficiency, int8_matmul_peak, unet_step_flops, vae_decode_flops


def test_unet_flops_grow_with_the_image_area(tiny_manager):
    unet = tiny_manager.base().unet
    small, large = unet_step_flops(unet, 64), unet_step_flops(unet, 128)
    assert small > 0
    assert 3.0 < large / small <= 4.5
    assert unet.device.type == "cpu"


def test_vae_decode_flops_count_and_cfg_doubles_unet(tiny_manager):
    pipe = tiny_manager.base()
    assert vae_decode_flops(pipe.vae, 64) > 0
    one, two = unet_step_flops(pipe.unet, 64, batch=1), unet_step_flops(pipe.unet, 64, batch=2)
    assert abs(two / one - 2.0) < 0.01


def test_int8_peak_and_efficiency():
    assert int8_matmul_peak(n=128, repeats=2) > 0
    assert efficiency(2e12, 4.0, 1.0) == 0.5


def test_add_efficiency_uses_the_whole_image_floor(tiny_manager):
    from bench.flops import add_efficiency

    pipe = tiny_manager.base()
    out = {"matmul_tflops": {"bf16": 1.0}, "unet": {"flops_per_step": 1e12}, "ours": {"seconds": 8.0}}
    add_efficiency(out, pipe.vae, 64, steps=4)
    assert out["flops_per_image"] == 4e12 + out["vae_decode_flops"]
    assert abs(out["efficiency"] - out["flops_per_image"] / 1e12 / 8.0) < 1e-9
    assert out["matmul_tflops"]["int8"] > 0
