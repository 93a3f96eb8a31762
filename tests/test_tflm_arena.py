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

    NEED, CRASH = 7000, range(5900, 6400)

    def __init__(self, size: int) -> None:
        if size in self.CRASH:
            os.kill(os.getpid(), signal.SIGSEGV)
        if size < self.NEED:
            raise RuntimeError("TFLM failed to allocate tensors")

    def get_input_details(self, _):
        return {"shape": (1, 2), "dtype": np.int8}

    def set_input(self, *_):
        pass

    def invoke(self):
        pass


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the search forks where it can")
def test_a_crashing_arena_size_counts_as_too_small(monkeypatch):
    """A segfault in a try killed `tinysift quantize` without a word (a model of 4x4 images
    crashes TFLM at a 6,144-byte arena): the try runs in a child, and its crash counts as
    too small."""
    tried: list[int] = []
    monkeypatch.setattr(tflm, "interpreter",
                        lambda _, size: (tried.append(size), _CrashingInterpreter(size))[1])
    size = tflm.minimal_arena(b"model")
    assert _CrashingInterpreter.NEED <= size < _CrashingInterpreter.NEED + 16
    assert tried == []  # every try ran in a child
    # crashing at the largest arena: the model does not run
    monkeypatch.setattr(_CrashingInterpreter, "CRASH", range(1 << 23))
    with pytest.raises(tflm.TinysiftError, match="does not run in TFLM even with a 4194304"):
        tflm.minimal_arena(b"model")


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
