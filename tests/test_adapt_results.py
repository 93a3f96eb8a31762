"""What the adaptation pipeline reports and streams, on the digits (no device): the old/new
split of the device's per-class counts, the test subsets and their split by task, the
replay set's classes and size, the joint reference, the scenarios' splits and seeds, the
upkeep stream and buffer size, and the benches' paired differences."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinysift.bench.stats import paired_difference
from tinysift.data import scenarios


class _Stop(Exception):
    """Ends a pipeline where a test has seen what it needs (before the device)."""


@pytest.fixture(scope="module")
def digits_base(tmp_path_factory):
    """A digits new-classes adaptation's scenario, parts and base model (old classes 0-7,
    20 new samples of 8 and 9), trained briefly."""
    from tinysift.pipeline.adapt import AdaptConfig, prepare_base

    cfg = AdaptConfig(dataset="digits", new_per_class=20, replay="random", replay_per_class=5,
                      base_epochs=3, test_per_class=10,
                      out=str(tmp_path_factory.mktemp("adapt") / "run"))
    scn, parts, _name, base = prepare_base(cfg, log=lambda *_: None)
    return cfg, scn, parts, base


def _results(rows):
    from tinysift.device.results import DeviceResults

    return DeviceResults(board="b", clock_hz=1, params={}, energy_model={}, started="",
                         per_class={"after": rows})


def test_device_accuracy_splits_old_and_new_classes_of_the_int8_model():
    """The device's @class counts: old = the old classes', new = the new classes', all =
    every class's, of the int8 model (its float counts differ)."""
    from tinysift.pipeline.adapt import device_task_accuracies

    scn = scenarios.new_classes("digits", old_classes=range(8), new_per_class=5)
    rows = [{"class": c, "total": 10, "correct": 10, "int8_correct": 9} for c in range(8)]
    rows += [{"class": c, "total": 10, "correct": 10, "int8_correct": 2} for c in (8, 9)]
    acc = device_task_accuracies(_results(rows), scn)
    assert acc == {"all": (72 + 4) / 100, "old": 0.9, "new": 0.2}
    # shift: old and new share the classes; the exported tests are the new domain's
    shift = scenarios.Scenario("shift", *([scn.x_old[:2], scn.y_old[:2]] * 4), 10,
                               tuple(range(10)), tuple(range(10)), scn.class_names)
    acc = device_task_accuracies(_results(rows), shift)
    assert acc == {"all": 0.76, "new": 0.76}
    # a firmware that sends no @class records: said, not an accuracy of None
    from tinysift.errors import BudgetError

    with pytest.raises(BudgetError, match="the device reported no per-class counts"):
        device_task_accuracies(_results([]), scn)


def test_test_subset_is_class_balanced_per_task_and_split_back_by_task(tmp_path):
    """test_per_class of every class of each task; exported_tests gives back exactly the
    exported images and labels, each under its own task."""
    from tinysift.data import load_dataset
    from tinysift.pipeline.adapt import exported_tests, test_indices

    scn = scenarios.new_classes("digits", old_classes=range(8), new_per_class=5)
    parts = scn.to_npz(tmp_path / "s.npz")
    tests = test_indices(scn, parts, 7, seed=0)
    ds = load_dataset(f"npz:{tmp_path / 's.npz'}")
    assert np.array_equal(np.unique(ds.y_test[tests], return_counts=True)[1], [7] * 10)
    only_new = test_indices(scn, parts, 7, seed=0, tasks=("test_new",))
    assert set(ds.y_test[only_new]) == {8, 9} and len(only_new) == 14
    split = exported_tests(scn, parts, tests)
    for task, classes in (("old", set(range(8))), ("new", {8, 9})):
        x, y = split[task]
        assert set(y) == classes and len(y) == 7 * len(classes)
    x = np.concatenate([split["old"][0], split["new"][0]])
    y = np.concatenate([split["old"][1], split["new"][1]])
    # the old task's test samples come first in the scenario's test split
    assert np.array_equal(x, ds.x_test[tests]) and np.array_equal(y, ds.y_test[tests])


def test_replay_set_is_replay_per_class_of_every_old_class(digits_base):
    """The replay set: exactly replay_per_class training samples of each old class (none of
    the new ones), from the old part of the scenario."""
    from tinysift.pipeline.adapt import choose_replay, fit_replay

    cfg, scn, parts, base = digits_base
    for method in ("random", "herding"):
        cfg.replay = method
        local = choose_replay(cfg, scn, base)
        classes, counts = np.unique(scn.y_old[local], return_counts=True)
        assert list(classes) == list(range(8)) and set(counts) == {5}, (method, counts)
    # chosen in the base model's own feature space, not a proxy CNN's (herding's default)
    assert fit_replay(cfg, scn, base).embedding == "given"


def test_replay_count_may_be_the_smallest_old_class(digits_base):
    from tinysift.errors import BudgetError
    from tinysift.pipeline.adapt import check_replay_count

    cfg, scn, _parts, _base = digits_base
    fewest = min(int(np.sum(scn.y_old == c)) for c in scn.old_classes)
    cfg.replay_per_class = fewest
    check_replay_count(cfg, scn)
    cfg.replay_per_class = fewest + 1
    with pytest.raises(BudgetError, match=f"give at most {fewest}"):
        check_replay_count(cfg, scn)


def test_joint_reference_learns_the_new_classes_and_pools_all(digits_base):
    """The joint head is trained on the old data plus the new samples, balanced: it must
    classify the new classes (a head of the old data alone never predicts them), and its
    "all" is the pooled accuracy of the tests given (not the mean of the tasks')."""
    from sklearn.linear_model import LogisticRegression

    from tinysift.pipeline.adapt import base_features, host_joint_reference

    _cfg, scn, _parts, base = digits_base
    tests = {"old": (scn.x_test_old[:200], scn.y_test_old[:200]),
             "new": (scn.x_test_new[:40], scn.y_test_new[:40])}
    ref = host_joint_reference(scn, base, 0, tests)
    assert ref["new"] > 0.5 and ref["old"] > 0.5
    assert ref["all"] == pytest.approx((200 * ref["old"] + 40 * ref["new"]) / 240)
    # balanced: the 40 new samples weigh as much per class as the ~1,150 old ones
    x = np.concatenate([scn.x_old, scn.x_new])
    y = np.concatenate([scn.y_old, scn.y_new])
    clf = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=0).fit(
        base_features(base, x), y)
    pred = clf.predict(base_features(base, tests["new"][0]))
    assert ref["new"] == np.mean(pred == tests["new"][1])
    # a task with no test sample (shift's old domain on the device) is left out, not 0/0
    only_new = host_joint_reference(scn, base, 0, {"old": (x[:0], y[:0]), "new": tests["new"]})
    assert only_new == {"new": ref["new"], "all": ref["new"]}


def test_device_seed_follows_the_adaptation_seed():
    """Each seed trains with its own device sample order (seed + 1, as bench device's)."""
    from tinysift.pipeline.adapt import AdaptConfig

    assert [AdaptConfig(seed=s).device_params().seed for s in (0, 1, 5)] == [1, 2, 6]
    # and every device setting of the adaptation, --no-balance included
    from tinysift.device.session import TrainParams

    cfg = AdaptConfig(update="bias", steps=7, lr=0.2, momentum=0.5, batch=8, schedule="step",
                      balance=False, seed=3)
    assert cfg.device_params() == TrainParams(epochs=1, lr=0.2, momentum=0.5, batch=8, seed=4,
                                              update="bias", steps=7, schedule="step",
                                              balance=False)


