"""GraNd: expected gradient norm early in training (Paul, Ganguli & Dziugaite, 2021)."""

from __future__ import annotations

import numpy as np

from tinysift.selection.base import register
from tinysift.selection.methods._common import RankedMethod, check_epoch, per_epoch


@register
class GraNdMethod(RankedMethod):
    """Keep the samples with the largest per-sample loss-gradient norm first.

    Paul, M., Ganguli, S. & Dziugaite, G. K. "Deep Learning on a Data Diet: Finding Important
    Examples Early in Training." NeurIPS 2021. GraNd is ``E_w ||grad_w loss(x, y)||_2`` over
    initialisations, measured at or shortly after initialisation; the paper keeps the highest.

    Score direction: ``scores_`` is the gradient norm, **higher = kept first**; ties broken by a
    seeded random key.

    Choices: the gradient is the one tinysift's dynamics record, the gradient of the
    cross-entropy with respect to the classifier head (weights and bias) of the proxy CNN,
    whose norm factorises as ``||p - y|| * sqrt(||features||^2 + 1)``; the paper uses all
    parameters. The dynamics are recorded after each epoch (never at initialisation) and for
    one proxy run instead of 10 initialisations; like :class:`EL2NMethod` the default reads the
    last recorded epoch (``epoch=0`` is the closest to the paper's "at initialisation" variant,
    ``"mean"`` averages the epochs).

    Parameters
    ----------
    seed : int
    balance : bool
    epoch : int or "mean"
    """

    name = "grand"
    score_meaning = ("GraNd (norm of the proxy head's loss gradient), higher = kept "
                     "first")
    needs = frozenset({"dynamics"})

    def __init__(self, seed: int = 0, balance: bool = True, epoch: int | str = -1):
        super().__init__(seed=seed, balance=balance)
        check_epoch(epoch)
        self.epoch = epoch

    def _fit(self, context) -> np.ndarray:
        return per_epoch(context.dynamics().grand, self.epoch)
