"""The on-device head trainer (firmware/lib/tsengine/src/ts_trainer.c) against its numpy
reference (tests/trainer_reference.py), on a real export of the real pipeline.

The C code is compiled with the host gcc (-std=c99 -Wall -Wextra -Werror, and once more with
-fsanitize=address,undefined) together with the export's ts_export_model.c, and driven by
tests/c/trainer_driver.c. Training features are the TFLM outputs of layer head_layer - 1
(the backbone), computed on the host; once the executor (ts_executor.c) exists, the
backbone path of the trainer (ts_train_head, cached and recomputed features) is checked too.

The export: $TINYSIFT_TRAINER_EXPORT (an export folder) if set, else a digits run built
(and cached by the stages' own skip logic) under runs/_scratch/trainer-digits.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import trainer_reference as ref
from tinysift.export.memory import trainer_workspace_bytes

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "firmware" / "lib" / "tsengine" / "src"
DRIVER = ROOT / "tests" / "c" / "trainer_driver.c"
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"]
SANITIZE = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all"]

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs host gcc")


# ---- the export ----------------------------------------------------------------------------

def _build_export() -> Path:
    from tinysift.stages.export import export
    from tinysift.stages.quantize import quantize
    from tinysift.stages.train import train

    run = ROOT / "runs" / "_scratch" / "trainer-digits"
    train("digits", run, epochs=30, seed=0, progress=False)
    quantize(run)
    export(run)
    return run / "export"


@pytest.fixture(scope="session")
def export_dir() -> Path:
    env = os.environ.get("TINYSIFT_TRAINER_EXPORT")
    path = Path(env) if env else _build_export()
    for name in ("golden.npz", "ts_export_model.c", "ts_export.h", "export.json"):
        assert (path / name).exists(), f"{path} lacks {name}"
    return path


@dataclass
class Model:
    feature_dim: int
    num_classes: int
    head_layer: int
    feature_scale: float
    feature_zero_point: int
    logit_scale: float
    logit_zero_point: int
    act_min: int
    act_max: int


@dataclass
class Data:
    xtr: np.ndarray
    ytr: np.ndarray
    xte: np.ndarray
    yte: np.ndarray
    head_w: np.ndarray
    head_b: np.ndarray


# ---- building the driver ---------------------------------------------------------------------

def _executor_sources() -> list[Path]:
    ex = ENGINE / "ts_executor.c"
    if not ex.exists():
        return []
    # what ts_run_layers links against, plus the trainer's backbone side
    return [ex, *sorted(ENGINE.glob("ts_kernels*.c")), *sorted(ENGINE.glob("ts_softmax*.c")),
            ENGINE / "ts_trainer_data.c"]


def _compile(export: Path, out: Path, extra: list[str], with_executor: bool) -> Path:
    srcs = [DRIVER, ENGINE / "ts_trainer.c", export / "ts_export_model.c"]
    defs = []
    if with_executor:
        srcs += [*_executor_sources(), export / "ts_export_data.c"]
        defs = ["-DTS_TEST_EXECUTOR"]
    cmd = ["gcc", *CFLAGS, *extra, *defs, f"-I{ENGINE}", f"-I{export}",
           *map(str, srcs), "-lm", "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    return out


@pytest.fixture(scope="session")
def driver(export_dir, tmp_path_factory) -> Path:
    return _compile(export_dir, tmp_path_factory.mktemp("drv") / "driver", [], False)


@pytest.fixture(scope="session")
def driver_asan(export_dir, tmp_path_factory) -> Path:
    return _compile(export_dir, tmp_path_factory.mktemp("asan") / "driver", SANITIZE, False)


def run(exe: Path, *args, stdin: str | None = None, check: bool = True) -> str:
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    r = subprocess.run([str(exe), *map(str, args)], input=stdin, capture_output=True,
                       text=True, timeout=600, env=env)
    if check:
        assert r.returncode == 0, f"{exe.name} {args}: rc {r.returncode}\n{r.stdout[-2000:]}" \
                                  f"\n{r.stderr[-4000:]}"
    return r.stdout


@pytest.fixture(scope="session")
def model(driver) -> Model:
    f = run(driver, "info").split("\n")[0].split()
    assert f[0] == "info"
    return Model(int(f[1]), int(f[2]), int(f[3]), float(np.float32(f[4])), int(f[5]),
                 float(np.float32(f[6])), int(f[7]), int(f[8]), int(f[9]))


@pytest.fixture(scope="session")
def data(export_dir, model) -> Data:
    """int8 backbone features of every exported training and test sample (TFLM)."""
    from tinysift.export.golden import layer_outputs

    g = np.load(export_dir / "golden.npz")
    tflite = (export_dir.parent / "model.tflite").read_bytes()
    h = model.head_layer
    xs = np.concatenate([g["x_train"], g["x_test"]])
    feats = layer_outputs(tflite, xs)[h - 1].reshape(len(xs), -1).astype(np.int8)
    n = len(g["x_train"])
    xtr, xte = feats[:n], feats[n:]
    assert xtr.shape[1] == model.feature_dim
    # the backbone's output for the test set is the golden layer output of layer h-1
    np.testing.assert_array_equal(xte, g[f"layer{h - 1}"].reshape(len(xte), -1))
    return Data(xtr, g["y_train"].astype(np.int64), xte, g["y_test"].astype(np.int64),
                g["head_w"].astype(np.float32), g["head_b"].astype(np.float32))


def write_input(path: Path, d: Data, w0: np.ndarray | None = None,
                b0: np.ndarray | None = None) -> Path:
    k, dim = d.head_w.shape
    with open(path, "wb") as fp:
        fp.write(b"TSTR")
        fp.write(struct.pack("<5I", len(d.ytr), len(d.yte), dim, k, 0 if w0 is None else 1))
        fp.write(d.xtr.astype(np.int8).tobytes())
        fp.write(d.ytr.astype(np.uint8).tobytes())
        fp.write(d.xte.astype(np.int8).tobytes())
        fp.write(d.yte.astype(np.uint8).tobytes())
        if w0 is not None:
            fp.write(np.asarray(w0, np.float32).tobytes())
            fp.write(np.asarray(b0, np.float32).tobytes())
    return path


@dataclass
class CResult:
    ws_size: int
    epochs: list[tuple[float, int, list[int]]]
    epochs_run: int
    test_count: int
    correct_initial: int
    correct_float: int
    correct_int8: int
    cycles: list[int]
    w: np.ndarray
    b: np.ndarray
    qw: np.ndarray
    qb: np.ndarray
    w_scale: float
    bias_scale: float
    multiplier: int
    shift: int
    logits8: np.ndarray


def parse(out: str, model: Model) -> CResult:
    lines = {}
    epochs = []
    for line in out.splitlines():
        if not line.strip():
            continue
        tag, *rest = line.split()
        if tag == "epoch":
            epochs.append((float(rest[1]), int(rest[2]), [int(c) for c in rest[3:]]))
        else:
            lines[tag] = rest
    assert "status" not in lines, f"trainer returned status {lines.get('status')}"
    k, d = model.num_classes, model.feature_dim
    r = [int(x) for x in lines["result"]]
    qs = lines["qs"]

    def hexf(tag):  # float32 bit patterns (the QEMU bench prints these)
        return np.array([int(h, 16) for h in lines[tag]], dtype=np.uint32).view(np.float32)

    if "wx" in lines:
        lines["w"], lines["b"] = hexf("wx"), hexf("bx")
        qs = [hexf("qsx")[0], hexf("qsbx")[0], qs[2], qs[3]]
    return CResult(
        ws_size=int(lines["ws_size"][0]), epochs=epochs, epochs_run=r[0], test_count=r[1],
        correct_initial=r[2], correct_float=r[3], correct_int8=r[4],
        cycles=[int(c) for c in lines["cycles"]],
        w=np.array(lines["w"], dtype=np.float32).reshape(k, d),
        b=np.array(lines["b"], dtype=np.float32),
        qw=np.array(lines["qw"], dtype=np.int64).reshape(k, d),
        qb=np.array(lines["qb"], dtype=np.int64),
        w_scale=float(np.float32(qs[0])), bias_scale=float(np.float32(qs[1])),
        multiplier=int(qs[2]), shift=int(qs[3]),
        logits8=np.array(lines["logits8"], dtype=np.int64).reshape(-1, k))


def reference(d: Data, m: Model, w0, b0, cfg: ref.HeadTrainConfig) -> ref.HeadTrainResult:
    return ref.train_head(d.xtr, d.ytr, d.xte, d.yte, w0, b0, feature_scale=m.feature_scale,
                          feature_zero_point=m.feature_zero_point, logit_scale=m.logit_scale,
                          logit_zero_point=m.logit_zero_point, act_min=m.act_min,
                          act_max=m.act_max, config=cfg)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|: the relative error of a weight tensor."""
    return float(np.max(np.abs(a.astype(np.float64) - b)) / np.max(np.abs(b)))


