"""A stage's inputs are the outputs of an earlier stage in the same run folder: before it
runs, a stage checks that stage finished (``done``) and that what it wrote is still there and
unchanged (content hashes in ``manifest.json``), else it refuses with the command to run.

    train -> quantize -> export -> device

Without these checks a killed ``train`` left the previous ``model.keras`` to be quantized
as if it were new, and a ``prune`` of another dataset into the folder made ``export`` serve
a stale export.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from tinysift.errors import StageError
from tinysift.runs import Run, file_hash, same_dataset


def rerun_hint(run: Run, verb: str, fallback: str,
               paths: dict[str, str] | None = None) -> str:
    """The last ``tinysift <verb> ...`` recorded in the run's manifest, else ``fallback``.

    Its run folder (``--out``/``--run``) is the folder as it is now: the recorded one may be
    relative to another working directory, or the folder may have moved since, and the hint
    then sent the rerun elsewhere. ``paths`` gives other options the value to use instead (a
    set file in the run folder as it is now, a user dataset by its recorded absolute path),
    for the same reason."""
    now = {"--out": str(run.path), "--run": str(run.path), **(paths or {})}
    for entry in reversed(run.manifest.get("commands", [])):
        argv = list(entry.get("argv", []))
        if len(argv) > 1 and argv[1] == verb and (
                argv[0].endswith("tinysift") or argv[0].endswith("app.py")):
            named = False
            for i, arg in enumerate(argv):
                flag = arg.split("=", 1)[0]
                if flag in now:
                    named = named or flag in ("--out", "--run")
                    if "=" in arg:
                        argv[i] = f"{flag}={now[flag]}"
                    elif i + 1 < len(argv):
                        argv[i + 1] = now[flag]
            if not named:  # `train` without --out wrote to its default folder
                argv += ["--out" if verb == "train" else "--run", str(run.path)]
            return "tinysift " + " ".join(shlex.quote(str(a)) for a in argv[1:])
    return fallback


def require_done(run: Run, stage: str, fix: str) -> dict:
    """The manifest entry of ``stage`` when it finished and its outputs are intact."""
    info = run.stage_info(stage)
    if info is None:
        raise StageError(f"{run.path} has no {stage} stage yet; run `{fix}` first")
    status = info.get("status")
    if status != "done":
        raise StageError(
            f"the last `{stage}` in {run.path} did not finish ({status}), so its outputs "
            f"are missing or left from an earlier {stage}; run `{fix}` again")
    for rel, digest in info.get("outputs", {}).items():
        path = run.path / rel
        if not path.exists():
            raise StageError(f"{path} ({stage}'s output) is missing; run `{fix}` again")
        if file_hash(path) != digest:
            raise StageError(f"{path} changed since `{stage}` wrote it (another process, or "
                             f"an edit); run `{fix}` again")
    return info


def _train_hint(run: Run) -> str:
    info = run.stage_info("train") or {}
    params = info.get("params", {})
    used = info.get("results", {}).get("set_file")
    # the set file as it is now and a user dataset by its recorded absolute path (``paths``):
    # the recorded command's may be relative to another working directory, or in a folder
    # moved since, and the hint sent the rerun to a file that is not there
    dataset = (info.get("results", {}).get("dataset") or {}).get("name")
    paths: dict[str, str] = {}
    # (without the set, the fallback would train on the full data)
    kind = str(params.get("source", "")).split(":")[0]
    if used and kind in ("selection", "condensed"):
        paths[f"--{kind}"] = str(run.path / used["path"])
    if not info:  # a prune or condense folder not trained yet: train on its set
        from tinysift.selection.io import CONDENSED_FILE, SELECTION_FILE

        made = [(str(entry.get("finished", "")), entry.get("params", {}), flag, name)
                for stage, flag, name in (("prune", "selection", SELECTION_FILE),
                                          ("condense", "condensed", CONDENSED_FILE))
                if (entry := run.stage_info(stage) or {}).get("status") == "done"]
        if made:  # the latest of the two
            _, params, flag, name = max(made, key=lambda m: m[0])
            paths[f"--{flag}"] = str(run.path / name)
        dataset = (run.manifest.get("dataset") or {}).get("name")
    if str(dataset).startswith(("npz:", "folder:")):  # recorded with its absolute path
        paths["--dataset"] = str(dataset)
    given = [part for flag, path in paths.items() if flag != "--dataset" for part in (flag, path)]
    name = paths.get("--dataset", params.get("dataset", "D"))
    # quoted as the recorded command's hint is: a path with a space broke it when pasted
    fallback = shlex.join(["tinysift", "train", "--dataset", str(name), *given,
                           "--out", str(run.path)])
    return rerun_hint(run, "train", fallback, paths)


def refuse_untrained(run: Run, then: str) -> None:
    """A folder with no train stage (a prune's) is refused with the train to run first (on
    its selection or condensed set), ``then`` the stages after it: a later stage named only
    the stage before it, which refused it in turn."""
    if run.stage_info("train") is None:
        raise StageError(f"{run.path} has no train stage yet; run `{_train_hint(run)}` first, "
                         f"then {then}")


def check_trained(run: Run) -> dict:
    """quantize's input: a finished train, on the dataset the folder now records, and on the
    selection or condensed set as it still is."""
    info = require_done(run, "train", _train_hint(run))
    trained_on = info.get("results", {}).get("dataset")
    now = run.manifest.get("dataset")
    if trained_on and now and not same_dataset(trained_on, now):
        raise StageError(
            f"{run.path}'s model was trained on {trained_on.get('name')} (hash "
            f"{trained_on.get('hash')}), but the folder now records {now.get('name')} (hash "
            f"{now.get('hash')}: a later prune or condense wrote into it); train again "
            f"(`{_train_hint(run)}`) or use another run folder")
    used = info.get("results", {}).get("set_file")  # recorded when inside the run folder
    if used and not Path(used["path"]).is_absolute():
        path = run.path / used["path"]
        if path.is_file() and file_hash(path) != used["hash"]:
            raise StageError(
                f"{run.path}'s model was trained on an earlier {path} (a later prune or "
                f"condense rewrote it); train again (`{_train_hint(run)}`) or use another run "
                "folder")
    return info


def check_quantized(run: Run) -> dict:
    """export's input: a finished quantize of the current model."""
    train = check_trained(run)
    fix = rerun_hint(run, "quantize", f"tinysift quantize --run {run.path}")
    info = require_done(run, "quantize", fix)
    if info.get("inputs", {}).get("model") != train.get("outputs", {}).get("model.keras"):
        raise StageError(f"{run.path}/model.tflite was quantized from an earlier model.keras; "
                         f"run `{fix}` again")
    return info


def check_exported(run: Run) -> dict:
    """The device's input: a finished export of the current quantized model. A folder with
    no stage of the three (a prune's) is told the train to run first, then quantize and
    export (it was told to export, which then refused it: nothing trained)."""
    fix = rerun_hint(run, "export", f"tinysift export --run {run.path}")
    if not any(run.stage_info(stage) for stage in ("quantize", "export")):
        refuse_untrained(run, f"`tinysift quantize --run {run.path}` and `{fix}`")
    info = require_done(run, "export", fix)
    if run.stage_info("quantize") is not None:
        quantized = check_quantized(run)
        if info.get("inputs", {}).get("tflite") != quantized.get("outputs", {}).get(
                "model.tflite"):
            raise StageError(f"{run.path}/export/ was written from an earlier model.tflite; "
                             f"run `{fix}` again")
    return info
