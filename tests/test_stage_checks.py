"""Stages refuse stale or unfinished inputs (tinysift.stages.checks): a killed train, an
output changed since its stage wrote it, a prune of another dataset into the folder, an
export older than the model. Each refusal names the command to run."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tinysift.errors import StageError


@pytest.fixture()
def run(digits_run, tmp_path):
    """A private copy of the shared digits run (trained, quantized, exported)."""
    dest = tmp_path / "run"
    shutil.copytree(digits_run, dest, ignore=shutil.ignore_patterns("device", ".tinysift.lock"))
    return dest


def _edit_manifest(run, fn):
    path = run / "manifest.json"
    manifest = json.loads(path.read_text())
    fn(manifest)
    path.write_text(json.dumps(manifest))


def test_killed_train_is_not_quantized_or_exported(run):
    from tinysift.stages.device import run_on_device
    from tinysift.stages.export import export
    from tinysift.stages.quantize import quantize

    _edit_manifest(run, lambda m: m["stages"]["train"].update(status="failed: KeyboardInterrupt"))
    for stage in (lambda: quantize(run), lambda: export(run),
                  lambda: run_on_device(run, "qemu-mps2-an386", port="socket://127.0.0.1:9")):
        with pytest.raises(StageError, match=r"train.*did not finish.*tinysift train"):
            stage()


def test_changed_model_is_refused(run):
    from tinysift.stages.quantize import quantize

    with open(run / "model.keras", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(StageError, match="model.keras changed since `train`"):
        quantize(run)


def test_prune_of_another_dataset_into_the_folder(run):
    """The folder's dataset changed after the train (a prune wrote into it): neither quantize
    nor export may use the model (export used to answer with its cached old export)."""
    from tinysift.stages.export import export
    from tinysift.stages.quantize import quantize

    _edit_manifest(run, lambda m: m.update(dataset={"name": "fashion-mnist", "hash": "x",
                                                    "train": 60000, "test": 10000,
                                                    "label_noise": 0.0}))
    for stage in (quantize, export):
        with pytest.raises(StageError, match="trained on digits.*now records fashion-mnist"):
            stage(run)


def test_export_older_than_the_model_is_refused(run):
    from tinysift.stages.device import run_on_device

    _edit_manifest(run, lambda m: m["stages"]["quantize"]["outputs"].update(
        {"model.tflite": "0" * 32}))
    with pytest.raises(StageError, match="model.tflite changed since `quantize`"):
        run_on_device(run, "qemu-mps2-an386", port="socket://127.0.0.1:9")
    _edit_manifest(run, lambda m: m["stages"]["export"]["inputs"].update(tflite="1" * 32))
    from tinysift.runs import file_hash

    _edit_manifest(run, lambda m: m["stages"]["quantize"]["outputs"].update(
        {"model.tflite": file_hash(run / "model.tflite")}))
    with pytest.raises(StageError, match="export/ was written from an earlier model.tflite"):
        run_on_device(run, "qemu-mps2-an386", port="socket://127.0.0.1:9")


def test_every_file_of_the_export_is_checked_before_the_device_uses_it(run) -> None:
    """The device stage runs the export as `export` wrote it: any of its files changed since
    (export.json, which the device reads its plan and sets from, as much as a C file) is
    refused with the command that writes it again."""
    from tinysift.runs import Run
    from tinysift.stages.checks import check_exported
    from tinysift.stages.export import EXPORT_FILES

    for name in EXPORT_FILES:
        path = run / "export" / name
        before = path.read_bytes()
        path.write_bytes(before + b"\n")
        with pytest.raises(StageError, match=rf"export/{name} changed since `export` wrote it"
                                             r".*tinysift export --run"):
            check_exported(Run(run))
        path.write_bytes(before)
    check_exported(Run(run))


def test_quantize_on_a_pruned_folder_says_to_train_on_its_selection(tmp_path):
    """`quantize --run` on a folder that was pruned, not trained, suggested `tinysift train
    --dataset D --out RUN`: the full data. It names the folder's selection."""
    from tinysift.stages.prune import prune
    from tinysift.stages.quantize import quantize

    prune("digits", "random", 0.2, tmp_path / "p", seed=0)
    with pytest.raises(StageError, match=r"has no train stage yet; run `tinysift train "
                                         r"--dataset digits --selection .*p/selection.npz "
                                         r"--out .*p` first"):
        quantize(tmp_path / "p", progress=False)


def test_small_subset_warns_about_steps(tmp_path):
    """10 epochs of a 143-sample kept set are 20 steps: the train says so and gives the fix;
    the subset step rule gives it 500."""
    from tinysift.models.training import TrainConfig
    from tinysift.stages.train import _step_warnings, train

    assert _step_warnings(TrainConfig(epochs=10), 1437, "full", None) == []
    assert _step_warnings(TrainConfig(epochs=None), 143, "random", None) == []
    res = train("digits", tmp_path / "r", keep=0.1, epochs=10, progress=False)
    assert res.steps == 20
    assert len(res.warnings) == 1 and "--epochs 0" in res.warnings[0], res.warnings
    assert "500" in res.warnings[0]
    # 250 epochs of 143 samples in batches of 128 are the rule's 500 steps exactly: no
    # warning; 249 epochs are 498 steps, two short
    assert _step_warnings(TrainConfig(epochs=250), 143, "random", None) == []
    (short,) = _step_warnings(TrainConfig(epochs=249), 143, "random", None)
    assert "498 optimizer steps" in short and "subset step rule's 500" in short


