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
    # sizes where TFLM's allocation says too small with a ValueError, runs out of the host's
    # memory, or ends the process with exit(3); and a file each try appends its size to
    VALUE, NO_MEMORY, EXIT, LOG = range(0), range(0), range(0), None

    def __init__(self, size: int) -> None:
        if self.LOG is not None:
            import resource

            with open(self.LOG, "a") as log:
                log.write(f"{os.getpid()} {size} {resource.getrlimit(resource.RLIMIT_CORE)[0]}\n")
        if size in self.CRASH:
            os.kill(os.getpid(), signal.SIGSEGV)
        if size in self.VALUE:
            raise ValueError("TFLM refused the arena")
        if size in self.NO_MEMORY:
            raise MemoryError("no memory for the arena")
        if size in self.EXIT:
            os._exit(3)
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


def test_arena_ceiling_sizes_every_tensor_type_and_every_subgraph(digits_run):
    """arena_ceiling by hand on the rest of the rule: each tensor type at TFLite's element
    size (float32, int32 and uint32 4 bytes; float16, int16 and uint16 2; int64 and float64 8;
    uint8, int8 and bool 1), a scalar without a shape one element, a buffer whose data
    vector is empty no constant (the tensor is counted), and a second subgraph's tensors
    counted as the first one's."""
    from tflite_edit import patched

    tflite = (digits_run / "model.tflite").read_bytes()
    sizes = {"FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "BOOL": 1,
             "INT16": 2, "INT8": 1, "FLOAT64": 8, "UINT32": 4, "UINT16": 2}

    def edit(model, graph, schema):
        def tensor(shape, dtype, buffer=0):
            t = schema.TensorT()
            t.shape, t.type, t.buffer, t.name = shape, dtype, buffer, b"t"
            return t

        empty_vector = schema.BufferT()
        empty_vector.data = []  # a data vector of length 0: not a constant
        model.buffers = [schema.BufferT(), empty_vector]
        graph.tensors = [tensor([2048, 1024], schema.TensorType.INT8)]  # 2 MiB: over the floor
        graph.tensors += [tensor([1024], getattr(schema.TensorType, name)) for name in sizes]
        graph.tensors += [tensor(None, schema.TensorType.INT8),          # a scalar: 1 -> 16
                          tensor([4000], schema.TensorType.INT8, 1)]     # 4000
        second = schema.SubGraphT()
        second.tensors = [tensor([4096], schema.TensorType.INT16)]       # 8192
        model.subgraphs.append(second)

    activations = (2 << 20) + 1024 * sum(sizes.values()) + 16 + 4000 + 8192
    assert tflm.arena_ceiling(patched(tflite, edit)) == 2 * activations + (1 << 20)