# ---- tests -------------------------------------------------------------------------------------

def test_sample_order_is_bit_exact(driver):
    for n, seed, epochs in ((1437, 1, 3), (7, 0, 4), (1, 5, 2), (300, 0xDEADBEEF, 2)):
        got = [np.array(line.split()[1:], dtype=np.int64)
               for line in run(driver, "order", n, seed, epochs).splitlines()]
        want = ref.epoch_order(n, epochs, seed)
        assert len(got) == epochs
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
            assert sorted(g.tolist()) == list(range(n))


def test_xorshift32_first_value():
    # from state 1: 1 ^ 1<<13 = 8193; 8193 >> 17 = 0; 8193 ^ 8193<<5 = 270369
    assert ref.xorshift32(1) == 270369
    assert ref.xorshift32(0) == 0  # why the trainer maps seed 0 to SEED_ZERO


INITS = ("export", "zeros", "rolled", "noisy")


@pytest.fixture(scope="session")
def trained(driver, data, model, tmp_path_factory):
    """C and numpy results for each head initialization (same config)."""
    cfg = ref.HeadTrainConfig(epochs=8, batch_size=32, learning_rate=0.05, momentum=0.9, seed=7)
    rng = np.random.default_rng(0)
    inits = {
        "export": (None, None),
        "zeros": (np.zeros_like(data.head_w), np.zeros_like(data.head_b)),
        # the exported head with its class rows rotated by one: confidently wrong
        "rolled": (np.roll(data.head_w, 1, axis=0), np.roll(data.head_b, 1)),
        "noisy": (data.head_w + rng.normal(0, 2 * data.head_w.std(), data.head_w.shape)
                  .astype(np.float32), data.head_b),
    }
    tmp = tmp_path_factory.mktemp("train")
    out = {}
    for name, (w0, b0) in inits.items():
        path = write_input(tmp / f"{name}.bin", data, w0, b0)
        c = parse(run(driver, "train", path, cfg.epochs, cfg.batch_size, cfg.learning_rate,
                      cfg.momentum, cfg.seed), model)
        wi = data.head_w if w0 is None else w0
        bi = data.head_b if b0 is None else b0
        out[name] = (c, reference(data, model, wi, bi, cfg), path)
    return cfg, out


