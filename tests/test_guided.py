"""Guided training: the budget is held, the samplers do what their papers say, the filter
finds planted mislabels, runs are seeded. Real digits data, real training."""

from __future__ import annotations

import contextlib
import json
import math
import time

import numpy as np
import pytest

from tinysift.guided import CostLedger, TrainingState, make_sampler
from tinysift.guided.methods.flow import FLOW_MIN_CLASS, FlowGuided, label_agreement
from tinysift.guided.methods.vq import allocate
from tinysift.models.training import TrainConfig
from tinysift.scoring.density import make_density


def _state(y, budget=0.5, epochs=4, seed=0, dim=8):
    n = len(y)
    return TrainingState(x=np.zeros((n, 2, 2, 1), np.uint8), y=np.asarray(y), num_classes=int(
        np.max(y)) + 1, epochs=epochs, budget=budget,
        ledger=CostLedger(budget * epochs * n), rng=np.random.default_rng(seed),
        feature_dim=dim)


@pytest.mark.parametrize("change, error, match", [
    (lambda x, y, b: (x, y + 1, b), "DatasetError", r"labels must lie in \[0, 2\)"),
    (lambda x, y, b: (x / 255.0, y, b), "DatasetError", "images must be a uint8 array"),
    (lambda x, y, b: (x, y, 1.5), "BudgetError", r"fraction in \(0, 1\]"),
    (lambda x, y, b: (x, y, 0.0), "BudgetError", r"fraction in \(0, 1\]"),
    (lambda x, y, b: (x, y, float("nan")), "BudgetError", r"fraction in \(0, 1\]")])
def test_train_guided_refuses_bad_arrays_and_budgets_before_training(change, error, match):
    """Labels outside 0..K-1 were a TF graph error at the first step, float images trained
    silently divided by 255 once more, a budget of 1.5 silently spent 1.5 recipes and a NaN
    one was a ValueError from int(round(nan)); a sampler's name for the sampler, an
    AttributeError."""
    from tinysift import errors
    from tinysift.guided.loop import train_guided

    x, y = np.random.default_rng(0).integers(0, 255, (64, 8, 8, 1), np.uint8), np.arange(64) % 2
    with pytest.raises(TypeError, match="make_sampler"):  # was an AttributeError on 'str'
        train_guided(x, y, 2, "rs2", 0.5, progress=False)
    x, y, budget = change(x, y, 0.5)
    with pytest.raises(getattr(errors, error), match=match):
        train_guided(x, y, 2, make_sampler("rs2"), budget,
                     train_config=TrainConfig(epochs=2, batch_size=16), progress=False)


def test_allocate_is_proportional_capped_and_exact():
    out = allocate(np.array([1.0, 1.0, 2.0]), np.array([10, 1, 10]), 8)
    assert out.sum() == 8 and out[1] <= 1 and out[2] >= out[0]
    assert allocate(np.ones(3), np.array([2, 2, 2]), 100).tolist() == [2, 2, 2]
    assert allocate(np.zeros(4), np.array([5, 5, 5, 5]), 6).sum() == 6  # all-zero weights
    # by hand: ideal 1.8, 0.9, 0.3 -> floors 1, 0, 0, one more to the two largest remainders
    assert allocate(np.array([0.6, 0.3, 0.1]), np.array([10, 10, 10]), 3).tolist() == [2, 1, 0]
    # an entry without room takes no share: 15 by 3:1:4 is 5.625, 1.875, 7.5 -> 6, 2, 7
    assert allocate(np.array([3.0, 1.0, 4.0, 4.0]), np.array([10, 9, 11, 0]),
                    15).tolist() == [6, 2, 7, 0]
    # a capped entry's excess: one each to the open entries in index order (ideal 2, 4, 4,
    # 8; the last capped at 6), as allocate's docstring says, not re-shared as 2, 5, 5
    assert allocate(np.array([1.0, 2.0, 2.0, 4.0]), np.array([6, 9, 9, 6]),
                    18).tolist() == [3, 5, 4, 6]
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(1, 12))
        caps = rng.integers(0, 20, k)
        total = int(rng.integers(0, 60))
        a = allocate(rng.random(k), caps, total)
        assert a.sum() == min(total, caps.sum()) and (a <= caps).all() and (a >= 0).all()


def test_ledger_charges_fits_once_at_the_measured_speed():
    led = CostLedger(budget_passes=1000)
    with led.fit("codebook"):  # before any training: charged at the first steady speed
        pass
    led.fit_seconds["codebook"] = 0.5
    led._pending = 0.5
    led.charge_training(100, 20.0)  # the first step traces the step function: not a speed
    assert led.fit_passes == 0 and led.seconds_per_pass is None
    led.charge_training(100, 1.0)  # 0.01 s per pass -> the 0.5 s fit is 50 passes
    assert led.fit_passes == pytest.approx(50.0)
    led.charge_training(100, 3.0)  # slower now: the earlier fit's charge does not move
    assert led.fit_passes == pytest.approx(50.0)
    led.charge_forward(30)
    assert led.spent == pytest.approx(300 + 10 + 50)
    assert led.remaining == pytest.approx(640) and 0 < led.progress < 1


def test_ledger_speed_leaves_out_each_batch_sizes_tracing_step():
    """The first step of a batch size traces; the speed is the other steps' (until
    2026-12-02 a fit before training was charged at the tracing step's rate: ~40x less)."""
    led = CostLedger(budget_passes=1e6)
    for size, seconds in ((128, 2.0), (128, 0.128), (96, 1.5), (96, 0.096), (128, 0.128)):
        led.charge_training(size, seconds)
    assert led.seconds_per_pass == pytest.approx(1e-3)  # 1 ms a pass once traced
    assert led.train_seconds == pytest.approx(3.852)  # reported time keeps everything
    with led.fit("judge"):
        pass
    assert led.fit_passes == pytest.approx(led.fit_seconds["judge"] / 1e-3)
    alone = CostLedger(budget_passes=1e6)  # a run of one step: settle() uses what it has
    alone._pending = 1.0
    alone.charge_training(100, 2.0)
    assert alone.fit_passes == 0
    alone.settle()
    assert alone.fit_passes == pytest.approx(50.0)


