"""The smallest TFLM arena: found even where TFLM crashes on arenas just too small."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from tinysift.quantize import tflm


class _CrashingInterpreter:
    """TFLM's behaviour around a model's arena: too small raises, a window of sizes just
    below the need crashes the process (as TFLM does after "Failed to populate a temp
    TfLiteTensor"), the need and above run."""

    NEED, CRASH, BROKEN, HANG = 7000, range(5900, 6400), range(0), range(0)

    def __init__(self, size: int) -> None:
        if size in self.CRASH:
            os.kill(os.getpid(), signal.SIGSEGV)
        if size in self.BROKEN:
            raise KeyError("an API change")
        if size in self.HANG:
            import time

            time.sleep(60)
        if size < self.NEED:
            raise RuntimeError("TFLM failed to allocate tensors")

    def get_input_details(self, _):
        return {"shape": (1, 2), "dtype": np.int8}

    def set_input(self, *_):
        pass

    def invoke(self):
        pass


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the search forks where it can")
def test_an_expected_crash_prints_nothing_under_faulthandler(tmp_path):
    """Under faulthandler (pytest, PYTHONFAULTHANDLER), inherited by the forked child, every
    crashed try printed "Fatal Python error: Segmentation fault" and a 50-line stack."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import os, signal\n"
            "from tinysift.quantize import tflm\n"
            "class Crash:\n"
            "    def __init__(self, size):\n"
            "        if 5900 <= size < 6400:\n"
            "            os.kill(os.getpid(), signal.SIGSEGV)\n"
            "        if size < 7000:\n"
            "            raise RuntimeError('too small')\n"
            "    def get_input_details(self, _):\n"
            "        return {'shape': (1, 2), 'dtype': __import__('numpy').int8}\n"
            "    def set_input(self, *_):\n"
            "        pass\n"
            "    def invoke(self):\n"
            "        pass\n"
            "tflm.interpreter = lambda _, size: Crash(size)\n"
            "print(tflm.minimal_arena(b'model'))\n")
    host = str(Path(__file__).resolve().parents[1] / "host")
    done = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], timeout=300,
                          capture_output=True, text=True, env={"PYTHONPATH": host})
    assert done.returncode == 0, done.stderr[-2000:]
    assert 7000 <= int(done.stdout) < 7016 and "Fatal Python error" not in done.stderr


def test_a_crashing_arena_size_counts_as_too_small(monkeypatch):
    """A segfault in a try killed `tinysift quantize` without a word (a model of 4x4 images
    crashes TFLM at a 6,144-byte arena): the try runs in a child, and its crash counts as
    too small."""
    tried: list[int] = []
    monkeypatch.setattr(tflm, "interpreter",
                        lambda _, size: (tried.append(size), _CrashingInterpreter(size))[1])
    size = tflm.minimal_arena(b"model")
    assert _CrashingInterpreter.NEED <= size < _CrashingInterpreter.NEED + 16
    assert size % 16 == 0  # TFLM's arena granularity: 7008, not a size in between
    assert tried == []  # every try ran in a child
    # crashing at the largest arena: the model does not run
    monkeypatch.setattr(_CrashingInterpreter, "CRASH", range(1 << 23))
    with pytest.raises(tflm.TinysiftError, match="does not run in TFLM even with a 4194304"):
        tflm.minimal_arena(b"model")
    monkeypatch.setattr(_CrashingInterpreter, "CRASH", range(0))
    # any other error of a try is raised, not read as "too small" (which made the search
    # return a size that may be far too large, silently)
    monkeypatch.setattr(_CrashingInterpreter, "BROKEN", range(7100, 100_000))
    with pytest.raises(RuntimeError, match=r"arena search failed at \d+ bytes: KeyError: "
                                           r"'an API change'"):
        tflm.minimal_arena(b"model")
    monkeypatch.setattr(_CrashingInterpreter, "BROKEN", range(0))
    # a try that hangs is stopped, and the child with it
    monkeypatch.setattr(_CrashingInterpreter, "HANG", range(7100, 100_000))
    monkeypatch.setattr(tflm, "ARENA_TRY_TIMEOUT", 1.0)
    children: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            children.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    with pytest.raises(tflm.TinysiftError, match=r"did not finish a try of a \d+-byte arena "
                                                 r"within 1 s"):
        tflm.minimal_arena(b"model")
    assert len(children) == 1
    with pytest.raises(ChildProcessError):  # reaped: no child left behind
        os.waitpid(children[0], os.WNOHANG)


def test_a_model_of_tiny_images_quantizes(tmp_path, write_npz):
    """The real crash: a model trained on 4x4 images segfaulted in quantize's arena search."""
    from tinysift.stages.quantize import quantize
    from tinysift.stages.train import train

    rng = np.random.default_rng(0)
    name = write_npz(x=rng.integers(0, 256, (200, 4, 4)).astype(np.uint8),
                     y=np.arange(200) % 4)
    train(name, tmp_path / "run", epochs=1, seed=0, progress=False)
    res = quantize(tmp_path / "run", progress=False)
    assert 4096 < res.arena_bytes < 16384


def test_arena_ceiling_counts_every_non_constant_tensor_by_hand(digits_run):
    """The largest arena the search tries (tflm.arena_ceiling): twice every non-constant
    tensor's bytes (each rounded up to 16; int8 1 byte, float32 4, int16 2, a type the table
    lacks 8; a dynamic -1 dimension counted as 1) plus 1 MiB, at least 4 MiB. A tensor list
    set by hand in a real .tflite, so the sum is known: a constant (its buffer holds data)
    counts nothing, however large (the digits model's own tensors get the floor)."""
    from tflite_edit import patched

    tflite = (digits_run / "model.tflite").read_bytes()

    def edit(model, graph, schema):
        def tensor(shape, dtype, buffer=0):
            t = schema.TensorT()
            t.shape, t.type, t.buffer, t.name = shape, dtype, buffer, b"t"
            return t

        empty, data = schema.BufferT(), schema.BufferT()
        data.data = [1, 2, 3, 4]
        model.buffers = [empty, data]
        graph.tensors = [
            tensor([1, 1024, 1024, 1], schema.TensorType.INT8),      # 1 MiB
            tensor([1, 512, 512, 1], schema.TensorType.FLOAT32),     # 1 MiB
            tensor([3], schema.TensorType.INT8),                     # 3 -> 16
            tensor([-1, 1001], schema.TensorType.INT16),             # 2002 -> 2016
            tensor([1000], 99),                                      # unknown type: 8000
            tensor([1, 2048, 2048, 1], schema.TensorType.INT8, 1),   # a constant: 0
        ]

    activations = (1 << 20) + (1 << 20) + 16 + 2016 + 8000
    assert tflm.arena_ceiling(patched(tflite, edit)) == 2 * activations + (1 << 20)
    # a model of small tensors gets the 4 MiB floor
    assert tflm.arena_ceiling(tflite) == 1 << 22