@pytest.mark.parametrize("init", INITS)
def test_weights_match_reference(trained, init):
    cfg, res = trained
    c, r, _ = res[init]
    assert c.epochs_run == cfg.epochs
    assert rel_err(c.w, r.weights) <= 1e-4, rel_err(c.w, r.weights)
    assert rel_err(c.b, r.bias) <= 1e-4, rel_err(c.b, r.bias)
    # accuracy identical: every epoch's training count and both test counts
    assert [e[1] for e in c.epochs] == [e.correct for e in r.epochs]
    assert c.correct_initial == r.test_correct_initial
    assert c.correct_float == r.test_correct_float
    assert c.correct_int8 == r.test_correct_int8
    np.testing.assert_allclose([e[0] for e in c.epochs], [e.mean_loss for e in r.epochs],
                               rtol=1e-4)


@pytest.mark.parametrize("init", ("zeros", "rolled"))
def test_degraded_head_learns(trained, init):
    """From a head that is wrong, the loss falls and the test accuracy must rise."""
    cfg, res = trained
    c, _, _ = res[init]
    losses = [e[0] for e in c.epochs]
    assert losses[-1] < 0.5 * losses[0], losses
    assert sum(b < a for a, b in zip(losses, losses[1:], strict=False)) >= len(losses) - 2
    n = c.test_count
    assert c.correct_initial / n < 0.2
    assert c.correct_float / n > 0.85, (c.correct_initial, c.correct_float)
    assert c.correct_int8 / n > 0.85
    assert abs(c.correct_int8 - c.correct_float) <= 0.03 * n


