"""Replay-buffer upkeep (firmware/lib/tsengine/src/ts_replay.c) against its numpy reference
(tests/replay_reference.py): the kept set, sample for sample, on random streams; reservoir
sampling's inclusion probabilities; coverage's balance and uniformity; the workspace macro and
its Python twin. The C code is compiled with the host gcc (-std=c99 -Wall -Wextra -Werror, and with
ASan + UBSan) and driven by tests/c/replay_driver.c.

The device's `db stream` runs the same code (tests/test_device_stream.py checks the app's
kept set, natively and under QEMU).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import replay_reference as ref
from tinysift.export.memory import replay_workspace_bytes

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "firmware" / "lib" / "tsengine" / "src"
DRIVER = ROOT / "tests" / "c" / "replay_driver.c"
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"]
SANITIZE = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all"]

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs host gcc")


def _compile(out: Path, extra: list[str]) -> Path:
    # ts_replay.c draws with the trainer's xorshift32, which links the rest of the engine
    srcs = [DRIVER, *sorted(p for p in ENGINE.glob("ts_*.c") if p.name != "ts_version.c")]
    cmd = ["gcc", *CFLAGS, *extra, f"-I{ENGINE}", *map(str, srcs), "-lm", "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    return out


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    return _compile(tmp_path_factory.mktemp("replay") / "driver", [])


@pytest.fixture(scope="module")
def driver_asan(tmp_path_factory) -> Path:
    return _compile(tmp_path_factory.mktemp("replay-asan") / "driver", SANITIZE)


# ---- one stream, as the driver reads it -----------------------------------------------------

class Stream:
    """A stream and its buffer config: labels, features (N, D) int8 or None, and for
    coverage the codebook (K, C, D), counts (K,) and radius2 (K,)."""

    def __init__(self, policy, capacity, seed, labels, num_classes, features=None,
                 codebook=None, counts=None, radius2=None):
        self.policy, self.capacity, self.seed = policy, capacity, seed
        self.labels, self.k, self.features = np.asarray(labels), num_classes, features
        self.codebook, self.counts, self.radius2 = codebook, counts, radius2

    def text(self) -> str:
        cov = self.policy == "coverage"
        c, d = (self.codebook.shape[1], self.codebook.shape[2]) if cov else (0, 0)
        out = [f"run {int(cov)} {self.capacity} {self.seed} {self.k} {c} {d}"]
        if cov:
            out += [" ".join(map(str, self.counts)), " ".join(map(str, self.radius2)),
                    " ".join(map(str, self.codebook.reshape(-1).tolist()))]
        out.append(str(len(self.labels)))
        for i, y in enumerate(self.labels):
            f = "" if not cov else " " + " ".join(map(str, self.features[i].tolist()))
            out.append(f"{int(y)}{f}")
        return "\n".join(out) + "\n"

    def reference(self) -> ref.ReplayBuffer:
        return ref.run_stream(self.policy, self.capacity, self.seed, self.labels,
                              self.features, self.k, self.codebook, self.counts, self.radius2)


def parse_blocks(out: str) -> list[dict]:
    blocks, cur = [], {"kept": [], "class": [], "stats": None, "status": 0}
    for line in out.splitlines():
        w = line.split()
        if w[0] == "kept":
            cur["kept"].append((int(w[2]), int(w[3])))
        elif w[0] == "class":
            cur["class"].append((int(w[2]), int(w[3])))
        elif w[0] == "stats":
            cur["stats"] = tuple(int(v) for v in w[1:])
        elif w[0] == "status":
            cur["status"] = int(w[1])
        elif w[0] == "done":
            blocks.append(cur)
            cur = {"kept": [], "class": [], "stats": None, "status": 0}
    return blocks


def run_c(exe: Path, streams: list[Stream]) -> list[dict]:
    r = subprocess.run([str(exe)], input="".join(s.text() for s in streams),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    blocks = parse_blocks(r.stdout)
    assert len(blocks) == len(streams)
    return blocks


def random_stream(rng: np.random.Generator, policy: str, seed: int) -> Stream:
    """Random sizes, classes and features; for coverage a codebook with some classes
    exported (1..C codewords, sometimes fewer than C) and others online, radii around the
    typical distance so that the leader rule both opens and assigns."""
    k = int(rng.integers(1, 6))
    n = int(rng.integers(1, 120))
    b = int(rng.integers(1, 40))
    labels = rng.integers(0, k, n)
    if policy == "reservoir":
        return Stream(policy, b, seed, labels, k)
    c, d = int(rng.integers(1, 6)), int(rng.integers(1, 9))
    # clustered features: a few centres per class, small noise, so ties and near-ties occur
    centres = rng.integers(-128, 128, (k, 4, d))
    pick = rng.integers(0, 4, n)
    feats = np.clip(centres[labels, pick] + rng.integers(-6, 7, (n, d)), -128, 127)
    codebook = rng.integers(-128, 128, (k, c, d)).astype(np.int8)
    counts = np.where(rng.random(k) < 0.5, 0, rng.integers(1, c + 1, k))
    typical = int(np.median(((feats[:, None, :] - feats[None, :8, :]) ** 2).sum(-1)))
    radius2 = rng.integers(0, 2 * typical + 2, k)
    return Stream(policy, b, seed, labels, k, feats.astype(np.int8), codebook, counts, radius2)


def expected(buf: ref.ReplayBuffer) -> dict:
    classes = [buf.class_stats(c) for c in range(buf.k)] if buf.policy == "coverage" else []
    return {"kept": buf.compact(), "class": classes,
            "stats": (buf.seen, buf.kept, buf.codewords, buf.evicted), "status": 0}


# ---- tests ----------------------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["reservoir", "coverage"])
def test_kept_set_equals_reference(driver, policy):
    """200 random streams per policy (classes, lengths, buffer sizes, codebooks with exported
    and online classes): the C kept set (stream indices in slot order, codewords), per-class
    codewords seen and covered, and the counters are the reference's exactly."""
    rng = np.random.default_rng(11 if policy == "reservoir" else 12)
    streams = [random_stream(rng, policy, seed) for seed in range(200)]
    got = run_c(driver, streams)
    evictions = 0
    for s, g in zip(streams, got, strict=True):
        want = expected(s.reference())
        assert g == want, (s.text()[:300], g, want)
        evictions += want["stats"][3]
    if policy == "coverage":
        assert evictions > 0  # the balancing path ran


