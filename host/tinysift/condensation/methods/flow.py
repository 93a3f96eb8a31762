"""Flow condensation: samples drawn from a per-class normalizing flow, decoded to images.

The flow is fit on a PCA of the pixels (so a sampled embedding decodes linearly back to an
image); samples are drawn at a reduced temperature (0.7): the base distribution's noise is
scaled before the flow is inverted, which trades diversity for typicality as Glow does.
(Until 2026-12-03 the decoded samples were shrunk toward the class mean instead, which
moves them between the class's modes, off its density.)
"""

from __future__ import annotations

import numpy as np

from tinysift.condensation.base import Condenser, register, to_uint8
from tinysift.errors import TinysiftError
from tinysift.params import is_whole
from tinysift.scoring.flows import ClassFlows, FlowConfig


@register
class FlowCondenser(Condenser):
    name = "flow"

    def __init__(self, seed: int = 0, dim: int = 24, temperature: float = 0.7,
                 flow: FlowConfig | dict | None = None):
        super().__init__(seed)
        if not 0 < temperature <= 1:  # a parameter, not a budget: no BudgetError
            raise TinysiftError(f"flow condenser temperature must be in (0, 1], got "
                                f"{temperature}: it scales the flow's base noise (1 draws at "
                                f"the class's own spread, the default 0.7 nearer its mode)")
        # 0 was a PCA error, 1 a FitError blaming 1x1 images, 2.5 silently 2 dimensions
        if not is_whole(dim, 2):
            raise TinysiftError(f"flow condenser dim must be a whole number of at least 2 (a "
                                f"flow needs 2 dimensions), got {dim}")
        self.dim, self.temperature = dim, temperature
        self.flow = FlowConfig(**flow) if isinstance(flow, dict) else (flow or FlowConfig())

    def _fit(self, context):
        from sklearn.decomposition import PCA

        x = context.x.reshape(len(context.x), -1).astype(np.float32) / 255.0
        dim = int(min(self.dim, x.shape[1], max(2, _smallest_class(context.y) // 10)))
        self.pca_ = PCA(n_components=dim, svd_solver="randomized", random_state=self.seed)
        z = self.pca_.fit_transform(x).astype(np.float32)
        self.flows_ = ClassFlows(self.flow, seed=self.seed).fit(z, context.y,
                                                                context.num_classes)

    def _condense_class(self, c, idx, k):
        z = self.flows_.sample(c, k, seed=self.seed + c, temperature=self.temperature)
        flat = self.pca_.inverse_transform(z)
        return to_uint8(flat.reshape((k,) + self.context_.x.shape[1:]))


def _smallest_class(y: np.ndarray) -> int:
    """Samples in the smallest class present (absent labels do not count)."""
    counts = np.bincount(y)
    return int(counts[counts > 0].min())