def _bisection(need: int, hi: int) -> list[int]:
    """The tries of a search of [16, hi] for a model that runs from ``need`` bytes: the top,
    then each midpoint rounded down to 16 bytes until the range is 16 bytes wide."""
    tries, lo = [hi], 16
    while hi - lo > 16:
        mid = (lo + hi) // 2 // 16 * 16
        tries.append(mid)
        if mid >= need:
            hi = mid
        else:
            lo = mid
    return tries


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the search forks where it can")
def test_the_search_tries_each_size_once_in_children_without_core_dumps(monkeypatch, tmp_path):
    """Each try's size, written by the try itself: the top once, then the bisection; a try
    that crashed its child is not tried again, nor the top, by the child that goes on from
    the range as narrowed; a child per crash; every child with core dumps off (a crashed
    try of a process with TensorFlow loaded dumped a core of its whole memory). Too small
    said with a ValueError is too small."""
    import resource

    monkeypatch.setattr(tflm, "interpreter", lambda _, size: _CrashingInterpreter(size))
    monkeypatch.setattr(_CrashingInterpreter, "LOG", tmp_path / "tries")
    monkeypatch.setattr(_CrashingInterpreter, "VALUE", range(4000, 5000))  # 4096
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    if hard != 0:  # a parent that would dump cores (here often none): the child must not
        resource.setrlimit(resource.RLIMIT_CORE, (hard if 0 < hard < 1 << 20 else 1 << 20, hard))
    try:
        size = tflm.minimal_arena(b"model")
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))
    tries = [line.split() for line in (tmp_path / "tries").read_text().splitlines()]
    assert [int(t[1]) for t in tries] == _bisection(7000, 1 << 22)
    crashed = [int(t[1]) for t in tries if int(t[1]) in _CrashingInterpreter.CRASH]
    assert crashed == [6144]  # the 4x4 model's crash; so two children
    assert len({t[0] for t in tries}) == 2 and str(os.getpid()) not in {t[0] for t in tries}
    assert {t[2] for t in tries} == {"0"}
    assert size == 7008


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
def test_the_search_runs_here_where_no_child_can_be_forked(monkeypatch):
    """A fork that fails (no memory or process slots) runs the search in this process, to
    the same size, with no pipe left open (nor after a search through crashed children)."""
    monkeypatch.setattr(tflm, "interpreter", lambda _, size: _CrashingInterpreter(size))
    before = len(os.listdir("/proc/self/fd"))
    assert tflm.minimal_arena(b"model") == 7008  # children, one crashed
    assert len(os.listdir("/proc/self/fd")) == before
    tried: list[int] = []
    monkeypatch.setattr(tflm, "interpreter",
                        lambda _, size: (tried.append(size), _CrashingInterpreter(size))[1])
    monkeypatch.setattr(_CrashingInterpreter, "CRASH", range(0))  # in this process: no crash

    def no_fork() -> int:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(os, "fork", no_fork)
    assert tflm.minimal_arena(b"model") == 7008
    assert tried == _bisection(7000, 1 << 22)
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the search forks where it can")
def test_a_child_out_of_memory_or_exiting_is_said_not_read_as_too_small(monkeypatch):
    """A try that ran out of the host's memory in the child is this process's MemoryError
    (the machine's limit, not the model's), with the size; a child that exited without a
    verdict (not killed by a signal, so no crash) is an error naming its status: neither
    reads as "too small", which made the search return a size far too large."""
    monkeypatch.setattr(tflm, "interpreter", lambda _, size: _CrashingInterpreter(size))
    monkeypatch.setattr(_CrashingInterpreter, "NO_MEMORY", range(1 << 21, 1 << 22))
    with pytest.raises(MemoryError, match=r"in the TFLM arena search at 2097152 bytes: "
                                          r"MemoryError: no memory for the arena"):
        tflm.minimal_arena(b"model")
    monkeypatch.setattr(_CrashingInterpreter, "NO_MEMORY", range(0))
    monkeypatch.setattr(_CrashingInterpreter, "EXIT", range(8192, 8193))
    with pytest.raises(RuntimeError, match="the TFLM arena search's child exited with status "
                                           "3 at 8192 bytes"):
        tflm.minimal_arena(b"model")


def test_arena_usage_reads_tflm_s_account_and_gives_fd_2_back(digits_run, capfd):
    """arena_usage: TFLM's RecordingMicroAllocator account of the digits model, the total
    the head (planned tensors) and the tail (persistent) together, each part non-empty; the
    account itself, printed on fd 2, stays out of the process's stderr, fd 2 is the same
    after, and no file is left open."""
    tflite = (digits_run / "model.tflite").read_bytes()
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    usage = tflm.arena_usage(tflite)
    assert set(usage) == {"total", "head", "tail"}
    assert usage["total"] == usage["head"] + usage["tail"] and min(usage.values()) > 0
    # the head holds at least the input (8x8x1) and the 10 logits, int8
    assert usage["head"] >= 64 + 10
    assert tflm.arena_usage(tflite, 1 << 20) == usage  # the same plan in a larger arena
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert err.endswith("after\n") and "Arena allocation" not in err
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) == before
