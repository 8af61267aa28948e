"""Which planned view a new shot shows: a quick 2-D comparison before the registration.

When the C-arm moves to another view and nobody selects it, registering from the selected
view's pose first costs a whole failed registration (seconds) before the right view is
tried. :func:`view_scores` instead compares the shot, at low resolution, with the DRR at
each candidate start pose (the planned views of the active implant, the last registered
pose): the DRR is aligned in the image plane to the shot (shift and rotation, phase
correlation: :func:`~or_assist.register.init2d.align_2d`) and scored by gradient
correlation. :func:`rank_starts` orders the live pipeline's registration starts by it
(the selected view wins near-ties), so the registration that succeeds is usually the
first, and the shot's view is the one that registered rather than the one selected.

Measured (``python benchmarks/replay_views.py --scores``: the demo's 12 held shots of
implants L1 and L2 against each implant's three planned views, 2 loaded cores): the
shown view scored 0.85-0.93 and the other two 0.05-0.18, except the first lateral of
each implant, taken 6 deg off the planned tilt (0.18 and 0.37, still the best of the
three); 0.13-0.57 s per shot for the three poses at 64 px. With the default registration time
budget every attempt from a wrong view costs up to 3 s, without one far more
(``benchmarks/replay_views.py``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose
from or_assist.errors import InputError
from or_assist.register.init2d import align_2d
from or_assist.register.shot import ShotProblem, prepare_shot

__all__ = ["VIEW_SCORE_SIZE_PX", "VIEW_SCORE_STEP_MM", "VIEW_MARGIN", "view_scores", "rank_starts"]

VIEW_SCORE_SIZE_PX = 64
"""Side of the image the views are compared at (pixels over the field's bounding square)."""
VIEW_SCORE_STEP_MM = 3.0
"""DRR ray step of the comparison (coarse: only the gross shape matters)."""
VIEW_MARGIN = 0.05
"""A start at another view than the selected one goes first only when it scores this much higher."""


def view_scores(renderer, geometry: CArmGeometry, frame: np.ndarray, poses: Sequence[Pose], *,
                polarity: str = "bone-dark", size_px: int = VIEW_SCORE_SIZE_PX,
                step_mm: float = VIEW_SCORE_STEP_MM) -> np.ndarray:
    """How much the shot looks like the DRR at each pose (higher: more alike).

    Parameters
    ----------
    renderer : DRRRenderer
        Of the patient's CT (anything with ``render(pose, geometry, step_mm=...)``).
    geometry : CArmGeometry
        Of the frame's pixels.
    frame : (H, W) uint8 ndarray
        The shot as delivered.
    poses : sequence of Pose
        Candidate views (``T_source_from_patient``).
    polarity : {'bone-dark', 'bone-bright'}
        As the preprocessing found it.
    size_px : int
        Side of the comparison image (16-256).
    step_mm : float
        DRR ray step.

    Returns
    -------
    (len(poses),) float64 ndarray
        Gradient correlation (-1 to 1) of the best in-plane alignment of each pose's DRR
        with the shot; -1 for a pose that cannot be rendered. All -1 when the shot
        cannot be prepared (no field, blank): nothing is known then.

    Raises
    ------
    InputError
        Bad arguments.
    """
    if not isinstance(size_px, (int, np.integer)) or isinstance(size_px, bool) or not 16 <= size_px <= 256:
        raise InputError(f"must be an integer from 16 to 256, got {size_px!r}", "size_px")
    if not isinstance(geometry, CArmGeometry):
        raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")
    poses = list(poses)
    for k, pose in enumerate(poses):
        if not isinstance(pose, Pose):
            raise InputError(f"expected Pose objects, got {type(pose).__name__} at {k}", "poses")
    scores = np.full(len(poses), -1.0)
    if not poses:
        return scores
    try:
        shot = prepare_shot(frame, geometry, polarity, (int(size_px),))
    except ShotProblem:
        return scores
    level = shot.levels[int(size_px)]
    center = level.geometry.principal_point_px
    for k, pose in enumerate(poses):
        try:
            view = renderer.render(pose, level.geometry, step_mm=step_mm)
        except InputError:  # a pose that misses the CT or puts the source inside it
            continue
        scores[k] = align_2d(level.image, level.mask, view, center).score
    return scores


def rank_starts(renderer, geometry: CArmGeometry, frame: np.ndarray, starts: Sequence[tuple],
                selected_view: str, *, polarity: str = "bone-dark", margin: float = VIEW_MARGIN) -> list[tuple]:
    """Registration starts, most similar to the shot first (:func:`view_scores`).

    Parameters
    ----------
    renderer : DRRRenderer or None
        None: the starts are kept in their order, unscored.
    geometry : CArmGeometry
        Of the frame's pixels.
    frame : (H, W) uint8 ndarray
    starts : sequence of (view, Pose, track)
        As the live pipeline makes them (selected view first).
    selected_view : str
        Starts at this view get ``margin`` added to their score, so a near-tie keeps the
        selection (and, among them, their order).
    polarity : {'bone-dark', 'bone-bright'}
    margin : float

    Returns
    -------
    list of (view, Pose, track, score)
        ``score`` None when not scored (no renderer, or a single start).
    """
    starts = [tuple(s) for s in starts]
    if renderer is None or len(starts) < 2:
        return [(v, p, t, None) for v, p, t in starts]
    scores = view_scores(renderer, geometry, frame, [p for _, p, _ in starts], polarity=polarity)
    bonus = [margin if v == selected_view else 0.0 for v, _, _ in starts]
    order = sorted(range(len(starts)), key=lambda k: -(scores[k] + bonus[k]))
    return [(*starts[k], float(scores[k])) for k in order]
