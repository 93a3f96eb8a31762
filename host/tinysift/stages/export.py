"""The ``export`` stage: ``RUN/export/`` for the firmware, checked against the board first.

Writes (prefix ``ts_export``):

* ``ts_export.h``       macros (format version, hash, counts, shapes) and declarations
* ``ts_export_model.c`` layer table, int8 weights, int32 biases, multipliers and shifts,
                        zero points, the head's float initialization, the raw ``.tflite``
* ``ts_export_data.c``  the kept training set and a held-out test subset, int8, with labels
                        (and, with a codebook, the per-class VQ codebook of ``db stream``)
* ``ts_export_golden.c`` TFLM outputs for every test sample and every layer's output for the
                        first samples (firmware tests name the first layer that differs)
* ``golden.npz``, ``export.json`` (shapes, hashes, the memory plan)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinysift.boards import DEFAULT_BOARD, load_board
from tinysift.export import c_writer
from tinysift.export.codebook import VQCodebook
from tinysift.export.memory import (
    PLAN_VERSION,
    board_plan_fields,
    check_fits,
    max_train_samples,
    model_footprint,
    model_scratch_bytes,
    plan_memory,
)
from tinysift.export.tflite_reader import (
    FORMAT_VERSION,
    ParsedModel,
    head_float_weights,
    parse_tflite,
)
from tinysift.runs import locks_run
from tinysift.selection.budget import balanced_subset

PREFIX = "ts_export"
#: The code the export's C files, golden data and memory plan come from (its key counts their
#: sources: a run folder exported by earlier arithmetic, e.g. quant_math's multipliers, is
#: exported again; FORMAT_VERSION and PLAN_VERSION still name the deliberate changes).
EXPORT_CODE = ("tinysift.export", "tinysift.quantize.tflm", "tinysift.stages.export")
GOLDEN_LAYER_SAMPLES = 2


@dataclass
class ExportOutcome:
    export_dir: Path
    train_samples: int
    test_samples: int
    plan: dict
    content_hash: str
    skipped: bool = False
    #: what ``fit=True`` cut (kept, exported, dropped, seed); None when the kept set fitted
    fit: dict | None = None


@locks_run("run_dir")
def export(run_dir: str | Path, board: str = DEFAULT_BOARD, fit: bool = False,
           test_samples: int = 200, db_capacity: int | None = None,
           seed: int = 0, train_indices: np.ndarray | None = None,
           test_indices: np.ndarray | None = None,
           codebook: VQCodebook | None = None,
           backbone_training: bool = True) -> ExportOutcome:
    """Export ``RUN/model.tflite`` and the kept training set to ``RUN/export/``.

    Parameters
    ----------
    run_dir : a run folder with ``model.tflite`` (``tinysift quantize``)
    board : board profile name; the memory plan is checked before anything is written
    fit : when the kept set does not fit, export the largest class-balanced random subset
        of it (seeded by ``seed``) that fits, not the samples the selection ranked first;
        export.json's ``fit`` records the positions exported within the kept set. To fit a
        selection-ordered set, prune again with ``--keep N`` (the N the plan allows)
    test_samples : size of the held-out int8 test subset (stratified, seeded)
    db_capacity : samples the firmware's ``db load`` RAM buffer holds (None: as many as the
        exported training set); part of the memory plan
    train_indices : export these training-split samples instead of the ones the model was
        trained on (an adaptation's replay set)
    test_indices : export these test-split samples instead of a stratified draw
    codebook : a per-class VQ codebook in the feature space (``tinysift.export.codebook``)
        for ``db stream policy=coverage``: written to the data file with its macros, counted
        in the memory plan (flash); None: no codebook (the device streams with reservoir
        sampling only)
    backbone_training : the firmware holds the buffers of update=last-block / bias (and the
        raw .tflite their scales come from); False: a head-only firmware (update=head only,
        built with -DTS_APP_BACKBONE_TRAINING=0), which needs less RAM and flash. Recorded
        in export.json (``backbone_training``) and its memory plan; the firmware build
        (tinysift.device.build) and the device sessions follow it
    """
    from tinysift.errors import TinysiftError
    from tinysift.export.golden import golden
    from tinysift.quantize import tflm
    from tinysift.runs import Run, file_hash, json_hash, module_source_hash, stage_key
    from tinysift.stages.checks import check_quantized
    from tinysift.stages.train import load_run_dataset, load_trainset

    run = Run(run_dir)
    tpath = run / "model.tflite"
    if not tpath.exists():
        raise TinysiftError(f"{tpath} not found; run `tinysift quantize --run {run.path}` first")
    check_quantized(run)
    tflite = tpath.read_bytes()
    parsed = parse_tflite(tflite, tpath)
    if not parsed.has_head:
        raise TinysiftError(f"{tpath}: the model has no classifier head for the on-device "
                            f"trainer ({parsed.head_note}); export it without a run folder: "
                            "`tinysift engine export --tflite FILE --out-dir DIR`")
    ds = load_run_dataset(run)
    brd = load_board(board)
    if train_indices is None:
        x_kept, y_kept = load_trainset(run.path, ds)
    else:
        train_indices = np.asarray(train_indices, np.int64)
        x_kept, y_kept = ds.x_train[train_indices], ds.y_train[train_indices]
    present = len(np.unique(ds.y_test))  # a user's test split may lack a class
    if test_indices is None and test_samples < present:
        # (class_quotas' refusal spoke of a keep and --no-balance, which export has not)
        raise TinysiftError(f"--test-samples {test_samples}: the exported test set is class-"
                            f"balanced and needs at least one sample of each of the test "
                            f"split's {present} classes; pass --test-samples {present} or more")
    test_idx = (balanced_subset(ds.y_test, test_samples, seed) if test_indices is None
                else np.asarray(test_indices, np.int64))
    fp = model_footprint(parsed, len(tflite))
    vq = _check_codebook(codebook, fp)
    # the profile's planned figures, not just its name: a user profile that changes the
    # RAM or flash must re-plan (and may refuse) an export made against the old figures
    profile = board_plan_fields(brd)
    params = {"board": board, "board_profile": profile, "fit": fit,
              "test_samples": test_samples, "seed": seed,
              "db_capacity": db_capacity,
              "format_version": FORMAT_VERSION, "plan_version": PLAN_VERSION}
    if not backbone_training:  # only when set: every earlier export keeps its key
        params["backbone_training"] = False
    inputs = {"tflite": file_hash(tpath), "trainset": file_hash(run / "trainset.npz"),
              "code": module_source_hash(EXPORT_CODE)}
    if train_indices is not None:
        inputs["train_indices"] = json_hash(train_indices.tolist())
    if test_indices is not None:
        inputs["test_indices"] = json_hash(test_idx.tolist())
    if codebook is not None:
        inputs["codebook"] = json_hash({k: v.tolist() for k, v in codebook.arrays().items()})
    out_dir = run / "export"
    if run.is_fresh("export", stage_key(params, inputs)):
        r = run.stage_info("export")["results"]
        return ExportOutcome(out_dir, r["train_samples"], r["test_samples"], r["plan"],
                             r["content_hash"], skipped=True, fit=r.get("fit"))
    fit_cut: dict | None = None
    if fit:
        most = max_train_samples(fp, brd, len(test_idx), len(y_kept), db_capacity,
                                 vq_per_class=vq, backbone_training=backbone_training)
        if most < len(y_kept):
            if most < ds.num_classes:
                check_fits(fp, brd, len(y_kept), len(test_idx), db_capacity,
                           vq_per_class=vq, backbone_training=backbone_training,
                           fit=True)  # raises
            keep = balanced_subset(y_kept, most, seed)
            # positions: rows of the kept set (trainset.npz, or train_indices) exported
            fit_cut = {"kept": len(y_kept), "exported": len(keep),
                       "dropped": len(y_kept) - len(keep), "seed": seed,
                       "order": "class-balanced random subset of the kept set (seeded)",
                       "positions": keep.tolist()}
            x_kept, y_kept = x_kept[keep], y_kept[keep]
    plan = check_fits(fp, brd, len(y_kept), len(test_idx), db_capacity, vq_per_class=vq,
                      backbone_training=backbone_training)
    run.record_command()
    with run.stage("export", params, inputs, seed=seed) as rec:
        scale, zp = tflm.input_quant(tflite) if parsed.input_float is None else (
            parsed.input.scale, parsed.input.zero_point)
        x_train = tflm.quantize_images(x_kept, scale, zp)
        y_test = ds.y_test[test_idx]
        content_hash = file_hash(tpath)
        # golden() feeds the .tflite its own input type: a float-input model gets the float
        # images (TFLM's QUANTIZE gives the int8 test set), never int8 it would saturate
        gold = golden(tflite, parsed, _model_inputs(parsed, ds.x_test[test_idx], scale, zp))
        outputs = write_export(out_dir, parsed, tflite, content_hash, gold, y_test, x_train,
                               y_kept, plan.to_dict(), board,
                               extra_info={"test_indices": test_idx.tolist(), "fit": fit_cut,
                                           "board_profile": profile,
                                           "backbone_training": backbone_training},
                               feature_cache=plan.feature_cache, db_capacity=plan.db_capacity,
                               codebook=codebook)
        rec["outputs"].extend(f"export/{name}" for name in outputs)
        rec["results"].update(train_samples=len(y_kept), test_samples=len(y_test),
                              plan=plan.to_dict(), content_hash=content_hash,
                              fit=_fit_summary(fit_cut))
    run.manifest["memory_plan"] = plan.to_dict()
    run.save()
    return ExportOutcome(out_dir, len(y_kept), len(y_test), plan.to_dict(), content_hash,
                         fit=_fit_summary(fit_cut))


def _fit_summary(fit_cut: dict | None) -> dict | None:
    """What ``--fit`` cut without the positions (those stay in export.json: the manifest
    would hold thousands of numbers)."""
    return None if fit_cut is None else {k: v for k, v in fit_cut.items() if k != "positions"}


def _model_inputs(parsed: ParsedModel, x_uint8: np.ndarray, scale: float,
                  zero_point: int) -> np.ndarray:
    """uint8 images in the ``.tflite``'s own input type.

    Parameters
    ----------
    parsed : the parsed model
    x_uint8 : the images
    scale, zero_point : the int8 input's quantization (used for an int8-input model)

    Returns
    -------
    np.ndarray
        float32 in [0, 1] (the training convention, tinysift.models.training.to_float) for a
        model that takes float, else int8 quantized with ``scale`` and ``zero_point``.
    """
    from tinysift.models.training import to_float
    from tinysift.quantize import tflm

    if parsed.input_float is not None:
        return to_float(x_uint8)
    return tflm.quantize_images(x_uint8, scale, zero_point)


def _check_codebook(codebook: VQCodebook | None, fp) -> int:
    """Codewords per class of a codebook that matches the model (0 without one)."""
    from tinysift.errors import TinysiftError

    if codebook is None:
        return 0
    if (codebook.num_classes, codebook.dim) != (fp.num_classes, fp.feature_dim):
        raise TinysiftError(f"the VQ codebook has {codebook.num_classes} classes of "
                            f"{codebook.dim} features; the model has {fp.num_classes} classes "
                            f"and {fp.feature_dim} features")
    return codebook.per_class


def run_model_footprint(run_dir: str | Path):
    """The memory footprint (tinysift.export.memory.model_footprint) of a run's quantized
    model, ``RUN/model.tflite``."""
    from tinysift.errors import TinysiftError

    path = Path(run_dir) / "model.tflite"
    if not path.exists():
        raise TinysiftError(f"{path} not found: the memory plan needs the quantized model; "
                            f"run `tinysift quantize --run {run_dir}` first")
    tflite = path.read_bytes()
    return model_footprint(parse_tflite(tflite, path), len(tflite))


def memory_plan_for(run_dir: str | Path, board: str, test_samples: int = 200,
                    train_samples: int | None = None, db_capacity: int | None = None,
                    backbone_training: bool = True) -> dict:
    """The plan for a run's model against any board, without writing anything.

    ``train_samples``: the flash training set (default: what the model was trained on);
    ``db_capacity``: samples streamed into RAM; ``backbone_training``: the buffers of
    update=last-block / bias (a firmware built without them plans less RAM)."""
    from tinysift.runs import Run
    from tinysift.stages.train import load_run_dataset, load_trainset

    run = Run(run_dir)
    ds = load_run_dataset(run)
    if train_samples is None:
        train_samples = len(load_trainset(run.path, ds)[1])
    return plan_memory(run_model_footprint(run.path), load_board(board), train_samples,
                       min(test_samples, len(ds.y_test)), db_capacity=db_capacity,
                       backbone_training=backbone_training).to_dict()


def write_export(out_dir: Path, parsed, tflite: bytes, content_hash: str, gold,
                 y_test: np.ndarray, x_train: np.ndarray, y_train: np.ndarray,
                 plan: dict | None, board: str, extra_info: dict | None = None,
                 feature_cache: bool = True, db_capacity: int = 0,
                 codebook: VQCodebook | None = None) -> list[str]:
    """Write the C files, ``golden.npz`` and ``export.json`` of one export into ``out_dir``
    (``gold``: TFLM's outputs on the test inputs, tinysift.export.golden.Golden; ``codebook``:
    the per-class VQ codebook of ``db stream``, or None). Returns the file names written."""
    from tinysift.runs import atomic_write_json, atomic_write_npz, atomic_write_text

    fp_head = parsed.has_head
    head_w, head_b = head_float_weights(parsed) if fp_head else (None, None)
    h, w, c = parsed.input_dims
    head = parsed.head if fp_head else None
    macros = {
        "FORMAT_VERSION": FORMAT_VERSION, "CONTENT_HASH": content_hash,
        "NUM_LAYERS": len(parsed.layers), "ARENA_BYTES": parsed.arena_bytes(),
        "SCRATCH_BYTES": model_scratch_bytes(parsed),
        "INPUT_H": h, "INPUT_W": w, "INPUT_C": c, "SAMPLE_BYTES": h * w * c,
        "OUTPUT_BYTES": parsed.layers[-1].out_bytes,
        "NUM_CLASSES": head.out_dims[2] if head else 0,
        "FEATURE_DIM": head.in_dims[2] if head else 0,
        "HEAD_LAYER": parsed.head_index if head else len(parsed.layers),
        "TRAIN_COUNT": len(y_train), "TEST_COUNT": len(y_test),
        "FEATURE_CACHE": int(feature_cache), "DB_CAPACITY": db_capacity,
        "GOLDEN_LAYER_SAMPLES": min(GOLDEN_LAYER_SAMPLES, len(y_test)),
        "WEIGHT_BYTES": parsed.weight_bytes(), "MACS": parsed.macs(),
        "RAM_PLAN_BYTES": plan["ram_total"] if plan else 0,
        "FLASH_PLAN_BYTES": plan["flash_total"] if plan else 0,
    }
    if codebook is not None:
        macros.update(VQ_PER_CLASS=codebook.per_class, VQ_CODEWORDS=int(codebook.counts.sum()))
    x_test = gold.x_int8
    data_c = c_writer.write_data_c(PREFIX, {"train": (x_train, y_train), "test": (x_test, y_test)})
    if codebook is not None:
        data_c += c_writer.write_codebook_c(PREFIX, codebook.codewords, codebook.counts,
                                            codebook.radius2)
    files = {
        f"{PREFIX}.h": c_writer.write_header(PREFIX, macros, golden=True,
                                             codebook=codebook is not None),
        f"{PREFIX}_model.c": c_writer.write_model_c(parsed, PREFIX, head_w, head_b, tflite,
                                                    content_hash),
        f"{PREFIX}_data.c": data_c,
        f"{PREFIX}_golden.c": c_writer.write_golden_c(
            PREFIX, gold.int8_outputs, gold.layers, GOLDEN_LAYER_SAMPLES),
    }
    for name, text in files.items():
        atomic_write_text(out_dir / name, text)
    arrays = dict(x_test=x_test, y_test=y_test, outputs=gold.int8_outputs, x_train=x_train,
                  y_train=y_train, **{f"layer{i}": lo for i, lo in enumerate(gold.layers)})
    if fp_head:
        arrays.update(head_w=head_w, head_b=head_b)
    if codebook is not None:
        arrays.update(codebook.arrays())
    if parsed.input_float is not None or parsed.output_float is not None:
        arrays.update(x_tflite=gold.x, outputs_tflite=gold.outputs)
    atomic_write_npz(out_dir / "golden.npz", **arrays)
    pl = parsed.plan
    info = {
        "format_version": FORMAT_VERSION, "content_hash": content_hash, "board": board,
        "input": {"shape": [h, w, c], "scale": parsed.input.scale,
                  "zero_point": parsed.input.zero_point,
                  "float": parsed.input_float is not None},
        "output": {"bytes": parsed.layers[-1].out_bytes, "scale": parsed.output.scale,
                   "zero_point": parsed.output.zero_point,
                   "float": parsed.output_float is not None},
        "layers": [{"index": lay.index, "op": lay.op, "name": lay.name, "inputs": lay.inputs,
                    "in": list(lay.in_dims), "out": list(lay.out_dims), "macs": lay.macs}
                   for lay in parsed.layers],
        "tensors": [{"bytes": pl.sizes[t], "offset": pl.offsets[t], "first": pl.first[t],
                     "last": pl.last[t]} for t in range(len(pl.sizes))],
        "head_layer": parsed.head_index, "head_note": parsed.head_note,
        "feature_dim": macros["FEATURE_DIM"], "num_classes": macros["NUM_CLASSES"],
        "train_samples": len(y_train), "test_samples": len(y_test),
        "arena_bytes": parsed.arena_bytes(), "scratch_bytes": macros["SCRATCH_BYTES"],
        "weight_bytes": parsed.weight_bytes(),
        "macs": parsed.macs(), "memory_plan": plan, **(extra_info or {}),
    }
    if codebook is not None:
        info["codebook"] = codebook.summary()
    atomic_write_json(out_dir / "export.json", info)
    return [*files, "golden.npz", "export.json"]


#: What :func:`write_export` writes into its folder.
EXPORT_FILES = (f"{PREFIX}.h", f"{PREFIX}_model.c", f"{PREFIX}_data.c", f"{PREFIX}_golden.c",
                "golden.npz", "export.json")


def check_export_folder(out_dir: Path, flag: str = "--out-dir") -> None:
    """Refuse a folder that holds files of an export's names which no export wrote: a bare
    export goes wherever the user points it, and replaced (say) their own ``golden.npz``
    or ``export.json`` without a word. Files an export wrote (its C files' first line, its
    export.json's format version and content hash, its golden.npz's arrays) are written
    again, those of an export killed half-way included. A run folder's own ``export/``
    (however named: ``.`` from inside it, a link) is refused whole: its files are an
    export's, and a bare export there made the run's device commands refuse it."""
    from tinysift.errors import TinysiftError
    from tinysift.runs import MANIFEST

    # resolved: `.` from inside it (name "") or a link to it is the run's export all the same
    where = Path(out_dir).resolve()
    if where.name == "export" and (where.parent / MANIFEST).is_file():
        # the run as the user wrote it where they named export/ itself
        run = Path(out_dir).parent if Path(out_dir).name == "export" else where.parent
        # its files are an export's, so they were written over without a word, and the run's
        # device commands then refused it as "changed since `export` wrote it"
        raise TinysiftError(f"{out_dir} is the export of the run folder {run}: a bare export "
                            f"there would replace it (and `tinysift device run --run {run}` "
                            f"would refuse the run until `tinysift export --run {run}` ran "
                            f"again); give {flag} a folder outside the run")
    foreign = [n for n in EXPORT_FILES
               if (out_dir / n).exists() and not _written_by_export(out_dir / n)]
    if foreign:
        raise TinysiftError(f"{out_dir} holds {', '.join(foreign)}, which an export writes "
                            "and which no tinysift export made: writing the export there "
                            f"would replace them; give {flag} a new or empty folder")


def _written_by_export(path: Path) -> bool:
    """Whether ``path`` (one of :data:`EXPORT_FILES`) is a file an export wrote."""
    import json
    import zipfile

    try:
        if path.suffix == ".json":
            info = json.loads(path.read_text())
            return isinstance(info, dict) and {"format_version", "content_hash"} <= info.keys()
        if path.suffix == ".npz":
            with zipfile.ZipFile(path) as z:
                return {"x_test.npy", "outputs.npy"} <= set(z.namelist())
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(len(c_writer.HEADER_NOTE)) == c_writer.HEADER_NOTE
    except (OSError, ValueError, zipfile.BadZipFile):
        return False


def export_tflite(tflite_path: str | Path, out_dir: str | Path, inputs: np.ndarray | None = None,
                  count: int = 8, seed: int = 0, board: str | None = None,
                  labels: np.ndarray | None = None,
                  train: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Export a bare ``.tflite`` (no run folder) to ``out_dir``: the layer table, the tensor
    plan and golden data from TFLM on ``inputs`` (in the model's input type; default
    ``count`` random ones). The head, if any, is exported for the trainer, with ``labels``
    of the inputs (the test set; default zeros) and ``train`` = (samples in the model's
    input type, labels) as the flash training set (default none). Returns export.json's
    content."""
    import json

    from tinysift.errors import TinysiftError
    from tinysift.export.golden import golden
    from tinysift.export.memory import inference_plan
    from tinysift.runs import file_hash, out_folder

    tflite_path, out_dir = Path(tflite_path), Path(out_dir)
    if not tflite_path.is_file():  # was an "unexpected FileNotFoundError" (exit 1)
        raise TinysiftError(f"{tflite_path} not found: pass a .tflite file (--tflite)")
    out_folder(out_dir, "--out-dir", create=False)
    check_export_folder(out_dir)
    tflite = tflite_path.read_bytes()
    parsed = parse_tflite(tflite, tflite_path)
    x = random_inputs(parsed, count, seed) if inputs is None else check_inputs(parsed, inputs)
    y_test = np.zeros(len(x), np.uint8) if labels is None else _labels(parsed, labels, len(x))
    if train is None:
        x_train, y_train = np.zeros((0, int(np.prod(parsed.input_dims))), np.int8), y_test[:0]
    else:
        if parsed.input_float is not None:
            raise TinysiftError("a training set needs a model with int8 input (the device "
                                "trains on int8 samples)")
        x_train = check_inputs(parsed, train[0])
        y_train = _labels(parsed, train[1], len(x_train))
    gold = golden(tflite, parsed, x)
    plan = inference_plan(parsed, load_board(board), len(tflite)).to_dict() if board else None
    # made only now that the model ran: a refused export leaves no empty folder behind
    out_folder(out_dir, "--out-dir", create=True)
    x_train = x_train.reshape(len(x_train), int(np.prod(parsed.input_dims)))
    write_export(out_dir, parsed, tflite, file_hash(tflite_path), gold, y_test, x_train,
                 y_train, plan, board or "", extra_info={"tflite": str(tflite_path)})
    return json.loads((out_dir / "export.json").read_text())


def _labels(parsed, y: np.ndarray, n: int) -> np.ndarray:
    """Class labels of ``n`` samples for the model's head, as uint8."""
    from tinysift.errors import TinysiftError

    y = np.asarray(y)
    classes = parsed.head.out_dims[2] if parsed.has_head else 0
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise TinysiftError(f"labels of shape {y.shape} ({y.dtype}) for {n} samples: give one "
                            "integer label per sample")
    if not classes or (n and (y.min() < 0 or y.max() >= classes)):
        raise TinysiftError(f"labels must be classes 0..{classes - 1} of the model's head"
                            if classes else f"the model has no classifier head "
                            f"({parsed.head_note}): labels mean nothing to it")
    return y.astype(np.uint8)


def random_inputs(parsed, count: int, seed: int = 0) -> np.ndarray:
    """``count`` random inputs in the model's input type: int8 uniform over [-128, 127], or
    for a float-input model floats that quantize across the whole int8 range."""
    rng = np.random.default_rng(seed)
    shape = (count, *parsed.input_dims)
    q = rng.integers(-128, 128, shape, dtype=np.int64)
    if parsed.input_float is None:
        return q.astype(np.int8)
    t = parsed.input
    return ((q - t.zero_point) * np.float64(t.scale)).astype(np.float32)


def check_inputs(parsed, x: np.ndarray) -> np.ndarray:
    """User inputs: (N, *input shape) or one sample of the input shape, in the model's input
    type (int8, or float32 for a float-input model)."""
    from tinysift.errors import TinysiftError

    x = np.asarray(x)
    want = np.float32 if parsed.input_float is not None else np.int8
    size = int(np.prod(parsed.input_dims))
    one = x.shape in ((size,), tuple(parsed.input_dims), tuple(parsed.input.shape))
    # one sample per row: (N, 4, 4, 3) for a (4, 4, 1) model ran as 3N samples, silently
    if x.size == 0 or (not one and (x.ndim < 2 or x[0].size != size)):
        raise TinysiftError(f"inputs of shape {x.shape} do not hold one sample of the model "
                            f"input {tuple(parsed.input.shape)} ({size} values) per row: give "
                            f"(N, {', '.join(map(str, parsed.input_dims))}) or (N, {size})")
    if want is np.int8 and x.dtype != np.int8:
        if not np.issubdtype(x.dtype, np.integer) or x.min() < -128 or x.max() > 127:
            raise TinysiftError(f"the model takes int8 inputs; got {x.dtype} (range "
                                f"{x.min()}..{x.max()}): quantize them with the model's input "
                                f"scale {parsed.input.scale:g} and zero point "
                                f"{parsed.input.zero_point} and save them as int8")
    if want is np.float32:
        if not np.issubdtype(x.dtype, np.floating):
            # raw 0..255 pixels cast to floats: garbage outputs (TFLM's check refuses them too)
            raise TinysiftError(f"the model takes float32 inputs; got {x.dtype}: scale them "
                                "as the model was trained and save them as float32")
        bad = ~np.isfinite(x.reshape(len(x) if not one else 1, -1)).all(axis=1)
        if bad.any():  # NaN has no int8 value: the engine's and TFLM's QUANTIZE may differ
            raise TinysiftError(f"{int(bad.sum())} of {len(bad)} inputs hold NaN or infinite "
                                f"values (the first: row {int(np.argmax(bad))}): give finite "
                                "floats")
    return x.reshape(-1, *parsed.input_dims).astype(want)
