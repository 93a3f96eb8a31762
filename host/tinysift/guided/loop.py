"""Guided training: the tiny CNN trained on a per-epoch subset chosen while it trains, for a
fixed budget of sample-passes.

The recipe is the full-data one (Adam, batch 128, cosine decay to zero, the same model) with
one change: the learning rate follows the fraction of the *budget* spent (sample-passes plus
every charged overhead), so it reaches zero exactly when the budget runs out, however a
method spreads its passes over epochs. With ``keep_steps`` the batch changes too (128 x
budget: the recipe's number of steps for a fraction of its sample-passes). Each step trains
on a batch of the epoch's plan with per-sample loss weights; the forward pass's per-sample
loss, label probability and backbone features go to the sampler
(:class:`tinysift.guided.base.TrainingState`), so keeping it informed costs no extra pass.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from tinysift.guided.base import EpochSampler, TrainingState, epoch_size
from tinysift.guided.ledger import CostLedger
from tinysift.models.cnn import FEATURES_LAYER, HEAD_LAYER, ModelConfig, build_model
from tinysift.models.training import (
    TrainConfig,
    keeps_global_generators,
    seed_everything,
    start_from,
    to_float,
)
from tinysift.progress import ProgressBar

#: A run stops after this many epochs even if a sampler keeps planning tiny epochs.
MAX_EPOCH_FACTOR = 20

#: The smallest batch ``keep_steps`` trains in (BatchNorm normalizes by a batch's statistics).
MIN_KEEP_STEPS_BATCH = 16


@dataclass
class GuidedResult:
    model: object
    ledger: CostLedger
    seconds: float
    steps: int
    final_loss: float
    epochs: list[dict] = field(default_factory=list)
    batch_size: int = 128


def keep_steps_batch(recipe_batch: int, budget: float) -> int:
    """The batch in which a run at ``budget`` takes about as many optimizer steps as the
    full-data recipe: the recipe's batch times the budget (64 at 0.5 for a batch of 128), at
    least :data:`MIN_KEEP_STEPS_BATCH`."""
    return max(MIN_KEEP_STEPS_BATCH, int(round(recipe_batch * budget)))


def full_recipe_passes(num_samples: int, train_config: TrainConfig) -> int:
    """Sample-passes of the full-data recipe: ``epochs x N``."""
    if train_config.epochs is None:
        raise ValueError("guided training needs the full-data recipe's epochs")
    return train_config.epochs * num_samples


def check_budget(n: int, budget: float, train_config: TrainConfig, keep_steps: bool = False,
                 budget_passes: float | None = None) -> int:
    """The batch a guided run of ``n`` samples trains in; a BudgetError when the budget buys
    less than the loop's stopping rule (one batch, or one epoch's subset when smaller):
    nothing would train. Callable before any work (the train stage checks it before it
    records a run, so a refused budget leaves a folder's finished training as it was)."""
    from tinysift.errors import BudgetError

    if budget_passes is None:
        budget_passes = budget * full_recipe_passes(n, train_config)
    batch = (keep_steps_batch(train_config.batch_size, budget) if keep_steps
             else train_config.batch_size)
    need = min(batch, epoch_size(budget, n))  # the loop's stopping rule: one batch, or one epoch
    if budget_passes < need:
        what = (f"one batch of {batch}" if need == batch else
                f"one epoch's batch of {need} (budget x {n} samples)")
        raise BudgetError(f"a budget of {budget_passes:.1f} sample-passes ({budget:g} x "
                          f"{train_config.epochs} epochs x {n} samples) is less than {what}: "
                          "nothing would train; raise the budget (--budget, or a bench's "
                          "--budgets) or --epochs")
    return batch


@keeps_global_generators
def train_guided(x: np.ndarray, y: np.ndarray, num_classes: int, sampler: EpochSampler,
                 budget: float, model_config: ModelConfig | None = None,
                 train_config: TrainConfig | None = None, progress: bool = True,
                 on_epoch_end=None, budget_passes: float | None = None,
                 keep_steps: bool = False) -> GuidedResult:
    """Train a new tiny CNN on ``x, y`` with ``sampler`` choosing each epoch's samples.

    Parameters
    ----------
    x, y : uint8 images (N, H, W, C) and int labels
    num_classes : int
    sampler : the guided method (:func:`tinysift.guided.make_sampler`)
    budget : fraction in (0, 1] of the full-data recipe's sample-passes to spend
    model_config, train_config : the full-data recipe (``train_config.epochs`` epochs)
    progress : show a progress bar over the budget
    on_epoch_end : optional ``f(epoch, model, ledger) -> dict``, called after every epoch (not
        charged: evaluation is not training); what it returns is added to the epoch's record
    budget_passes : spend exactly this many sample-passes instead (``budget`` then only sets
        the samplers' nominal epoch size)
    keep_steps : train in batches of the recipe's batch times ``budget``
        (:func:`keep_steps_batch`), so the run takes as many optimizer steps as the recipe
        though it spends a fraction of its sample-passes. The budget counts sample-passes, and
        a short recipe is limited by its steps: at half the passes in batches of 128 the model
        ends about a point below the recipe on Fashion-MNIST, in batches of 64 about a third
        of that (docs/methods.md, "Budgeted runs in smaller batches").
    """
    from tinysift.data.dataset import validate_arrays
    from tinysift.errors import BudgetError
    from tinysift.guided.base import EpochSampler
    from tinysift.tfcompat import tf

    # Refused before any work: labels outside 0..K-1 were a TF graph error at the first step,
    # float images in [0, 1] trained silently divided by 255 once more, a budget above 1
    # silently spent more than the recipe, a NaN one a ValueError.
    y = np.asarray(y)
    validate_arrays(x, y, num_classes, "training", "", where="train_guided")
    if not 0.0 < budget <= 1.0:
        raise BudgetError(f"budget must be a fraction in (0, 1] of the full-data recipe's "
                          f"sample-passes, got {budget}")
    if not isinstance(sampler, EpochSampler):
        raise TypeError(f"sampler must be an EpochSampler (tinysift.guided.make_sampler(name)), "
                        f"got {sampler!r}")
    train_config = train_config or TrainConfig(epochs=10)
    shape = tuple(x.shape[1:])
    # Made before seeding (the first time): the shared step draws nothing from the seeds.
    trainer, optimizer, step = _shared_step(shape, num_classes, model_config)
    seed_everything(train_config.seed)
    n = len(y)
    model = build_model(shape, num_classes, model_config)
    start_from(trainer, optimizer, model)  # the learning rate is set before every step
    feature_dim = int(trainer.outputs[0].shape[-1])

    if budget_passes is None:
        budget_passes = budget * full_recipe_passes(n, train_config)
    ledger = CostLedger(budget_passes=float(budget_passes))
    rng = np.random.default_rng(train_config.seed)
    # y copied: a sampler may correct the labels it trains on, never the caller's
    state = TrainingState(x=x, y=np.array(y, np.int64), num_classes=num_classes,
                          epochs=int(train_config.epochs), budget=budget, ledger=ledger,
                          rng=rng, feature_dim=feature_dim)
    batch = check_budget(n, budget, train_config, keep_steps, ledger.budget_passes)
    sampler.begin(state)
    bar = ProgressBar(progress, ledger.budget_passes, f"guided {sampler.name} {budget:g}",
                      "sample-passes")
    history: list[dict] = []
    steps, last_loss = 0, float("nan")
    start = time.perf_counter()
    try:
        for epoch in range(MAX_EPOCH_FACTOR * state.epochs):
            state.epoch = epoch
            # A budget tail smaller than a batch is left unspent: a handful of samples in a
            # batch would only disturb BatchNorm's moving statistics at the end of the run.
            # Epochs smaller than a batch (budget x N < batch: tiny data) train as one batch
            # each, so only a tail under one such epoch is left (with `< batch` here such a
            # run stopped up to a batch early: half the budget of 100 samples at 0.5 x 4
            # epochs, the learning rate still at 0.85 of its start).
            if ledger.remaining < min(batch, state.epoch_size):
                break
            plan = sampler.plan(state)
            order = rng.permutation(len(plan.indices))
            idx = np.asarray(plan.indices, np.int64)[order]
            w = (np.ones(len(idx), np.float32) if plan.weights is None
                 else np.asarray(plan.weights, np.float32)[order])
            take = min(len(idx), int(math.floor(ledger.remaining)))
            if take < len(idx):  # the budget ends inside this epoch: whole batches only
                take -= take % batch
            idx, w = idx[:take], w[:take]
            if take == 0:
                break
            w = w / w.mean()
            losses = []
            for s in range(0, take, batch):
                bi, bw = idx[s:s + batch], w[s:s + batch]
                if ledger.remaining < len(bi):
                    # A fit made before training is charged once the speed is known (the
                    # epoch's second step): when it lands in the epoch that ends the budget,
                    # the epoch stops where the budget does.
                    take = s
                    break
                optimizer.learning_rate.assign(_cosine(train_config.learning_rate,
                                                       ledger.progress))
                t0 = time.perf_counter()
                per_sample, feats, pred = step(tf.constant(to_float(x[bi])),
                                               tf.constant(state.y[bi], tf.int32),
                                               tf.constant(bw))
                per_sample = per_sample.numpy()
                ledger.charge_training(len(bi), time.perf_counter() - t0)
                state.record(bi, per_sample, np.exp(-per_sample), feats.numpy(), pred.numpy())
                losses.append(per_sample)
                steps += 1
                bar.update(ledger.spent)
            if not losses:  # the budget ended before this epoch's first batch
                break
            ledger.epoch_sizes.append(take)
            epoch_loss = float(np.concatenate(losses).mean())
            last_loss = epoch_loss
            history.append({"epoch": epoch, "samples": take, "loss": round(epoch_loss, 5),
                            "spent": round(ledger.spent, 1), "note": plan.note,
                            # what the optimizer used last (its own variable, not a copy)
                            "lr": float(optimizer.learning_rate.numpy())})
            sampler.end_epoch(state)
            if on_epoch_end is not None:
                model.set_weights(trainer.get_weights())
                history[-1].update(on_epoch_end(epoch, model, ledger) or {})
    finally:
        bar.stop()
    model.set_weights(trainer.get_weights())  # the caller's model; the step trains the next
    ledger.settle()
    return GuidedResult(model=model, ledger=ledger, seconds=time.perf_counter() - start,
                        steps=steps, final_loss=last_loss, epochs=history,
                        batch_size=batch)


_SHARED = threading.local()  # per thread: one guided training at a time


def _shared_step(shape: tuple, num_classes: int, model_config: ModelConfig | None):
    """The model, optimizer and traced train step that every guided run of this architecture
    in this thread trains through.

    A new ``tf.function`` per run traced the step again every time (about 2 s on a 2-CPU
    machine, a tenth of a full-data equal-steps training); each run copies its own seeded
    model's weights in and out and zeroes Adam's state
    (:func:`tinysift.models.training.start_from`), so its numbers are those of a fresh step
    (tests/test_guided.py checks them exactly).

    Returns
    -------
    (trainer, optimizer, step): ``trainer`` maps images to (backbone features, logits);
    ``step(xb, yb, wb)`` trains one weighted batch and returns the per-sample loss, the
    features and the predicted class.
    """
    from tinysift.tfcompat import keras, tf

    shared = _SHARED.__dict__.setdefault("by_key", {})
    key = (shape, num_classes, model_config)
    if key in shared:
        return shared[key]
    base = build_model(shape, num_classes, model_config)
    trainer = keras.Model(base.input, [base.get_layer(FEATURES_LAYER).output,
                                       base.get_layer(HEAD_LAYER).output])
    # The schedule is written into the optimizer's own variable each step: Adam given a
    # callable (``lambda: var``) copies its value once, and assigning the outer variable
    # then changes nothing (every guided and equal-steps run before this fix trained at a
    # constant 3e-3).
    optimizer = keras.optimizers.Adam(learning_rate=0.0)

    @tf.function(reduce_retracing=True)  # XLA (jit_compile) measured 5x slower on CPU
    def step(xb, yb, wb):
        with tf.GradientTape() as tape:
            feats, logits = trainer(xb, training=True)
            per_sample = tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits)
            loss = tf.reduce_sum(wb * per_sample) / tf.cast(tf.shape(yb)[0], tf.float32)
        grads = tape.gradient(loss, trainer.trainable_variables)
        optimizer.apply_gradients(zip(grads, trainer.trainable_variables, strict=True))
        return per_sample, feats, tf.argmax(logits, axis=1, output_type=tf.int32)

    shared[key] = (trainer, optimizer, step)
    return shared[key]


def train_for_passes(x: np.ndarray, y: np.ndarray, num_classes: int, passes: int,
                     model_config: ModelConfig | None = None, seed: int = 0,
                     progress: bool = False) -> GuidedResult:
    """Plain training of all of ``x, y`` (shuffled epochs) for exactly ``passes``
    sample-passes, the learning rate decaying to zero over them: the equal-steps protocol's
    trainer (a tiny kept set loops over itself as many times as the full data would)."""
    from tinysift.guided.methods.full_cut import FullCut

    epochs = max(1, math.ceil(passes / len(y)))
    return train_guided(x, y, num_classes, FullCut(seed=seed), 1.0, model_config,
                        TrainConfig(epochs=epochs, seed=seed), progress=progress,
                        budget_passes=passes)


def _cosine(base: float, progress: float) -> float:
    return 0.5 * base * (1.0 + math.cos(math.pi * min(1.0, max(0.0, progress))))
