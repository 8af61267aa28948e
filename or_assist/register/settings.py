"""How :class:`~or_assist.register.pipeline.Registrar` registers: stages, thresholds, settings.

The thresholds are calibrated with ``benchmarks/registration.py`` on simulated shots of
the real CT in ``../shared/data`` and of the sample phantom; each constant says on what.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from or_assist.core.validate import check_choice, check_integer, check_number, check_vector
from or_assist.errors import InputError
from or_assist.register.depth import DepthRefine
from or_assist.register.global_search import GlobalSearch
from or_assist.register.similarity import DEFAULT_METRIC, METRICS

__all__ = ["CONFIDENCE_THRESHOLD", "RESTART_BELOW", "SECOND_STAGE_BELOW", "LATER_STARTS", "GLOBAL_STARTS", "DEFAULT_STAGES",
           "COBYQA_FINE_STAGES", "TRACK_STAGES", "DEFAULT_TIME_BUDGET_S", "MAX_TIME_BUDGET_S", "Stage",
           "RegistrationSettings"]

#: Smallest final similarity (gradient correlation at 128 px) reported as success.
#: Calibrated with ``benchmarks/registration.py`` (seed 2024, 100 shots each of the real CT
#: and the phantom): every gross failure ends at <= 0.29, every result with mTRE < 2 mm
#: at >= 0.43 (lateral views of the real CT lowest, 0.43-0.6). A result that is right in
#: the image but off in depth (the weakly observable direction) has a normal similarity;
#: no threshold separates it (1 real-CT shot of 100, 2.7 mm, where the similarity itself
#: peaks). A curvature-of-similarity-along-the-beam check was tried and rejected: such
#: results are well peaked, at the wrong depth (curvature 9.5-17.7e-4 vs a median of
#: 12.6e-4 for correct results; calibration on seeds 11 and 12, 90 shots).
CONFIDENCE_THRESHOLD = 0.40
#: First-stage similarity (gradient correlation at 32 px) below which the first stage is
#: restarted from another start. Calibrated on blurred levels (converged 0.7-0.9, later
#: failures 0.58-0.70; seed 2024) and checked on the unblurred ones: starts that went on
#: to a correct result scored 0.75-0.93, every start of the shots that failed 0.33-0.70
#: (real CT, calibration families, seed 2024, 27 shots).
RESTART_BELOW = 0.75
#: Second-stage similarity (gradient correlation at 64 px) below which the remaining
#: first-stage starts are tried too: a first stage that converged to a wrong optimum
#: scored 0.31-0.57 there, correct ones 0.68-0.9 but for 3 of 300 at 0.52-0.55 (blurred
#: levels; seeds 2024 and 11, real CT and phantom); unblurred, on the 27 shots above,
#: correct ones 0.72-0.92, wrong ones 0.25-0.68.
SECOND_STAGE_BELOW = 0.60
#: Wall time a registration may take by default (issue: 3 s on a 2-core machine).
DEFAULT_TIME_BUDGET_S = 3.0
#: Largest time budget accepted anywhere (settings, ``--time-budget-s``), seconds.
MAX_TIME_BUDGET_S = 3600.0
#: Starts after the first two (:attr:`RegistrationSettings.max_starts`): (kind, spread factor).
LATER_STARTS = (("init", 1.5), ("init", 1.0), ("2d", 1.0))
#: Starts of the first stage with the global stage (:attr:`RegistrationSettings.global_search`):
#: (kind, spread factor); each ``"global"`` takes the next of its hypotheses (best first),
#: the start pose again once they are used up. The best hypothesis first, the start pose
#: second (the independent start that must agree): from +-15 mm / +-10 deg the best
#: hypothesis lies within 3 deg / 5 mm of the truth far more often than the start
#: (19 of 24 against 0 of 24, fresh seed 34). On diagnosis seed 33 (48 real-CT shots of
#: the held-out families, 3 s on the CPU clock) within 2 mm / reported: stage off 42 / 36,
#: the start pose first 45 / 32 (the stage ran only after a failed start, whose time was
#: then missing), the best hypothesis first 46 / 37 (9 x 9 tilts of 2.5 deg) and 45 / 41
#: (7 x 7 of 3 deg, the default: fewer DRRs, fewer shots cut by the budget).
GLOBAL_STARTS = (("global", 1.0), ("init", 1.0), ("global", 1.0), ("global", 1.0), ("init", 1.5))


@dataclass(frozen=True)
class Stage:
    """One stage of the coarse-to-fine search.

    Attributes
    ----------
    size_px : int
        Side of the pyramid level (pixels over the field's bounding square).
    step_mm : float
        DRR ray step.
    optimizer : {'cma', 'pycma', 'compass', 'cobyqa'}
        :func:`~or_assist.register.optimize.cma_es`, the reference CMA-ES
        :func:`~or_assist.register.optimize_pycma.pycma_es` (package ``cma``),
        :func:`~or_assist.register.optimize.compass_search` or
        :func:`~or_assist.register.optimize.quadratic_model_search`.
    evaluations : int
        Budget of DRRs.
    spread : (6,) floats
        CMA-ES initial standard deviations, compass initial steps, or COBYQA scales
        (its first trust region; deg x 3, mm x 3).
    smooth_px : float
        Gaussian blur (standard deviation, pixels of the level) of shot and DRR before
        comparing; widens the capture range of the coarse stages.
    popsize : int or None
        CMA-ES offspring per generation (default from the dimension).
    pattern : bool
        Compass search with Hooke-Jeeves pattern moves.
    min_step_share : float
        Compass search: it stops once every step is below ``spread`` times this (in
        (0, 1]; default 1/16: four halvings).
    """

    size_px: int
    step_mm: float
    optimizer: str
    evaluations: int
    spread: tuple
    smooth_px: float = 0.0
    popsize: int | None = None
    pattern: bool = False
    min_step_share: float = 1 / 16

    def __post_init__(self):
        check_choice(self.optimizer, ("cma", "pycma", "compass", "cobyqa"), "optimizer")
        check_vector(self.spread, 6, "spread", positive=True, expected="6 numbers > 0")
        check_integer(self.size_px, "size_px", 16, 4096)
        check_number(self.min_step_share, "min_step_share", 0.0, 1.0, lo_open=True)

    @property
    def min_steps(self) -> np.ndarray:
        """(6,) steps below which a compass search stops: ``spread`` times ``min_step_share``."""
        return np.asarray(self.spread, dtype=np.float64) * self.min_step_share


#: The coarse stages compare unblurred images. Blurring them (1.5 px at 32, 1 px at 64, as the
#: first version did) widened nothing that mattered and misled them on shots whose display
#: chain differs from a DRR (edge enhancement, vignetting, scatter): on 14 gross failures
#: of the held-out families (real CT, seed 7, the diagnosis seed) the blurred 32-px level
#: scored the found wrong pose above the true one in 11 (1 tie), the unblurred one the
#: true pose higher in all 14. Unblurred, 70 of 80 of those shots ended within 2 mm
#: (was 56), median time 1.6 s (was 1.8 s); on the calibration families (seed 2024) 38
#: of 40 (was 37).
#:
#: The first fine stage stops at a quarter of its initial steps (0.125 deg / mm, 0.5 mm in
#: depth) instead of a sixteenth: the polishing stage after it starts from its initial steps
#: again and goes down to the sixteenth. On diagnosis seed 33 without a budget (48 shots,
#: both ways interleaved) 46 within 2 mm either way, median 0.24 mm either way (per shot
#: -0.30..+0.45 mm), none reported wrongly, 17.5 fewer 128-px DRRs per shot (126 -> 108.5,
#: rivals included): the stage had always run to its 110-DRR cap. Both fine stages at a
#: quarter saved 38 but scattered the results more (per shot -0.63..+0.83 mm): not taken.
DEFAULT_STAGES = (
    Stage(32, 4.0, "cma", 300, (5.0, 5.0, 5.0, 8.0, 8.0, 12.0), popsize=12),
    Stage(64, 3.0, "cma", 150, (1.5, 1.5, 1.5, 2.0, 2.0, 5.0)),
    Stage(128, 2.0, "compass", 110, (0.5, 0.5, 0.5, 0.5, 0.5, 2.0), min_step_share=0.25),
    Stage(128, 2.0, "compass", 60, (0.5, 0.5, 0.5, 0.5, 0.5, 2.0)),
)
#: The fine stages with SciPy's COBYQA (:func:`~or_assist.register.optimize.quadratic_model_search`):
#: faster (12 real-CT shots of the calibration families: 1.4 s against 2.0 s median, max
#: 2.2 against 2.8 s, equally accurate) but not the default: on two test shots it stopped
#: short (a lateral 4.7 mm off in depth, refused by the error estimate; an inlet), where
#: the compass search converges. Use ``stages=DEFAULT_STAGES[:2] + COBYQA_FINE_STAGES``.
COBYQA_FINE_STAGES = (
    Stage(128, 2.0, "cobyqa", 45, (0.5, 0.5, 0.5, 0.5, 0.5, 2.0)),
    Stage(128, 2.0, "cobyqa", 30, (0.5, 0.5, 0.5, 0.5, 0.5, 2.0)),
)

#: Stages of :meth:`Registrar.track` (a new shot of nearly the same view). Its 64-px stage
#: stays blurred: unblurred (as the full registration's coarse stages are), tracking on the
#: held-out families (``benchmarks/tracking.py --seed 7``, the diagnosis seed, 67 tracked
#: pairs) was faster (mean 1.17 against 1.35 s) but no better (92.5 % within 2 mm against
#: 94.0 %; 3 results reported while over 2 mm against 2, the extra one at 2.00 mm).
TRACK_STAGES = (
    Stage(64, 3.0, "cma", 100, (1.0, 1.0, 1.0, 1.5, 1.5, 4.0), smooth_px=1.0),
    Stage(128, 2.0, "compass", 90, (0.5, 0.5, 0.5, 0.5, 0.5, 2.0)),
    Stage(128, 2.0, "compass", 60, (0.5, 0.5, 0.5, 0.5, 0.5, 2.0)),
)


@dataclass(frozen=True)
class RegistrationSettings:
    """How :class:`Registrar` registers.

    Attributes
    ----------
    metric : {'ncc', 'gc', 'pgc'}
        Similarity at every level (:mod:`or_assist.register.similarity`). Gradient
        correlation by default: in ``benchmarks/registration.py`` (100 real-CT shots) it
        registered 98 % within 2 mm in 0.72 s, patch-wise gradient NCC 97 % in 0.78 s
        (median error 0.24 against 0.36 mm), NCC 13 % (30 shots). The thresholds here
        are calibrated for gradient correlation.
    stages : tuple of Stage
        Coarse to fine; sizes must divide the largest by powers of two. The 2-D
        initialisation runs on the second-smallest level (the smallest if only one).
    bounds : (6,) floats
        Largest update of the first stage from its start per parameter (deg, mm).
    capture_range : (float, float)
        Largest accepted (rotation deg, translation mm) between start and result.
    confidence_threshold : float
        Smallest final similarity reported as success.
    use_2d_init : bool
        Without the global stage (``global_search=None``): start from the 2-D
        initialisation first (otherwise it is the first restart).
    max_starts : int
        Starts of the first stage at most (each attempt has its own seed): with the global
        stage, :data:`GLOBAL_STARTS`; without it, the init pose, the 2-D initialisation,
        then in turn the init pose with a 1.5 times wider spread, the init pose and the 2-D
        initialisation again.
    restart_below : float
        Restart the first stage when its similarity is below this.
    second_stage_below : float
        Try the remaining starts when the best second-stage similarity is below this.
    refine_best : int or None
        When several first-stage starts go on to the second stage (none converged), only
        the best this many by first-stage similarity do, unless none of them reaches
        ``second_stage_below`` there; then the others follow (default 3; None: all). On
        the held-out families (real CT, diagnosis seed 7, 80 shots) 3 gave the same results
        as None (79 of 80 identical, one wrong result 39.93 against 39.90 mm off) in 3 %
        less time (mean 1.82 against 1.88 s): the start that won at the second stage was
        among the three best first-stage starts in every shot.
    render_threads : int or None
        Numba threads per DRR; None (default): every thread numba has (the cores, or the
        ``NUMBA_NUM_THREADS`` environment variable). Two halve the time on an otherwise
        quiet two-core machine (real-CT benchmark, 20 shots: 0.78 s against 1.45 s
        median); on a machine that other work keeps busy one is faster, because a
        parallel render waits for its slowest thread.
    volume_voxel_mm : float or None
        A CT given to :class:`~or_assist.register.pipeline.Registrar` with finer voxels is
        coarsened to this (per axis, antialiased) for rendering
        (:func:`~or_assist.register.pipeline.registration_ct`); None keeps its voxels. A
        renderer or attenuation volume given instead is used as it is.
    agreement_mm : float or None
        After the search, one more independent start runs through the first two stages
        (unless restarts already gave two, or two starts agreed); a start scoring within
        ``agreement_margin`` of the best at the second stage that ended more than this
        far from it (at the target points) is a rival pose: it goes through the first
        fine stage too (stopping once it comes within this of the best's fine optimum: the
        same optimum) and the better fine similarity wins (a tie is refused only with
        ``agreement_fine_margin``; default 2 mm; None: no extra start, no rivals).
    start_agreement_mm : float or None
        First-stage starts (32 px, blurred: precise to a few millimetres) that end within
        this of each other (at the target points) found the same optimum: the restarts
        stop there, whatever the first-stage similarity (default 5 mm), and that counts as
        the independent start of ``agreement_mm``. An agreement start within this of the
        best second-stage pose agrees without being refined. None: only
        ``restart_below`` stops the restarts.
    agreement_margin : float
        Second-stage similarity below the best at which another start counts as a
        failed start rather than a rival pose (default 0.1); rivals go through the fine
        stages too and the best fine similarity wins.
    agreement_fine_margin : float or None
        A rival within this of the winner's fine similarity (and more than
        ``agreement_mm`` and :data:`~or_assist.register.pipeline.RIVAL_FINE_MM` away) makes
        the shot ambiguous (default 0.05; None: the best fine
        similarity wins without that verdict). Under gradient correlation on the finest
        level (calibration families, real CT, seed 2024, 40 shots) 0.05 refused 4 correct
        results (rivals 2.4-9 mm away scoring 0.01-0.04 lower), so it was off. Under
        ``pgc`` (the default ``fine_metric``) rivals that end elsewhere score far lower:
        on 72 shots of diagnosis seeds 7 and 15 the closest was 0.10 below a correct
        result (4.7 mm away), while an inlet of the calibration families that both starts
        placed 17.7 mm off (seed 2024, its parts agreeing to 1.4 mm) had its rival 0.028
        below.
    max_estimated_error_mm : float or None
        A result whose estimated error (:mod:`or_assist.register.uncertainty`) at the
        target points is above this is "not registered" (default 2 mm; None: not checked).
    time_budget_s : float or None
        Wall time a registration may take (default 3 s; None: no limit). When it runs
        out the shot is "not registered", with the reason and the stage it stopped in,
        wherever the search was: a search cut short is never reported as confident (a
        coarse optimum can score like the right pose while off in depth). A DRR under
        way is finished first, so the overrun is at most one render (about 10-40 ms at
        128 px).
    global_search : GlobalSearch or None
        The global stage (:mod:`or_assist.register.global_search`, on by default): rotation
        hypotheses with the in-plane shift of each found by the masked gradient
        correlation at every shift; its best hypotheses become starts of the first stage
        (:data:`GLOBAL_STARTS`, instead of the 2-D initialisation). None: not run (the
        start pose first, then the 2-D initialisation, ``use_2d_init``).
    depth_refine : DepthRefine or None
        After the fine stages and the error estimate, the depth along the beam is searched
        on a finer level (:mod:`or_assist.register.depth`: 6 DRRs at 256 px by default;
        the final similarity is then the fine level's at the refined pose). None: not run.
        When the time budget runs out during it, the fine stages' pose is kept.
    fine_metric : {'ncc', 'gc', 'pgc'} or None
        Similarity of the finest level (the largest ``size_px``: the fine stages, the
        final similarity, the confidence threshold and the error estimate); None:
        ``metric`` everywhere. ``'pgc'`` (default) makes the fine stages insensitive to
        scatter's slowly varying field, which biases gradient correlation along the beam on
        laterals by 4-7 mm (docs/registration_global_search.md, *Where single-view failures
        come from*); the error estimate then checks the image parts with gradient
        correlation too (:mod:`or_assist.register.uncertainty`).
    seed : int
        Seed of the CMA-ES.
    """

    metric: str = DEFAULT_METRIC
    stages: tuple = DEFAULT_STAGES
    bounds: tuple = (15.0, 15.0, 15.0, 25.0, 25.0, 25.0)
    capture_range: tuple = (20.0, 40.0)
    confidence_threshold: float = CONFIDENCE_THRESHOLD
    use_2d_init: bool = False
    max_starts: int = 5
    restart_below: float = RESTART_BELOW
    second_stage_below: float = SECOND_STAGE_BELOW
    refine_best: int | None = 3
    render_threads: int | None = None
    volume_voxel_mm: float | None = 2.0
    agreement_mm: float | None = 2.0
    start_agreement_mm: float | None = 5.0
    agreement_margin: float = 0.1
    agreement_fine_margin: float | None = 0.05
    max_estimated_error_mm: float | None = 2.0
    time_budget_s: float | None = DEFAULT_TIME_BUDGET_S
    global_search: GlobalSearch | None = GlobalSearch()
    depth_refine: DepthRefine | None = DepthRefine()
    fine_metric: str | None = "pgc"
    seed: int = 0

    def __post_init__(self):
        check_choice(self.metric, METRICS, "metric")
        if self.fine_metric is not None:
            check_choice(self.fine_metric, METRICS, "fine_metric")
        if not self.stages or not all(isinstance(st, Stage) for st in self.stages):
            raise InputError("must be a non-empty tuple of Stage", "stages")
        top = max(st.size_px for st in self.stages)
        for st in self.stages:
            ratio = top // st.size_px
            if top % st.size_px or ratio & (ratio - 1):
                raise InputError(f"sizes must divide the largest ({top}) by powers of two, got "
                                 f"{[s.size_px for s in self.stages]}", "stages")
        if self.global_search is not None and not isinstance(self.global_search, GlobalSearch):
            raise InputError(f"must be None or a GlobalSearch, got {type(self.global_search).__name__}",
                             "global_search")
        if self.depth_refine is not None and not isinstance(self.depth_refine, DepthRefine):
            raise InputError(f"must be None or a DepthRefine, got {type(self.depth_refine).__name__}",
                             "depth_refine")
        check_vector(self.bounds, 6, "bounds", positive=True, expected="6 numbers > 0")
        if self.refine_best is not None and (isinstance(self.refine_best, bool) or not isinstance(self.refine_best, int)
                                             or self.refine_best < 1):
            raise InputError(f"must be None or an integer >= 1, got {self.refine_best!r}", "refine_best")
        if self.render_threads is not None and (isinstance(self.render_threads, bool)
                                                or not isinstance(self.render_threads, int)
                                                or self.render_threads < 1):
            raise InputError(f"must be None or an integer >= 1, got {self.render_threads!r}", "render_threads")
        if self.volume_voxel_mm is not None and (isinstance(self.volume_voxel_mm, bool)
                                                 or not isinstance(self.volume_voxel_mm, (int, float))
                                                 or not 0 < self.volume_voxel_mm <= 10):
            raise InputError(f"must be None or a size in mm in (0, 10], got {self.volume_voxel_mm!r}",
                             "volume_voxel_mm")
        for name, hi, unit, optional in (("agreement_mm", 1000.0, "mm", True),
                                         ("start_agreement_mm", 1000.0, "mm", True), ("agreement_margin", 2.0, "", False),
                                         ("agreement_fine_margin", 2.0, "", True),
                                         ("max_estimated_error_mm", 1000.0, "mm", True),
                                         ("time_budget_s", MAX_TIME_BUDGET_S, "s", True)):
            value = getattr(self, name)
            if not (optional and value is None):
                object.__setattr__(self, name, check_number(value, name, 0.0, hi, lo_open=optional, unit=unit))

    def metric_at(self, size_px: int) -> str:
        """The similarity of the level of side ``size_px`` (``fine_metric`` on the finest)."""
        return self.fine_metric if self.fine_metric is not None and size_px == max(self.sizes_px) else self.metric

    @property
    def final_metric(self) -> str:
        """The similarity of the final score (the finest level's)."""
        return self.metric_at(max(self.sizes_px))

    @property
    def sizes_px(self) -> tuple[int, ...]:
        """The pyramid level sizes the stages use, ascending."""
        return tuple(sorted({st.size_px for st in self.stages}))
