"""Deterministic training and evaluation of the tiny CNN.

The recipe is the same for every method (so benchmarks compare data, not recipes): Adam with
cosine decay, batch 128, and a step budget. With ``epochs`` set, that many passes over the
training set; otherwise ``max(min_steps, subset_epochs * ceil(N / batch))`` steps, so a tiny
subset still gets enough updates to converge.
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from tinysift.models.cnn import ModelConfig, build_model


@dataclass(frozen=True)
class TrainConfig:
    """Training recipe.

    Parameters
    ----------
    epochs : int or None
        Passes over the training data; ``None`` applies the subset step rule.
    min_steps, subset_epochs : int
        Step rule used when ``epochs`` is None.
    batch_size : int
    learning_rate : float
        Peak Adam learning rate, decayed with a cosine schedule to 0.
    seed : int
    """

    epochs: int | None = None
    min_steps: int = 500
    subset_epochs: int = 6
    batch_size: int = 128
    learning_rate: float = 3e-3
    seed: int = 0

    def total_steps(self, num_samples: int) -> int:
        per_epoch = max(1, math.ceil(num_samples / self.batch_size))
        if self.epochs is not None:
            return self.epochs * per_epoch
        return max(self.min_steps, self.subset_epochs * per_epoch)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    model: object
    steps: int
    seconds: float
    final_loss: float
    history: dict = field(default_factory=dict)


EpochHook = Callable[[int, object], None]


def to_float(x: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [0, 1], the model's input convention. Floats are refused:
    images already in [0, 1] were divided by 255 again, and a model trained, evaluated or
    calibrated on them (convert_int8's representative set) was wrong without an error."""
    if np.issubdtype(x.dtype, np.floating):
        from tinysift.errors import TinysiftError

        raise TinysiftError(f"images must be uint8 pixels (0..255), got {x.dtype}; pass the "
                            "uint8 images: tinysift scales them to [0, 1] itself")
    return x.astype(np.float32) / 255.0


def seed_everything(seed: int) -> None:
    """Seed TensorFlow (and, through Keras' set_random_seed, Python's and numpy's global
    generators) with op determinism on: the same seed trains the same weights."""
    from tinysift.tfcompat import tf

    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def keeps_global_generators(func):
    """Put Python's and numpy's global generators back as they were after ``func``, which
    seeds them (:func:`seed_everything`): a library caller's own ``np.random`` stream after a
    training otherwise restarted at the training's seed. tinysift's own draws use their own
    Generators, so no result depends on the global ones."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            return func(*args, **kwargs)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)

    return wrapper


@keeps_global_generators
def train_model(x: np.ndarray, y: np.ndarray, num_classes: int,
                model_config: ModelConfig | None = None,
                train_config: TrainConfig | None = None,
                epoch_hooks: Sequence[EpochHook] = (),
                progress: bool = True, model=None) -> TrainResult:
    """Train a tiny CNN from scratch (or continue ``model``) on uint8 images.

    Parameters
    ----------
    x : np.ndarray
        uint8 images (N, H, W, C).
    y : np.ndarray
        int labels (N,).
    num_classes : int
    model_config, train_config : optional configs
    epoch_hooks : callables ``hook(epoch_index, model)`` run after every pass over the data
        (used by scorers that track training dynamics: forgetting, AUM, EL2N).
    progress : bool
        Show a rich progress bar.
    model : tf_keras.Model, optional
        Continue training this model instead of building a new one.
    """
    from tinysift.tfcompat import keras, tf

    train_config = train_config or TrainConfig()
    y = _check_training_data(x, y, num_classes, train_config)
    n = len(x)
    total = train_config.total_steps(n)
    per_epoch = max(1, math.ceil(n / train_config.batch_size))
    epochs = math.ceil(total / per_epoch)
    steps = epochs * per_epoch
    # Training runs whole epochs (`steps` >= `total`, reported) while the cosine decays over
    # `total`: the few steps past it train at learning rate 0 (Digits: 504 steps, the last
    # 4). Kept as every committed result was trained.
    shape = tuple(x.shape[1:])
    # A new model trains through its architecture's compiled twin, made before seeding.
    twin = None if model is not None else _compiled_twin(shape, num_classes, model_config)
    seed_everything(train_config.seed)
    if model is None:
        model = build_model(shape, num_classes, model_config)
    _compile(model, keras.optimizers.schedules.CosineDecay(train_config.learning_rate, total))
    trainer = model if twin is None else _reset_twin(twin, model, train_config.learning_rate,
                                                     total)
    ds = (tf.data.Dataset.from_tensor_slices((to_float(x), y.astype(np.int32)))
          .shuffle(n, seed=train_config.seed, reshuffle_each_iteration=True)
          .repeat()
          .batch(train_config.batch_size)
          .prefetch(2))
    callbacks = [_HookCallback(epoch_hooks)] if epoch_hooks else []
    start = time.perf_counter()
    with fit_progress(progress, steps, f"train {n} samples") as bar:
        if epoch_hooks:
            hist = trainer.fit(ds, epochs=epochs, steps_per_epoch=per_epoch, verbose=0,
                               callbacks=callbacks + bar)
            final_loss = float(hist.history["loss"][-1])
        else:
            # Without per-epoch hooks, one Keras epoch holds every step: the same batches in
            # the same order (the repeated dataset's iterator is shared across Keras epochs
            # anyway) and bit-identical weights, without Keras' per-epoch overhead, which
            # dominates on tiny kept sets (600 samples = 5 steps per epoch).
            tail = _TailLoss(steps, per_epoch)
            hist = trainer.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0,
                               callbacks=callbacks + bar + [tail])
            final_loss = tail.value()
    seconds = time.perf_counter() - start
    if trainer is not model:  # the caller keeps its own model; the twin trains the next one
        model.set_weights(trainer.get_weights())
        _copy_optimizer_state(trainer.optimizer, model)
    return TrainResult(model=model, steps=steps, seconds=seconds,
                       final_loss=final_loss,
                       history={k: [float(v) for v in vs] for k, vs in hist.history.items()})


def _check_training_data(x: np.ndarray, y: np.ndarray, num_classes: int,
                         config: TrainConfig) -> np.ndarray:
    """``y`` as (N,) labels, or one TinysiftError naming what train_model cannot train on
    (each was an error from inside TensorFlow: "buffer_size must be greater than zero", a
    graph error at SparseSoftmaxCrossEntropyWithLogits, "steps_per_epoch must be positive",
    a ZeroDivisionError; (N, 1) labels a TypeError)."""
    from tinysift.errors import TinysiftError
    from tinysift.params import is_whole

    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:  # Keras' (N, 1) labels
        y = y.reshape(-1)
    if len(x) == 0 or y.shape != (len(x),):
        raise TinysiftError(f"train_model needs one label per image and at least one image: "
                            f"{len(x)} images, labels of shape {y.shape}")
    if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= num_classes:
        raise TinysiftError(f"labels must be whole numbers in [0, {num_classes}) for "
                            f"num_classes={num_classes}, got {y.dtype} in [{y.min()}, {y.max()}]")
    if not is_whole(config.batch_size, 1) or (config.epochs is not None
                                               and not is_whole(config.epochs, 1)):
        raise TinysiftError(f"TrainConfig needs batch_size >= 1 and epochs >= 1 (or None: the "
                            f"step rule), got batch_size={config.batch_size}, "
                            f"epochs={config.epochs}")
    return y


def _compile(model, schedule):
    """The recipe's optimizer and loss: Adam on ``schedule``, cross-entropy, accuracy."""
    from tinysift.tfcompat import keras

    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    return model


