"""The cost ledger of a guided training: every sample-pass, every extra forward pass and every
fit (codebooks, flows) counted against one budget.

The unit is the *sample-pass*: one sample through forward and backward, what a full-data
epoch spends N of. An extra forward-only pass (scoring a sample without training on it)
costs ``FORWARD_COST`` of that (the backward pass costs about twice the forward: Kaplan et
al. 2020's 2N-forward / 4N-backward FLOP count). A fit (k-means, a flow, a mixture) is timed
and converted into sample-passes at the run's own measured training speed, so a method pays
for its scoring in the same currency as its training. That speed leaves out the first step of
each batch size, which traces the step function (in a process's first run of an architecture;
later runs share the traced step, :mod:`tinysift.guided.loop`): until 2026-12-02 it did
not, and a fit made before training (flow's label judge) was converted at the first step's
rate, tracing included, about 40x too slow a rate, so it was charged a fortieth of its cost.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

FORWARD_COST = 1.0 / 3.0


@dataclass
class CostLedger:
    """Spending against ``budget_passes`` sample-pass equivalents.

    Parameters
    ----------
    budget_passes : float
        What the run may spend: ``budget x epochs x N`` of the full-data recipe.
    """

    budget_passes: float
    train_passes: int = 0
    forward_passes: int = 0
    fit_seconds: dict[str, float] = field(default_factory=dict)
    #: fits converted into sample-passes when they ran (at the speed measured until then)
    fit_passes: float = 0.0
    train_seconds: float = 0.0
    #: seconds per training sample-pass in steady state, measured by the training loop on
    #: the steps of a batch size met before (None until one ran)
    seconds_per_pass: float | None = None
    #: the per-epoch plan sizes, as trained
    epoch_sizes: list[int] = field(default_factory=list)

    # -- charging -----------------------------------------------------------------------
    def __post_init__(self) -> None:
        self._pending = 0.0
        # Seconds of fits nested inside each open fit (a flow fit inside a codebook refit):
        # the outer fit excludes them, so every second is charged once.
        self._nested: list[float] = []
        self._sizes: set[int] = set()  # batch sizes whose first (tracing) step has run
        self._steady = [0, 0.0]  # passes and seconds of the other steps

    def charge_training(self, samples: int, seconds: float) -> None:
        self.train_passes += int(samples)
        self.train_seconds += float(seconds)
        if samples not in self._sizes:  # a new input shape: this step traced the function
            self._sizes.add(samples)
        else:
            self._steady[0] += int(samples)
            self._steady[1] += float(seconds)
            self.seconds_per_pass = self._steady[1] / self._steady[0]
        self._convert_pending()

    def settle(self) -> None:
        """Convert fits still pending at the end of a run (one with no step of a repeated
        batch size) at the only speed measured, tracing included."""
        if self._pending and self.seconds_per_pass is None and self.train_passes:
            self.seconds_per_pass = self.train_seconds / self.train_passes
        self._convert_pending()

    def charge_forward(self, samples: int) -> None:
        self.forward_passes += int(samples)

    @contextlib.contextmanager
    def fit(self, name: str) -> Iterator[None]:
        """Time a fit (codebook, flow, mixture) and charge it under ``name``.

        Fits may nest: each is charged its own time, without the fits inside it (until
        2026-12-01 an inner fit was charged twice, once more inside the outer one)."""
        start = time.perf_counter()
        self._nested.append(0.0)
        try:
            yield
        finally:
            total = time.perf_counter() - start
            seconds = total - self._nested.pop()
            if self._nested:
                self._nested[-1] += total
            self.fit_seconds[name] = self.fit_seconds.get(name, 0.0) + seconds
            # Converted once, at the speed measured so far, so the budget spent never drifts
            # afterwards (a fit before training waits for the first steady step's rate).
            self._pending += seconds
            self._convert_pending()

    def _convert_pending(self) -> None:
        if self._pending and self.seconds_per_pass:
            self.fit_passes += self._pending / self.seconds_per_pass
            self._pending = 0.0

    # -- reading ----------------------------------------------------------------------------
    @property
    def spent(self) -> float:
        return self.train_passes + FORWARD_COST * self.forward_passes + self.fit_passes

    @property
    def remaining(self) -> float:
        return max(0.0, self.budget_passes - self.spent)

    @property
    def progress(self) -> float:
        """Fraction of the budget spent, in [0, 1] (drives the learning-rate schedule)."""
        return min(1.0, self.spent / self.budget_passes) if self.budget_passes else 1.0

    def to_dict(self) -> dict:
        return {"budget_passes": round(self.budget_passes, 1),
                "train_passes": self.train_passes, "forward_passes": self.forward_passes,
                "forward_cost": FORWARD_COST,
                "fit_seconds": {k: round(v, 3) for k, v in self.fit_seconds.items()},
                "fit_passes": round(self.fit_passes, 1),
                "spent_passes": round(self.spent, 1),
                "train_seconds": round(self.train_seconds, 2),
                "seconds_per_pass": self.seconds_per_pass,
                "epoch_sizes": list(self.epoch_sizes)}
