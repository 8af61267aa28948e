"""How sharply a registration's optimum pins the pose down, and the error that implies.

At the final pose the similarity is sampled one step either side along each of the six
update parameters (:mod:`or_assist.register.pose_params`; 12 DRRs at the fine level).
Its curvature ``c_i = (s(+h) + s(-h) - 2 s(0)) / h**2`` says how fast the match gets
worse when the pose moves along parameter ``i``; a Laplace-style estimate of the
parameter's uncertainty is ``sigma_i = scale / sqrt(-c_i)`` (``FLAT_SIGMA`` where the
similarity does not fall off, i.e. no peak along that parameter). The estimated error
at patient points (e.g. the planned implant's entry and apex) is the root mean square,
over the points, of the displacement the six sigmas cause together.

``scale`` (:data:`ERROR_SCALE`) converts curvature into millimetres: it is calibrated by
``benchmarks/registration.py --families`` so that the estimate covers the true error in
95 % of the successes of the calibration families, and reported on held-out ones.

The curvature alone cannot see a model error: a shot that differs from the CT's DRRs
in a way the registration does not model (an image intensifier's S-distortion, metal
the CT lacks, a wrong optimum as sharp as the right one) peaks sharply at a pose that
is off. So the same probe DRRs are also scored on the four quadrants of the shot's
mask (split at its median pixel), and each quadrant's own peak is located from its
three samples per parameter (the vertex of the parabola through them, at most two steps
away). On a shot that matches the CT every quadrant peaks where the whole image does;
where they disagree, the image does not fit one pose. The *disagreement* is the root
mean square, over the target points, of the spread of the quadrants' peak displacements
(about their mean) together with the whole image's own peak offset (an optimum the
search did not reach). It is added in quadrature to the curvature's estimate; being a
displacement in mm, it has no scale of its own. On simulated shots of the real CT
(calibration families and seed, ``benchmarks/registration.py``) correct results showed
0.1-1.0 mm of disagreement, results 8-18 mm off 1.3-3.8 mm.

Under the patch-wise gradient NCC (``pgc``, the fine level's similarity by default) the
quadrants see less of such a model error: its gain and offset per patch absorb part of
what an intensifier's S-distortion or a retractor does to the image. The same probe DRRs
are therefore also scored on the quadrants with gradient correlation (``gc``, the
*check* parts: no extra DRR), and the disagreement is the larger of the two. Only the
check parts' spread about their mean counts, not their common offset: scatter moves
gradient correlation's peak along the beam for every part alike. On held-out-family
shots of diagnosis seeds 7 and 15 (72, real CT) this refused 3 of the 7 results reported
over 2 mm mTRE (among them a lateral 8 mm off whose ``pgc`` quadrants agreed to 1.9 mm;
the 4 left were intensifier shots within 1.7 mm at the implant), and 4 correct ones.

What neither can see: a wrong optimum that every part of the image agrees on (e.g. a
lateral off in depth where a different depth fits the bone edges as well). Such results
are what the other checks (capture range, similarity threshold, independent starts) are
for; the depth refinement after the estimate (:mod:`or_assist.register.depth`) narrows the
lateral's depth error without changing the estimate, which stays that of the fine
stages' result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from or_assist.core.pose import Pose
from or_assist.register.pose_params import apply_update

__all__ = ["CURVATURE_STEPS", "FLAT_SIGMA", "ERROR_SCALE", "PROBE_DRRS", "PoseUncertainty", "pose_uncertainty"]

#: Steps of the curvature probe per parameter (deg, deg, deg, mm, mm, mm): about one pixel
#: of the fine level's motion for the rotations and in-plane shifts, more in depth.
CURVATURE_STEPS = (0.5, 0.5, 0.5, 0.5, 0.5, 2.0)
#: DRRs :func:`pose_uncertainty` renders: the pose and a step either way per parameter.
PROBE_DRRS = 1 + 2 * len(CURVATURE_STEPS)
#: Sigma of a parameter along which the similarity does not fall off (deg x 3, mm x 3):
#: the start's stated uncertainty, i.e. the registration learnt nothing about it.
FLAT_SIGMA = (10.0, 10.0, 10.0, 15.0, 15.0, 15.0)
#: sigma_i = ERROR_SCALE / sqrt(-curvature_i). Calibrated with ``benchmarks/registration.py
#: --families default,flat_panel --seed 2024`` (the calibration families, real CT and
#: phantom, default settings, 73 results within 2 mm, with the parts' disagreement added):
#: 0.0293 covers the true error at the implant in 90 % of them, 0.0360 in 95 %; the 95 %
#: value is used, leaving a margin for appearances the calibration did not see. Rerun with
#: the unblurred coarse stages (74 results): 0.0256 / 0.0307; 0.036 kept, the more cautious.
ERROR_SCALE = 0.036


@dataclass(frozen=True)
class PoseUncertainty:
    """The curvature of the similarity at a registration's optimum and what it implies.

    Attributes
    ----------
    curvature : (6,) float64
        Second differences of the similarity per squared unit (deg^2 or mm^2), negative
        at a peak.
    sigma : (6,) float64
        1-sigma uncertainty of each update parameter (deg, deg, deg, mm, mm, mm).
    center_source_mm : (3,) float64
        The centre of the update rotations (source frame).
    peak_offsets : (1 + R, 6) float64 or None
        Where the similarity of the whole image (row 0) and of each of R parts of it
        peaks, as an update from the pose (deg x 3, mm x 3; at most two probe steps per
        parameter); None when only the whole image was probed.
    check_offsets : (K, 6) float64 or None
        Where each of K parts peaks under the check similarity (module doc); None when not
        probed.
    """

    curvature: np.ndarray
    sigma: np.ndarray
    center_source_mm: np.ndarray
    peak_offsets: np.ndarray | None = None
    check_offsets: np.ndarray | None = None

    def curvature_error_at_mm(self, pose: Pose, points_lps_mm) -> float:
        """Root mean square over ``points_lps_mm`` of the displacement the six sigmas
        cause together (added in quadrature per point), mm."""
        pts = np.asarray(points_lps_mm, dtype=np.float64).reshape(-1, 3)
        base = pose.apply(pts)
        sq = np.zeros(len(pts))
        for i, s in enumerate(self.sigma):
            step = np.zeros(6)
            step[i] = s
            moved = apply_update(pose, step, self.center_source_mm).apply(pts)
            sq += np.sum((moved - base) ** 2, axis=1)
        return float(np.sqrt(np.mean(sq)))

    def disagreement_at_mm(self, pose: Pose, points_lps_mm) -> float:
        """How far the image's parts disagree about the peak at ``points_lps_mm`` (module
        doc), mm: the larger of the parts' own disagreement and the check parts' spread; 0
        when only the whole image was probed."""
        own = check = 0.0
        if self.peak_offsets is not None and len(self.peak_offsets) >= 3:
            whole, spread = self._moves(pose, points_lps_mm, self.peak_offsets)
            own = float(np.sqrt(np.mean(spread + np.sum(whole ** 2, axis=1))))
        if self.check_offsets is not None and len(self.check_offsets) >= 2:
            _, spread = self._moves(pose, points_lps_mm, np.vstack([np.zeros(6), self.check_offsets]))
            check = float(np.sqrt(np.mean(spread)))
        return max(own, check)

    def _moves(self, pose: Pose, points_lps_mm, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The displacement of each point by ``offsets[0]`` (points, 3) and the spread of the
        points' displacements by ``offsets[1:]`` about their mean (points,), mm and mm^2."""
        pts = np.asarray(points_lps_mm, dtype=np.float64).reshape(-1, 3)
        base = pose.apply(pts)
        moved = np.stack([apply_update(pose, d, self.center_source_mm).apply(pts) - base
                          for d in offsets])          # (1 + regions, points, 3)
        parts = moved[1:]
        return moved[0], np.mean(np.sum((parts - parts.mean(axis=0)) ** 2, axis=2), axis=0)

    def error_at_mm(self, pose: Pose, points_lps_mm) -> float:
        """The estimated error at ``points_lps_mm``: the curvature's estimate and the
        disagreement added in quadrature, mm."""
        return float(np.hypot(self.curvature_error_at_mm(pose, points_lps_mm),
                              self.disagreement_at_mm(pose, points_lps_mm)))

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        doc = {"curvature": [round(float(c), 6) for c in self.curvature],
               "sigma": [round(float(s), 4) for s in self.sigma]}
        for name in ("peak_offsets", "check_offsets"):
            if getattr(self, name) is not None:
                doc[name] = [[round(float(v), 4) for v in row] for row in getattr(self, name)]
        return doc


