import socket

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="package")
def server(tmp_path_factory):
    """The app on the tiny model, served on loopback for gradio_client."""
    import os

    from app import build_demo
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    os.environ["STUDIO_OUTPUT_DIR"] = str(tmp_path_factory.mktemp("app-outputs"))
    demo = build_demo(PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32")))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="package")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)
