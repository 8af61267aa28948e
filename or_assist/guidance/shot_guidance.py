"""One registered shot's guidance: the pin found near the plan, its 2-D deviation and cue.

The per-shot steps shared by the OR display's live pipeline
(:mod:`or_assist.live.pipeline`) and ``or-assist pin`` (:mod:`or_assist.guidance.pin_files`):
the usable pixels of the preprocessed shot (field of view eroded by 3 px, burnt-in text
left out), the planned axis as the detector's prior, :func:`~or_assist.guidance.pin.detect_pin`,
:func:`~or_assist.guidance.deviation.shot_deviation` and
:func:`~or_assist.guidance.cues.shot_cue`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from or_assist.core.pose import Pose

__all__ = ["ShotGuidance", "usable_pixels", "axis_in_field", "guide_shot"]


@dataclass
class ShotGuidance:
    """What :func:`guide_shot` found.

    Attributes
    ----------
    valid_mask : (H, W) bool ndarray
        The pixels the detector used.
    prior : PinPrior
        The planned axis in the image.
    axis_in_field : bool
        Whether the planned axis crosses the usable pixels at all (when not, nothing
        was searched).
    detection : PinDetection or None
    deviation : ShotDeviation or None
    cue : Cue or None
    """

    valid_mask: np.ndarray
    prior: object
    axis_in_field: bool
    detection: object = None
    deviation: object = None
    cue: object = None

    @property
    def problem(self) -> str | None:
        """Why there is no deviation, in words for the OR (None when there is one)."""
        if not self.axis_in_field:
            return "the planned axis is outside the field of view: centre the C-arm on the planned trajectory"
        if self.detection is None:
            return "no guide pin detected near the planned trajectory"
        return None

    @property
    def tip_message(self) -> str | None:
        """What the OR is told when the pin was found but its tip not seen (None otherwise)."""
        det = self.detection
        if det is None or det.tip_seen:
            return None
        if det.tip_at_border:
            return "pin tip at the edge of the image: centre the C-arm on it"
        return f"pin tip not seen ({det.tip_problem}): no depth cue"


def usable_pixels(pre) -> np.ndarray:
    """(H, W) bool: the preprocessed shot's field of view eroded by 3 px, text left out."""
    return pre.fov.mask_u8(pre.image.shape, erode_px=3.0).astype(bool) & ~pre.text_mask


def axis_in_field(prior, valid: np.ndarray) -> bool:
    """Whether any of 21 points along the prior's entry-apex segment is a usable pixel."""
    h, w = valid.shape
    for f in np.linspace(0.0, 1.0, 21):
        u, v = prior.entry_px + f * (prior.apex_px - prior.entry_px)
        if 0 <= u < w and 0 <= v < h and valid[int(v), int(u)]:
            return True
    return False


def guide_shot(pre, implant, pose: Pose, landmarks=None, thresholds=None) -> ShotGuidance:
    """Find the pin of ``implant`` in a registered, preprocessed shot and judge it.

    Parameters
    ----------
    pre : PreprocessedShot
        From :func:`or_assist.video.preprocess.shot.preprocess_shot`.
    implant : Implant
    pose : Pose
        The shot's registered (or known) pose, ``T_source_from_patient``.
    landmarks : sequence of Landmark, optional
        The plan's, for the cue's safety warnings.
    thresholds : CueThresholds, optional

    Returns
    -------
    ShotGuidance

    Raises
    ------
    InputError
        The implant's axis does not project into the image (e.g. behind the source).
    """
    from or_assist.guidance.cues import shot_cue
    from or_assist.guidance.deviation import shot_deviation
    from or_assist.guidance.pin import PinPrior, detect_pin

    valid = usable_pixels(pre)
    prior = PinPrior.from_implant(implant, pose, pre.geometry)
    out = ShotGuidance(valid, prior, axis_in_field(prior, valid))
    if not out.axis_in_field:
        return out
    out.detection = detect_pin(pre.image, pre.geometry, valid_mask=valid, prior=prior)
    if out.detection is None:
        return out
    out.deviation = shot_deviation(out.detection, implant, pose, pre.geometry)
    out.cue = shot_cue(out.deviation, implant, pose=pose, geometry=pre.geometry, landmarks=landmarks,
                       thresholds=thresholds)
    return out
