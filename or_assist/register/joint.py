"""Two shots of different views registered jointly: the patient static, two C-arm poses.

A lateral pins the pose down poorly along its beam (depth: the patient's left-right); an
inlet or outlet sees that direction in its image plane, and the other way round. So two
shots taken one after the other (the patient has not moved) are registered together:

1. **Each shot alone** (:meth:`Registrar.register <or_assist.register.pipeline.Registrar.register>`,
   the same levels, similarity and optimisers), each within a share of the budget.
2. **Starts of the joint search**: each shot's own result, and the other shot's result
   carried over by the known relative C-arm motion ``source2_from_source1`` (from the two
   starts, e.g. DICOM headers' positioner angles: known to ``rotation_tolerance_deg`` and
   ``translation_tolerance_mm``); ranked by the joint cost on the 64-px level (one DRR per
   shot each), the best goes on.
3. **Joint refinement**: the unknowns are the two shots' poses (6 + 6 update parameters,
   :mod:`or_assist.register.pose_params`), tied by the relative motion: the cost is minus
   the sum of both shots' similarities plus ``coupling_weight`` times
   ``(rotation discrepancy / rotation tolerance)**2 + (isocentre shift / translation
   tolerance)**2`` of the implied relative motion against the known one. The C-arm motion
   is thus free within its tolerance (an orbit a degree off, a slide of a few mm) and the
   patient's pose is shared. Compass searches (:func:`~or_assist.register.optimize.compass_search`)
   at 64 and 128 px; a coordinate step moves one shot only, so it costs one DRR.
4. **Verdict per shot**: each shot's similarity at the joint optimum must reach the
   confidence threshold and may not drop by more than ``reject_margin`` below its own
   optimum (a joint pose one shot rejects); the implied relative motion may differ from
   the known one by at most ``contradiction_factor`` times its tolerance; and each shot's
   error estimate at the target points (:mod:`or_assist.register.uncertainty`, the
   similarity's curvature and its image parts' disagreement, the coupling counted as a
   prior whose sigma is 0.7 times the tolerance) must stay within ``max_estimated_error_mm``.
   When the two shots disagree (another patient, a patient who moved, a wrong relative
   motion) neither is registered: :attr:`JointResult.singles` keeps each shot's own result.

What the joint fixes: the depth of each view to about the relative motion's translation
tolerance (a slide of the C-arm that the headers do not record moves the patient as the
other view sees it). The time budget is ``settings.time_budget_s`` per shot (twice that
for the pair), on :attr:`Registrar.clock <or_assist.register.pipeline.Registrar.clock>`.
"""

from __future__ import annotations

import time

import numpy as np

from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose
from or_assist.core.validate import check_choice
from or_assist.core.vocabulary import POLARITY_SETTINGS
from or_assist.errors import InputError
from or_assist.register.optimize import compass_search
from or_assist.register.pipeline import Registrar, RegistrationResult, _Level, _numba_threads, _OutOfTime
from or_assist.register.pose_params import apply_update, isocenter_source_mm, pose_error
from or_assist.register.joint_model import (JointResult, JointSettings, _discrepancy_sq,
                                            relative_motion_discrepancy)
from or_assist.register.settings import RegistrationSettings
from or_assist.register.shot import ShotProblem, prepare_shot
from or_assist.register.uncertainty import ERROR_SCALE, pose_uncertainty

__all__ = ["JointRegistrar"]

#: The relative motion's error as a prior of the error estimate: its sigma per component is
#: this times the tolerance. 0.7: the 90th percentile of one component's size when the
#: error is uniform within the tolerance (a ball), the coverage the estimate aims at.
PRIOR_SIGMA_FRACTION = 0.7