def test_shift_tests_on_both_test_splits_and_draws_new_samples_with_the_seed():
    from tinysift.data import load_dataset
    from tinysift.pipeline.adapt import AdaptConfig, build_scenario

    a = build_scenario(AdaptConfig(scenario="shift", dataset="mnist", new_per_class=10,
                                   seed=0))
    b = build_scenario(AdaptConfig(scenario="shift", dataset="mnist", new_per_class=10,
                                   seed=1))
    src, tgt = load_dataset("mnist"), load_dataset("digits")
    assert np.array_equal(a.y_test_old, src.y_test) and len(a.y_old) == len(src.y_train)
    assert np.array_equal(a.y_test_new, tgt.y_test)
    # the new task is tested on the digits' test images, none of the training ones
    assert np.array_equal(a.x_test_new, scenarios.upsample_digits(tgt.x_test))
    assert np.array_equal(np.unique(a.y_new, return_counts=True)[1], [10] * 10)
    assert not np.array_equal(a.x_new, b.x_new)  # the seed draws the new samples
    # each new image is an upsampled training digit of its own label (its pair kept)
    upsampled = scenarios.upsample_digits(tgt.x_train)
    label_of = {img.tobytes(): int(lab)
                for img, lab in zip(upsampled, tgt.y_train, strict=True)}
    assert [label_of[img.tobytes()] for img in a.x_new] == a.y_new.tolist()


def test_user_data_without_a_test_split_holds_out_a_fifth_seeded(write_npz):
    """A user's npz without x_test: 20% of each class is held out, disjoint from what the
    device learns; the new samples are drawn with the seed."""
    from tinysift.data import load_dataset

    d = load_dataset("digits")
    x = np.concatenate([d.x_train[d.y_train == 8][:40], d.x_train[d.y_train == 9][:40]])
    y = np.array([8] * 40 + [9] * 40)
    spec = write_npz("mine.npz", x=x[..., 0], y=y)
    scn = scenarios.user("digits", spec)
    assert np.array_equal(np.unique(scn.y_test_new, return_counts=True)[1], [8, 8])
    assert len(scn.y_new) == 64
    flat = {row.tobytes() for row in scn.x_new}
    assert not any(row.tobytes() in flat for row in scn.x_test_new)
    s0, s1 = (scenarios.user("digits", spec, new_per_class=10, seed=s) for s in (0, 1))
    assert not np.array_equal(s0.x_new, s1.x_new)


def test_upkeep_stream_is_the_new_samples_in_seeded_order_with_their_labels(
        tmp_path, monkeypatch):
    """The stream: every new sample, shuffled with the seed, each image with its own label;
    the codebook is fit on the old data (the new classes are the device's online ones); a
    buffer of b per class holds b x the stream's classes."""
    import tinysift.stages.stream as stream_stage
    from tinysift.pipeline.upkeep import UpkeepConfig, prepare, run_point
    from tinysift.quantize import tflm

    cfg = UpkeepConfig(dataset="digits", new_per_class=15, replay="random",
                       replay_per_class=2, base_epochs=1, test_per_class=5, seed=3,
                       buffers=(4,), vq_per_class=2, out=str(tmp_path / "run"))
    setup = prepare(cfg, log=lambda *_: None)
    scn = setup.scn
    assert np.array_equal(setup.stream_order,
                          np.random.default_rng(3).permutation(len(scn.y_new)))
    assert np.array_equal(setup.y_stream, scn.y_new[setup.stream_order])
    scale, zp = tflm.input_quant((setup.base / "model.tflite").read_bytes())
    assert np.array_equal(setup.x_stream,
                          tflm.quantize_images(scn.x_new[setup.stream_order], scale, zp))
    assert setup.stream_classes == 2
    # the export's `db stream` buffer holds the whole stream (the reference point keeps all 30)
    assert setup.plan["db_capacity"] == 30
    # and the codebook (coverage's strata): exported, not only fitted
    info = json.loads((setup.base / "export" / "export.json").read_text())
    exported = info["codebook"]
    assert exported["per_class"] == 2 and exported["online_classes"] == [8, 9]
    # beside the replay set: replay_per_class of each old class, those very samples (as the
    # model takes them) with their labels
    assert len(setup.replay) == info["train_samples"] == 2 * 8
    with np.load(setup.base / "export" / "golden.npz") as golden:
        assert np.array_equal(golden["y_train"], scn.y_old[setup.replay])
        assert np.array_equal(golden["x_train"],
                              tflm.quantize_images(scn.x_old[setup.replay], scale, zp))
    # each old class's vq_per_class codewords are distinct int8 features (quantized with the
    # feature tensor's scale and zero point; one codeword a class if they collapse)
    assert setup.codebook.counts.tolist() == [2] * 8 + [0, 0]
    assert setup.codebook.summary()["online_classes"] == [8, 9]
    seen = []

    def stop(_base, _board, params, samples, stream, label, **_kw):
        seen.append((stream, label, params))
        raise _Stop

    monkeypatch.setattr(stream_stage, "run_stream_on_device", stop)
    for policy, per_class, update in (("reservoir", 4, "head"), ("coverage", 4, "head"),
                                      ("reservoir", None, "head"), ("reservoir", 4, "bias"),
                                      ("coverage", 100, "head")):
        with pytest.raises(_Stop):
            run_point(cfg, setup, policy, per_class, update)
    (rsv, rsv_label, _), (cov, cov_label, _), (whole, whole_label, _) = seen[:3]
    assert rsv.cap == cov.cap == 8 and whole.cap == whole.count == len(scn.y_new) == 30
    assert (rsv.policy, cov.policy, whole.policy) == ("reservoir", "coverage", "reservoir")
    assert rsv.seed == cov.seed and len({rsv_label, cov_label, whole_label}) == 3
    # each update mode is its own device run (its own cached result), and every run trains
    # class-balanced, as the adaptation does
    (bias, bias_label, bias_params), (big, _, _) = seen[3:]
    assert bias.cap == 8 and bias_params.update == "bias" and bias_label != rsv_label
    assert all(params.balance for _, _, params in seen)
    # 100 per class of a 30-sample stream keeps the whole stream: the buffer is no larger
    assert big.cap == big.count == 30


def test_device_bench_differences_are_method_minus_reference_paired_by_seed(tmp_path):
    """vs_random / vs_herding / vs_joint are the row minus the reference, seed by seed (the
    log's records added in another seed order than the rows'); old_vs_joint is of the old
    task; the floor has no difference to random."""
    from tinysift.bench.device import DeviceBenchConfig, _results
    from tinysift.bench.progress import ProgressLog

    cfg = DeviceBenchConfig(dataset="digits", seeds=3, methods=("random", "herding", "vq"),
                            sizes=(5,))
    plog = ProgressLog({"t": 1}, tmp_path, "device", point="point")
    acc = {"joint": [0.95, 0.90, 0.97], "none": [0.40, 0.30, 0.50],
           "random": [0.70, 0.60, 0.90], "herding": [0.75, 0.58, 0.80],
           "vq": [0.80, 0.62, 0.91]}
    old = {m: [a - 0.1 for a in v] for m, v in acc.items()}
    for method in acc:  # the joint logged last seed first: records keyed by seed, not order
        for seed in ((2, 1, 0) if method == "joint" else (0, 1, 2)):
            at = "host" if method == "joint" else f"{0 if method == 'none' else 5}:head"
            rec = {"acc": acc[method][seed], "acc_old": old[method][seed],
                   "acc_new": acc[method][seed] + 0.05}
            if method != "joint":
                rec.update(energy_mj=1.0, cycles=1.0, ram_plan=1.0)
            plog.add(seed, method, at, **rec)
    res = _results(cfg, plog, [0, 1, 2], {"ram_total": 1}, {"head": 1}, 1.0)
    vq = res["points"]["vq:5:head"]
    assert vq["vs_random"] == paired_difference(acc["vq"], acc["random"])
    assert vq["vs_herding"] == paired_difference(acc["vq"], acc["herding"])
    assert vq["vs_joint"] == paired_difference(acc["vq"], acc["joint"])
    assert vq["old_vs_joint"] == paired_difference(old["vq"], old["joint"])
    assert vq["vs_random"]["mean"] > 0 and vq["vs_joint"]["mean"] < 0
    assert vq["old_runs"] == old["vq"] and vq["acc_old"] == pytest.approx(
        np.mean(old["vq"]))
    rnd = res["points"]["random:5:head"]
    assert "vs_random" not in rnd and rnd["vs_herding"] == paired_difference(acc["random"],
                                                                   acc["herding"])
    assert "vs_random" not in res["points"]["none:0:head"]


