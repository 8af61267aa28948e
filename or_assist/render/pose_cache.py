"""A DRR renderer that remembers its last renders, for many exposures of one C-arm position."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from or_assist.core.pose import Pose
from or_assist.errors import InputError
from or_assist.render.drr import AttenuationVolume, DRRRenderer

__all__ = ["PoseCachedRenderer"]


class PoseCachedRenderer(DRRRenderer):
    """A :class:`DRRRenderer` that remembers its last ``cache_size`` renders.

    Rendering the same pose and detector again returns a copy of the stored DRR, so a
    simulator can draw many exposures (fresh photon noise each) of one C-arm position
    for the cost of one ray cast.

    Parameters
    ----------
    volume : AttenuationVolume
    cache_size : int
        Renders kept (each (H, W) float32 of the supersampled detector).
    """

    def __init__(self, volume: AttenuationVolume, *, cache_size: int = 16):
        super().__init__(volume)
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise InputError(f"must be an integer >= 1, got {cache_size!r}", "cache_size")
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0

    def render(self, pose, geometry, *, step_mm=None, roi=None, downsample=1) -> np.ndarray:
        """As :meth:`DRRRenderer.render`, from the cache when the same request was made."""
        matrix = pose.matrix if isinstance(pose, Pose) else np.asarray(pose, dtype=np.float64)
        key = (np.asarray(matrix, dtype=np.float64).tobytes(), geometry, step_mm,
               None if roi is None else tuple(int(x) for x in roi), downsample)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                self.cache_hits += 1
                return hit.copy()
        out = super().render(pose, geometry, step_mm=step_mm, roi=roi, downsample=downsample)
        with self._cache_lock:
            self.cache_misses += 1
            self._cache[key] = out.copy()
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return out
