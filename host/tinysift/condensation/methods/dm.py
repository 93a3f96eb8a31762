"""Distribution matching (DM, Zhao & Bilen, WACV 2023), the reference condensation method.

Synthetic images (initialized from random real samples of their class) are optimized so that
their mean embedding matches the real class's mean embedding under randomly initialized
convolutional networks, a fresh random network every iteration. Loss: sum over classes of
||mean f(real_c) - mean f(syn_c)||^2; SGD with momentum 0.5 on the pixels, as in the paper.
The paper's learning rate (1.0) is for standardized pixels; pixels here stay in [0, 1], where
the same step is ``learning_rate * std**2`` (the embedding is invariant to the affine map:
instance norm follows the first convolution). Taken as is, 1.0 in [0, 1] units saturated a
quarter of the pixels within 150 iterations on Fashion-MNIST and made K=1 worse than its
random real initialization (0.14 vs 0.32).
Simplification (stated): no differentiable siamese augmentation, and 400 iterations (the
paper runs 20,000) with 64 real images per class per iteration (the paper: 256), for the
2-core budget (3 to 9 min per K of 1 to 50 on Fashion-MNIST), so this is a cheap DM, not
its published numbers.
"""

from __future__ import annotations

import math

import numpy as np

from tinysift.condensation.base import Condenser, register, to_uint8
from tinysift.errors import TinysiftError
from tinysift.params import is_whole
from tinysift.progress import progress_bar


@register
class DMCondenser(Condenser):
    name = "dm"

    def __init__(self, seed: int = 0, iterations: int = 400, real_batch: int = 64,
                 learning_rate: float = 1.0, width: int = 64, depth: int = 3):
        super().__init__(seed)
        # checked here: a real_batch, width or depth of 0 was a TF graph error or a
        # ZeroDivisionError, a NaN learning rate silently black images
        for key, value, least in (("iterations", iterations, 0), ("real_batch", real_batch, 1),
                                  ("width", width, 1), ("depth", depth, 1)):
            if not is_whole(value, least):
                raise TinysiftError(f"dm: {key} must be a whole number >= {least}, got "
                                    f"{value!r}")
        if not math.isfinite(learning_rate) or learning_rate <= 0:
            raise TinysiftError(f"dm: learning_rate must be a positive number, got "
                                f"{learning_rate}")
        self.iterations, self.real_batch = iterations, real_batch
        self.learning_rate, self.width, self.depth = learning_rate, width, depth

    def condense(self, per_class: int):
        from tinysift.condensation.base import check_per_class

        ctx = self.context_
        if ctx is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(context) first")
        # K is checked before the optimization it sizes (a K of 0 was a TF graph error, one
        # above a class a numpy sampling error)
        check_per_class(per_class, np.bincount(ctx.y, minlength=ctx.num_classes))
        self._synth = self._optimize(per_class)
        return super().condense(per_class)

    def _condense_class(self, c, idx, k):
        return to_uint8(self._synth[c])

    def _optimize(self, k: int) -> np.ndarray:
        from tinysift.tfcompat import tf

        ctx = self.context_
        rng = np.random.default_rng(self.seed)
        kc = ctx.num_classes
        x = ctx.x.astype(np.float32) / 255.0
        by_class = [ctx.class_indices(c) for c in range(kc)]
        init = np.stack([x[rng.choice(ix, size=k, replace=False)] for ix in by_class])
        syn = tf.Variable(init)  # (K, k, H, W, C)
        pixel_var = float(x.var())
        opt = tf.keras.optimizers.SGD(self.learning_rate * pixel_var, momentum=0.5)
        h, w, ch = x.shape[1:]
        depth = max(1, min(self.depth, int(np.log2(min(h, w)))))

        def embed(images, kernels):
            out = images
            for kern in kernels:
                out = tf.nn.conv2d(out, kern, 1, "SAME")
                mean, var = tf.nn.moments(out, axes=[1, 2], keepdims=True)
                out = tf.nn.relu((out - mean) / tf.sqrt(var + 1e-5))  # instance norm
                if min(out.shape[1], out.shape[2]) >= 2:  # 1xN images: pooling a 1-pixel
                    out = tf.nn.avg_pool2d(out, 2, 2, "VALID")  # side was a TF shape error
            return tf.reshape(out, (tf.shape(out)[0], -1))

        @tf.function
        def step(real, kernels):
            with tf.GradientTape() as tape:
                flat = tf.reshape(syn, (kc * k, h, w, ch))
                es = tf.reshape(embed(flat, kernels), (kc, k, -1))
                er = tf.reshape(embed(real, kernels), (kc, self.real_batch, -1))
                loss = tf.reduce_sum((tf.reduce_mean(er, 1) - tf.reduce_mean(es, 1)) ** 2)
            opt.apply_gradients([(tape.gradient(loss, syn), syn)])
            syn.assign(tf.clip_by_value(syn, 0.0, 1.0))
            return loss

        with progress_bar(ctx.progress, self.iterations, f"dm {k}/class", "iterations") as bar:
            for it in range(self.iterations):
                kernels, cin = [], ch
                for _layer in range(depth):
                    std = np.sqrt(2.0 / (9 * cin))
                    kernels.append(tf.constant(
                        rng.normal(0, std, (3, 3, cin, self.width)).astype(np.float32)))
                    cin = self.width
                picks = np.concatenate([rng.choice(ix, size=self.real_batch,
                                                   replace=len(ix) < self.real_batch)
                                        for ix in by_class])
                step(tf.constant(x[picks]), kernels)
                bar.update(it + 1)
        return syn.numpy()