def test_partial_device_results_name_the_seeds_done_and_planned_and_each_modes_plan(
        tmp_path: Path) -> None:
    """A device results file written after the first of three seeds (a bench still running or
    stopped, herding not run yet) says 1 seed done of 3 planned, lists every method (in the
    order asked: the plot's colours) and update mode asked, gives each mode's rows the RAM of
    that mode's plan (bias's firmware holds the backbone buffers), carries the invocation's
    memory plan and wall time (the table's text reads them), and each row's accuracies per
    seed, of all, the old and the new task."""
    from tinysift.bench.device import DeviceBenchConfig, _results
    from tinysift.bench.progress import ProgressLog

    cfg = DeviceBenchConfig(dataset="digits", seeds=3, first_seed=2,
                            methods=("random", "herding"), sizes=(5,), updates=("head", "bias"))
    log = ProgressLog({"t": 3}, tmp_path, "partial", point="point")
    log.add(2, "joint", "host", acc=0.9, acc_old=0.9, acc_new=0.9)
    for update in ("head", "bias"):
        for method, size in (("none", 0), ("random", 5)):
            log.add(2, method, f"{size}:{update}", acc=0.6, acc_old=0.5, acc_new=0.7,
                    energy_mj=1.0, cycles=1.0, ram_plan=1.0)
    plan = {"ram_total": 9_000, "db_capacity": 80}
    res = _results(cfg, log, [2], plan, {"head": 6_000, "bias": 9_000}, 42.0)
    assert (res["seeds"], res["seeds_planned"], res["seed_values"]) == (1, 3, [2])
    assert res["updates"] == ["head", "bias"] and res["methods"] == ["random", "herding"]
    assert {k: p["ram_plan"] for k, p in res["points"].items()} == {
        "none:0:head": 6_000.0, "random:5:head": 6_000.0, "none:0:bias": 9_000.0,
        "random:5:bias": 9_000.0}
    assert res["memory_plan"] == plan and res["wall_seconds"] == 42.0
    bias = res["points"]["random:5:bias"]
    assert (bias["runs"], bias["old_runs"], bias["new_runs"]) == ([0.6], [0.5], [0.7])


def test_upkeep_bench_difference_is_coverage_minus_reservoir_paired_by_seed(tmp_path):
    from tinysift.bench.progress import ProgressLog
    from tinysift.bench.upkeep import FIELDS, UpkeepBenchConfig, _results, point_key
    from tinysift.pipeline.upkeep import UpkeepConfig, points

    up = UpkeepConfig(dataset="digits", buffers=(5,))
    log = ProgressLog({"bench": "upkeep"}, tmp_path, "upkeep", point="point")
    acc = {"reservoir": [0.70, 0.60, 0.90], "coverage": [0.80, 0.62, 0.91],
           "all": [0.9, 0.9, 0.9]}
    for policy, per_class, update in points(up):
        method, at = point_key(policy, per_class, update)
        for seed in ((2, 0, 1) if method == "reservoir" else (0, 1, 2)):
            log.add(seed, method, at, acc=acc[method][seed],
                    acc_old=acc[method][seed] - 0.2, acc_new=acc[method][seed] + 0.01,
                    **{f: 1.0 for f in FIELDS if f not in ("acc_old", "acc_new")},
                    **({"coverage_rules": 3} if method == "coverage" else {}))
    res = _results(UpkeepBenchConfig(up, seeds=3), log, 3, 1.0)
    cov = res["points"]["coverage:5:head"]
    assert cov["vs_reservoir"] == paired_difference(acc["coverage"], acc["reservoir"])
    assert cov["old_vs_reservoir"] == paired_difference([a - 0.2 for a in acc["coverage"]],
                                              [a - 0.2 for a in acc["reservoir"]])
    assert cov["vs_reservoir"]["mean"] > 0
    assert "vs_reservoir" not in res["points"]["reservoir:5:head"]
    assert cov["acc_old"] == pytest.approx(np.mean(acc["coverage"]) - 0.2)


def test_device_bench_logs_the_joint_reference_of_each_task(tmp_path, monkeypatch):
    """bench device's joint record: the host reference on the exported test subset, its old
    task as acc_old and its new task as acc_new (before any device run)."""
    import importlib

    from tinysift.bench.device import DeviceBenchConfig, bench_device
    from tinysift.pipeline.adapt import (
        exported_tests,
        host_joint_reference,
        prepare_base,
        test_indices,
    )

    export_stage = importlib.import_module("tinysift.stages.export")

    def stop(*_a, **_k):
        raise _Stop

    monkeypatch.setattr(export_stage, "export", stop)
    cfg = DeviceBenchConfig(dataset="digits", seeds=1, methods=("random",), sizes=(5,),
                            new_per_class=20, base_epochs=2, test_per_class=10,
                            out_dir=tmp_path / "out", progress_dir=tmp_path / "progress",
                            work_dir=tmp_path / "work")
    with pytest.raises(_Stop):
        bench_device(cfg, log=lambda *_: None)
    scn, parts, _name, base = prepare_base(cfg.adapt_config(0), log=lambda *_: None)
    tests = test_indices(scn, parts, 10, 0)
    split = exported_tests(scn, parts, tests)
    assert [len(split["old"][1]), len(split["new"][1])] == [80, 20]
    ref = host_joint_reference(scn, base, 0, split)
    lines = [json.loads(x) for f in (tmp_path / "progress").glob("*.jsonl")
             for x in f.read_text().splitlines() if x.strip()]
    rec = [r for r in lines if r.get("method") == "joint"]
    assert len(rec) == 1 and ref["new"] > 0.2, lines
    assert (rec[0]["acc"], rec[0]["acc_old"], rec[0]["acc_new"]) == (ref["all"], ref["old"],
                                                                     ref["new"])


def test_device_bench_refuses_no_seeds_and_an_unknown_method_before_any_work(
        tmp_path: Path) -> None:
    """`bench device --seeds 0` (a bench of no seeds: it ended in an IndexError of the seed
    list) and a misspelt replay method among good ones are refused in their own words before
    anything is trained or written (the method was refused only after a base model, minutes
    of training, when its first row came)."""
    from tinysift.bench.device import DeviceBenchConfig, bench_device
    from tinysift.errors import BudgetError

    where = {"out_dir": tmp_path / "out", "progress_dir": tmp_path / "progress",
             "work_dir": tmp_path / "work"}
    with pytest.raises(BudgetError, match=r"^--seeds must be at least 1 \(got 0\)$"):
        bench_device(DeviceBenchConfig(dataset="digits", seeds=0, **where), log=lambda *_: None)
    with pytest.raises(BudgetError, match=r"unknown replay method 'herdin' \(did you mean "
                                          r"herding\?\); a replay set is "
                                          r"chosen by a pruning method \(.*herding"):
        bench_device(DeviceBenchConfig(dataset="digits", methods=("random", "herdin"), **where),
                     log=lambda *_: None)
    assert not list(tmp_path.iterdir())


def test_a_device_bench_seed_is_all_logged_only_with_every_row_of_every_update_mode() -> None:
    """A seed is set up again (its base model, export and firmware: minutes) unless the host
    joint model, the floor and every method and size of every update mode are logged: any one
    row missing, the last mode's or the joint model's included, is a seed to run."""
    from tinysift.bench.device import DeviceBenchConfig, _all_logged
    from tinysift.bench.progress import ProgressLog

    cfg = DeviceBenchConfig(dataset="digits", methods=("random", "vq"), sizes=(5, 10),
                            updates=("head", "bias"))
    rows = [("joint", "host")] + [(method, f"{size}:{update}") for update in ("head", "bias")
                                  for method, size in (("none", 0), ("random", 5),
                                                       ("random", 10), ("vq", 5), ("vq", 10))]
    for missing in rows:
        log = ProgressLog({"t": 1}, None, "device", point="point")
        for method, at in rows:
            if (method, at) != missing:
                log.add(0, method, at, acc=0.5)
        assert not _all_logged(cfg, log, 0), missing
    log.add(0, *missing, acc=0.5)
    assert _all_logged(cfg, log, 0) and not _all_logged(cfg, log, 1)


