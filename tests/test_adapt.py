"""On-device adaptation: scenarios, replay selection, refusals (digits; the device runs are
in tests/test_bench.py and tests/test_demo.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tinysift.data import scenarios
from tinysift.errors import DatasetError


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tinysift.cli.app", *args],
                          capture_output=True, text=True, timeout=900, cwd=cwd)


def test_new_classes_splits_are_disjoint_and_sized():
    scn = scenarios.new_classes("digits", old_classes=range(8), new_per_class=20, seed=3)
    assert set(np.unique(scn.y_old)) == set(range(8))
    assert set(np.unique(scn.y_new)) == {8, 9} and len(scn.y_new) == 40
    assert set(np.unique(scn.y_test_new)) == {8, 9}
    assert scn.num_classes == 10 and scn.input_shape == (8, 8, 1)
    again = scenarios.new_classes("digits", old_classes=range(8), new_per_class=20, seed=3)
    assert np.array_equal(again.x_new, scn.x_new)  # seeded


def test_a_scenario_says_how_many_samples_the_device_really_gets():
    """--new-per-class 100000 was cut to what digits holds (139 and 144) while the report
    said "from 100000 samples each"."""
    scn = scenarios.new_classes("digits", old_classes=range(8), new_per_class=100000)
    counts = np.unique(scn.y_new, return_counts=True)[1]
    assert f"from {counts[0]}, {counts[1]} samples (all the data holds; 100000 each asked)" \
        in scn.description
    assert "from 20 samples each" in scenarios.new_classes("digits", range(8), 20).description


def test_a_user_class_of_one_sample_stays_for_training(write_npz):
    """Without x_test, each class of the user's npz gave at least one sample to the test
    split: a class of one gave its only one, and the device had nothing of it to learn."""
    from tinysift.data import load_dataset

    d = load_dataset("digits")
    x = np.concatenate([d.x_train[d.y_train == 8][:10], d.x_train[d.y_train == 9][:1]])[..., 0]
    y = np.array([8] * 10 + [9])
    scn = scenarios.user("digits", write_npz("one.npz", x=x, y=y))
    assert 9 in scn.y_new and 9 not in scn.y_test_new and (scn.y_test_new == 8).sum() == 2
    with pytest.raises(DatasetError, match="every class has a single sample"):
        scenarios.user("digits", write_npz("ones.npz", x=x[9:], y=y[9:]))


def test_shift_upsamples_digits_into_mnist_layout():
    img = np.zeros((1, 8, 8, 1), np.uint8)
    img[0, 2:6, 3:5, 0] = 255
    up = scenarios.upsample_digits(img)
    assert up.shape == (1, 28, 28, 1) and up.max() == 255
    ys, xs = np.nonzero(up[0, :, :, 0])
    assert 4 <= ys.min() and ys.max() < 24 and 4 <= xs.min() and xs.max() < 24  # 20x20 box


def test_shift_keeps_the_digits_grey_levels():
    """The shift's target images come from load_dataset("digits") (0..255): they were
    scaled again as if on 0..16, which clipped every inked pixel to 255 (black and white)."""
    from tinysift.data import load_dataset

    digits = load_dataset("digits")
    up = scenarios.upsample_digits(digits.x_train[:50])
    ink = up[up > 0]
    assert np.mean(ink == 255) < 0.1 and len(np.unique(ink)) > 100
    # a uniform 8x8 image keeps its level inside the box
    flat = scenarios.upsample_digits(np.full((1, 8, 8, 1), 128, np.uint8))
    assert flat[0, 14, 14, 0] == 128


def test_user_data_of_another_size_is_resized_when_the_new_spec_asks(write_npz, tmp_path):
    """New data of another image size was refused with the fix left to the user: the
    refusal now gives the spec that resizes it as it is read (``@8x8x1``, the base
    model's input), and with that suffix the npz's and a folder's images (colour, two
    sizes) become the base model's gray 8x8 input."""
    from PIL import Image

    rng = np.random.default_rng(0)
    big = write_npz("big.npz", x=rng.integers(0, 255, (40, 28, 28), np.uint8),
                    y=np.repeat(np.arange(4), 10))
    with pytest.raises(DatasetError, match=r"let tinysift resize it as it reads it: --new "
                                           r"npz:.*big\.npz@8x8x1"):
        scenarios.user("digits", big)
    scn = scenarios.user("digits", big + "@8x8x1")
    assert scn.x_new.shape[1:] == (8, 8, 1) and scn.x_test_new.shape[1:] == (8, 8, 1)
    for i in range(6):
        (tmp_path / "sevens" / "7").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20 + i, 16, 3), np.uint8)).save(
            tmp_path / "sevens" / "7" / f"{i}.png")
    scn = scenarios.user("digits", f"folder:{tmp_path}/sevens@8x8x1")
    assert scn.x_new.shape[1:] == (8, 8, 1) and set(scn.y_new.tolist()) == {7}


