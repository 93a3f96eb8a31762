"""The ``train`` stage: train the tiny CNN on a dataset, a kept subset or a condensed set."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinysift.data.registry import run_outside_dataset
from tinysift.models.cnn import ModelConfig, check_input
from tinysift.models.training import TrainConfig
from tinysift.params import is_whole
from tinysift.runs import locks_run

MODEL_FILE = "model.keras"
TRAINSET_FILE = "trainset.npz"


@dataclass
class TrainOutcome:
    run_dir: Path
    test_acc: float
    train_samples: int
    seconds: float
    steps: int
    params: int
    macs_per_sample: int
    skipped: bool = False
    # e.g. a kept set trained for fewer steps than the subset step rule gives it
    warnings: list[str] = field(default_factory=list)


@locks_run("out", before=run_outside_dataset)
def train(dataset: str, out: str | Path, keep: str | float | int | None = None,
          selection: str | Path | None = None, condensed: str | Path | None = None,
          epochs: int | None = 10, seed: int = 0, width: int = 16,
          variant: str = "ds-cnn", progress: bool = True, guided: str | None = None,
          budget: float | None = None, guided_params: dict | None = None,
          label_noise: float = 0.0, keep_steps: bool = False,
          batch: int = TrainConfig.batch_size,
          epochs_setting: str = "--epochs") -> TrainOutcome:
    """Train the tiny CNN and save it to ``OUT/model.keras``.

    Parameters
    ----------
    dataset : registry name or ``npz:PATH`` / ``folder:PATH``
    out : run folder
    keep : optional fraction or count; with ``selection`` it must match the selection's
        ``keep_count``; alone it draws a random class-balanced subset (seeded)
    selection : a ``selection.npz`` (or its run folder) from ``tinysift prune``
    condensed : a ``condensed.npz`` (or its run folder) from ``tinysift condense``
    epochs : passes over the (sub)set; None (or 0) applies the subset step rule of TrainConfig.
        With ``guided``: the full-data recipe's epochs the budget is a fraction of
    seed, width, variant : training seed and model shape
    guided : a guided-training method (``tinysift.guided``: full-cut, rs2, infobatch, ucb, vq,
        flow): each epoch's samples are chosen while training; writes ``OUT/guided.json``
        (the cost ledger and every epoch's plan)
    budget : with ``guided``, the fraction in (0, 1] of the full-data recipe's sample-passes
        to spend, everything counted (training, extra forward passes, fits)
    guided_params : keyword arguments of the guided method
    keep_steps : with ``guided``, train in batches of the recipe's batch x ``budget``: as many
        optimizer steps as the full-data recipe (:func:`tinysift.guided.loop.train_guided`)
    batch : the recipe's batch (with ``guided``: the full-data recipe's). 128 is the
        benchmarks' recipe; batches of 64 gained 0.1-0.6 points in each of four 3-seed
        measurements, every one inside its paired interval (docs/methods.md, "Budgeted runs
        in smaller batches")
    label_noise : symmetric label noise (seeded with ``seed``) applied to the training split
        first (robustness studies; quantize and export re-apply it)
    """
    from tinysift.errors import BudgetError

    if epochs is not None and not is_whole(epochs, 0):
        raise BudgetError(f"--epochs must be a whole number >= 0 (0: the subset step rule), "
                          f"got {epochs}")
    if epochs == 0:  # as on the command line: 0 is the subset step rule
        epochs = None
    if not is_whole(batch, 1):
        raise BudgetError(f"--batch must be a whole number of samples >= 1 (the recipe's "
                          f"batch, {TrainConfig.batch_size} by default), got {batch}")
    if guided is None and budget is not None:
        raise BudgetError("--budget needs --guided METHOD (the budget of a guided training)")
    if guided is not None:
        _check_guided(guided, budget, epochs, keep, selection, condensed, guided_params)
    elif guided_params:
        raise BudgetError("--guided-params needs --guided METHOD (the method they configure)")
    elif keep_steps:
        raise BudgetError("--keep-steps needs --guided METHOD --budget F (it sets the batch of "
                          "a budgeted guided training)")
    if label_noise and (selection is not None or condensed is not None):
        raise BudgetError("--label-noise applies to the full split; a selection carries its "
                          "own noise (prune --label-noise)")
    if selection is not None and condensed is not None:
        raise BudgetError("pass either --selection or --condensed, not both")
    if keep is not None and condensed is not None:  # was ignored: the whole set trained
        raise BudgetError("--keep does not apply to --condensed: a condensed set trains whole; "
                          "drop --keep, or condense again with another --per-class")
    model_cfg = ModelConfig(variant=variant, width=width)  # checks the shape before any data
    from tinysift.data import load_dataset, resolved_name
    from tinysift.models.cost import count_macs
    from tinysift.models.training import evaluate, train_model
    from tinysift.runs import Run, atomic_write_bytes, atomic_write_npz, file_hash
    from tinysift.scoring import ScoringContext
    from tinysift.selection import make_method, resolve_keep
    from tinysift.selection.io import CONDENSED_FILE, read_condensed, read_selection, set_file

    ds = load_dataset(dataset)
    check_input(model_cfg, ds.x_train.shape[1:], ds.num_classes)  # before the manifest
    noise_seed = seed
    if label_noise:
        from tinysift.data import add_label_noise

        ds, _ = add_label_noise(ds, label_noise, seed)
    run = Run(out)
    x, y, source = ds.x_train, ds.y_train, "full"
    inputs = {"dataset": ds.content_hash}
    used_file = None  # the selection.npz or condensed.npz trained on
    if selection is not None:
        sel = read_selection(selection, len(ds.y_train))
        if float(sel.get("label_noise", 0.0)) > 0:
            # The selection was scored on noisy labels: train on the same noisy labels.
            from tinysift.data import add_label_noise

            ds, _ = add_label_noise(ds, float(sel["label_noise"]), int(sel["noise_seed"]))
            x, y = ds.x_train, ds.y_train
        read_selection(selection, len(ds.y_train), ds.content_hash)
        idx = sel["indices"]
        if keep is not None and resolve_keep(keep, len(ds.y_train)) != len(idx):
            raise BudgetError(
                f"--keep {keep} asks for {resolve_keep(keep, len(ds.y_train))} samples but the "
                f"selection keeps {len(idx)}; drop --keep or prune again with that budget"
            )
        x, y, source = x[idx], y[idx], f"selection:{sel['method']}"
        used_file = set_file(selection)
        inputs["selection"] = file_hash(used_file)
    elif condensed is not None:
        cond = read_condensed(condensed, ds.content_hash, ds.num_classes)
        x, y, source = cond["x"], cond["y"], f"condensed:{cond['method']}"
        # the set's bytes key the stage: a set condensed again into the same folder retrains
        used_file = set_file(condensed, CONDENSED_FILE)
        inputs["condensed"] = file_hash(used_file)
        idx = np.full(len(y), -1, np.int64)
        if x.shape[1:] != ds.x_train.shape[1:]:
            raise BudgetError(f"condensed images are {x.shape[1:]}, dataset images "
                              f"{ds.x_train.shape[1:]}: condensed from a different dataset")
    elif keep is not None:
        count = resolve_keep(keep, len(ds.y_train))
        if count < ds.num_classes:  # the shared refusal names --no-balance, which train lacks
            raise BudgetError(
                f"--keep {keep} is fewer than the {ds.num_classes} classes: train's random "
                f"subset is class-balanced and needs --keep {ds.num_classes} or more; for a "
                "global budget, `tinysift prune --method random --no-balance` and train on "
                "its --selection")
        ctx = ScoringContext(ds.x_train, ds.y_train, ds.num_classes, seed=seed, progress=False)
        idx = make_method("random", seed=seed).fit_select(ctx, count)
        x, y, source = x[idx], y[idx], "random"
    else:
        idx = np.arange(len(y), dtype=np.int64)
    if batch > max(len(y), TrainConfig.batch_size):
        # the data repeats to fill a batch: --batch 100000 of digits trained ~70 copies per
        # step (44 s for one step), and --batch 10**12 was killed for memory without a word
        raise BudgetError(
            f"--batch {batch} is larger than the {len(y)} training samples: every step would "
            f"see each sample about {batch // len(y):,} times; use --batch "
            f"{max(len(y), TrainConfig.batch_size)} or less (default {TrainConfig.batch_size})")
    train_cfg = TrainConfig(epochs=epochs, seed=seed, batch_size=int(batch))
    if guided is not None:  # before the run is recorded: a refusal leaves the folder as it was
        from tinysift.guided.loop import check_budget

        check_budget(len(y), float(budget), train_cfg, keep_steps)
    params = {"dataset": dataset, "source": source, "samples": int(len(y)),
              "model": model_cfg.to_dict(), "train": train_cfg.to_dict()}
    if guided is not None:
        from tinysift.guided import sampler_params

        # Every parameter, defaults included: a changed default trains again instead of
        # reusing a model made with the old one (the benches' progress logs do the same).
        params["guided"] = {"method": guided, "budget": budget,
                            "params": sampler_params(guided, **(guided_params or {}))}
        if keep_steps:  # only when set: earlier runs' cache keys stay valid
            params["guided"]["keep_steps"] = True
    if label_noise:
        params["label_noise"] = label_noise
    warnings = (ds.warnings() + _step_warnings(train_cfg, len(y), source, guided,
                                               epochs_setting)
                + _missing_class_warnings(y, ds.class_names))
    key_ok = run.is_fresh("train", _key(params, inputs))
    if key_ok and (run / MODEL_FILE).exists() and (run / TRAINSET_FILE).exists():
        info = run.stage_info("train")["results"]
        return TrainOutcome(run.path, info["test_acc"], info["train_samples"], info["seconds"],
                            info["steps"], info["params"], info["macs_per_sample"], skipped=True,
                            warnings=info.get("warnings", warnings))
    noise = float(sel.get("label_noise", 0.0)) if selection is not None else label_noise
    if selection is not None and noise:
        noise_seed = int(sel["noise_seed"])
    # A folder holds one dataset (as prune and condense keep it): training another one (or
    # another noise draw) here would relabel the folder under its selection or condensed
    # set. The same source changed in place trains again (see refuse_other_dataset).
    run.refuse_other_dataset(resolved_name(dataset), ds.content_hash, noise,
                             noise_seed=noise_seed if noise else None,
                             same_source_may_change=True)
    run.record_command()
    run.manifest["seed"] = seed
    run.manifest["dataset"] = {"name": resolved_name(dataset), "hash": ds.content_hash,
                               "train": len(ds.y_train), "test": len(ds.y_test),
                               "label_noise": noise, "noise_seed": noise_seed if noise else 0}
    with run.stage("train", params, inputs, seed=seed) as rec:
        if guided is not None:
            result, overhead = _train_guided(run, x, y, ds.num_classes, guided, budget,
                                             guided_params, model_cfg, train_cfg, progress,
                                             rec, keep_steps)
            warnings += overhead
        else:
            result = train_model(x, y, ds.num_classes, model_cfg, train_cfg,
                                 progress=progress)
        acc = evaluate(result.model, ds.x_test, ds.y_test)
        cost = count_macs(result.model)
        tmp = run.path / ".model.tmp.keras"
        result.model.save(tmp)
        atomic_write_bytes(run / MODEL_FILE, tmp.read_bytes())
        tmp.unlink()
        rec["outputs"].append(MODEL_FILE)
        # What the model was trained on, for quantization and export: dataset indices, or
        # the synthetic images themselves (index -1) for a condensed set.
        synthetic = idx < 0
        atomic_write_npz(run / TRAINSET_FILE, indices=idx, y=y.astype(np.int64),
                         x=x if synthetic.any() else np.zeros((0,) + x.shape[1:], np.uint8))
        rec["outputs"].append(TRAINSET_FILE)
        rec["results"].update({
            "test_acc": acc, "train_samples": int(len(y)), "seconds": round(result.seconds, 2),
            "steps": result.steps, "final_loss": result.final_loss, "params": cost.params,
            "macs_per_sample": cost.macs_per_sample,
            "train_macs_per_epoch": cost.epoch_train_macs(len(y)),
            "class_counts": np.bincount(y, minlength=ds.num_classes).tolist(),
            # what quantize and export check the folder still records
            "dataset": run.manifest["dataset"], "warnings": warnings,
        })
        inside = (used_file is not None
                  and used_file.resolve().is_relative_to(run.path.resolve()))
        if inside:  # the folder's own set file, which a later prune or condense rewrites
            # (a set elsewhere, e.g. a shared prune folder, may be rewritten freely: the model
            # keeps its own trainset.npz)
            rec["results"]["set_file"] = {"path": str(used_file.resolve().relative_to(
                run.path.resolve())), "hash": inputs.get("selection", inputs.get("condensed"))}
    return TrainOutcome(run.path, acc, int(len(y)), result.seconds, result.steps, cost.params,
                        cost.macs_per_sample, warnings=warnings)


#: a full set trained for fewer optimizer steps than this is warned about: the default 10
#: epochs of 240 images of one's own are 20 steps, and the model stayed at chance (digits'
#: 1,437 samples get 120 and reach about 0.95)
FEW_STEPS = 100


def _step_warnings(cfg: TrainConfig, samples: int, source: str, guided: str | None,
                   setting: str = "--epochs") -> list[str]:
    """A kept or condensed set trained for fewer steps than the subset step rule gives it
    (10 epochs of 143 samples are 20 steps: the model stays near chance); a full set for
    fewer than :data:`FEW_STEPS` (a small dataset of one's own at the default 10 epochs).
    ``setting``: what sets the epochs where the training was asked for (a pipeline's
    ``base_epochs``: `run --epochs 0` was refused, its --epochs being the device's)."""
    if cfg.epochs is None or guided is not None:
        return []
    steps = cfg.total_steps(samples)
    rule = TrainConfig(epochs=None, batch_size=cfg.batch_size).total_steps(samples)
    flag = setting.startswith("--")
    zero = f"pass {setting} 0" if flag else f"set {setting} = 0 in the pipeline file"
    if source == "full":
        if steps >= FEW_STEPS:
            return []
        return [f"{samples} samples for {cfg.epochs} epochs are only {steps} optimizer steps "
                f"of batch {cfg.batch_size}: too few for the model to learn much (it may stay "
                f"near chance); {zero} for the step rule's {rule} (max({cfg.min_steps} "
                f"steps, {cfg.subset_epochs} epochs)), or more {setting}"]
    if steps >= rule:
        return []
    return [f"{samples} samples for {cfg.epochs} epochs are {steps} optimizer steps of batch "
            f"{cfg.batch_size}; a set this small needs the subset step rule's {rule} "
            f"(max({cfg.min_steps} steps, {cfg.subset_epochs} epochs)): {zero} "
            f"(or leave {setting if flag else 'it'} out)"]


def _missing_class_warnings(y: np.ndarray, class_names: tuple[str, ...]) -> list[str]:
    """A kept or condensed set without some class (a global budget: prune --no-balance):
    the model never sees it, yet the test accuracy was reported without a word."""
    from tinysift.data.dataset import named_classes

    counts = np.bincount(y, minlength=len(class_names))
    missing = [class_names[c] for c in np.flatnonzero(counts == 0)]
    if not missing:
        return []
    return [f"the training set has no sample of class(es) {named_classes(missing)}: the "
            "model cannot predict them and the test accuracy counts them as errors; keep at "
            "least one sample per class (a class-balanced prune: drop --no-balance)"]


GUIDED_FILE = "guided.json"


def _check_guided(guided, budget, epochs, keep, selection, condensed, params=None) -> None:
    from tinysift.errors import BudgetError, did_you_mean
    from tinysift.guided import known_samplers, make_sampler

    if guided not in known_samplers():
        raise BudgetError(f"unknown guided method {guided!r}"
                          f"{did_you_mean(guided, known_samplers())}; known: "
                          f"{', '.join(known_samplers())}")
    if budget is None:
        raise BudgetError("--guided needs --budget F: the fraction in (0, 1] of the full-data "
                          "recipe's sample-passes to spend")
    if not 0.0 < float(budget) <= 1.0:
        raise BudgetError(f"--budget must be a fraction in (0, 1], got {budget}")
    # before the epochs: the CLI sets --epochs 0 (the subset rule) when a set is given, and
    # the user who passed --keep was told to pass --epochs
    if keep is not None or selection is not None or condensed is not None:
        raise BudgetError("--guided chooses its own data each epoch; drop --keep, --selection "
                          "and --condensed")
    if not epochs:
        raise BudgetError("--guided needs --epochs N >= 1: the full-data recipe the budget is "
                          "a fraction of")
    make_sampler(guided, **(params or {}))  # unknown or bad parameters fail before any data


def _train_guided(run, x, y, num_classes, method, budget, method_params, model_cfg,
                  train_cfg, progress, rec, keep_steps=False):
    """Guided training; the ledger and per-epoch plans go to ``OUT/guided.json``."""
    from tinysift.guided import make_sampler
    from tinysift.guided.loop import train_guided
    from tinysift.models.training import TrainResult
    from tinysift.runs import atomic_write_json

    sampler = make_sampler(method, seed=train_cfg.seed, **(method_params or {}))
    res = train_guided(x, y, num_classes, sampler, float(budget), model_cfg, train_cfg,
                       progress=progress, keep_steps=keep_steps)
    atomic_write_json(run / GUIDED_FILE, {"method": method, "budget": budget,
                                          "batch_size": res.batch_size,
                                          "params": sampler.params(),
                                          "ledger": res.ledger.to_dict(),
                                          "epochs": res.epochs})
    rec["outputs"].append(GUIDED_FILE)
    rec["results"]["guided"] = {"method": method, "budget": budget,
                                "spent_fraction": round(res.ledger.spent / (
                                    res.ledger.budget_passes / budget), 4)}
    return (TrainResult(model=res.model, steps=res.steps, seconds=res.seconds,
                        final_loss=res.final_loss),
            _overhead_warnings(res.ledger, method, res.steps, len(y)))


def _overhead_warnings(ledger, method: str, steps: int, samples: int) -> list[str]:
    """A guided run whose method's own work (fits, extra forward passes: charged to the
    budget) left training less than half of it: on a small dataset the fits' seconds are
    many sample-passes, and the model may stay near chance (digits, flow at 0.5: 12 steps)."""
    trained = ledger.train_passes / ledger.budget_passes if ledger.budget_passes else 1.0
    if trained >= 0.5:
        return []
    overhead = ledger.spent - ledger.train_passes
    return [f"{method}'s fits and extra forward passes took {overhead:,.0f} of the budget's "
            f"{ledger.budget_passes:,.0f} sample-passes, so the model trained only "
            f"{ledger.train_passes:,} ({100 * trained:.0f}%, {steps} steps); on {samples:,} "
            "samples a method's fixed costs dominate: use rs2 or full-cut here, or a larger "
            "--budget (guided.json has the ledger)"]


def _key(params: dict, inputs: dict) -> str:
    from tinysift.runs import stage_key

    return stage_key(params, inputs)


def load_run_dataset(run):
    """The dataset a run was trained on (with its label noise re-applied), hash-checked."""
    from tinysift.data import add_label_noise, load_dataset
    from tinysift.errors import TinysiftError

    info = run.manifest.get("dataset")
    if not info:
        raise TinysiftError(f"{run.path} has no dataset recorded; run `tinysift train --out "
                            f"{run.path}` first")
    ds = load_dataset(info["name"])
    if info.get("label_noise"):
        ds, _ = add_label_noise(ds, float(info["label_noise"]), int(info["noise_seed"]))
    if ds.content_hash != info["hash"]:
        raise TinysiftError(f"dataset {info['name']!r} changed since training (hash "
                            f"{ds.content_hash} != {info['hash']}); train again")
    return ds


def load_trainset(run_dir: str | Path, dataset) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) a run's model was trained on."""
    from tinysift.errors import TinysiftError

    path = Path(run_dir) / TRAINSET_FILE
    if not path.exists():
        raise TinysiftError(f"{path} not found; run `tinysift train --out {run_dir}` first")
    with np.load(path) as npz:
        idx, y, x = npz["indices"], npz["y"], npz["x"]
    if len(idx) and idx[0] < 0:
        return x, y
    return dataset.x_train[idx], dataset.y_train[idx]


def load_trained_model(run_dir: str | Path):
    from tinysift.errors import TinysiftError
    from tinysift.tfcompat import keras

    path = Path(run_dir) / MODEL_FILE
    if not path.exists():
        raise TinysiftError(f"{path} not found; run `tinysift train --out {run_dir}` first")
    return keras.models.load_model(path)
