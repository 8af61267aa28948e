"""Settings of the new-shot detector (:class:`~or_assist.video.shots.ShotDetector`; its module
doc explains each step)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from or_assist.core.validate import check_number
from or_assist.errors import InputError

__all__ = ["ShotDetectorSettings"]


def _setting(value, name: str, lo: float, hi: float, integer: bool = False):
    kind = "an integer" if integer else "a finite number"
    if integer and not isinstance(value, (int, np.integer)):
        raise InputError(f"must be {kind} from {lo:g} to {hi:g}, got {value!r}", name)
    checked = check_number(value, name, lo, hi, expected=f"{kind} from {lo:g} to {hi:g}")
    return int(value) if integer else checked


@dataclass(frozen=True)
class ShotDetectorSettings:
    """Parameters of :class:`~or_assist.video.shots.ShotDetector` (its module doc explains each step).

    Attributes
    ----------
    work_width_px : int
        Approximate width of the binned work image (16-1024; default 160).
    blur_sigma_px : float
        Gaussian blur of the work image, in work pixels (0-8; default 1).
    block_px : int
        Side of the comparison blocks in work pixels (2-64; default 8).
    corner_fraction : (float, float)
        Width and height of the ignored box in each frame corner, as fractions of the
        frame's width and height (each 0-0.5; default (0.2, 0.12)).
    dark_margin_grey : float
        Without a field-of-view mask, blocks brighter than the darkest 5 % of blocks by
        this many grey levels form the field (default 8).
    min_active_blocks : int
        With fewer blocks above the black level than this, or than
        ``min_field_fraction`` of the blocks taking part, a frame shows "no image"
        (default 6).
    min_field_fraction : float
        See ``min_active_blocks`` (0-1; default 0.1: a clock on a black screen is no image).
    initial_noise_grey : float
        Noise level assumed before three stable frames were seen (default 0.25 grey
        levels of the work image; a 1280 x 720 grabber with 1.2 grey levels of pixel
        noise measures about 0.05).
    min_noise_grey : float
        Floor of the noise level, for noise-free digital streams (default 0.02).
    noise_history_frames : int
        Stable frames whose differences make the noise level (default 100).
    stable_factor : float
        A frame is stable when it differs from the previous one by at most this many
        times the noise level (default 3).
    change_factor : float
        A stable image is new when it differs from the last reported one by more than
        this many times the noise level (default 6; must exceed ``stable_factor``).
    stable_frames : int
        Consecutive stable comparisons before an event (1-10; default 1, i.e. the event
        comes with the second frame of the new image).
    """

    work_width_px: int = 160
    blur_sigma_px: float = 1.0
    block_px: int = 8
    corner_fraction: tuple[float, float] = (0.2, 0.12)
    dark_margin_grey: float = 8.0
    min_active_blocks: int = 6
    min_field_fraction: float = 0.1
    initial_noise_grey: float = 0.25
    min_noise_grey: float = 0.02
    noise_history_frames: int = 100
    stable_factor: float = 3.0
    change_factor: float = 6.0
    stable_frames: int = 1

    def __post_init__(self):
        s = object.__setattr__
        s(self, "work_width_px", _setting(self.work_width_px, "work_width_px", 16, 1024, True))
        s(self, "blur_sigma_px", _setting(self.blur_sigma_px, "blur_sigma_px", 0.0, 8.0))
        s(self, "block_px", _setting(self.block_px, "block_px", 2, 64, True))
        try:
            cw, ch = self.corner_fraction
        except (TypeError, ValueError):
            raise InputError(f"must be two fractions (width, height), got {self.corner_fraction!r}",
                             "corner_fraction") from None
        s(self, "corner_fraction", (_setting(cw, "corner_fraction", 0.0, 0.5),
                                    _setting(ch, "corner_fraction", 0.0, 0.5)))
        s(self, "dark_margin_grey", _setting(self.dark_margin_grey, "dark_margin_grey", 0.0, 255.0))
        s(self, "min_active_blocks", _setting(self.min_active_blocks, "min_active_blocks", 1, 10000, True))
        s(self, "min_field_fraction", _setting(self.min_field_fraction, "min_field_fraction", 0.0, 1.0))
        s(self, "initial_noise_grey", _setting(self.initial_noise_grey, "initial_noise_grey", 1e-4, 50.0))
        s(self, "min_noise_grey", _setting(self.min_noise_grey, "min_noise_grey", 1e-4, 50.0))
        s(self, "noise_history_frames",
          _setting(self.noise_history_frames, "noise_history_frames", 3, 100000, True))
        s(self, "stable_factor", _setting(self.stable_factor, "stable_factor", 1.0, 100.0))
        s(self, "change_factor", _setting(self.change_factor, "change_factor", 1.0, 1000.0))
        if self.change_factor <= self.stable_factor:
            raise InputError(f"must be larger than stable_factor ({self.stable_factor:g}), got "
                             f"{self.change_factor:g}", "change_factor")
        s(self, "stable_frames", _setting(self.stable_frames, "stable_frames", 1, 10, True))
