"""2-D/3-D registration of a fluoroscopy shot to the CT: the pipeline.

1. **Shot**: :func:`or_assist.register.shot.prepare_shot` turns the frame (through
   :func:`or_assist.video.preprocess.shot.preprocess_shot`) into an attenuation-like pyramid
   over the field's bounding square (32, 64, 128, 256 px) with masks that leave out the
   surround, burnt-in text, clipped air and metal.
2. **Global search** (:data:`DEFAULT_STAGES`): CMA-ES
   (:func:`or_assist.register.optimize.cma_es`) over the 6 update parameters
   (:mod:`or_assist.register.pose_params`: rotation about the isocentre, translation) at
   32 px, unblurred (blurring widened nothing that mattered and favoured wrong poses on
   shots whose display chain differs from a DRR; a stage may still blur, ``smooth_px``).
   Its starts (:data:`~or_assist.register.settings.GLOBAL_STARTS`): the best hypothesis of
   the global stage (:mod:`or_assist.register.global_search`: a grid of out-of-plane
   rotations, each DRR's roll and in-plane shift searched exhaustively by gradient
   correlation), then the start pose, the next hypotheses and the start with a wider
   spread. It is restarted while its similarity stays below :data:`RESTART_BELOW` (until
   two starts end at the same pose, ``start_agreement_mm``, which does not depend on how
   the C-arm's image processing shifts the similarity's level). Without the global stage
   (``global_search=None``) the starts are the start pose, the 2-D initialisation
   (:mod:`or_assist.register.init2d`: in-plane shift and rotation of the DRR at the start
   pose and of the nearby view-library images, phase correlation), then the start with a
   wider and with the normal spread (new seeds). With a view library (``library``) the
   start pose's slots take the 2-D start too (the library's nearby views may lie closer).
3. **Refinement**: CMA-ES at 64 px; when no first-stage start converged, every one is
   refined here and the best goes on, and when the best scores below
   :data:`SECOND_STAGE_BELOW` (the coarse optimum was a wrong one) the remaining starts
   are tried too. Then a compass search at 128 px (patch-wise gradient NCC by default,
   ``fine_metric``: gradient correlation's optimum is pulled along the beam by scatter;
   ray step 2 mm, only the rays of the shot's mask cast; it stops at a quarter of its
   initial steps, ``Stage.min_step_share``), and a second one from its result with the
   initial steps again, down to a sixteenth: a coordinate search halves its steps when no
   axis improves, so it stops early in valleys that run diagonally to the axes (depth
   against tilt).
   COBYQA's quadratic models (:data:`~or_assist.register.settings.COBYQA_FINE_STAGES`)
   are faster but not yet the default (see there).
4. **Confidence**: the final similarity must reach :data:`CONFIDENCE_THRESHOLD` (calibrated
   by ``benchmarks/registration.py`` on simulated shots), and the pose must stay within
   the capture range of the start; one more independent start runs through the first two
   stages (unless two starts agreed already), and when it ends elsewhere with a similar
   score it is refined at the fine level too and the better fine similarity wins, unless
   the other is within ``agreement_fine_margin`` of it: then the shot fits two poses and
   is refused (``agreement_mm``). Such a rival's fine search stops once it comes within
   ``agreement_mm`` of the best's fine optimum (it is that optimum: on diagnosis seed 33,
   18 of 20 rivals got there, after a median of 20 of the stage's 110 DRRs; the other two
   ended 10 and 30 mm away); the error
   estimated at the result from the similarity's curvature and from how far the
   quadrants of the image disagree about where it peaks (under ``pgc`` also checked with
   gradient correlation; :mod:`or_assist.register.uncertainty`) must stay within
   ``max_estimated_error_mm``;
   and the whole search must end within ``time_budget_s`` (a DRR expected, at its
   level's mean time so far, to end past it is not started). Otherwise ``success=False``
   with a reason. The polishing stages (those after the first fine stage) stop early
   enough to leave the error estimate and the depth refinement their time within the budget
   (:data:`FINISH_RESERVE_FACTOR`; ``shortened`` on the result): on seed 35 with the 3 s
   budget on the CPU clock of a slow machine, 39 of 48 shots reported against 35, budget
   cuts 4 against 9, the same 46 within 2 mm, none reported wrongly.
5. **Depth**: the translation along the beam, which one view sees only through
   magnification and parallax, is searched once more on a 256-px level (6 DRRs,
   :mod:`or_assist.register.depth`, ``depth_refine``): on laterals the 128-px similarity
   is nearly flat in depth. The error estimate and the confidence checks are those of the
   fine stages' result (the final similarity is the fine level's at the refined pose).
6. **Tracking**: :meth:`Registrar.track` starts a new shot of nearly the same view from
   the last successful pose with a short local search (:data:`TRACK_STAGES`).

A failed registration is a value: :class:`RegistrationResult` with ``success=False``, a
``reason``, and no :attr:`~RegistrationResult.pose_for_overlay`. DRRs are rendered with
``render_threads`` numba threads (:class:`~or_assist.register.settings.RegistrationSettings`).

Longer than 400 lines because the multi-resolution :class:`Registrar` (levels, restarts,
confidence) shares its state across one loop; metrics, optimisers and settings are
separate modules.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np

from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose
from or_assist.core.validate import check_choice
from or_assist.core.vocabulary import POLARITY_SETTINGS
from or_assist.errors import InputError
from or_assist.register.init2d import align_2d, pose_from_2d, resample_to_geometry
from or_assist.register.optimize import OptimResult, cma_es, compass_search, quadratic_model_search
from or_assist.register.optimize_pycma import pycma_es
from or_assist.register.pose_params import apply_update, isocenter_source_mm, pose_error, target_error_mm
from or_assist.register.depth import DEPTH_DRRS, refine_depth
from or_assist.register.global_search import global_candidates
from or_assist.register.settings import GLOBAL_STARTS, LATER_STARTS, TRACK_STAGES, RegistrationSettings
from or_assist.register.shot import PreparedShot, ShotProblem, prepare_shot
from or_assist.register.similarity import prepare_fixed
from or_assist.register.uncertainty import PROBE_DRRS, PoseUncertainty, pose_uncertainty

__all__ = ["REGISTRATION_SCHEMA", "RegistrationResult", "Registrar", "registration_ct"]

REGISTRATION_SCHEMA = "or_assist.registration/1"
@dataclass
class RegistrationResult:
    """Outcome of one registration (``or_assist.registration/1`` via :meth:`to_dict`).

    Attributes
    ----------
    pose : Pose or None
        The final pose (kept for diagnostics also when not successful; None when the
        shot could not be registered at all).
    success : bool
        The method's own verdict; False whenever it is not confident.
    similarity : float
        Final similarity (``metric``) at the fine level (NaN if none).
    metric : str
    seconds : float
        Wall time (on :attr:`Registrar.clock`).
    reason : str or None
        Why it failed (None on success).
    n_evaluations : int
        DRRs rendered.
    level_seconds : dict
        Time per stage.
    start_pose : Pose or None
        The start of the 3-D search that was kept.
    stage_scores : dict
        Similarity after each start of the first stage and after each later stage.
    estimated_error_mm : float or None
        Estimated error at the target points (:mod:`or_assist.register.uncertainty`; the
        planned implant when the caller gives it, else the patient point at the
        isocentre), mm; None when the search did not finish.
    uncertainty : PoseUncertainty or None
        The curvature of the similarity at the result and the parameter sigmas behind it.
    stopped_in : str or None
        The stage in which the time budget ran out
        (:attr:`~or_assist.register.settings.RegistrationSettings.time_budget_s`); None
        when the search ran to its end.
    shortened : str or None
        The polishing stage that was cut short (or left out) to leave the error estimate
        and the depth refinement their time within the budget
        (:data:`FINISH_RESERVE_FACTOR`); None when none was.
    """

    pose: Pose | None
    success: bool
    similarity: float
    metric: str
    seconds: float
    reason: str | None = None
    n_evaluations: int = 0
    level_seconds: dict = field(default_factory=dict)
    start_pose: Pose | None = None
    stage_scores: dict = field(default_factory=dict)
    stopped_in: str | None = None
    estimated_error_mm: float | None = None
    uncertainty: PoseUncertainty | None = None
    shortened: str | None = None

    @property
    def pose_for_overlay(self) -> Pose | None:
        """The pose to draw overlays with: None unless the registration succeeded."""
        return self.pose if self.success else None

    def to_dict(self) -> dict:
        """The ``or_assist.registration/1`` document.

        The pose field ``T_source_from_patient`` is present only on success, so a
        failed result cannot be used as a pose by mistake; the final pose of a failed
        attempt is under ``"diagnostic_T_source_from_patient"``.
        """
        doc = {"schema": REGISTRATION_SCHEMA}
        if self.success and self.pose is not None:
            doc["T_source_from_patient"] = self.pose.matrix.tolist()
        doc.update({"success": bool(self.success),
                    "similarity": float(self.similarity) if np.isfinite(self.similarity) else None,
                    "metric": self.metric, "seconds": round(float(self.seconds), 4)})
        if not self.success:
            doc["reason"] = self.reason or "not confident"
            if self.pose is not None:
                doc["diagnostic_T_source_from_patient"] = self.pose.matrix.tolist()
        doc["n_evaluations"] = int(self.n_evaluations)
        doc["stage_seconds"] = {k: round(float(v), 4) for k, v in self.level_seconds.items()}
        doc["stage_scores"] = dict(self.stage_scores)
        if self.stopped_in is not None:
            doc["stopped_at_time_budget_in"] = self.stopped_in
        if self.shortened is not None:
            doc["shortened_for_time_budget"] = self.shortened
        if self.estimated_error_mm is not None:
            doc["estimated_error_mm"] = round(float(self.estimated_error_mm), 3)
        if self.uncertainty is not None:
            doc["uncertainty"] = self.uncertainty.to_dict()
        return doc


@contextmanager
def _numba_threads(n: int | None):
    """Run the DRR kernel with ``n`` numba threads (None: all) in this thread (restored afterwards)."""
    import numba

    before = numba.get_num_threads()
    limit = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(limit if n is None else min(n, limit))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _error_points(targets: np.ndarray | None, pose: Pose, center: np.ndarray) -> np.ndarray:
    """Where errors and agreement are measured: the targets, else the patient point at the isocentre."""
    return targets if targets is not None else pose.inverse().apply(center[None, :])


#: Quadrants of the fine level's mask with less than this share of its pixels are left out of
#: the uncertainty probe (too few edges to locate a peak).
_MIN_PART_SHARE = 0.1
#: The similarity the quadrants are scored with too when the fine level uses ``pgc``: its
#: per-patch normalisation hides part of a model error that gradient correlation's parts
#: disagree about (:mod:`or_assist.register.uncertainty`).
PARTS_CHECK_METRIC = "gc"
#: Fine results of two starts closer than this (mm at the target points) that score alike
#: are one optimum located loosely, which the error estimate judges (on an outlet of the
#: real CT two ended 2.2 mm apart at the isocentre, both 0.72, both right); farther apart,
#: within ``agreement_fine_margin``, they are two candidate poses and the shot is refused
#: (an inlet of the calibration families 17.7 mm off had its rival 3.9 mm away, 0.028 lower).
RIVAL_FINE_MM = 3.0
#: The polishing stages (those after the first fine stage) stop early enough to leave the
#: error estimate and the depth refinement their expected time times this, within the time
#: budget: their DRRs at the fine level's mean time so far, and their scoring (the
#: estimate scores every probe against the whole image and each of its parts) at the fine
#: level's mean time per scored image. The result of a finished first fine stage, judged,
#: is worth more than a polished one that runs out of time unjudged.
FINISH_RESERVE_FACTOR = 1.25


class _OutOfTime(Exception):
    """The registration's time budget ran out (raised before the next DRR)."""