def test_export_head_loss_falls(trained):
    _, res = trained
    c, _, _ = res["export"]
    losses = [e[0] for e in c.epochs]
    assert losses[-1] < losses[0]
    assert c.correct_float >= c.correct_initial - 0.02 * c.test_count


def test_requantized_head_equals_numpy(trained, data, model):
    """From the C run's own float weights, numpy re-quantizes to the same integers, and the
    int8 head outputs on every test sample are equal."""
    _, res = trained
    for c, _, _ in res.values():
        hq = ref.requantize_head(c.w, c.b, feature_scale=model.feature_scale,
                                 logit_scale=model.logit_scale)
        np.testing.assert_array_equal(c.qw, hq.weights)
        np.testing.assert_array_equal(c.qb, hq.bias)
        assert (c.w_scale, c.bias_scale) == (hq.weight_scale, hq.bias_scale)
        assert (c.multiplier, c.shift) == (hq.multiplier, hq.shift)
        assert 1 << 30 <= c.multiplier < 1 << 31
        out = ref.head_int8(data.xte, hq, feature_zero_point=model.feature_zero_point,
                            logit_zero_point=model.logit_zero_point, act_min=model.act_min,
                            act_max=model.act_max)
        np.testing.assert_array_equal(c.logits8, out)
        assert c.correct_int8 == int(np.sum(np.argmax(out, axis=1) == data.yte))


def test_requantized_export_head_matches_tflm(driver, data, model, export_dir, tmp_path):
    """Zero epochs: the exported float head re-quantized per tensor gives int8 logits within
    a few LSB of the TFLM head output (the export's own quantization), most of them equal."""
    path = write_input(tmp_path / "in.bin", data)
    c = parse(run(driver, "train", path, 0, 32, 0.05, 0.9, 1), model)
    assert c.epochs == [] and c.correct_initial == c.correct_float
    g = np.load(export_dir / "golden.npz")
    tflm = g[f"layer{model.head_layer}"].reshape(len(data.yte), -1).astype(np.int64)
    diff = np.abs(c.logits8 - tflm)
    assert diff.max() <= 3, diff.max()
    assert np.mean(diff == 0) > 0.8


def test_workspace_size_is_exact(trained, model, data):
    _, res = trained
    c, _, _ = res["export"]
    assert c.ws_size == trainer_workspace_bytes(model.num_classes, model.feature_dim,
                                                len(data.ytr))


# (K, D, N): the smallest, odd sizes, the digits exports, the sample limit, the largest head
# the trainer accepts (K*D = 2^24), and shapes it refuses (its size function then gives 0)
WS_CASES = [(1, 1, 0), (1, 1, 1), (2, 3, 7), (3, 5, 8), (10, 64, 300), (10, 64, 1437),
            (1, 1, 65535), (4096, 4096, 65535), (65536, 256, 1), (1, 65536, 0),
            (10, 64, 65536), (4097, 4096, 1), (65537, 1, 1)]


def _refused(k: int, d: int, n: int) -> bool:
    return n > 65535 or k > 65536 or d > 65536 or k * d > 1 << 24