def test_device_bench_replay_sets_fit_each_method_once_a_seed(digits_base: tuple) -> None:
    """bench device's replay set is ``size`` of each old class; a method is fitted once a seed
    (a later size reuses the fit and is charged its seconds, as if it ran alone: the rows'
    select_seconds), the floor fits nothing, and a fit that failed fails every size of its
    method with its own error, without fitting again (each fit scores the old data)."""
    from tinysift.bench.device import DeviceBenchConfig, _replay_set
    from tinysift.errors import TinysiftError

    _adapt, scn, _parts, base = digits_base
    cfg = DeviceBenchConfig(dataset="digits", new_per_class=20, test_per_class=10)
    fits: dict = {}
    local, _seconds = _replay_set(cfg, 0, "herding", 5, scn, base, fits)
    assert np.bincount(scn.y_old[local]).tolist() == [5] * 8
    fitted, _fit_seconds = fits["herding"]
    fits["herding"] = (fitted, 100.0)  # a fit of 100 s
    local, seconds = _replay_set(cfg, 0, "herding", 10, scn, base, fits)
    assert np.bincount(scn.y_old[local]).tolist() == [10] * 8
    assert seconds >= 100.0 and fits["herding"][0] is fitted
    floor, _seconds = _replay_set(cfg, 0, "none", 0, scn, base, fits)
    assert len(floor) == 0 and set(fits) == {"herding"}
    bad = DeviceBenchConfig(dataset="digits", replay_params={"herding": {"colour": "red"}})
    fits = {}
    with pytest.raises(TinysiftError, match="herding' has no parameter colour") as first:
        _replay_set(bad, 0, "herding", 5, scn, base, fits)
    with pytest.raises(TinysiftError) as again:
        _replay_set(bad, 0, "herding", 10, scn, base, fits)
    assert again.value is first.value