def test_a_small_full_set_warns_about_steps():
    """The default 10 epochs of 240 images of one's own are 20 steps of batch 128: the model
    stayed at chance (0.12) without a word, where --epochs 0 (500 steps) reached 0.93. A
    full set under FEW_STEPS steps is warned about, with the fix; digits' 120 steps and the
    step rule are not."""
    from tinysift.models.training import TrainConfig
    from tinysift.stages.train import FEW_STEPS, _step_warnings

    (w,) = _step_warnings(TrainConfig(epochs=10), 240, "full", None)
    assert "240 samples for 10 epochs are only 20 optimizer steps of batch 128" in w
    assert "--epochs 0 for the step rule's 500" in w
    assert _step_warnings(TrainConfig(epochs=10), 1437, "full", None) == []
    assert _step_warnings(TrainConfig(epochs=None), 240, "full", None) == []
    per_epoch = 2  # 240 samples in batches of 128
    assert _step_warnings(TrainConfig(epochs=FEW_STEPS // per_epoch), 240, "full", None) == []
    assert len(_step_warnings(TrainConfig(epochs=FEW_STEPS // per_epoch - 1), 240, "full",
                              None)) == 1
    # a pipeline's base model: its file's base_epochs (`run --epochs 0` is the device's, and
    # refused), for a full set and a kept one
    (w,) = _step_warnings(TrainConfig(epochs=10), 240, "full", None, "base_epochs")
    assert "set base_epochs = 0 in the pipeline file for the step rule's 500" in w
    assert w.endswith("or more base_epochs") and "--epochs" not in w
    (w,) = _step_warnings(TrainConfig(epochs=5), 143, "random", None, "base_epochs")
    assert w.endswith(": set base_epochs = 0 in the pipeline file (or leave it out)"), w


def test_a_batch_larger_than_the_training_set_is_refused(tmp_path):
    """The data repeats to fill a batch: --batch 100000 of digits trained about 70 copies of
    it per step, and --batch 10**12 was killed for memory without a word."""
    from tinysift.errors import BudgetError
    from tinysift.stages.train import train

    for batch in (1438, 10**12):
        with pytest.raises(BudgetError, match=rf"--batch {batch} is larger than the 1437 "
                                              r"training samples: .*use --batch 1437 or less"):
            train("digits", tmp_path / "r", epochs=1, batch=batch, progress=False)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("options, words", [
    ({"epochs": -1}, r"--epochs must be a whole number >= 0 \(0: the subset step rule\), "
                     r"got -1"),
    ({"epochs": 2.0}, r"--epochs must be a whole number >= 0 .*got 2\.0"),
    ({"batch": 0}, r"--batch must be a whole number of samples >= 1 \(the recipe's batch, "
                   r"128 by default\), got 0"),
    ({"budget": 0.5}, r"--budget needs --guided METHOD"),
    ({"guided_params": {"judge": "knn"}}, r"--guided-params needs --guided METHOD"),
    ({"keep_steps": True}, r"--keep-steps needs --guided METHOD --budget F"),
    ({"label_noise": 0.1, "selection": "sel.npz"},
     r"--label-noise applies to the full split; a selection carries its own noise"),
    ({"label_noise": 0.1, "condensed": "cond.npz"}, r"--label-noise applies to the full split"),
    ({"selection": "sel.npz", "condensed": "cond.npz"},
     r"pass either --selection or --condensed, not both"),
    ({"keep": 0.1, "condensed": "cond.npz"}, r"--keep does not apply to --condensed"),
    ({"guided": "rs2"}, r"--guided needs --budget F"),
    ({"guided": "rs2", "budget": 0.0}, r"--budget must be a fraction in \(0, 1\], got 0\.0"),
    ({"guided": "rs2", "budget": 1.01}, r"--budget must be a fraction in \(0, 1\], got 1\.01"),
    ({"guided": "rs2", "budget": 0.5, "selection": "sel.npz"},
     r"--guided chooses its own data each epoch; drop --keep, --selection and --condensed"),
    ({"guided": "rs2", "budget": 0.5, "condensed": "cond.npz"},
     r"--guided chooses its own data each epoch"),
    ({"guided": "rs2", "budget": 0.5, "epochs": 0}, r"--guided needs --epochs N >= 1"),
    ({"guided": "rs2", "budget": 0.5, "epochs": None}, r"--guided needs --epochs N >= 1"),
    ({"keep": 9}, r"--keep 9 is fewer than the 10 classes: .*needs --keep 10 or more"),
])
def test_train_refuses_options_that_do_not_go_together_before_writing(tmp_path, options,
                                                                      words):
    """Each option pair train cannot honour is refused with its own fix before any data is
    read or the folder written (the set files named here need not exist: the refusal comes
    first). Without the checks, --label-noise with a selection trained on the selection's
    labels, --keep with --condensed trained the whole set, and a budget without --guided was
    ignored."""
    from tinysift.errors import BudgetError
    from tinysift.stages.train import train

    options = {"epochs": 1, **options}
    for name in ("selection", "condensed"):
        if name in options:
            options[name] = tmp_path / options[name]
    with pytest.raises(BudgetError, match=words):
        train("digits", tmp_path / "r", progress=False, **options)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("keep, asked", [(30, 30), (50, 50), (0.5, 718)])
def test_a_keep_that_is_not_the_selection_s_count_is_refused(tmp_path, digits, keep, asked):
    """--keep beside --selection must be the selection's count (40 here): fewer as well as
    more is refused, naming both numbers (0.5 of digits' 1437 is 718), before any training."""
    from tinysift.errors import BudgetError
    from tinysift.selection.io import write_selection
    from tinysift.stages.train import train

    kept = np.arange(40)
    write_selection(tmp_path / "selection.npz", kept, np.zeros(len(digits.y_train)), "random",
                    len(digits.y_train), digits.content_hash)
    with pytest.raises(BudgetError, match=rf"--keep {keep} asks for {asked} samples but the "
                                          r"selection keeps 40; drop --keep"):
        train("digits", tmp_path / "r", keep=keep, selection=tmp_path / "selection.npz",
              epochs=1, progress=False)
    assert not (tmp_path / "r" / "manifest.json").exists()


def test_train_retrains_another_keep_or_a_lost_trainset_and_records_its_seed(tmp_path,
                                                                             digits):
    """The train stage's key holds the sample count: `--keep 30` after `--keep 10` (the
    class count, the least the class-balanced subset takes) in one folder (both a "random"
    source) trains again instead of reusing the 10-sample model; a model whose trainset.npz
    was lost is trained again (quantize and export need it); another seed trains another
    subset. The run records the seed given and the dataset it trained on, noise-free
    (noise_seed 0)."""
    from tinysift.stages.train import TRAINSET_FILE, train

    out = tmp_path / "r"
    first = train("digits", out, keep=10, seed=3, epochs=1, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    record = {"name": "digits", "hash": digits.content_hash, "train": 1437, "test": 360,
              "label_noise": 0.0, "noise_seed": 0}
    assert manifest["seed"] == 3 and manifest["stages"]["train"]["seed"] == 3
    assert manifest["dataset"] == record
    assert manifest["stages"]["train"]["results"]["dataset"] == record
    assert first.train_samples == 10 and not first.skipped
    more = train("digits", out, keep=30, seed=3, epochs=1, progress=False)
    assert more.train_samples == 30 and not more.skipped
    assert train("digits", out, keep=30, seed=3, epochs=1, progress=False).skipped
    (out / TRAINSET_FILE).unlink()
    assert not train("digits", out, keep=30, seed=3, epochs=1, progress=False).skipped
    with np.load(out / TRAINSET_FILE) as kept:
        seed3 = kept["indices"]
    assert len(seed3) == 30
    # the seed keys the stage and draws the subset: another seed trains another subset
    assert not train("digits", out, keep=30, seed=4, epochs=1, progress=False).skipped
    with np.load(out / TRAINSET_FILE) as kept:
        assert len(kept["indices"]) == 30 and not np.array_equal(kept["indices"], seed3)


def test_a_run_s_dataset_is_loaded_with_its_noise_and_refused_once_changed(tmp_path, digits):
    """quantize and export load the dataset a run trained on through its record: the label
    noise re-applied with the recorded seed (else its hash differs and the run is refused),
    and a dataset whose content no longer has the recorded hash refused, naming both."""
    from tinysift.data import add_label_noise
    from tinysift.errors import TinysiftError
    from tinysift.runs import Run
    from tinysift.stages.train import load_run_dataset

    run = Run(tmp_path / "r")
    with pytest.raises(TinysiftError, match="has no dataset recorded; run `tinysift train"):
        load_run_dataset(run)
    noisy, _ = add_label_noise(digits, 0.2, 5)
    assert noisy.content_hash != digits.content_hash
    run.manifest["dataset"] = {"name": "digits", "hash": noisy.content_hash,
                               "label_noise": 0.2, "noise_seed": 5}
    loaded = load_run_dataset(run)
    np.testing.assert_array_equal(loaded.y_train, noisy.y_train)
    run.manifest["dataset"] = {"name": "digits", "hash": "0" * 16, "label_noise": 0.0}
    with pytest.raises(TinysiftError, match=rf"dataset 'digits' changed since training \(hash "
                                            rf"{digits.content_hash} != 0{{16}}\); train again"):
        load_run_dataset(run)


def test_a_selection_scored_on_noisy_labels_trains_and_records_its_noise_draw(tmp_path,
                                                                               digits):
    """A selection made under label noise (prune --label-noise 0.2 with noise seed 7) trains
    on the same noisy labels, and the run records that draw (seed 7, not train's seed 0):
    quantize and export reload the dataset with it, and with another seed its hash differs."""
    from tinysift.data import add_label_noise
    from tinysift.runs import Run
    from tinysift.selection.io import write_selection
    from tinysift.stages.train import load_run_dataset, load_trainset, train

    noisy, _ = add_label_noise(digits, 0.2, 7)
    kept = np.arange(0, 400, 10)
    write_selection(tmp_path / "selection.npz", kept, np.zeros(len(digits.y_train)), "random",
                    len(digits.y_train), noisy.content_hash, label_noise=0.2, noise_seed=7)
    train("digits", tmp_path / "r", selection=tmp_path / "selection.npz", epochs=1, seed=0,
          progress=False)
    run = Run(tmp_path / "r")
    assert run.manifest["dataset"]["label_noise"] == 0.2
    assert run.manifest["dataset"]["noise_seed"] == 7
    assert run.manifest["dataset"]["hash"] == noisy.content_hash
    assert run.manifest["stages"]["train"]["params"]["source"] == "selection:random"
    ds = load_run_dataset(run)
    kept_x, kept_y = load_trainset(run.path, ds)
    np.testing.assert_array_equal(kept_y, noisy.y_train[kept])
    # dataset indices (the first is 0), so the images are the dataset's own
    np.testing.assert_array_equal(kept_x, digits.x_train[kept])
    # the labels trained on (trainset.npz's y) are the noisy ones, some of them flipped
    assert (noisy.y_train[kept] != digits.y_train[kept]).any()
    with np.load(run.path / "trainset.npz") as trained:
        np.testing.assert_array_equal(trained["y"], noisy.y_train[kept])
    # a folder trained on the clean labels is refused the noisy selection (other data: its
    # model and set would be relabelled), before anything is written
    train("digits", tmp_path / "clean", keep=10, epochs=1, progress=False)
    with pytest.raises(StageError, match=r"holds a run on digits \(hash .*label noise 0\); "
                                         r"writing digits \(hash .*label noise 0\.2\)"):
        train("digits", tmp_path / "clean", selection=tmp_path / "selection.npz", epochs=1,
              progress=False)


def test_train_names_a_class_the_kept_set_lacks(tmp_path):
    """A global budget (prune --no-balance) can keep no sample of a class: the model never
    saw it, and train reported its test accuracy without a word. The last class here: the
    warning and the recorded class counts (one per class, 0 for it) still name it."""
    from tinysift.data import load_dataset
    from tinysift.selection.io import write_selection
    from tinysift.stages.train import train

    ds = load_dataset("digits")
    kept = np.flatnonzero(ds.y_train != 9)[:40]
    write_selection(tmp_path / "selection.npz", kept, np.zeros(len(ds.y_train)), "random",
                    len(ds.y_train), ds.content_hash)
    res = train("digits", tmp_path / "r", selection=tmp_path / "selection.npz", epochs=1,
                progress=False)
    (warning,) = [w for w in res.warnings if "training set" in w]
    assert "no sample of class(es) '9': the model cannot predict them" in warning
    counts = json.loads((tmp_path / "r" / "manifest.json").read_text())["stages"]["train"][
        "results"]["class_counts"]
    assert len(counts) == 10 and counts[9] == 0 and sum(counts) == 40
    assert "drop --no-balance" in warning
    assert not [w for w in train("digits", tmp_path / "full", epochs=1,
                                 progress=False).warnings if "training set" in w]


def test_train_names_a_class_the_test_split_lacks(tmp_path, write_npz):
    """A class of one sample stays in training, so the reported test accuracy never saw
    it: train says which class, in its output and in the run's record."""
    import json

    from tinysift.stages.train import train

    y = np.array([0] + [1] * 10 + [2] * 10)
    x = (np.arange(len(y))[:, None, None] * np.ones((1, 8, 8)) * 10).astype(np.uint8)
    res = train(write_npz(x=x, y=y), tmp_path / "r", epochs=1, progress=False)
    (warning,) = [w for w in res.warnings if "test split" in w]
    assert "class(es) '0': test accuracy does not measure them" in warning
    record = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert warning in record["stages"]["train"]["results"]["warnings"]


def test_a_set_condensed_again_retrains(tmp_path, digits):
    """`train --condensed` keyed its stage on the dataset alone: a set condensed again into
    the same folder reused the model trained on the old set ("cached: inputs unchanged")."""
    from tinysift.selection.io import write_condensed
    from tinysift.stages.train import load_trainset, train

    def condense(seed: int) -> None:
        rng = np.random.default_rng(seed)
        idx = np.concatenate([rng.choice(np.flatnonzero(digits.y_train == c), 2, replace=False)
                              for c in range(digits.num_classes)])
        write_condensed(tmp_path / "c" / "condensed.npz", digits.x_train[idx],
                        digits.y_train[idx], "random", 2, digits.content_hash)

    condense(0)
    first = train("digits", tmp_path / "r", condensed=tmp_path / "c", epochs=1, progress=False)
    # the synthetic images are kept with the model (quantize and export read them back)
    with np.load(tmp_path / "c" / "condensed.npz") as cond:
        kept_x, kept_y = load_trainset(tmp_path / "r", digits)
        np.testing.assert_array_equal(kept_x, cond["x"])
        np.testing.assert_array_equal(kept_y, cond["y"])
    again = train("digits", tmp_path / "r", condensed=tmp_path / "c", epochs=1, progress=False)
    assert not first.skipped and again.skipped
    condense(1)
    assert not train("digits", tmp_path / "r", condensed=tmp_path / "c", epochs=1,
                     progress=False).skipped

    # a set of other data, or with labels the dataset lacks: refused, not trained on
    from tinysift.errors import DatasetError

    x, y = digits.x_train[:20], digits.y_train[:20]
    write_condensed(tmp_path / "o" / "condensed.npz", x, y, "random", 2, "other-hash")
    with pytest.raises(DatasetError, match="condensed from dataset hash other-hash"):
        train("digits", tmp_path / "r2", condensed=tmp_path / "o", epochs=1, progress=False)
    write_condensed(tmp_path / "l" / "condensed.npz", x, y + 10, "random", 2,
                    digits.content_hash)
    with pytest.raises(DatasetError, match="label 19, but the dataset has 10 classes"):
        train("digits", tmp_path / "r3", condensed=tmp_path / "l", epochs=1, progress=False)


def test_a_prune_or_condense_of_another_dataset_is_refused(tmp_path, digits, write_npz):
    """A prune of another dataset into a used folder replaced its selection.npz without a
    word, and the folder's model could no longer be rebuilt from it: refused now, the folder
    untouched. A folder with someone else's manifest.json is not taken over."""
    from tinysift.errors import TinysiftError
    from tinysift.runs import file_hash
    from tinysift.stages.condense import condense
    from tinysift.stages.prune import prune
    from tinysift.stages.train import train

    out = tmp_path / "r"
    prune("digits", "random", 0.1, out, progress=False)
    before = file_hash(out / "selection.npz"), (out / "manifest.json").read_text()
    other = write_npz(x=digits.x_train[:, ::-1], y=digits.y_train)
    for call in (lambda: prune(other, "random", 0.1, out, progress=False),
                 lambda: prune("digits", "random", 0.1, out, label_noise=0.2, progress=False),
                 lambda: condense(other, "random", 2, out, progress=False),
                 # train refused before it trained (it relabelled the folder under the
                 # digits selection: a later prune of digits there was then refused)
                 lambda: train(other, out, epochs=1, progress=False)):
        with pytest.raises(StageError, match="holds a run on digits.*another folder"):
            call()
    assert (file_hash(out / "selection.npz"), (out / "manifest.json").read_text()) == before
    prune("digits", "random", 0.2, out, progress=False)  # the same data: fine

    noisy = tmp_path / "n"  # label noise is drawn with the seed: the message says so
    prune("digits", "random", 0.1, noisy, label_noise=0.2, progress=False)
    with pytest.raises(StageError, match="drawn with seed 0; seed 1 draws other"):
        prune("digits", "random", 0.1, noisy, label_noise=0.2, seed=1, progress=False)

    foreign = tmp_path / "app"
    foreign.mkdir()
    (foreign / "manifest.json").write_text('{"name": "my app", "version": "1.0"}')
    with pytest.raises(TinysiftError, match="not a tinysift run folder"):
        prune("digits", "random", 0.1, foreign, progress=False)
    assert (foreign / "manifest.json").read_text() == '{"name": "my app", "version": "1.0"}'


def test_budgets_are_refused_before_anything_is_scored_or_written(tmp_path):
    """prune --keep 5 of 10 classes and condense --per-class 0 (or above the smallest class)
    were refused only after the embedding, the proxy CNN or a flow fit had run (20-25 s on
    Digits, minutes on Fashion-MNIST), with a failed stage left in the folder."""
    from tinysift.errors import BudgetError
    from tinysift.stages.condense import condense
    from tinysift.stages.prune import prune

    with pytest.raises(BudgetError, match="fewer than the 10 classes"):
        prune("digits", "vq", 5, tmp_path / "p", progress=False)
    for k, words in ((0, r"per-class K \(--per-class, samples made a class\) must be a "
                         r"whole number >= 1"), (10_000, "larger than class")):
        with pytest.raises(BudgetError, match=words):
            condense("digits", "flow", k, tmp_path / "c", progress=False)
    assert not (tmp_path / "p" / "manifest.json").exists()
    assert not (tmp_path / "c" / "manifest.json").exists()


def test_condense_records_and_keys_on_every_parameter(tmp_path, monkeypatch):
    """condense recorded only the parameters passed ({}), so a changed default reused an old
    condensed.npz and the manifest could not say how the set was made."""
    import json

    from tinysift.condensation.base import EmbeddingCondenser
    from tinysift.stages.condense import condense

    out = tmp_path / "c"
    assert not condense("digits", "herding", 2, out, progress=False).skipped
    stage = json.loads((out / "manifest.json").read_text())["stages"]["condense"]
    assert stage["params"]["resolved_params"] == {"dim": 32, "embedding": "random-conv"}
    assert condense("digits", "herding", 2, out, progress=False).skipped
    monkeypatch.setattr(EmbeddingCondenser.__init__, "__defaults__", (0, "random-conv", 16))
    assert not condense("digits", "herding", 2, out, progress=False).skipped

    # another --seed draws another set (it answered "cached" with the old one) and the
    # folder records it
    out = tmp_path / "r"
    condense("digits", "random", 2, out, progress=False)
    first = np.load(out / "condensed.npz")["x"]
    assert not condense("digits", "random", 2, out, seed=1, progress=False).skipped
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1
    assert not np.array_equal(np.load(out / "condensed.npz")["x"], first)


def test_a_later_prune_or_condense_into_the_folder_strands_the_model(tmp_path):
    """A prune at another budget into the folder rewrote selection.npz after the train, and
    quantize (then export, the device) went on with the model of the old selection: refused
    now, naming the file. A condense again at another K likewise (it was refused with "the
    folder now records digits (hash H)", the hash it was trained on)."""
    from tinysift.runs import Run
    from tinysift.stages.checks import check_trained
    from tinysift.stages.condense import condense
    from tinysift.stages.prune import prune
    from tinysift.stages.quantize import quantize
    from tinysift.stages.train import train

    out = tmp_path / "p"
    prune("digits", "random", 0.1, out, progress=False)
    train("digits", out, selection=out, epochs=1, progress=False)
    prune("digits", "random", 0.1, out, progress=False)  # cached: the same selection
    check_trained(Run(out))  # the model's own selection, unchanged: it goes on
    prune("digits", "random", 0.2, out, progress=False)
    # the hint trains on the set again (without --selection it trained on the full data)
    with pytest.raises(StageError, match=r"trained on an earlier .*p/selection.npz.*train again "
                                         r"\(`tinysift train --dataset digits --selection "):
        quantize(out, progress=False)

    # a set outside the run folder (a shared prune folder) may be rewritten: the model keeps
    # its own trainset.npz, so quantize goes on
    shared, own = tmp_path / "shared", tmp_path / "q"
    prune("digits", "random", 0.1, shared, progress=False)
    train("digits", own, selection=shared, epochs=1, progress=False)
    prune("digits", "random", 0.2, shared, progress=False)
    quantize(own, progress=False)
    # a kept set smaller than --representative (500) calibrates on every kept sample
    with np.load(own / "trainset.npz") as kept:
        assert Run(own).stage_info("quantize")["results"]["representative_samples"] == len(
            kept["indices"])

    out = tmp_path / "c"
    condense("digits", "random", 2, out, progress=False)
    train("digits", out, condensed=out / "condensed.npz", epochs=1, progress=False)
    condense("digits", "random", 3, out, progress=False)
    with pytest.raises(StageError, match=r"trained on an earlier .*c/condensed.npz"):
        quantize(out, progress=False)


def test_a_condense_that_writes_the_same_set_keeps_the_model(tmp_path, digits, write_npz):
    """condense records the dataset without label-noise fields, train with them: a condense
    that ran again (its dataset named another way) and wrote the same set made quantize
    refuse the model as trained on other data ("trained on npz:X (hash H), but the folder now
    records npz:X (hash H)")."""
    from tinysift.runs import Run
    from tinysift.stages.checks import check_trained
    from tinysift.stages.condense import condense
    from tinysift.stages.train import train

    name = write_npz(x=digits.x_train, y=digits.y_train, x_test=digits.x_test,
                     y_test=digits.y_test)
    alias = name.replace("/data.npz", "/./data.npz")
    out = tmp_path / "c"
    condense(name, "random", 2, out, progress=False)
    train(name, out, condensed=out, epochs=1, progress=False)
    assert not condense(alias, "random", 2, out, progress=False).skipped
    check_trained(Run(out))


def test_rerun_hint_names_the_folder_as_it_is_now(tmp_path):
    """The hint repeated the recorded command verbatim: after the run folder moved (or with a
    relative --out from another working directory) it sent the rerun to the old folder."""
    from tinysift.runs import Run
    from tinysift.stages.checks import rerun_hint

    moved = tmp_path / "moved run"
    moved.mkdir()
    (moved / "manifest.json").write_text(json.dumps({
        "tinysift_run": True, "stages": {}, "commands": [
            {"argv": ["/x/.venv/bin/tinysift", "train", "--dataset", "digits", "--out",
                      "runs/old", "--epochs", "3"]},
            {"argv": ["/x/.venv/bin/tinysift", "quantize", "--run=runs/old", "--qat"]}]}))
    run = Run(moved)
    assert rerun_hint(run, "train", "fallback") == (
        f"tinysift train --dataset digits --out '{moved}' --epochs 3")
    assert rerun_hint(run, "quantize", "fallback") == f"tinysift quantize '--run={moved}' --qat"
    assert rerun_hint(run, "export", "fallback") == "fallback"
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["commands"].append({"argv": ["tinysift", "train", "--dataset", "digits"]})
    (moved / "manifest.json").write_text(json.dumps(manifest))
    assert rerun_hint(Run(moved), "train", "fallback") == (
        f"tinysift train --dataset digits --out '{moved}'")  # the default folder, named
    # a command run as `python -m tinysift.cli.app` (argv[0] its app.py) is one too
    manifest["commands"].append({"argv": ["/x/host/tinysift/cli/app.py", "export", "--run",
                                          "runs/old", "--board", "pico"]})
    (moved / "manifest.json").write_text(json.dumps(manifest))
    assert rerun_hint(Run(moved), "export", "fallback") == (
        f"tinysift export --run '{moved}' --board pico")


def test_train_hint_names_the_set_and_user_data_as_they_are_now(tmp_path):
    """The train hint (a missing or stale model) repeated the recorded --selection and
    --dataset npz:PATH verbatim: typed relative to another working directory, or the set in
    a folder moved since, the hint named files that are not there. The set in the run folder
    and the dataset's recorded absolute path are named now; a set outside the folder (not
    recorded as the folder's) stays as typed."""
    from tinysift.runs import Run
    from tinysift.stages.checks import _train_hint

    moved = tmp_path / "moved run"
    moved.mkdir()
    data = f"npz:{tmp_path / 'work' / 'data.npz'}"

    def manifest(set_file: dict | None) -> Run:
        (moved / "manifest.json").write_text(json.dumps({
            "tinysift_run": True, "dataset": {"name": data, "hash": "h"},
            "stages": {"train": {"status": "done", "params": {
                "dataset": "npz:data.npz", "source": "selection:vq"},
                "results": {"dataset": {"name": data, "hash": "h"}, "set_file": set_file}}},
            "commands": [{"argv": ["/x/.venv/bin/tinysift", "train", "--dataset",
                                   "npz:data.npz", "--selection", "runs/p/selection.npz",
                                   "--epochs", "0", "--out", "runs/p"]}]}))
        return Run(moved)

    run = manifest({"path": "selection.npz", "hash": "s"})
    assert _train_hint(run) == (
        f"tinysift train --dataset {data} --selection '{moved / 'selection.npz'}' "
        f"--epochs 0 --out '{moved}'")
    assert _train_hint(manifest(None)) == (
        f"tinysift train --dataset {data} --selection runs/p/selection.npz --epochs 0 "
        f"--out '{moved}'")
    # a folder pruned but never trained (no recorded train command): the fallback is quoted
    # like the recorded one (a path with a space broke it when pasted)
    (moved / "manifest.json").write_text(json.dumps({
        "tinysift_run": True, "dataset": {"name": data, "hash": "h"},
        "stages": {"prune": {"status": "done", "finished": "t", "params": {}}},
        "commands": []}))
    assert _train_hint(Run(moved)) == (
        f"tinysift train --dataset {data} --selection '{moved / 'selection.npz'}' "
        f"--out '{moved}'")


def test_a_missing_model_or_one_quantized_from_an_earlier_model_is_refused(run):
    """A model.keras deleted after train was an unexpected FileNotFoundError from hashing it;
    a model.tflite whose quantize recorded another model.keras (the model trained again
    since) must not be exported."""
    from tinysift.stages.export import export
    from tinysift.stages.quantize import quantize

    _edit_manifest(run, lambda m: m["stages"]["quantize"]["inputs"].update(model="0" * 32))
    with pytest.raises(StageError, match=r"model.tflite was quantized from an earlier "
                                         r"model.keras; run `tinysift quantize --run "):
        export(run)
    (run / "model.keras").unlink()
    with pytest.raises(StageError, match=r"model.keras \(train's output\) is missing; run "
                                         r"`tinysift train"):
        quantize(run, progress=False)


def test_a_set_file_removed_from_the_run_folder_keeps_the_model(run):
    """The set a model was trained on may go from the run folder (the model keeps its own
    trainset.npz): quantize goes on (it crashed hashing the missing file); the set rewritten
    there is refused."""
    from tinysift.stages.quantize import quantize

    _edit_manifest(run, lambda m: m["stages"]["train"]["results"].update(
        set_file={"path": "selection.npz", "hash": "0" * 32}))
    assert quantize(run, progress=False).skipped
    (run / "selection.npz").write_bytes(b"another set")
    with pytest.raises(StageError, match=r"trained on an earlier .*selection.npz"):
        quantize(run, progress=False)


def test_train_hint_names_a_condensed_set_folder_data_and_the_latest_set(tmp_path):
    """The train hint of a model trained on a condensed set names --condensed (the set in the
    folder as it is now), a folder: dataset by its recorded absolute path, and a folder both
    pruned and condensed (not trained) is hinted to train on the set made last."""
    from tinysift.runs import Run
    from tinysift.stages.checks import _train_hint

    moved = tmp_path / "moved"
    moved.mkdir()
    data = f"folder:{tmp_path / 'images'}"

    def hint(manifest: dict) -> str:
        (moved / "manifest.json").write_text(json.dumps(
            {"tinysift_run": True, "dataset": {"name": data, "hash": "h"}, **manifest}))
        return _train_hint(Run(moved))

    assert hint({"stages": {"train": {"status": "done", "params": {
        "dataset": "folder:images", "source": "condensed:vq"}, "results": {
            "dataset": {"name": data, "hash": "h"},
            "set_file": {"path": "condensed.npz", "hash": "c"}}}},
        "commands": [{"argv": ["tinysift", "train", "--out", "runs/c", "--dataset",
                               "folder:images", "--condensed", "runs/c/condensed.npz"]}]}) == (
        f"tinysift train --out {moved} --dataset {data} --condensed {moved / 'condensed.npz'}")
    for prune_at, condense_at, flag, name in (("1", "2", "condensed", "condensed.npz"),
                                              ("2", "1", "selection", "selection.npz")):
        assert hint({"commands": [], "stages": {
            "prune": {"status": "done", "finished": prune_at, "params": {}},
            "condense": {"status": "done", "finished": condense_at, "params": {}}}}) == (
            f"tinysift train --dataset {data} --{flag} {moved / name} --out {moved}")


def test_prune_records_and_keys_on_its_seed_and_every_parameter(tmp_path):
    """A prune again with another --seed must draw its set again (not answer "cached" with
    the old selection.npz), and the folder records the seed and every method parameter with
    its default, so it says how its set was made."""
    from tinysift.stages.prune import prune

    out = tmp_path / "p"
    assert not prune("digits", "random", 0.1, out, progress=False).skipped
    assert prune("digits", "random", 0.1, out, progress=False).skipped
    first = np.load(out / "selection.npz")["indices"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 0
    assert manifest["stages"]["prune"]["params"]["resolved_params"] == {"balance": True}
    assert not prune("digits", "random", 0.1, out, seed=1, progress=False).skipped
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1
    assert not np.array_equal(np.load(out / "selection.npz")["indices"], first)


def test_prune_many_keys_each_method_on_its_budgets_and_seed(tmp_path):
    """`tinysift run`'s selections (prune_many): a rerun with the same budgets reuses every
    set, and another budget or seed selects again (a reused stage returned a path to a set
    never written, or the old seed's set)."""
    from tinysift.stages.prune import prune_many

    out = tmp_path / "select"
    paths = prune_many("digits", ["random"], [20, 50], out, progress=False)
    assert sorted(paths) == [("random", 20), ("random", 50)]
    stamps = {key: path.stat().st_mtime_ns for key, path in paths.items()}
    again = prune_many("digits", ["random"], [20, 50], out, progress=False)
    assert {key: path.stat().st_mtime_ns for key, path in again.items()} == stamps
    more = prune_many("digits", ["random"], [20, 60], out, progress=False)
    assert len(np.load(more[("random", 60)])["indices"]) == 60
    first = np.load(more[("random", 20)])["indices"]
    other = prune_many("digits", ["random"], [20, 60], out, seed=1, progress=False)
    assert not np.array_equal(np.load(other[("random", 20)])["indices"], first)
    stage = json.loads((out / "manifest.json").read_text())["stages"]["prune:random"]
    assert stage["seed"] == 1 and stage["params"]["resolved_params"] == {"balance": True}


@pytest.mark.parametrize("epochs, short", [(6, 474), (7, None)])
def test_the_step_warning_takes_the_rule_at_the_run_s_batch(epochs, short):
    """20,000 kept samples in batches of 256 are 79 steps an epoch: the subset step rule at
    that batch is max(500, 6 x 79) = 500 steps (at the default 128 it would be 6 x 157 =
    942), so 6 epochs (474 steps) are warned about and 7 (553) are not."""
    from tinysift.models.training import TrainConfig
    from tinysift.stages.train import _step_warnings

    warned = _step_warnings(TrainConfig(epochs=epochs, batch_size=256), 20_000, "random", None)
    if short is None:
        assert warned == []
    else:
        (w,) = warned
        assert f"{short} optimizer steps of batch 256" in w and "subset step rule's 500" in w


def test_a_budget_of_the_whole_recipe_is_accepted():
    """--budget is a fraction in (0, 1]: 1 (the full-data recipe's passes) is accepted."""
    from tinysift.stages.train import _check_guided

    _check_guided("rs2", 1.0, 1, None, None, None)


def test_a_selection_of_other_data_is_refused_before_training(tmp_path, digits):
    """train checks a selection against the dataset's hash (once any label noise the
    selection carries is applied): one pruned from other data is refused, nothing written."""
    from tinysift.errors import DatasetError
    from tinysift.selection.io import write_selection
    from tinysift.stages.train import train

    write_selection(tmp_path / "selection.npz", np.arange(40), np.zeros(len(digits.y_train)),
                    "random", len(digits.y_train), "other-hash")
    with pytest.raises(DatasetError, match=f"made for dataset hash other-hash, not "
                                           f"{digits.content_hash}"):
        train("digits", tmp_path / "r", selection=tmp_path / "selection.npz", epochs=1,
              progress=False)
    assert not (tmp_path / "r" / "manifest.json").exists()
    # in a run folder, the data it was made for is named (two hashes named none)
    write_selection(tmp_path / "m" / "selection.npz", np.arange(40),
                    np.zeros(len(digits.y_train)), "random", len(digits.y_train), "other-hash")
    manifest = tmp_path / "m" / "manifest.json"
    manifest.write_text('{"dataset": {"name": "npz:/data/x.npz", "hash": "other-hash"}}')
    with pytest.raises(DatasetError, match=r"made for dataset hash other-hash \(dataset "
                                           r"npz:/data/x\.npz, as its run folder records\), "
                                           rf"not {digits.content_hash}"):
        train("digits", tmp_path / "r", selection=tmp_path / "m", epochs=1, progress=False)
    # a set copied into the folder of other data is not named after that data
    manifest.write_text('{"dataset": {"name": "npz:/data/x.npz", "hash": "third-hash"}}')
    with pytest.raises(DatasetError, match=rf"made for dataset hash other-hash, not "
                                           rf"{digits.content_hash}"):
        train("digits", tmp_path / "r", selection=tmp_path / "m", epochs=1, progress=False)


def test_condensed_images_of_another_shape_are_refused(tmp_path, digits):
    """A condensed set whose images are not the dataset's shape was condensed from other
    data: refused by name before training (it trained a 4x4 model that the 8x8 test split
    then failed inside Keras), nothing recorded."""
    from tinysift.errors import BudgetError
    from tinysift.selection.io import write_condensed
    from tinysift.stages.train import train

    write_condensed(tmp_path / "c" / "condensed.npz", np.zeros((20, 4, 4, 1), np.uint8),
                    np.repeat(np.arange(10), 2), "random", 2, digits.content_hash)
    with pytest.raises(BudgetError, match=r"condensed images are \(4, 4, 1\), dataset images "
                                          r"\(8, 8, 1\): condensed from a different dataset"):
        train("digits", tmp_path / "r", condensed=tmp_path / "c", epochs=1, progress=False)
    assert not (tmp_path / "r" / "manifest.json").exists()


def test_bad_guided_params_are_refused_before_the_data_is_read(tmp_path):
    """A typo in --guided-params is named before any data is loaded (here a dataset file
    that does not exist: the parameter is what the user is told about first)."""
    from tinysift.errors import TinysiftError
    from tinysift.stages.train import train

    with pytest.raises(TinysiftError, match="'rs2' has no parameter nope"):
        train(f"npz:{tmp_path / 'missing.npz'}", tmp_path / "r", epochs=1, guided="rs2",
              budget=0.5, guided_params={"nope": 1}, progress=False)


def test_prune_without_balance_takes_fewer_samples_than_classes(tmp_path):
    """--no-balance is the fix the class-count refusal names: a global budget of 5 samples of
    digits' 10 classes is taken (the balanced budget's refusal is not applied), the method
    runs unbalanced (the record and the selection file say balance False), and the class
    counts still list every class, 0 for those the budget missed (the last one here)."""
    from tinysift.selection.io import read_selection
    from tinysift.stages.prune import prune

    out = tmp_path / "p"
    outcome = prune("digits", "random", 5, out, balance=False, progress=False)
    assert outcome.keep_count == 5 and sum(outcome.class_counts) == 5
    assert len(outcome.class_counts) == 10 and outcome.class_counts[9] == 0
    stage = json.loads((out / "manifest.json").read_text())["stages"]["prune"]
    assert stage["params"]["resolved_params"] == {"balance": False}
    assert stage["results"]["class_counts"] == outcome.class_counts
    assert json.loads(str(read_selection(out)["params"])) == {"balance": False}


def test_prune_records_its_noise_draw_in_the_folder_and_the_selection(tmp_path, digits):
    """train re-applies a selection's label noise from the file (its label_noise and
    noise_seed) and quantize from the folder's dataset record: a prune under noise writes
    both with the draw's seed, the method's seed and parameters, and a noise-free prune at
    another seed records noise seed 0 (no draw), as train records it."""
    from tinysift.data import add_label_noise
    from tinysift.selection.io import read_selection
    from tinysift.stages.prune import prune

    noisy, _ = add_label_noise(digits, 0.2, 3)
    out = tmp_path / "noisy"
    prune("digits", "random", 0.1, out, seed=3, label_noise=0.2, progress=False)
    assert json.loads((out / "manifest.json").read_text())["dataset"] == {
        "name": "digits", "hash": noisy.content_hash, "train": 1437, "test": 360,
        "label_noise": 0.2, "noise_seed": 3}
    sel = read_selection(out, len(digits.y_train), noisy.content_hash)
    assert (float(sel["label_noise"]), int(sel["noise_seed"]), int(sel["seed"])) == (0.2, 3, 3)
    assert json.loads(str(sel["params"])) == {"balance": True}
    clean = tmp_path / "clean"
    prune("digits", "random", 0.1, clean, seed=3, progress=False)
    assert json.loads((clean / "manifest.json").read_text())["dataset"]["noise_seed"] == 0
    assert int(read_selection(clean)["noise_seed"]) == 0


def test_an_unbalanced_greedy_selection_is_recorded_as_not_nested(tmp_path):
    """kcenter with balance=False runs one greedy over the whole set up to the budget, so
    the top of the file's scores is not its selection: the selection file says nested False,
    the fitted method's (write_selection's default, the registered method's, says True and
    would tell a reader the scores re-cut any budget)."""
    from tinysift.selection.io import read_selection
    from tinysift.stages.prune import prune

    out = tmp_path / "p"
    prune("digits", "kcenter", 30, out, balance=False, embedding="pixels", progress=False)
    assert not bool(read_selection(out)["nested"])


def test_condense_records_its_set_and_says_so_when_cached(tmp_path, digits):
    """condense's outcome and record give the samples made (K per class of every class),
    also when answered from the cache; condensed.npz carries its K and the folder records
    the dataset it came from (name, hash, split sizes)."""
    from tinysift.selection.io import read_condensed
    from tinysift.stages.condense import condense

    out = tmp_path / "c"
    made = condense("digits", "random", 2, out, progress=False)
    cached = condense("digits", "random", 2, out, progress=False)
    assert (made.count, cached.count, cached.skipped) == (20, 20, True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"] == {"name": "digits", "hash": digits.content_hash,
                                   "train": 1437, "test": 360}
    results = manifest["stages"]["condense"]["results"]
    assert results["count"] == 20 and results["class_counts"] == [2] * 10
    assert int(read_condensed(out, digits.content_hash, 10)["per_class"]) == 2


def test_prune_scores_again_for_other_proxy_epochs(tmp_path):
    """--proxy-epochs sets the proxy training behind every dynamics-based score: a prune
    again with another value must score again (not answer "cached" with the set the other
    proxy scored), and the folder records the value. Also in `tinysift run`'s selections."""
    from tinysift.stages.prune import prune, prune_many

    out = tmp_path / "p"
    assert not prune("digits", "random", 0.1, out, proxy_epochs=2, progress=False).skipped
    assert prune("digits", "random", 0.1, out, proxy_epochs=2, progress=False).skipped
    assert not prune("digits", "random", 0.1, out, proxy_epochs=3, progress=False).skipped
    stage = json.loads((out / "manifest.json").read_text())["stages"]["prune"]
    assert stage["params"]["proxy_epochs"] == 3
    many = tmp_path / "many"
    first = prune_many("digits", ["random"], [20], many, proxy_epochs=2, progress=False)
    stamp = first[("random", 20)].stat().st_mtime_ns
    again = prune_many("digits", ["random"], [20], many, proxy_epochs=3, progress=False)
    assert again[("random", 20)].stat().st_mtime_ns != stamp


def test_a_set_deleted_since_its_stage_is_made_again(tmp_path):
    """A prune or condense whose selection.npz or condensed.npz was deleted (or replaced)
    runs again instead of answering "cached" with no set in the folder; so does `tinysift
    run`'s prune_many, whose returned path the device rows train on."""
    from tinysift.stages.condense import condense
    from tinysift.stages.prune import prune, prune_many

    prune("digits", "random", 0.1, tmp_path / "p", progress=False)
    (tmp_path / "p" / "selection.npz").unlink()
    assert not prune("digits", "random", 0.1, tmp_path / "p", progress=False).skipped
    assert (tmp_path / "p" / "selection.npz").exists()
    condense("digits", "random", 2, tmp_path / "c", progress=False)
    (tmp_path / "c" / "condensed.npz").unlink()
    assert not condense("digits", "random", 2, tmp_path / "c", progress=False).skipped
    assert (tmp_path / "c" / "condensed.npz").exists()
    path = prune_many("digits", ["random"], [20], tmp_path / "many", progress=False)[
        ("random", 20)]
    path.unlink()
    prune_many("digits", ["random"], [20], tmp_path / "many", progress=False)
    assert path.exists()


def test_prune_many_applies_and_records_each_method_s_parameters_and_seed(tmp_path):
    """`tinysift run`'s method_params reach their method (here random without the class
    balance), and each selection file says how it was made: the seed and every parameter."""
    from tinysift.selection.io import read_selection
    from tinysift.stages.prune import prune_many

    path = prune_many("digits", ["random"], [20], tmp_path / "many", seed=2, progress=False,
                      method_params={"random": {"balance": False}})[("random", 20)]
    sel = read_selection(path)
    assert int(sel["seed"]) == 2 and json.loads(str(sel["params"])) == {"balance": False}


def test_prune_and_condense_seed_the_embedding_they_measure_in(tmp_path):
    """--seed is the seed of every random choice, the random-conv embedding's filters too:
    herding, whose picks follow from its embedding alone, picks another set at another seed
    (with the embedding drawn at one seed whatever the stage's, both seeds picked one set)."""
    from tinysift.stages.condense import condense
    from tinysift.stages.prune import prune

    kept = [np.load(prune("digits", "herding", 50, tmp_path / f"p{seed}", seed=seed,
                          embedding="random-conv", progress=False).run_dir
                    / "selection.npz")["indices"] for seed in (0, 1)]
    assert not np.array_equal(*kept)
    made = [np.load(condense("digits", "herding", 2, tmp_path / f"c{seed}", seed=seed,
                             embedding="random-conv", progress=False).run_dir
                    / "condensed.npz")["x"] for seed in (0, 1)]
    assert not np.array_equal(*made)