_TWINS = threading.local()  # per thread: a twin is one training at a time


def _compiled_twin(shape: tuple, num_classes: int, model_config: ModelConfig | None):
    """The compiled model that trains every new model of this architecture in this thread.

    Compiling a new model per training made Keras trace its train step every time (about
    2.5 s per training on a 2-CPU machine, a third of a 250-step digits training). The twin
    is compiled once per architecture and thread and its schedule reads variables, so its
    traced step serves every recipe. Built before the training's seed is set, so making
    it draws nothing from the seeded generators.
    """
    twins = _TWINS.__dict__.setdefault("by_key", {})
    key = (shape, num_classes, model_config)
    if key not in twins:
        schedule = _make_cosine_schedule()()
        twins[key] = (_compile(build_model(shape, num_classes, model_config), schedule),
                      schedule)
    return twins[key]


def _reset_twin(twin_and_schedule: tuple, fresh, learning_rate: float, total_steps: int):
    """The twin as a freshly compiled ``fresh`` would be: ``fresh``'s weights, Adam's state
    zeroed, and the cosine schedule from ``learning_rate`` over ``total_steps``, bit for bit
    (tests/test_models.py compares the two paths' weights exactly)."""
    twin, schedule = twin_and_schedule
    schedule.set(learning_rate, total_steps)
    start_from(twin, twin.optimizer, fresh)
    return twin


def start_from(trainer, optimizer, fresh) -> None:
    """``trainer`` as a new training starts it: ``fresh``'s weights (BatchNorm's moving
    statistics included) and a new ``optimizer`` (step count and Adam's moments zero; its
    learning rate is the caller's)."""
    from tinysift.tfcompat import tf

    trainer.set_weights(fresh.get_weights())
    for var in optimizer.variables:
        var.assign(tf.zeros_like(var))


def _copy_optimizer_state(source, model) -> None:
    """The twin's step count and Adam moments into ``model``'s own optimizer, so that the
    model the caller saves holds the state a freshly compiled model would after training
    (a saved model that trains on resumes Adam where the twin stopped)."""
    model.optimizer.build(model.trainable_variables)
    for target, value in zip(model.optimizer.variables, source.variables, strict=True):
        target.assign(value)  # raises on a shape mismatch


