"""What joint registration of two shots (:mod:`or_assist.register.joint`) works with: its
settings, its result, and how far two poses' relative C-arm motion is from a known one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from or_assist.core.pose import Pose, rotation_angle_deg
from or_assist.core.validate import check_number
from or_assist.errors import InputError
from or_assist.register.settings import Stage

__all__ = ["JOINT_STAGES", "JointSettings", "JointResult", "relative_motion_discrepancy"]

#: The joint refinement's stages (spreads per shot; both shots get the same).
JOINT_STAGES = (
    Stage(64, 3.0, "compass", 110, (1.0, 1.0, 1.0, 1.0, 1.0, 3.0)),
    Stage(128, 2.0, "compass", 110, (0.5, 0.5, 0.5, 0.5, 0.5, 2.0)),
    Stage(128, 2.0, "compass", 50, (0.5, 0.5, 0.5, 0.5, 0.5, 2.0)),
)


@dataclass(frozen=True)
class JointSettings:
    """How :class:`JointRegistrar` ties the two shots together (module doc).

    Attributes
    ----------
    rotation_tolerance_deg : float
        How well the relative C-arm rotation between the shots is known (default 1 deg:
        positioner angles in the DICOM headers).
    translation_tolerance_mm : float
        How far the C-arm may have moved beyond what the relative motion says (a slide,
        the isocentre shift; default 2 mm).
    coupling_weight : float
        Weight of the relative-motion term in the joint cost: at the tolerance it costs
        this much similarity (default 0.005; tuned on seeds 7 and 8 of
        ``benchmarks/registration_two_view.py`` among 0.005, 0.015 and 0.05: 0.05 pulled the
        lateral by the relative motion's error and gave a false confidence, 0.005 none).
    contradiction_factor : float
        A joint optimum whose implied relative motion differs from the known one by more
        than this times either tolerance is refused (default 1.5).
    reject_margin : float
        A shot whose similarity at the joint optimum is more than this below its own
        optimum (registered alone) rejects the joint pose (default 0.1).
    single_share : float
        Share of the per-shot budget each shot's registration alone may use; the joint
        stages get the rest of the pair's budget (default 0.8).
    stages : tuple of Stage
        The joint refinement (:data:`JOINT_STAGES`); the last is the level the verdict
        and the error estimate use.
    """

    rotation_tolerance_deg: float = 1.0
    translation_tolerance_mm: float = 2.0
    coupling_weight: float = 0.005
    contradiction_factor: float = 1.5
    reject_margin: float = 0.1
    single_share: float = 0.8
    stages: tuple = JOINT_STAGES

    def __post_init__(self):
        for name, lo, hi in (("rotation_tolerance_deg", 0.0, 45.0), ("translation_tolerance_mm", 0.0, 100.0),
                             ("coupling_weight", 0.0, 10.0), ("contradiction_factor", 1.0, 100.0),
                             ("reject_margin", 0.0, 2.0), ("single_share", 0.0, 1.0)):
            object.__setattr__(self, name, check_number(getattr(self, name), name, lo, hi, lo_open=lo == 0.0))
        if not self.stages or not all(isinstance(s, Stage) and s.optimizer == "compass" for s in self.stages):
            raise InputError("must be a non-empty tuple of compass Stage", "stages")


def relative_motion_discrepancy(pose1: Pose, pose2: Pose, source2_from_source1: Pose,
                                center2_source_mm) -> tuple[float, float]:
    """How far the relative C-arm motion that two poses imply differs from a known one.

    Parameters
    ----------
    pose1, pose2 : Pose
        ``T_source_from_patient`` of the two shots.
    source2_from_source1 : Pose
        The known relative motion.
    center2_source_mm : (3,) array_like
        The second shot's isocentre (its source frame).

    Returns
    -------
    rotation_deg : float
        Angle of ``pose2 pose1^-1 (source2_from_source1)^-1``.
    translation_mm : float
        How far that motion moves the second shot's isocentre.
    """
    e = pose2.matrix @ np.linalg.inv(pose1.matrix) @ np.linalg.inv(source2_from_source1.matrix)
    c = np.asarray(center2_source_mm, dtype=np.float64).reshape(3)
    return rotation_angle_deg(e[:3, :3]), float(np.linalg.norm(e[:3, :3] @ c + e[:3, 3] - c))


def _discrepancy_sq(pose1: Pose, pose2: Pose, h_inv: np.ndarray, c2: np.ndarray) -> tuple[float, float]:
    """Smooth squared discrepancies (deg^2, mm^2) of :func:`relative_motion_discrepancy`."""
    e = pose2.matrix @ np.linalg.inv(pose1.matrix) @ h_inv
    rot_sq = max(3.0 - float(np.trace(e[:3, :3])), 0.0) * np.degrees(1.0) ** 2   # angle^2 to 2nd order
    return rot_sq, float(np.sum((e[:3, :3] @ c2 + e[:3, 3] - c2) ** 2))


@dataclass
class JointResult:
    """Outcome of a joint registration of two shots.

    Attributes
    ----------
    results : tuple of two RegistrationResult
        Per shot, the joint verdict: its pose, its own similarity at the joint optimum,
        its error estimate; ``success`` False (with a reason) when not confident.
    singles : tuple of two RegistrationResult
        Each shot registered alone (diagnostics; a caller may fall back on them).
    source2_from_source1 : Pose
        The relative C-arm motion the shots were tied by.
    rotation_discrepancy_deg, translation_discrepancy_mm : float or None
        How far the joint optimum's relative motion differs from it (None without one).
    seconds : float
        Time of the whole pair (singles included).
    reason : str or None
        Why the pair was refused (None when both registered).
    """

    results: tuple
    singles: tuple
    source2_from_source1: Pose
    rotation_discrepancy_deg: float | None = None
    translation_discrepancy_mm: float | None = None
    seconds: float = 0.0
    reason: str | None = None
    stage_seconds: dict = field(default_factory=dict)

    @property
    def success(self) -> bool:
        """Both shots registered."""
        return all(r.success for r in self.results)

    def to_dicts(self) -> tuple[dict, dict]:
        """Two ``or_assist.registration/1`` documents, each with a ``"joint"`` object: which
        shot of the pair it is, its result alone, and the relative motion."""
        docs = []
        for i, (res, single) in enumerate(zip(self.results, self.singles)):
            doc = res.to_dict()
            doc["joint"] = {
                "shot": i + 1, "of": 2, "source2_from_source1": self.source2_from_source1.matrix.tolist(),
                "rotation_discrepancy_deg": None if self.rotation_discrepancy_deg is None
                else round(float(self.rotation_discrepancy_deg), 3),
                "translation_discrepancy_mm": None if self.translation_discrepancy_mm is None
                else round(float(self.translation_discrepancy_mm), 3),
                "alone": {"success": bool(single.success), "reason": single.reason,
                          "similarity": float(single.similarity) if np.isfinite(single.similarity) else None,
                          "estimated_error_mm": None if single.estimated_error_mm is None
                          else round(float(single.estimated_error_mm), 3)}}
            docs.append(doc)
        return docs[0], docs[1]
