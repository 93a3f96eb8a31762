"""TensorFlow starts quietly: its start-up notes on a CPU-only machine are dropped, every
other line it writes while starting still reaches the user."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tinysift.tfcompat import startup_noise_removed

HOST = str(Path(__file__).resolve().parents[1] / "host")

# what TensorFlow 2.21 writes on this machine (CPU only), and a line it must not swallow
NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796459670.467232   13370 port.cc:153] oneDNN custom operations are on. You "
    "may see slightly different numerical results\n"
    "I0000 00:00:1796459670.468384   13370 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.\n"
    "E0000 00:00:1796459673.487237   13370 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n\n")
REAL = "E0000 00:00:1.0 1 cuda_dnn.cc:8579] Unable to register cuDNN factory\n"


def test_only_the_known_notes_are_dropped():
    assert startup_noise_removed(NOISE) == ""
    assert startup_noise_removed(NOISE + REAL + NOISE) == REAL
    assert startup_noise_removed("warning: a\nwarning: b") == "warning: a\nwarning: b"


def _import_stderr(before: str = "") -> str:
    code = before + "import tinysift.tfcompat as c; c.tf.constant(1.0) + 1.0\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": HOST, "PATH": "/usr/bin:/bin"}, timeout=300,
                          check=True)
    return done.stderr


def test_import_writes_no_startup_notes_but_keeps_other_lines():
    # a finder that writes a line of its own to file descriptor 2 (as TensorFlow's C++
    # does) while tf_keras is imported: it must come through, the notes must not
    writes_on_import = (
        "import os, sys, importlib.abc\n"
        "class Loud(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'tf_keras':\n"
        "            os.write(2, b'E0000 something real went wrong\\n')\n"
        "        return None\n"
        "sys.meta_path.insert(0, Loud())\n")
    err = _import_stderr(writes_on_import)
    assert "something real went wrong" in err
    for note in ("InitializeLog", "oneDNN", "cuda drivers", "cuInit"):
        assert note not in err, err