def test_user_data_one_hot_over_the_models_classes_may_hold_one_class(write_npz):
    """New data one-hot over the base model's ten classes (Keras' to_categorical(y, 10))
    with samples of class 7 only is read as class 7, as its integer labels are (a dataset's
    one-hot column of no sample is an empty class; the new data's is no refusal)."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 255, (20, 8, 8), np.uint8)
    hot = write_npz("hot.npz", x=x, y=np.eye(10, dtype=np.float32)[np.full(20, 7)])
    scn = scenarios.user("digits", hot)
    assert set(scn.y_new.tolist()) == {7} and set(scn.y_test_new.tolist()) == {7}


def test_user_data_with_wrong_shape_or_labels_is_refused(write_npz, tmp_path):
    rng = np.random.default_rng(0)
    bad_shape = write_npz("shape.npz", x=rng.integers(0, 255, (40, 28, 28), np.uint8),
                          y=np.repeat(np.arange(4), 10))
    with pytest.raises(DatasetError, match="28x28x1 but the base model's input is 8x8x1"):
        scenarios.user("digits", bad_shape)
    r = cli("adapt", "--scenario", "user", "--dataset", "digits", "--new", bad_shape,
            "--out", str(tmp_path / "a"))
    assert r.returncode == 2 and "resize the new data" in " ".join(r.stderr.split())
    bad_labels = write_npz("labels.npz", x=rng.integers(0, 16, (40, 8, 8), np.uint8),
                           y=np.repeat([1, 12], 20))
    with pytest.raises(DatasetError, match=r"labels \[12\] are not classes of the model"):
        scenarios.user("digits", bad_labels)


def test_bad_options_are_one_line_exit_2(tmp_path):
    for args, words in [
        (("adapt", "--scenario", "bogus"), "unknown scenario 'bogus'"),
        (("adapt", "--update", "all"),
         "--update must be one of head, bias, last-block, got 'all'"),
        (("adapt", "--old-classes", "a-b"), "--old-classes takes numbers and ranges"),
        # one old class: refused after the scenario was rewritten and the base trained
        (("adapt", "--dataset", "digits", "--old-classes", "3,3"),
         "--old-classes names 1 distinct class (3); the base model classifies"),
        (("adapt", "--scenario", "user", "--dataset", "digits"), "needs --new"),
        # --old-classes was silently ignored by the scenarios that train on every class
        (("adapt", "--scenario", "shift", "--dataset", "mnist", "--old-classes", "0-3"),
         "--old-classes applies to the new-classes scenario only"),
        (("adapt", "--scenario", "shift", "--dataset", "digits"),
         "10 classes: pass --dataset mnist"),
        # the device's ranges, before the base model is trained (was after 33 s on Digits)
        (("adapt", "--dataset", "digits", "--lr", "0"), "cannot train with lr 0"),
        # the board and the replay method too (were refused after the base model: minutes
        # on Fashion-MNIST; a real board, which adapt cannot reach, at the build)
        (("adapt", "--dataset", "digits", "--board", "nano33"), "unknown board 'nano33'"),
        (("adapt", "--dataset", "digits", "--board", "nano33ble"),
         "--board nano33ble is a real board; this command runs on an emulated board"),
        (("adapt", "--dataset", "digits", "--replay", "vqq"), "unknown replay method 'vqq'"),
        # more replay than the old task holds: refused after the base model, in the
        # selection's words ("keep count must be in [1, 1154]")
        (("adapt", "--dataset", "digits", "--replay-per-class", "100000"),
         "replay_per_class 100000 x 8 old classes is 800000 replay samples, but old class 0 "
         "has 142 training samples: give at most 142 (--replay-per-class)"),
        # within the old task's total (1154 // 8 = 144) but above its smallest class: ran
        # with 142 of classes 0 and 2 and 144 of others
        (("adapt", "--dataset", "digits", "--replay-per-class", "143"),
         "but old class 0 has 142 training samples: give at most 142"),
        (("bench", "device", "--dataset", "digits", "--methods", "random,vqq", "--out-dir",
          str(tmp_path / "x")), "unknown replay method 'vqq'"),
        (("bench", "device", "--dataset", "digits", "--board", "pico", "--out-dir",
          str(tmp_path / "x")), "--board pico is a real board"),
        (("demo", "--quick", "--board", "nucleo_f411re"), "--board nucleo_f411re is a real"),
    ]:
        r = cli(*args, *(() if args[0] == "bench" else ("--out", str(tmp_path / "x"))),
                cwd=tmp_path)  # a bench's run folders are under ./runs
        assert r.returncode == 2, (args, r.stderr)
        assert words in " ".join(r.stderr.split()), (args, r.stderr)
        assert "Traceback" not in r.stderr
        assert not (tmp_path / "x" / "base").exists(), args  # refused before any training
        assert not (tmp_path / "runs").exists(), args


def test_empty_old_classes_is_refused_not_the_default(tmp_path, capsys):
    """`--old-classes ''` (an unset shell variable) ran the default 0-7 without a word."""
    from tinysift.cli.app import main

    assert main(["adapt", "--dataset", "digits", "--old-classes", "",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--old-classes takes numbers and ranges like 0-7" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_bench_names_its_own_updates_option_and_the_bad_mode(tmp_path, capsys,
                                                               monkeypatch):
    """`bench device --updates head,all` said "--update must be one of ...": an option the
    bench does not have, and not which mode was wrong (bench upkeep did not say it either)."""
    from tinysift.cli.app import main

    monkeypatch.chdir(tmp_path)  # a bench's run folders are under ./runs
    for bench in ("device", "upkeep"):
        assert main(["bench", bench, "--updates", "head,all", "--out-dir",
                     str(tmp_path / bench)]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "--updates 'head,all': 'all' is not an update mode; give comma-separated " \
               "modes among head, bias, last-block" in err, (bench, err)
    assert not (tmp_path / "runs").exists()  # refused before any base model
    # of several unknown modes, the first is named
    from tinysift.errors import BudgetError
    from tinysift.pipeline.adapt import check_updates

    with pytest.raises(BudgetError, match=r"--updates 'head,all,every': 'all' is not"):
        check_updates(("head", "all", "every"))


def test_replay_that_does_not_fit_is_refused_before_building(tmp_path, monkeypatch):
    """nano33ble (256 KB RAM): 200 Fashion-MNIST-size new samples in RAM with last-block's
    buffers does not fit; the refusal names the numbers and a replay size (or the mode)
    that does, and nothing is built. The size named is the largest that fits: on a board
    with RAM for 3 (or 1) per class but not one more, 3 (or 1); update=head's advice names
    no other mode."""
    from tinysift.errors import FitError
    from tinysift.pipeline.adapt import AdaptConfig, check_adaptation_fits, prepare_base

    cfg = AdaptConfig(dataset="digits", new_per_class=30, replay="random",
                      replay_per_class=1000, update="last-block", board="nano33ble",
                      base_epochs=2, out=str(tmp_path / "run"))
    from dataclasses import replace

    # (1000 per class is more than digits' old classes hold: prepare_base refuses it)
    _, parts, _, base = prepare_base(replace(cfg, replay_per_class=5), log=lambda *_: None)
    check_adaptation_fits(cfg, base, 8 * 5, 60, 300, 8)  # a small set fits
    with pytest.raises(FitError, match=r"nano33ble: a replay set of 8000 samples plus 60 new "
                                       r"samples with update=last-block needs .* RAM, "
                                       r"board has .* \(over by .*\); "
                                       r"use --replay-per-class \d+ or fewer"):
        check_adaptation_fits(cfg, base, 8 * 1000, 60, 300, 8)
    with pytest.raises(FitError, match="fewer --new-per-class samples or update=head"):
        check_adaptation_fits(cfg, base, 8 * 5, 20000, 300, 8)
    from tinysift.boards import CONFIG_ENV, DEFAULT_BOARD, save_user_board
    from tinysift.stages.export import memory_plan_for

    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "config"))
    head = replace(cfg, replay_per_class=2, update="head", board=DEFAULT_BOARD)

    def ram(per_class: int) -> int:
        return memory_plan_for(base, DEFAULT_BOARD, 300, train_samples=8 * per_class,
                               db_capacity=60, backbone_training=False)["ram_total"]

    ram_of = {k: ram(k) for k in (1, 2, 3, 4)}  # each size's sample order takes RAM
    for most in (3, 1):  # asked one more per class than fits
        save_user_board(DEFAULT_BOARD, {"ram_bytes": (ram_of[most] + ram_of[most + 1]) // 2})
        with pytest.raises(FitError, match=f"; use --replay-per-class {most} or fewer, or a "):
            check_adaptation_fits(replace(head, replay_per_class=most + 1), base,
                                  8 * (most + 1), 60, 300, 8)
    with pytest.raises(FitError, match="fewer --new-per-class samples, or a board"):
        check_adaptation_fits(head, base, 8 * 2, 20000, 300, 8)
    assert not (tmp_path / "run" / "base" / "device").exists()


def test_an_adapt_folder_given_as_a_run_names_its_base_run(tmp_path, capsys):
    """`device run --run runs/adapt` (the folder `tinysift adapt --out` named) said "has no
    manifest.json; create it with `tinysift train`": its run folder is runs/adapt/base."""
    from tinysift.cli.app import main
    from tinysift.pipeline.adapt import AdaptConfig, prepare_base

    out = tmp_path / "my adapt"
    prepare_base(AdaptConfig(dataset="digits", new_per_class=10, replay="random",
                             replay_per_class=2, base_epochs=1, out=str(out)),
                 log=lambda *_: None)
    for args in (["device", "run", "--run", str(out)], ["quantize", "--run", str(out)]):
        assert main(args) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"{out} is the folder of `tinysift adapt`" in err, err
        assert f"pass --run {out / 'base'}" in err and "tinysift train" not in err
    assert not (out / "manifest.json").exists()


