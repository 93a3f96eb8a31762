"""VQ condensation: per-class codebooks of size K mapped back to images.

``vq``: each codeword decoded to an image as the mean image of the samples it quantizes
(the codeword's centroid in pixel space). ``vq-real``: the real sample nearest each
codeword (a representative, not a synthesis). Codewords are ordered by occupancy.
"""

from __future__ import annotations

import numpy as np

from tinysift.condensation.base import EmbeddingCondenser, register, to_uint8
from tinysift.selection.methods.vq import kmeans


@register
class VQCondenser(EmbeddingCondenser):
    name = "vq"
    nearest_real = False

    def _condense_class(self, c, idx, k):
        z = self.z_[idx]
        cent, assign = kmeans(z, k, self.seed + c)
        occupancy = np.bincount(assign, minlength=k)
        order = np.argsort(-occupancy, kind="stable")
        x = self.context_.x[idx]
        out = []
        for j in order:
            members = np.flatnonzero(assign == j)
            if self.nearest_real or len(members) == 0:
                d = np.linalg.norm(z - cent[j], axis=1)
                out.append(x[int(np.argmin(d))])
            else:
                out.append(to_uint8(x[members].astype(np.float32).mean(0) / 255.0))
        return np.stack(out)


@register
class VQRealCondenser(VQCondenser):
    name = "vq-real"
    nearest_real = True