def test_a_resumed_device_bench_sets_up_its_last_seed_only_and_runs_its_missing_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A resumed bench runs only the rows its log lacks (or holds without one of their numbers:
    an edited record): a seed before the last whose rows are all logged is not set up at all;
    the last is, for this invocation's memory plan (a head-only firmware whose buffer holds the
    largest replay set plus the new samples: every row's RAM) and its missing rows. Each trains
    on the device on its replay set (10 of each old class; the floor none) then the new
    samples, streamed into RAM, with the bench's recipe and the device seed one past the
    seed's; its record holds the int8 accuracies, the training bill of the samples trained,
    every epoch's cycles and the plan's RAM. The results hold every seed from the first one (3
    and 4, not 0 to 4). Run again, it runs nothing and writes the same results, its last seed
    set up for the plan alone. The device (QEMU: minutes) is a double returning records written
    by hand."""
    import importlib

    import tinysift.stages.device as device_stage
    from tinysift.bench.device import DeviceBenchConfig, bench_device
    from tinysift.device.build import firmware_source_hash
    from tinysift.device.results import DeviceResults, EpochResult, PhaseResult
    from tinysift.stages.device import TrainParams

    export_stage = importlib.import_module("tinysift.stages.export")
    real_export = export_stage.export

    def stop(*_a: object, **_k: object) -> None:
        raise _Stop

    def config(first_seed: int, seeds: int) -> DeviceBenchConfig:
        return DeviceBenchConfig(dataset="digits", seeds=seeds, first_seed=first_seed,
                                 methods=("random",), sizes=(5, 10), new_per_class=20,
                                 base_epochs=2, test_per_class=10, out_dir=tmp_path / "out",
                                 progress_dir=tmp_path / "progress", work_dir=tmp_path / "work")

    # seed 4's base model and joint reference, logged by a bench stopped at its export
    monkeypatch.setattr(export_stage, "export", stop)
    with pytest.raises(_Stop):
        bench_device(config(4, 1), log=lambda *_: None)
    (log,) = (tmp_path / "progress").glob("*.jsonl")
    (joint,) = [r for r in map(json.loads, log.read_text().splitlines())
                if r["method"] == "joint"]
    assert joint["firmware"] == firmware_source_hash()  # a firmware change reruns the rows
    # the other rows of seeds 3 and 4 as device runs log them, but seed 4's floor, and its
    # random 10/class without its energy
    rows = [(3, "joint", "host"), (3, "none", "0:head"), (3, "random", "10:head"),
            (4, "random", "10:head")] + [(seed, "random", "5:head") for seed in (3, 4)]
    with log.open("a") as f:
        for seed, method, point in rows:
            record = joint | {"seed": seed, "method": method, "point": point, "acc": 0.5,
                              "acc_old": 0.4, "acc_new": 0.6, "energy_mj": 1.0,
                              "cycles": 10.0, "ram_plan": 1.0}
            if (seed, point) == (4, "10:head"):
                del record["energy_mj"]
            f.write(json.dumps(record) + "\n")
    monkeypatch.setattr(export_stage, "export", real_export)
    per_class = [{"class": c, "total": 5, "correct": 5, "int8_correct": 4} for c in range(8)]
    per_class += [{"class": c, "total": 5, "correct": 5, "int8_correct": 1} for c in (8, 9)]
    runs = []

    def device(_base: Path, board: str, params: TrainParams, train_set: tuple, label: str,
               db_use: str) -> DeviceResults:
        runs.append((params, train_set, label, db_use))
        return DeviceResults(board=board, clock_hz=1, params={"update": params.update},
                             energy_model={}, started="", counter="cycles", samples=30,
                             test_samples=100, ram_bytes=1000, per_class={"after": per_class},
                             phases={"features": PhaseResult(energy_mj=40.0)},
                             epochs=[EpochResult(1, 0.0, 0.0, 100, 0.0, 1.5),
                                     EpochResult(2, 0.0, 0.0, 300, 0.0, 2.5)])

    monkeypatch.setattr(device_stage, "run_on_device", device)
    said: list[str] = []
    cfg = config(3, 2)
    res = bench_device(cfg, log=said.append)
    assert not (tmp_path / "work" / f"{cfg.stem()}-s3").exists()
    assert [line.split(":")[0] for line in said if "every row already in" in line] == ["seed 3"]
    (floor, (_x, floor_y), floor_label, _db), (params, (x, y), label, db_use) = runs
    assert floor_label == "none-0-head" and floor.seed == 5
    assert np.bincount(floor_y, minlength=10).tolist() == [0] * 8 + [20, 20]
    assert (label, db_use, x.dtype, len(x)) == ("random-10-head", "ram", np.int8, 120)
    assert np.bincount(y).tolist() == [10] * 8 + [20, 20]
    assert (params.seed, params.update, params.balance, params.lr, params.batch, params.steps,
            params.schedule) == (5, "head", True, 0.05, 32, 300, "cosine")
    plan = res["memory_plan"]
    assert plan["db_capacity"] == 10 * 8 + 40 and plan["backbone_training"] is False
    (_edited, ran) = [r for r in map(json.loads, log.read_text().splitlines())
                      if (r["seed"], r["method"], r["point"]) == (4, "random", "10:head")]
    assert {k: ran[k] for k in ("acc", "acc_old", "acc_new", "energy_mj", "cycles",
                                "ram_plan", "ram_static")} == {
        "acc": 34 / 50, "acc_old": 0.8, "acc_new": 0.2, "energy_mj": 4.0 + 40.0 * 120 / 220,
        "cycles": 400.0, "ram_plan": float(plan["ram_total"]), "ram_static": 1000.0}
    assert "seed 4:   random  10/class head      : old 0.800 new 0.200 all 0.680" in said
    assert res["seeds"] == 2 and res["seed_values"] == [3, 4]
    assert sorted(res["points"]) == ["none:0:head", "random:10:head", "random:5:head"]
    assert res["points"]["random:10:head"]["runs"] == [0.5, 34 / 50]
    assert res["points"]["none:0:head"]["runs"] == [0.5, 34 / 50]
    assert {p["ram_plan"] for p in res["points"].values()} == {float(plan["ram_total"])}
    assert res["scenario_info"]["new_samples"] == 40
    assert res["scenario_info"]["new_classes"] == [8, 9]
    written = json.loads((tmp_path / "out" / f"{cfg.stem()}.json").read_text())
    assert written["seed_values"] == [3, 4] and written["points"].keys() == res["points"].keys()
    # every row logged: nothing runs, the last seed is set up for the plan alone
    runs.clear()
    again = bench_device(cfg, log=said.append)
    assert runs == [] and again["memory_plan"] == plan and again["points"] == res["points"]


def test_adaptation_sends_the_new_samples_and_trains_on_both_only_with_replay(
        tmp_path, monkeypatch):
    """run_adapt: with a replay set the device trains on the exported set plus the streamed
    new samples (db use both), the export holding replay_per_class of each old class; with
    none (or 0 per class) on the new samples alone (db use ram), the export one per class.
    Its report (RUN/adapt-LABEL.json) holds the device's int8 accuracies, training bill,
    cycles and memory, the replay set's size (0 for the floor, whatever was exported) and
    the joint reference on the exported tests (40 old, 10 new). The device (QEMU: minutes)
    is a double returning records written by hand."""
    import tinysift.stages.device as device_stage
    from tinysift.device.results import DeviceResults, EpochResult, PhaseResult
    from tinysift.pipeline.adapt import AdaptConfig, run_adapt

    seen, docs = [], []
    rows = [{"class": c, "total": 5, "correct": 5, "int8_correct": 4} for c in range(8)]
    rows += [{"class": c, "total": 5, "correct": 5, "int8_correct": 1} for c in (8, 9)]

    def device(_base, label, params, board, train_set, db_use):
        seen.append((label, db_use, train_set))
        return DeviceResults(board=board, clock_hz=1, params={"update": "head"},
                             energy_model={}, started="", counter="cycles", samples=30,
                             test_samples=10, ram_bytes=1000, flash_bytes=2000,
                             per_class={"after": rows},
                             phases={"features": PhaseResult(energy_mj=40.0)},
                             epochs=[EpochResult(1, 0.0, 0.0, 100, 0.0, 1.5),
                                     EpochResult(2, 0.0, 0.0, 300, 0.0, 2.5)])

    monkeypatch.setattr(device_stage, "cached_results", device)
    for replay, size in (("random", 3), ("random", 0), ("none", 3)):
        cfg = AdaptConfig(dataset="digits", new_per_class=12, replay=replay,
                          replay_per_class=size, base_epochs=1, test_per_class=5,
                          out=str(tmp_path / "run"))
        docs.append(run_adapt(cfg, log=lambda *_: None))
        info = json.loads((tmp_path / "run" / "base" / "export" / "export.json").read_text())
        seen[-1] += (info["train_samples"],)
    (l1, db1, (x1, y1), n1), (l2, db2, _, n2), (l3, db3, _, n3) = seen
    assert (l1, db1, n1) == ("random-3-head", "both", 24)
    assert (l2, db2, n2) == (l3, db3, n3) == ("noreplay-head", "ram", 8)
    assert len(y1) == 24 and sorted(set(y1.tolist())) == [8, 9] and x1.dtype == np.int8
    for doc, label, replayed in zip(docs, (l1, l2, l3), (24, 0, 0), strict=True):
        assert (doc["label"], doc["replay_samples"], doc["new_samples"]) == (label, replayed, 24)
        assert doc["device"] == {"acc": {"all": (8 * 4 + 2 * 1) / 50, "old": 0.8, "new": 0.2},
                                 "energy_mj": 4.0 + 40.0 * 30 / 40, "epochs_mj": 4.0,
                                 "features_mj": 40.0, "cycles": 400, "ram_bytes": 1000,
                                 "flash_bytes": 2000, "counter": "cycles"}
        joint = doc["host_joint"]
        assert joint["all"] == pytest.approx((40 * joint["old"] + 10 * joint["new"]) / 50)
    for doc in (docs[0], docs[2]):  # the floor's second run wrote over its first
        saved = json.loads((tmp_path / "run" / f"adapt-{doc['label']}.json").read_text())
        assert saved == json.loads(json.dumps(doc))


def test_base_model_trains_on_the_old_task_only(digits_base):
    """The base model sees the old part of the scenario (the new classes' samples are the
    device's to learn), every sample of it."""
    from tinysift.stages.train import TRAINSET_FILE

    _cfg, scn, parts, base = digits_base
    with np.load(base / TRAINSET_FILE) as z:
        assert np.array_equal(np.sort(z["indices"]), parts["old"])
        assert set(z["y"].tolist()) == set(range(8))


def test_upkeep_points_are_every_policy_buffer_and_mode_plus_the_whole_stream_kept_by_reservoir():
    from tinysift.pipeline.upkeep import UpkeepConfig, points

    cfg = UpkeepConfig(buffers=(5, 10), updates=("head", "bias"))
    pts = points(cfg)
    assert len(pts) == 2 * 2 * 2 + 2 and len(set(pts)) == len(pts)
    assert [p for p in pts if p[1] is None] == [("reservoir", None, "head"),
                                                ("reservoir", None, "bias")]
    assert all(p[1] is None for p in points(UpkeepConfig(buffers=(5,), policies=("coverage",)))
               if p[0] == "reservoir")


def test_a_user_upkeep_tests_the_new_task_only(tmp_path, monkeypatch, write_npz):
    """The user's new images are of old classes: the device's per-class counts cannot tell
    an old test sample from a new one, so `adapt` exports the new task's tests only. The
    upkeep (and the benches) said "shift" alone: a user upkeep built from code exported the
    old task's tests as well, counted as new."""
    import importlib

    from tinysift.data import load_dataset
    from tinysift.pipeline.adapt import test_indices, tested_tasks
    from tinysift.pipeline.upkeep import UpkeepConfig, prepare

    export_stage = importlib.import_module("tinysift.stages.export")
    d = load_dataset("digits")
    x = np.concatenate([d.x_train[d.y_train == c][:40] for c in (3, 7)])
    spec = write_npz("mine.npz", x=x[..., 0], y=np.repeat([3, 7], 40))
    seen = {}

    def stop(*_a, test_indices, **_k):
        seen["tests"] = test_indices
        raise _Stop

    monkeypatch.setattr(export_stage, "export", stop)
    cfg = UpkeepConfig(scenario="user", dataset="digits", new=spec, new_per_class=15,
                       replay="random", replay_per_class=2, base_epochs=1, test_per_class=5,
                       buffers=(4,), vq_per_class=2, out=str(tmp_path / "run"))
    with pytest.raises(_Stop):
        prepare(cfg, log=lambda *_: None)
    scn = scenarios.user("digits", spec, new_per_class=15)
    parts = scn.to_npz(tmp_path / "s.npz")
    assert tested_tasks("user") == tested_tasks("shift") == ("test_new",)
    assert tested_tasks("new-classes") == ("test_old", "test_new")
    assert np.array_equal(seen["tests"], test_indices(scn, parts, 5, 0, tasks=("test_new",)))
    assert len(seen["tests"]) == 10  # 5 of each user class, no old test sample


def test_upkeep_results_take_a_point_only_where_every_done_seed_has_a_current_record(
        tmp_path):
    """A point is in the results once every finished seed has its record, a coverage record
    of older rules (or none named: rules 1) is not current, `seeds` is the seeds done, the
    whole stream's point key is all:UPDATE, and a results file without a rules version is
    described as rules 1."""
    from tinysift.bench.progress import ProgressLog
    from tinysift.bench.upkeep import (
        FIELDS,
        UpkeepBenchConfig,
        _results,
        bench_upkeep,
        current,
        point_key,
    )
    from tinysift.bench.upkeep_report import upkeep_markdown
    from tinysift.errors import BudgetError
    from tinysift.pipeline.upkeep import UpkeepConfig, points

    assert point_key("reservoir", None, "head") == ("all", "all:head")
    assert point_key("coverage", 5, "bias") == ("coverage", "5:bias")
    rec = {"acc": 0.5}
    assert current(rec, "coverage") is None and current(rec, "reservoir") is rec
    assert current({**rec, "coverage_rules": 3}, "coverage") is not None
    with pytest.raises(BudgetError, match="--seeds must be at least 1"):
        bench_upkeep(UpkeepBenchConfig(UpkeepConfig(dataset="digits"), seeds=0),
                     log=lambda *_: None)
    up = UpkeepConfig(dataset="digits", buffers=(5,))
    log = ProgressLog({"bench": "upkeep"}, tmp_path, "upkeep", point="point")
    for policy, per_class, update in points(up):
        method, at = point_key(policy, per_class, update)
        for seed in (0, 1):
            if method == "coverage" and seed == 1:
                continue  # seed 1's coverage run failed
            log.add(seed, method, at, acc=0.5, acc_old=0.4, acc_new=0.6,
                    **{f: 1.0 for f in FIELDS if f not in ("acc_old", "acc_new")},
                    **({"coverage_rules": 3} if method == "coverage" else {}))
    res = _results(UpkeepBenchConfig(up, seeds=3), log, 2, 1.0)
    assert res["seeds"] == 2 and res["seeds_planned"] == 3
    assert set(res["points"]) == {"reservoir:5:head", "all:all:head"}
    old = {**res, "config": {k: v for k, v in res["config"].items() if k != "coverage_rules"}}
    assert "rules 1: a reservoir per codeword" in upkeep_markdown(old)


def _upkeep_bench(tmp_path, **options):
    from tinysift.bench.upkeep import UpkeepBenchConfig
    from tinysift.pipeline.upkeep import UpkeepConfig

    up = {"dataset": "digits", "buffers": (5,), "updates": ("head",), **options}
    return UpkeepBenchConfig(UpkeepConfig(**up), seeds=2, out_dir=tmp_path / "out",
                             progress_dir=tmp_path / "p", work_dir=tmp_path / "w")


def test_upkeep_bench_names_its_files_and_each_seeds_run_folder(tmp_path):
    """The results stem names the scenario and the dataset (a path as a slug), --quick its
    own; each seed runs in its own folder of the work folder with its own seed."""
    from dataclasses import replace

    from tinysift.data import dataset_slug

    cfg = _upkeep_bench(tmp_path)
    assert cfg.stem() == "upkeep_new-classes_digits"
    assert replace(cfg, quick=True).stem() == "upkeep_new-classes_digits_quick"
    npz = _upkeep_bench(tmp_path, scenario="user", new="npz:/d/mine.npz",
                        dataset="npz:/d/base.npz")
    assert npz.stem() == f"upkeep_user_{dataset_slug('npz:/d/base.npz')}" and "/" not in npz.stem()
    one = cfg.seed_config(1)
    assert one.seed == 1 and one.out == str(tmp_path / "w" / "upkeep_new-classes_digits-s1")
    assert cfg.seed_config(0).out != one.out and cfg.upkeep.seed == 0


def test_upkeep_bench_log_key_leaves_out_the_points_but_not_the_replay_rule_or_data(
        tmp_path, monkeypatch):
    """One log for every buffer list, policy list, update list and whole-stream point (a
    record is one point); another for another replay rule or another user file; every
    record is stamped with the firmware's source hash (a changed firmware reruns); a config
    that does not validate, or names a mode or policy twice, is refused before any log."""
    import tinysift.bench.upkeep as upkeep
    from tinysift.device.build import firmware_source_hash
    from tinysift.errors import BudgetError

    logs = []
    monkeypatch.setattr(upkeep, "_run", lambda cfg, plog, say, wall: logs.append(plog))

    def path(**options):
        upkeep.bench_upkeep(_upkeep_bench(tmp_path, **options), log=lambda *_: None)
        return logs[-1].path

    base = path()
    assert logs[-1].stamp == {"firmware": firmware_source_hash()}
    assert path(buffers=(5, 10), updates=("head", "bias"), policies=("coverage",),
                reference_all=False) == base
    assert path(replay_params={"alpha": 0.25}) != base
    # a changed default of the replay rule (defaults are in the key, as bench device's)
    import tinysift.pipeline.adapt as adapt

    replay = _upkeep_bench(tmp_path).upkeep.replay
    with monkeypatch.context() as m:
        m.setitem(adapt.REPLAY_DEFAULTS, replay,
                  {**adapt.REPLAY_DEFAULTS.get(replay, {}), "within": "changed"})
        assert path() != base
    assert path() == base
    npz = tmp_path / "new.npz"
    np.savez(npz, x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 0, 1, 1]))
    mine = path(scenario="user", new=f"npz:{npz}")
    np.savez(npz, x=np.ones((4, 8, 8), np.uint8), y=np.array([0, 0, 1, 1]))
    assert path(scenario="user", new=f"npz:{npz}") != mine
    with pytest.raises(BudgetError, match="--vq-per-class must be in 1..255"):
        path(vq_per_class=0)
    # a mode or policy given twice ran its points twice and counted their rows twice
    with pytest.raises(BudgetError, match=r"^--updates head,head names head more than once"):
        path(updates=("head", "head"))
    with pytest.raises(BudgetError, match=r"^--policies coverage,coverage names coverage "):
        path(policies=("coverage", "coverage"))