class JointRegistrar:
    """Registers two shots of one patient jointly (module doc); keeps the renderer warm.

    Parameters
    ----------
    ct_or_volume : CTVolume, AttenuationVolume or DRRRenderer
        As for :class:`~or_assist.register.pipeline.Registrar`.
    geometry1, geometry2 : CArmGeometry
        Of the two shots (``geometry2`` None: the same as the first's).
    settings : RegistrationSettings, optional
        Each shot's registration; ``time_budget_s`` is per shot.
    joint : JointSettings, optional
    """

    def __init__(self, ct_or_volume, geometry1: CArmGeometry, geometry2: CArmGeometry | None = None,
                 settings: RegistrationSettings | None = None, joint: JointSettings | None = None):
        self.joint = JointSettings() if joint is None else joint
        if not isinstance(self.joint, JointSettings):
            raise InputError(f"expected JointSettings, got {type(joint).__name__}", "joint")
        self.first = Registrar(ct_or_volume, geometry1, settings)
        self.second = Registrar(self.first.renderer, geometry1 if geometry2 is None else geometry2,
                                self.first.settings)
        self.settings = self.first.settings
        missing = sorted({st.size_px for st in self.joint.stages} - set(self.settings.sizes_px))
        if missing:
            raise InputError(f"the joint stages use levels {missing} px that the registration settings' stages do "
                             f"not have ({list(self.settings.sizes_px)})", "joint")

    def register(self, frame1: np.ndarray, init1: Pose, frame2: np.ndarray, init2: Pose, *,
                 source2_from_source1: Pose | None = None, polarity: str = "bone-dark",
                 polarity2: str | None = None, target_lps_mm=None, alone: tuple = (None, None)) -> JointResult:
        """Register two shots of one patient (module doc).

        Parameters
        ----------
        frame1, frame2 : (H, W) arrays
            The shots (``geometry1``'s and ``geometry2``'s sizes).
        init1, init2 : Pose
            Their starts (each within about +-15 mm / +-10 deg of its truth).
        source2_from_source1 : Pose, optional
            The relative C-arm motion, known to the tolerances of :class:`JointSettings`;
            default ``init2 init1^-1`` (starts from the headers' positioner angles through
            one patient point).
        polarity, polarity2 : {'bone-dark', 'bone-bright', 'auto'}
            Of the first and the second shot (``polarity2`` None: as the first).
        target_lps_mm : (N, 3) array_like, optional
            Where the errors are estimated (e.g. the planned implant's entry and apex).
        alone : (RegistrationResult or None, RegistrationResult or None)
            A shot's result registered alone from its start when already known (e.g. the
            earlier shot of a case): it is not registered alone again.

        Returns
        -------
        JointResult
        """
        for name, pose in (("init1", init1), ("init2", init2)):
            if not isinstance(pose, Pose):
                raise InputError(f"expected a Pose (T_source_from_patient), got {type(pose).__name__}", name)
        if source2_from_source1 is None:
            source2_from_source1 = Pose(init2.matrix @ np.linalg.inv(init1.matrix))
        elif not isinstance(source2_from_source1, Pose):
            raise InputError(f"expected a Pose, got {type(source2_from_source1).__name__}", "source2_from_source1")
        if len(alone) != 2 or not all(a is None or isinstance(a, RegistrationResult) for a in alone):
            raise InputError("expected two RegistrationResult or None", "alone")
        polarity2 = polarity if polarity2 is None else polarity2
        budget = self.settings.time_budget_s
        started = self.first.clock()
        inits = (init1, init2)
        singles = []
        for k, (reg, frame, pol) in enumerate(((self.first, frame1, polarity), (self.second, frame2, polarity2))):
            reg._shot = None
            if alone[k] is not None:
                check_choice(pol, POLARITY_SETTINGS, "polarity2" if k else "polarity")
                try:
                    reg._shot = prepare_shot(frame, reg.geometry, pol, self.settings.sizes_px)
                except ShotProblem as exc:
                    alone = alone[:k] + (RegistrationResult(None, False, float("nan"), self.settings.final_metric, 0.0,
                                                            str(exc)),) + alone[k + 1:]
                singles.append(alone[k])
                continue
            own = None if budget is None else started + (k + 1) * self.joint.single_share * budget
            singles.append(reg._register(frame, inits[k], pol, None, None, self.settings, own, target_lps_mm))
        result = JointResult((None, None), tuple(singles), source2_from_source1)
        if self.first._shot is None or self.second._shot is None:
            k = 0 if self.first._shot is None else 1
            return self._refuse(result, started, f"not registered: shot {k + 1} could not be used: "
                                                  f"{singles[k].reason}", inits)
        try:
            for reg in (self.first, self.second):
                reg._deadline = None if budget is None else started + 2.0 * budget
            with _numba_threads(self.settings.render_threads):
                return self._joint(result, started, inits, target_lps_mm)
        except _OutOfTime:
            return self._refuse(result, started, f"not registered: the time budget of {2 * budget:.1f} s for the "
                                                  "pair ran out in the joint stage", inits)
        finally:
            for reg in (self.first, self.second):
                reg._deadline = None

    # ------------------------------------------------------------------ internals
    def _refuse(self, result: JointResult, started: float, reason: str, inits) -> JointResult:
        """Both shots not registered, with ``reason`` (their own poses kept for diagnostics)."""
        result.results = tuple(RegistrationResult(s.pose, False, s.similarity, s.metric, 0.0, reason,
                                                  s.n_evaluations, {}, init, dict(s.stage_scores))
                               for s, init in zip(result.singles, inits))
        result.reason = reason
        return self._done(result, started)

    def _done(self, result: JointResult, started: float) -> JointResult:
        result.seconds = self.first.clock() - started
        for r in result.results:
            r.seconds = result.seconds
        return result

    def _joint(self, result: JointResult, started: float, inits, targets) -> JointResult:
        js, st = self.joint, self.settings
        regs = (self.first, self.second)
        centers = [isocenter_source_mm(r.geometry) for r in regs]
        h = result.source2_from_source1
        h_inv = np.linalg.inv(h.matrix)
        evals0 = [r._evaluations for r in regs]
        levels = {}
        for stage in js.stages:
            key = (stage.size_px, stage.step_mm)
            if key not in levels:
                levels[key] = tuple(_Level(r, r._shot, stage.size_px, stage.step_mm, st.metric_at(stage.size_px))
                                    for r in regs)

        def penalty(p1: Pose, p2: Pose, rot_w: float, trans_w: float) -> float:
            rot_sq, trans_sq = _discrepancy_sq(p1, p2, h_inv, centers[1])
            return rot_w * rot_sq + trans_w * trans_sq

        rot_w = js.coupling_weight / js.rotation_tolerance_deg ** 2
        trans_w = js.coupling_weight / js.translation_tolerance_mm ** 2

        def joint_cost(lv, poses) -> float:
            return -(lv[0].score(poses[0]) + lv[1].score(poses[1])) + penalty(*poses, rot_w, trans_w)

        # starts: each shot's own result, and each carried over to the other by the relative motion
        own = [s.pose if s.pose is not None else init for s, init in zip(result.singles, inits)]
        starts = [(own[0], Pose(h.matrix @ own[0].matrix)), (Pose(h_inv @ own[1].matrix), own[1]),
                  (own[0], own[1])]
        times = {}
        t0 = time.perf_counter()
        first = levels[(js.stages[0].size_px, js.stages[0].step_mm)]
        costs = [joint_cost(first, s) for s in starts]
        poses = starts[int(np.argmin(costs))]
        times["joint_starts"] = time.perf_counter() - t0
        scores = {"joint_starts": [round(-c, 4) for c in costs]}
        for k, stage in enumerate(js.stages):
            t0 = time.perf_counter()
            lv = levels[(stage.size_px, stage.step_mm)]
            base = poses
            memo = ({}, {})

            def shot_score(i: int, p: np.ndarray, lv=lv, base=base, memo=memo) -> tuple[Pose, float]:
                key = p.tobytes()
                if key not in memo[i]:
                    pose = apply_update(base[i], p, centers[i])
                    memo[i][key] = (pose, lv[i].score(pose))
                return memo[i][key]

            def cost(x: np.ndarray) -> float:
                (p1, s1), (p2, s2) = shot_score(0, x[:6]), shot_score(1, x[6:])
                return -(s1 + s2) + penalty(p1, p2, rot_w, trans_w)

            res = compass_search(cost, np.zeros(12), np.tile(stage.spread, 2), max_evaluations=stage.evaluations,
                                 min_steps=np.tile(stage.min_steps, 2))
            poses = (apply_update(base[0], res.x[:6], centers[0]), apply_update(base[1], res.x[6:], centers[1]))
            name = f"joint{stage.size_px}" + (f"_{k}" if k else "")
            times[name] = time.perf_counter() - t0
            scores[name] = round(-res.fun, 4)
        fine = levels[(js.stages[-1].size_px, js.stages[-1].step_mm)]
        sims = [fine[i].score(poses[i]) for i in range(2)]
        # each shot's error estimate: its own similarity's curvature and parts, with the
        # coupling as a prior of sigma = PRIOR_SIGMA_FRACTION x tolerance (in ERROR_SCALE's
        # units: that prior alone gives that sigma), the other shot fixed
        t0 = time.perf_counter()
        err_rot_w = ERROR_SCALE ** 2 / 2.0 / (PRIOR_SIGMA_FRACTION * js.rotation_tolerance_deg) ** 2
        err_trans_w = ERROR_SCALE ** 2 / 2.0 / (PRIOR_SIGMA_FRACTION * js.translation_tolerance_mm) ** 2
        uncs = []
        for i in range(2):
            def probe(p: Pose, i=i) -> np.ndarray:
                pair = (p, poses[1]) if i == 0 else (poses[0], p)
                return fine[i].part_scores(p) - penalty(*pair, err_rot_w, err_trans_w)

            uncs.append(pose_uncertainty(probe, poses[i], centers[i], check_parts=fine[i].check_parts))
        times["uncertainty"] = time.perf_counter() - t0
        rot_d, trans_d = relative_motion_discrepancy(poses[0], poses[1], h, centers[1])
        result.rotation_discrepancy_deg, result.translation_discrepancy_mm = rot_d, trans_d
        result.stage_seconds = times
        n_eval = sum(s.n_evaluations for s in result.singles) + sum(r._evaluations - e for r, e in zip(regs, evals0))
        per_shot = []
        for i in range(2):
            where = targets if targets is not None else poses[i].inverse().apply(centers[i][None, :])
            r = RegistrationResult(poses[i], True, sims[i], st.final_metric, 0.0, None, n_eval, dict(times), inits[i],
                                   {"alone": dict(result.singles[i].stage_scores), **scores})
            r.uncertainty, r.estimated_error_mm = uncs[i], uncs[i].error_at_mm(poses[i], where)
            per_shot.append(r)
        result.results = tuple(per_shot)
        reason = self._pair_reason(result, sims, rot_d, trans_d, inits, centers)
        if reason is not None:
            for r in per_shot:
                r.success, r.reason = False, reason
            result.reason = reason
        elif st.max_estimated_error_mm is not None:
            at = "at the planned implant" if targets is not None else "at the isocentre"
            for i, r in enumerate(per_shot):
                if r.estimated_error_mm > st.max_estimated_error_mm:
                    r.success = False
                    r.reason = (f"not confident: estimated error {r.estimated_error_mm:.1f} mm {at} is above the "
                                f"limit of {st.max_estimated_error_mm:g} mm (shot {i + 1}, registered jointly)")
        return self._done(result, started)

    def _pair_reason(self, result: JointResult, sims, rot_d: float, trans_d: float, inits, centers) -> str | None:
        """Why the joint optimum is refused for both shots (module doc, 4), or None."""
        js, st = self.joint, self.settings
        for i in range(2):
            angle, disp = pose_error(result.results[i].pose, inits[i], centers[i])
            if angle > st.capture_range[0] or np.linalg.norm(disp) > st.capture_range[1]:
                return (f"not registered: the joint result of shot {i + 1} is {angle:.1f} deg and "
                        f"{np.linalg.norm(disp):.1f} mm from its start, outside the capture range")
            if sims[i] < st.confidence_threshold:
                return (f"not registered: the shots disagree: at the joint pose shot {i + 1}'s {st.final_metric} is "
                        f"{sims[i]:.3f}, below the threshold {st.confidence_threshold:.3f}")
        if rot_d > js.contradiction_factor * js.rotation_tolerance_deg or \
                trans_d > js.contradiction_factor * js.translation_tolerance_mm:
            return (f"not registered: the shots disagree: the C-arm motion between them differs from the known one "
                    f"by {rot_d:.1f} deg and {trans_d:.1f} mm (tolerance {js.rotation_tolerance_deg:g} deg, "
                    f"{js.translation_tolerance_mm:g} mm)")
        for i, single in enumerate(result.singles):
            alone = single.similarity
            if single.pose is not None and np.isfinite(alone) and alone - sims[i] > js.reject_margin:
                return (f"not registered: the shots disagree: shot {i + 1} rejects the joint pose (its {st.final_metric} "
                        f"drops from {alone:.3f} alone to {sims[i]:.3f})")
        return None