def test_workspace_formula_c_and_python_agree(tmp_path):
    """TS_TRAINER_WORKSPACE_BYTES (the C macro: static arrays and runtime values) and
    ts_trainer_workspace_size() give the numbers of the memory plan's Python twin,
    tinysift.export.memory.trainer_workspace_bytes."""
    exe = tmp_path / "workspace_size"
    cmd = ["gcc", *CFLAGS, f"-I{ENGINE}", str(ROOT / "tests" / "c" / "workspace_size.c"),
           str(ENGINE / "ts_trainer.c"), "-lm", "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    out = run(exe, stdin="".join(f"{k} {d} {n}\n" for k, d, n in WS_CASES))
    rows = [line.split() for line in out.splitlines()]
    consts = [tuple(int(v) for v in row[1:]) for row in rows if row[0] == "const"]
    assert [c[:3] for c in consts] == [(1, 1, 0), (2, 3, 7), (10, 64, 1437)]
    for k, d, n, size in consts:
        assert size == trainer_workspace_bytes(k, d, n), (k, d, n)
    got = [tuple(int(v) for v in row[1:]) for row in rows if row[0] == "ws"]
    assert [g[:3] for g in got] == WS_CASES
    for k, d, n, macro, function in got:
        assert macro == trainer_workspace_bytes(k, d, n), (k, d, n)
        assert function == (0 if _refused(k, d, n) else macro), (k, d, n)
    assert trainer_workspace_bytes(10, 64, 1437) == 11074  # docs/trainer.md's digits figure


def test_cycle_counts(trained, driver, tmp_path, model):
    _, res = trained
    c, _, path = res["export"]
    assert all(x > 0 for x in c.cycles[1:]), c.cycles  # forward, backward, update, eval
    for _, _, cyc in c.epochs:
        assert all(x > 0 for x in cyc[1:4])
    # without a counter every count is zero
    z = parse(run(driver, "train", path, 2, 32, 0.05, 0.9, 7, "nocycles"), model)
    assert z.cycles == [0] * 5 and all(cyc == [0] * 5 for _, _, cyc in z.epochs)


def test_quantize_multiplier_and_mbqm(driver):
    from tinysift.export.quant_math import quantize_multiplier

    rng = np.random.default_rng(1)
    reals = np.concatenate([
        10.0 ** rng.uniform(-12, 2, 400), [0.0, 1.0, 0.5, 0.25, 2.0 ** -31, 2.0 ** -33,
                                           0.9999999999, 1 - 2.0 ** -33, 0.75, 3.0]])
    out = run(driver, "qm", stdin="\n".join(repr(float(x)) for x in reals) + "\n")
    got = [tuple(int(v) for v in line.split()) for line in out.splitlines()]
    for x, g in zip(reals, got, strict=True):
        assert g == quantize_multiplier(float(x)), x
    xs = np.concatenate([rng.integers(-(1 << 31), 1 << 31, 300),
                         [0, 1, -1, (1 << 31) - 1, -(1 << 31), 12345, -12345]])
    cases = [(int(x), int(m), int(s)) for x in xs
             for m, s in ((1 << 30, -3), (1518500250, -8), ((1 << 31) - 1, 0),
                          (1 << 30, 1), (1431655765, -31), (1073741824, -1))]
    out = run(driver, "mbqm", stdin="".join(f"{x} {m} {s}\n" for x, m, s in cases))
    got = np.array([int(v) for v in out.split()], dtype=np.int64)
    want = np.concatenate([ref.mbqm(np.array([x]), m, s) for x, m, s in cases])
    np.testing.assert_array_equal(got, want)


def test_status_codes_under_sanitizers(driver_asan, trained):
    _, res = trained
    _, _, path = res["export"]
    out = run(driver_asan, "errors", path)
    assert "fails 0" in out, out


def test_training_under_sanitizers(driver_asan, trained, model):
    """The whole run with ASan/UBSan and a workspace malloc'ed to exactly the size asked
    for: any write past it aborts. Same results as the optimized build."""
    cfg, res = trained
    c, _, path = res["noisy"]
    a = parse(run(driver_asan, "train", path, cfg.epochs, cfg.batch_size, cfg.learning_rate,
                  cfg.momentum, cfg.seed), model)
    assert a.correct_float == c.correct_float and a.correct_int8 == c.correct_int8
    assert rel_err(a.w, c.w) <= 1e-5


needs_executor = pytest.mark.skipif(not (ENGINE / "ts_executor.c").exists(),
                                    reason="the executor (ts_executor.c) is not there yet")


@pytest.fixture(scope="session")
def exec_drivers(export_dir, tmp_path_factory):
    """Drivers linked with the executor, built on first use: {"O2": path, "asan": path}."""
    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in built:
            built[kind] = _compile(export_dir, tmp_path_factory.mktemp(f"exec-{kind}") / "drv",
                                   SANITIZE if kind == "asan" else [], True)
        return built[kind]

    return get


@needs_executor
@pytest.mark.parametrize("kind", ("O2", "asan"))
@pytest.mark.parametrize("mode", ("cache", "nocache"))
def test_backbone_path(mode, kind, exec_drivers, driver, model, trained):
    """ts_train_head on the exported int8 sets: the backbone runs through the executor
    (features cached once, or recomputed every epoch without a cache) and the result equals
    training on the TFLM features, bit for bit (the executor is bit-exact with TFLM)."""
    cfg, res = trained
    args = (2, cfg.batch_size, cfg.learning_rate, cfg.momentum, cfg.seed)
    want = parse(run(driver, "train", res["export"][2], *args), model)
    c = parse(run(exec_drivers(kind), "dataset", mode, *args), model)
    np.testing.assert_array_equal(c.w, want.w)
    np.testing.assert_array_equal(c.b, want.b)
    np.testing.assert_array_equal(c.logits8, want.logits8)
    assert [e[:2] for e in c.epochs] == [e[:2] for e in want.epochs]
    assert (c.correct_initial, c.correct_float, c.correct_int8) == (
        want.correct_initial, want.correct_float, want.correct_int8)
    assert c.cycles[0] > 0
    if mode == "nocache":  # the backbone runs inside every epoch
        assert all(cyc[0] > 0 for _, _, cyc in c.epochs)
    else:  # only the one-off cache fill
        assert all(cyc[0] < c.cycles[0] // 10 for _, _, cyc in c.epochs)


@needs_executor
def test_backbone_status_codes(exec_drivers, trained):
    _, res = trained
    out = run(exec_drivers("asan"), "errors", res["export"][2])
    assert "fails 0" in out and "ok cache too small" in out, out


@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None
                    or shutil.which("arm-none-eabi-gcc") is None
                    or not (ENGINE / "ts_executor.c").exists(),
                    reason="needs qemu-system-arm, arm-none-eabi-gcc and the executor")
def test_on_qemu_m4f_matches_reference(export_dir, data, model):
    """The trainer on the emulated Cortex-M4F (hard float, newlib's expf/logf; backbone
    through the executor into the feature cache): the same numpy reference, same checks."""
    cfg = ref.HeadTrainConfig(epochs=2, batch_size=32, learning_rate=0.05, momentum=0.9, seed=7)
    r = subprocess.run([str(ROOT / "tools" / "bench_trainer.sh"), str(export_dir),
                        str(cfg.epochs), "m4f"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "counter systick-icount" in r.stdout
    c = parse(r.stdout, model)
    want = reference(data, model, data.head_w, data.head_b, cfg)
    assert rel_err(c.w, want.weights) <= 1e-4 and rel_err(c.b, want.bias) <= 1e-4
    assert [e[1] for e in c.epochs] == [e.correct for e in want.epochs]
    assert (c.correct_initial, c.correct_float, c.correct_int8) == (
        want.test_correct_initial, want.test_correct_float, want.test_correct_int8)
    hq = ref.requantize_head(c.w, c.b, feature_scale=model.feature_scale,
                             logit_scale=model.logit_scale)
    np.testing.assert_array_equal(c.qw, hq.weights)
    np.testing.assert_array_equal(c.qb, hq.bias)
    assert (c.w_scale, c.bias_scale, c.multiplier, c.shift) == (
        hq.weight_scale, hq.bias_scale, hq.multiplier, hq.shift)
    out = ref.head_int8(data.xte, hq, feature_zero_point=model.feature_zero_point,
                        logit_zero_point=model.logit_zero_point, act_min=model.act_min,
                        act_max=model.act_max)
    np.testing.assert_array_equal(c.logits8, out)
    assert all(x > 0 for x in c.cycles)