def test_upkeep_bench_logs_each_run_resumes_the_rest_and_writes_complete_seeds(
        tmp_path, monkeypatch):
    """Per seed: one setup (only for a seed with runs left), then every point not logged
    under the current rules; coverage's records carry the rules' version, a run's old
    accuracy None (not tested) is logged as 0.0; a failed run leaves its seed out of the
    results and the error says how many seeds they hold; the rerun runs only it and the
    coverage record of older rules. The device run and its setup (a base model, the
    firmware, QEMU: minutes) are replaced by doubles returning rows; the bench around them
    is real (progress log, results files)."""
    import tinysift.bench.upkeep as upkeep
    from tinysift.bench.upkeep import COVERAGE_RULES, FIELDS
    from tinysift.errors import TasksFailed, TinysiftError

    prepared, ran, fail = [], [], {(1, "coverage")}

    def prepare(ucfg, say):
        prepared.append((ucfg.seed, ucfg.out))
        return f"setup {ucfg.seed}"

    def run_point(ucfg, setup, policy, per_class, update):
        assert setup == f"setup {ucfg.seed}"
        ran.append((ucfg.seed, policy, per_class))
        if (ucfg.seed, policy) in fail:
            raise TinysiftError("no valid record from the board (a garbled link)")
        return {"acc": 0.5 + 0.1 * ucfg.seed, "acc_old": None, "acc_new": 0.7,
                "cap": 10 if per_class else 300, **{f: 2.0 for f in FIELDS[2:]}}

    monkeypatch.setattr(upkeep, "prepare", prepare)
    monkeypatch.setattr(upkeep, "run_point", run_point)
    cfg = _upkeep_bench(tmp_path, scenario="shift", dataset="mnist")
    with pytest.raises(TasksFailed, match=r"results files written for the first 1 of 2 "
                                          r"seeds"):
        upkeep.bench_upkeep(cfg, log=lambda *_: None)
    stem = cfg.stem()
    assert prepared == [(s, str(tmp_path / "w" / f"{stem}-s{s}")) for s in (0, 1)]
    assert len(ran) == 6
    results = json.loads((tmp_path / "out" / f"{stem}.json").read_text())
    assert results["seeds"] == 1 and results["points"]["coverage:5:head"]["runs"] == [0.5]
    (log,) = (tmp_path / "p").glob(f"{stem}_*.jsonl")
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    recs = [r for r in recs if r["method"] != "_wall"]
    assert {(r["seed"], r["method"]) for r in recs} == {
        (0, "reservoir"), (0, "coverage"), (0, "all"), (1, "reservoir"), (1, "all")}
    assert all(r.get("coverage_rules") == (COVERAGE_RULES if r["method"] == "coverage"
                                           else None) for r in recs)
    assert all(r["acc_old"] == 0.0 and r["acc_new"] == 0.7 for r in recs)
    # seed 0's coverage run measured under older rules: it runs again with seed 1's
    log.write_text(log.read_text().replace(f'"coverage_rules": {COVERAGE_RULES}',
                                           '"coverage_rules": 2'))
    fail.clear()
    prepared.clear()
    ran.clear()
    res = upkeep.bench_upkeep(cfg, log=lambda *_: None)
    assert ran == [(0, "coverage", 5), (1, "coverage", 5)]
    assert [p[0] for p in prepared] == [0, 1]
    assert res["seeds"] == 2 and res["points"]["coverage:5:head"]["runs"] == [0.5, 0.6]
    assert res["points"]["coverage:5:head"]["new_runs"] == [0.7, 0.7]
    # every device number is logged and averaged: the energy too
    assert all(res["points"][p]["energy_mj"] == 2.0 for p in res["points"])
    assert res["config"]["coverage_rules"] == COVERAGE_RULES  # the rules it ran under
    assert json.loads((tmp_path / "out" / f"{stem}.json").read_text())["seeds"] == 2
    ran.clear()
    prepared.clear()
    upkeep.bench_upkeep(cfg, log=lambda *_: None)
    assert ran == [] and prepared == []  # all logged: no setup either