def test_under_sanitizers_and_status_codes(driver_asan):
    """The same streams under ASan + UBSan; refused configs and labels give status codes."""
    rng = np.random.default_rng(13)
    streams = [random_stream(rng, p, s) for s in range(30) for p in ("reservoir", "coverage")]
    for s, g in zip(streams, run_c(driver_asan, streams), strict=True):
        assert g == expected(s.reference())
    cb = np.zeros((2, 2, 3), np.int8)
    bad = [
        Stream("reservoir", 0, 1, [0], 1),                                  # B = 0: PARAM
        Stream("reservoir", 3, 1, [0, 2], 2),                               # label 2: DATA
        Stream("coverage", 3, 1, [0], 2, np.zeros((1, 3), np.int8), cb,
               [3, 0], [1, 1]),                                             # count > C: PARAM
    ]
    got = run_c(driver_asan, bad)
    assert [g["status"] for g in got] == [6, 7, 6]


SIZE_CASES = [(10, 2, 3, 5), (7, 3, 0, 0), (1, 1, 1, 1), (300, 10, 8, 64), (4760, 10, 16, 64),
              (65535, 256, 255, 100)]


def test_workspace_macro_and_python_twin_agree(driver):
    """TS_REPLAY_WORKSPACE_BYTES (as static array sizes and at run time) and
    ts_replay_workspace_size() give tinysift.export.memory.replay_workspace_bytes."""
    r = subprocess.run([str(driver)], input="".join(f"size {b} {k} {c} {d}\n"
                                                    for b, k, c, d in SIZE_CASES),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    consts = [tuple(int(v) for v in row[1:]) for row in rows if row[0] == "const"]
    assert [c[:4] for c in consts] == [(10, 2, 3, 5), (7, 3, 0, 0)]
    for b, k, c, d, size in consts:
        assert size == replay_workspace_bytes(b, k, c, d)
    sizes = [tuple(int(v) for v in row[1:]) for row in rows if row[0] == "size"]
    assert [s[:4] for s in sizes] == SIZE_CASES
    for b, k, c, d, macro, function in sizes:
        assert macro == function == replay_workspace_bytes(b, k, c, d), (b, k, c, d)
    assert replay_workspace_bytes(100, 10, 8, 64) == 6232  # 6*100 + 6*80 + 3*10 + 80*64, to 4


# Uniformity. S streams with seeds 1..S of N samples into B slots. For a correct sampler each
# index is kept with probability p = B / N; its count over S seeds is Binomial(S, p) (the
# seeds' xorshift32 streams stand in for independent draws). Per index we allow 4 standard
# deviations: a correct sampler fails one of 20 indices with probability about 20 * 6.3e-5 =
# 1.3e-3, and the fixed seeds make the outcome deterministic. With S = 20,000, 4 sigma is
# 0.012 at p = 0.25. We also bound the whole profile: the counts' sum of squared z-scores,
# which for a uniform B-subset (indicators with covariance -p(1-p)/(N-1)) is
# N/(N-1) * chi2(N-1), below its 99.9% point (chi2(19) 43.82 -> 46.1). Measured: max |z|
# 2.71, sum 20.3 (its expectation is 20); an off-by-one in the draw (j % t instead of
# j % (t + 1)) gives max |z| 14.2 and a sum of 1,194, "keep the first B" fails outright.
UNIFORM_SEEDS = 20_000
CHI2_19_999 = 43.82


def _z_scores(counts: np.ndarray, p: np.ndarray, s: int) -> np.ndarray:
    return (counts - s * p) / np.sqrt(s * p * (1 - p))


def test_reservoir_inclusion_is_uniform(driver):
    n, b, s = 20, 5, UNIFORM_SEEDS
    streams = [Stream("reservoir", b, seed, np.zeros(n, int), 1) for seed in range(1, s + 1)]
    counts = np.zeros(n)
    for blk in run_c(driver, streams):
        assert len(blk["kept"]) == b
        for idx, _ in blk["kept"]:
            counts[idx] += 1
    z = _z_scores(counts, np.full(n, b / n), s)
    assert np.abs(z).max() < 4.0, z
    assert (z ** 2).sum() < CHI2_19_999 * n / (n - 1), (z ** 2).sum()
    # the reference agrees on a subset of the seeds (the C code is checked against it above)
    for seed in (1, 2, 3):
        want = ref.run_stream("reservoir", b, seed, np.zeros(n, int), num_classes=1).compact()
        assert run_c(driver, [streams[seed - 1]])[0]["kept"] == want


def test_coverage_stratifies_a_class_by_codeword(driver):
    """One class, two exported codewords; the first 20 samples belong to the first, the next
    10 to the second (B = 7). The first codeword fills the buffer and keeps a reservoir of 7
    of its 20; the second then takes slots from it whenever its share kept falls below the
    first's, ending at the proportional 4 and 3 (7 x 20/30 = 4.7, 7 x 10/30 = 2.3). The first
    codeword's samples stay a uniform sample (uniform evictions from Algorithm R): each kept
    with probability 4/20. The second's are not: a sample that arrives when its codeword gains
    a slot is always kept (docs/trainer.md)."""
    n, b, s = 30, 7, UNIFORM_SEEDS
    feats = np.array([[-100]] * 20 + [[100]] * 10, np.int8)
    cb = np.array([[[-90], [90]]], np.int8)
    streams = [Stream("coverage", b, seed, np.zeros(n, int), 1, feats, cb, [2], [0])
               for seed in range(1, s + 1)]
    counts = np.zeros(n)
    for blk in run_c(driver, streams):
        assert [cw for _, cw in blk["kept"]].count(0) == 4
        assert [cw for _, cw in blk["kept"]].count(1) == 3
        for idx, _ in blk["kept"]:
            counts[idx] += 1
    z = _z_scores(counts[:20], np.full(20, 4 / 20), s)
    assert np.abs(z).max() < 4.0, z
    assert (z ** 2).sum() < CHI2_19_999 * 20 / 19, (z ** 2).sum()
    growth = counts[20:] / s  # the 4th and 9th samples of the second codeword: slots gained
    assert growth[3] > 0.4 and growth[8] > 0.85 and np.delete(growth, [3, 8]).max() < 0.3
    assert ref.run_stream("coverage", b, 5, np.zeros(n, int), feats, 1, cb, [2],
                          [0]).compact() == [tuple(k) for k in run_c(driver, [streams[4]])[0][
                                                  "kept"]]


def test_coverage_keeps_the_buffer_full_and_the_classes_balanced(driver):
    """After every offer of 300 random streams (the reference, checked against C on the final
    state), exported and online classes mixed, skewed class frequencies: the buffer holds
    min(B, samples offered); the per-class and per-codeword counts add up; and every class
    that lost or dropped a sample holds at least the largest class's count minus one. Plain
    reservoir sampling breaks the last rule on the same streams (the test can tell)."""
    rng = np.random.default_rng(14)
    streams, checked, reservoir_unbalanced = [], 0, 0
    for seed in range(300):
        s = random_stream(rng, "coverage", seed)
        skew = rng.dirichlet(np.full(s.k, 0.5))  # classes far from equally frequent
        s.labels = rng.choice(s.k, len(s.labels), p=skew)
        buf = ref.ReplayBuffer("coverage", s.capacity, s.seed, s.k, s.codebook, s.counts,
                               s.radius2)
        seen = np.zeros(s.k, int)
        for i, y in enumerate(s.labels):
            buf.offer(int(y), s.features[i])
            seen[y] += 1
            assert buf.kept == min(buf.b, i + 1)
            slots = [g for g in buf.slot_cw if g != ref.FREE]
            per_class = np.bincount([g // buf.c for g in slots], minlength=s.k)
            assert per_class.tolist() == buf.class_kept
            assert sum(buf.cw_kept) == buf.kept == len(slots)
            lost = per_class < seen
            assert (per_class[lost] >= per_class.max() - 1).all(), (per_class, seen)
            checked += int(lost.any())
        res = ref.run_stream("reservoir", s.capacity, s.seed, s.labels, num_classes=s.k)
        kept = np.bincount([int(s.labels[i]) for i, _ in res.compact()], minlength=s.k)
        reservoir_unbalanced += int(((kept < seen) & (kept < kept.max() - 1)).any())
        streams.append(s)
    assert checked > 3_000 and reservoir_unbalanced > 30, (checked, reservoir_unbalanced)
    for s, g in zip(streams, run_c(driver, streams), strict=True):
        assert g == expected(s.reference())
        assert sum(cov for _, cov in g["class"]) == len({cw for _, cw in g["kept"]})