def pose_uncertainty(score: Callable[[Pose], float], pose: Pose, center_source_mm, *,
                     steps=CURVATURE_STEPS, scale: float = ERROR_SCALE, score_at_pose: float | None = None,
                     check_parts: int = 0) -> PoseUncertainty:
    """Probe the similarity around ``pose`` (module doc).

    Parameters
    ----------
    score : callable
        ``score(pose) -> similarity`` at the level the result was judged on: a float, or
        a 1-D array with the whole image's similarity first and then each part's (the
        parts' peaks give :attr:`PoseUncertainty.peak_offsets`).
    pose : Pose
        The registration's result.
    center_source_mm : (3,) array_like
        Centre of the update rotations.
    steps : (6,) floats
        Probe steps (deg x 3, mm x 3).
    scale : float
        :data:`ERROR_SCALE`.
    score_at_pose : float or 1-D array, optional
        ``score(pose)`` when already known (saves one DRR).
    check_parts : int
        How many of the last entries of ``score``'s array are parts scored with the check
        similarity (:attr:`PoseUncertainty.check_offsets`; module doc).

    Returns
    -------
    PoseUncertainty
    """
    center = np.asarray(center_source_mm, dtype=np.float64).reshape(3)
    s0 = np.atleast_1d(np.asarray(score(pose) if score_at_pose is None else score_at_pose, dtype=np.float64))
    h = np.asarray(steps, dtype=np.float64)
    curv = np.zeros((s0.size, 6))
    slope = np.zeros((s0.size, 6))
    for i in range(6):
        step = np.zeros(6)
        step[i] = h[i]
        plus = np.atleast_1d(np.asarray(score(apply_update(pose, step, center)), dtype=np.float64))
        minus = np.atleast_1d(np.asarray(score(apply_update(pose, -step, center)), dtype=np.float64))
        curv[:, i] = (plus + minus - 2.0 * s0) / (h[i] * h[i])
        slope[:, i] = (plus - minus) / (2.0 * h[i])
    curvature = curv[0]
    flat = np.asarray(FLAT_SIGMA)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.where(curvature < 0, float(scale) / np.sqrt(np.maximum(-curvature, 1e-300)), flat)
        # the parabola's vertex where it opens downwards, else two steps towards the better side
        vertex = np.where(curv < 0, -slope / np.where(curv < 0, curv, -1.0), np.sign(slope) * 2.0 * h)
    offsets = np.clip(vertex, -2.0 * h, 2.0 * h) if s0.size > 1 else None
    check = None
    if check_parts:
        if not 0 < check_parts <= s0.size - 1:
            raise ValueError(f"check_parts must be in 1..{s0.size - 1}, got {check_parts}")
        offsets, check = offsets[:-check_parts], offsets[-check_parts:]
    return PoseUncertainty(curvature, np.minimum(sigma, flat), center, offsets, check)