def _upkeep_device_doubles(monkeypatch, fail: set[tuple[int, str]]) -> list[tuple]:
    """bench upkeep's seed setup and device run replaced by doubles (a base model, the
    firmware and QEMU take minutes): every run returns the same row, a (seed, policy) in
    ``fail`` raises a garbled link; returns the (seed, policy, per_class) of each run."""
    import tinysift.bench.upkeep as upkeep
    from tinysift.bench.upkeep import FIELDS
    from tinysift.errors import TinysiftError

    ran: list[tuple] = []

    def run_point(ucfg, setup, policy, per_class, update):
        ran.append((ucfg.seed, policy, per_class))
        if (ucfg.seed, policy) in fail:
            raise TinysiftError("no valid record from the board (a garbled link)")
        return {"acc": 0.5, "acc_old": 0.4, "acc_new": 0.6, "cap": 10 if per_class else 300,
                **{f: 2.0 for f in FIELDS[2:]}}

    monkeypatch.setattr(upkeep, "prepare", lambda ucfg, say: f"setup {ucfg.seed}")
    monkeypatch.setattr(upkeep, "run_point", run_point)
    return ran


def test_upkeep_bench_runs_the_later_seeds_after_a_failed_run_of_an_earlier_one(
        tmp_path, monkeypatch):
    """A failed device run does not end the bench (the module's contract, as bench device):
    seed 0's failed coverage run leaves seed 1 to run all its points and be logged, so a
    rerun has only the failed run left; the results hold the seeds before the first failed
    run, here none, and the error says no results file was written."""
    import tinysift.bench.upkeep as upkeep
    from tinysift.errors import TasksFailed

    fail = {(0, "coverage")}
    ran = _upkeep_device_doubles(monkeypatch, fail)
    cfg = _upkeep_bench(tmp_path)
    with pytest.raises(TasksFailed, match="no results files written"):
        upkeep.bench_upkeep(cfg, log=lambda *_: None)
    assert len(ran) == 6 and set(ran) == {(s, p, n) for s in (0, 1)
                                          for p, n in (("reservoir", 5), ("coverage", 5),
                                                       ("reservoir", None))}
    assert not (tmp_path / "out" / f"{cfg.stem()}.json").exists()
    fail.clear()
    ran.clear()
    res = upkeep.bench_upkeep(cfg, log=lambda *_: None)
    assert ran == [(0, "coverage", 5)] and res["seeds"] == 2


def test_an_upkeep_record_without_one_of_the_device_numbers_runs_again(tmp_path, monkeypatch):
    """A progress record missing one of the numbers the results average (a log written
    before the energy was logged) is not a finished point: the rerun measures it again,
    and only it, instead of averaging a missing energy into the results."""
    import tinysift.bench.upkeep as upkeep

    ran = _upkeep_device_doubles(monkeypatch, fail=set())
    cfg = _upkeep_bench(tmp_path)
    cfg.seeds = 1
    upkeep.bench_upkeep(cfg, log=lambda *_: None)
    (log,) = (tmp_path / "p").glob(f"{cfg.stem()}_*.jsonl")
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    for rec in recs:
        if rec["method"] == "coverage":
            del rec["energy_mj"]
    log.write_text("".join(json.dumps(r) + "\n" for r in recs))
    ran.clear()
    res = upkeep.bench_upkeep(cfg, log=lambda *_: None)
    assert ran == [(0, "coverage", 5)]
    assert res["points"]["coverage:5:head"]["energy_mj"] == 2.0


def test_upkeep_results_name_the_points_planned_and_the_whole_stream_row(tmp_path):
    """The results file records the buffers, update modes and policies the bench ran (a
    reader of the json, and the report's one table per update mode, go by them), the whole
    stream's point as per_class None (the table's "whole stream" row, not a buffer of 0),
    --quick in its configuration and the bench's wall time."""
    from tinysift.bench.progress import ProgressLog
    from tinysift.bench.upkeep import FIELDS, UpkeepBenchConfig, _results, point_key
    from tinysift.bench.upkeep_report import upkeep_markdown
    from tinysift.pipeline.upkeep import UpkeepConfig, points

    up = UpkeepConfig(dataset="digits", buffers=(5, 10), updates=("head", "bias"),
                      policies=("coverage", "reservoir"))
    log = ProgressLog({"bench": "upkeep"}, tmp_path, "upkeep", point="point")
    measured = {f: 1.0 for f in FIELDS if f not in ("acc_old", "acc_new")}
    for policy, per_class, update in points(up):
        method, at = point_key(policy, per_class, update)
        log.add(0, method, at, acc=0.5, acc_old=0.4, acc_new=0.6, **measured,
                **({"coverage_rules": 3} if method == "coverage" else {}))
    res = _results(UpkeepBenchConfig(up, seeds=1, quick=True), log, 1, 12.5)
    assert res["buffers"] == [5, 10] and res["updates"] == ["head", "bias"]
    assert res["policies"] == ["coverage", "reservoir"]
    assert res["config"]["quick"] is True and res["wall_seconds"] == 12.5
    assert res["points"]["all:all:bias"]["per_class"] is None
    assert res["points"]["coverage:10:bias"]["per_class"] == 10
    text = upkeep_markdown(res)
    assert "bias" in text and text.count("| whole stream |") == 2
    # a coverage record of older rules (none named: rules 1) is no result of these rules
    log.add(1, "coverage", "5:head", acc=0.9, acc_old=0.4, acc_new=0.6, **measured)
    log.add(1, "reservoir", "5:head", acc=0.5, acc_old=0.4, acc_new=0.6, **measured)
    two = _results(UpkeepBenchConfig(up, seeds=2), log, 2, 1.0)["points"]
    assert "reservoir:5:head" in two and "coverage:5:head" not in two


