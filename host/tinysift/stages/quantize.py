"""The ``quantize`` stage: full-integer int8 ``.tflite``, checked with the TFLM runtime.

Post-training quantization uses a representative set drawn from the samples the model was
trained on (the kept set). ``qat=True`` first fine-tunes the model with tfmot's
quantization-aware training on the same samples. Either way the model is then run with
``tflite_micro.runtime`` on the whole test split: the int8 accuracy reported is what the
microcontroller computes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinysift.runs import locks_run

TFLITE_FILE = "model.tflite"
#: The code model.tflite and the stage's results come from (its key counts their sources, so
#: a run folder quantized by an earlier converter or TFLM check is quantized again).
QUANTIZE_CODE = ("tinysift.quantize", "tinysift.stages.quantize")


@dataclass
class QuantizeOutcome:
    run_dir: Path
    mode: str
    float_acc: float
    int8_acc: float
    drop: float
    arena_bytes: int
    tflite_bytes: int
    skipped: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["run_dir"] = str(self.run_dir)
        return d


@locks_run("run_dir")
def quantize(run_dir: str | Path, qat: bool = False, representative: int = 500,
             qat_epochs: int = 2, seed: int = 0, progress: bool = True) -> QuantizeOutcome:
    """Quantize ``RUN/model.keras`` to ``RUN/model.tflite`` and check it with TFLM.

    Parameters
    ----------
    run_dir : a run folder with a trained model (``tinysift train``)
    qat : quantization-aware fine-tuning before conversion
    representative : number of kept samples used to calibrate activation ranges
    qat_epochs : epochs of QAT fine-tuning
    seed : seed for the representative draw and QAT
    progress : bars over QAT's steps and the TFLM check of the test split
    """
    from tinysift.models.training import evaluate
    from tinysift.quantize import tflm
    from tinysift.quantize.convert import convert_int8, qat_finetune, quiet_stderr
    from tinysift.runs import Run, atomic_write_bytes, file_hash, module_source_hash
    from tinysift.stages.checks import check_trained
    from tinysift.stages.train import load_run_dataset, load_trained_model, load_trainset

    run = Run(run_dir)
    check_trained(run)
    ds = load_run_dataset(run)
    params = {"qat": qat, "representative": representative, "qat_epochs": qat_epochs,
              "seed": seed}
    inputs = {"model": file_hash(run / "model.keras"), "dataset": ds.content_hash,
              "code": module_source_hash(QUANTIZE_CODE)}
    from tinysift.runs import stage_key

    if run.is_fresh("quantize", stage_key(params, inputs)):
        r = run.stage_info("quantize")["results"]
        return QuantizeOutcome(run.path, r["mode"], r["float_acc"], r["int8_acc"], r["drop"],
                               r["arena_bytes"], r["tflite_bytes"], skipped=True)
    run.record_command()
    with run.stage("quantize", params, inputs, seed=seed) as rec:
        model = load_trained_model(run.path)
        x_kept, y_kept = load_trainset(run.path, ds)
        rng = np.random.default_rng(seed)
        rep_idx = rng.choice(len(x_kept), size=min(representative, len(x_kept)), replace=False)
        float_acc = evaluate(model, ds.x_test, ds.y_test)
        mode = "ptq"
        if qat:
            model = qat_finetune(model, x_kept, y_kept, qat_epochs, seed, progress=progress)
            mode = "qat"
        tflite = convert_int8(model, x_kept[np.sort(rep_idx)])
        atomic_write_bytes(run / TFLITE_FILE, tflite)
        rec["outputs"].append(TFLITE_FILE)
        scale, zp = tflm.input_quant(tflite)
        out = tflm.run_tflm(tflite, tflm.quantize_images(ds.x_test, scale, zp),
                            progress=progress)[0]
        int8_acc = float((out.argmax(1) == ds.y_test).mean())
        with quiet_stderr():  # up to the arena run_tflm used: large activations fit too
            arena = tflm.minimal_arena(tflite, hi=tflm.arena_ceiling(tflite))
        outcome = QuantizeOutcome(run.path, mode, float_acc, int8_acc, float_acc - int8_acc,
                                  arena, len(tflite))
        rec["results"].update({k: v for k, v in outcome.to_dict().items()
                               if k not in ("run_dir", "skipped")})
        rec["results"]["input_scale"], rec["results"]["input_zero_point"] = scale, zp
        rec["results"]["representative_samples"] = int(len(rep_idx))
    return outcome
