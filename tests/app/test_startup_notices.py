"""Starting the app prints no torchvision notices from transformers, and other library warnings still show."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import app  # everything the app imports at start, diffusers' pipelines and IP-Adapter loader included
from diffusers.loaders import ip_adapter  # noqa: F401  (imports SiglipImageProcessor)
from transformers.utils import logging
logging.get_logger("transformers.utils.import_utils").warning("another transformers warning")
logging.get_logger("transformers.modeling_utils").warning("a model warning")
"""


def test_importing_the_app_prints_no_torchvision_fallback_notice():
    quiet = ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY")  # the bench sets these in a process it shares
    env = {key: value for key, value in os.environ.items() if key not in quiet}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "torchvision" not in done.stderr + done.stdout
    assert "another transformers warning" in done.stderr and "a model warning" in done.stderr
