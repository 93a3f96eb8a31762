"""The firmware engine (firmware/lib/tsengine) is bit-exact with the TFLM runtime.

Real exports of the real pipeline (train -> quantize -> export), real compilers, no mocks:

* host gcc, ``-std=c99 -Wall -Wextra -Werror``, once plain (-O2) and once with
  ``-fsanitize=address,undefined``, each with the scalar and the DSP kernels
  (``-DTS_USE_DSP=0/1``; on the host the DSP instructions are emulated in C): the program
  firmware/test/test_golden/test_main.c runs ``ts_invoke`` on every exported test sample and
  compares with TFLM's outputs (100% equal, >= 200 inputs); on a mismatch it names the first
  layer that differs;
* QEMU mps2-an386 (Cortex-M4F, the real SMLAD path) through PlatformIO (``tools/pio test -e
  qemu-m4 -f test_golden`` with ``TS_EXPORT_DIR``), marked ``qemu``;
* firmware/test/test_engine: malformed layer tables -> status codes, random corruptions, DSP
  path == scalar path, under the sanitizers;
* which MultiplyByQuantizedMultiplier TFLM's wheel uses (double rounding), from its outputs.

Exports: ``$TINYSIFT_GOLDEN_EXPORTS`` (export folders separated by ``os.pathsep``) if set,
else built (and cached by the stages' skip logic, whose quantize and export keys count their
code: an edit of quant_math or c_writer exports again) under runs/_scratch/: digits ds-cnn
(shared with tests/test_trainer.py), and, marked slow, digits with QAT (a QUANTIZE op), the demo
ds-cnn on Fashion-MNIST 28x28x1 and a conv-maxpool model on 32x32x3 (Fashion-MNIST padded
and stacked, tools/make_rgb32.py; MAX_POOL_2D and VALID padding).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tools_needed import need_tools

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "firmware" / "lib" / "tsengine" / "src"
ENGINE_SRCS = [ENGINE / n for n in ("ts_executor.c", "ts_kernels.c", "ts_kernels_dsp.c",
                                    "ts_kernels_elementwise.c", "ts_softmax.c")]
# test_engine also checks the trainer's and the replay buffer's size rules
TRAINER_SRCS = [ENGINE / n for n in ("ts_trainer.c", "ts_trainer_data.c", "ts_trainer_tail.c",
                                     "ts_tflite.c", "ts_replay.c")]
TESTS = ROOT / "firmware" / "test"
RUNTIME_INC = ROOT / "boards" / "runtime" / "include"
RUNTIME_SRCS = [ROOT / "boards" / "runtime" / "src" / "ts_format.c",
                ROOT / "boards" / "platform-native" / "runtime" / "ts_platform_native.c"]
PIO = ROOT / "tools" / "pio"
SCRATCH = ROOT / "runs" / "_scratch"

CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror"]
BUILDS = {
    "O2": ["-O2"],
    "asan": ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
             "-fno-sanitize-recover=all"],
}
GOLDEN_RE = re.compile(r"^GOLDEN hash=(?P<hash>\S+) layers=(?P<layers>\d+) inputs=(?P<inputs>\d+) "
                       r"equal=(?P<equal>\d+) dsp=(?P<dsp>\d) platform=(?P<platform>\S+)", re.M)
DONE_RE = re.compile(r"^TS_TESTS_DONE (\d+) Tests (\d+) Failures", re.M)
LAYER_RE = re.compile(r"^GOLDEN_LAYER sample=\d+ first_diff=(?P<layer>\d+) op=(?P<op>\S+)", re.M)
PERF_RE = re.compile(r"^GOLDEN_PERF .* macs=(?P<macs>\d+) ", re.M)
MIN_INPUTS = 200



@pytest.fixture(scope="module", autouse=True)
def _gcc_present():
    need_tools("gcc")


# ---- the exports (real pipeline) ---------------------------------------------------------------

def _rgb32_dataset() -> str:
    path = SCRATCH / "data" / "fmnist-rgb32.npz"
    if not path.exists():
        sys.path.insert(0, str(ROOT / "tools"))
        try:
            import make_rgb32
        finally:
            sys.path.pop(0)
        make_rgb32.main(["--out", str(path), "--train", "6000", "--test", "1000"])
    return f"npz:{path}"


def _build_export(name: str) -> Path:
    from scratch import scratch_run
    from tinysift.stages.export import export
    from tinysift.stages.quantize import quantize
    from tinysift.stages.train import train

    run_name = {"digits": "trainer-digits"}.get(name, f"golden-{name}")
    with scratch_run(run_name) as run:
        if name == "digits":  # the same run as tests/test_trainer.py: built once, then skipped
            train("digits", run, epochs=30, seed=0, progress=False)
            quantize(run)
            export(run)
        elif name == "digits-qat":
            train("digits", run, epochs=30, seed=0, progress=False)
            quantize(run, qat=True)
            export(run, test_samples=MIN_INPUTS)
        elif name == "fmnist":
            train("fashion-mnist", run, keep=3000, epochs=3, seed=0, progress=False)
            quantize(run)
            export(run, test_samples=MIN_INPUTS)
        elif name == "rgb32":
            train(_rgb32_dataset(), run, keep=3000, epochs=3, seed=0, variant="conv-maxpool",
                  progress=False)
            quantize(run)
            export(run, test_samples=MIN_INPUTS, fit=True)  # 3072-byte samples: fit 4 MB flash
        elif name in ("kernels", "kernels-per-tensor"):
            _kernels_run(run, per_channel=name == "kernels")
            export(run, test_samples=MIN_INPUTS)
        else:
            raise ValueError(name)
    return run / "export"


def _kernels_run(run: Path, per_channel: bool) -> None:
    """A run folder (the digits run's manifest and kept set) whose model exercises what the
    pipeline's models do not: a dilated CONV_2D (2x2 and 2x1), DEPTHWISE_CONV_2D with depth
    multiplier 2 and with dilation, VALID padding, and a CONV_2D whose effective scale is
    above 1 (a left shift in its requantization: huge weights into a relu6);
    seeded and untrained (TF has no dilated-conv gradient on CPU); converted per channel
    (TFLite's default) or per tensor."""
    import shutil

    if (run / "model.tflite").exists():
        return
    from tinysift.data import load_dataset
    from tinysift.models.training import to_float
    from tinysift.quantize.convert import quiet_stderr
    from tinysift.tfcompat import keras, tf

    layers = keras.layers

    class Dilated(layers.Layer):
        """A dilated conv or depthwise conv as one TF op (Keras' own lowers dilation to
        SPACE_TO_BATCH_ND, which the converter does not always fold back)."""

        def __init__(self, filters, size, rate, padding, depthwise=False, relu=False, **kw):
            super().__init__(**kw)
            self.filters, self.size, self.rate = filters, size, rate
            self.padding, self.depthwise, self.relu = padding, depthwise, relu

        def build(self, shape):
            cin = int(shape[-1])
            out = self.filters if not self.depthwise else 1
            self.kernel = self.add_weight("kernel", (*self.size, cin, out),
                                          initializer="glorot_uniform")
            self.bias = self.add_weight("bias", (cin if self.depthwise else self.filters,),
                                        initializer="zeros")

        def call(self, x):
            if self.depthwise:
                y = tf.raw_ops.DepthwiseConv2dNative(
                    input=x, filter=self.kernel, strides=[1, 1, 1, 1], padding=self.padding,
                    dilations=[1, *self.rate, 1])
            else:
                y = tf.nn.conv2d(x, self.kernel, 1, self.padding, dilations=self.rate)
            y = y + self.bias
            return tf.nn.relu(y) if self.relu else y

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    x = Dilated(8, (3, 3), (2, 2), "SAME", relu=True, name="dil")(inp)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu6",
                               name="dm2")(x)
    x = Dilated(0, (3, 3), (2, 2), "VALID", depthwise=True, name="dwdil")(x)
    x = Dilated(12, (3, 1), (2, 1), "SAME", relu=True, name="dil21")(x)
    # weights far above what the input and output ranges need: s_in * s_w > s_out
    x = layers.Conv2D(12, 1, activation="relu6", name="gain",
                      kernel_initializer=keras.initializers.RandomNormal(stddev=1e5))(x)
    x = layers.AveragePooling2D(pool_size=(4, 4), name="gap")(x)
    out = layers.Softmax(name="softmax")(layers.Dense(10, name="head")(layers.Flatten()(x)))
    model = keras.Model(inp, out)  # seeded, untrained: bit-exactness needs no accuracy
    ds = load_dataset("digits")

    def rep():
        for i in range(200):
            yield [to_float(ds.x_train[i:i + 1])]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    conv._experimental_disable_per_channel = not per_channel
    with quiet_stderr():
        tflite = bytes(conv.convert())
    digits = _build_export("digits").parent  # its manifest (dataset) and kept set
    run.mkdir(parents=True, exist_ok=True)
    for f in ("manifest.json", "trainset.npz", "model.keras"):
        shutil.copy(digits / f, run / f)
    (run / "model.tflite").write_bytes(tflite)
    # The manifest then says quantize wrote this model.tflite (export checks the lineage
    # train -> quantize -> export; this run's .tflite stands in for the digits one).
    from tinysift.runs import Run, file_hash

    r = Run(run)
    r.manifest["stages"]["quantize"]["outputs"]["model.tflite"] = file_hash(run / "model.tflite")
    r.manifest["stages"].pop("export", None)
    r.save()


def _env_exports() -> list[Path] | None:
    raw = os.environ.get("TINYSIFT_GOLDEN_EXPORTS")
    return [Path(p) for p in raw.split(os.pathsep) if p] if raw else None


def _export_params():
    env = _env_exports()
    if env is not None:
        return [pytest.param(str(p), id=p.parent.name) for p in env]
    slow = pytest.mark.slow
    return [pytest.param("digits", id="digits"),
            pytest.param("kernels", id="kernels"),
            pytest.param("kernels-per-tensor", id="kernels-per-tensor"),
            pytest.param("digits-qat", id="digits-qat", marks=slow),
            pytest.param("fmnist", id="fmnist-28x28x1", marks=slow),
            pytest.param("rgb32", id="rgb32-32x32x3", marks=slow)]


_EXPORTS: dict[str, Path] = {}


def get_export(name: str) -> Path:
    if name not in _EXPORTS:
        path = Path(name) if _env_exports() is not None else _build_export(name)
        for f in ("ts_export.h", "ts_export_model.c", "ts_export_data.c", "ts_export_golden.c",
                  "golden.npz", "export.json"):
            assert (path / f).exists(), f"{path} lacks {f}"
        _EXPORTS[name] = path
    return _EXPORTS[name]


@pytest.fixture(scope="module")
def objdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("engine-golden")


def gcc(args: list[str], what: str) -> None:
    r = subprocess.run(["gcc", *args], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.fail(f"gcc failed building {what}:\n{r.stderr[-4000:]}")


_OBJ_CACHE: dict[tuple[str, str], list[Path]] = {}


def export_objects(export: Path, build: str, objdir: Path) -> list[Path]:
    """The export's .c files compiled once per build flavour (the data files are large)."""
    key = (str(export), build)
    if key not in _OBJ_CACHE:
        out = objdir / f"export-{abs(hash(key))}"
        out.mkdir(exist_ok=True)
        objs = []
        for name in ("ts_export_model.c", "ts_export_data.c", "ts_export_golden.c"):
            obj = out / name.replace(".c", ".o")
            gcc([*CFLAGS, *BUILDS[build], "-O0" if name == "ts_export_data.c" else "-O1",
                 f"-I{ENGINE}", f"-I{export}", "-c", str(export / name), "-o", str(obj)],
                f"{export}/{name}")
            objs.append(obj)
        _OBJ_CACHE[key] = objs
    return _OBJ_CACHE[key]


_ENGINE_OBJ_CACHE: dict[tuple[str, str, tuple[str, ...]], list[Path]] = {}


def engine_objects(build: str, defines: list[str], objdir: Path) -> list[Path]:
    """The engine and runtime sources compiled once per build flavour and set of defines
    (they include neither the export nor the tests' headers): 24 golden programs compiled
    the same five engine files again each, about a minute of the suite's time."""
    key = (str(objdir), build, tuple(defines))
    if key not in _ENGINE_OBJ_CACHE:
        out = objdir / f"engine-objs-{abs(hash(key))}"
        out.mkdir(exist_ok=True)
        objs = []
        for src in (*ENGINE_SRCS, *RUNTIME_SRCS):
            obj = out / f"{src.stem}.o"
            gcc([*CFLAGS, *BUILDS[build], *[f"-D{d}" for d in defines], f"-I{ENGINE}",
                 f"-I{RUNTIME_INC}", "-c", str(src), "-o", str(obj)], str(src))
            objs.append(obj)
        _ENGINE_OBJ_CACHE[key] = objs
    return _ENGINE_OBJ_CACHE[key]


def build_program(main: Path, exe: Path, build: str, defines: list[str],
                  extra: list[Path] = (), include: list[Path] = ()) -> Path:
    engine = engine_objects(build, defines, exe.parent)
    gcc([*CFLAGS, *BUILDS[build], *[f"-D{d}" for d in defines], f"-I{ENGINE}",
         f"-I{RUNTIME_INC}", f"-I{TESTS}", *[f"-I{p}" for p in include], str(main),
         *map(str, engine), *map(str, extra), "-o", str(exe), "-lm"], str(main))
    return exe


def run_program(exe: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    return subprocess.run([str(exe)], capture_output=True, text=True, timeout=timeout, env=env)


def check_golden_output(text: str, export: Path, returncode: int) -> re.Match:
    m = GOLDEN_RE.search(text)
    assert m, f"no GOLDEN line in the output:\n{text[-3000:]}"
    info = json.loads((export / "export.json").read_text())
    assert m["hash"] == info["content_hash"]
    inputs, equal = int(m["inputs"]), int(m["equal"])
    layer = LAYER_RE.search(text)
    assert inputs >= MIN_INPUTS, f"only {inputs} golden inputs (export more test samples)"
    assert equal == inputs, (f"{inputs - equal} of {inputs} outputs differ from TFLM; first "
                             f"differing layer: {layer.group(0) if layer else '?'}\n{text[-3000:]}")
    done = DONE_RE.search(text)
    assert done and done.group(2) == "0" and returncode == 0, text[-3000:]
    # the engine's MAC count (ts_layer_macs) is the exporter's, from the .tflite's shapes
    perf = PERF_RE.search(text)
    assert perf and int(perf["macs"]) == info["macs"], (perf and perf.group(0), info["macs"])
    return m


# ---- host: every export, scalar and DSP kernels, plain and sanitized -----------------------------

@pytest.mark.parametrize("dsp", [0, 1], ids=["scalar", "dsp"])
@pytest.mark.parametrize("build", list(BUILDS))
@pytest.mark.parametrize("name", _export_params())
def test_golden_bit_exact_native(name, build, dsp, objdir):
    export = get_export(name)
    exe = build_program(TESTS / "test_golden" / "test_main.c",
                        objdir / f"golden-{abs(hash((name, build, dsp)))}", build,
                        [f"TS_USE_DSP={dsp}", "TS_HAVE_EXPORT"],
                        extra=export_objects(export, build, objdir), include=[export])
    r = run_program(exe)
    m = check_golden_output(r.stdout + r.stderr, export, r.returncode)
    assert int(m["dsp"]) == dsp and m["platform"] == "native"


@pytest.mark.parametrize("name", ["kernels", "kernels-per-tensor"])
def test_kernel_exports_cover_what_they_claim(name):
    """The kernel exports hold what their golden runs are for: dilation, depth multiplier 2,
    a left-shift requantization, per-tensor or per-channel weight scales."""
    from tinysift.export.tflite_reader import parse_tflite

    parsed = parse_tflite((get_export(name).parent / "model.tflite").read_bytes())
    convs = [ly for ly in parsed.layers if ly.op in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert {(ly.op, ly.dilation) for ly in convs} >= {
        ("CONV_2D", (2, 2)), ("CONV_2D", (2, 1)), ("DEPTHWISE_CONV_2D", (2, 2))}
    assert any(ly.op == "DEPTHWISE_CONV_2D" and ly.depth_multiplier == 2 for ly in convs)
    assert any(ly.op == "CONV_2D" and ly.shift.max() > 0 for ly in convs)
    scales = {len(ly.weight_tensor.scales) for ly in convs}
    if name == "kernels-per-tensor":
        assert scales == {1}
    else:
        assert 1 not in scales


def test_golden_names_the_first_differing_layer(objdir):
    """A deliberately wrong engine (single-rounding requantization, which TFLM does not use)
    fails the golden test and is pinned to a requantizing layer."""
    export = get_export(_export_params()[0].values[0])
    exe = build_program(TESTS / "test_golden" / "test_main.c", objdir / "golden-single-rounding",
                        "O2", ["TS_SINGLE_ROUNDING=1", "TS_HAVE_EXPORT"],
                        extra=export_objects(export, "O2", objdir), include=[export])
    r = run_program(exe)
    text = r.stdout + r.stderr
    assert r.returncode != 0, text[-2000:]
    m = GOLDEN_RE.search(text)
    assert m and int(m["equal"]) < int(m["inputs"])
    layer = LAYER_RE.search(text)
    assert layer, text[-2000:]
    assert layer["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "QUANTIZE",
                           "SOFTMAX")
    assert "first differing layer" in text


# ---- engine checks under the sanitizers ---------------------------------------------------------

@pytest.mark.parametrize("dsp", [0, 1], ids=["scalar", "dsp"])
@pytest.mark.parametrize("build", list(BUILDS))
def test_malformed_tables_and_kernels(build, dsp, objdir):
    """Malformed layer tables (wrong version, shapes that do not chain, arena too small, bad
    op, NULL weights, out-of-range parameters) give status codes; random single-field
    corruptions never reach undefined behaviour; DSP path == scalar path on random layers."""
    exe = build_program(TESTS / "test_engine" / "test_main.c",
                        objdir / f"engine-{build}-{dsp}", build, [f"TS_USE_DSP={dsp}"],
                        extra=TRAINER_SRCS)
    r = run_program(exe)
    text = r.stdout + r.stderr
    done = DONE_RE.search(text)
    assert r.returncode == 0 and done and done.group(2) == "0", text[-4000:]
    assert int(done.group(1)) >= 27
    for name in ("test_wrong_version", "test_shapes_that_do_not_chain", "test_arena_too_small",
                 "test_bad_op", "test_null_pointers", "test_random_corruptions",
                 "test_check_boundaries", "test_dsp_equals_scalar_random_layers",
                 "test_dsp_equals_scalar_full_int8_range", "test_dsp_equals_scalar_tiny_scales",
                 "test_dsp_equals_scalar_stride_3", "test_dsp_equals_scalar_many_channels",
                 "test_dsp_fc_reads_no_weight_past_its_layer",
                 "test_trainer_cache_sizes_beyond_2g", "test_trainer_extract_beyond_2g",
                 "test_trainer_cache_fill_beyond_2g", "test_trainer_mask_bits_beyond_2g",
                 "test_replay_workspace_beyond_2g", "test_replay_config_boundaries",
                 "test_replay_offer_refusals"):
        assert f":{name}:PASS" in text


# ---- which rounding TFLM uses -------------------------------------------------------------------

def _requant(acc: np.ndarray, m: int, s: int, single: bool) -> np.ndarray:
    acc = acc.astype(object)
    if single:
        total = 31 - s
        return np.array([(int(a) * m + (1 << (total - 1))) >> total for a in acc.ravel()],
                        dtype=np.int64).reshape(acc.shape)
    left, right = max(s, 0), max(-s, 0)
    out = []
    for a in acc.ravel():
        ab = int(a) * (1 << left) * m
        nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
        q = ab + nudge
        x = q // (1 << 31) if q >= 0 else -((-q) // (1 << 31))  # truncating division
        mask = (1 << right) - 1
        threshold = (mask >> 1) + (1 if x < 0 else 0)
        out.append((x >> right) + (1 if (x & mask) > threshold else 0))
    return np.array(out, dtype=np.int64).reshape(acc.shape)


def test_tflm_uses_double_rounding():
    """TFLM's wheel computes MultiplyByQuantizedMultiplier with double rounding
    (TFLITE_SINGLE_ROUNDING=0): the first CONV_2D of an export recomputed in numpy matches
    TFLM with double rounding on every value, and single rounding does not."""
    from tinysift.export.tflite_reader import parse_tflite

    export = get_export(_export_params()[0].values[0])
    parsed = parse_tflite((export.parent / "model.tflite").read_bytes())
    golden = np.load(export / "golden.npz")
    conv = next(lay for lay in parsed.layers if lay.op == "CONV_2D")
    x_in = golden["x_test"] if conv.index == 0 else golden[f"layer{conv.index - 1}"]
    n = min(50, len(x_in))
    (ih, iw, ic), (oh, ow, oc) = conv.in_dims, conv.out_dims
    (fh, fw), (sh, sw), (ph, pw) = conv.filter, conv.stride, conv.pad
    assert conv.dilation == (1, 1)
    x = x_in[:n].reshape(n, ih, iw, ic).astype(np.int64) - conv.input_zero_point
    xp = np.zeros((n, ih + fh, iw + fw, ic), np.int64)
    xp[:, ph:ph + ih, pw:pw + iw] = x
    w = conv.weights.reshape(oc, fh, fw, ic).astype(np.int64)
    acc = np.zeros((n, oh, ow, oc), np.int64)
    for ky in range(fh):
        for kx in range(fw):
            acc += xp[:, ky:ky + sh * oh:sh, kx:kx + sw * ow:sw] @ w[:, ky, kx].T
    if conv.bias is not None:
        acc += conv.bias.astype(np.int64)
    want = golden[f"layer{conv.index}"][:n].reshape(n, oh, ow, oc)
    mismatches = {}
    for single in (False, True):
        out = np.empty_like(acc)
        for c in range(oc):
            q = 0 if len(conv.multiplier) == 1 else c
            out[..., c] = _requant(acc[..., c], int(conv.multiplier[q]), int(conv.shift[q]),
                                   single)
        out = np.clip(out + conv.output_zero_point, conv.act_min, conv.act_max)
        mismatches[single] = int((out != want).sum())
    assert mismatches[False] == 0
    assert mismatches[True] > 0, "this export cannot tell the two rounding variants apart"


# ---- QEMU (Cortex-M4F, DSP path) through PlatformIO ---------------------------------------------

@pytest.fixture(scope="module")
def pio_workspace(tmp_path_factory) -> Path:
    need_tools("qemu-system-arm", "arm-none-eabi-gcc", pio=True)
    return tmp_path_factory.mktemp("pio-golden")


def pio_test(workspace: Path, env_name: str, test: str, export: Path | None,
             timeout: float = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PLATFORMIO_WORKSPACE_DIR=str(workspace))
    env.pop("PLATFORMIO_BUILD_DIR", None)
    env.pop("TS_EXPORT_DIR", None)
    if export is not None:
        env["TS_EXPORT_DIR"] = str(export.resolve())
    return subprocess.run([str(PIO), "test", "-d", "firmware", "-e", env_name, "-f", test, "-v"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.qemu
@pytest.mark.parametrize("name", _export_params())
def test_golden_bit_exact_qemu_m4(name, pio_workspace):
    export = get_export(name)
    r = pio_test(pio_workspace, "qemu-m4", "test_golden", export)
    text = r.stdout + r.stderr
    m = check_golden_output(text, export, r.returncode)
    assert m["platform"] == "qemu-mps2-an386" and m["dsp"] == "1"


@pytest.mark.qemu
def test_golden_bit_exact_qemu_m7(pio_workspace):
    """The same on the Cortex-M7 board (mps2-an500), for the first export."""
    export = get_export(_export_params()[0].values[0])
    r = pio_test(pio_workspace, "qemu-m7", "test_golden", export)
    m = check_golden_output(r.stdout + r.stderr, export, r.returncode)
    assert m["platform"] == "qemu-mps2-an500" and m["dsp"] == "1"


@pytest.mark.qemu
def test_engine_checks_qemu_m4(pio_workspace):
    r = pio_test(pio_workspace, "qemu-m4", "test_engine", None)
    text = r.stdout + r.stderr
    done = DONE_RE.search(text)
    assert r.returncode == 0 and done and done.group(2) == "0", text[-4000:]


def test_a_compile_or_golden_run_past_its_time_is_one_clear_error(tmp_path):
    """A hung host compile or golden program raised subprocess.TimeoutExpired, which the CLI
    reported as a bug in tinysift: one DeviceError now, the process stopped."""
    from tinysift.device import native
    from tinysift.errors import DeviceError

    with pytest.raises(DeviceError, match=r"compiling the engine with host gcc did not "
                                          r"finish within 0.2 s \(stopped\)"):
        native._cc(["sleep", "5"], 0.2)
