import sys
import types

from tabs.common import on_gpu


def test_generating_handlers_are_wrapped_for_zerogpu_when_spaces_is_present(monkeypatch):
    from app import build_demo
    from engine.manager import PipelineManager, RuntimeOptions

    wrapped = []

    def gpu(fn):
        wrapped.append(fn.__name__)
        return fn

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    build_demo(PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32")))
    assert {"txt2img", "img2img", "inpaint_run", "aging", "swap", "dream_run", "walk_run", "dream_resume",
            "walk_resume"} <= set(wrapped)


def test_left_alone_without_the_spaces_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)  # makes `import spaces` fail

    def handler():
        return 1
    assert on_gpu(handler) is handler


def test_readme_carries_the_spaces_front_matter():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    front = readme.split("---")[1]
    for line in ("sdk: gradio", "app_file: app.py", "sdk_version:"):
        assert line in front
