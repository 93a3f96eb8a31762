"""`tinysift engine check` on models at the edges of what it takes: activations far larger than
the weights (TFLM's default arena), a .tflite damaged in place, a model beyond the engine's
own limits (TS_MAX_DIM, TS_MAX_SOFTMAX_DEPTH...), one that does not fit --board, and a
folder given as --tflite. Each must end in the report or in one clear line (exit 2), never
in an unexpected exception or a device-side status code."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tinysift.errors import TinysiftError, UnsupportedOpError
from tools_needed import need_tools


def _convert(model, shape: tuple[int, ...]) -> bytes:
    from tinysift.quantize.convert import convert_int8

    rep = np.random.default_rng(0).integers(0, 255, (8, *shape), np.uint8)
    return convert_int8(model, rep)


def _big_gap() -> bytes:
    """Conv2D(64) on 96x96: a 590 KB activation from 5 KB of model (TFLM's default arena is
    ten times the model's size), then GlobalAveragePooling2D and a Dense head."""
    from tinysift.tfcompat import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((96, 96, 1))
    x = keras.layers.Conv2D(64, 3, padding="same")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return _convert(keras.Model(inp, keras.layers.Dense(10)(x)), (96, 96, 1))


def _small() -> bytes:
    from tinysift.tfcompat import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(2, 3, name="conv")(inp)
    out = keras.layers.Dense(3, name="head")(keras.layers.Flatten()(x))
    return _convert(keras.Model(inp, out), (4, 4, 1))


@pytest.fixture(scope="module")
def big_gap(tmp_path_factory):
    path = tmp_path_factory.mktemp("big-gap") / "big_gap.tflite"
    path.write_bytes(_big_gap())
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "small.tflite"
    path.write_bytes(_small())
    return path


# ---- the golden run's arena --------------------------------------------------------------------

def test_golden_runs_a_model_of_large_activations_and_small_weights(big_gap):
    """golden() ran TFLM in its default arena (len(model) * 10 bytes): "TFLM failed to
    allocate tensors" for 590 KB of activations; now in an arena the search found."""
    from tinysift.export.golden import golden, tflm_arena, with_all_outputs
    from tinysift.export.tflite_reader import parse_tflite
    from tinysift.quantize.tflm import run_tflm
    from tinysift.stages.export import random_inputs

    tflite = big_gap.read_bytes()
    parsed = parse_tflite(tflite, big_gap)
    x = random_inputs(parsed, 2)
    g = golden(tflite, parsed, x)
    # the same outputs as TFLM in an arena far larger than needed
    want = run_tflm(tflite, x, arena_size=1 << 24)[0]
    assert np.array_equal(g.outputs, want) and np.array_equal(g.int8_outputs, want)
    exposed, _ = with_all_outputs(tflite)
    assert 96 * 96 * 64 < tflm_arena(exposed) < 4 * 96 * 96 * 64


def test_tflm_runs_a_model_of_large_activations_in_its_default_arena(big_gap):
    """Every other TFLM caller (input_quant, the quantize stage's accuracy) used tflite_micro's
    default arena, 10x the model's bytes: a `tinysift quantize` of 200x200 images ended in
    "unexpected RuntimeError: TFLM failed to allocate tensors"."""
    from tinysift.quantize import tflm

    tflite = big_gap.read_bytes()
    scale, zp = tflm.input_quant(tflite)
    x = np.zeros((1, 96, 96, 1), np.int8)
    assert np.array_equal(tflm.run_tflm(tflite, x)[0],
                          tflm.run_tflm(tflite, x, arena_size=1 << 24)[0])
    assert tflm.arena_ceiling(tflite) > 2 * 96 * 96 * 64 and scale > 0


def test_engine_check_runs_a_model_of_large_activations(big_gap):
    """`engine check` on it ended in "unexpected RuntimeError: TFLM failed to allocate
    tensors" (exit 1); TFLM's planned arena, for comparison, read "?"."""
    need_tools("gcc")
    from tinysift.stages.engine import check_tflite

    r = check_tflite(big_gap, count=2, kernels=("scalar",))
    assert r.ok and r.results["scalar"]["equal"] == 2, r.results
    assert r.tflm_arena_head is not None and r.arena_bytes <= r.tflm_arena_head


def test_a_model_tflm_refuses_is_one_clear_error(small, monkeypatch):
    """Where even the search's ceiling does not run the model (its kernels refuse a
    parameter), the error says so, not "the arena is too small", with the arena it tried
    (the search's ceiling: at least 4 MiB) and the fix."""
    import tinysift.export.golden as golden_mod

    def refuses(model_bytes, hi):
        raise TinysiftError(f"the model does not run in TFLM even with a {hi}-byte arena")

    monkeypatch.setattr(golden_mod, "minimal_arena", refuses)
    with pytest.raises(TinysiftError, match=r"even in a 4,194,304-byte arena \(at least twice "
                                            r"what its tensors need\): its kernels refuse a "
                                            r"parameter.*convert the model again with "
                                            r"full-integer int8 quantization"):
        golden_mod.tflm_arena(small.read_bytes())


def test_the_arena_search_runs_after_tensorflow_in_a_fresh_process(tmp_path):
    """The search forks a child per run of tries; the child imported TFLM's runtime, which
    crashed it in a process that had run TensorFlow (a model converted, as the tests of
    `engine check` do), and every try read as "too small". A fresh process: the runtime not
    yet imported, as at `export_tflite`'s first golden run."""
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from tinysift.tfcompat import keras\n"
        "from tinysift.quantize.convert import convert_int8\n"
        "from tinysift.export.golden import tflm_arena\n"
        "inp = keras.Input((4, 4, 1))\n"
        "out = keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Conv2D(2, 3)(inp)))\n"
        "m = convert_int8(keras.Model(inp, out),\n"
        "                 np.random.default_rng(0).integers(0, 255, (8, 4, 4, 1), np.uint8))\n"
        "print('arena', tflm_arena(m))\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0 and "arena" in r.stdout, r.stderr[-3000:]


def test_engine_check_and_run_never_start_tensorflow(small, tmp_path):
    """Reading a model imported TensorFlow's .tflite schema, and with it all of TensorFlow:
    5 s before `engine check` or `engine run` said a word, in commands that use only TFLM and
    the engine. A fresh process runs both on a real model and has no TensorFlow after."""
    import subprocess
    import sys

    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 4, 4, 1), np.int8))
    script = (
        "import sys\n"
        "from tinysift.cli.app import main\n"
        f"a = main(['engine', 'check', '--tflite', {str(small)!r}, '--count', '2'])\n"
        f"b = main(['engine', 'run', '--tflite', {str(small)!r}, '--inputs', {str(x)!r},\n"
        f"          '--out', {str(tmp_path / 'y.npy')!r}])\n"
        "print('codes', a, b, 'tensorflow' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=600)
    assert "codes 0 0 False" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]


