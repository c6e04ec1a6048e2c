"""The Downloads accordion through gradio_client: a part in the Hugging Face cache lands in weights/ offline."""
from __future__ import annotations

import pytest

from tests.app.conftest import free_port
from tests.engine.test_downloads import fake_cache


@pytest.fixture
def downloads_app(tmp_path, monkeypatch):
    """The accordion alone over a manager whose weights/ is a temporary folder, served on loopback."""
    import gradio as gr
    from gradio_client import Client

    from engine.pipeline.manager import PipelineManager, RuntimeOptions
    from tabs import downloads

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"), weights_dir=tmp_path / "weights")
    with gr.Blocks() as demo:
        downloads.build(manager)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield Client(f"http://127.0.0.1:{port}/", verbose=False), tmp_path
    demo.close()


def test_download_from_the_cache_and_say_so_offline(downloads_app):
    client, root = downloads_app
    fake_cache(root / "hub", "ByteDance/Hyper-SD", {"Hyper-SD15-4steps-lora.safetensors": b"hyper"})
    part, note = client.predict("Hyper-SD15-4steps-lora", api_name="/download")
    assert (root / "weights" / "Lora" / "Hyper-SD15-4steps-lora.safetensors").read_bytes() == b"hyper"
    assert part["value"] == "Hyper-SD15-4steps-lora" and "is in the LoRA folder" in note
    labels = {name: label for label, name in part["choices"]}
    assert labels["Hyper-SD15-4steps-lora"].endswith(": present")
    assert labels["taesd"] == "taesd (TAESD, 5 MB): available to download"
    with pytest.raises(Exception, match="No network: HF_HUB_OFFLINE is set"):
        client.predict("animatediff-motion-adapter-v1-5-2", api_name="/download")
    with pytest.raises(Exception, match="Choose a part to download"):
        client.predict(None, api_name="/download")
