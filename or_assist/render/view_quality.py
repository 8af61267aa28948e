"""How clearly a virtual view shows bone: the measure behind the C-arm look of real-CT views.

:func:`local_bone_contrast` compares, in blocks of the image, the grey of the pixels with
the least bone on their ray with those with the most: how much darker bone shows than the
soft tissue beside it, in grey levels. Used by ``benchmarks/view_contrast.py`` and the
tests of :data:`~or_assist.render.display.CARM_DISPLAY`.
"""

from __future__ import annotations

import numpy as np

from or_assist.errors import InputError

__all__ = ["local_bone_contrast"]


def local_bone_contrast(display: np.ndarray, bone_path: np.ndarray, valid: np.ndarray, blocks: int = 8) -> float:
    """Mean over image blocks of (grey of the quarter of pixels with the least bone - grey of
    the quarter with the most).

    Parameters
    ----------
    display : (H, W) ndarray
        The displayed view (grey levels, bone dark).
    bone_path : (H, W) ndarray
        Each pixel's line integral through bone only (same pose and geometry).
    valid : (H, W) bool ndarray
        Pixels to measure (e.g. the field); blocks less than 80 % valid are skipped.
    blocks : int
        The image is cut into ``blocks`` x ``blocks`` blocks.

    Returns
    -------
    float
        Grey levels (positive: bone darker); NaN when fewer than ``blocks`` blocks have
        valid pixels and bone variation to measure.
    """
    display, bone_path, valid = np.asarray(display), np.asarray(bone_path), np.asarray(valid, dtype=bool)
    if display.ndim != 2 or bone_path.shape != display.shape or valid.shape != display.shape:
        raise InputError(f"expected three images of one (H, W) shape, got {display.shape}, {bone_path.shape}, "
                         f"{valid.shape}", "display/bone_path/valid")
    h, w = display.shape
    bh, bw = h // blocks, w // blocks
    out = []
    for y in range(0, bh * blocks, bh):
        for x in range(0, bw * blocks, bw):
            m = valid[y:y + bh, x:x + bw]
            if m.mean() < 0.8:
                continue
            b, g = bone_path[y:y + bh, x:x + bw][m], display[y:y + bh, x:x + bw][m].astype(float)
            q1, q3 = np.percentile(b, [25, 75])
            if q3 - q1 >= 0.05:
                out.append(g[b <= q1].mean() - g[b >= q3].mean())
    return float(np.mean(out)) if len(out) >= blocks else float("nan")
