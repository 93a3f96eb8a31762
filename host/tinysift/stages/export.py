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
    check_fits,
    max_train_samples,
    model_footprint,
    plan_memory,
)
from tinysift.export.tflite_reader import FORMAT_VERSION, head_float_weights, parse_tflite
from tinysift.runs import locks_run
from tinysift.selection.budget import balanced_subset

PREFIX = "ts_export"
GOLDEN_LAYER_SAMPLES = 2


@dataclass
class ExportOutcome:
    export_dir: Path
    train_samples: int
    test_samples: int
    plan: dict
    content_hash: str
    skipped: bool = False


@locks_run("run_dir")
def export(run_dir: str | Path, board: str = DEFAULT_BOARD, fit: bool = False,
           test_samples: int = 200, db_capacity: int | None = None,
           seed: int = 0, train_indices: np.ndarray | None = None,
           test_indices: np.ndarray | None = None,
           codebook: VQCodebook | None = None) -> ExportOutcome:
    """Export ``RUN/model.tflite`` and the kept training set to ``RUN/export/``.

    Parameters
    ----------
    run_dir : a run folder with ``model.tflite`` (``tinysift quantize``)
    board : board profile name; the memory plan is checked before anything is written
    fit : when the kept set does not fit, keep the largest class-balanced prefix that fits
        (samples ordered by the run's selection scores when there are any, else seeded)
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
    """
    from tinysift.errors import TinysiftError
    from tinysift.export.golden import layer_outputs
    from tinysift.quantize import tflm
    from tinysift.runs import (
        Run,
        atomic_write_json,
        atomic_write_npz,
        atomic_write_text,
        file_hash,
        json_hash,
        stage_key,
    )
    from tinysift.stages.checks import check_quantized
    from tinysift.stages.train import load_run_dataset, load_trainset

    run = Run(run_dir)
    tpath = run / "model.tflite"
    if not tpath.exists():
        raise TinysiftError(f"{tpath} not found; run `tinysift quantize --run {run.path}` first")
    check_quantized(run)
    tflite = tpath.read_bytes()
    parsed = parse_tflite(tflite)
    ds = load_run_dataset(run)
    brd = load_board(board)
    if train_indices is None:
        x_kept, y_kept = load_trainset(run.path, ds)
    else:
        train_indices = np.asarray(train_indices, np.int64)
        x_kept, y_kept = ds.x_train[train_indices], ds.y_train[train_indices]
    test_idx = (balanced_subset(ds.y_test, test_samples, seed) if test_indices is None
                else np.asarray(test_indices, np.int64))
    fp = model_footprint(parsed, len(tflite))
    vq = _check_codebook(codebook, fp)
    params = {"board": board, "fit": fit, "test_samples": test_samples, "seed": seed,
              "db_capacity": db_capacity, "format_version": FORMAT_VERSION,
              "plan_version": PLAN_VERSION}
    inputs = {"tflite": file_hash(tpath), "trainset": file_hash(run / "trainset.npz")}
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
                             r["content_hash"], skipped=True)
    if fit:
        most = max_train_samples(fp, brd, len(test_idx), len(y_kept), db_capacity,
                                 vq_per_class=vq)
        if most < len(y_kept):
            if most < ds.num_classes:
                check_fits(fp, brd, len(y_kept), len(test_idx), db_capacity,
                           vq_per_class=vq)  # raises
            keep = balanced_subset(y_kept, most, seed)
            x_kept, y_kept = x_kept[keep], y_kept[keep]
    plan = check_fits(fp, brd, len(y_kept), len(test_idx), db_capacity, vq_per_class=vq)
    run.record_command()
    with run.stage("export", params, inputs, seed=seed) as rec:
        scale, zp = tflm.input_quant(tflite)
        x_train = tflm.quantize_images(x_kept, scale, zp)
        x_test = tflm.quantize_images(ds.x_test[test_idx], scale, zp)
        y_test = ds.y_test[test_idx]
        golden_layers = layer_outputs(tflite, x_test)
        golden_out = golden_layers[-1]
        head_w, head_b = head_float_weights(parsed)
        content_hash = file_hash(tpath)
        h, w, c = parsed.layers[0].in_dims
        macros = {
            "FORMAT_VERSION": FORMAT_VERSION, "CONTENT_HASH": content_hash,
            "NUM_LAYERS": len(parsed.layers), "ARENA_BYTES": parsed.arena_bytes(),
            "INPUT_H": h, "INPUT_W": w, "INPUT_C": c, "SAMPLE_BYTES": h * w * c,
            "NUM_CLASSES": fp.num_classes, "FEATURE_DIM": fp.feature_dim,
            "HEAD_LAYER": parsed.head_index, "TRAIN_COUNT": len(y_kept),
            "TEST_COUNT": len(y_test), "FEATURE_CACHE": int(plan.feature_cache),
            "DB_CAPACITY": plan.db_capacity,
            "GOLDEN_LAYER_SAMPLES": min(GOLDEN_LAYER_SAMPLES, len(y_test)),
            "WEIGHT_BYTES": fp.weight_bytes, "RAM_PLAN_BYTES": plan.ram_total,
            "FLASH_PLAN_BYTES": plan.flash_total,
        }
        if codebook is not None:
            macros.update(VQ_PER_CLASS=codebook.per_class,
                          VQ_CODEWORDS=int(codebook.counts.sum()))
        data_c = c_writer.write_data_c(PREFIX, {"train": (x_train, y_kept),
                                                "test": (x_test, y_test)})
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
                PREFIX, golden_out, golden_layers, GOLDEN_LAYER_SAMPLES),
        }
        for name, text in files.items():
            atomic_write_text(out_dir / name, text)
            rec["outputs"].append(f"export/{name}")
        atomic_write_npz(out_dir / "golden.npz", x_test=x_test, y_test=y_test,
                         outputs=golden_out, x_train=x_train, y_train=y_kept,
                         head_w=head_w, head_b=head_b,
                         **(codebook.arrays() if codebook is not None else {}),
                         **{f"layer{i}": lo for i, lo in enumerate(golden_layers)})
        rec["outputs"].append("export/golden.npz")
        info = {
            "format_version": FORMAT_VERSION, "content_hash": content_hash, "board": board,
            "input": {"shape": [h, w, c], "scale": scale, "zero_point": zp},
            "layers": [{"index": lay.index, "op": lay.op, "name": lay.name,
                        "in": list(lay.in_dims), "out": list(lay.out_dims),
                        "macs": layer_macs(lay)}
                       for lay in parsed.layers],
            "head_layer": parsed.head_index, "feature_dim": fp.feature_dim,
            "num_classes": fp.num_classes, "train_samples": len(y_kept),
            "test_samples": len(y_test), "test_indices": test_idx.tolist(),
            "arena_bytes": parsed.arena_bytes(), "weight_bytes": fp.weight_bytes,
            "memory_plan": plan.to_dict(),
        }
        if codebook is not None:
            info["codebook"] = codebook.summary()
        atomic_write_json(out_dir / "export.json", info)
        rec["outputs"].append("export/export.json")
        rec["results"].update(train_samples=len(y_kept), test_samples=len(y_test),
                              plan=plan.to_dict(), content_hash=content_hash)
    run.manifest["memory_plan"] = plan.to_dict()
    run.save()
    return ExportOutcome(out_dir, len(y_kept), len(y_test), plan.to_dict(), content_hash)


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


def layer_macs(lay) -> int:
    """Multiply-accumulates of one layer per sample (what the device's time budget for a
    command is derived from, tinysift.device.limits)."""
    if lay.weights is None or lay.op not in ("CONV_2D", "DEPTHWISE_CONV_2D",
                                             "FULLY_CONNECTED"):
        return 0
    pixels = 1 if lay.op == "FULLY_CONNECTED" else lay.out_dims[0] * lay.out_dims[1]
    return int(pixels * lay.weights.size)


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
    tflite = (run / "model.tflite").read_bytes()
    parsed = parse_tflite(tflite)
    ds = load_run_dataset(run)
    if train_samples is None:
        train_samples = len(load_trainset(run.path, ds)[1])
    return plan_memory(model_footprint(parsed, len(tflite)), load_board(board), train_samples,
                       min(test_samples, len(ds.y_test)), db_capacity=db_capacity,
                       backbone_training=backbone_training).to_dict()