def test_the_base_models_line_says_the_ceiling_of_classes_it_has_not_learned(write_npz,
                                                                            tmp_path):
    """The base's accuracy is on the whole test split, whose new classes it has not learned:
    `demo --quick`'s 0.79 read as a weak base where 0.80 was its ceiling. The line says what
    share of the split those classes are and the ceiling; a base of every class says none."""
    from tinysift.pipeline.adapt import AdaptConfig, prepare_base

    cfg = AdaptConfig(dataset="digits", old_classes=tuple(range(8)), base_epochs=1,
                      out=str(tmp_path / "run"))
    said = []
    prepare_base(cfg, log=said.append)
    with np.load(tmp_path / "run" / "scenario.npz") as z:
        learned = np.isin(z["y_test"], np.arange(8)).mean()
    (line,) = [s for s in said if s.startswith("base model on the old task")]
    assert (f"on the whole test split, {1 - learned:.0%} of it of classes the base has not "
            f"learned: at most {learned:.4f} (") in line, line
    said.clear()
    path = write_npz("new.npz", x=np.full((40, 8, 8), 1, np.uint8), y=np.repeat([8, 9], 20))
    prepare_base(AdaptConfig(scenario="user", dataset="digits", new=path, new_per_class=10,
                             base_epochs=1, out=str(tmp_path / "user")), log=said.append)
    (line,) = [s for s in said if s.startswith("base model on the old task")]
    assert "at most" not in line and "on the whole test split (" in line, line


def test_user_data_changed_in_place_is_written_again(write_npz, tmp_path):
    """The scenario cache is keyed on its content: a --new file rewritten in place replaces
    RUN/scenario.npz (the base, replay and test set came from the old file, the streamed
    samples from the new one); the folder's earlier reports, of the base trained again now,
    move to earlier-KEY (they stood beside the new ones as if of them)."""
    from tinysift.pipeline.adapt import AdaptConfig, prepare_base

    labels = np.repeat([8, 9], 20)
    path = write_npz("new.npz", x=np.full((40, 8, 8), 1, np.uint8), y=labels)
    cfg = AdaptConfig(scenario="user", dataset="digits", new=path, new_per_class=10,
                      base_epochs=1, out=str(tmp_path / "run"))
    prepare_base(cfg, log=lambda *_: None)
    run = tmp_path / "run"
    (run / "adapt-vq-20-head.json").write_text('{"of": "the first file"}')
    write_npz("new.npz", x=np.full((40, 8, 8), 7, np.uint8), y=labels)
    said = []
    scn, parts, _, _ = prepare_base(cfg, log=said.append)
    assert scn.x_new.max() == 7
    with np.load(run / "scenario.npz") as z:
        assert z["x"][parts["new"]].min() == 7 and z["x_test"][parts["test_new"]].min() == 7
    # the first file's report described the base trained again now: set aside, and said
    [aside] = run.glob("earlier-*")
    assert [p.name for p in aside.iterdir()] == ["adapt-vq-20-head.json"]
    assert not list(run.glob("adapt-*.json"))
    assert any("another scenario" in line and str(aside) in line for line in said)
    said.clear()
    prepare_base(cfg, log=said.append)  # the same scenario again: nothing moves
    assert not any("another scenario" in line for line in said)
    # back to the first file and forth again: the first file's second report is set aside
    # beside its first, not over it
    write_npz("new.npz", x=np.full((40, 8, 8), 1, np.uint8), y=labels)
    (run / "adapt-vq-20-head.json").write_text('{"of": "the second file"}')
    prepare_base(cfg, log=said.append)
    (run / "adapt-vq-20-head.json").write_text('{"of": "the first file, again"}')
    write_npz("new.npz", x=np.full((40, 8, 8), 7, np.uint8), y=labels)
    prepare_base(cfg, log=said.append)
    kept = {p.parent.name: p.read_text() for p in run.glob("earlier-*/*.json")}
    assert len(kept) == 3 and kept[aside.name] == '{"of": "the first file"}'
    assert kept[f"{aside.name}-2"] == '{"of": "the first file, again"}'
    assert '{"of": "the second file"}' in kept.values()


def test_training_energy_is_one_bill_for_every_mode():
    """Every epoch plus the training samples' share of the features phase with update=head;
    in the other modes that phase holds only the test set's pass (fill_caches), none of it
    training."""
    from tinysift.device.results import DeviceResults, EpochResult, PhaseResult

    def result(update):
        return DeviceResults(board="b", clock_hz=1, params={"update": update},
                             energy_model={}, started="", samples=300, test_samples=100,
                             phases={"features": PhaseResult(energy_mj=40.0)},
                             epochs=[EpochResult(1, 0.0, 0.0, 1, 0.0, 5.0)] * 2)

    assert result("head").training_energy_mj() == 10.0 + 40.0 * 300 / 400
    assert result("head").training_energy_mj(100) == 10.0 + 40.0 * 100 / 200
    assert result("last-block").training_energy_mj() == 10.0
    assert result("bias").training_energy_mj() == 10.0
    # update None is the firmware's default, head (the pipeline's TrainParams leave it unset)
    assert result(None).training_energy_mj() == result("head").training_energy_mj()


def test_demo_seed_reaches_the_device_bench():
    """`tinysift demo --seed 5` runs seed 5 (it ran seed 0 and said 5)."""
    from tinysift.bench.adapt_demo import AdaptDemoConfig

    bench = AdaptDemoConfig().override(seed=5).bench_config()
    assert bench.seed_values() == [5]
    assert bench.adapt_config(5).seed == 5 and bench.adapt_config(5).out.endswith("-s5")


def test_largest_replay_that_fits_is_exact():
    from tinysift.export.memory import largest_from_zero

    for most in (0, 1, 2, 3, 37, 200, 1000):
        assert largest_from_zero(lambda size, most=most: size <= most, 1 << 16) == most
        assert largest_from_zero(lambda size, most=most: size <= most, most) == most
    assert largest_from_zero(lambda size: False, 10) is None


def test_untested_old_task_is_not_reported_as_zero(tmp_path):
    """shift: the device tests the new domain only; the logs' 0.0 for the old task is a
    placeholder, so the results carry None and no old-vs-joint difference."""
    from tinysift.bench.device import DeviceBenchConfig, _results
    from tinysift.bench.progress import ProgressLog

    cfg = DeviceBenchConfig(scenario="shift", dataset="mnist", seeds=2, methods=("random",),
                            sizes=(10,))
    plog = ProgressLog({"t": 1}, tmp_path, "shift", point="point")
    for seed in (0, 1):
        plog.add(seed, "joint", "host", acc=0.7, acc_old=0.0, acc_new=0.7)
        for method, size in (("none", 0), ("random", 10)):
            plog.add(seed, method, f"{size}:head", acc=0.8, acc_old=0.0, acc_new=0.8,
                     energy_mj=1.0, cycles=1.0, ram_plan=1.0)
    res = _results(cfg, plog, [0, 1], {"ram_total": 1}, {"head": 1}, 1.0)
    p = res["points"]["random:10:head"]
    assert p["acc_old"] is None and "old_vs_joint" not in p and "vs_joint" in p
    assert "acc_old" not in res["joint"] and res["seed_values"] == [0, 1]


def test_device_results_take_the_invocations_ram_plan_and_only_whole_points(tmp_path):
    """The device bench's results: each row's RAM is this invocation's plan for its update
    mode (not the mean the rows logged, from firmwares of other --sizes); a point is given
    only where every done seed has its record; the no-replay floor gets no paired
    difference to a replay method (it is the floor, not a method)."""
    from tinysift.bench.device import DeviceBenchConfig, _results
    from tinysift.bench.progress import ProgressLog

    cfg = DeviceBenchConfig(dataset="digits", seeds=2, methods=("random", "herding"),
                            sizes=(10,))
    plog = ProgressLog({"t": 2}, tmp_path, "ram", point="point")
    for seed in (0, 1):
        plog.add(seed, "joint", "host", acc=0.9, acc_old=0.9, acc_new=0.9)
        for method in ("none", "random"):
            size = 0 if method == "none" else 10
            plog.add(seed, method, f"{size}:head", acc=0.5 + seed / 10, acc_old=0.5,
                     acc_new=0.5, energy_mj=1.0, cycles=1.0, ram_plan=5_000.0)
    plog.add(0, "herding", "10:head", acc=0.7, acc_old=0.7, acc_new=0.7, energy_mj=1.0,
             cycles=1.0, ram_plan=5_000.0)  # seed 1 not run
    res = _results(cfg, plog, [0, 1], {"ram_total": 7_000}, {"head": 7_000}, 1.0)
    assert sorted(res["points"]) == ["none:0:head", "random:10:head"]
    assert {p["ram_plan"] for p in res["points"].values()} == {7_000.0}
    floor = res["points"]["none:0:head"]
    assert "vs_random" not in floor and "vs_herding" not in floor and "vs_joint" in floor


