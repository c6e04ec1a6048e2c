"""The README's examples run as written: every `python -m engine` line, and the gradio_client snippet."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.S | re.M)


def engine_examples() -> list[str]:
    return [line.strip() for block in code_blocks("bash") for line in block.splitlines()
            if line.strip().startswith("python -m engine ")]


def test_the_readme_has_the_two_commands_and_engine_examples():
    blocks = code_blocks("bash")
    assert any(block.strip().endswith("python app.py") for block in blocks)
    assert any("python -m pytest" in block.strip().splitlines()[-1] for block in blocks)
    assert len(engine_examples()) >= 8


def test_every_cli_example_runs_as_written_on_the_shipped_photo(tmp_path, monkeypatch, capsys):
    """In order, in a fresh folder with the repo's presets/ beside it, as a user who copied the lines would.

    Each line goes through `python -m engine`'s own entry point in this process (tests/engine/test_cli.py starts
    real `python -m engine` processes), which spares a torch import per line.
    """
    from engine.cli import main

    (tmp_path / "presets").symlink_to(REPO / "presets")
    monkeypatch.chdir(tmp_path)
    for line in engine_examples():
        args = shlex.split(line)
        assert args[:3] == ["python", "-m", "engine"], line
        assert "--model" not in args or args[args.index("--model") + 1] == "tiny", line
        assert main(args[3:]) == 0, f"{line}\n{capsys.readouterr().err}"
        if "--out" in args:
            assert (tmp_path / args[args.index("--out") + 1]).is_file(), line


def test_the_gradio_client_example_runs_against_a_live_app(server, capsys):
    [snippet] = [block for block in code_blocks("python") if "gradio_client" in block]
    assert "http://127.0.0.1:7860/" in snippet
    exec(compile(snippet.replace("http://127.0.0.1:7860/", server), "README.md", "exec"), {})
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.endswith(".png") and Path(printed).is_file()


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt"])
def test_one_requirements_file_needs_no_second_install(name):
    text = (REPO / name).read_text()
    assert "--no-deps" not in text and "invisible-watermark" not in text