# ---- a .tflite damaged in place -----------------------------------------------------------------

def _flips(data: bytes, seed: int = 0):
    """Every byte inverted in turn, then random changes of one to three bytes."""
    for offset in range(len(data)):
        b = bytearray(data)
        b[offset] ^= 0xFF
        yield bytes(b)
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        b = bytearray(data)
        for offset in rng.integers(0, len(b), rng.integers(1, 4)):
            b[offset] ^= int(rng.integers(1, 256))
        yield bytes(b)


def test_a_damaged_tflite_is_refused_in_one_line_naming_the_file(small):
    """Bytes changed in place in the flatbuffer decode without error, then the reader's
    reshape (ValueError) or a name's decode (UnicodeDecodeError) escaped as "unexpected":
    every change now parses or is refused as a TinysiftError, a damaged structure naming
    the file."""
    from tinysift.export.tflite_reader import parse_tflite

    data = small.read_bytes()
    damaged = 0
    for b in _flips(data):
        try:
            parse_tflite(b, small)
        except TinysiftError as e:
            text = str(e)
            assert "\n" not in text
            if "damaged" in text:
                damaged += 1
                assert str(small) in text, text
    assert damaged > 50  # the sweep does reach the structure, not only the weights


def _edited(data: bytes, edit) -> bytes:
    """``data`` with ``edit(model)`` applied to its object tree, packed again: damage the
    flatbuffer's own checks cannot see."""
    from tflite_edit import patched

    return patched(data, lambda model, _graph, _schema: edit(model))


def _weights(model):
    graph = model.subgraphs[0]
    return next(t for t in graph.tensors if model.buffers[t.buffer].data is not None
                and len(model.buffers[t.buffer].data) and t.type == 9)


def _set(obj, name, value):
    setattr(obj, name, value)


def _set_options_kind(op, kind: str) -> None:
    """``op`` carries fresh options of another ``kind`` (union tag and table both)."""
    from tinysift.tflite_schema import tflite_schema

    schema = tflite_schema()
    op.builtinOptions = getattr(schema, f"{kind}T")()
    op.builtinOptionsType = getattr(schema.BuiltinOptions, kind)


@pytest.mark.parametrize("edit, said", [
    (lambda m: _set(_weights(m), "shape", np.array([5, 51], np.int32)),
     "bytes of data for shape (5, 51)"),
    (lambda m: _set(_weights(m), "name", b"w\xe0\x80"), "name is not UTF-8"),
    (lambda m: _set(_weights(m), "buffer", 999), "refers to buffer 999"),
    (lambda m: _set(m.subgraphs[0].operators[0], "opcodeIndex", 77), "operator code 77"),
    (lambda m: _set(m.subgraphs[0].operators[0], "outputs", np.array([99], np.int32)),
     "outputs [99]"),
    (lambda m: _set(m.subgraphs[0].operators[0], "builtinOptions", None),
     "carries no options"),
    (lambda m: _set(m.subgraphs[0], "inputs", np.array([len(m.subgraphs[0].tensors)])),
     "is out of range (the graph has"),
    (lambda m: _set(m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]], "shape",
                    np.array([1, -4, 4, 1], np.int32)), "has shape (1, -4, 4, 1)"),
    (lambda m: _set_options_kind(m.subgraphs[0].operators[0], "Pool2DOptions"),
     "carries Pool2DOptionsT options, not Conv2DOptions"),
    (lambda m: _set(m.subgraphs[0].operators[0].builtinOptions, "padding", 7),
     "has padding code 7"),
], ids=["data-size", "name", "buffer", "opcode", "tensor-index", "options", "tensor-at-end",
        "negative-dim", "options-kind", "padding-code"])
def test_damaged_structures_are_named(small, edit, said):
    from tinysift.export.tflite_reader import parse_tflite

    with pytest.raises(UnsupportedOpError) as e:
        parse_tflite(_edited(small.read_bytes(), edit), small)
    assert f"{small} is damaged, not a valid .tflite" in str(e.value) and said in str(e.value)