def test_upkeep_bench_refuses_to_replace_another_configurations_results(tmp_path,
                                                                         monkeypatch):
    """Results written by one replay rule are not replaced without a word by a bench of
    another (another progress log): it is refused before any device run, naming the fix;
    a rerun of the first configuration rewrites its own results."""
    import tinysift.bench.upkeep as upkeep
    from tinysift.errors import BudgetError

    ran = _upkeep_device_doubles(monkeypatch, fail=set())
    cfg = _upkeep_bench(tmp_path)
    cfg.seeds = 1
    upkeep.bench_upkeep(cfg, log=lambda *_: None)
    other = _upkeep_bench(tmp_path, replay_params={"alpha": 0.25})
    other.seeds = 1
    ran.clear()
    with pytest.raises(BudgetError, match=r"holds the results of another configuration of "
                                          r"this bench.*pass another --out-dir"):
        upkeep.bench_upkeep(other, log=lambda *_: None)
    assert ran == []
    assert upkeep.bench_upkeep(cfg, log=lambda *_: None)["seeds"] == 1


def test_upkeep_bench_of_fewer_seeds_than_its_log_says_the_later_ones_are_unreported(
        tmp_path, monkeypatch, capsys):
    """A rerun with --seeds 1 after two seeds rewrites the results with seed 0 only: it says
    that the log holds seed 1 too and how to report it again (--seeds 2)."""
    import tinysift.bench.upkeep as upkeep

    _upkeep_device_doubles(monkeypatch, fail=set())
    cfg = _upkeep_bench(tmp_path)
    upkeep.bench_upkeep(cfg, log=lambda *_: None)
    capsys.readouterr()
    cfg.seeds = 1
    upkeep.bench_upkeep(cfg, log=lambda *_: None)
    err = capsys.readouterr().err
    assert "also holds trainings of seed 1" in err and "--seeds 2 reports those too" in err


def test_upkeep_bench_log_is_another_for_another_replay_method(tmp_path, monkeypatch):
    """The replay method chooses the exported replay set every point trains on: another
    --replay is another progress log, even where both methods' parameters are alike."""
    import tinysift.bench.upkeep as upkeep

    logs = []
    monkeypatch.setattr(upkeep, "_run", lambda cfg, plog, say, wall: logs.append(plog.path))
    for replay in ("random", "herding"):
        upkeep.bench_upkeep(_upkeep_bench(tmp_path, replay=replay, replay_params={}),
                            log=lambda *_: None)
    assert logs[0] != logs[1]


def test_no_replay_is_chosen_or_counted_when_none_is_asked():
    """replay "none", or 0 per class: the replay set is empty (int64 indices) without
    fitting a method (no base model is read), and no replay size is held against the old
    classes' training samples (a floor of any --replay-per-class runs)."""
    from pathlib import Path

    from tinysift.pipeline.adapt import AdaptConfig, check_replay_count, choose_replay

    scn = scenarios.new_classes("digits", old_classes=range(8), new_per_class=5)
    for replay, size in (("none", 10**6), ("random", 0)):
        cfg = AdaptConfig(dataset="digits", replay=replay, replay_per_class=size)
        check_replay_count(cfg, scn)
        local = choose_replay(cfg, scn, Path("no base model here"))
        assert local.dtype == np.int64 and len(local) == 0, replay


def test_an_upkeep_point_is_its_runs_buffer_and_the_devices_own_numbers(monkeypatch):
    """run_point asks the device for ``per_class`` x the stream's classes (the whole stream
    for None, as policy ``all``), class-balanced in the point's update mode, the stream drawn
    with the run's device seed (seed + 1, as its training); its row is the device's numbers:
    int8 accuracy of every / the old / the new classes, the @db record's counts (what it
    kept, not the cap asked) and cycles, each class's kept samples, the epochs' cycles, and
    the training bill (docs/energy.md: the epochs' energy, plus with update=head the trained
    samples' share of the features phase). The device (QEMU, a firmware build: minutes) is a
    double returning records written by hand; the scenario is the real digits one."""
    import dataclasses

    import tinysift.stages.stream as stream_stage
    from tinysift.device.results import DeviceResults, EpochResult, PhaseResult
    from tinysift.device.stream import StreamParams, StreamReport
    from tinysift.pipeline.upkeep import UpkeepConfig, UpkeepSetup, run_point

    scn = scenarios.new_classes("digits", old_classes=range(8), new_per_class=6)
    rows = [{"class": c, "total": 10, "correct": 10, "int8_correct": 9} for c in range(8)]
    rows += [{"class": c, "total": 10, "correct": 10, "int8_correct": 2} for c in (8, 9)]
    res = DeviceResults(board="b", clock_hz=1, params={}, energy_model={}, started="",
                        samples=12, test_samples=4, per_class={"after": rows},
                        phases={"features": PhaseResult(energy_mj=40.0)},
                        epochs=[EpochResult(1, 0.0, 0.0, 100, 0.0, 1.5),
                                EpochResult(2, 0.0, 0.0, 300, 0.0, 2.5)])
    rep = StreamReport(policy="coverage",
                       db={"seen": 12, "loaded": 3, "cap": 4, "codewords": 3, "covered": 2,
                           "evicted": 8, "cycles": 5000},
                       classes=[{"class": 8, "seen": 6, "kept": 2},
                                {"class": 9, "seen": 6, "kept": 1}])
    calls = []

    def device(_base, _board, params, samples, stream, label):
        calls.append((params, stream, label))
        return dataclasses.replace(res, params={"update": params.update}), rep

    monkeypatch.setattr(stream_stage, "run_stream_on_device", device)
    setup = UpkeepSetup(scn, None, None, np.zeros((12, 8, 8, 1), np.int8), scn.y_new,
                        np.arange(12), 2, np.zeros(0, np.int64), {})
    cfg = UpkeepConfig(dataset="digits", seed=4, balance=False)
    row = run_point(cfg, setup, "coverage", 2, "bias")
    assert row == {"policy": "coverage", "per_class": 2, "cap": 4, "update": "bias",
                   "acc": (8 * 9 + 2 * 2) / 100, "acc_old": 0.9, "acc_new": 0.2,
                   "seen": 12, "kept": 3, "codewords": 3, "covered": 2, "evicted": 8,
                   "stream_cycles": 5000, "kept_per_class": [2, 1], "train_cycles": 400,
                   "energy_mj": 4.0}
    whole = run_point(cfg, setup, "reservoir", None, "head")
    assert (whole["policy"], whole["per_class"], whole["cap"]) == ("all", None, 12)
    assert whole["energy_mj"] == 4.0 + 40.0 * 12 / 16  # 12 of the 16 samples trained
    (params, stream, label), (whole_params, whole_stream, whole_label) = calls
    assert stream == StreamParams(12, 4, "coverage", 5) and whole_stream.cap == 12
    assert (params.update, params.balance, params.seed) == ("bias", True, 5)
    assert whole_params.update == "head" and whole_params.balance and label != whole_label


def test_upkeep_points_leave_out_the_whole_stream_when_not_asked():
    """reference_all=False: the policies x buffers x modes only, no whole-stream point."""
    from tinysift.pipeline.upkeep import UpkeepConfig, points

    pts = points(UpkeepConfig(buffers=(5,), updates=("head", "bias"), reference_all=False))
    assert sorted(pts) == sorted((p, 5, u) for p in ("reservoir", "coverage")
                                 for u in ("head", "bias"))


def test_an_upkeep_config_checks_its_adaptation_settings_too():
    """UpkeepConfig.validate holds the adaptation's own settings as AdaptConfig does (its
    scenario, ranges, replay method), before the upkeep's: steps 0 is refused; and its
    update modes (a bench's --updates), before any base model."""
    from tinysift.errors import BudgetError
    from tinysift.pipeline.upkeep import UpkeepConfig

    with pytest.raises(BudgetError, match="--steps must be >= 1, got 0"):
        UpkeepConfig(dataset="digits", steps=0).validate()
    # its own update modes (AdaptConfig's single `update` is unused here)
    with pytest.raises(BudgetError, match="--updates 'head,all': 'all' is not an update mode"):
        UpkeepConfig(dataset="digits", updates=("head", "all")).validate()