def _make_cosine_schedule():
    from tinysift.tfcompat import keras, tf

    class CosineToZero(keras.optimizers.schedules.LearningRateSchedule):
        """Keras' ``CosineDecay(learning_rate, total_steps)`` as its compiled train step
        computes it, with both numbers in variables so one traced step serves any recipe.

        Inside a traced function TensorFlow's graph optimizer turns CosineDecay's
        ``step / decay_steps`` by a constant into ``step * (1 / decay_steps)``: 1 ulp off
        the division at some steps (9 of 41 for 40 steps). This computes the product with
        the float32 reciprocal, which matches the compiled CosineDecay bit for bit.
        """

        def __init__(self):
            super().__init__()
            self.learning_rate = tf.Variable(0.0, dtype=tf.float32, trainable=False)
            self.total_steps = tf.Variable(1.0, dtype=tf.float32, trainable=False)
            self.inverse_steps = tf.Variable(1.0, dtype=tf.float32, trainable=False)

        def set(self, learning_rate: float, total_steps: int) -> None:
            self.learning_rate.assign(learning_rate)
            self.total_steps.assign(float(total_steps))
            self.inverse_steps.assign(np.float32(1.0) / np.float32(total_steps))

        def __call__(self, step):
            step = tf.minimum(tf.cast(step, tf.float32), self.total_steps)
            cosine = 0.5 * (1.0 + tf.cos(tf.constant(math.pi, tf.float32)
                                         * (step * self.inverse_steps)))
            return tf.multiply(tf.convert_to_tensor(self.learning_rate), cosine)

        def get_config(self):
            return {}

    return CosineToZero


def predict_proba(model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Class probabilities for uint8 images."""
    out = [model(to_float(x[i:i + batch_size]), training=False).numpy()
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.output.shape[-1]), np.float32)


def evaluate(model, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy on uint8 images; ``y``: one integer label per image, (N,) or Keras'
    (N, 1) (compared as it was, an (N, 1) ``y`` broadcast to N x N pairs: a wrong accuracy
    without an error)."""
    from tinysift.errors import TinysiftError

    y = np.asarray(y)
    if y.size != len(x) or y.ndim > 1 and y.shape[1:] != (1,) * (y.ndim - 1):
        raise TinysiftError(f"evaluate needs one label per image: {len(x)} images, labels of "
                            f"shape {y.shape}")
    return float((predict_proba(model, x).argmax(1) == y.reshape(-1)).mean())


def _make_hook_callback():
    from tinysift.tfcompat import keras

    class HookCallback(keras.callbacks.Callback):
        def __init__(self, hooks):
            super().__init__()
            self.hooks = list(hooks)

        def on_epoch_end(self, epoch, logs=None):
            for hook in self.hooks:
                hook(epoch, self.model)

    return HookCallback


def _make_progress_callback():
    from tinysift.progress import ProgressBar
    from tinysift.tfcompat import keras

    class StepProgress(keras.callbacks.Callback):
        """A step bar with the last batch's loss."""

        def __init__(self, total, label):
            super().__init__()
            self.total, self.label, self.steps = total, label, 0
            self.bar = ProgressBar(False, total, label, "steps")

        def on_train_begin(self, logs=None):
            self.bar = ProgressBar(True, self.total, self.label, "steps", fields={"loss": "-"})

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            loss = f"{logs['loss']:.3f}" if logs and "loss" in logs else "-"
            self.bar.update(self.steps, loss=loss)

        def on_train_end(self, logs=None):
            self.bar.stop()

    return StepProgress


@contextlib.contextmanager
def fit_progress(show: bool, total: int, label: str) -> Iterator[list]:
    """Keras callbacks showing a step bar (none when not ``show``), the bar stopped however
    ``fit`` ends: Keras skips ``on_train_end`` when a step raises or is interrupted, which
    left a live bar over the error message."""
    if not show:
        yield []
        return
    callback = _make_progress_callback()(total, label)
    try:
        yield [callback]
    finally:
        callback.bar.stop()


def _make_tail_loss_callback():
    from tinysift.tfcompat import keras

    class TailLoss(keras.callbacks.Callback):
        """Mean loss over the last ``tail`` of ``steps`` batches (the last data epoch), from
        Keras' running mean at two points of a single Keras epoch."""

        def __init__(self, steps, tail):
            super().__init__()
            self.steps, self.tail = steps, tail
            self.mid = 0.0
            self.end = float("nan")

        def on_train_batch_end(self, batch, logs=None):
            if logs and "loss" in logs:
                if batch + 1 == self.steps - self.tail:
                    self.mid = float(logs["loss"])
                self.end = float(logs["loss"])

        def value(self) -> float:
            head = self.steps - self.tail
            return (self.end * self.steps - self.mid * head) / self.tail

    return TailLoss


def _TailLoss(steps, tail):  # noqa: N802 - factory standing in for a class
    return _make_tail_loss_callback()(steps, tail)


def _HookCallback(hooks):  # noqa: N802 - factory standing in for a class
    return _make_hook_callback()(hooks)