def test_ledger_adds_up_fits_of_one_name_and_every_fit_waiting_for_a_speed(monkeypatch):
    """A fit made again under one name (the codebook refit every epoch) adds its seconds to
    the name's; every fit made before training waits for the first steady speed (flow's
    judge, then its densities), none of them dropped; the written ledger's spent_passes is
    everything spent: training, forward passes and fits. (On a clock that moves only when
    told: 20 ms sleeps overran their tolerance under load.)"""
    from types import SimpleNamespace

    from tinysift.guided import ledger as ledger_module

    now = [100.0]
    monkeypatch.setattr(ledger_module, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    led = CostLedger(budget_passes=1e6)
    for name in ("judge", "judge", "density"):
        with led.fit(name):
            now[0] += 0.02
    assert led.fit_seconds["judge"] == pytest.approx(0.04)
    waiting = sum(led.fit_seconds.values())
    assert led.fit_passes == 0
    led.charge_training(100, 5.0)  # tracing
    led.charge_training(100, 0.1)  # 1 ms a pass
    assert led.fit_passes == pytest.approx(waiting / 1e-3)
    led.charge_forward(30)
    written = led.to_dict()
    assert written["spent_passes"] == round(200 + 10 + led.fit_passes, 1)
    assert written["spent_passes"] == pytest.approx(200 + 10 + 60)  # the fits' 60 ms


def test_settle_converts_only_a_pending_fit_and_never_at_no_speed():
    """settle() sets a speed only for a fit still waiting at the end of a run: a run of one
    step and no fit keeps its steady speed unmeasured (None); a fit before any training has
    no speed to be converted at (settling is no division by zero)."""
    led = CostLedger(budget_passes=1000)
    led.charge_training(100, 2.0)  # one tracing step, no fit waiting
    led.settle()
    assert led.seconds_per_pass is None and led.fit_passes == 0
    untrained = CostLedger(budget_passes=1000)
    with untrained.fit("judge"):
        time.sleep(0.01)
    untrained.settle()
    assert untrained.seconds_per_pass is None and untrained.spent == 0
    assert untrained.fit_seconds["judge"] > 0


@pytest.mark.parametrize("outer", [["codebook"], ["refit", "judge"]],
                         ids=["one deep", "two deep"])
def test_ledger_charges_nested_fits_once(outer, monkeypatch):
    """Fits inside one another (the flow's density inside the codebook refit; two deep, a
    density inside a judge inside a refit): each is charged its own seconds, all of them
    add up to the wall time (an inner fit is not charged again to the fits around it), and
    the passes charged are that wall time at the measured speed. On the ledger's clock
    made to stand still between steps: with real sleeps it failed under load (a 50 ms
    sleep overran its 30 ms tolerance)."""
    from types import SimpleNamespace

    from tinysift.guided import ledger as ledger_module

    now = [100.0]
    monkeypatch.setattr(ledger_module, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    led = CostLedger(budget_passes=1e6)
    led.charge_training(1000, 5.0)  # tracing
    led.charge_training(1000, 1.0)  # 1 ms per pass
    start = now[0]
    with contextlib.ExitStack() as fits:
        for name in outer:
            fits.enter_context(led.fit(name))
            now[0] += 0.05
        with led.fit("density"):
            now[0] += 0.1
        now[0] += 0.02  # the outer fits' own work after the inner one
    wall = now[0] - start
    assert led.fit_seconds["density"] == pytest.approx(0.1)
    assert led.fit_seconds[outer[-1]] == pytest.approx(0.05 + 0.02)
    for name in outer[:-1]:
        assert led.fit_seconds[name] == pytest.approx(0.05), name
    assert sum(led.fit_seconds.values()) == pytest.approx(wall)
    assert led.fit_passes == pytest.approx(1000 * wall)


def test_rs2_covers_every_sample_once_per_pass():
    y = np.repeat(np.arange(4), 25)
    st = _state(y, budget=0.25)
    s = make_sampler("rs2")
    s.begin(st)
    seen = np.concatenate([s.plan(st).indices for _ in range(4)])
    assert sorted(seen.tolist()) == list(range(100))


def test_infobatch_prunes_well_learned_at_random_and_rescales():
    y = np.repeat(np.arange(2), 500)
    st = _state(y)
    st.loss[:] = np.where(np.arange(1000) % 2 == 0, 0.1, 2.0)  # half well-learned
    plan = make_sampler("infobatch", prune_ratio=0.5).plan(st)
    well = np.isin(plan.indices, np.flatnonzero(st.loss < 1))
    assert 200 < well.sum() < 300 and (~well).sum() == 500  # ~half of 500 kept, all hard
    assert np.allclose(plan.weights[well], 2.0) and np.allclose(plan.weights[~well], 1.0)
    st.ledger.train_passes = int(0.9 * st.ledger.budget_passes)  # annealing: all data
    assert len(make_sampler("infobatch").plan(st).indices) == 1000


def test_ucb_trains_untried_samples_first_then_the_highest_bound():
    y = np.repeat(np.arange(2), 50)
    st = _state(y, budget=0.5)
    s = make_sampler("ucb", c=0.0)
    s.begin(st)
    first = s.plan(st).indices
    st.record(first, np.linspace(0, 1, len(first)).astype(np.float32),
              np.ones(len(first), np.float32), np.zeros((len(first), 8), np.float32),
              np.zeros(len(first), np.int64))
    s.end_epoch(st)
    st.epoch = 1
    second = s.plan(st).indices
    assert set(second) == set(range(100)) - set(first)  # never-trained first


def test_a_sampler_cannot_write_into_the_callers_images():
    """TrainingState.x is documented read-only, yet it was the caller's array: a sampler that
    wrote into it (normalizing in place, say) changed the images the loop trains on and the
    caller's dataset. A read-only view now; the caller's array stays writable."""
    y = np.repeat(np.arange(2), 4)
    x = np.zeros((8, 2, 2, 1), np.uint8)
    st = TrainingState(x=x, y=y, num_classes=2, epochs=1, budget=1.0,
                       ledger=CostLedger(8), rng=np.random.default_rng(0), feature_dim=2)
    with pytest.raises(ValueError, match="read-only"):
        st.x[0] = 1
    x[0] = 7  # the caller's own array is untouched by the view
    assert st.x[0].max() == 7 and x.flags.writeable


def test_training_state_records_what_each_pass_measured():
    """Before any pass a sample has no loss (NaN), zero features, prediction -1 and
    seen_epoch -1; a pass records its loss, features, prediction and epoch for the samples
    trained, and the label's probability in that epoch's row of p_true (NaN elsewhere)."""
    st = _state(np.repeat([0, 1], 3), dim=2)
    assert np.isnan(st.loss).all() and not st.features.any() and st.p_true == []
    assert (st.pred == -1).all() and (st.seen_epoch == -1).all()
    idx = np.array([4, 1])
    st.epoch = 0
    st.record(idx, np.array([0.5, 2.0]), np.array([0.6, 0.1]), np.array([[1, 2], [3, 4]]),
              np.array([1, 0]))
    st.epoch = 1
    st.record(np.array([0]), np.array([1.0]), np.array([0.4]), np.array([[5, 6]]),
              np.array([1]))
    nan = np.nan
    np.testing.assert_array_equal(st.loss, [1.0, 2.0, nan, nan, 0.5, nan])
    np.testing.assert_array_equal(st.pred, [1, 0, -1, -1, 1, -1])
    np.testing.assert_array_equal(st.seen_epoch, [1, 0, -1, -1, 0, -1])
    np.testing.assert_array_equal(st.features[[0, 1, 4]], [[5, 6], [3, 4], [1, 2]])
    assert not st.features[[2, 3, 5]].any() and len(st.p_true) == 2
    np.testing.assert_allclose(st.p_true[0], [nan, 0.1, nan, nan, 0.6, nan], rtol=1e-3)
    np.testing.assert_allclose(st.p_true[1], [0.4, nan, nan, nan, nan, nan], rtol=1e-3)


def test_rs2_draws_a_new_permutation_for_each_pass():
    """RS2 without replacement: a new permutation once every sample has been used (a stream
    that restarted the first permutation trained the same epochs in the same order every
    pass)."""
    from tinysift.guided.base import without_replacement_stream

    take = without_replacement_stream(100, np.random.default_rng(0))
    first, second = take(100), take(100)
    assert sorted(first) == sorted(second) == list(range(100))
    assert not np.array_equal(first, second)
    last = np.concatenate([take(99), take(1)])  # a pass ends on its last sample, not before
    assert sorted(last) == list(range(100))


def test_infobatch_prunes_by_its_ratio_below_the_mean_only_and_never_the_untrained():
    """The paper's rule, boundaries included: a sample at the mean loss is not well-learned;
    a never-trained one (NaN) counts as above the mean (kept, weight 1); each well-learned
    sample is pruned with probability r (r = 0.2: about 80 % kept, weight 1 / 0.8); the
    anneal starts at exactly that share of the budget."""
    y = np.repeat(np.arange(2), 500)
    st = _state(y)
    st.loss[:] = 1.0  # all at the mean: nothing is below it
    assert len(make_sampler("infobatch").plan(st).indices) == 1000
    st.loss[:] = np.where(np.arange(1000) % 2 == 0, 0.1, 2.0)
    st.loss[1:200:2] = np.nan  # 100 of the hard half never trained
    plan = make_sampler("infobatch", prune_ratio=0.2).plan(st)
    untrained = np.flatnonzero(np.isnan(st.loss))
    assert np.isin(untrained, plan.indices).all()
    assert np.allclose(plan.weights[np.isin(plan.indices, untrained)], 1.0)
    well = np.isin(plan.indices, np.flatnonzero(st.loss < 1))
    assert 370 < well.sum() < 430 and np.allclose(plan.weights[well], 1.25)
    st.ledger.train_passes = 0.875 * st.ledger.budget_passes  # progress == anneal
    assert st.ledger.progress == 0.875
    assert make_sampler("infobatch").plan(st).note == "anneal: full"


def test_ucb_keeps_moving_averages_of_each_trained_samples_loss():
    """UCB's statistics (Raju et al.): the first loss is the mean with no spread; then an
    EMA of the loss with decay d and of the squared deviation from the previous mean; only
    the samples trained this epoch move; the bound is mean + c * std."""
    y = np.repeat(np.arange(2), 5)
    st = _state(y)
    s = make_sampler("ucb", c=2.0, decay=0.75)
    s.begin(st)

    def train(idx, loss):
        st.record(np.asarray(idx), np.full(len(idx), loss, np.float32),
                  np.ones(len(idx), np.float32), np.zeros((len(idx), 8), np.float32),
                  np.zeros(len(idx), np.int64))
        s.end_epoch(st)
        st.epoch += 1

    train([0, 1, 2], 2.0)
    assert s.mean_[:3].tolist() == [2.0] * 3 and s.var_[:3].tolist() == [0.0] * 3
    train([0, 1], 1.0)  # sample 2 not trained this epoch: its statistics stay
    assert s.mean_[:2] == pytest.approx([0.75 * 2.0 + 0.25 * 1.0] * 2)
    assert s.var_[:2] == pytest.approx([0.25 * (1.0 - 2.0) ** 2] * 2)
    assert (s.mean_[2], s.var_[2], s.count_[2]) == (2.0, 0.0, 1)
    bound = s.bound()
    assert bound[0] == pytest.approx(1.75 + 2.0 * np.sqrt(0.25))
    assert bound[2] == 2.0 and np.isinf(bound[3:]).all()


@pytest.fixture(scope="module")
def noisy_digits():
    from tinysift.data import add_label_noise, load_dataset

    ds = load_dataset("digits")
    noisy, flipped = add_label_noise(ds, 0.2, 0)
    return ds, noisy, flipped


def _train(ds, method, budget=0.5, epochs=30, seed=0, **params):
    from tinysift.guided.loop import train_guided
    from tinysift.models.training import evaluate

    sampler = make_sampler(method, seed=seed, **params)
    res = train_guided(ds.x_train, ds.y_train, ds.num_classes, sampler, budget,
                       train_config=TrainConfig(epochs=epochs, seed=seed), progress=False)
    return res, sampler, evaluate(res.model, ds.x_test, ds.y_test)


def test_budget_is_held_and_runs_are_seeded():
    from tinysift.data import load_dataset

    ds = load_dataset("digits")
    res, _, acc = _train(ds, "rs2")
    full = 30 * len(ds.y_train)
    assert 0.5 * full - 128 <= res.ledger.spent <= 0.5 * full
    assert acc > 0.9  # digits at half of 30 epochs
    # The optimizer's own learning rate follows the cosine over the budget down to ~0 (a
    # schedule written into a copy once left Adam at a constant 3e-3 in every run).
    lrs = [e["lr"] for e in res.epochs]
    base = TrainConfig().learning_rate
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    assert lrs[0] > 0.8 * base and lrs[-1] < 0.02 * base
    again, _, acc2 = _train(ds, "rs2")
    assert acc2 == acc and again.ledger.epoch_sizes == res.ledger.epoch_sizes


def test_shared_step_trains_each_run_as_a_fresh_one():
    """Guided runs train through one traced step per architecture (no retracing): a run after
    another recipe (other seed, learning rate and batch size) must equal, bit for bit, the
    same run on a freshly traced step; the per-epoch hook sees the run's current weights; and
    each caller keeps a model of its own that later runs leave alone."""
    from tinysift.data import load_dataset
    from tinysift.guided import loop
    from tinysift.guided.loop import train_guided
    from tinysift.models.training import evaluate

    ds = load_dataset("digits")
    x, y, xt, yt = ds.x_train[:600], ds.y_train[:600], ds.x_test, ds.y_test

    def run(seed, **recipe):
        curve = []
        res = train_guided(x, y, 10, make_sampler("infobatch", seed=seed), 0.5,
                           train_config=TrainConfig(epochs=6, seed=seed, **recipe),
                           progress=False,
                           on_epoch_end=lambda e, m, _: curve.append(evaluate(m, xt, yt)))
        return res, curve

    loop._SHARED.__dict__.get("by_key", {}).clear()  # a freshly traced step
    first, first_curve = run(1)
    weights = [w.copy() for w in first.model.get_weights()]
    run(2, learning_rate=1e-3, batch_size=96)
    again, again_curve = run(1)
    assert again.model is not first.model
    for a, b, c in zip(weights, again.model.get_weights(), first.model.get_weights(),
                       strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)  # the later runs left the first model alone
    assert again.final_loss == first.final_loss and again.epochs == first.epochs
    assert again_curve == first_curve and first_curve[-1] == evaluate(first.model, xt, yt)


def test_flow_filter_drops_planted_mislabels(noisy_digits):
    """On digits with 20% flipped labels, what the flow method drops is mostly flipped, and
    it drops a good part of the flipped samples."""
    _, noisy, flipped = noisy_digits
    res, sampler, _ = _train(noisy, "flow", density="gmm", final_full=0.2, refresh=3,
                             mislabel_model=0.2, mislabel_posterior=0.1)
    dropped = sampler.dropped_
    assert dropped.sum() > 0.3 * flipped.sum(), (dropped.sum(), flipped.sum())
    precision = (dropped & flipped).sum() / dropped.sum()
    assert precision > 0.8, precision
    assert "density-gmm" in res.ledger.fit_seconds


def test_train_stage_guided_writes_the_ledger(tmp_path):
    from tinysift.stages.train import train

    out = train("digits", tmp_path / "run", epochs=30, guided="vq", budget=0.5,
                progress=False)
    doc = json.loads((tmp_path / "run" / "guided.json").read_text())
    assert doc["method"] == "vq" and doc["budget"] == 0.5
    led = doc["ledger"]
    assert led["spent_passes"] <= led["budget_passes"] + 1
    assert led["fit_seconds"]["codebook"] > 0 and sum(led["epoch_sizes"]) == led["train_passes"]
    assert [e["note"] for e in doc["epochs"]][:2] == ["warm-up", "warm-up"]
    assert out.test_acc > 0.5


def stage_warnings(run) -> list[str]:
    return json.loads((run / "manifest.json").read_text())["stages"]["train"]["results"][
        "warnings"]


def test_a_run_whose_fits_eat_the_budget_warns():
    """The method's own work is charged to the budget: where it leaves training less than
    half, the run says so (it stayed silent at chance accuracy: flow on digits, 12 steps)."""
    from tinysift.guided.ledger import CostLedger
    from tinysift.stages.train import _overhead_warnings

    led = CostLedger(budget_passes=10_000.0, train_passes=3_000, fit_passes=6_900.0)
    (w,) = _overhead_warnings(led, "flow", 12, 1437)
    assert "3,000" in w and "30%" in w and "12 steps" in w and "rs2" in w
    assert _overhead_warnings(CostLedger(budget_passes=10_000.0, train_passes=6_000,
                                         fit_passes=3_900.0), "flow", 50, 1437) == []
    # exactly half trained is not less than half; the overhead is what was spent beside it
    assert _overhead_warnings(CostLedger(budget_passes=10_000.0, train_passes=5_000,
                                         fit_passes=4_900.0), "flow", 40, 1437) == []
    assert "took 6,900 of the budget's 10,000 sample-passes" in w


def test_train_cli_passes_guided_params_to_the_method(tmp_path):
    """`tinysift train --guided flow --guided-params '{"judge": "knn"}'`: the judge runs (its
    fits are in the ledger) and the run records the parameters."""
    from tinysift.cli.app import main

    assert main(["train", "--dataset", "digits", "--out", str(tmp_path / "run"), "--epochs",
                 "4", "--guided", "flow", "--budget", "0.5", "--guided-params",
                 '{"judge": "knn", "per_code": 20}']) == 0
    doc = json.loads((tmp_path / "run" / "guided.json").read_text())
    assert doc["params"]["judge"] == "knn" and doc["params"]["per_code"] == 20
    assert "judge-knn" in doc["ledger"]["fit_seconds"]
    # a run whose fits left training under half the budget says so (digits' 1,437 samples:
    # the flows' seconds are many sample-passes)
    led = doc["ledger"]
    warned = [w for w in stage_warnings(tmp_path / "run") if "fixed costs" in w]
    assert bool(warned) == (led["train_passes"] < 0.5 * led["budget_passes"])
    # The stage is keyed on every parameter, defaults included (a changed default trains
    # again): naming a default changes nothing, the run is reused.
    from tinysift.stages.train import train

    stage = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["train"]
    assert stage["params"]["guided"]["params"]["alpha"] == 1.0
    again = train("digits", tmp_path / "run", epochs=4, guided="flow", budget=0.5,
                  guided_params={"judge": "knn", "per_code": 20, "alpha": 1.0},
                  progress=False)
    # a reused run reports the warnings its training recorded (the fits' overhead too)
    assert again.skipped and again.warnings == stage_warnings(tmp_path / "run")


def test_keep_steps_takes_the_recipe_s_steps_for_a_share_of_its_passes(tmp_path):
    """`tinysift train --guided M --budget 0.5 --keep-steps` trains in batches of 64: about as
    many optimizer steps as the full recipe in batches of 128, twice the same run's without
    the option, for the same sample-passes; the run records its batch."""
    from tinysift.cli.app import main
    from tinysift.data import load_dataset
    from tinysift.guided.loop import MIN_KEEP_STEPS_BATCH, keep_steps_batch, train_guided

    assert keep_steps_batch(128, 0.5) == 64 and keep_steps_batch(128, 1.0) == 128
    assert keep_steps_batch(128, 0.01) == MIN_KEEP_STEPS_BATCH
    assert keep_steps_batch(128, 0.35) == 45  # 44.8, to the nearest whole
    ds = load_dataset("digits")
    recipe = TrainConfig(epochs=4, seed=0)

    def run(budget, keep_steps):
        return train_guided(ds.x_train, ds.y_train, ds.num_classes, make_sampler("rs2"),
                            budget, train_config=recipe, progress=False,
                            keep_steps=keep_steps)

    full, half, kept = run(1.0, False), run(0.5, False), run(0.5, True)
    assert (full.batch_size, half.batch_size, kept.batch_size) == (128, 128, 64)
    assert abs(kept.steps - full.steps) <= 2 and abs(kept.steps - 2 * half.steps) <= 2
    budget = 0.5 * 4 * len(ds.y_train)
    for res in (half, kept):  # the same sample-passes: the budget less under one batch
        assert budget - res.batch_size < res.ledger.spent <= budget
    assert run(1.0, True).steps == full.steps  # at budget 1 the option changes nothing

    assert main(["train", "--dataset", "digits", "--out", str(tmp_path / "run"), "--epochs",
                 "4", "--guided", "full-cut", "--budget", "0.5", "--keep-steps"]) == 0
    doc = json.loads((tmp_path / "run" / "guided.json").read_text())
    assert doc["batch_size"] == 64
    assert main(["train", "--dataset", "digits", "--out", str(tmp_path / "bad"),
                 "--keep-steps"]) == 2


def test_a_refused_guided_run_leaves_the_folders_training_as_it_was(tmp_path):
    """The budget check ran inside the recorded train stage: a refused `--budget 1e-9` in a
    finished folder marked its training failed, and quantize and export then refused the
    folder, suggesting the refused command again. Now it is refused before the run is
    recorded; and --guided with --keep names --keep, not an --epochs nobody passed."""
    from tinysift.cli.app import main
    from tinysift.errors import BudgetError
    from tinysift.runs import Run
    from tinysift.stages.checks import require_done
    from tinysift.stages.train import train

    train("digits", tmp_path / "run", epochs=1, progress=False)
    before = (tmp_path / "run" / "manifest.json").read_text()
    with pytest.raises(BudgetError, match=r"nothing would train; raise the budget \(--budget, "
                                          r"or a bench.s --budgets\) or --epochs"):
        train("digits", tmp_path / "run", epochs=1, guided="rs2", budget=1e-9, progress=False)
    assert (tmp_path / "run" / "manifest.json").read_text() == before
    require_done(Run(tmp_path / "run"), "train", "tinysift train")
    assert main(["train", "--dataset", "digits", "--out", str(tmp_path / "k"), "--guided",
                 "vq", "--keep", "0.1", "--budget", "0.5"]) == 2
    with pytest.raises(BudgetError, match="drop --keep, --selection and --condensed"):
        train("digits", tmp_path / "k", keep=0.1, guided="vq", budget=0.5, progress=False)


def test_check_budget_refuses_less_than_the_stopping_rule_and_accepts_exactly_it():
    """The budget is refused when it buys *less* than one batch, or than one epoch's subset
    when that is smaller: exactly one batch (or one such epoch) trains, so it is accepted."""
    from tinysift.errors import BudgetError
    from tinysift.guided.base import epoch_size
    from tinysift.guided.loop import check_budget

    # an epoch is budget x N to the nearest whole, at least one sample
    assert (epoch_size(0.718, 100), epoch_size(0.004, 100)) == (72, 1)
    cfg = TrainConfig(epochs=10, seed=0, batch_size=128)
    assert check_budget(1000, 0.5, cfg, budget_passes=128.0) == 128
    with pytest.raises(BudgetError, match="less than one batch of 128"):
        check_budget(1000, 0.5, cfg, budget_passes=127.5)
    # 100 samples at 0.5: an epoch of 50, smaller than a batch
    assert check_budget(100, 0.5, cfg, budget_passes=50.0) == 128
    with pytest.raises(BudgetError, match="one epoch's batch of 50"):
        check_budget(100, 0.5, cfg, budget_passes=49.5)


def test_a_budget_under_one_batch_is_an_error_and_a_late_fit_charge_stops_the_epoch():
    """A budget smaller than one batch would train nothing and return an untrained model: a
    clear error instead. A fit made before training is charged at the epoch's second step;
    in a one-epoch recipe that epoch is the whole budget, so the epoch stops where the budget
    does instead of spending the fit on top of it."""
    from tinysift.data import load_dataset
    from tinysift.errors import BudgetError
    from tinysift.guided.loop import train_guided

    ds = load_dataset("digits")
    one_epoch = TrainConfig(epochs=1, seed=0)
    # 71.85 sample-passes, an epoch of round(0.05 x 1437) = 72 samples: not one
    with pytest.raises(BudgetError, match=r"71\.9 sample-passes .* less than one epoch's batch "
                                          r"of 72"):
        train_guided(ds.x_train, ds.y_train, ds.num_classes, make_sampler("rs2"), 0.05,
                     train_config=one_epoch, progress=False)
    res = train_guided(ds.x_train, ds.y_train, ds.num_classes,
                       make_sampler("flow", judge="knn"), 0.5, train_config=one_epoch,
                       progress=False)
    led = res.ledger
    assert led.fit_passes > 0 and res.steps > 0
    # Within the budget, or stopped as soon as the charge landed (after the first two steps,
    # which measure the speed; the fit's seconds, and so its passes, vary between runs).
    # Without the stop the whole epoch trains: 718 passes plus the fit's. The tolerance,
    # explicit: what a stopped run spends over its budget is at most the fit charged after
    # it ran (the loop cannot refuse a fit it has not timed yet: unbounded in the fit's
    # cost; `bench guided` flags runs over OVER_BUDGET x their budget).
    over = led.spent - led.budget_passes
    assert over <= 0 or (led.train_passes <= 2 * res.batch_size and over <= led.fit_passes), (
        led.to_dict())
    assert sum(led.epoch_sizes) == led.train_passes


def test_train_batch_sets_the_recipe_s_batch_and_the_keep_steps_batch(tmp_path, capsys):
    """`tinysift train --batch 64` trains the recipe in batches of 64 (twice the steps of 128)
    and records it; with `--guided M --budget 0.5 --keep-steps` the budgeted run trains in
    batches of 64 x 0.5; a batch below 1 is one clear line and exit 2, before any data."""
    from tinysift.cli.app import main

    def stage(name):
        return json.loads((tmp_path / name / "manifest.json").read_text())["stages"]["train"]

    assert main(["train", "--dataset", "digits", "--out", str(tmp_path / "b64"), "--epochs",
                 "2", "--batch", "64"]) == 0
    train = stage("b64")
    samples = train["results"]["train_samples"]
    assert train["params"]["train"]["batch_size"] == 64
    assert train["results"]["steps"] == 2 * -(-samples // 64)
    assert main(["train", "--dataset", "digits", "--out", str(tmp_path / "g"), "--epochs",
                 "4", "--guided", "full-cut", "--budget", "0.5", "--keep-steps", "--batch",
                 "64"]) == 0
    assert json.loads((tmp_path / "g" / "guided.json").read_text())["batch_size"] == 32
    # recorded in the stage's key: the same guided run without --keep-steps trains again
    assert stage("g")["params"]["guided"]["keep_steps"] is True
    capsys.readouterr()
    assert main(["train", "--dataset", "digits", "--out", str(tmp_path / "bad"), "--batch",
                 "0"]) == 2
    assert "--batch must be a whole number" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "model.keras").exists()


def test_vq_epochs_follow_the_loss_inside_a_covering_codebook():
    """After the warm-up: the epoch has budget x N samples; codewords whose members have a
    high loss get more of them (beta=1), every class keeps a share, and the last part of the
    budget trains all the data."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 400)
    st = _state(y, budget=0.25, epochs=8, dim=4)
    centers = rng.normal(size=(4, 4)) * 10
    blob = np.repeat(np.arange(4), 200)  # 2 blobs per class
    st.features[:] = centers[blob] + rng.normal(size=(800, 4))
    st.seen_epoch[:] = 0
    st.loss[:] = np.where(blob % 2 == 0, 2.0, 0.1)  # one hard blob per class
    s = make_sampler("vq", per_code=25, keep_hard=0.5)
    s.begin(st)
    st.epoch = 1
    plan = s.plan(st)
    assert plan.note.startswith("guided") and len(plan.indices) == 200
    assert len(np.unique(plan.indices)) == 200
    per_blob = np.bincount(blob[plan.indices], minlength=4)
    assert per_blob[0] > 2 * per_blob[1] and per_blob[2] > 2 * per_blob[3]
    assert per_blob[1] > 0 and per_blob[3] > 0  # easy regions keep a share
    assert np.bincount(y[plan.indices]).min() >= 90
    st.ledger.train_passes = int(0.9 * st.ledger.budget_passes)
    assert len(s.plan(st).indices) == 800  # the final part: all the data
    assert "codebook" in st.ledger.fit_seconds


def test_vq_warm_up_trains_every_sample_once_before_guiding():
    y = np.repeat(np.arange(2), 100)
    st = _state(y, budget=0.3, epochs=10)
    s = make_sampler("vq")
    s.begin(st)
    seen = []
    for epoch in range(4):
        st.epoch = epoch
        plan = s.plan(st)
        if plan.note != "warm-up":
            break
        seen.append(plan.indices)
        st.seen_epoch[plan.indices] = epoch
        st.loss[plan.indices] = 1.0
    first_pass = np.concatenate(seen)
    assert set(first_pass) == set(range(200)) and len(seen) == 4  # ceil(200 / 60)
    assert len(first_pass) == 4 * 60 and len(np.unique(first_pass[:180])) == 180
    assert len(np.unique(seen[-1])) == 60  # 20 unseen topped up with 40 distinct seen


def test_vq_within_keeps_the_hard_share_and_weights_the_random_rest():
    """Inside a codeword: the `keep_hard` share of its quota is the highest-priority members,
    the rest a draw from the others (no repeats); `unbiased` upweights the draw so the
    codeword's weights sum to its mass, `mass` gives every pick m/q, `none` weight 1."""
    members, prio = np.arange(100, 120), np.zeros(200)
    prio[members] = np.arange(20.0)  # member 119 the highest priority
    picks = {}
    for weighting in ("none", "unbiased", "mass"):
        s = make_sampler("vq", keep_hard=0.5, weighting=weighting)
        s.rng_ = np.random.default_rng(0)
        p, w = s._within(members, 8, prio)
        picks[weighting] = w
        assert p[:4].tolist() == [119, 118, 117, 116]  # the hard half, by priority
        assert len(set(p.tolist())) == 8 and np.isin(p[4:], members[:16]).all()
    np.testing.assert_allclose(picks["none"], np.ones(8))
    np.testing.assert_allclose(picks["unbiased"], [1, 1, 1, 1, 4, 4, 4, 4])  # (20-4)/(8-4)
    assert picks["unbiased"].sum() == 20
    np.testing.assert_allclose(picks["mass"], np.full(8, 20 / 8))
    s = make_sampler("vq", keep_hard=1.0)  # all of the quota by priority: the top 8
    assert sorted(s._within(members, 8, prio)[0].tolist()) == list(range(112, 120))
    s = make_sampler("vq", keep_hard=0.6, weighting="unbiased")  # 4.8 hard: 5, to the nearest
    s.rng_ = np.random.default_rng(0)
    p, w = s._within(members, 8, prio)
    assert p[:5].tolist() == [119, 118, 117, 116, 115]
    np.testing.assert_allclose(w, [1, 1, 1, 1, 1, 5, 5, 5])  # (20 - 5) / (8 - 5)


def test_vq_codeword_quotas_follow_mass_and_loss_in_a_codebook_per_class():
    """Each class gets ceil(n_c / per_code) codewords; a codeword's quota is proportional to
    mass^alpha x loss^beta: two blobs of 60 and 20 at equal loss share 3:1 (alpha=1), 1:1
    with alpha=0; at equal mass the blob with three times the loss gets three times the
    picks (beta=1); with `unbiased` weights each codeword's weights sum to its mass."""
    rng = np.random.default_rng(0)
    y = np.zeros(80, np.int64)
    blob = np.repeat([0, 1], [60, 20])
    st = _state(y, budget=0.5, epochs=8, dim=2)
    st.features[:] = np.array([[0.0, 0.0], [20.0, 0.0]])[blob] + rng.normal(size=(80, 2))
    st.seen_epoch[:], st.loss[:], st.epoch = 0, 1.0, 1
    for alpha, want in ((1.0, [30, 10]), (0.0, [20, 20])):
        s = make_sampler("vq", per_code=40, alpha=alpha)
        s.begin(st)
        plan = s.plan(st)
        assert int(s.codes_[0][1].max()) + 1 == 2  # ceil(80 / 40) codewords
        assert np.bincount(blob[plan.indices], minlength=2).tolist() == want, alpha
    y, blob = np.zeros(80, np.int64), np.repeat([0, 1], 40)
    st = _state(y, budget=0.5, epochs=8, dim=2)
    st.features[:] = np.array([[0.0, 0.0], [20.0, 0.0]])[blob] + rng.normal(size=(80, 2))
    st.seen_epoch[:], st.epoch = 0, 1
    st.loss[:] = np.where(blob == 0, 3.0, 1.0)
    s = make_sampler("vq", per_code=40)
    s.begin(st)
    assert np.bincount(blob[s.plan(st).indices], minlength=2).tolist() == [30, 10]
    s = make_sampler("vq", per_code=40, weighting="unbiased")
    s.begin(st)
    plan = s.plan(st)  # the epoch carries the weights: each codeword's sum to its mass
    np.testing.assert_allclose(np.bincount(blob[plan.indices], plan.weights), [40, 40])


def test_vq_refits_its_codebook_every_refresh_epochs_and_keeps_dropped_out_to_the_end():
    """The codebook is fit at the first guided epoch and again every `refresh` epochs (each
    fit charged); the final full-data epochs train every sample not dropped."""
    y = np.repeat(np.arange(2), 100)
    st = _state(y, budget=0.5, epochs=20, dim=4)
    st.features[:] = np.random.default_rng(0).normal(size=(200, 4))
    st.seen_epoch[:], st.loss[:] = 0, 1.0
    s = make_sampler("vq", per_code=25, refresh=2)
    s.begin(st)
    fits = []
    for epoch in range(1, 8):
        st.epoch = epoch
        s.plan(st)
        fits.append(s.fitted_epoch_)
    assert fits == [1, 1, 3, 3, 5, 5, 7]
    s.dropped_[:10] = True
    st.ledger.train_passes = int(0.95 * st.ledger.budget_passes)
    assert s.plan(st).indices.tolist() == list(range(10, 200))


def test_vq_class_beta_zero_keeps_the_class_shares():
    """With class_beta=0 (the default) a class the model gets wrong does not take the
    others' share (the class prior of an unweighted epoch stays the data's); with
    class_beta=1 it does."""
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(2), [600, 200])
    st = _state(y, budget=0.25, epochs=8, dim=4)
    st.features[:] = rng.normal(size=(800, 4))
    st.seen_epoch[:] = 0
    st.loss[:] = np.where(y == 1, 3.0, 0.1)  # the small class is the hard one
    shares = {}
    for class_beta in (1.0, 0.0):
        s = make_sampler("vq", per_code=25, class_beta=class_beta)
        s.begin(st)
        st.epoch = 1
        shares[class_beta] = np.bincount(y[s.plan(st).indices], minlength=2)
    assert shares[0.0].tolist() == [150, 50]  # 200 samples, 3:1 as in the data
    assert shares[1.0][1] > 2 * shares[0.0][1]  # loss-driven: the hard class grows
    assert make_sampler("vq").class_beta == 0.0


def _blobs(sizes, seed=0, dim=2, gap=20.0):
    """Features of blobs of the given sizes, ``gap`` apart along the first axis, and each
    sample's blob."""
    rng = np.random.default_rng(seed)
    blob = np.repeat(np.arange(len(sizes)), sizes)
    centres = np.zeros((len(sizes), dim))
    centres[:, 0] = gap * np.arange(len(sizes))
    return (centres[blob] + rng.normal(size=(len(blob), dim))).astype(np.float32), blob


def _guided(y, feats, loss, budget=0.5, **params):
    """A vq sampler past its warm-up (every sample trained once) and its first guided plan."""
    st = _state(y, budget=budget, epochs=8, dim=feats.shape[1])
    st.features[:] = feats
    st.seen_epoch[:], st.loss[:], st.epoch = 0, loss, 1
    s = make_sampler("vq", **params)
    s.begin(st)
    return s, s.plan(st)


def test_vq_class_quotas_and_codebooks_by_hand():
    """Class quotas follow size^alpha (class_beta 0): 90 and 40 samples share an epoch of 65 as
    45 and 20, and equally (33, 32: the larger remainder first) with alpha 0; a class without
    samples (1 here) gets none and no codebook; a class of 90 at 40 a codeword gets
    ceil(90 / 40) = 3 codewords, one of 40 gets 1."""
    y = np.repeat([0, 2], [90, 40])
    feats, _ = _blobs([30, 30, 30, 40])
    for alpha, want in ((1.0, [45, 0, 20]), (0.0, [33, 0, 32])):
        s, plan = _guided(y, feats, 1.0, per_code=40, alpha=alpha)
        assert np.bincount(y[plan.indices], minlength=3).tolist() == want, alpha
        assert [int(a.max()) + 1 if len(a) else 0 for _, a in s.codes_] == [3, 0, 1]


def test_vq_quotas_follow_mass_when_every_loss_is_zero():
    """A loss of exactly 0 (a learned sample's cross-entropy underflows) counts as 1e-6 in
    the quotas, so where every loss is 0 the quotas follow mass alone, for the classes
    (class_beta 1) and the codewords (beta 1): 80 and 40 samples share 60 as 40 and 20,
    blobs of 60 and 20 share class 0's 40 as 30 and 10."""
    y = np.repeat([0, 1], [80, 40])
    feats, blob = _blobs([60, 20, 40])
    s, plan = _guided(y, feats, 0.0, per_code=40, class_beta=1.0, beta=1.0)
    assert np.bincount(blob[plan.indices], minlength=3).tolist() == [30, 10, 20]


def test_vq_a_codeword_takes_at_most_its_members_and_the_rest_goes_to_the_others():
    """A codeword's quota is capped at its mass: blobs of 60 (loss 1) and 20 (loss 10) score
    60 and 200, which would give the small one 31 of an epoch of 40; it takes its 20 members
    and the other blob the other 20 (the epoch keeps its size)."""
    y = np.zeros(80, np.int64)
    feats, blob = _blobs([60, 20])
    _, plan = _guided(y, feats, np.where(blob == 1, 10.0, 1.0), per_code=40)
    assert np.bincount(blob[plan.indices], minlength=2).tolist() == [20, 20]
    assert len(np.unique(plan.indices)) == 40


@pytest.mark.parametrize("seed", range(4))
def test_lloyd_kmeans_finds_separated_blobs_and_ends_at_their_means(seed):
    """Five tight blobs on a line, 100 apart (40, 10, 10, 10, 10 samples), and k = 5:
    k-means++ seeding (each next centre drawn by the squared distance to the *nearest*
    centre so far) puts a centre in each blob, and the Lloyd steps end with each centre at
    its members' mean."""
    from tinysift.guided.methods.vq import lloyd_kmeans

    z, blob = _blobs([40, 10, 10, 10, 10], seed=seed, gap=100.0)
    cent, assign = lloyd_kmeans(z, 5, seed)
    assert len({(b, a) for b, a in zip(blob, assign, strict=True)}) == 5  # one code a blob
    assert len(set(assign.tolist())) == 5
    for j in range(5):
        np.testing.assert_allclose(cent[j], z[assign == j].mean(0), rtol=1e-5, atol=1e-4)


def test_vq_codebook_is_fit_on_the_features_top_dim_principal_axes():
    """The model embedding is the cached features on their top ``dim`` principal axes:
    features varying along two orthogonal, centred patterns (sd 10 and 5) and nowhere else
    give, at dim 2, those two columns themselves (up to sign). A pixel PCA of ``dim`` at or
    above the pixel count keeps every axis: the centred images scaled to [0, 1]."""
    from tinysift.guided.methods.vq import pixel_pca

    n = 8
    feats = np.zeros((n, 6), np.float32)
    feats[:, 3] = 10 * np.tile([1, -1], 4)
    feats[:, 1] = 5 * np.repeat([1, -1, 1, -1], 2)
    st = _state(np.repeat([0, 1], 4), dim=6)
    st.features[:] = feats
    s = make_sampler("vq", dim=2)
    s.begin(st)
    z = s.embedding_of(st)
    assert z.shape == (n, 2)
    np.testing.assert_allclose(np.abs(z), np.abs(feats[:, [3, 1]]), atol=1e-5)
    x = np.arange(32, dtype=np.uint8).reshape(8, 2, 2, 1) * 8
    flat = x.reshape(8, 4) / 255.0
    np.testing.assert_allclose(pixel_pca(x, 4, 0), flat - flat.mean(0), atol=1e-6)


def test_vq_seed_fixes_its_codebooks_and_draws_and_another_seed_changes_them():
    """The sampler's seed (not the run's) seeds its k-means and the draws inside a codeword:
    one seed, the same codebook and picks; another, others."""
    rng = np.random.default_rng(0)
    y = np.zeros(200, np.int64)
    feats = rng.normal(size=(200, 4)).astype(np.float32)
    loss = rng.random(200)

    def run(seed):
        s, plan = _guided(y, feats, loss, per_code=20, seed=seed)
        codes = s.codes_[0][1]
        s.begin(_state(y))  # the draws afresh, apart from the codebook's
        return codes, plan.indices, s._within(np.arange(50), 20, loss)[0]

    (code0, plan0, within0), (code0b, plan0b, within0b) = run(0), run(0)
    code1, _, within1 = run(1)
    np.testing.assert_array_equal(code0, code0b)
    np.testing.assert_array_equal(plan0, plan0b)
    np.testing.assert_array_equal(within0, within0b)
    assert not np.array_equal(code0, code1) and not np.array_equal(within0, within1)


def test_vq_run_again_fits_its_codebook_again():
    """A sampler begun again (a second run with the same sampler) starts afresh: its first
    guided epoch fits a codebook, whatever epoch the previous run's last fit was at."""
    y = np.repeat(np.arange(2), 100)
    feats = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    s = make_sampler("vq", per_code=25)
    for epochs in (range(1, 8), range(1, 3)):
        st = _state(y, budget=0.5, epochs=20, dim=4)
        st.features[:] = feats
        st.seen_epoch[:], st.loss[:] = 0, 1.0
        s.begin(st)
        for epoch in epochs:
            st.epoch = epoch
            plan = s.plan(st)
            assert plan.note.startswith("guided") and len(plan.indices) == 100
        assert s.fitted_epoch_ == 1 + 2 * ((epochs[-1] - 1) // 2)


def test_vq_warm_up_never_trains_dropped_samples():
    """Samples dropped before the warm-up (a subclass's judge) are not trained in it: at
    budget 1 the first epoch is every kept sample once (it was a crash: the top-up drew
    from the seen samples, none yet)."""
    y = np.repeat(np.arange(2), 100)
    st = _state(y, budget=1.0, epochs=4)
    s = make_sampler("vq")
    s.begin(st)
    s.dropped_[:30] = True
    plan = s.plan(st)
    assert plan.note == "warm-up" and sorted(plan.indices.tolist()) == list(range(30, 200))


def test_vq_on_the_pixels_fits_its_codebook_on_the_images_not_the_features() -> None:
    """``embedding="pixels"``: the codebook is fit on a PCA of the images (fit once in
    begin, charged to the budget as "pixel-pca"), not on the model's cached features: images
    in two far-apart groups get a codeword each even where every feature is the same, and
    the images' four pixels are reduced to ``dim`` axes."""
    y = np.zeros(80, np.int64)
    group = np.repeat([0, 1], 40)
    rng = np.random.default_rng(0)
    x = np.clip(40 + 160 * group[:, None] + rng.normal(0, 5, (80, 4)), 0, 255).astype(np.uint8)
    st = TrainingState(x=x.reshape(80, 2, 2, 1), y=y, num_classes=1, epochs=8, budget=0.5,
                       ledger=CostLedger(0.5 * 8 * 80), rng=np.random.default_rng(0),
                       feature_dim=4)
    st.seen_epoch[:], st.loss[:], st.epoch = 0, 1.0, 1  # the features stay all zero
    s = make_sampler("vq", per_code=40, embedding="pixels", dim=2)
    s.begin(st)
    assert "pixel-pca" in st.ledger.fit_seconds
    assert s.embedding_of(st).shape == (80, 2)
    s.plan(st)
    idx, assign = s.codes_[0]
    assert len(set(assign.tolist())) == 2  # two codewords, one a group:
    assert len({(g, a) for g, a in zip(group[idx], assign, strict=True)}) == 2


def test_vq_guided_epochs_leave_dropped_samples_out_and_say_how_many() -> None:
    """A sample dropped (flow's filter, a subclass's judge) is in no codebook and in no
    guided epoch, and the epoch's note counts them: the plan log shows the filter at work."""
    y = np.repeat(np.arange(2), 100)
    st = _state(y, budget=0.9, epochs=8, dim=4)
    st.features[:] = np.random.default_rng(0).normal(size=(200, 4))
    st.seen_epoch[:], st.loss[:], st.epoch = 0, 1.0, 1
    s = make_sampler("vq", per_code=25)
    s.begin(st)
    s.dropped_[[0, 1, 2, 150]] = True
    plan = s.plan(st)
    assert plan.note == "guided (4 dropped)"
    assert not np.isin([0, 1, 2, 150], plan.indices).any()
    assert len(plan.indices) == 180  # 0.9 x 200 of the 196 kept
    assert not np.isin([0, 1, 2, 150], np.concatenate([idx for idx, _ in s.codes_])).any()


def test_vq_keeps_a_sample_without_a_measured_loss_first_and_its_codeword_at_the_mean() -> None:
    """A NaN loss (a pass whose loss overflowed) ranks first inside its codeword, as an
    untrained sample would (nothing says it is learned), and counts as the mean loss in the
    codeword quotas: a blob of NaN losses neither starves nor takes the epoch (two blobs of
    40, the other's losses 1 and 3, share 40 as 20 and 20, the NaN blob's mean being 2)."""
    y = np.zeros(80, np.int64)
    feats, blob = _blobs([40, 40])
    loss = np.where(blob == 1, np.nan, np.tile([1.0, 3.0], 40))
    s, plan = _guided(y, feats, loss, per_code=40)
    assert np.bincount(blob[plan.indices], minlength=2).tolist() == [20, 20]
    loss = np.full(80, 1.0)
    loss[5] = np.nan
    s, plan = _guided(y, feats, loss, per_code=40, keep_hard=0.1)
    assert 5 in plan.indices[[0, 20]]  # its codeword's hard share (2 of its 20) starts with it


def test_vq_warm_up_draws_its_unseen_samples_in_the_run_s_random_order() -> None:
    """The warm-up's epochs are random draws of the samples not trained yet, from the run's
    generator: not the first samples of the dataset in order (a class-sorted dataset would
    train one class first), and another run seed draws another epoch."""
    y = np.repeat(np.arange(2), 100)
    firsts = []
    for seed in (0, 1):
        st = _state(y, budget=0.3, epochs=10, seed=seed)
        s = make_sampler("vq")
        s.begin(st)
        firsts.append(s.plan(st).indices)
    assert (np.bincount(y[firsts[0]], minlength=2) > 10).all()  # both classes in 60
    assert not np.array_equal(np.sort(firsts[0]), np.sort(firsts[1]))


def test_vq_a_class_takes_at_most_its_samples_and_a_whole_codeword_weighs_one_a_member() -> None:
    """With class_beta 1 a small hard class (20 samples, loss 10, against 60 at 0.1) would
    take 31 of an epoch of 40; it takes its 20 and the other class the other 20, so the
    epoch keeps its size; and under ``unbiased`` weights a codeword taken whole weighs 1 a
    member (its weights sum to its mass, as every codeword's)."""
    y = np.repeat([0, 1], [60, 20])
    feats, _ = _blobs([60, 20])
    _, plan = _guided(y, feats, np.where(y == 1, 10.0, 0.1), per_code=40, class_beta=1.0,
                      weighting="unbiased")
    assert len(plan.indices) == 40 and np.bincount(y[plan.indices]).tolist() == [20, 20]
    np.testing.assert_allclose(plan.weights[y[plan.indices] == 1], np.ones(20))
    np.testing.assert_allclose(np.bincount(y[plan.indices], plan.weights), [60, 20])


def test_vq_unbiased_weight_of_a_single_random_pick_is_the_rest_of_its_codeword() -> None:
    """A quota of 2 from 20 members at keep_hard 0.5: the hard pick weighs 1 and the one
    random pick stands for the other 19 members (weight 19), so the codeword's weights still
    sum to its mass."""
    members, prio = np.arange(20), np.arange(20.0)
    s = make_sampler("vq", keep_hard=0.5, weighting="unbiased")
    s.rng_ = np.random.default_rng(0)
    picks, weights = s._within(members, 2, prio)
    assert picks[0] == 19 and picks[1] in range(19)
    np.testing.assert_allclose(weights, [1, 19])


@pytest.mark.parametrize("method, params, match", [
    ("vq", {"keep_hard": 1.5}, "need 0 <= keep_hard <= 1"),
    ("vq", {"keep_hard": -0.1}, "need 0 <= keep_hard <= 1"),
    ("vq", {"final_full": 1.0}, "0 <= final_full < 1"),
    ("vq", {"final_full": -0.1}, "0 <= final_full < 1"),
    ("vq", {"weighting": "unbiassed"}, "weighting must be one of"),
    ("vq", {"embedding": "pixel"}, "embedding must be one of"),
    ("vq", {"refresh": 0}, "refresh must be a whole number of epochs >= 1, got 0"),
    ("vq", {"alpha": float("nan")}, "alpha, beta and class_beta must be finite numbers, got "
                                    "alpha=nan"),
    ("vq", {"beta": float("inf"), "class_beta": float("-inf")}, "got beta=inf, class_beta=-inf"),
    ("flow", {"judge": "knn", "judge_references": 0.0}, "judge_references must be a share"),
    ("flow", {"judge": "knn", "judge_dim": 0}, "judge_dim must be a positive PCA dimension"),
])
def test_vq_and_flow_refuse_parameters_outside_their_ranges(method, params, match):
    """The documented ranges, refused when the sampler is made: a keep_hard share outside
    [0, 1], a final share of the whole budget (nothing guided), an unknown weighting or
    embedding, a refresh of no epochs (a refit every epoch, unsaid), an exponent that is no
    finite number (NaN quotas cast to garbage counts), a judge measuring its distances to no
    reference or on a PCA of no dimension (judge_dim=0 judged silently on vq's dimension
    instead)."""
    from tinysift.errors import TinysiftError

    with pytest.raises(TinysiftError, match=match):
        make_sampler(method, **params)


def _two_blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two well-separated classes of 4x4 images, n/2 each: the labels and the images."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(2), n // 2)
    x = np.clip(rng.normal(60 + 120 * truth[:, None], 15, (n, 16)), 0, 255)
    return truth, x.astype(np.uint8).reshape(n, 4, 4, 1)


@pytest.mark.parametrize("per_class", [FLOW_MIN_CLASS - 1, FLOW_MIN_CLASS])
def test_flow_fits_a_mixture_on_classes_smaller_than_a_flow_batch(per_class):
    """density="flow" fits per-class flows, but a Gaussian mixture once a class is smaller
    than a flow's batch (on Digits' 112-a-class the mixture held out better, for 0.08 s of
    fit against 2.25 s: docs/methods.md); the ledger names the density that was fit."""
    y, x = _two_blobs(2 * per_class)
    st = TrainingState(x=x, y=y, num_classes=2, epochs=4, budget=0.5,
                       ledger=CostLedger(4 * len(y)), rng=np.random.default_rng(0),
                       feature_dim=4)
    s = make_sampler("flow", per_code=20, refresh=1)
    assert s.params()["density"] == "flow"
    s.begin(st)
    feats = np.column_stack([y, 1 - y, y, 1 - y]).astype(np.float32)
    feats += np.random.default_rng(1).normal(0, 0.3, feats.shape).astype(np.float32)
    for epoch in range(4):  # the first codebook refit (and density fit) ends the warm-up
        st.epoch = epoch
        plan = s.plan(st)
        st.record(plan.indices, np.full(len(plan.indices), 0.1, np.float32),
                  np.full(len(plan.indices), 0.9, np.float32), feats[plan.indices],
                  y[plan.indices])
        s.end_epoch(st)
    expected = "gmm" if per_class < FLOW_MIN_CLASS else "flow"
    assert s.density_fit_ == expected
    assert {k for k in st.ledger.fit_seconds if k.startswith("density-")} == {
        f"density-{expected}"}
    assert FlowGuided.density_kind("knn", y[:3], 2) == "knn"  # only flow is replaced


def test_densities_leave_a_class_without_samples_out():
    """A class absent from the fit set (a dataset may lack one) neither decides the flow/
    mixture rule nor breaks the mixture: it is never the most likely class."""
    y, _ = _two_blobs(2 * FLOW_MIN_CLASS)
    assert FlowGuided.density_kind("flow", y, 3) == "flow"  # class 2 has no samples
    assert FlowGuided.density_kind("flow", y[FLOW_MIN_CLASS - 20:], 3) == "gmm"
    z = np.random.default_rng(0).normal(size=(len(y), 4)) + 3 * y[:, None]
    logp = make_density("gmm").fit(z, y, 3).log_prob(z)
    assert np.isfinite(logp[:, :2]).all() and np.isneginf(logp[:, 2]).all()
    p_label = label_agreement(logp, y, 3)
    assert np.isfinite(p_label).all() and (logp.argmax(1) < 2).all()


def test_flow_runs_with_a_class_of_one_sample():
    """A class of one sample (tiny data) gets a mixture (smaller than a flow's batch), which
    scikit-learn refused to fit on one sample: the guided flow run crashed at its first
    density fit. Now a Gaussian at the sample, its own class the most likely there."""
    y2, x2 = _two_blobs(80)
    y = np.r_[y2, 2]
    x = np.concatenate([x2, x2[:1]])
    logp = make_density("gmm").fit(x.reshape(len(y), -1).astype(np.float64), y, 3).log_prob(
        x.reshape(len(y), -1).astype(np.float64))
    assert np.isfinite(logp).all() and logp[-1].argmax() == 2
    st = TrainingState(x=x, y=y, num_classes=3, epochs=4, budget=0.5,
                       ledger=CostLedger(2 * len(y)), rng=np.random.default_rng(0),
                       feature_dim=4)
    s = make_sampler("flow", per_code=20, refresh=1)
    s.begin(st)
    feats = np.column_stack([y == 0, y == 1, y == 2, y == 0]).astype(np.float32)
    feats += np.random.default_rng(1).normal(0, 0.3, feats.shape).astype(np.float32)
    notes = []
    for epoch in range(4):
        st.epoch = epoch
        plan = s.plan(st)
        notes.append(plan.note)
        st.record(plan.indices, np.full(len(plan.indices), 0.1, np.float32),
                  np.full(len(plan.indices), 0.9, np.float32), feats[plan.indices],
                  y[plan.indices])
        s.end_epoch(st)
    assert notes[-1].startswith("guided") and s.density_fit_ == "gmm"


def test_flow_judged_samples_do_not_take_the_filter_s_places_under_the_cap():
    """The samples judged before training are dropped apart from the model-side filter's
    cap (max_drop of a class each, the module docstring). Never trained (prediction -1, so
    "misclassified"; at a rejudge among the suspects already), they used to fill that cap
    first and push the filter's own suspects out."""
    y = np.repeat([0, 1], 100)
    st = _state(y)
    s = make_sampler("flow", judge="knn", max_drop=0.3)
    s.judged_ = np.zeros(200, bool)
    s.judged_[:25] = True  # a quarter of class 0 judged on the pixels
    s.dropped_ = s.judged_.copy()
    s.posterior_ = np.full(200, 0.9)
    s.posterior_[:25] = 0.001
    s.density_class_ = 1 - y
    s.typicality_rank_ = np.full(200, 0.5)
    s.typicality_rank_[:25] = 0.0  # at the features' mean, far from the class
    st.pred[:] = y
    st.pred[:25] = -1  # never trained
    st.loss[:] = 0.1
    st.loss[:25] = np.nan
    flagged = np.arange(25, 35)  # the model and the density both say class 1
    st.pred[flagged], st.loss[flagged], s.posterior_[flagged] = 1, 5.0, 0.01
    assert np.flatnonzero(s._judge(st)).tolist() == flagged.tolist()
    s.refits_ = 1  # a later refit reusing the density: the labels judged again
    s.before_codebook(st)
    assert np.flatnonzero(s.dropped_).tolist() == list(range(35))


def test_flow_judge_drops_agreed_mislabels_and_misclassified_outliers_under_the_cap():
    """The model-side filter's rule, sample by sample: a mislabel needs the density's
    posterior *and* the model's probability of the label below their thresholds and both
    to name the same other class; an outlier (lowest `outlier_tail` of typicality) goes only
    when misclassified; at most `max_drop` of a class, lowest posterior first; a suspect
    passed in `also` stays one."""
    y = np.repeat([0, 1], 100)
    st = _state(y)
    s = make_sampler("flow", max_drop=0.03)  # at most 3 of a class
    s.judged_ = np.zeros(200, bool)
    s.posterior_ = np.full(200, 0.9)
    s.density_class_ = y.copy()
    s.typicality_rank_ = np.full(200, 0.5)
    st.pred[:], st.loss[:] = y, 0.1

    def mislabel(i, post=0.01, loss=5.0, density_class=None):  # the model says 1 - y[i]
        st.pred[i], st.loss[i], s.posterior_[i] = 1 - y[i], loss, post
        s.density_class_[i] = 1 - y[i] if density_class is None else density_class

    mislabel(0)  # dropped
    mislabel(1, loss=1.0)  # the model still gives the label 0.37: kept
    mislabel(2, post=0.2)  # the density still vouches for the label: kept
    mislabel(3, density_class=0)  # the density says the label's class: kept
    s.typicality_rank_[[4, 5]] = 0.0  # least typical of class 0
    st.pred[4] = 1  # ... and misclassified: dropped; 5 is classified right: kept
    for i, post in zip(range(100, 105), [0.004, 0.001, 0.005, 0.002, 0.003], strict=True):
        mislabel(i, post=post)  # five suspects in class 1: the three least likely go
    assert np.flatnonzero(s._judge(st)).tolist() == [0, 4, 101, 103, 104]
    also = np.zeros(200, bool)
    also[7] = True  # dropped at an earlier refit, the model now right: still a suspect
    assert np.flatnonzero(s._judge(st, also=also)).tolist() == [0, 4, 7, 101, 103, 104]


def _far_off_pair(far: float):
    """Two classes of 150 four-dimensional features, samples 0 and 1 of class 0 ``far`` away
    from both classes (along different axes)."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 150)
    z = np.where(y[:, None] == 0, 0.0, 6.0) + rng.normal(size=(300, 4))
    z[0], z[1] = [-far, 0, 0, 0], [0, -far, 0, 0]
    return y, z.astype(np.float32)


def test_flow_drops_the_least_typical_misclassified_sample_at_its_density_fit():
    """At the first codebook refit the density is fit (charged) and each sample's typicality
    rank is its log p(z|y) inside its class: two planted far-off samples of class 0 rank
    lowest; the one the model gets wrong is dropped, the one it gets right is kept."""
    y, z = _far_off_pair(10.0)
    st = _state(y, budget=0.5, epochs=8, dim=4)
    st.features[:] = z
    st.seen_epoch[:], st.loss[:], st.pred[:], st.epoch = 0, 0.1, y, 1
    st.p_true = [np.full(300, 0.9, np.float16)]
    st.pred[0] = 1
    s = make_sampler("flow", density="knn", per_code=50)
    s.begin(st)
    s.plan(st)
    np.testing.assert_allclose(s.typicality_rank_[[0, 1]], [0.0, 1 / 150])  # class 0's lowest
    assert np.flatnonzero(s.dropped_).tolist() == [0] and "density-knn" in st.ledger.fit_seconds


@pytest.mark.parametrize("far", [5.0, 12.0, 30.0])
def test_gmm_typicality_ranks_an_isolated_sample_lowest(far):
    """Found by the mutation audit (2026-12-05), mended the same day: flow's `gmm` density
    (used where a class is smaller than a flow's batch, e.g. Digits, and by density="gmm")
    gave a sample 12 or more standard deviations from its class a component of its own and
    rated it the *most* typical of it, out of reach of the outlier rule (lowest 2 % of
    typicality, misclassified); a component explaining under 5 samples is dropped now."""
    from tinysift.scoring.density import typicality

    y, z = _far_off_pair(far)
    logp = make_density("gmm", seed=0).fit(z, y, 2).log_prob(z)
    t = typicality(logp, y)[:150]
    assert (t[[0, 1]] < np.quantile(t[2:], 0.02)).all()


def test_gmm_log_density_is_scikit_learns_mixture_where_no_component_is_dropped():
    """The mixture's own log-density (kept components, renormalised) is scikit-learn's
    score_samples when every component explains 5 samples or more; a class of one sample
    is a Gaussian of variance 1e-4 at it (float32 samples too), an absent class -inf."""
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(3)
    # class 0: four clusters of 20 (4 components), class 1: two of 12 and 13 (2), class 2: one
    corners = np.eye(3)[[0, 1, 2, 0]] * [[8], [8], [8], [-8]]
    centres = np.concatenate([np.repeat(corners, 20, axis=0),
                              np.repeat([[20.0, 0, 0], [20.0, 8, 0]], [12, 13], axis=0),
                              [[0.0, 0, 30]]])
    y = np.repeat([0, 1, 2], [80, 25, 1])
    z = (centres + rng.normal(size=centres.shape)).astype(np.float32)
    logp = make_density("gmm", seed=0).fit(z, y, 4).log_prob(z)
    for c, k in [(0, 4), (1, 2)]:
        z64 = z.astype(np.float64)  # what the density fits on
        ref = GaussianMixture(k, covariance_type="diag", reg_covar=1e-4,
                              random_state=0).fit(z64[y == c])
        assert (ref.weights_ * (y == c).sum() >= 5).all()
        np.testing.assert_allclose(logp[:, c], ref.score_samples(z64), rtol=1e-6, atol=1e-6)
    # variance 1e-4 at the sample (fit in float64: float32 rounding gave 1.3e-3 at |z| 30)
    assert logp[105, 2] == pytest.approx(-1.5 * np.log(2 * np.pi * 1e-4), abs=1e-3)
    assert logp[:105, 2].max() < -1e4
    far = make_density("gmm", seed=0).fit(np.full((1, 3), 1000.0, np.float32),
                                          np.zeros(1, np.int64), 1)
    assert far.log_prob(np.full((1, 3), 1000.0))[0, 0] == pytest.approx(
        -1.5 * np.log(2 * np.pi * 1e-4), abs=1e-3)  # was scikit-learn's "ill-defined" error
    assert np.isneginf(logp[:, 3]).all()


def test_gmm_drops_a_component_of_under_5_samples_and_renormalises():
    """A cluster of 3 beside one of 57 gets no component of its own (it would explain 3
    samples): its samples are scored by the big cluster's Gaussian alone, weight 1."""
    rng = np.random.default_rng(4)
    z = np.concatenate([rng.normal(size=(57, 2)), rng.normal(size=(3, 2)) * 0.1 + 40.0])
    y = np.zeros(60, np.int64)
    gm = make_density("gmm", seed=0, components=2).fit(z, y, 1)
    log_w, means, var = gm.models_[0]
    assert len(log_w) == 1 and log_w[0] == pytest.approx(0.0)
    assert np.abs(means[0]).max() < 5.0  # the big cluster's
    logp = gm.log_prob(z)[:, 0]
    assert logp[57:].max() < logp[:57].min()


def test_gmm_keeps_a_component_of_exactly_min_members_samples():
    """Only a component explaining *fewer* than min_members samples is dropped: two clusters
    of 10, 100 standard deviations apart, give two components of weight exactly 1/2 (the
    responsibilities are 0 or 1), 10 samples each, and with min_members=10 both stay: the
    density is scikit-learn's mixture. Dropping at 10 too (a strict bound) scored one
    cluster by the other's Gaussian alone, 100 sd off."""
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(5)
    z = np.concatenate([rng.normal(size=(10, 2)), rng.normal(size=(10, 2)) + 100.0])
    ref = GaussianMixture(2, covariance_type="diag", reg_covar=1e-4, random_state=0).fit(z)
    assert (ref.weights_ * 20 == 10.0).all()  # the tie this test is about
    gm = make_density("gmm", seed=0, min_members=10).fit(z, np.zeros(20, np.int64), 1)
    assert len(gm.models_[0][0]) == 2
    np.testing.assert_allclose(gm.log_prob(z)[:, 0], ref.score_samples(z), rtol=1e-9,
                               atol=1e-9)


def test_flow_priority_mixes_the_loss_and_uncertainty_ranks_by_loss_weight():
    """priority = loss_weight x rank(loss) + (1 - loss_weight) x rank(dynamic uncertainty),
    both ranks inside the class; a sample never trained (NaN loss) ranks highest by loss."""
    y = np.zeros(5, np.int64)
    st = _state(y)
    st.loss[:] = [1.0, 2.0, 3.0, 4.0, np.nan]
    # p_true over two passes: the std falls as the loss rises (0.3, 0.2, 0.1, 0, 0)
    st.p_true = [np.array([0.2, 0.3, 0.4, 0.5, np.nan], np.float16),
                 np.array([0.8, 0.7, 0.6, 0.5, np.nan], np.float16)]
    prio = make_sampler("flow", loss_weight=0.75).priority(st)
    rank_loss = np.array([0.0, 0.2, 0.4, 0.6, 0.8])
    rank_du = np.array([0.8, 0.6, 0.4, 0.1, 0.1])  # the two zeros share their mean rank
    np.testing.assert_allclose(prio, 0.75 * rank_loss + 0.25 * rank_du, atol=1e-6)


def test_flow_label_posterior_uses_the_class_shares_and_fit_on_agree_the_agreed():
    """p(label | z) takes the labels' class shares as priors (equal densities: the share);
    fit_on="agree" fits each class's density on the samples the model predicts as labelled,
    on all of them where a class has fewer than 10 such."""
    y = np.repeat([0, 1], [30, 10])
    p = label_agreement(np.zeros((40, 2)), y, 2)
    np.testing.assert_allclose(p, np.where(y == 0, 0.75, 0.25))
    st = _state(y)
    st.pred[:] = y
    st.pred[:5] = 1  # five of class 0 predicted as class 1
    s = make_sampler("flow", fit_on="agree")
    s.judged_ = np.zeros(40, bool)
    assert np.flatnonzero(~s.density_fit_mask(st)).tolist() == [0, 1, 2, 3, 4]
    st.pred[30:32] = 0  # class 1 keeps 8 agreed samples: fit on everything
    assert s.density_fit_mask(st).all()
    s.fit_on = "all"
    st.pred[:] = y
    st.pred[:5] = 1
    assert s.density_fit_mask(st).all()


def _filter(y, **params):
    """A flow sampler's model-side filter set up by hand: the density vouches for every
    label (posterior 0.9, its class the label's, typicality rank 0.5), the model predicts
    every label at loss 0.1; nothing judged before training."""
    st = _state(y)
    s = make_sampler("flow", **params)
    s.judged_ = np.zeros(len(y), bool)
    s.dropped_ = np.zeros(len(y), bool)
    s.posterior_ = np.full(len(y), 0.9)
    s.density_class_ = np.asarray(y).copy()
    s.typicality_rank_ = np.full(len(y), 0.5)
    st.pred[:], st.loss[:] = y, 0.1
    return s, st


def test_flow_filter_thresholds_are_strict_and_the_cap_rounds_down():
    """"Below" is strictly below: a posterior of exactly mislabel_posterior, or a typicality
    rank of exactly outlier_tail (the lowest 2 % of 100 are ranks 0 and 0.01), keeps the
    sample; the cap is max_drop x the class's size rounded down (0.035 x 100: 3)."""
    y = np.repeat([0, 1], 100)
    s, st = _filter(y, max_drop=0.035)
    st.pred[[0, 1]], st.loss[[0, 1]], s.density_class_[[0, 1]] = 1, 5.0, 1
    s.posterior_[[0, 1]] = [0.05, 0.049]  # at the threshold: kept; under it: dropped
    st.pred[[2, 3]] = 1  # misclassified, at the outlier tail and just under it
    s.typicality_rank_[[2, 3]] = [0.02, 0.01]
    flagged = np.arange(100, 105)  # five agreed mislabels in class 1: the cap takes three
    st.pred[flagged], st.loss[flagged], s.density_class_[flagged] = 0, 5.0, 0
    s.posterior_[flagged] = [0.004, 0.001, 0.005, 0.002, 0.003]
    assert np.flatnonzero(s._judge(st)).tolist() == [1, 3, 101, 103, 104]


def test_flow_rejudge_off_keeps_the_last_verdict_until_the_density_is_fit_again():
    """With rejudge=False a codebook refit that reuses the density leaves the dropped set as
    it was (plus the judged samples), though the model now flags another sample; with the
    default rejudge the same refit drops it."""
    y = np.repeat([0, 1], 100)
    for rejudge, want in ((False, [5]), (True, [5, 7])):
        s, st = _filter(y, rejudge=rejudge)
        s.dropped_[5] = True  # the verdict of the density's fit
        st.pred[7], st.loss[7], s.posterior_[7], s.density_class_[7] = 1, 5.0, 0.01, 1
        s.refits_ = 0  # the fit was the first refit: the next one reuses the density
        s.before_codebook(st)
        assert np.flatnonzero(s.dropped_).tolist() == want, rejudge


@pytest.mark.parametrize("density_refits, fits", [(0, [0]), (1, [0, 1, 2, 3, 4]),
                                                   (2, [0, 2, 4])])
def test_flow_fits_its_density_at_every_density_refits_th_codebook_refit(density_refits, fits):
    """density_refits k: the density is fit at refits 0, k, 2k, ... (0: once, at the first
    refit); the refits between reuse it (the same posterior)."""
    y = np.repeat([0, 1], 30)
    st = _state(y, dim=2)
    s = make_sampler("flow", density="knn", density_refits=density_refits)
    s.begin(st)
    s.z_ = np.where(y[:, None] == 0, 0.0, 5.0) + np.random.default_rng(0).normal(size=(60, 2))
    st.pred[:], st.loss[:] = y, 0.1
    posteriors = []
    for _ in range(5):
        s.before_codebook(st)
        posteriors.append(s.posterior_)
    assert [i for i, p in enumerate(posteriors) if i == 0 or p is not posteriors[i - 1]] == fits


def test_flow_begun_again_fits_its_density_again():
    """A flow sampler begun again (a second run) fits its density at its first codebook refit,
    charged to the new run's ledger, whatever refits the previous run made."""
    y = np.repeat([0, 1], 30)
    feats = np.where(y[:, None] == 0, 0.0, 5.0) + np.random.default_rng(0).normal(size=(60, 2))
    s = make_sampler("flow", density="knn", per_code=10, refresh=1)
    for _ in range(2):
        st = _state(y, budget=0.5, epochs=20, dim=2)
        st.features[:], st.seen_epoch[:], st.loss[:], st.pred[:] = feats, 0, 0.1, y
        st.p_true = [np.full(60, 0.9, np.float16)]
        s.begin(st)
        for epoch in range(1, 4):
            st.epoch = epoch
            s.plan(st)
        assert "density-knn" in st.ledger.fit_seconds


def test_flow_fit_on_agree_fits_and_picks_the_density_on_the_agreed_samples():
    """fit_on="agree": each class's density is fit on the samples the model predicts as
    labelled, so 20 flipped samples (labelled 0, in class 1's blob, predicted 1) do not shape
    class 0's density: the label's posterior is low and they are dropped (a density fit on
    everything labelled 0 would vouch for them, their nearest neighbours in class 0 being
    each other). The flow/mixture rule counts the fit set too: 256 a class, 20 of class 0
    not agreed, leave 236 under a flow's batch: a mixture."""
    from tinysift.guided.methods.flow import FLOW_MIN_CLASS

    y = np.repeat([0, 1], [120, 100])
    z = np.where(np.arange(220)[:, None] < 100, 0.0, 20.0)
    z = z + np.random.default_rng(0).normal(size=(220, 2))  # 100-119: labelled 0 at blob 1
    st = _state(y, dim=2)
    st.pred[:], st.loss[:] = y, 0.1
    st.pred[100:120], st.loss[100:120] = 1, 5.0
    s = make_sampler("flow", density="knn", fit_on="agree", max_drop=0.3)
    s.begin(st)
    s.z_ = z
    s.before_codebook(st)
    assert np.flatnonzero(s.dropped_).tolist() == list(range(100, 120))
    n = FLOW_MIN_CLASS
    y = np.repeat([0, 1], n)
    st = _state(y, dim=2)
    st.pred[:] = y
    st.pred[:20] = 1
    s = make_sampler("flow", fit_on="agree")
    s.begin(st)
    s.z_ = np.random.default_rng(0).normal(size=(2 * n, 2)) + 4 * y[:, None]
    s.before_codebook(st)
    assert s.density_fit_ == "gmm"


def test_flow_densities_take_its_seed_and_steps():
    """The densities flow fits are seeded by the sampler's seed, and its flows take
    density_steps Adam steps (the density's own default is 300)."""
    s = make_sampler("flow", seed=7, density_steps=5)
    flow, gmm = s._density("flow"), s._density("gmm")
    assert (flow.seed, flow.steps, gmm.seed) == (7, 5, 7)


def test_flow_embedding_puts_judged_samples_at_the_kept_mean():
    """Samples judged before training have no features (zeros): the embedding puts them at
    the kept samples' mean, so the kept samples' embedding is the PCA of their own
    features: two orthogonal centred patterns around (0, 20), sd 10 and 5, at dim 2 are
    those columns (up to sign); zeros left in place would add variance along the second."""
    y = np.repeat([0, 1], 8)
    st = _state(y, dim=3)
    kept = np.zeros((8, 3), np.float32)
    kept[:, 0] = 5 * np.tile([1, -1], 4)
    kept[:, 1] = 20 + 10 * np.repeat([1, -1, 1, -1], 2)
    judged = np.zeros(16, bool)
    judged[8:] = True
    st.features[:8] = kept
    s = make_sampler("flow", dim=2)
    s.judged_ = judged
    z = s.embedding_of(st)
    want = kept[:, [1, 0]] - kept[:, [1, 0]].mean(0)
    np.testing.assert_allclose(np.abs(z[:8]), np.abs(want), atol=1e-4)
    np.testing.assert_allclose(z[8:], 0.0, atol=1e-4)


def test_flow_priority_under_the_old_rule_uses_the_run_s_last_epochs_and_index_ties():
    """priority_rule="epochs" (kept to reproduce rows before 2026-12-03): the uncertainty over
    the run's last du_window epochs, ties ranked by index. Three samples, du_window 2, p_true
    over three epochs: sample 0 trained in epochs 0 and 2 (0.2, 0.8), 1 in 1 and 2 (0.4,
    0.6), 2 in 2 only. The old rule: stds 0, 0.1, 0 (sample 0's epoch 0 is out of the
    window) -> ranks by index 0, 2/3, 1/3; losses 1, 2, 3 -> ranks 0, 1/3, 2/3."""
    y = np.zeros(3, np.int64)
    st = _state(y)
    st.loss[:] = [1.0, 2.0, 3.0]
    nan = np.nan
    st.p_true = [np.array(r, np.float16) for r in ([0.2, nan, nan], [nan, 0.4, nan],
                                                   [0.8, 0.6, 0.5])]
    s = make_sampler("flow", loss_weight=0.5, du_window=2, priority_rule="epochs")
    np.testing.assert_allclose(s.priority(st), 0.5 * np.array([0, 1 / 3, 2 / 3])
                               + 0.5 * np.array([0, 2 / 3, 1 / 3]), atol=1e-3)


def test_epochs_smaller_than_a_batch_spend_the_budget():
    """On tiny data (budget x N under a batch) every epoch is one batch of its own size; the
    loop stopped once less than a full batch of 128 was left, which here was half the budget
    (the learning rate never decayed). Now it stops with less than one such epoch left."""
    from tinysift.data import load_dataset
    from tinysift.guided.loop import train_guided

    ds = load_dataset("digits")
    x, y = ds.x_train[:100], ds.y_train[:100]
    for method, size in (("rs2", 50), ("full-cut", 100)):
        res = train_guided(x, y, 10, make_sampler(method), 0.5,
                           train_config=TrainConfig(epochs=4, seed=0), progress=False)
        assert res.ledger.epoch_sizes == [size] * (200 // size), method
        assert res.ledger.spent == 200 and res.epochs[-1]["lr"] < 0.51 * res.epochs[0]["lr"]
    # a whole budget under one batch of 128 but of two such epochs trains them (it was
    # refused as "nothing would train" although the loop's own rule trains it)
    res = train_guided(x, y, 10, make_sampler("full-cut"), 0.5,
                       train_config=TrainConfig(epochs=2, seed=0), progress=False)
    assert res.ledger.epoch_sizes == [100] and res.ledger.spent == 100


def test_a_budget_ending_inside_an_epoch_trains_whole_batches_only():
    """Where the budget ends inside an epoch the loop trains whole batches and leaves the
    tail unspent (a handful of samples in a last batch would only disturb BatchNorm's
    statistics): 300 sample-passes in batches of 128 train 256, not 256 and a batch of 44."""
    from tinysift.data import load_dataset
    from tinysift.guided.loop import train_guided

    ds = load_dataset("digits")
    x, y = ds.x_train[:1000], ds.y_train[:1000]
    res = train_guided(x, y, 10, make_sampler("rs2"), 0.5,
                       train_config=TrainConfig(epochs=1, seed=0), progress=False,
                       budget_passes=300)
    assert res.batch_size == 128 and res.steps == 2
    assert res.ledger.epoch_sizes == [256] and res.ledger.spent == 256
    assert res.epochs[0]["samples"] == 256  # the record says what trained, not the plan
    assert res.final_loss == pytest.approx(res.epochs[0]["loss"], abs=1e-5)  # both batches'


@pytest.mark.parametrize("judge", ["knn", "knn+flow"])
def test_flow_judge_drops_flips_before_the_warm_up(judge):
    """flow's `judge`: labels judged on the pixels before any training (a knn density here);
    the warm-up passes over the kept samples only, the model-side density is fit without the
    judged ones, and they stay dropped after every refit."""
    # Classes as large as a flow's batch, so that "flow" judges with a flow.
    n = 2 * FLOW_MIN_CLASS + 100  # flips move a few samples between the classes
    truth, x = _two_blobs(n)
    rng = np.random.default_rng(0)
    flipped = np.zeros(n, bool)
    # fewer flips per blob than knn's k=10: each flip's neighbours are of its true class
    flipped[rng.choice(n, 16, replace=False)] = True
    y = np.where(flipped, 1 - truth, truth)

    def state():
        return TrainingState(x=x, y=y, num_classes=2, epochs=6, budget=0.5,
                             ledger=CostLedger(3 * n), rng=np.random.default_rng(0),
                             feature_dim=4)

    def judged(kind):
        s = make_sampler("flow", judge=kind, density="knn", per_code=20, refresh=1)
        s.begin(state())
        return s.judged_

    st = state()
    s = make_sampler("flow", judge=judge, density="knn", per_code=20, refresh=1)
    assert s.params()["judge"] == judge and s.params()["mislabel_posterior"] == 0.05
    s.begin(st)
    if judge == "knn":  # two well-separated classes: every flip found, nothing else
        assert (s.judged_ == flipped).all()
    else:  # every judge must doubt the label
        assert (s.judged_ == judged("knn") & judged("flow")).all() and s.judged_.any()
    assert {"judge-pixel-pca", *(f"judge-{k}" for k in judge.split("+"))} <= set(
        st.ledger.fit_seconds)
    fit_masks = []
    for epoch in range(5):
        st.epoch = epoch
        plan = s.plan(st)
        assert not s.judged_[plan.indices].any()  # never trained, warm-up included
        if hasattr(s, "z_"):
            fit_masks.append(s.density_fit_mask(st))
        feats = np.column_stack([truth, 1 - truth, truth, truth]).astype(np.float32)
        st.record(plan.indices, np.full(len(plan.indices), 0.1, np.float32),
                  np.full(len(plan.indices), 0.9, np.float32), feats[plan.indices],
                  truth[plan.indices])
        s.end_epoch(st)
        assert (s.dropped_ >= s.judged_).all()
    assert fit_masks and all(not (m & s.judged_).any() for m in fit_masks)


def test_flow_judge_on_fewer_dimensions_and_a_share_of_references():
    """`judge_dim` gives the judge its own pixel PCA (vq's is reused only at the same
    dimension) and `judge_references` a share of each class as kNN references: on two
    well-separated blobs both still find every flip and nothing else."""
    n = 600
    truth, x = _two_blobs(n)
    flipped = np.zeros(n, bool)
    flipped[np.random.default_rng(0).choice(n, 16, replace=False)] = True
    y = np.where(flipped, 1 - truth, truth)
    for judge_dim, fits in [(None, {"pixel-pca", "judge-knn"}),
                            (2, {"pixel-pca", "judge-pixel-pca", "judge-knn"})]:
        st = TrainingState(x=x, y=y, num_classes=2, epochs=6, budget=0.5,
                           ledger=CostLedger(3 * n), rng=np.random.default_rng(0),
                           feature_dim=4)
        s = make_sampler("flow", judge="knn", judge_dim=judge_dim, judge_references=0.5,
                         embedding="pixels", per_code=20)
        s.begin(st)
        assert (s.judged_ == flipped).all()
        assert set(st.ledger.fit_seconds) == fits


def test_flow_without_a_judge_keeps_its_stamp_and_rejects_an_unknown_one():
    """judge="none" leaves flow's stamp as it was before the judge existed (its logged
    benchmark records still count); an unknown density is a clear error."""
    from tinysift.errors import TinysiftError
    from tinysift.guided import sampler_params

    plain = sampler_params("flow", judge="none")
    assert "judge" not in plain and "judge_posterior" not in plain and plain["rejudge"] is True
    assert sampler_params("flow", judge="knn")["judge_posterior"] == 0.02
    with pytest.raises(TinysiftError, match="judge must be 'none' or densities"):
        make_sampler("flow", judge="kde")
    # density failed only after the warm-up had trained; fit_on="agreed" was silently "all"
    with pytest.raises(TinysiftError, match="density must be one of"):
        make_sampler("flow", density="kde")
    with pytest.raises(TinysiftError, match="fit_on must be 'all' or 'agree'"):
        make_sampler("flow", fit_on="agreed")


def test_flow_priority_uses_each_sample_s_own_passes_and_shares_tied_ranks():
    """The dynamic uncertainty is the std over a sample's last `du_window` passes wherever they
    fell (a sample trained every third epoch still has one), and tied values share their mean
    rank instead of being ordered by index. The rule before 2026-12-03 (`priority_rule=
    "epochs"`) keeps its stamp, so its logged rows still count as what they are."""
    from tinysift.errors import TinysiftError
    from tinysift.guided import sampler_params
    from tinysift.guided.methods.flow import dynamic_uncertainty, within_class_rank

    nan = np.nan
    # sample 0 trained every third epoch (0.2, 0.8, 0.2 at epochs 0, 3, 6); sample 1 in the
    # last two epochs; sample 2 once
    p_true = [np.array(row, np.float16) for row in
              ([0.2, nan, nan], [nan, nan, nan], [nan, nan, 0.5], [0.8, nan, nan],
               [nan, nan, nan], [nan, 0.4, nan], [0.2, 0.6, nan])]
    own = dynamic_uncertainty(p_true, window=2)
    np.testing.assert_allclose(own, [0.3, 0.1, 0.0], atol=1e-3)  # 0: one pass only
    run = dynamic_uncertainty(p_true, window=2, over="epochs")  # the run's last 2 epochs
    np.testing.assert_allclose(run, [0.0, 0.1, 0.0], atol=1e-3)
    np.testing.assert_allclose(dynamic_uncertainty(p_true, window=3), [0.283, 0.1, 0.0],
                               atol=1e-3)

    values, y = np.array([0.0, 0.0, 0.0, 0.5, 0.0, 1.0]), np.array([0, 0, 0, 0, 1, 1])
    np.testing.assert_allclose(within_class_rank(values, y), [0.25, 0.25, 0.25, 0.75, 0, 0.5])
    np.testing.assert_allclose(within_class_rank(values, y, "index"),
                               [0, 0.25, 0.5, 0.75, 0, 0.5])
    assert sampler_params("flow")["priority_rule"] == "passes"
    assert "priority_rule" not in sampler_params("flow", priority_rule="epochs")
    with pytest.raises(TinysiftError, match="priority_rule must be"):
        make_sampler("flow", priority_rule="loss")


def _overlapping_blobs(n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Two classes of 4x4 images whose pixel means differ by 10 (sd 15): n/2 each, about
    one sample in ten nearer the other class. The labels and the images."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), n // 2)
    x = np.clip(rng.normal(60 + 10 * y[:, None], 15, (n, 16)), 0, 255)
    return y, x.astype(np.uint8).reshape(n, 4, 4, 1)


def _judged(y: np.ndarray, x: np.ndarray, **params) -> tuple[np.ndarray, CostLedger]:
    """What a flow sampler with ``params`` judges on the pixels before any training, and the
    ledger its fits were charged to."""
    st = TrainingState(x=x, y=y, num_classes=2, epochs=6, budget=0.5,
                       ledger=CostLedger(3 * len(y)), rng=np.random.default_rng(0),
                       feature_dim=4)
    s = make_sampler("flow", per_code=20, **params)
    s.begin(st)
    return s.judged_, st.ledger


def test_flow_judge_drops_only_labels_another_class_is_likelier_for():
    """The judge drops a sample whose label's posterior is below judge_posterior *and* whose
    most likely class is another (docs/methods.md): with two classes a threshold above one
    half adds nobody, a sample its own class is likeliest for stays however unsure."""
    y, x = _overlapping_blobs()
    half, _ = _judged(y, x, judge="knn", judge_posterior=0.5)
    assert half.any() and not half.all()
    for looser in (0.9, 1.0):
        judged, _ = _judged(y, x, judge="knn", judge_posterior=looser)
        assert (judged == half).all(), looser


@pytest.mark.parametrize("judge, max_drop", [("knn", 0.06), ("knn+gmm", 0.034)])
def test_flow_judge_drops_the_most_doubted_labels_first_under_the_cap(judge, max_drop):
    """Where a class has more suspects than max_drop of it, the judge drops those whose label
    is the most doubted (the lowest posterior; with several judges, each sample's least
    doubtful one): every suspect of a stricter threshold (posterior below 0.3, fewer than
    the cap of each class) is among the ones a looser threshold (0.5, more than the cap)
    drops under that cap. Ordering by index, or by the last judge alone, dropped others."""
    y, x = _overlapping_blobs()
    strict, _ = _judged(y, x, judge=judge, judge_posterior=0.3)
    loose, _ = _judged(y, x, judge=judge, judge_posterior=0.5)
    capped, _ = _judged(y, x, judge=judge, judge_posterior=0.5, max_drop=max_drop)
    cap = int(max_drop * 300)
    for c in (0, 1):
        mine = y == c
        assert strict[mine].sum() <= cap == capped[mine].sum() < loose[mine].sum()
    assert (capped <= loose).all() and (capped >= strict).all()


def test_flow_judge_fits_a_mixture_where_a_class_is_smaller_than_a_flow_batch():
    """judge="flow" follows the density's rule (the class docstring): on classes smaller than
    a flow's batch the judge fits a Gaussian mixture, and the ledger names it judge-gmm."""
    y, x = _overlapping_blobs(200)
    _, ledger = _judged(y, x, judge="flow")
    assert "judge-gmm" in ledger.fit_seconds and "judge-flow" not in ledger.fit_seconds


def test_flow_judge_references_reach_the_knn_judge():
    """judge_references sets the share of each class the kNN judge measures its distances
    to: on overlapping classes a tenth of the references judges other samples than all of
    them (the parameter was not handed to the density, the same judge ran either way)."""
    y, x = _overlapping_blobs()
    every, _ = _judged(y, x, judge="knn", judge_posterior=0.5)
    tenth, _ = _judged(y, x, judge="knn", judge_posterior=0.5, judge_references=0.1)
    assert (every != tenth).any()


def test_flow_mixture_rule_is_a_flow_batch_of_256():
    """docs/methods.md: "a Gaussian mixture instead where a class has fewer than 256
    samples" (a flow's batch): 255 in the smaller class is a mixture, 256 a flow."""
    assert FlowGuided.density_kind("flow", np.repeat([0, 1], [255, 300]), 2) == "gmm"
    assert FlowGuided.density_kind("flow", np.repeat([0, 1], [256, 300]), 2) == "flow"


def test_flow_stamp_names_the_judge_s_knobs_only_away_from_their_defaults():
    """A judged run's stamp leaves judge_references and judge_dim out at their defaults (the
    stamp of the runs logged before those knobs) and names them when set; every density of
    the three may judge, joined by '+'."""
    from tinysift.guided import sampler_params

    plain = sampler_params("flow", judge="knn")
    assert "judge_references" not in plain and "judge_dim" not in plain
    tuned = sampler_params("flow", judge="knn", judge_references=0.5, judge_dim=8)
    assert (tuned["judge_references"], tuned["judge_dim"]) == (0.5, 8)
    assert sampler_params("flow", judge="knn+gmm+flow")["judge"] == "knn+gmm+flow"


def test_flow_filter_needs_the_model_and_the_density_to_name_the_same_other_class():
    """Two detectors must agree on the class (the module docstring): a sample labelled 0 that
    the model puts in class 1 and the density in class 2, both doubting the label, is kept;
    with both saying class 1 it goes. A model probability of exactly mislabel_model is not
    below it: kept."""
    y = np.repeat([0, 1, 2], 100)
    s, st = _filter(y)
    st.pred[[0, 1, 2]], st.loss[[0, 1, 2]], s.posterior_[[0, 1, 2]] = 1, 5.0, 0.01
    s.density_class_[[0, 1, 2]] = [2, 1, 1]
    s.mislabel_model = float(np.exp(-np.float64(np.float32(4.0))))
    st.loss[2] = 4.0  # the model's probability of the label exactly at the threshold
    assert np.flatnonzero(s._judge(st)).tolist() == [1]


def test_infobatch_refuses_a_prune_ratio_it_cannot_rescale():
    """The survivors' weight is 1 / (1 - prune_ratio): 1 or more is a clear error up front,
    not a division by zero (or negative weights) an epoch into the run."""
    from tinysift.errors import TinysiftError

    for bad in ({"prune_ratio": 1.0}, {"prune_ratio": 1.5}, {"prune_ratio": -0.1}):
        with pytest.raises(TinysiftError, match="prune_ratio must be in"):
            make_sampler("infobatch", **bad)
    with pytest.raises(TinysiftError, match="anneal must be"):
        make_sampler("infobatch", anneal=1.5)


def test_vq_refuses_a_pca_dimension_below_1():
    """dim 0 failed once the codebook was fit, after training (an unexpected ValueError), and
    a negative dim silently kept all but that many axes."""
    from tinysift.errors import TinysiftError

    for bad in (0, -3):
        with pytest.raises(TinysiftError, match=f"dim must be a positive PCA dimension, got "
                                                f"{bad}"):
            make_sampler("vq", dim=bad)
    for bad in (0, -2):  # (make_sampler refuses a float or a bool by the annotation)
        with pytest.raises(TinysiftError, match=f"per_code a whole number >= 1, got .*"
                                                f"per_code={bad!r}"):
            make_sampler("vq", per_code=bad)


def test_ucb_refuses_a_decay_outside_0_1_and_a_non_finite_c():
    """decay 5 or -1 made its averages diverge (a NaN bound picked the epochs), silently."""
    from tinysift.errors import TinysiftError

    for bad in (5.0, -1.0, float("nan")):
        with pytest.raises(TinysiftError, match=r"decay must be an EMA decay in \[0, 1\]"):
            make_sampler("ucb", decay=bad)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(TinysiftError, match="c must be a finite exploration weight"):
            make_sampler("ucb", c=bad)
    make_sampler("ucb", decay=0.0, c=-1.0)


def test_pixel_pca_in_chunks_is_the_whole_arrays_pca():
    """The judge's and vq's pixel PCA run over chunks of images (no float copy of the whole
    set): the same axes, up to sign and float32 rounding, as the PCA of the whole array."""
    from tinysift.guided.methods.vq import _pca, pixel_pca

    rng = np.random.default_rng(0)
    # images with structure (a few directions carry most variance), so the axes are defined
    x = np.clip(rng.normal(size=(1000, 5)) @ rng.normal(size=(5, 64)) * 30 + 128
                + rng.normal(size=(1000, 64)) * 3, 0, 255).astype(np.uint8).reshape(1000, 8, 8, 1)
    whole = _pca(x.reshape(1000, -1).astype(np.float32) / 255.0, 4, 0)
    chunked = pixel_pca(x, 4, 0, chunk=96)  # 11 chunks, the last one short
    sign = np.sign((whole * chunked).sum(0))
    assert chunked.shape == (1000, 4) and chunked.dtype == np.float32
    np.testing.assert_allclose(chunked, whole * sign, atol=1e-4)


def test_knn_density_posterior_follows_the_class_shares_on_one_distribution():
    """Two classes drawn from one distribution, 400 and 100 samples: a density's label
    posterior should be about the class share (0.8). Until 2026-12-02 the kNN density added
    log n_c instead of subtracting it, which made it ~0.98 (the size counted squared)."""
    from tinysift.scoring.density import label_posterior, make_density

    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 2)).astype(np.float32)
    y = np.repeat([0, 1], [400, 100])
    logp = make_density("knn").fit(z, y, 2).log_prob(z)
    post_big = np.exp(label_posterior(logp, np.zeros(500, np.int64), np.array([0.8, 0.2])))
    assert 0.7 < np.median(post_big) < 0.9


def test_knn_density_on_a_share_of_references_keeps_the_posterior_and_the_rules():
    """``references`` measures distances to a seeded share of each class: the class-share
    posterior still holds (the count term counts the references), a sample outside the
    references is not taken for itself, an absent class is never the most likely, and a
    share out of (0, 1] is refused, by the density and by flow's judge."""
    from tinysift.errors import TinysiftError
    from tinysift.guided import sampler_params
    from tinysift.scoring.density import label_posterior, make_density

    rng = np.random.default_rng(0)
    z = rng.normal(size=(2000, 2)).astype(np.float32)
    y = np.repeat([0, 1], [1600, 400])
    quarter = make_density("knn", references=0.25).fit(z, y, 3)  # class 2 absent
    assert quarter.counts_.tolist() == [400, 100, 0]
    logp = quarter.log_prob(z)
    assert np.isneginf(logp[:, 2]).all() and (logp[:, :2].argmax(1) == logp.argmax(1)).all()
    post_big = np.exp(label_posterior(logp[:, :2], np.zeros(2000, np.int64),
                                      np.array([0.8, 0.2])))
    assert 0.7 < np.median(post_big) < 0.9
    # the same seed picks the same references; the whole class at references=1
    np.testing.assert_array_equal(make_density("knn", references=0.25).fit(z, y, 3)
                                  .log_prob(z[:50]), logp[:50])
    whole = make_density("knn").fit(z, y, 2)
    assert whole.counts_.tolist() == [1600, 400]
    # by hand: the k-th nearest reference, the sample itself left out when it is one
    refs = quarter.members_[0]
    for i in [*refs[:3], *np.setdiff1d(np.flatnonzero(y == 0), refs)[:3]]:
        dist = np.sort(np.linalg.norm(z[refs] - z[i], axis=1))
        r = dist[10] if i in refs else dist[9]
        assert logp[i, 0] == pytest.approx(-2 * np.log(r) - np.log(400), rel=1e-5)
    with pytest.raises(TinysiftError, match=r"references must be a share in \(0, 1\]"):
        make_density("knn", references=0.0)
    with pytest.raises(TinysiftError, match="judge_references must be a share"):
        make_sampler("flow", judge="knn", judge_references=1.5)
    with pytest.raises(TinysiftError, match="judge_dim must be a positive PCA dimension"):
        make_sampler("flow", judge="knn", judge_dim=0)
    # the defaults keep flow's stamp (its logged records still count)
    assert not {"judge_references", "judge_dim"} & set(sampler_params("flow", judge="knn"))
    assert sampler_params("flow", judge="knn", judge_references=0.25)["judge_references"] == 0.25
    assert sampler_params("flow", judge="knn", judge_dim=8)["judge_dim"] == 8


def test_an_unknown_sampler_parameter_names_the_method_s_parameters():
    """A typo in --guided-params is refused with the method's parameters listed (flow's
    include vq's, which it passes on), and every parameter a sampler is stamped with is one
    it accepts, so a logged record's parameters can be passed back."""
    from tinysift.errors import TinysiftError
    from tinysift.guided import known_samplers, sampler_params
    from tinysift.guided.base import SAMPLERS, stamped_params
    from tinysift.params import parameter_names

    with pytest.raises(TinysiftError, match=r"'flow' has no parameter judge_dimm; its "
                                            r"parameters: alpha, .*judge_dim, .*per_code"):
        make_sampler("flow", judge_dimm=3)
    with pytest.raises(TinysiftError, match=r"'rs2' has no parameter nope; it takes none: drop "
                                            r"its parameters \(--guided-params, or its entry in "
                                            r"a bench's --method-params\)"):  # "its parameters: "
        make_sampler("rs2", nope=1)
    for name in known_samplers():
        assert set(sampler_params(name)) <= parameter_names(SAMPLERS[name]), name
        make_sampler(name, **sampler_params(name))
    assert "seed" not in sampler_params("vq", seed=3)  # the stamp leaves the seed aside
    begun = make_sampler("vq")  # ... and what a run fitted (codebooks, generators)
    begun.begin(_state(np.repeat([0, 1], 4)))
    assert stamped_params(begun) == sampler_params("vq")
    with pytest.raises(TinysiftError, match=r"unknown guided method 'vqq' \(did you mean "
                                            r"vq\?\); known: flow, full-cut, infobatch, rs2, "
                                            r"ucb, vq$"):
        make_sampler("vqq")


def test_epoch_size_rounds_the_budgets_share_to_the_nearest_sample() -> None:
    """An epoch is budget x N samples to the nearest one: 0.29 of 100 is 29 (the product is
    28.999... in floating point, which truncation made 28), 0.5 of 7 is 4 (3.5 rounds to
    even), and never under one sample."""
    from tinysift.guided.base import epoch_size

    assert epoch_size(0.29, 100) == 29
    assert epoch_size(0.5, 7) == 4
    assert epoch_size(0.001, 100) == 1
    assert _state(np.zeros(100, np.int64), budget=0.29).epoch_size == 29


def test_make_sampler_refuses_the_name_of_a_methods_catch_all_parameter() -> None:
    """flow passes its other keyword parameters on to vq through ``**vq_params``: that
    name is not a parameter, so it is refused with flow's parameters listed, not accepted
    and failing inside the constructor."""
    from tinysift.errors import TinysiftError

    with pytest.raises(TinysiftError, match=r"'flow' has no parameter vq_params; its "
                                            r"parameters: alpha, "):
        make_sampler("flow", vq_params={})


def test_an_overspent_ledger_has_nothing_left_and_a_finished_schedule():
    """A late fit charge can take the spending past the budget: nothing remains (not a
    negative amount for the next epoch's plan) and the learning-rate schedule's progress
    stays at its end, 1."""
    led = CostLedger(budget_passes=100.0, train_passes=90, fit_passes=30.0)
    assert led.spent == 120.0 and led.remaining == 0.0 and led.progress == 1.0
    assert CostLedger(budget_passes=0.0).progress == 1.0


def test_a_sampler_that_corrects_labels_trains_on_them_and_leaves_the_callers_alone():
    """A sampler may correct the labels it trains on (state.y; the label-correction ablation
    in tools/guided_ablation.py does): the loop trains on the corrections and never writes
    the caller's array (it did, through np.asarray on int64 labels)."""
    from tinysift.data import load_dataset
    from tinysift.guided.loop import train_guided
    from tinysift.guided.methods.rs2 import RS2
    from tinysift.models.training import predict_proba

    class EverythingIsAZero(RS2):
        name = "zeros"

        def begin(self, state):
            super().begin(state)
            state.y[:] = 0

    ds = load_dataset("digits")
    y = ds.y_train.astype(np.int64)
    before = y.copy()
    res = train_guided(ds.x_train, y, ds.num_classes, EverythingIsAZero(), 0.5,
                       train_config=TrainConfig(epochs=4, seed=0), progress=False)
    np.testing.assert_array_equal(y, before)
    pred = predict_proba(res.model, ds.x_test).argmax(1)
    assert (pred == 0).mean() > 0.95  # it learned the corrected labels: all zeros


def test_the_learning_rate_is_the_cosine_of_the_budget_spent_before_each_step():
    """The schedule: at each step 0.5 x base x (1 + cos(pi x spent / budget)), so it starts at
    the base rate and ends near zero with the budget. 100 samples at 0.5 of 4 epochs: four
    epochs of 50, one step each, at 0, 1/4, 1/2 and 3/4 of the budget."""
    from tinysift.data import load_dataset
    from tinysift.guided.loop import train_guided
    from tinysift.guided.methods.rs2 import RS2

    ds = load_dataset("digits")
    cfg = TrainConfig(epochs=4, seed=0)
    sampler = _recording(RS2)()
    res = train_guided(ds.x_train[:100], ds.y_train[:100], 10, sampler, 0.5,
                       train_config=cfg, progress=False,
                       on_epoch_end=lambda epoch, model, ledger: {"hook": epoch})
    want = [0.5 * cfg.learning_rate * (1 + math.cos(math.pi * f)) for f in (0, .25, .5, .75)]
    assert [e["lr"] for e in res.epochs] == pytest.approx(want, rel=1e-6)
    # each epoch's record: what it trained, the budget spent after it, the plan's note and
    # what the hook returned; the final loss is the last epoch's mean loss
    assert [(e["epoch"], e["samples"], e["spent"], e["note"], e["hook"]) for e in res.epochs] \
        == [(k, 50, 50.0 * (k + 1), "random", k) for k in range(4)]
    assert res.final_loss == pytest.approx(res.epochs[-1]["loss"], abs=1e-5)
    st = sampler.state_  # the label's probability recorded is exp(-loss) of the same pass
    last = sampler.batches_[-1][1]
    np.testing.assert_allclose(st.p_true[3][last].astype(np.float32), np.exp(-st.loss[last]),
                               rtol=2e-3)


class _Recording:
    """Mixin: the batches the loop trains, in order, logged through the state's own record
    (the sampler wraps it in begin(); the training is the loop's)."""

    def begin(self, state):
        super().begin(state)
        self.state_, self.batches_ = state, []
        record = state.record

        def logged(idx, *rest):
            self.batches_.append((state.epoch, np.array(idx)))
            record(idx, *rest)

        state.record = logged


def _recording(base):
    return type(f"Recording{base.__name__}", (_Recording, base), {"name": base.name})


def test_the_loop_shuffles_every_epoch_s_plan_afresh():
    """Each epoch's plan trains in a fresh random order (the plan's own order would train
    full-cut's epochs class by class on sorted data, and every epoch alike)."""
    from tinysift.data import load_dataset
    from tinysift.guided.loop import train_guided
    from tinysift.guided.methods.full_cut import FullCut

    ds = load_dataset("digits")
    order = np.argsort(ds.y_train[:300], kind="stable")  # sorted by class
    sampler = _recording(FullCut)()
    train_guided(ds.x_train[:300][order], ds.y_train[:300][order], 10, sampler, 1.0,
                 train_config=TrainConfig(epochs=2, seed=0), progress=False)
    epochs = [np.concatenate([b for e, b in sampler.batches_ if e == k]) for k in (0, 1)]
    for trained in epochs:
        assert sorted(trained.tolist()) == list(range(300))  # the whole plan, once
        assert not np.array_equal(trained, np.arange(300))
    assert not np.array_equal(*epochs)


def test_plan_weights_are_normalized_over_the_samples_trained():
    """The loop scales an epoch's weights to mean 1 over the samples it trains: a plan
    weighted 3 everywhere trains bit for bit as the unweighted one, and the weights of plan
    samples the budget cuts off (the epoch ending inside it) change nothing."""
    from tinysift.data import load_dataset
    from tinysift.guided.base import EpochPlan
    from tinysift.guided.loop import train_guided
    from tinysift.guided.methods.full_cut import FullCut

    class Weighted(_recording(FullCut)):
        def __init__(self, weights):
            super().__init__()
            self.weights_ = weights

        def plan(self, state):
            return EpochPlan(np.arange(state.num_samples), self.weights_)

    ds = load_dataset("digits")
    x, y = ds.x_train[:400], ds.y_train[:400]

    def weights_after(weights, passes):
        sampler = Weighted(weights)
        res = train_guided(x, y, 10, sampler, 1.0, train_config=TrainConfig(epochs=1, seed=0),
                           progress=False, budget_passes=passes)
        return res.model.get_weights(), sampler

    plain, _ = weights_after(None, 400)
    for a, b in zip(plain, weights_after(np.full(400, 3.0), 400)[0], strict=True):
        np.testing.assert_array_equal(a, b)
    w = np.where(np.arange(400) % 2, 1.0, 2.0)
    # ... while weights that differ between samples change the training
    assert not np.array_equal(plain[0], weights_after(w, 400)[0][0])
    cut, sampler = weights_after(w, 256)  # two batches of 128 of the 400 trained
    untrained = sampler.state_.seen_epoch < 0
    assert untrained.sum() == 144
    w2 = np.where(untrained, 50.0, w)
    for a, b in zip(cut, weights_after(w2, 256)[0], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_sampler_planning_small_epochs_spends_the_budget_over_more_epochs_up_to_a_cap():
    """The loop runs epochs until the budget is spent, not the recipe's number of epochs: a
    sampler planning half the nominal epoch takes about twice the epochs; one planning a handful
    of samples stops at MAX_EPOCH_FACTOR x the recipe's epochs."""
    from tinysift.data import load_dataset
    from tinysift.guided.base import EpochPlan
    from tinysift.guided.loop import MAX_EPOCH_FACTOR, train_guided
    from tinysift.guided.methods.rs2 import RS2

    class Fixed(RS2):
        def __init__(self, size):
            super().__init__()
            self.size_ = size

        def plan(self, state):
            return EpochPlan(self.stream_(self.size_))

    ds = load_dataset("digits")
    x, y = ds.x_train[:100], ds.y_train[:100]
    cfg = TrainConfig(epochs=4, seed=0)  # 400 sample-passes, a nominal epoch of 100
    res = train_guided(x, y, 10, Fixed(50), 1.0, train_config=cfg, progress=False)
    # epochs until less than one nominal epoch is left (the loop's stopping rule)
    assert res.ledger.epoch_sizes == [50] * 7 and res.ledger.spent == 350
    res = train_guided(x, y, 10, Fixed(2), 1.0, train_config=cfg, progress=False)
    assert res.ledger.epoch_sizes == [2] * (MAX_EPOCH_FACTOR * 4)


def test_ucb_in_the_loop_learns_from_every_epoch_trained():
    """The loop hands UCB every epoch's losses (end_epoch): each sample's count is the
    passes it trained, and the first two epochs at budget 0.5 cover the data."""
    from tinysift.data import load_dataset
    from tinysift.guided.loop import train_guided

    ds = load_dataset("digits")
    sampler = make_sampler("ucb")
    res = train_guided(ds.x_train[:200], ds.y_train[:200], 10, sampler, 0.5,
                       train_config=TrainConfig(epochs=4, seed=0), progress=False)
    assert res.ledger.epoch_sizes == [100] * 4
    assert sampler.count_.sum() == res.ledger.train_passes == 400
    assert (sampler.count_ >= 1).all() and (sampler.mean_ > 0).all()


def test_the_run_seed_fixes_every_sample_choice_and_another_seed_changes_them():
    """The samplers draw from the run's generator, seeded by the recipe's seed: one seed
    trains the same samples in the same order every time, another seed other subsets (a
    generator seeded by a constant, the loop's or the sampler's own, picked the same
    subsets for every run seed; the shuffle alone then differed)."""
    from tinysift.data import load_dataset
    from tinysift.guided.loop import train_guided
    from tinysift.guided.methods.rs2 import RS2

    ds = load_dataset("digits")

    def picks(seed):
        sampler = _recording(RS2)()  # the sampler's own seed: the default, 0
        train_guided(ds.x_train[:200], ds.y_train[:200], 10, sampler, 0.5,
                     train_config=TrainConfig(epochs=2, seed=seed), progress=False)
        return [b for _, b in sampler.batches_], [
            set(np.concatenate([b for e, b in sampler.batches_ if e == k]).tolist())
            for k in (0, 1)]

    (order, subsets), (again, _), (_, other) = picks(0), picks(0), picks(1)
    for a, b in zip(order, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert subsets[0] != other[0] and subsets[1] != other[1]


def test_the_recipe_s_seed_fixes_the_model_a_run_starts_from():
    """A run starts from the model its seed builds (seed_everything(seed), then
    build_model), so two seeds start from two models. At a learning rate of 0 the trained
    weights are the start's (BatchNorm's moving statistics aside, not trainable)."""
    from tinysift.data import load_dataset
    from tinysift.guided.loop import train_guided
    from tinysift.models.cnn import build_model
    from tinysift.models.training import keeps_global_generators, seed_everything

    @keeps_global_generators  # the test's seeding leaves the process's generators alone
    def fresh_start(seed):
        seed_everything(seed)
        return build_model(x.shape[1:], 10)

    ds = load_dataset("digits")
    x, y = ds.x_train[:100], ds.y_train[:100]
    start = {}
    for seed in (0, 1):
        res = train_guided(x, y, 10, make_sampler("full-cut"), 1.0, progress=False,
                           train_config=TrainConfig(epochs=1, seed=seed, learning_rate=0.0))
        fresh = fresh_start(seed)
        for a, b in zip(fresh.trainable_weights, res.model.trainable_weights, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        start[seed] = fresh.trainable_weights[0].numpy()
    assert not np.array_equal(start[0], start[1])


def test_ucb_breaks_ties_among_untried_samples_at_random():
    """Never-trained samples all tie at an infinite bound; the tie is broken at random, so on
    data sorted by class the first epoch is not the first classes' samples."""
    y = np.repeat(np.arange(4), 25)
    st = _state(y, budget=0.5)
    s = make_sampler("ucb")
    s.begin(st)
    first = s.plan(st).indices
    assert len(first) == 50 and (np.bincount(y[first], minlength=4) >= 5).all()


@pytest.mark.parametrize("passes, note", [(400, "guided"), (699, "guided"), (700, "final"),
                                           (760, "final")])
def test_vq_trains_all_kept_data_from_exactly_the_final_share_of_the_budget(passes, note):
    """vq's last `final_full` (0.125) of the budget trains every kept sample: from the
    epoch planned at 0.875 of the budget spent (700 of 800 passes), not before."""
    y = np.repeat(np.arange(2), 100)
    st = _state(y, budget=0.5, epochs=8, dim=4)
    st.features[:] = np.random.default_rng(0).normal(size=(200, 4))
    st.seen_epoch[:], st.loss[:], st.epoch = 0, 1.0, 1
    st.ledger.train_passes = passes  # of 800: 0.875 at 700
    s = make_sampler("vq", per_code=25)
    s.begin(st)
    plan = s.plan(st)
    assert plan.note.startswith(note)
    assert len(plan.indices) == (200 if note == "final" else 100)


@pytest.mark.parametrize("passes", [0, 400, 699])
def test_infobatch_prunes_until_the_anneal_share_of_the_budget(passes):
    """Before `anneal` (0.875) of the budget is spent (700 of 800 passes) InfoBatch keeps
    pruning; only from there on does it train all the data."""
    y = np.repeat(np.arange(2), 100)
    st = _state(y, budget=0.5, epochs=8)  # 800 sample-passes
    st.loss[:] = np.where(np.arange(200) % 2 == 0, 0.1, 2.0)
    st.ledger.train_passes = passes
    plan = make_sampler("infobatch").plan(st)
    assert plan.note.startswith("pruned") and 30 < 200 - len(plan.indices) < 70


def _planned_after_one_epoch(method: str, run_seed: int) -> np.ndarray:
    """The samples ``method`` plans for its second epoch on 200 samples whose first epoch
    trained them all (losses 0.1 and 2.0 alternating), the run's generator seeded by
    ``run_seed`` and the sampler's own seed left at its default."""
    st = _state(np.repeat(np.arange(2), 100), seed=run_seed)
    sampler = make_sampler(method)
    sampler.begin(st)
    first = sampler.plan(st).indices
    loss = np.where(first % 2 == 0, 0.1, 2.0).astype(np.float32)
    st.record(first, loss, np.exp(-loss), np.zeros((len(first), 8), np.float32),
              np.zeros(len(first), np.int64))
    sampler.end_epoch(st)
    st.epoch = 1
    return sampler.plan(st).indices


@pytest.mark.parametrize("method", ["rs2", "infobatch", "ucb"])
def test_the_controls_draw_their_samples_from_the_runs_generator(method: str) -> None:
    """RS2's permutation, InfoBatch's pruning draws and UCB's tie-break come from the run's
    generator (TrainingState.rng: a seed fixes every choice): one run seed plans the same
    samples every time, another seed other ones. A sampler drawing from a generator of its
    own seed planned the same subsets for every run seed, so the seeds of a benchmark were
    not independent draws (the loop test covers RS2 only, by training)."""
    once, again, other = (_planned_after_one_epoch(method, seed) for seed in (0, 0, 1))
    np.testing.assert_array_equal(once, again)
    assert not np.array_equal(np.sort(once), np.sort(other))


def test_full_cut_plans_every_sample_once_unweighted_every_epoch() -> None:
    """full-cut, the control for any cost claim, is the full-data recipe cut short: each
    epoch's plan is every training sample exactly once with equal weights, whatever the
    budget (its epochs are not budget x N)."""
    st = _state(np.repeat(np.arange(3), 7), budget=0.3)
    sampler = make_sampler("full-cut")
    sampler.begin(st)
    for epoch in range(3):
        st.epoch = epoch
        plan = sampler.plan(st)
        assert sorted(plan.indices.tolist()) == list(range(21))
        assert plan.weights is None or np.ptp(plan.weights) == 0


def test_infobatch_takes_the_edges_of_its_ranges_as_documented() -> None:
    """prune_ratio 0 (the paper's r: prune nothing) is a run of all the data, unweighted;
    anneal 0 trains all the data from the start, anneal 1 prunes until the budget is spent;
    an anneal below 0 is refused by the same message as one above 1 (it trained all the data
    silently). The first epoch (nothing trained yet) is all the data, unweighted, without a
    numpy warning about an empty mean; the plan's note, recorded per epoch in guided.json,
    says how many samples were pruned."""
    import warnings

    from tinysift.errors import TinysiftError

    y = np.repeat(np.arange(2), 100)
    st = _state(y, budget=0.5, epochs=8)  # 800 sample-passes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = make_sampler("infobatch").plan(st)
    assert len(plan.indices) == 200 and plan.weights is None and plan.note == "first: full"
    st.loss[:] = np.where(np.arange(200) % 2 == 0, 0.1, 2.0)
    plan = make_sampler("infobatch", prune_ratio=0.0).plan(st)
    assert len(plan.indices) == 200 and np.allclose(plan.weights, 1.0)
    assert plan.note == "pruned 0 well-learned"
    assert make_sampler("infobatch", anneal=0.0).plan(st).note == "anneal: full"
    st.ledger.train_passes = 799  # progress 0.99875
    plan = make_sampler("infobatch", anneal=1.0).plan(st)
    pruned = 200 - len(plan.indices)
    assert 30 < pruned < 70 and plan.note == f"pruned {pruned} well-learned"
    with pytest.raises(TinysiftError, match=r"anneal must be a share of the budget in \[0, 1\], "
                                            r"got -0.1"):
        make_sampler("infobatch", anneal=-0.1)


def test_ucb_takes_a_decay_of_1_and_keeps_the_measured_loss_exactly() -> None:
    """decay 1 is in the documented range [0, 1]: the averages never move from the first
    loss (and its spread stays 0). The first loss is the mean as measured (0.3 in float32),
    not rounded on the way (a float16 copy read 0.2999)."""
    st = _state(np.repeat(np.arange(2), 2))
    sampler = make_sampler("ucb", decay=1.0)
    sampler.begin(st)
    for loss in (0.3, 5.0):
        st.record(np.arange(4), np.full(4, loss, np.float32), np.ones(4, np.float32),
                  np.zeros((4, 8), np.float32), np.zeros(4, np.int64))
        sampler.end_epoch(st)
        st.epoch += 1
    assert sampler.mean_.tolist() == [float(np.float32(0.3))] * 4
    assert sampler.var_.tolist() == [0.0] * 4 and sampler.count_.tolist() == [2] * 4


def test_ledger_record_by_hand():
    """The ledger as the results record it: passes to one decimal, seconds of fits to three,
    of training to two, the forward cost it charged (1/3 of a sample-pass, docs/methods.md)
    and a copy of the epoch sizes (the run goes on appending to its own)."""
    led = CostLedger(budget_passes=1234.56, train_passes=200, forward_passes=30,
                     fit_seconds={"codebook": 0.12345}, fit_passes=12.34, train_seconds=1.5049,
                     seconds_per_pass=0.005, epoch_sizes=[100, 100])
    rec = led.to_dict()
    assert rec == {"budget_passes": 1234.6, "train_passes": 200, "forward_passes": 30,
                   "forward_cost": 1 / 3, "fit_seconds": {"codebook": 0.123},
                   "fit_passes": 12.3, "spent_passes": 222.3,  # 200 + 30 / 3 + 12.34
                   "train_seconds": 1.5, "seconds_per_pass": 0.005, "epoch_sizes": [100, 100]}
    led.epoch_sizes.append(50)
    assert rec["epoch_sizes"] == [100, 100]


def test_train_guided_sets_the_state_by_its_recipe_and_checks_a_given_budget():
    """Without a train_config the recipe is 10 epochs: the state the sampler begins with has
    them, and the ledger budget x 10 x N; a budget_passes given instead is what the run may
    spend, and under one batch it is refused before the sampler begins; a recipe without
    epochs (the step rule) has no budget to take a share of: a ValueError."""
    from tinysift.data import load_dataset
    from tinysift.errors import BudgetError
    from tinysift.guided.loop import train_guided
    from tinysift.guided.methods.rs2 import RS2

    class Seen(Exception):
        pass

    class Stop(RS2):
        def begin(self, state):
            self.state_ = state
            raise Seen

    ds = load_dataset("digits")
    x, y = ds.x_train[:200], ds.y_train[:200]
    sampler = Stop()
    with pytest.raises(Seen):
        train_guided(x, y, 10, sampler, 0.5, progress=False)
    st = sampler.state_
    assert (st.epochs, st.ledger.budget_passes, st.epoch_size) == (10, 0.5 * 10 * 200, 100)
    with pytest.raises(Seen):
        train_guided(x, y, 10, sampler, 0.5, progress=False, budget_passes=300)
    assert sampler.state_.ledger.budget_passes == 300
    with pytest.raises(BudgetError, match=r"a budget of 99\.0 sample-passes .* less than one "
                                          r"epoch's batch of 100"):
        train_guided(x, y, 10, Stop(), 0.5, progress=False, budget_passes=99)
    with pytest.raises(ValueError, match="needs the full-data recipe's epochs"):
        train_guided(x, y, 10, Stop(), 0.5, progress=False, train_config=TrainConfig())


def test_a_fit_with_no_steady_step_after_it_is_charged_at_the_run_s_only_speed():
    """A run of one step measures no steady speed; a fit it made is still charged when the
    run ends, at the one step's rate (tracing included: ledger.settle)."""
    from tinysift.data import load_dataset
    from tinysift.guided.loop import train_guided
    from tinysift.guided.methods.full_cut import FullCut

    class Fits(FullCut):
        def begin(self, state):
            with state.ledger.fit("work"):
                time.sleep(0.01)

    ds = load_dataset("digits")
    res = train_guided(ds.x_train[:100], ds.y_train[:100], 10, Fits(), 1.0, progress=False,
                       train_config=TrainConfig(epochs=1, seed=0))
    led = res.ledger
    assert res.steps == 1 and led.seconds_per_pass is not None
    assert led.fit_passes == pytest.approx(led.fit_seconds["work"] / led.seconds_per_pass)


def test_train_for_passes_spends_exactly_its_passes_from_its_seed_s_model():
    """The equal-steps trainer: 256 passes over 300 samples are two batches of 128 (not one
    epoch of 300, its recipe's single epoch); seeds 0 and 1 start from different models."""
    from tinysift.data import load_dataset
    from tinysift.guided.loop import train_for_passes

    ds = load_dataset("digits")
    runs = [train_for_passes(ds.x_train[:300], ds.y_train[:300], 10, 256, seed=s)
            for s in (0, 1)]
    assert [(r.steps, r.ledger.train_passes) for r in runs] == [(2, 256), (2, 256)]
    assert not np.array_equal(runs[0].model.get_weights()[0], runs[1].model.get_weights()[0])


def test_runs_of_two_architectures_train_through_their_own_steps():
    """The shared traced step is per architecture: a run at width 8 after one at the default
    width 16 trains and returns a width-8 model (one step shared across model configs would
    hold the other architecture's weights)."""
    from tinysift.data import load_dataset
    from tinysift.guided.loop import train_guided
    from tinysift.models.cnn import ModelConfig

    ds = load_dataset("digits")
    x, y = ds.x_train[:100], ds.y_train[:100]
    cfg = TrainConfig(epochs=1, seed=0)
    wide = train_guided(x, y, 10, make_sampler("full-cut"), 1.0, train_config=cfg,
                        progress=False)
    narrow = train_guided(x, y, 10, make_sampler("full-cut"), 1.0, ModelConfig(width=8),
                          train_config=cfg, progress=False)
    assert wide.model.trainable_weights[0].shape[-1] == 16
    assert narrow.model.trainable_weights[0].shape[-1] == 8 and narrow.steps == 1
