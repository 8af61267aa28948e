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
90 % of the successes of the calibration families, and reported on held-out ones.

What it cannot see: a wrong optimum that is as sharp as the right one (e.g. a lateral
off in depth where a different depth fits the bone edges as well). Such results are
what the other checks (capture range, similarity threshold, agreement between views)
are for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from or_assist.core.pose import Pose
from or_assist.register.pose_params import apply_update

__all__ = ["CURVATURE_STEPS", "FLAT_SIGMA", "ERROR_SCALE", "PoseUncertainty", "pose_uncertainty"]

#: Steps of the curvature probe per parameter (deg, deg, deg, mm, mm, mm): about one pixel
#: of the fine level's motion for the rotations and in-plane shifts, more in depth.
CURVATURE_STEPS = (0.5, 0.5, 0.5, 0.5, 0.5, 2.0)
#: Sigma of a parameter along which the similarity does not fall off (deg x 3, mm x 3):
#: the start's stated uncertainty, i.e. the registration learnt nothing about it.
FLAT_SIGMA = (10.0, 10.0, 10.0, 15.0, 15.0, 15.0)
#: sigma_i = ERROR_SCALE / sqrt(-curvature_i). Provisional, pending the calibration of the
#: module doc: on 12 real-CT shots of the default appearance the true error at the
#: implants was 0.002-0.045 times the estimate at scale 1.
ERROR_SCALE = 0.033


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
    """

    curvature: np.ndarray
    sigma: np.ndarray
    center_source_mm: np.ndarray

    def error_at_mm(self, pose: Pose, points_lps_mm) -> float:
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

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"curvature": [round(float(c), 6) for c in self.curvature],
                "sigma": [round(float(s), 4) for s in self.sigma]}


def pose_uncertainty(score: Callable[[Pose], float], pose: Pose, center_source_mm, *,
                     steps=CURVATURE_STEPS, scale: float = ERROR_SCALE, score_at_pose: float | None = None
                     ) -> PoseUncertainty:
    """Probe the similarity around ``pose`` (module doc).

    Parameters
    ----------
    score : callable
        ``score(pose) -> similarity`` at the level the result was judged on.
    pose : Pose
        The registration's result.
    center_source_mm : (3,) array_like
        Centre of the update rotations.
    steps : (6,) floats
        Probe steps (deg x 3, mm x 3).
    scale : float
        :data:`ERROR_SCALE`.
    score_at_pose : float, optional
        ``score(pose)`` when already known (saves one DRR).

    Returns
    -------
    PoseUncertainty
    """
    center = np.asarray(center_source_mm, dtype=np.float64).reshape(3)
    s0 = score(pose) if score_at_pose is None else float(score_at_pose)
    h = np.asarray(steps, dtype=np.float64)
    curvature = np.zeros(6)
    for i in range(6):
        step = np.zeros(6)
        step[i] = h[i]
        plus = score(apply_update(pose, step, center))
        minus = score(apply_update(pose, -step, center))
        curvature[i] = (plus + minus - 2.0 * s0) / (h[i] * h[i])
    flat = np.asarray(FLAT_SIGMA)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.where(curvature < 0, float(scale) / np.sqrt(np.maximum(-curvature, 1e-300)), flat)
    return PoseUncertainty(curvature, np.minimum(sigma, flat), center)