def test_pipeline_files_are_checked_before_any_stage():
    """Device ranges and method lists of a pipeline file are refused when it is read (they
    were refused after base training, selection and the build, or crashed the summary), and
    so are the demo's update modes, each of them, and its fit board."""
    from tinysift.bench.adapt_demo import AdaptDemoConfig
    from tinysift.errors import TinysiftError
    from tinysift.pipeline.config import PipelineConfig

    for bad, said in (({"lr": -1}, "lr -1"), ({"batch": 0}, "batch 0"),
                      ({"momentum": 5}, "momentum 5"), ({"methods": []}, "at least one"),
                      ({"methods": ["bogus"]}, "unknown selection methods"),
                      ({"board": "nano33ble"}, "nano33ble is a real board"),
                      ({"board": "bogus"}, "unknown board 'bogus'")):
        with pytest.raises(TinysiftError, match=said):
            PipelineConfig().override(**bad)
    for bad, said in (({"methods": []}, "replay methods"), ({"methods": ["el2n"]}, "el2n"),
                      ({"lr": -1}, "lr -1"), ({"batch": 0}, "batch 0"),
                      ({"board": "nano33ble"}, "nano33ble is a real board"),
                      ({"board": "bogus"}, "unknown board 'bogus'"),
                      # the demo's own: no update mode, a bad one after a good one, and the
                      # memory plans' second board (refused after every device run)
                      ({"updates": []}, "updates must name at least one update mode"),
                      ({"updates": ["head", "sideways"]},
                       "--update must be one of head, bias, last-block, got 'sideways'"),
                      ({"fit_board": "bogus"}, "pipeline setting fit_board: unknown board "
                                               "'bogus'.*fix it in the pipeline file")):
        with pytest.raises(TinysiftError, match=said):
            AdaptDemoConfig().override(**bad)


def test_old_classes_named_twice_count_once():
    """--old-classes 0-3,2-5 duplicated classes 2 and 3: their samples twice in the base
    training, and a replay sized by 8 classes instead of 6."""
    from tinysift.cli.adapt_cmd import _classes

    assert _classes("0-3,2-5") == (0, 1, 2, 3, 4, 5)
    scn = scenarios.new_classes("digits", old_classes=(0, 1, 2, 3, 2, 3, 4, 5),
                                new_per_class=5)
    once = scenarios.new_classes("digits", old_classes=range(6), new_per_class=5)
    assert scn.old_classes == once.old_classes == (0, 1, 2, 3, 4, 5)
    assert np.array_equal(scn.y_old, once.y_old)


def _user_folder(root, names, value=100):
    from PIL import Image

    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((8, 8), value, np.uint8)).save(root / name / f"{i}.png")
    return f"folder:{root}"


def test_user_folder_is_labelled_by_folder_name(tmp_path):
    """Sub-folders 8 and 9 were classes 0 and 1 of the base model (their sorted position)."""
    scn = scenarios.user("digits", _user_folder(tmp_path / "a", ["8", "9"]))
    assert set(np.unique(scn.y_new)) == {8, 9} and set(np.unique(scn.y_test_new)) == {8, 9}
    assert scn.new_classes == (8, 9)
    with pytest.raises(DatasetError, match=r"class folders \['cat'\] name no class of the base "
                                           r"model: .*class index \(0..9\) or class name"):
        scenarios.user("digits", _user_folder(tmp_path / "b", ["8", "cat"]))


def test_user_folder_of_one_new_class_is_taken(tmp_path):
    """One new class is the common case of user data: a folder: of one sub-folder was
    refused ("need at least 2" sub-folders, a dataset's rule) where an npz of one label was
    taken. 20% of it is held out as the new task's test set; a skipped entry is kept in the
    scenario's meta for the pipeline to say; an empty folder still names the problem."""
    root = tmp_path / "one"
    spec = _user_folder(root, ["9"])
    (root / "9" / "notes.txt").write_text("x")
    scn = scenarios.user("digits", spec)
    assert scn.new_classes == (9,) and len(scn.y_new) == 5 and scn.y_test_new.tolist() == [9]
    assert scn.meta["skipped"] == ("9/notes.txt (not an image type read here)",)
    single = tmp_path / "single" / "9"
    single.mkdir(parents=True)
    (root / "9" / "0.png").rename(single / "0.png")
    with pytest.raises(DatasetError, match=r"single sample.*about 5\), or supply the test "
                                           r"split: train/ and test/ folders"):  # not npz's
        scenarios.user("digits", f"folder:{single.parent}")
    (tmp_path / "none").mkdir()
    with pytest.raises(DatasetError, match="found 0 class sub-folders; need at least 1"):
        scenarios.user("digits", f"folder:{tmp_path / 'none'}")
    # a dataset of one class is still refused where it is a dataset
    from tinysift.data import load_dataset

    with pytest.raises(DatasetError, match="found 1 class sub-folders; need at least 2"):
        load_dataset(spec)


def test_user_folder_of_train_and_test_splits_is_taken_as_split(tmp_path):
    """A user folder of train/ and test/ (a folder per class in each) is the new task's
    training and test sets as given, each folder labelled by the class it names (one
    class included); nothing of train/ is held out."""
    root = tmp_path / "split"
    _user_folder(root / "train", ["9", "8"])
    (root / "test" / "9").mkdir(parents=True)
    (root / "train" / "9" / "0.png").rename(root / "test" / "9" / "0.png")
    scn = scenarios.user("digits", f"folder:{root}")
    assert scn.new_classes == (8, 9)
    assert np.bincount(scn.y_new, minlength=10)[8:].tolist() == [6, 5]
    assert scn.y_test_new.tolist() == [9]