def test_structures_at_the_edges_of_their_ranges_are_named(small):
    """The reader's own checks at their edges, each its own message (not the generic
    "reading it failed: IndexError" of a check one past the end): no subgraph or two, a
    buffer or operator code index one past the last, a dimension of -1, an operator of no
    outputs, no operators; weights of a type the reader has no use for (int4, half the
    bytes) are refused as weights, not as damage; and empty data vectors (length 0, as some
    writers store "no data") read as no data: the same layers as without them."""
    from tinysift.export.tflite_reader import parse_tflite
    from tinysift.tflite_schema import tflite_schema

    data = small.read_bytes()
    model = tflite_schema().ModelT.InitFromPackedBuf(bytearray(data), 0)
    n_buffers, n_codes = len(model.buffers), len(model.operatorCodes)

    def said(edit) -> str:
        with pytest.raises(UnsupportedOpError) as e:
            parse_tflite(_edited(data, edit), small)
        return str(e.value)

    def second_subgraph(m):
        m.subgraphs.append(m.subgraphs[0])

    assert "the model has 0 subgraphs; the firmware engine runs single-subgraph" in said(
        lambda m: _set(m, "subgraphs", []))
    assert "the model has 2 subgraphs" in said(second_subgraph)
    damaged = f"{small} is damaged, not a valid .tflite: "
    text = said(lambda m: _set(_weights(m), "buffer", n_buffers))
    assert damaged in text
    assert f"refers to buffer {n_buffers}, and the model has {n_buffers}" in text
    assert f"{damaged}operator 0 has operator code {n_codes}, and the model has {n_codes}" in \
        said(lambda m: _set(m.subgraphs[0].operators[0], "opcodeIndex", n_codes))
    assert "has shape (1, -1, 4, 1)" in said(lambda m: _set(
        m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]], "shape",
        np.array([1, -1, 4, 1], np.int32)))
    assert re.search(r"operator 0 \(CONV_2D\) has inputs \[[-\d, ]+\] and outputs \[\], and the "
                     r"graph has \d+ tensors", said(
                         lambda m: _set(m.subgraphs[0].operators[0], "outputs", [])))
    assert "the model has no operators" in said(lambda m: _set(m.subgraphs[0], "operators", []))

    def int4_weights(m):
        w = _weights(m)
        w.type = 17  # INT4: two weights a byte
        buf = m.buffers[w.buffer]
        buf.data = buf.data[:(len(buf.data) + 1) // 2]

    text = said(int4_weights)
    assert "weights must be constant int8" in text and "damaged" not in text

    def empty_vectors(m):
        for buf in m.buffers:
            if buf.data is None:
                buf.data = []

    plain, empty = parse_tflite(data), parse_tflite(_edited(data, empty_vectors))
    assert [(lay.op, lay.in_dims, lay.out_dims) for lay in empty.layers] == [
        (lay.op, lay.in_dims, lay.out_dims) for lay in plain.layers]
    assert empty.plan.arena_bytes == plain.plan.arena_bytes


def _activation_zero_point(zero_point: int, output_zero_point: int | None = None):
    """An edit: the first layer's output (an int8 activation) gets ``zero_point``, and the
    model's output ``output_zero_point`` if given."""
    def edit(m):
        graph = m.subgraphs[0]
        outputs = [(graph.operators[0].outputs[0], zero_point)]
        if output_zero_point is not None:
            outputs.append((graph.outputs[0], output_zero_point))
        for index, value in outputs:
            graph.tensors[index].quantization.zeroPoint = np.array([value], np.int64)
    return edit


@pytest.mark.parametrize("zero_point", [128, -129, 200])
def test_an_activation_zero_point_outside_int8_is_refused_naming_the_tensor(small, zero_point):
    """ts_model_check refuses a zero point outside [-128, 127]; the reader took it, and
    `engine check` ended in the golden program's "got 6" (TFLM runs such a model)."""
    from tinysift.export.tflite_reader import parse_tflite

    with pytest.raises(UnsupportedOpError) as e:
        parse_tflite(_edited(small.read_bytes(), _activation_zero_point(zero_point)), small)
    # the tensor's name: Keras numbers its models in a process ("model_1/conv/...")
    assert re.search(rf"CONV_2D's int8 tensor '[\w/]*conv/Conv2D1' has zero point {zero_point}; "
                     r"an int8 zero point must be in \[-128, 127\]", str(e.value)), str(e.value)


def test_activation_zero_points_at_int8_s_edges_run_bit_exact(small, tmp_path):
    """The zero points at the ends of int8's range (127 inside the model, -128 at its
    output) are taken, and the engine's outputs equal TFLM's (both paths, each program saying
    it ran the kernels it was built for), as at any other zero point."""
    from tinysift.export.tflite_reader import parse_tflite
    from tinysift.stages.engine import check_tflite

    path = tmp_path / "edges.tflite"
    path.write_bytes(_edited(small.read_bytes(), _activation_zero_point(127, -128)))
    layers = parse_tflite(path.read_bytes()).layers
    assert (layers[0].output_zero_point, layers[-1].output_zero_point) == (127, -128)
    report = check_tflite(path, count=20)
    assert report.ok and {k: (r["inputs"], r["equal"], r["dsp"])
                          for k, r in report.results.items()} == {
        "scalar": (20, 20, False), "dsp": (20, 20, True)}, report.results


def test_a_dsp_check_that_ran_the_scalar_kernels_is_a_mismatch(small, monkeypatch):
    """The golden program says which kernels it was built with. A DSP build flag that does
    not take (here: the program built without it, as a lost -DTS_USE_DSP=1 would) gives the
    scalar kernels' outputs, identical to TFLM, under the "dsp" line: that check fails,
    saying so, instead of vouching for kernels that never ran."""
    need_tools("gcc")
    import tinysift.device.native as native_mod
    from tinysift.stages.engine import check_tflite

    real = native_mod.golden_check
    monkeypatch.setattr(native_mod, "golden_check",
                        lambda export, build, dsp=False: real(export, build, dsp=False))
    r = check_tflite(small, count=2)
    dsp = r.results["dsp"]
    assert r.results["scalar"]["ok"] and not r.ok, r.results
    assert dsp["equal"] == dsp["inputs"] == 2 and not dsp["ok"] and dsp["dsp"] is False
    assert dsp["failures"] == ["the dsp check ran the scalar kernels (the engine's TS_USE_DSP "
                               "build flag did not take)"]


# ---- the engine's own limits --------------------------------------------------------------------

def test_the_engine_limits_are_refused_naming_the_layer_size_and_limit():
    """A model past ts_model_check's limits was exported and built, then the engine program
    said only "test_model_valid:FAIL ... expected 0, got 3"; the reader now refuses it."""
    from tinysift.export.tflite_reader import parse_tflite
    from tinysift.tfcompat import keras

    inp = keras.Input((200, 200))
    flat = keras.Model(inp, keras.layers.Dense(10)(keras.layers.Flatten(name="flat")(inp)))
    with pytest.raises(UnsupportedOpError) as e:
        parse_tflite(_convert(flat, (200, 200)))
    assert "layer 0" in str(e.value) and "flat" in str(e.value)
    assert "40,000" in str(e.value) and "32,767" in str(e.value)

    inp = keras.Input((8,))
    wide = keras.Model(inp, keras.layers.Softmax()(keras.layers.Dense(600)(inp)))
    with pytest.raises(UnsupportedOpError) as e:
        parse_tflite(_convert(wide, (8,)))
    assert "layer 1" in str(e.value) and "SOFTMAX over 600" in str(e.value)
    assert "511" in str(e.value)

    # 3x3 over 8,000 channels: 72,000 products per output overflow the int32 accumulator
    inp = keras.Input((3, 3, 8000))
    deep = keras.Model(inp, keras.layers.Conv2D(1, 3, name="deep")(inp))
    with pytest.raises(UnsupportedOpError) as e:
        parse_tflite(_convert(deep, (3, 3, 8000)))
    assert "layer 0" in str(e.value) and "72,000 products" in str(e.value)


def test_mean_and_tensor_size_limits():
    from tinysift.export import tflite_reader as tr

    mean = tr.LayerSpec(index=3, op="MEAN", name="gap", in_dims=(4096, 4096, 1),
                        out_dims=(1, 1, 1), input_zero_point=0, output_zero_point=0)
    with pytest.raises(UnsupportedOpError, match="layer 3: MEAN over 16,777,216 positions"):
        tr._check_engine_limits(mean, "layer 3")
    big = tr.LayerSpec(index=0, op="RESHAPE", name="r", in_dims=(1, 1, 8),
                       out_dims=(4096, 4096, 8), input_zero_point=0, output_zero_point=0)
    with pytest.raises(UnsupportedOpError, match="134,217,728 elements.*67,108,864"):
        tr._check_engine_limits(big, "layer 0")


# ---- the CLI ------------------------------------------------------------------------------------

def test_engine_check_says_a_model_does_not_fit_the_board(big_gap, monkeypatch, capsys):
    """--board printed the plan (RAM total over capacity) and exited 0 without a word; now
    it says what is over and by how much, as the export does, and exits 2 after the
    bit-exactness report."""
    need_tools("gcc")
    import json

    import tinysift.stages.engine as engine
    from tinysift.cli import main

    # the instruction count on QEMU is not what this test is about
    monkeypatch.setattr(engine, "emulated_invoke", lambda export, work, board: dict(
        instructions=1000, macs=100, stack=64, board=board, clock_hz=84_000_000,
        implied_ms=0.01))
    code = main(["engine", "check", "--tflite", str(big_gap), "--count", "2", "--board",
                 "nucleo_f401re"])
    out, err = capsys.readouterr()
    assert code == 2, out[-3000:] + err[-3000:]
    assert "2/2 outputs identical to TFLM: all identical" in out
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err[-2000:]
    assert "does not fit nucleo_f401re" in lines[0] and "RAM" in lines[0]
    assert "over by" in lines[0] and "choose" in lines[0]
    assert "does not fit nucleo_f401re" in out  # under the plan too
    assert "on nucleo_f401re at 84 MHz, one cycle each: 0.01 ms" in " ".join(out.split())

    code = main(["engine", "check", "--tflite", str(big_gap), "--count", "1", "--board",
                 "nucleo_l4r5zi", "--json"])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert code == 0 and report["fits"] is True and report["fit_problem"] is None, err[-2000:]
    assert report["invoke"]["board"] == "nucleo_l4r5zi"


def test_the_fit_problem_names_the_smallest_board_with_a_port_that_fits(big_gap):
    """The fix a fit problem names is the smallest board (RAM, then flash) the firmware has a
    port for that the model fits, not any larger one; a model that fits has none."""
    from tinysift.boards import load_board
    from tinysift.export.memory import inference_plan
    from tinysift.export.tflite_reader import parse_tflite
    from tinysift.stages.engine import fit_problem

    tflite = big_gap.read_bytes()
    parsed = parse_tflite(tflite, big_gap)

    def problem(board: str) -> str | None:
        return fit_problem(parsed, inference_plan(parsed, load_board(board), len(tflite))
                           .to_dict(), len(tflite))

    assert re.fullmatch(r"the model does not fit nucleo_f401re: needs [\d.]+ KB RAM, board "
                        r"has 96 KB \(over by [\d.]+ KB\); choose nucleo_l4r5zi or use a "
                        r"smaller model", problem("nucleo_f401re")), problem("nucleo_f401re")
    assert problem("nucleo_l4r5zi") is None


def test_a_folder_of_several_tflite_files_names_none(tmp_path):
    """--tflite FOLDER names the file inside as the fix only when there is one."""
    from tinysift.errors import TinysiftError
    from tinysift.stages.engine import tflite_file

    for name in ("a.tflite", "b.tflite"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(TinysiftError, match=r"is a folder: give a .tflite file$"):
        tflite_file(tmp_path)


def test_engine_check_refuses_a_file_as_its_out_dir_before_any_work(small, tmp_path):
    """`engine check --out-dir FILE` is one clear line naming the option before the export
    and the build (not an unexpected error from making the export folder inside a file);
    a check that compared no kernel is not ok."""
    from tinysift.stages.engine import EngineCheck, check_tflite

    (tmp_path / "taken").write_text("a user's file")
    with pytest.raises(TinysiftError, match=r"taken is a file, not a folder \(--out-dir\)"):
        check_tflite(small, out_dir=tmp_path / "taken" / "check")
    assert (tmp_path / "taken").read_text() == "a user's file"
    assert not EngineCheck(tflite=small, inputs=0, layers=[], arena_bytes=0,
                           tflm_arena_head=None).ok


def test_engine_export_says_a_model_does_not_fit_the_board(big_gap, tmp_path, capsys):
    """`engine export --board` wrote a plan over capacity and exited 0 without a word."""
    from tinysift.cli import main

    code = main(["engine", "export", "--tflite", str(big_gap), "--out-dir",
                 str(tmp_path / "x"), "--count", "1", "--board", "nucleo_f401re"])
    err = capsys.readouterr().err
    assert code == 2 and "does not fit nucleo_f401re" in err and "over by" in err, err[-2000:]
    assert (tmp_path / "x" / "export.json").exists()  # written all the same
    assert main(["engine", "export", "--tflite", str(big_gap), "--out-dir",
                 str(tmp_path / "y"), "--count", "1", "--board", "nucleo_l4r5zi"]) == 0


def test_engine_export_prints_the_board_s_plan(small, tmp_path, capsys):
    """`engine export --board` adds the inference memory plan (its help says so): it was
    written to export.json alone, and the command printed the layers and arena only."""
    from tinysift.cli import main

    assert main(["engine", "export", "--tflite", str(small), "--count", "2", "--out-dir",
                 str(tmp_path / "e"), "--board", "nucleo_f411re"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "memory plan on nucleo_f411re" in out and "activation arena" in out, out
    assert main(["engine", "export", "--tflite", str(small), "--count", "2", "--out-dir",
                 str(tmp_path / "f")]) == 0
    assert "memory plan" not in capsys.readouterr().out


def test_engine_export_keeps_files_no_export_wrote(small, tmp_path, capsys):
    """`engine export --out-dir` into a folder of the user's replaced their own golden.npz
    (or export.json, or ts_export.h) without a word; a folder of an earlier export is
    written again, one killed before its export.json (written last) included."""
    from tinysift.cli import main

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "golden.npz").write_bytes(b"the user's own")
    (mine / "notes.txt").write_text("kept")
    args = ["engine", "export", "--tflite", str(small), "--count", "2", "--out-dir"]
    assert main([*args, str(mine)]) == 2
    err = capsys.readouterr().err
    assert "holds golden.npz, which an export writes" in err and "new or empty folder" in err
    assert (mine / "golden.npz").read_bytes() == b"the user's own"
    assert sorted(p.name for p in mine.iterdir()) == ["golden.npz", "notes.txt"]
    (mine / "export.json").write_text('{"name": "my own export.json"}')
    (mine / "ts_export.h").write_text("/* my own header */\n")
    assert main([*args, str(mine)]) == 2
    assert "holds ts_export.h, golden.npz, export.json" in capsys.readouterr().err
    # an export writes both keys: a user's file holding only one of them is theirs
    half = tmp_path / "half"
    half.mkdir()
    (half / "export.json").write_text('{"format_version": 3}')
    assert main([*args, str(half)]) == 2
    assert "holds export.json, which an export writes" in capsys.readouterr().err
    again = tmp_path / "again"
    assert main([*args, str(again)]) == 0 and main([*args, str(again)]) == 0
    assert (again / "ts_export.h").exists()
    (again / "export.json").unlink()  # killed after the C files and golden.npz
    assert main([*args, str(again)]) == 0 and (again / "export.json").exists()


def test_engine_export_and_check_leave_a_runs_export_alone(digits_run, tmp_path, capsys):
    """`engine export --out-dir RUN/export` (or `engine check --out-dir RUN`) wrote a bare
    export over the run's own, whose files an export wrote, without a word; the run's
    `device run` then refused it until `tinysift export` ran again."""
    import shutil

    from tinysift.cli import main

    run = tmp_path / "run"
    shutil.copytree(digits_run / "export", run / "export")
    shutil.copy(digits_run / "manifest.json", run / "manifest.json")
    before = {p.name: p.read_bytes() for p in (run / "export").iterdir()}
    tflite = str(digits_run / "model.tflite")
    for args in (["engine", "export", "--tflite", tflite, "--out-dir", str(run / "export")],
                 ["engine", "check", "--tflite", tflite, "--out-dir", str(run)]):
        assert main([*args, "--count", "2"]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"{run / 'export'} is the export of the run folder {run}" in err, err
        assert "give --out-dir a folder outside the run" in err
    assert {p.name: p.read_bytes() for p in (run / "export").iterdir()} == before
    assert sorted(p.name for p in run.iterdir()) == ["export", "manifest.json"]


def test_a_folder_as_tflite_is_named_a_folder(small, capsys):
    """--tflite FOLDER said "FOLDER not found", which sent the user looking for a typo."""
    from tinysift.cli import main

    folder = small.parent
    for args in (["engine", "check", "--tflite", str(folder)],
                 ["engine", "export", "--tflite", str(folder), "--out-dir",
                  str(folder / "export")]):
        code = main(args)
        err = capsys.readouterr().err
        assert code == 2 and "is a folder" in err and f"--tflite {small}" in err, err
        assert "not found" not in err


def _float_edges() -> bytes:
    """_small's model with a float input and output (a QUANTIZE first, a DEQUANTIZE last)."""
    from tinysift.quantize.convert import quiet_stderr
    from tinysift.tfcompat import keras, tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(2, 3)(inp)
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rep = np.random.default_rng(0).random((8, 1, 4, 4, 1), np.float32)
    conv.representative_dataset = lambda: ([r] for r in rep)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with quiet_stderr():
        return bytes(conv.convert())


@pytest.fixture(scope="module")
def float_edges(tmp_path_factory):
    """_float_edges' model, converted once for the tests of this file."""
    path = tmp_path_factory.mktemp("float-edges") / "float_edges.tflite"
    path.write_bytes(_float_edges())
    return path


def test_inputs_of_another_shape_type_or_nan_are_refused(small, float_edges):
    """Images of another channel count ran as three times as many samples (9/9 identical for
    3 RGB images into a grayscale model); raw uint8 pixels into a float-input model were cast
    to floats, NaN and inf passed to the engine's QUANTIZE (undefined in C) -- all without a
    word. Whole samples (N, *shape), flat rows (N, size) and one sample still pass."""
    from tinysift.export.tflite_reader import parse_tflite
    from tinysift.stages.export import check_inputs

    parsed = parse_tflite(small.read_bytes())
    for shape in [(3, 4, 4, 3), (3, 5, 5, 1), (48,), (0, 4, 4, 1)]:
        with pytest.raises(TinysiftError, match=r"one sample of the model input \(1, 4, 4, 1\) "
                                                r"\(16 values\) per row: give \(N, 4, 4, 1\)"):
            check_inputs(parsed, np.zeros(shape, np.int8))
    with pytest.raises(TinysiftError, match="takes int8 inputs; got float64 .*quantize them "
                                            "with the model's input scale"):
        check_inputs(parsed, np.zeros((3, 4, 4, 1)))
    # integers are taken as int8 only within -128..127 (128 wrapped to -128 when cast)
    for outside in (128, -129):
        with pytest.raises(TinysiftError, match=rf"takes int8 inputs; got int16 \(range "
                                                rf"{min(outside, 0)}\.\.{max(outside, 0)}\)"):
            x = np.zeros((2, 16), np.int16)
            x[1, 3] = outside
            check_inputs(parsed, x)
    edges = np.array([[-128] * 8 + [127] * 8], np.int16)
    np.testing.assert_array_equal(check_inputs(parsed, edges).reshape(1, 16), edges)
    for shape, n in [((3, 4, 4, 1), 3), ((3, 16), 3), ((4, 4, 1), 1), ((1, 4, 4, 1), 1),
                     ((16,), 1)]:
        assert check_inputs(parsed, np.zeros(shape, np.int8)).shape == (n, 4, 4, 1)

    floats = parse_tflite(float_edges.read_bytes())
    assert floats.input_float is not None
    with pytest.raises(TinysiftError, match="takes float32 inputs; got uint8: scale them"):
        check_inputs(floats, np.full((3, 4, 4, 1), 200, np.uint8))
    for bad in (np.nan, np.inf):
        x = np.zeros((3, 4, 4, 1), np.float32)
        x[1, 2, 2, 0] = bad
        with pytest.raises(TinysiftError, match=r"1 of 3 inputs hold NaN or infinite values "
                                                r"\(the first: row 1\)"):
            check_inputs(floats, x)
    assert check_inputs(floats, np.zeros((2, 16))).dtype == np.float32


def test_engine_run_does_not_write_its_outputs_over_its_inputs(small, tmp_path, capsys):
    """`engine run --inputs x.npy --out x.npy` (or --out x) replaced the user's inputs with
    the outputs, exit 0."""
    from tinysift.cli import main

    x = np.zeros((3, 4, 4, 1), np.int8)
    np.save(tmp_path / "x.npy", x)
    for out in ("x.npy", "x", "../" + tmp_path.name + "/x.npy"):
        code = main(["engine", "run", "--tflite", str(small), "--inputs",
                     str(tmp_path / "x.npy"), "--out", str(tmp_path / out)])
        err = capsys.readouterr().err
        assert code == 2 and "is the --inputs file" in err and "x_outputs.npy" in err, err
        assert np.array_equal(np.load(tmp_path / "x.npy"), x)


def test_the_native_engine_gives_tflm_s_outputs_for_every_sample(small, tmp_path):
    """run_tflite (device.native.run_engine: the engine and the model compiled into a shared
    library, called through ctypes) gives TFLM's int8 outputs, sample by sample in order
    (here with the DSP kernels, built as their own library)."""
    from tinysift.export.golden import layer_outputs
    from tinysift.stages.engine import run_tflite

    x = np.random.default_rng(5).integers(-128, 128, (4, 4, 4, 1)).astype(np.int8)
    want = layer_outputs(small.read_bytes(), x)[-1].reshape(4, -1)
    got = run_tflite(small, x, dsp=True, work_dir=tmp_path)
    assert got.dtype == np.int8 and got.shape == (4, 3), got.shape
    assert np.array_equal(got, want), (got, want)
    assert (tmp_path / "build" / "libtsengine-dsp.so").is_file()


def test_the_golden_program_s_summary_is_read(small, tmp_path):
    """golden_check on a real export (engine check's own) with the DSP kernels: every
    exported input equal, the layer count, which kernels ran, and no failed check; with
    TFLM's expected output changed, the input that differs and the failed check are read;
    a compile that fails says gcc's words. GoldenCheck.ok needs inputs, all of them equal
    and no failure."""
    from tinysift.device.native import GoldenCheck, golden_check
    from tinysift.errors import DeviceError
    from tinysift.stages.engine import check_tflite

    check_tflite(small, count=2, out_dir=tmp_path / "check", kernels=())
    export = tmp_path / "check" / "export"
    g = golden_check(export, tmp_path / "build", dsp=True)
    assert (g.inputs, g.equal, g.dsp, g.failures) == (2, 2, True, []), g
    assert g.layers == 3 and g.ok and "GOLDEN hash=" in g.log  # conv, reshape, head
    assert (tmp_path / "build" / "golden-dsp").is_file()
    # TFLM's first output byte changed by one in the export: the first input differs
    golden = export / "ts_export_golden.c"
    text = golden.read_text()
    m = re.search(r"ts_export_golden_outputs_data\[\d+\][^{]*\{\s*(-?\d+)", text)
    value = int(m[1])
    golden.write_text(text[:m.start(1)] + str(value + 1 if value < 127 else value - 1)
                      + text[m.end(1):])
    g = golden_check(export, tmp_path / "build", dsp=True)
    assert (g.inputs, g.equal) == (2, 1) and not g.ok, g
    assert g.failures and all(":FAIL:" in line for line in g.failures), g.failures
    # an export without its sources: gcc's own words, not a missing summary
    with pytest.raises(DeviceError, match="compiling the engine with host gcc failed:\n.*"
                                          "ts_export_model.c"):
        golden_check(tmp_path / "no-export", tmp_path / "build")
    assert not GoldenCheck(inputs=0, equal=0, layers=3, dsp=False).ok
    assert not GoldenCheck(inputs=3, equal=2, layers=3, dsp=False).ok
    assert not GoldenCheck(inputs=3, equal=3, layers=3, dsp=False,
                           failures=["TS_TEST:x:FAIL:y"]).ok


def test_a_model_of_two_inputs_is_refused_saying_so():
    """A two-input model was refused as "the firmware engine runs models with one input and
    one output", without what this one has or what to do."""
    from tinysift.export.tflite_reader import parse_tflite
    from tinysift.quantize.convert import quiet_stderr
    from tinysift.tfcompat import keras, tf

    keras.utils.set_random_seed(0)
    a, b = keras.Input((4,)), keras.Input((4,))
    model = keras.Model([a, b], keras.layers.Dense(3)(keras.layers.Concatenate()([a, b])))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    with quiet_stderr():
        tflite = bytes(conv.convert())
    with pytest.raises(UnsupportedOpError, match=r"the model has 2 inputs and 1 output; the "
                                                 r"firmware engine .* convert a model of one "
                                                 r"input tensor"):
        parse_tflite(tflite)


def test_the_inference_plan_counts_a_float_models_float_input_and_output_buffers(float_edges):
    """A model with a float input and output (QUANTIZE first, DEQUANTIZE last) needs, beside
    the int8 tensors, a float32 buffer for each: `engine check --board` left them out and
    passed a model whose buffers then did not fit in RAM."""
    from tinysift.boards import load_board
    from tinysift.export.memory import inference_plan
    from tinysift.export.tflite_reader import parse_tflite

    tflite = float_edges.read_bytes()
    parsed = parse_tflite(tflite)
    assert parsed.input_float is not None and parsed.output_float is not None
    plan = inference_plan(parsed, load_board("nucleo_f411re"), len(tflite))
    in_bytes, out_bytes = 4 * 4 * 1, parsed.layers[-1].out_bytes
    assert plan.ram["input and output buffers"] == 5 * in_bytes + 5 * out_bytes


def test_a_runs_export_folder_is_refused_however_it_is_named(tmp_path, monkeypatch):
    """The run's export/ given as `.` from inside it, or through a link to it, is the run's
    export still (its name there is "" or the link's): refused as RUN/export is."""
    from pathlib import Path

    from tinysift.stages.export import check_export_folder

    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "manifest.json").write_text("{}")
    (tmp_path / "link").symlink_to(run / "export")
    monkeypatch.chdir(run / "export")
    for given in (Path("."), tmp_path / "link", run / "export" / ".." / "export"):
        with pytest.raises(TinysiftError, match="is the export of the run folder"):
            check_export_folder(given)
    check_export_folder(tmp_path / "elsewhere")  # a folder outside any run


def test_golden_layer_samples_are_at_most_the_samples_exported(small, tmp_path):
    """The firmware compares every layer's output for the first GOLDEN_LAYER_SAMPLES (2) test
    samples: an export of one sample holds the layers of that one, and its header says 1
    (2 read a second sample's layers that are not there)."""
    from tinysift.stages.export import export_tflite

    for count, said in ((1, 1), (3, 2)):
        export_tflite(small, tmp_path / str(count), count=count)
        header = (tmp_path / str(count) / "ts_export.h").read_text()
        assert f"#define TS_EXPORT_GOLDEN_LAYER_SAMPLES {said}\n" in header


def test_a_users_files_of_an_export_s_names_are_kept_whatever_they_hold(tmp_path):
    """A folder's golden.npz or export.json of the user's own is refused before the export
    writes over it, also when it is no export's at all: an npz of other arrays (any zip
    passed for an export's), a JSON list or a file that is not JSON (which ended in an
    unexpected error instead)."""
    from tinysift.stages.export import check_export_folder

    npz = tmp_path / "arrays.npz"
    np.savez(npz, weights=np.zeros(3))
    users_files = [("golden.npz", npz.read_bytes()),
                   ("export.json", b'["format_version", "content_hash"]'),
                   ("export.json", b"format_version: 2\ncontent_hash: x\n")]
    for i, (name, content) in enumerate(users_files):
        folder = tmp_path / f"mine-{i}"
        folder.mkdir()
        (folder / name).write_bytes(content)
        with pytest.raises(TinysiftError, match=rf"holds {name}, which an export writes and "
                                                r"which no tinysift export made"):
            check_export_folder(folder)
        assert (folder / name).read_bytes() == content


def test_a_runs_export_is_named_through_the_run_folder_the_user_gave(tmp_path):
    """RUN/export given through a link to the run folder: the refusal names the run as the
    user wrote it (the path they know), not where the link resolves to. A folder named
    export in a folder that is no run (no manifest.json) is the user's to export into."""
    from tinysift.stages.export import check_export_folder

    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "manifest.json").write_text("{}")
    link = tmp_path / "latest"
    link.symlink_to(run)
    with pytest.raises(TinysiftError, match=rf"{re.escape(str(link / 'export'))} is the export "
                                            rf"of the run folder {re.escape(str(link))}: "):
        check_export_folder(link / "export")
    (tmp_path / "mine" / "export").mkdir(parents=True)
    check_export_folder(tmp_path / "mine" / "export")


def test_a_missing_tflite_is_named_with_the_option_that_gives_it(tmp_path):
    """A .tflite path that is not there: `engine check`/`run` (tflite_file) and a bare
    export from Python each say so naming --tflite, and the export leaves no folder."""
    from tinysift.stages.engine import tflite_file
    from tinysift.stages.export import export_tflite

    missing = tmp_path / "model.tflite"
    said = rf"{re.escape(str(missing))} not found: pass a .tflite file \(--tflite\)$"
    with pytest.raises(TinysiftError, match=said):
        tflite_file(missing)
    with pytest.raises(TinysiftError, match=said):
        export_tflite(missing, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_labels_and_a_training_set_are_checked_against_the_model_s_head(small, float_edges,
                                                                         tmp_path):
    """A bare export's labels are one integer class of the head per sample (3 classes here:
    -1 and 3 are refused, 2 is the last one taken); a training set needs an int8-input model
    (the device trains on int8 samples). What is taken is exported as given."""
    from tinysift.stages.export import export_tflite

    for labels, said in ((np.array([0, 1]), r"labels of shape \(2,\) \(int64\) for 3 samples"),
                         (np.array([0.0, 1.0, 2.0]), r"\(float64\) for 3 samples: give one "
                                                     "integer label per sample"),
                         (np.array([0, 3, 1]), r"labels must be classes 0\.\.2 of the model"),
                         (np.array([0, -1, 1]), r"labels must be classes 0\.\.2 of the model")):
        with pytest.raises(TinysiftError, match=said):
            export_tflite(small, tmp_path / "refused", count=3, labels=labels)
    with pytest.raises(TinysiftError, match="a training set needs a model with int8 input"):
        export_tflite(float_edges, tmp_path / "refused", count=1,
                      train=(np.zeros((2, 4, 4, 1), np.float32), np.zeros(2, np.int64)))
    assert not (tmp_path / "refused").exists()
    x_train = np.arange(32).reshape(2, 16).astype(np.int8)
    export_tflite(small, tmp_path / "ok", count=3, labels=np.array([0, 2, 1]),
                  train=(x_train, np.array([2, 0])))
    with np.load(tmp_path / "ok" / "golden.npz") as g:
        assert g["y_test"].tolist() == [0, 2, 1] and g["y_train"].tolist() == [2, 0]
        assert np.array_equal(g["x_train"].reshape(2, 16), x_train)


def test_random_inputs_span_int8_and_inputs_come_back_in_the_model_s_type(small, float_edges,
                                                                          tmp_path):
    """The default inputs of `engine check` reach both ends of int8 (a float-input model's
    quantize to them through its input's scale and zero point), and another seed draws
    others; inputs given are returned in the model's input type (int8 from int16 values
    within range), a 0-d array is refused as any wrong shape, NaN in one sample given alone
    is counted as that one input, and `engine run` refuses what they refuse before it
    compiles anything."""
    from tinysift.export.tflite_reader import parse_tflite
    from tinysift.stages.engine import run_tflite
    from tinysift.stages.export import check_inputs, random_inputs

    parsed = parse_tflite(small.read_bytes())
    x = random_inputs(parsed, 256)
    assert x.dtype == np.int8 and x.shape == (256, 4, 4, 1)
    assert (x.min(), x.max()) == (-128, 127)
    assert not np.array_equal(x, random_inputs(parsed, 256, seed=1))
    floats = parse_tflite(float_edges.read_bytes())
    f = random_inputs(floats, 256)
    q = np.round(f / floats.input.scale) + floats.input.zero_point
    assert f.dtype == np.float32 and (q.min(), q.max()) == (-128, 127)

    assert check_inputs(parsed, np.full((2, 16), 127, np.int16)).dtype == np.int8
    with pytest.raises(TinysiftError, match=r"inputs of shape \(\) do not hold one sample"):
        check_inputs(parsed, np.array(3, np.int8))
    one = np.zeros((4, 4, 1), np.float32)
    one[2, 1, 0] = np.nan
    with pytest.raises(TinysiftError, match=r"1 of 1 inputs hold NaN or infinite values"):
        check_inputs(floats, one)
    with pytest.raises(TinysiftError, match=r"inputs of shape \(3, 4, 4, 3\) do not hold one"):
        run_tflite(small, np.zeros((3, 4, 4, 3), np.int8), work_dir=tmp_path)
    assert not (tmp_path / "build").exists()


def test_engine_check_counts_the_inputs_given_and_keeps_its_export_only_in_out_dir(small,
                                                                                 tmp_path):
    """The report counts the inputs given (not --count), and names an export folder only
    where --out-dir keeps one (without it the export went with its temporary folder)."""
    from tinysift.stages.engine import check_tflite

    r = check_tflite(small, inputs=np.zeros((3, 4, 4, 1), np.int8), kernels=())
    assert (r.inputs, r.export_dir) == (3, None)
    kept = check_tflite(small, count=2, out_dir=tmp_path / "kept", kernels=())
    assert (kept.inputs, kept.export_dir) == (2, tmp_path / "kept" / "export")
    assert (kept.export_dir / "export.json").is_file()


def test_the_board_a_fit_problem_offers_is_the_smallest_by_ram_with_a_port(big_gap, tmp_path,
                                                                           monkeypatch):
    """The fix names the board of least RAM (then flash) that fits and has a port: a board
    without one is passed over even where it is the smallest that fits, and one of less RAM
    is offered before one of less flash."""
    from tinysift.boards import CONFIG_ENV, load_board, save_user_board
    from tinysift.export.memory import inference_plan
    from tinysift.export.tflite_reader import parse_tflite
    from tinysift.stages.engine import fit_problem

    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "config"))
    tflite = big_gap.read_bytes()
    parsed = parse_tflite(tflite, big_gap)
    plan = inference_plan(parsed, load_board("nucleo_f401re"), len(tflite)).to_dict()
    ram = inference_plan(parsed, load_board("nucleo_l4r5zi"), len(tflite)).ram_total
    assert ram < 640_000 < load_board("nucleo_l4r5zi").ram_bytes
    save_user_board("disco_f746ng", {"ram_bytes": 640_000})  # no port
    assert fit_problem(parsed, plan, len(tflite)).endswith("; choose nucleo_l4r5zi or use a "
                                                           "smaller model")
    save_user_board("esp32-s3", {"ram_bytes": 650_000, "flash_bytes": 8 << 20})
    assert fit_problem(parsed, plan, len(tflite)).endswith("; choose esp32-s3 or use a "
                                                           "smaller model")


def test_the_instruction_count_needs_the_arm_tools_and_is_timed_at_the_board_s_clock(
        tmp_path, monkeypatch):
    """`engine check --board` without the ARM compiler or QEMU names what is missing and the
    setup script; with them, the instructions of one invoke are timed at the board's clock,
    one cycle each (84,000 at nucleo_f401re's 84 MHz: 1 ms). The emulated run itself (a
    cross build and QEMU) is stood in for: tests/test_bench_kernels.py reads its figures."""
    import tinysift.device.icount as icount
    from tinysift.stages.engine import emulated_invoke

    tools = tmp_path / "bin"
    tools.mkdir()
    monkeypatch.setenv("PATH", str(tools))
    with pytest.raises(TinysiftError, match=r"needs arm-none-eabi-gcc and qemu-system-arm: "
                                            r"run tools/setup\.sh"):
        emulated_invoke(tmp_path, tmp_path, "nucleo_f401re")
    for name in ("arm-none-eabi-gcc", "qemu-system-arm"):
        (tools / name).write_text("#!/bin/sh\n")
        (tools / name).chmod(0o755)
    monkeypatch.setattr(icount, "invoke_instructions", lambda export, work: dict(
        instructions=84_000, macs=1000, stack=256, arena=1024, scratch=0, dsp=True))
    inv = emulated_invoke(tmp_path, tmp_path, "nucleo_f401re")
    assert (inv["board"], inv["clock_hz"], inv["implied_ms"]) == ("nucleo_f401re", 84_000_000,
                                                                  1.0)
    assert inv["instructions"] == 84_000