class _PolishOver(Exception):
    """A polishing stage reached the time it must leave to the checks after it."""


class _Level:
    """One pyramid level with its renderer settings and the prepared fixed image.

    ``best`` is the best ``(similarity, pose)`` scored at this level so far.
    """

    def __init__(self, registrar: "Registrar", shot: PreparedShot, size: int, step_mm: float, metric: str,
                 smooth_px: float = 0.0):
        lvl = shot.levels[size]
        self.geometry = lvl.geometry
        self.image = lvl.image
        self.mask = lvl.mask
        self.smooth_px = float(smooth_px)
        self.fixed = prepare_fixed(self._smooth(lvl.image, lvl.mask), lvl.mask, metric)
        self.step_mm = step_mm
        self.registrar = registrar
        self.best: tuple[float, Pose] | None = None
        self._parts = None
        self._check_parts = 0
        self.renders = 0
        self.render_seconds = 0.0   # on the registrar's clock
        self.scores = 0             # fixed images scored (a part-score call scores several)
        self.score_seconds = 0.0    # their scoring time (not the DRRs'), on the registrar's clock

    @property
    def seconds_per_render(self) -> float | None:
        """Mean time of this level's DRRs so far (None before the first)."""
        return self.render_seconds / self.renders if self.renders else None

    @property
    def seconds_per_score(self) -> float:
        """Mean time of scoring one fixed image against a DRR so far (0 before the first)."""
        return self.score_seconds / self.scores if self.scores else 0.0

    @property
    def n_parts(self) -> int:
        """Fixed images :meth:`part_scores` scores each DRR against (the whole and its parts)."""
        return len(self._prepared_parts())

    def _smooth(self, image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Gaussian blur; with a mask, normalised (only valid pixels contribute)."""
        if self.smooth_px <= 0:
            return image
        import cv2

        if mask is None:
            return cv2.GaussianBlur(image, (0, 0), self.smooth_px)
        w = mask.astype(np.float32)
        num = cv2.GaussianBlur(image * w, (0, 0), self.smooth_px)
        den = cv2.GaussianBlur(w, (0, 0), self.smooth_px)
        return np.where(mask, num / np.maximum(den, 1e-6), image).astype(np.float32)

    def render(self, pose: Pose, whole: bool = False) -> np.ndarray:
        """The DRR at ``pose``; unblurred levels cast only the mask's rays unless ``whole``
        (zero elsewhere: images compared as a whole, as the 2-D initialisation does,
        would match the mask's outline)."""
        self.registrar._check_time(self.seconds_per_render or 0.0)
        # unblurred levels compare only pixels of the mask (and their gradients only
        # pixels whose neighbours are in it), so only those rays are cast
        rays = None if self.smooth_px > 0 or whole else self.mask
        t0 = self.registrar.clock()
        drr = self.registrar.renderer.render(pose, self.geometry, step_mm=self.step_mm, ray_mask=rays)
        self.render_seconds += self.registrar.clock() - t0
        self.renders += 1
        return self._smooth(drr)

    def _scores(self, pose: Pose, fixed_images) -> np.ndarray | None:
        """Similarity of the DRR at ``pose`` to each of ``fixed_images``; None for a pose
        that cannot be rendered. One evaluation."""
        self.registrar._evaluations += 1
        try:
            moving = self.render(pose)
        except InputError:  # source inside the CT or a view that misses it
            return None
        t0 = self.registrar.clock()
        scores = np.array([f.score(moving) for f in fixed_images])
        self.score_seconds += self.registrar.clock() - t0
        self.scores += len(fixed_images)
        return scores

    def part_scores(self, pose: Pose) -> np.ndarray:
        """Similarity of the whole image and of each quadrant of its mask (split at the
        mask's median pixel; quadrants with under a tenth of the mask left out) from one
        DRR: the probe of :mod:`~or_assist.register.uncertainty`. Under ``pgc`` the
        quadrants follow again scored with :data:`PARTS_CHECK_METRIC`
        (:attr:`check_parts` of them)."""
        scores = self._scores(pose, self._prepared_parts())
        return np.full(len(self._parts), -1.0) if scores is None else scores

    @property
    def check_parts(self) -> int:
        """How many of :meth:`part_scores`' last entries are the check parts."""
        self._prepared_parts()
        return self._check_parts

    def _prepared_parts(self) -> list:
        """The whole image, its quadrants and (under ``pgc``) the check quadrants, prepared once."""
        if self._parts is None:
            vs, us = np.nonzero(self.mask)
            cu, cv = np.median(us), np.median(vs)
            v, u = np.indices(self.mask.shape)
            quads = [self.mask & (u < cu) & (v < cv), self.mask & (u >= cu) & (v < cv),
                     self.mask & (u < cu) & (v >= cv), self.mask & (u >= cu) & (v >= cv)]
            quads = [q for q in quads if q.sum() >= _MIN_PART_SHARE * len(us)]
            check = [prepare_fixed(self.image, q, PARTS_CHECK_METRIC) for q in quads] \
                if self.fixed.metric == "pgc" else []
            self._parts = [self.fixed] + [prepare_fixed(self.image, q, self.fixed.metric) for q in quads] + check
            self._check_parts = len(check)
        return self._parts

    def score(self, pose: Pose) -> float:
        scores = self._scores(pose, (self.fixed,))
        if scores is None:
            return -1.0
        score = float(scores[0])
        if self.best is None or score > self.best[0]:
            self.best = (score, pose)
        return score


def registration_ct(ct, settings: RegistrationSettings):
    """The CT a :class:`Registrar` renders: ``ct`` with every voxel spacing below
    ``settings.volume_voxel_mm`` coarsened to it (antialiased, :func:`~or_assist.core.ct.load.resample_ct`).

    A thin-slice CT costs several times more per DRR than the registration's ray steps
    (2-4 mm) can use: cache misses, not samples, dominate (real CT at 128 px, one thread:
    about 42 ms at 1 mm voxels, 16 ms at 2 mm, 12 ms at 3 mm).

    Parameters
    ----------
    ct : CTVolume
    settings : RegistrationSettings

    Returns
    -------
    CTVolume
        ``ct`` itself when no axis is finer than the setting (or it is None).
    """
    target = settings.volume_voxel_mm
    spacing = np.asarray(ct.spacing_mm, dtype=np.float64)
    if target is None or np.all(spacing >= target - 1e-9):
        return ct
    from or_assist.core.ct.load import resample_ct

    return resample_ct(ct, np.maximum(spacing, target))


class Registrar:
    """Registers shots of one patient; keeps the DRR renderer (and its ray caches) warm.

    Parameters
    ----------
    ct_or_volume : CTVolume, AttenuationVolume or DRRRenderer
        The patient's CT; a CTVolume finer than ``settings.volume_voxel_mm`` is coarsened
        to it (:func:`registration_ct`), the others are used as they are.
    geometry : CArmGeometry
        Of the frames that will be registered (e.g. the video frame's geometry).
    settings : RegistrationSettings, optional
    """

    #: The clock the time budget is measured on (seconds; wall time). A benchmark on a
    #: machine that other work keeps busy may put a CPU-time clock here (``benchmarks/registration.py
    #: --budget-clock cpu``), so that the budget stands for the time on an unloaded machine.
    clock = staticmethod(time.perf_counter)

    def __init__(self, ct_or_volume, geometry: CArmGeometry, settings: RegistrationSettings | None = None):
        from or_assist.render.drr import AttenuationVolume, DRRRenderer

        if not isinstance(geometry, CArmGeometry):
            raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")
        self.settings = RegistrationSettings() if settings is None else settings
        if not isinstance(self.settings, RegistrationSettings):
            raise InputError(f"expected RegistrationSettings, got {type(settings).__name__}", "settings")
        if isinstance(ct_or_volume, DRRRenderer):
            self.renderer = ct_or_volume
        elif isinstance(ct_or_volume, AttenuationVolume):
            self.renderer = DRRRenderer(ct_or_volume)
        elif hasattr(ct_or_volume, "hu"):
            self.renderer = DRRRenderer(AttenuationVolume.from_ct(registration_ct(ct_or_volume, self.settings)))
        else:
            raise InputError(f"expected a CTVolume, AttenuationVolume or DRRRenderer, got "
                             f"{type(ct_or_volume).__name__}", "ct_or_volume")
        self.geometry = geometry
        self.last_result: RegistrationResult | None = None
        self._evaluations = 0
        self._stage_scores: dict = {}
        self._deadline: float | None = None
        self._stage_name = ""
        self._shot: PreparedShot | None = None  # of the registration under way
        self._rival: tuple[float, float, float] | None = None  # (distance mm, its score, best score)
        self._shortened: str | None = None     # the polishing stage cut short for time

    # ------------------------------------------------------------------ public
    def register(self, frame: np.ndarray, init_pose: Pose, *, polarity: str = "bone-dark", library=None,
                 valid_mask: np.ndarray | None = None, target_lps_mm=None) -> RegistrationResult:
        """Register one frame, starting near ``init_pose``.

        Parameters
        ----------
        frame : (H, W) array
            The shot as delivered (uint8/uint16 or float in [0, 1]), ``geometry``'s size.
        init_pose : Pose
            Start (e.g. the planned view), within about +-15 mm and +-10 deg of the truth.
        polarity : {'bone-dark', 'bone-bright'}
        library : ViewLibrary, optional
            Precomputed views; the nearby ones are tried as 2-D starts too.
        valid_mask : (H, W) bool array, optional
            Pixels to use (default: found in the frame).
        target_lps_mm : (N, 3) array_like, optional
            Where the error is estimated, e.g. the planned implant's entry and apex
            (default: the patient point at the isocentre).

        Returns
        -------
        RegistrationResult
            ``success=False`` with a reason when the shot cannot be registered
            confidently; bad arguments raise :class:`InputError`.
        """
        return self._register(frame, init_pose, polarity, library, valid_mask, self.settings,
                              target_lps_mm=target_lps_mm)

    def _register(self, frame, init_pose, polarity, library, valid_mask, st: RegistrationSettings,
                  deadline: float | None = None, target_lps_mm=None):
        if not isinstance(init_pose, Pose):
            raise InputError(f"expected a Pose (T_source_from_patient), got {type(init_pose).__name__}", "init_pose")
        targets = None
        if target_lps_mm is not None:
            targets = np.asarray(target_lps_mm, dtype=np.float64)
            if targets.ndim != 2 or targets.shape[1] != 3 or len(targets) == 0 or not np.all(np.isfinite(targets)):
                raise InputError(f"expected finite (N, 3) points in LPS mm, got shape {targets.shape}",
                                 "target_lps_mm")
        check_choice(polarity, POLARITY_SETTINGS, "polarity")
        started = self.clock()
        if deadline is None and st.time_budget_s is not None:
            deadline = self.clock() + st.time_budget_s
        self._deadline = deadline
        self._evaluations = 0
        self._rival = None
        self._shortened = None
        self._stage_name = "prepare"
        times = {}
        try:
            sizes = st.sizes_px + ((st.global_search.size_px,) if st.global_search is not None else ()) \
                + ((st.depth_refine.size_px,) if st.depth_refine is not None else ())
            shot = prepare_shot(frame, self.geometry, polarity, sizes, valid_mask)
        except ShotProblem as exc:
            return self._finish(RegistrationResult(None, False, float("nan"), st.final_metric, 0.0, str(exc)), started)
        times["prepare"] = self.clock() - started
        self._shot = shot
        center = isocenter_source_mm(self.geometry)
        levels = {}
        for stage in st.stages:
            key = (stage.size_px, stage.step_mm, stage.smooth_px)
            if key not in levels:
                levels[key] = _Level(self, shot, stage.size_px, stage.step_mm, st.metric_at(stage.size_px),
                                     stage.smooth_px)
        try:
            with _numba_threads(st.render_threads):
                pose, start, sim = self._search(st, levels, init_pose, library, center, times, targets)
                unc = self._uncertainty(st, levels, pose, center, times)
                pose, sim = self._refine_depth(st, levels, pose, sim, center, times)
        except _OutOfTime:
            # A search cut short is never judged confident: a coarse optimum scores like a
            # right one at the fine level while being off in depth (a phantom lateral cut
            # short in the first fine stage ended 2.6 mm off with a similarity above the
            # threshold). The best fine pose so far is kept for diagnostics only.
            stopped_in = self._stage_name
            fine = self._fine_level(st, levels)
            best = None if fine is None else fine.best
            return self._finish(RegistrationResult(
                None if best is None else best[1], False, float("nan") if best is None else best[0], st.final_metric,
                0.0, f"not registered: the time budget of {st.time_budget_s:.1f} s ran out in the {stopped_in} stage",
                0, times, None, self._stage_scores, stopped_in, shortened=self._shortened), started)

        result = RegistrationResult(pose, True, sim, st.final_metric, 0.0, None, 0, times, start, self._stage_scores,
                                    shortened=self._shortened)
        where = _error_points(targets, pose, center)
        if unc is not None:
            result.uncertainty, result.estimated_error_mm = unc, unc.error_at_mm(pose, where)
        at = "at the planned implant" if targets is not None else "at the isocentre"
        angle, disp = pose_error(pose, init_pose, center)
        if angle > st.capture_range[0] or np.linalg.norm(disp) > st.capture_range[1]:
            result.success = False
            result.reason = (f"the result is {angle:.1f} deg and {np.linalg.norm(disp):.1f} mm from the start pose, "
                             "outside the capture range")
        elif sim < st.confidence_threshold:
            result.success = False
            result.reason = (f"not confident: final {st.final_metric} {sim:.3f} is below the threshold "
                             f"{st.confidence_threshold:.3f}")
        elif self._rival is not None:
            result.success = False
            result.reason = (f"not confident: two independent starts ended {self._rival[0]:.1f} mm apart "
                             f"{at} with "
                             f"similar similarity ({self._rival[1]:.2f} against {self._rival[2]:.2f}); the shot "
                             "fits more than one pose")
        elif st.max_estimated_error_mm is not None and result.estimated_error_mm is not None \
                and result.estimated_error_mm > st.max_estimated_error_mm:
            result.success = False
            parts = unc.disagreement_at_mm(pose, where)
            why = (f" (the parts of the image disagree about the pose by {parts:.1f} mm there)"
                   if parts > 0.5 * result.estimated_error_mm else "")
            result.reason = (f"not confident: estimated error {result.estimated_error_mm:.1f} mm "
                             f"{at} is above the limit of {st.max_estimated_error_mm:g} mm{why}")
        return self._finish(result, started)

    def track(self, frame: np.ndarray, *, polarity: str = "bone-dark", fallback_pose: Pose | None = None,
              valid_mask: np.ndarray | None = None, target_lps_mm=None) -> RegistrationResult:
        """Register a new shot of nearly the same view, starting from the last successful pose.

        A short local search (:data:`TRACK_STAGES`) from the previous pose; when that is
        not confident, the full :meth:`register` from the same pose.

        Parameters
        ----------
        frame : (H, W) array
        polarity : {'bone-dark', 'bone-bright', 'auto'}
        fallback_pose : Pose, optional
            Start when there is no previous successful registration.
        valid_mask : (H, W) bool array, optional
        target_lps_mm : (N, 3) array_like, optional
            As for :meth:`register`.
        """
        prev = self.last_result.pose_for_overlay if self.last_result is not None else None
        start = prev if prev is not None else fallback_pose
        if start is None:
            raise InputError("no previous successful registration to track from; give fallback_pose",
                             "fallback_pose")
        # from the previous pose only: no global stage (its hypotheses would come first)
        quick = replace(self.settings, stages=TRACK_STAGES, max_starts=1, use_2d_init=False, global_search=None)
        budget = self.settings.time_budget_s
        deadline = None if budget is None else self.clock() + budget
        result = self._register(frame, start, polarity, None, valid_mask, quick, deadline, target_lps_mm)
        if result.success or result.pose is None or result.stopped_in is not None:
            return result
        spent = result.seconds
        result = self._register(frame, start, polarity, None, valid_mask, self.settings, deadline, target_lps_mm)
        result.seconds += spent
        return result

    # ------------------------------------------------------------------ internals
    def _check_time(self, next_s: float = 0.0) -> None:
        """Raise :class:`_OutOfTime` once the deadline of the registration under way has
        passed, or would pass during a next step expected to take ``next_s`` seconds (a DRR
        at its level's mean time: the budget then holds without the last DRR's overrun)."""
        if self._deadline is not None and self.clock() + next_s > self._deadline:
            raise _OutOfTime

    def _uncertainty(self, st: RegistrationSettings, levels: dict, pose: Pose, center: np.ndarray,
                     times: dict) -> PoseUncertainty | None:
        """The similarity's curvature at the result on the fine level (None without one)."""
        fine = self._fine_level(st, levels)
        if fine is None:
            return None
        self._stage_name = "uncertainty"
        t0 = time.perf_counter()
        unc = pose_uncertainty(fine.part_scores, pose, center, check_parts=fine.check_parts)
        times["uncertainty"] = time.perf_counter() - t0
        return unc

    def _refine_depth(self, st: RegistrationSettings, levels: dict, pose: Pose, sim: float, center: np.ndarray,
                      times: dict) -> tuple[Pose, float]:
        """The depth along the beam on the finer level (:mod:`~or_assist.register.depth`) and
        the fine level's similarity there; the pose unchanged without ``st.depth_refine`` or
        when the time budget runs out during it (the search itself was complete)."""
        dr = st.depth_refine
        fine = self._fine_level(st, levels)
        if dr is None or fine is None:
            return pose, sim
        self._stage_name = f"depth{dr.size_px}"
        t0 = time.perf_counter()
        try:
            # its first DRR, at the fine level's time scaled by pixels and samples per ray
            self._check_time(self._depth_drr_ratio(st) * (fine.seconds_per_render or 0.0))
            level = _Level(self, self._shot, dr.size_px, dr.step_mm, st.final_metric)
            refined, score, moved = refine_depth(level.score, pose, center, dr.probe_mm)
            new_sim = fine.score(refined) if moved else sim
        except _OutOfTime:
            return pose, sim
        finally:
            times[self._stage_name] = time.perf_counter() - t0
        self._stage_scores[self._stage_name] = round(score, 4)
        return refined, new_sim

    @staticmethod
    def _fine_level(st: RegistrationSettings, levels: dict):
        """The level of the last stage when it is an unblurred one (the level the confidence
        threshold is calibrated on), else None."""
        last = st.stages[-1]
        return None if last.smooth_px > 0 or len(st.stages) < 2 else levels[(last.size_px, last.step_mm, 0.0)]

    def _finish(self, result: RegistrationResult, started: float) -> RegistrationResult:
        result.seconds = self.clock() - started
        result.n_evaluations = self._evaluations
        self._deadline = None
        self.last_result = result
        return result

    def _search(self, st: RegistrationSettings, levels: dict, init_pose: Pose, library, center: np.ndarray,
                times: dict, targets: np.ndarray | None = None):
        """Coarse-to-fine search (module doc). Returns (pose, start, similarity).

        The first stage is restarted from other starts while its similarity stays below
        ``st.restart_below``; when no start gets there, the coarse level cannot tell the
        candidates apart, so each goes through the second stage. When the best of them
        scores below ``st.second_stage_below`` there (the coarse optimum was a wrong one),
        the remaining starts are tried too. The best at the second stage goes on.
        """
        self._stage_scores = {}
        first = st.stages[0]
        lvl0 = levels[(first.size_px, first.step_mm, first.smooth_px)]
        aligned = []  # the 2-D initialisation, computed when first needed

        hypotheses = []  # the global stage's starts, computed when first needed

        def start_of(n: int) -> tuple[Pose, float]:
            """Start pose and spread factor of attempt ``n`` (:attr:`RegistrationSettings.max_starts`)."""
            if st.global_search is not None:
                kind, widen = GLOBAL_STARTS[n % len(GLOBAL_STARTS)]
                if kind == "init":   # a view library's nearby views may lie closer: the 2-D start
                    return (init_pose if library is None else two_d_start()), widen
                if not hypotheses:
                    hypotheses.extend(self._global_starts(st, lvl0, init_pose, center, times))
                i = sum(k == "global" for k, _ in GLOBAL_STARTS[:n % len(GLOBAL_STARTS)])
                return (hypotheses[i] if i < len(hypotheses) else init_pose), widen
            first_two = ("2d", "init") if st.use_2d_init else ("init", "2d")
            kind, widen = (first_two[n], 1.0) if n < 2 else LATER_STARTS[(n - 2) % len(LATER_STARTS)]
            if kind == "init":
                return init_pose, widen
            return two_d_start(), widen

        def two_d_start() -> Pose:
            """The 2-D-aligned start (computed once; its seconds in ``times["init2d"]``)."""
            if not aligned:
                t0 = time.perf_counter()
                aligned.extend(self._initial_poses(st, levels, init_pose, library))
                times["init2d"] = time.perf_counter() - t0
            return aligned[0]

        attempt = 0
        refined = []  # (pose, start, similarity after the second stage)

        agreed = False  # two first-stage starts ended in the same basin

        def first_stage_round(force: bool = False) -> list:
            """Starts until one converges (then only it), two agree (then the better of the
            two, and any start that scored higher) or none are left (then all);
            ``force``: exactly one more start."""
            nonlocal attempt, agreed
            found = []
            while attempt < st.max_starts or (force and not found):
                self._stage_name = f"start{attempt}"
                start, widen = start_of(attempt)
                cost = lambda p, s0=start: -lvl0.score(apply_update(s0, p, center))  # noqa: E731
                evolve = pycma_es if first.optimizer == "pycma" else cma_es
                res = evolve(cost, np.zeros(6), widen * np.asarray(first.spread), max_evaluations=first.evaluations,
                             popsize=first.popsize, seed=st.seed + 1000 * attempt, bounds=st.bounds)
                score = -res.fun
                self._stage_scores[f"start{attempt}"] = round(score, 4)
                new = (apply_update(start, res.x, center), start, score, attempt)
                found.append(new)
                attempt += 1
                if score >= st.restart_below or force:
                    return found[-1:]
                if st.start_agreement_mm is not None:
                    where = _error_points(targets, new[0], center)
                    same = [c for c in found[:-1] if target_error_mm(c[0], new[0], where) <= st.start_agreement_mm]
                    if same:
                        # an optimum reached twice from independent starts is the shot's, whatever
                        # its coarse similarity (which depends on the C-arm's image processing)
                        agreed = True
                        best = max(same + [new], key=lambda c: c[2])
                        return [best] + [c for c in found if c[2] > best[2]]
            return found

        while attempt < st.max_starts and (not refined or max(c[2] for c in refined) < st.second_stage_below):
            t0 = time.perf_counter()
            found = first_stage_round()
            times["start"] = times.get("start", 0.0) + time.perf_counter() - t0
            # best first-stage score first; after ``refine_best`` of them, the rest only while
            # none has reached ``second_stage_below`` (the coarse optimum was a wrong one)
            for i, (pose, start, score, n) in enumerate(sorted(found, key=lambda c: -c[2])):
                if st.refine_best is not None and i >= st.refine_best and len(st.stages) > 1 \
                        and max(c[2] for c in refined) >= st.second_stage_below:
                    break
                if len(st.stages) > 1:
                    pose, score = self._stage(st, 1, levels, pose, center, times)
                    self._stage_scores[f"start{n}_{self._stage_key(st.stages, 1)}"] = round(score, 4)
                refined.append((pose, start, score))
            if len(st.stages) == 1:
                break
        if st.agreement_mm is not None and len(st.stages) > 1 and len(refined) < 2 and not agreed:
            # one more independent start through the first two stages (module doc, confidence)
            self._stage_name = "agreement"
            t0 = time.perf_counter()
            (pose2, start2, score2, n2), = first_stage_round(force=True)
            best = max(refined, key=lambda c: c[2])[0]
            where = _error_points(targets, best, center)
            # a start that ended in the same basin agrees already (the usual case): only one
            # that ended elsewhere is refined to see whether it is a rival pose
            if target_error_mm(pose2, best, where) > (st.start_agreement_mm or 0.0):
                pose2, score2 = self._stage(st, 1, levels, pose2, center, times)
                self._stage_scores[f"start{n2}_{self._stage_key(st.stages, 1)}"] = round(score2, 4)
                refined.append((pose2, start2, score2))
            times["agreement"] = time.perf_counter() - t0
        pose, start, sim = max(refined, key=lambda c: c[2])
        if len(st.stages) > 1:
            self._stage_scores[self._stage_key(st.stages, 1)] = round(sim, 4)
        where = _error_points(targets, pose, center)
        # other starts that scored about as well but ended elsewhere go through the first
        # fine stage too: the fine similarity decides (and, with agreement_fine_margin, a
        # tie means the shot fits two poses)
        rivals = [c for c in refined if c[0] is not pose and c[2] >= sim - st.agreement_margin
                  and st.agreement_mm is not None and target_error_mm(c[0], pose, where) > st.agreement_mm]
        rivals = sorted(rivals, key=lambda c: -c[2])[:1]   # the strongest rival only (time)
        finished = []  # the first fine stage for the best and its rival, the rest for the winner
        for n, (p, s0, score) in enumerate([(pose, start, sim)] + rivals):
            if len(st.stages) > 2:
                # a rival that reaches the best's fine optimum is the same optimum: stopped there
                joins = None if n == 0 else (finished[0][0], _error_points(targets, finished[0][0], center))
                p, score = self._stage(st, 2, levels, p, center, times, joins)
                key = self._stage_key(st.stages, 2)
                self._stage_scores[key if n == 0 else f"rival{n}_{key}"] = round(score, 4)
            finished.append((p, s0, score))
        pose, start, sim = max(finished, key=lambda c: c[2])
        self._rival = None
        if st.agreement_fine_margin is not None:
            ties = [(target_error_mm(c[0], pose, where), c[2], sim) for c in finished
                    if c[0] is not pose and c[2] >= sim - st.agreement_fine_margin]
            self._rival = max([c for c in ties if c[0] > max(st.agreement_mm, RIVAL_FINE_MM)], default=None)
        polish_until = self._polish_deadline(st, levels)
        for k in range(3, len(st.stages)):
            if polish_until is not None and self.clock() > polish_until:
                self._shortened = self._stage_key(st.stages, k)
                break
            pose, sim = self._stage(st, k, levels, pose, center, times, polish_until=polish_until)
            self._stage_scores[self._stage_key(st.stages, k)] = round(sim, 4)
        return pose, start, sim

    def _polish_deadline(self, st: RegistrationSettings, levels: dict) -> float | None:
        """When the polishing stages stop (:data:`FINISH_RESERVE_FACTOR`); None without a
        time budget or a fine level."""
        fine = self._fine_level(st, levels)
        if self._deadline is None or fine is None or fine.seconds_per_render is None:
            return None
        render_s, score_s = fine.seconds_per_render, fine.seconds_per_score
        # the error estimate's probes each score the whole image and its parts
        checks_s = PROBE_DRRS * (render_s + fine.n_parts * score_s)
        # the fine score at the new depth, and the depth step's DRRs, scored at their own size
        checks_s += render_s + score_s
        if st.depth_refine is not None:
            pixels = (st.depth_refine.size_px / st.stages[-1].size_px) ** 2
            checks_s += DEPTH_DRRS * (self._depth_drr_ratio(st) * render_s + pixels * score_s)
        return self._deadline - FINISH_RESERVE_FACTOR * checks_s

    @staticmethod
    def _depth_drr_ratio(st: RegistrationSettings) -> float:
        """A depth-refinement DRR in fine-level DRRs (pixels times samples per ray; 0 without one)."""
        dr, last = st.depth_refine, st.stages[-1]
        return 0.0 if dr is None else (dr.size_px / last.size_px) ** 2 * (last.step_mm / dr.step_mm)

    @staticmethod
    def _stage_key(stages: tuple, k: int) -> str:
        """Name of stage ``k`` in timings and scores: optimiser and size, plus ``_2``, ``_3``
        ... when an earlier stage has the same name."""
        name = f"{stages[k].optimizer}{stages[k].size_px}"
        repeat = sum(f"{s.optimizer}{s.size_px}" == name for s in stages[:k])
        return name if repeat == 0 else f"{name}_{repeat + 1}"

    def _stage(self, st: RegistrationSettings, k: int, levels: dict, pose: Pose, center: np.ndarray,
               times: dict, joins: tuple | None = None, polish_until: float | None = None) -> tuple[Pose, float]:
        """Stage ``k`` (>= 1) of ``st`` from ``pose``: (refined pose, its similarity).

        ``joins``: (pose, error points) of an optimum found before; a compass search stops
        once its best pose is within ``st.agreement_mm`` of it there (the rival check).
        ``polish_until``: the stage stops at this time on :attr:`clock` (after its first
        DRR) with the best pose so far (:data:`FINISH_RESERVE_FACTOR`).
        """
        stage = st.stages[k]
        t0 = time.perf_counter()
        self._stage_name = self._stage_key(st.stages, k)
        lvl = levels[(stage.size_px, stage.step_mm, stage.smooth_px)]
        best = [np.inf, None]   # the best cost so far and its parameters

        def cost(p, base=pose):
            if polish_until is not None and best[1] is not None and self.clock() > polish_until:
                raise _PolishOver
            value = -lvl.score(apply_update(base, p, center))
            if value < best[0]:
                best[:] = [value, np.array(p, dtype=np.float64)]
            return value

        try:
            res = self._optimise(st, k, cost, pose, center, joins)
        except _PolishOver:
            self._shortened = self._stage_name
            res = OptimResult(best[1], best[0], 0)
        key = self._stage_key(st.stages, k)
        times[key] = times.get(key, 0.0) + time.perf_counter() - t0
        return apply_update(pose, res.x, center), -res.fun

    def _optimise(self, st: RegistrationSettings, k: int, cost, pose: Pose, center: np.ndarray,
                  joins: tuple | None) -> OptimResult:
        """Stage ``k``'s optimiser on ``cost`` over the update parameters (:meth:`_stage`)."""
        stage = st.stages[k]
        if stage.optimizer in ("cma", "pycma"):
            evolve = pycma_es if stage.optimizer == "pycma" else cma_es
            res = evolve(cost, np.zeros(6), stage.spread, max_evaluations=stage.evaluations,
                         popsize=stage.popsize, seed=st.seed + k, bounds=3 * np.asarray(stage.spread))
        elif stage.optimizer == "cobyqa":
            res = quadratic_model_search(cost, np.zeros(6), stage.spread, max_evaluations=stage.evaluations)
        else:
            stop = None
            if joins is not None and st.agreement_mm is not None:
                other, where = joins
                stop = lambda x, base=pose: target_error_mm(  # noqa: E731
                    apply_update(base, x, center), other, where) <= st.agreement_mm
            res = compass_search(cost, np.zeros(6), stage.spread, max_evaluations=stage.evaluations,
                                 pattern=stage.pattern, stop_when=stop,
                                 min_steps=stage.min_steps)
        return res

    def _global_starts(self, st: RegistrationSettings, lvl0: _Level, init_pose: Pose, center: np.ndarray,
                       times: dict) -> list:
        """The global stage's hypotheses (:mod:`~or_assist.register.global_search`), ranked by
        the first stage's similarity (one DRR each); [init_pose] when none could be rendered."""
        gs = st.global_search
        name, self._stage_name = self._stage_name, "global"
        t0 = time.perf_counter()
        level = self._shot.levels[gs.size_px]

        def render(pose, geometry):
            self._check_time()
            self._evaluations += 1
            return self.renderer.render(pose, geometry, step_mm=gs.step_mm)

        found = global_candidates(render, level.image, level.mask, level.geometry, init_pose, center, gs)
        ranked = sorted(((lvl0.score(c.pose), i, c.pose) for i, c in enumerate(found)), key=lambda c: (-c[0], c[1]))
        self._stage_scores["global"] = [round(c[0], 4) for c in ranked]
        times["global"] = time.perf_counter() - t0
        self._stage_name = name
        return [c[2] for c in ranked] or [init_pose]

    def _initial_poses(self, st: RegistrationSettings, levels: dict, init_pose: Pose, library) -> list:
        """2-D-aligned starts (:mod:`~or_assist.register.init2d`) on the second-smallest level."""
        sizes = st.sizes_px
        size = sizes[1] if len(sizes) > 1 else sizes[0]
        key = [k for k in levels if k[0] == size][0]
        return [self._initial_pose(levels[key], init_pose, library)]

    def _initial_pose(self, level: _Level, init_pose: Pose, library) -> Pose:
        """Best 2-D-aligned start among the DRR at ``init_pose`` and nearby library views."""
        candidates = []
        try:
            candidates.append((init_pose, level.render(init_pose, whole=True)))
            self._evaluations += 1
        except InputError:
            pass
        if library is not None:
            from or_assist.render.views.model import nearest_views

            for match in nearest_views(library, init_pose, k=4):
                entry = library.entries[match.index]
                view = resample_to_geometry(np.asarray(library.line_integrals[match.index], np.float32),
                                            library.geometry_of(match.index), level.geometry)
                candidates.append((entry.pose, view))
        center_px = level.geometry.principal_point_px
        best_pose, best_score = init_pose, -2.0
        for pose, view in candidates:
            al = align_2d(level.image, level.mask, view, center_px, metric=self.settings.metric)
            cand = pose_from_2d(pose, al, level.geometry)
            if al.score > best_score:
                best_pose, best_score = cand, al.score
        return best_pose