def _corrupt_member(path):
    """An npz whose compressed x member is damaged inside its deflate stream (zlib.error)."""
    import zipfile
    import zlib

    rng = np.random.default_rng(0)
    np.savez_compressed(path, x=rng.integers(0, 16, (40, 8, 8), dtype=np.uint8),
                        y=np.repeat([8, 9], 20))
    info = zipfile.ZipFile(path).getinfo("x.npy")
    at = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data = bytearray(path.read_bytes())
    at += int(info.compress_size * 0.3)
    data[at:at + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(zlib.error), np.load(path) as z:
        z["x"]


@pytest.mark.parametrize("make, message", [
    (lambda p: np.save(open(p, "wb"), np.zeros((3, 4))), "not an .npz archive"),
    (_corrupt_member, "not a readable .npz file"),
    (lambda p: np.savez(p, x=np.zeros((40, 8, 8), np.uint8), y=np.repeat([8, 9], 20),
                        x_test=np.zeros((3, 8, 8), np.uint8), y_test=np.array([8, 9])),
     "x_test has 3 samples but y_test has 2"),
    (lambda p: np.savez(p, x=np.zeros((40, 8, 8), np.uint8), y=np.repeat([8, 9], 20),
                        x_test=np.zeros((2, 8, 8), np.uint8), y_test=np.array([8.7, 9.2])),
     "y_test must hold integer class labels"),
    (lambda p: np.savez(p, x=np.zeros((40, 8, 8), np.uint8), y=np.repeat([8, 9], 20),
                        x_test=np.zeros((2, 8, 8), np.uint8)),
     "x_test is present but y_test is missing"),
], ids=[".npy named .npz", "corrupt member", "test lengths", "float y_test", "no y_test"])
def test_user_npz_is_checked_like_any_npz(tmp_path, make, message):
    """The user scenario read its npz with a weaker reader of its own: a TypeError, a
    zlib.error, a failure later naming RUN/scenario.npz, float labels truncated, x_test
    without y_test ignored. Each is now a DatasetError naming the user's file."""
    path = tmp_path / "new.npz"
    make(path)
    with pytest.raises(DatasetError, match=f"npz:{path}: .*{message}"):
        scenarios.user("digits", f"npz:{path}")


def test_torn_scenario_file_is_written_again(tmp_path, monkeypatch):
    """RUN/scenario.npz torn after its stamp was written was refused with advice to re-save
    a file the user never made: the stamp covered the scenario's content, not the file."""
    import importlib
    from types import SimpleNamespace

    from tinysift.data import load_dataset
    from tinysift.pipeline.adapt import AdaptConfig, prepare_base

    # the base model is not what this checks: no training
    monkeypatch.setattr(importlib.import_module("tinysift.stages.train"), "train",
                        lambda *a, **k: SimpleNamespace(train_samples=0))
    monkeypatch.setattr(importlib.import_module("tinysift.stages.quantize"), "quantize",
                        lambda *a, **k: SimpleNamespace(int8_acc=0.0))
    cfg = AdaptConfig(dataset="digits", new_per_class=5, out=str(tmp_path / "run"))
    _, _, name, _ = prepare_base(cfg, log=lambda *_: None)
    whole = load_dataset(name).content_hash
    npz = tmp_path / "run" / "scenario.npz"
    npz.write_bytes(npz.read_bytes()[:1000])
    _, _, name, _ = prepare_base(cfg, log=lambda *_: None)
    assert load_dataset(name).content_hash == whole


class _Stop(Exception):
    """Ends a pipeline where a test has seen what it needs (before the device)."""


def test_adaptation_exports_the_firmware_its_check_planned(tmp_path, monkeypatch):
    """update=head: the pre-check planned a head-only firmware, while the export planned and
    the build made one with the update=last-block / bias buffers, so on a board between the
    two the pre-check passed and the export refused it with `tinysift export`'s message
    ("or pass --fit"). The export is now head-only (export.json, its plan, the build's
    flag); update=bias is refused by the pre-check itself, with adapt's options."""
    import tinysift.stages.device as device_stage
    from tinysift.boards import CONFIG_ENV, DEFAULT_BOARD, load_board, save_user_board
    from tinysift.device.build import HEAD_ONLY_FLAG, build_plan
    from tinysift.errors import FitError
    from tinysift.pipeline.adapt import AdaptConfig, prepare_base, run_adapt, test_indices
    from tinysift.quantize import tflm
    from tinysift.stages.export import memory_plan_for

    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "config"))
    cfg = AdaptConfig(dataset="digits", new_per_class=30, replay="random", replay_per_class=5,
                      update="head", board=DEFAULT_BOARD, base_epochs=2, test_per_class=10,
                      out=str(tmp_path / "run"))
    scn, parts, _, base = prepare_base(cfg, log=lambda *_: None)
    tests = len(test_indices(scn, parts, cfg.test_per_class, cfg.seed))
    ram = {bb: memory_plan_for(base, DEFAULT_BOARD, tests, train_samples=5 * 8,
                               db_capacity=60, backbone_training=bb)["ram_total"]
           for bb in (False, True)}
    save_user_board(DEFAULT_BOARD, {"ram_bytes": (ram[False] + ram[True]) // 2})
    sent: dict = {}

    def stop(*_args, **kwargs):
        sent.update(kwargs)
        raise _Stop

    monkeypatch.setattr(device_stage, "cached_results", stop)
    with pytest.raises(_Stop):  # exported (it raised FitError here), then stopped
        run_adapt(cfg, log=lambda *_: None)
    # the new samples go to the device as the model's int8 input: with its input scale 1/255
    # and zero point -128, each pixel minus 128 (a zero point of 0 gave 0..127 and passed)
    x_new, y_new = sent["train_set"]
    scale, zero_point = tflm.input_quant((base / "model.tflite").read_bytes())
    assert zero_point == -128 and scale == pytest.approx(1 / 255)
    assert x_new.dtype == np.int8 and np.array_equal(y_new, scn.y_new)
    np.testing.assert_array_equal(x_new, scn.x_new.astype(np.int16) - 128)
    info = json.loads((base / "export" / "export.json").read_text())
    assert info["backbone_training"] is False and info["memory_plan"]["fits"]
    assert info["memory_plan"]["ram_total"] == ram[False] and info["train_samples"] == 40
    plan = build_plan(load_board(DEFAULT_BOARD), base / "export", base / "device")
    assert HEAD_ONLY_FLAG in plan.env["PLATFORMIO_BUILD_FLAGS"]
    cfg.update = "bias"
    with pytest.raises(FitError, match=r"a replay set of 40 samples plus 60 new samples with "
                                       r"update=bias needs") as err:
        run_adapt(cfg, log=lambda *_: None)
    assert "--fit" not in str(err.value)


def test_device_bench_exports_one_firmware_for_its_update_modes(tmp_path, monkeypatch):
    """`tinysift bench device` builds one firmware for every row: head-only when every row is
    update=head, with the backbone buffers when a row needs them; a head row's RAM plan is
    a head-only build's either way."""
    import importlib

    from tinysift.bench.device import DeviceBenchConfig, _plan_ram, bench_device

    # the module (tinysift.stages re-exports its function under the same name)
    export_stage = importlib.import_module("tinysift.stages.export")
    real = export_stage.export
    made = []

    def export_then_stop(*args, **kwargs):
        made.append((kwargs.get("backbone_training", True), real(*args, **kwargs)))
        raise _Stop

    monkeypatch.setattr(export_stage, "export", export_then_stop)
    for updates in (("head",), ("head", "bias")):
        cfg = DeviceBenchConfig(dataset="digits", seeds=1, methods=("random",), sizes=(5,),
                                updates=updates, new_per_class=30, base_epochs=2,
                                test_per_class=10, out_dir=tmp_path / "out",
                                progress_dir=tmp_path / "progress", work_dir=tmp_path / "work")
        with pytest.raises(_Stop):
            bench_device(cfg, log=lambda *_: None)
    (head_only, exp_head), (full, exp_full) = made
    assert head_only is False and full is True
    assert exp_head.plan["backbone_training"] is False and exp_full.plan["backbone_training"]
    base = tmp_path / "work" / f"{cfg.stem()}-s0" / "base"
    head_ram = exp_head.plan["ram_total"]
    assert head_ram < exp_full.plan["ram_total"]
    assert _plan_ram(base, cfg.board, exp_head, "head") == head_ram
    assert _plan_ram(base, cfg.board, exp_full, "head") == head_ram
    assert _plan_ram(base, cfg.board, exp_full, "bias") == exp_full.plan["ram_total"]


def test_per_epoch_figures_are_means_over_the_epochs():
    """cycles/energy/seconds per epoch in summary.json are means over every epoch trained
    (0 before any), the same definition for each figure."""
    from tinysift.device.results import DeviceResults, EpochResult

    res = DeviceResults(board="b", clock_hz=1, params={}, energy_model={}, started="",
                        epochs=[EpochResult(e, 0.0, 0.0, c, s, mj) for e, c, s, mj in
                                ((1, 100, 1.0, 2.0), (2, 200, 2.0, 4.0), (3, 600, 6.0, 9.0))])
    assert res.mean_epoch("cycles") == 300 and res.mean_epoch("seconds") == 3.0
    assert res.mean_epoch("energy_mj") == 5.0
    assert DeviceResults(board="b", clock_hz=1, params={}, energy_model={},
                         started="").mean_epoch("cycles") == 0.0


def test_a_result_without_phases_or_sample_counts_bills_its_epochs():
    """A session that stopped before the device named its sample counts or sent a features
    phase (a failed or interrupted run): a phase it never sent reads as zero, and its
    training bill is its epochs' energy (no division by zero samples)."""
    from tinysift.device.results import DeviceResults, EpochResult, PhaseResult

    res = DeviceResults(board="b", clock_hz=1, params={"update": "head"}, energy_model={},
                        started="", epochs=[EpochResult(1, 0.0, 0.0, 1, 0.0, 2.5)] * 2)
    assert res.phase("features") == PhaseResult(0, 0.0, 0.0, "estimated")
    assert res.training_energy_mj() == 5.0


def test_class_accuracy_reads_the_records_of_the_asked_moment():
    """class_accuracy("before", ...) is from the `@class when=before` records, not the
    after ones; int8 counts its own column."""
    from tinysift.device.results import DeviceResults

    def row(cls: int, correct: int, int8_correct: int, total: int) -> dict[str, int]:
        return {"class": cls, "correct": correct, "int8_correct": int8_correct, "total": total}

    res = DeviceResults(board="b", clock_hz=1, params={}, energy_model={}, started="",
                        per_class={"before": [row(0, 2, 1, 10), row(1, 3, 3, 10)],
                                   "after": [row(0, 9, 8, 10), row(1, 7, 7, 10)]})
    assert res.class_accuracy("before", [0, 1]) == pytest.approx(5 / 20)
    assert res.class_accuracy("before", [0], int8=True) == pytest.approx(1 / 10)
    assert res.class_accuracy("after", [0]) == pytest.approx(9 / 10)
    assert res.class_accuracy("current", [0]) is None


def test_results_json_keeps_its_always_written_fields_while_unknown():
    """results.json has held counter, the accuracies, RAM/flash and samples since its first
    format, null while unknown: readers of the file (not only DeviceResults.load) find
    them."""
    from tinysift.device.results import DeviceResults

    doc = DeviceResults(board="b", clock_hz=1, params={}, energy_model={}, started="").to_dict()
    for key in ("counter", "test_acc_before", "test_acc_after", "test_int8_acc_after",
                "ram_bytes", "flash_bytes", "samples"):
        assert key in doc and doc[key] is None
    assert "finished" not in doc  # the others only once known


def test_adapt_log_says_dash_for_an_untested_task():
    """shift (and user data of the old classes): the device's old task is not measured;
    the log line said 'old nan' above the summary's 'old -'."""
    from tinysift.pipeline.adapt import task_line

    line = task_line("vq-20-last-block", {"all": 0.947, "new": 0.947})
    # and "all" is the new task's alone: "all 0.947" read as nothing forgotten
    assert line == ("vq-20-last-block: old -  new 0.947  all 0.947 (the new task's: the old "
                    "one is not tested here)")
    assert task_line("x", {"all": 0.5, "old": 0.25, "new": 0.75}) == \
        "x: old 0.250  new 0.750  all 0.500"


def test_user_scenario_exports_only_the_new_test_set(write_npz, tmp_path, monkeypatch):
    """The user's data is labelled with the old classes, so the device's per-class counts
    cannot tell an old test sample from a new one: its "new" accuracy was that of 30 old
    test samples a class plus the new ones (354 samples against the host reference's 54).
    Like shift, the export now holds the new test set alone."""
    import tinysift.stages.device as device_stage
    from tinysift.data import load_dataset
    from tinysift.pipeline.adapt import AdaptConfig, run_adapt

    d = load_dataset("digits")
    new = write_npz("mine.npz", x=d.x_test[:100], y=d.y_test[:100])
    cfg = AdaptConfig(scenario="user", dataset="digits", new=new, new_per_class=500,
                      replay="random", replay_per_class=2, base_epochs=1, test_per_class=30,
                      out=str(tmp_path / "run"))

    def stop(*_args, **_kwargs):
        raise _Stop

    monkeypatch.setattr(device_stage, "cached_results", stop)
    said: list[str] = []
    with pytest.raises(_Stop):
        run_adapt(cfg, log=said.append)
    # more new samples asked than the data holds: said, not only recorded
    assert any(s.startswith("scenario: ") and "(all the data holds; 500 per class asked)" in s
               for s in said), said
    info = json.loads((tmp_path / "run" / "base" / "export" / "export.json").read_text())
    with np.load(tmp_path / "run" / "scenario.npz") as z:
        new_tests = len(z["part_test_new"])
    assert 0 < new_tests < 30 and info["test_samples"] == new_tests


def test_user_npz_under_the_home_folder_is_found(tmp_path, monkeypatch):
    """--new npz:~/mine.npz (quoted, or after '=', where the shell leaves '~'): "file not
    found" for a file that exists; --dataset and folder: data expanded it."""
    from tinysift.data import load_dataset

    d = load_dataset("digits")
    monkeypatch.setenv("HOME", str(tmp_path))
    np.savez(tmp_path / "mine.npz", x=d.x_test[:40], y=d.y_test[:40])
    scn = scenarios.user("digits", "npz:~/mine.npz")
    assert len(scn.y_new) + len(scn.y_test_new) == 40


def _distinct_digits_like(per_class: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """8x8 images, each one distinct (its index in its first two pixels), labelled
    ``class: count``."""
    y = np.repeat(list(per_class), list(per_class.values()))
    x = np.zeros((len(y), 8, 8), np.uint8)
    x[:, 0, 0], x[:, 0, 1] = np.arange(len(y)) // 256, np.arange(len(y)) % 256
    return x, y


def test_user_scenario_draws_each_new_sample_once(write_npz):
    """--new-per-class draws that many of the user's samples per class without
    replacement: a sample drawn twice would give the device fewer distinct samples than
    the report says, and weigh some twice."""
    x, y = _distinct_digits_like({8: 60, 9: 60})
    scn = scenarios.user("digits", write_npz("new.npz", x=x, y=y), new_per_class=45)
    assert np.unique(scn.y_new, return_counts=True)[1].tolist() == [45, 45]
    assert len(np.unique(scn.x_new.reshape(len(scn.x_new), -1), axis=0)) == 90
    # none of them is a test sample of the new task either
    new_rows = {r.tobytes() for r in scn.x_new}
    assert not new_rows & {r.tobytes() for r in scn.x_test_new}


def test_user_folders_naming_one_class_twice_are_refused(tmp_path):
    """Folders '3' and '03' (or a class's name and its index) are one class of the base
    model: refused, naming both, rather than merged silently (likely a misnamed folder
    meant as another class)."""
    name = _user_folder(tmp_path / "new", ["3", "03"])
    with pytest.raises(DatasetError, match=r"class folders \['03', '3'\] name the same class "
                                           r"of the base model; merge them"):
        scenarios.user("digits", name)


def test_old_classes_must_be_classes_of_the_dataset():
    """Class 10 of a 10-class dataset (0..9) is no class: refused, named, instead of a
    scenario whose old classes list a class with no samples and no output."""
    with pytest.raises(DatasetError, match=r"old classes must be in 0..9; 10 are not"):
        scenarios.new_classes("digits", old_classes=(0, 1, 10), new_per_class=5)


def _tiny_scenario(**change):
    z = np.zeros
    parts = dict(x_old=z((4, 2, 2, 1), np.uint8), y_old=np.array([0, 0, 1, 1]),
                 x_new=np.arange(8, dtype=np.uint8).reshape(2, 2, 2, 1), y_new=np.array([2, 2]),
                 x_test_old=z((2, 2, 2, 1), np.uint8), y_test_old=np.array([0, 1]),
                 x_test_new=z((1, 2, 2, 1), np.uint8), y_test_new=np.array([2]))
    parts.update(change)
    return scenarios.Scenario("new-classes", **parts, num_classes=3, old_classes=(0, 1),
                              new_classes=(2,), class_names=("a", "b", "c"))


def test_scenario_hash_covers_every_split_its_shapes_and_the_class_names():
    """The scenario cache is keyed on content_hash: the same bytes in another shape, another
    new-task label or renamed classes are another scenario."""
    base = _tiny_scenario().content_hash()
    assert _tiny_scenario().content_hash() == base and len(base) == 32
    x_new = np.arange(8, dtype=np.uint8).reshape(2, 2, 2, 1)
    assert _tiny_scenario(x_new=x_new.reshape(2, 1, 4, 1),
                          x_old=np.zeros((4, 1, 4, 1), np.uint8),
                          x_test_old=np.zeros((2, 1, 4, 1), np.uint8),
                          x_test_new=np.zeros((1, 1, 4, 1), np.uint8)).content_hash() != base
    assert _tiny_scenario(y_new=np.array([2, 1])).content_hash() != base
    renamed = _tiny_scenario()
    renamed.class_names = ("a", "b", "z")
    assert renamed.content_hash() != base


def test_a_scenario_says_each_only_where_every_class_holds_what_was_asked():
    y = np.array([8, 8, 8, 9, 9, 9, 9, 9])
    assert scenarios._samples_each(y, 5) == "3, 5 samples (all the data holds; 5 each asked)"
    assert scenarios._samples_each(y[3:], 5) == "5 samples each"
    assert scenarios._samples_each(y, None) == "3, 5 samples"


def test_new_samples_are_a_seeded_draw_from_the_whole_class():
    """The seed chooses which new samples the device gets (not the first of each class)."""
    a = scenarios.new_classes("digits", old_classes=range(8), new_per_class=20, seed=0)
    b = scenarios.new_classes("digits", old_classes=range(8), new_per_class=20, seed=1)
    assert not np.array_equal(a.x_new, b.x_new)
    assert np.unique(b.y_new, return_counts=True)[1].tolist() == [20, 20]


def test_the_user_test_split_is_the_same_on_every_call_and_takes_one_of_a_small_class(
        write_npz):
    """Without x_test, 20% of each class (at least one, where the class has two or more) is
    held out by a fixed draw: the same split each time the scenario is built."""
    x, y = _distinct_digits_like({8: 10, 9: 3})
    path = write_npz("new.npz", x=x, y=y)
    one, two = scenarios.user("digits", path), scenarios.user("digits", path)
    assert np.array_equal(one.x_test_new, two.x_test_new)
    assert np.array_equal(one.x_new, two.x_new)
    assert sorted(one.y_test_new.tolist()) == [8, 8, 9]


def test_a_new_label_past_the_model_s_last_class_is_refused():
    from tinysift.errors import DatasetError

    with pytest.raises(DatasetError, match=r"new labels \[3\] are not classes of the model"):
        _tiny_scenario(y_new=np.array([2, 3]))
    with pytest.raises(DatasetError, match=r"test_new labels \[3\]"):
        _tiny_scenario(y_test_new=np.array([3]))


def test_upsampled_digits_fill_the_centred_20x20_box_exactly():
    """MNIST's layout: the 8x8 image resized into rows and columns 4..23 of 28x28."""
    up = scenarios.upsample_digits(np.full((1, 8, 8, 1), 255, np.uint8))[0, ..., 0]
    assert (up[4:24, 4:24] == 255).all() and up.sum() == 255 * 400


def test_a_scenario_refuses_splits_of_two_shapes():
    """Every split's images have one shape (the model's input): a new test set of 2x3
    images beside 2x2 ones is refused."""
    with pytest.raises(DatasetError, match=r"image shapes differ across splits"):
        _tiny_scenario(x_test_new=np.zeros((1, 2, 3, 1), np.uint8))


def test_to_npz_parts_index_the_concatenated_splits(tmp_path):
    """The npz holds old then new training samples and old then new test samples; each
    part's indices (4 old, 2 new; 2 old tests, 1 new test) pick its own split back."""
    scn = _tiny_scenario()
    parts = scn.to_npz(tmp_path / "s.npz")
    assert {k: v.tolist() for k, v in parts.items()} == {
        "old": [0, 1, 2, 3], "new": [4, 5], "test_old": [0, 1], "test_new": [2]}
    with np.load(tmp_path / "s.npz") as z:
        assert (z["x"][z["part_new"]] == scn.x_new).all()
        assert z["y_test"][z["part_test_new"]].tolist() == [2]


def test_samples_each_lists_ten_counts_then_dots():
    """Twelve classes of 1..12 samples: the first ten counts, then "...". """
    y = np.repeat(np.arange(12), np.arange(1, 13))
    assert scenarios._samples_each(y, None) == "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ... samples"


def test_new_classes_refuses_a_negative_class_many_bad_ones_and_no_class_left():
    """-1 is no class; seven bad classes are named five and "2 more"; all ten old leave the
    device nothing to learn."""
    with pytest.raises(DatasetError, match=r"old classes must be in 0..9; -1 are not"):
        scenarios.new_classes("digits", old_classes=(-1, 0), new_per_class=5)
    with pytest.raises(DatasetError, match=r"; 10, 11, 12, 13, 14 and 2 more are not$"):
        scenarios.new_classes("digits", old_classes=range(17), new_per_class=5)
    with pytest.raises(DatasetError, match="every class is old"):
        scenarios.new_classes("digits", old_classes=range(10), new_per_class=5)


def test_shift_refuses_a_28x28_source_without_ten_classes(write_npz):
    """The shift target is the ten digits: a 28x28 source of three classes is refused."""
    rng = np.random.default_rng(0)
    source = write_npz("three.npz", x=rng.integers(0, 255, (30, 28, 28), np.uint8),
                       y=np.repeat(np.arange(3), 10))
    with pytest.raises(DatasetError, match=r"3 classes: pass --dataset mnist"):
        scenarios.shift(source, new_per_class=2)


def test_folder_classes_name_a_few_base_classes_then_dots():
    """A folder naming no class of a 13-class base model is refused with the first twelve
    class names and "..."."""
    names = tuple(f"c{i}" for i in range(13))
    with pytest.raises(DatasetError, match=r"\(0..12\) or class name \(c0, c1, .*, c11, "
                                           r"\.\.\.\)$"):
        scenarios._folder_classes("folder:x", ("cat",), names)


def test_scenario_hash_changes_with_the_contents_of_any_one_split():
    """A scenario cache is written again when any split's data changed in place (same
    shape and dtype): each of the eight arrays, one value changed, changes the hash."""
    base = _tiny_scenario().content_hash()
    for name in ("x_old", "y_old", "x_new", "y_new", "x_test_old", "y_test_old",
                 "x_test_new", "y_test_new"):
        changed = getattr(_tiny_scenario(), name).copy()
        changed.flat[0] = (changed.flat[0] + 1) % 3  # still a class of the 3-class model
        assert _tiny_scenario(**{name: changed}).content_hash() != base, name


def test_to_npz_writes_the_class_names(tmp_path):
    """The written npz is the dataset the pipeline's stages run on: it carries the
    scenario's class names, which the reports name the classes by."""
    _tiny_scenario().to_npz(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as z:
        assert z["class_names"].tolist() == ["a", "b", "c"]


def test_new_classes_without_an_old_class_is_refused_saying_none_was_given():
    """No old class leaves the base model nothing to learn: the refusal says the range and
    that none was given (not an empty list of bad classes)."""
    with pytest.raises(DatasetError, match=r"^old classes must be in 0..9, got none$"):
        scenarios.new_classes("digits", old_classes=(), new_per_class=5)


def test_upsample_digits_refuses_images_that_are_not_uint8():
    """Images scaled to 0..1 floats would be resized as near-black: they are refused,
    naming the dtype expected and the one given."""
    with pytest.raises(TypeError, match=r"uint8 images on 0..255, not float32"):
        scenarios.upsample_digits(np.ones((1, 8, 8, 1), np.float32))


def test_user_npz_with_its_own_test_split_keeps_it_and_trains_on_every_sample(write_npz):
    """An npz holding x_test/y_test is the new task's test set as given: every training
    sample goes to the device (none held out) and the test set is the user's own."""
    x, y = _distinct_digits_like({8: 10, 9: 10})
    x_test, y_test = _distinct_digits_like({8: 3, 9: 2})
    x_test[:, 7, 7] = 255  # unlike any training image
    scn = scenarios.user("digits", write_npz("new.npz", x=x, y=y, x_test=x_test,
                                             y_test=y_test))
    assert len(scn.y_new) == 20 and sorted(scn.y_test_new.tolist()) == [8, 8, 8, 9, 9]
    assert (scn.x_test_new[..., 7, 7, 0] == 255).all()


def test_a_folder_named_like_a_base_class_is_that_class_even_when_the_name_is_a_number():
    """A base model whose classes are named 1..9 (no 0): folder "7" is the class named 7,
    index 6, not index 7 (the class named 8); a number that names no class is an index."""
    names = tuple(str(i) for i in range(1, 10))
    assert scenarios._folder_classes("folder:x", ("7", "1"), names).tolist() == [6, 0]
    assert scenarios._folder_classes("folder:x", ("0",), names).tolist() == [0]


def test_folders_of_one_class_are_named_without_the_other_folders():
    """Folders '03' and '3' are one class beside '4': the refusal names the two to merge,
    not every folder."""
    names = tuple(str(i) for i in range(10))
    with pytest.raises(DatasetError, match=r"class folders \['03', '3'\] name the same class"):
        scenarios._folder_classes("folder:x", ("03", "3", "4"), names)


def test_a_user_folder_numbered_past_the_base_classes_is_refused(tmp_path):
    """Folder 12 beside a 10-class base model is no class of it: refused naming the label
    and the model's classes (not taken as another class)."""
    with pytest.raises(DatasetError, match=r"new labels \[12\] are not classes of the model "
                                           r"\(0..9\)"):
        scenarios.user("digits", _user_folder(tmp_path, ["8", "12"]))


def test_new_per_class_one_short_of_a_class_draws_exactly_that_many(write_npz):
    """--new-per-class 7 of a class holding 8 training samples (10 less the held-out
    fifth) gives the device 7, as the description says, not all 8."""
    x, y = _distinct_digits_like({8: 10, 9: 10})
    scn = scenarios.user("digits", write_npz("new.npz", x=x, y=y), new_per_class=7)
    assert np.unique(scn.y_new, return_counts=True)[1].tolist() == [7, 7]
    assert "7 samples per class" in scn.description


def test_earlier_reports_move_under_the_earlier_scenario_s_key(tmp_path):
    """_set_aside_other_scenario: no earlier stamp, the same scenario, or no report moves
    nothing and makes no folder; another scenario's reports (only ``adapt-*.json``) go to
    ``earlier-`` + the first 12 characters of ITS key, and that scenario's later reports
    beside the earlier ones (``-2``, ``-3``), never over them."""
    from tinysift.pipeline.adapt import _set_aside_other_scenario

    said: list[str] = []
    old, new = "0123456789ab" + "cdef", "fedcba9876543210"
    (tmp_path / "scenario.key").write_text("not a report")
    for old_key, key in (("", new), (new, new), (old, new)):  # the last: no report yet
        _set_aside_other_scenario(tmp_path, old_key, key, said.append)
    assert [p.name for p in tmp_path.iterdir()] == ["scenario.key"] and not said
    reports = ["adapt-noreplay-head.json", "adapt-vq-5-head.json"]
    for n, folder in enumerate(("earlier-0123456789ab", "earlier-0123456789ab-2",
                                "earlier-0123456789ab-3")):
        for name in reports:
            (tmp_path / name).write_text(f"{n}")
        _set_aside_other_scenario(tmp_path, old, new, said.append)
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == reports
        assert (tmp_path / folder / reports[1]).read_text() == f"{n}"
        assert f"its 2 earlier result(s) moved to {tmp_path / folder}" in said[-1]
    assert not list(tmp_path.glob("adapt-*.json")) and len(said) == 3


@pytest.mark.parametrize("change, said", [
    ({"seed": -1}, "--seed must be >= 0, got -1"),
    # (the CLI folds 3,3 into 3; a pipeline file or a caller does not)
    ({"old_classes": (3, 3)}, r"--old-classes names 1 distinct class \(3,3\)"),
    ({"new_per_class": 0}, "--new-per-class must be >= 1, got 0"),
    ({"test_per_class": 0}, "test_per_class and base_epochs must be >= 1, got 0 and 10"),
    ({"base_epochs": 0}, "test_per_class and base_epochs must be >= 1, got 30 and 0"),
], ids=["negative seed", "one class twice", "no new sample", "no test sample", "no epoch"])
def test_adapt_settings_from_code_are_checked_as_the_cli_s(change, said):
    """AdaptConfig.validate holds a caller (a bench, a pipeline file) to the CLI's ranges,
    before any base model: a negative seed, one old class named twice, no new sample a
    class (the device would train on the replay set alone), no test sample or epoch (refused
    only after the base model trained, in the selection's words)."""
    from tinysift.errors import BudgetError
    from tinysift.pipeline.adapt import AdaptConfig

    with pytest.raises(BudgetError, match=said):
        AdaptConfig(dataset="digits", **change).validate()


def test_base_model_is_trained_and_quantized_with_the_adaptation_s_settings(tmp_path,
                                                                            monkeypatch):
    """prepare_base hands train the scenario's dataset, the base folder, a selection of the
    old task's samples, base_epochs and the adaptation's seed, and quantize the same seed.
    train and quantize are recorded, not run (what they do with these is their own tests';
    here only what they are handed, in milliseconds instead of a training)."""
    import importlib
    from types import SimpleNamespace

    from tinysift.pipeline.adapt import AdaptConfig, prepare_base
    from tinysift.selection.io import read_selection

    calls: dict[str, tuple] = {}

    def train(*args, **kwargs):
        calls["train"] = (args, kwargs)
        return SimpleNamespace(train_samples=0)

    def quantize(*args, **kwargs):
        calls["quantize"] = (args, kwargs)
        return SimpleNamespace(int8_acc=0.0)

    monkeypatch.setattr(importlib.import_module("tinysift.stages.train"), "train", train)
    monkeypatch.setattr(importlib.import_module("tinysift.stages.quantize"), "quantize",
                        quantize)
    cfg = AdaptConfig(dataset="digits", new_per_class=5, base_epochs=7, seed=5,
                      out=str(tmp_path / "run"))
    _, parts, name, base = prepare_base(cfg, log=lambda *_: None)
    (t_args, t_kwargs), (q_args, q_kwargs) = calls["train"], calls["quantize"]
    assert t_args == (name, base) and (t_kwargs["epochs"], t_kwargs["seed"]) == (7, 5)
    assert np.array_equal(read_selection(t_kwargs["selection"])["indices"], parts["old"])
    assert q_args == (base,) and q_kwargs["seed"] == 5
