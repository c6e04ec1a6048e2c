"""Upscalers and face restorers copied into weights/ are offered when their tab is opened, without a restart."""
from types import SimpleNamespace

from safetensors.torch import save_file


def choices(dropdown) -> list[str]:
    return [value for _, value in dropdown.choices]


def test_models_copied_in_are_offered_when_their_tab_opens(tmp_path):
    from spandrel.architectures.Compact import Compact

    from tabs.extras import refreshed_upscalers
    from tabs.faces_common import refresh_restorers
    from tests.engine.test_restore import tiny_restorer_weights

    manager = SimpleNamespace(weights_dir=tmp_path)
    menu, visibility = refresh_restorers(manager)
    assert choices(menu) == ["None"] and menu.interactive is False and visibility.interactive is False
    assert "weights/GFPGAN" in menu.info
    before = choices(refreshed_upscalers(manager))
    assert before == ["Lanczos"]

    tiny_restorer_weights(tmp_path)
    (tmp_path / "ESRGAN").mkdir()
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=4, num_conv=1, upscale=2)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "ESRGAN" / "crisp.safetensors")
    menu, visibility = refresh_restorers(manager)
    assert "RestoreFormer" in choices(menu) and menu.interactive is True and visibility.interactive is True
    assert choices(refreshed_upscalers(manager)) == [*before, "crisp"]
