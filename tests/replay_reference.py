"""Numpy reference of the replay-buffer upkeep (``firmware/lib/tsengine/src/ts_replay.c``),
written from docs/trainer.md "Replay upkeep": the same draws in the same order, so the kept
set (slots, stream indices, codewords) must be identical for the same stream and seed.

A test oracle, not shipped. :func:`run_stream` is the whole stream; :class:`ReplayBuffer`
one offer at a time.
"""

from __future__ import annotations

import numpy as np

SEED_ZERO = 0x6D2B79F5
FREE = 0xFFFF
NO_CODEWORD = 0xFFFE
DROP = 0xFFFFFFFF
M32 = 0xFFFFFFFF


def xorshift32(state: int) -> int:
    x = state
    x ^= (x << 13) & M32
    x ^= x >> 17
    x ^= (x << 5) & M32
    return x


class ReplayBuffer:
    """``policy`` ``reservoir`` or ``coverage``; ``capacity`` B slots; for coverage
    ``codebook`` (K, C, D) int8 with ``counts`` (K,) exported codewords per class (0: the
    class is online) and ``radius2`` (K,) squared radii."""

    def __init__(self, policy: str, capacity: int, seed: int, num_classes: int,
                 codebook: np.ndarray | None = None, counts=None, radius2=None):
        self.policy, self.b, self.k = policy, capacity, num_classes
        self.rng = seed if seed else SEED_ZERO
        self.seen = self.kept = self.codewords = self.evicted = 0
        self.slot_index = [0] * capacity
        self.slot_cw = [FREE] * capacity
        if policy == "coverage":
            self.codebook = np.asarray(codebook, np.int64)
            self.c, self.d = self.codebook.shape[1], self.codebook.shape[2]
            self.counts = [int(v) for v in counts]
            self.radius2 = [int(v) for v in radius2]
            self.online = np.zeros_like(self.codebook)
            self.online_count = [0] * num_classes
            n = num_classes * self.c
            self.cw_seen, self.cw_kept = [0] * n, [0] * n
            self.class_kept = [0] * num_classes

    def _draw(self) -> int:
        self.rng = xorshift32(self.rng)
        return self.rng

    # ---- coverage -------------------------------------------------------------------------

    @staticmethod
    def _nearest(rows: np.ndarray, f: np.ndarray) -> tuple[int, int]:
        d2 = ((rows - f[None, :]) ** 2).sum(1)
        j = int(np.argmin(d2))  # the first of equal minima
        return j, int(d2[j])

    def assign(self, c: int, f: np.ndarray) -> int:
        base = c * self.c
        if self.counts[c] > 0:
            return base + self._nearest(self.codebook[c, :self.counts[c]], f)[0]
        opened = self.online_count[c]
        j, d2 = self._nearest(self.online[c, :opened], f) if opened else (0, 0)
        if opened == 0 or (d2 > self.radius2[c] and opened < self.c):
            j = opened
            self.online[c, j] = f
            self.online_count[c] = opened + 1
        return base + j

    def _nth_slot(self, g: int, j: int) -> int:
        return [s for s in range(self.b) if self.slot_cw[s] == g][j]

    def _most_kept(self, c: int) -> int:
        """The first codeword of class ``c`` with the largest share kept, kept / assigned
        (compared as kept[h] * n[best] > kept[best] * n[h]; unseen codewords skipped)."""
        best = None
        for h in range(c * self.c, (c + 1) * self.c):
            if self.cw_seen[h] == 0:
                continue
            if best is None or (self.cw_kept[h] * self.cw_seen[best]
                                > self.cw_kept[best] * self.cw_seen[h]):
                best = h
        return best

    def _evict_from(self, h: int) -> int:
        s = self._nth_slot(h, self._draw() % self.cw_kept[h])
        self.cw_kept[h] -= 1
        self.class_kept[h // self.c] -= 1
        self.evicted += 1
        return s

    def _offer_coverage(self, label: int, f: np.ndarray) -> int:
        g = self.assign(label, np.asarray(f, np.int64))
        if self.cw_seen[g] == 0:
            self.codewords += 1
        self.cw_seen[g] += 1
        largest = self.class_kept.index(max(self.class_kept))
        if self.kept < self.b:
            s = self.slot_cw.index(FREE)
            self.kept += 1
        elif self.class_kept[label] < self.class_kept[largest]:
            s = self._evict_from(self._most_kept(largest))
        elif (self.cw_kept[g] * self.cw_seen[h := self._most_kept(label)]
              < self.cw_kept[h] * self.cw_seen[g]):
            s = self._evict_from(h)
        else:  # g has the largest share kept of a largest class: g's own reservoir
            j = self._draw() % self.cw_seen[g]
            return self._nth_slot(g, j) if j < self.cw_kept[g] else DROP
        self.slot_cw[s] = g
        self.cw_kept[g] += 1
        self.class_kept[label] += 1
        return s

    # ---- reservoir ------------------------------------------------------------------------

    def _offer_reservoir(self, t: int) -> int:
        if self.kept < self.b:
            self.slot_cw[self.kept] = NO_CODEWORD
            self.kept += 1
            return self.kept - 1
        j = self._draw() % (t + 1)
        return j if j < self.b else DROP

    def offer(self, label: int, features=None) -> int:
        t = self.seen
        s = (self._offer_coverage(label, features) if self.policy == "coverage"
             else self._offer_reservoir(t))
        if s != DROP:
            self.slot_index[s] = t
        self.seen = t + 1
        return s

    def compact(self) -> list[tuple[int, int]]:
        """The kept samples in slot order: ``(stream index, codeword or -1)``."""
        return [(self.slot_index[s], -1 if self.slot_cw[s] == NO_CODEWORD else self.slot_cw[s])
                for s in range(self.b) if self.slot_cw[s] != FREE]

    def class_stats(self, c: int) -> tuple[int, int]:
        """(codewords seen, codewords with a kept sample) of class ``c``."""
        if self.policy != "coverage":
            return 0, 0
        gs = [c * self.c + j for j in range(self.c) if self.cw_seen[c * self.c + j] > 0]
        return len(gs), sum(self.cw_kept[g] > 0 for g in gs)


def run_stream(policy: str, capacity: int, seed: int, labels, features=None,
               num_classes: int | None = None, codebook=None, counts=None,
               radius2=None) -> ReplayBuffer:
    """Offer every sample of the stream in order; the buffer afterwards (``.compact()`` is
    the kept set in the device's order)."""
    labels = np.asarray(labels)
    k = num_classes if num_classes is not None else int(labels.max()) + 1
    buf = ReplayBuffer(policy, capacity, seed, k, codebook, counts, radius2)
    for i, y in enumerate(labels):
        buf.offer(int(y), None if features is None else features[i])
    return buf
