"""New-shot detection: one event per new fluoroscopy exposure in a last-image-hold stream.

A C-arm's video output shows the last image until the next exposure (last-image-hold,
LIH) and, during continuous (live) fluoroscopy, a new noisy exposure every frame. A
frame grabber adds its own small noise to every frame, and the C-arm draws overlays
(a clock, a radiation-on symbol) that change on their own. :class:`ShotDetector`
reports a :class:`ShotEvent` once per *held* new image, as soon as that image has been
stable for ``stable_frames`` frame comparisons (default 1, so the event comes on the
frame after the new image first appears: one frame of latency).

How a frame is compared
-----------------------
1. **Work image**: the grey frame binned by area to about ``work_width_px`` columns
   (160 by default: 1280 x 720 becomes 160 x 90) and blurred with a Gaussian of
   ``blur_sigma_px`` work pixels. Binning and blur average the grabber's pixel noise
   away while any new exposure's quantum noise, which is correlated over detector
   pixels, survives.
2. **Blocks**: the work image is cut into ``block_px`` x ``block_px`` blocks. A block
   takes part when it lies in the field of view (``fov_mask`` when given: at least 90 %
   inside; else: its mean is more than ``dark_margin_grey`` above the darkest 5 % of
   blocks in either image, so the black surround is left out) and does not touch an ignored region (the four
   frame corners of ``corner_fraction``, where C-arms draw their text and clock, and
   ``ignore_mask`` such as a detected text mask).
3. **Difference** ``D(a, b)``: the median, over the blocks taking part, of each block's
   mean absolute difference after removing the global offset (the median signed
   difference, i.e. a grabber's brightness flicker). The median ignores blocks changed
   by an overlay (a clock anywhere in the picture changes a few blocks of about a
   hundred; a box over less than half of the field changes less than half of them); a
   new exposure changes every block (fresh quantum noise). Unit: grey levels of the
   work image.

Decisions
---------
* **Noise level** ``n``: the median of ``D(frame, previous frame)`` over the last
  ``noise_history_frames`` frames judged stable (at least three; before that
  ``initial_noise_grey``), never below ``min_noise_grey``. Only stable frames feed it,
  so live fluoroscopy cannot raise it, and a stable frame's ``D`` is at most
  ``stable_factor * n``, so it can only grow slowly.
* **Stable**: ``D(frame, previous) <= stable_factor * n``. Live fluoroscopy, where every
  frame is a new exposure, is far above this (measured on simulated shots: consecutive
  live frames differ by 8-40 times ``n``), so it never counts as stable and gives no event until
  the image holds.
* **New shot**: after ``stable_frames`` consecutive stable comparisons, the frame is
  compared with the image of the last event: ``D(frame, last) > change_factor * n``
  (or no event yet) fires one event; the run of stable frames then fires no more. A
  transition from live to hold fires once, for the held image.

**Stills**: a frame whose source knows its exposures (``Frame.exposure`` set, a folder
of stills) needs no hold: a frame with a new exposure number fires at once, unless it
shows no image or the same image as the last event (``D`` at most ``change_factor * n``
and no block differing by more than ``dark_margin_grey``: a pin moved on an otherwise
identical, noise-free image still counts as new). Frames repeating the exposure number
are held frames and feed the noise level as usual.

**No image**: when fewer than ``min_active_blocks`` blocks, or fewer than
``min_field_fraction`` of the blocks taking part, are brighter than the black level in
either image (a black screen, perhaps with a clock on it), the frame shows no image: it
gives no event and interrupts a stable run. The same image coming back after a black
screen is not new.

Measured (``benchmarks/shot_detection.py``, a simulated 10-minute session, 1280 x 720 at
25 fps): grabber noise of 1.2 grey levels gives ``n`` of about 0.1, consecutive live
frames 0.8-2, and a new shot 5-30; about 1 ms per frame.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from or_assist.errors import InputError
from or_assist.video.shot_settings import ShotDetectorSettings

__all__ = ["ShotDetectorSettings", "ShotEvent", "ShotDetector"]

_EPS_GREY = 1e-3  # slack on the thresholds for a noise-free (digital) stream


@dataclass(frozen=True, eq=False)
class ShotEvent:
    """A new held fluoroscopy image.

    Attributes
    ----------
    index : int
        Frame index (``Frame.index``) at which the event fired.
    timestamp_s : float
        That frame's ``timestamp_s``.
    source_time_s : float or None
        That frame's ``source_time_s``.
    exposure_number : int
        1 for the first event of this detector, then 2, 3, ...
    image : (H, W) uint8 ndarray
        The held image (the frame that fired).
    stable_since_index : int
        Index of the first frame of the stable run (the new image's first frame).
    difference_grey : float
        ``D`` between the new image and the last reported one (inf for the first).
    noise_grey : float
        The noise level at the time (both in work-image grey levels).
    kind : str
        ``'hold'``: a held image (the only kind this detector reports).
    """

    index: int
    timestamp_s: float
    source_time_s: float | None
    exposure_number: int
    image: np.ndarray
    stable_since_index: int
    difference_grey: float
    noise_grey: float
    kind: str = "hold"


class ShotDetector:
    """Detects new held images frame by frame (see the module docstring).

    Parameters
    ----------
    settings : ShotDetectorSettings, optional

    Examples
    --------
    >>> detector = ShotDetector()                                            # doctest: +SKIP
    >>> for frame in frames:                                                 # doctest: +SKIP
    ...     event = detector.update(frame, fov_mask=fov)
    ...     if event is not None:
    ...         register(event.image)
    """

    def __init__(self, settings: ShotDetectorSettings | None = None):
        settings = ShotDetectorSettings() if settings is None else settings
        if not isinstance(settings, ShotDetectorSettings):
            raise InputError(f"expected ShotDetectorSettings, got {type(settings).__name__}", "settings")
        self.settings = settings
        self._mask_cache: tuple | None = None
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next held image is reported as new."""
        self._shape: tuple[int, int] | None = None
        self._prev: np.ndarray | None = None
        self._ref: np.ndarray | None = None
        self._stable_run = 0
        self._run_start = 0
        self._fired_in_run = False
        self._history: deque[float] = deque(maxlen=self.settings.noise_history_frames)
        self._events = 0
        self._exposure: int | None = None
        self.last_difference_grey: float | None = None

    @property
    def noise_grey(self) -> float:
        """The current noise level ``n`` (work-image grey levels)."""
        s = self.settings
        if len(self._history) < 3:
            return s.initial_noise_grey
        return max(s.min_noise_grey, float(np.median(np.fromiter(self._history, float))))

    @property
    def event_count(self) -> int:
        """Events reported since the last :meth:`reset`."""
        return self._events

    def update(self, frame, fov_mask: np.ndarray | None = None,
               ignore_mask: np.ndarray | None = None) -> ShotEvent | None:
        """Feed the next frame; returns a :class:`ShotEvent` when a new image has settled.

        Parameters
        ----------
        frame : Frame
            From a :class:`~or_assist.video.sources.base.FrameSource` (grey ``uint8``
            image, or BGR which is converted).
        fov_mask : (H, W) bool ndarray, optional
            The collimated field (e.g. from the preprocessing); default: found from
            brightness.
        ignore_mask : (H, W) bool ndarray, optional
            Pixels to ignore besides the corners (burnt-in text, overlays).

        Returns
        -------
        ShotEvent or None
        """
        image = _frame_image(frame)
        work = self._work_image(image)
        exposure = getattr(frame, "exposure", None)
        if self._shape != image.shape:  # first frame, or the video mode changed
            self.reset()
            self._shape = image.shape
            self._prev = work
            self._run_start = int(frame.index)
            if exposure is None:
                return None
        allowed = self._allowed_blocks(image.shape, work.shape, fov_mask, ignore_mask)
        if exposure is not None and exposure != self._exposure:
            return self._still(frame, image, work, allowed, fov_mask is not None, int(exposure))
        d = self._difference(work, self._prev, allowed, fov_mask is not None)
        self.last_difference_grey = d
        self._prev = work
        noise = self.noise_grey
        if d is not None and d <= self.settings.stable_factor * noise + _EPS_GREY:
            self._stable_run += 1
            self._history.append(d)
        else:
            self._stable_run = 0
            self._run_start = int(frame.index)
            self._fired_in_run = False
        if d is None or self._fired_in_run or self._stable_run < self.settings.stable_frames:
            return None
        change = math.inf if self._ref is None else \
            self._difference(work, self._ref, allowed, fov_mask is not None)
        if change is None or change <= self.settings.change_factor * noise + _EPS_GREY:
            return None
        self._fired_in_run = True
        self._ref = work
        self._events += 1
        return ShotEvent(index=int(frame.index), timestamp_s=float(frame.timestamp_s),
                         source_time_s=getattr(frame, "source_time_s", None),
                         exposure_number=self._events, image=image, stable_since_index=self._run_start,
                         difference_grey=float(change), noise_grey=float(noise))

    # ------------------------------------------------------------------ internals
    def _still(self, frame, image: np.ndarray, work: np.ndarray, allowed: np.ndarray, have_fov: bool,
               exposure: int) -> ShotEvent | None:
        """A frame that starts a new exposure of a source that knows its exposures (module doc)."""
        s = self.settings
        self._exposure = exposure
        d = None if self._prev is work else self._difference(work, self._prev, allowed, have_fov)
        self.last_difference_grey = d
        self._prev = work
        self._stable_run = 0
        self._run_start = int(frame.index)
        self._fired_in_run = False
        noise = self.noise_grey
        if self._difference(work, work, allowed, have_fov) is None:  # no picture on this still
            return None
        if self._ref is None:
            change = math.inf
        else:
            got = self._difference(work, self._ref, allowed, have_fov, top=True)
            if got is None:
                return None
            change, top = got
            if change <= s.change_factor * noise + _EPS_GREY and top <= s.dark_margin_grey:
                return None  # the same image again
        self._fired_in_run = True
        self._ref = work
        self._events += 1
        return ShotEvent(index=int(frame.index), timestamp_s=float(frame.timestamp_s),
                         source_time_s=getattr(frame, "source_time_s", None),
                         exposure_number=self._events, image=image, stable_since_index=int(frame.index),
                         difference_grey=float(change), noise_grey=float(noise))

    def _work_image(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape
        f = max(1, int(round(w / self.settings.work_width_px)))
        size = (max(1, w // f), max(1, h // f))
        work = cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.float32) \
            if f > 1 else image.astype(np.float32)
        sigma = self.settings.blur_sigma_px
        if sigma > 0:
            work = cv2.GaussianBlur(work, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        return work

    def _allowed_blocks(self, frame_shape, work_shape, fov_mask, ignore_mask) -> np.ndarray:
        """(nby, nbx) float32: 1 for blocks that may take part, 0 for ignored ones;
        with a ``fov_mask``, the share of each block inside the field instead of 1."""
        key = (frame_shape, work_shape, id(fov_mask), id(ignore_mask))
        if self._mask_cache is not None and self._mask_cache[0] == key and \
                self._mask_cache[1] is fov_mask and self._mask_cache[2] is ignore_mask:
            return self._mask_cache[3]
        b = self.settings.block_px
        hw, ww = work_shape
        nby, nbx = hw // b, ww // b
        if nby == 0 or nbx == 0:
            raise InputError(f"frame {frame_shape[1]} x {frame_shape[0]} px is too small for blocks of "
                             f"{b} work pixels; lower block_px or raise work_width_px", "frame")
        cy = (np.arange(nby) + 0.5) / nby
        cx = (np.arange(nbx) + 0.5) / nbx
        fw, fh = self.settings.corner_fraction
        near_x = (cx < fw) | (cx > 1.0 - fw)
        near_y = (cy < fh) | (cy > 1.0 - fh)
        allowed = (~(near_y[:, None] & near_x[None, :])).astype(np.float32)
        if fov_mask is not None:
            allowed *= self._block_share(_mask(fov_mask, frame_shape, "fov_mask"), work_shape)
        if ignore_mask is not None:
            allowed[self._block_share(_mask(ignore_mask, frame_shape, "ignore_mask"), work_shape) > 0] = 0.0
        self._mask_cache = (key, fov_mask, ignore_mask, allowed)
        return allowed

    def _block_share(self, mask: np.ndarray, work_shape) -> np.ndarray:
        hw, ww = work_shape
        small = cv2.resize(mask.astype(np.float32), (ww, hw), interpolation=cv2.INTER_AREA)
        return _block_mean(small, self.settings.block_px)

    def _difference(self, a: np.ndarray, b: np.ndarray, allowed: np.ndarray, have_fov: bool, top: bool = False):
        """``D(a, b)`` (module doc) or None when fewer than ``min_active_blocks`` take part;
        with ``top``, ``(D, the largest block difference)``."""
        s = self.settings
        ma, mb = _block_mean(a, s.block_px), _block_mean(b, s.block_px)
        dark = float(np.percentile(np.minimum(ma, mb), 5.0)) + s.dark_margin_grey
        bright = (allowed > 0) & (np.maximum(ma, mb) > dark)
        active = allowed >= 0.9 if have_fov else bright
        needed = max(s.min_active_blocks, s.min_field_fraction * float(np.count_nonzero(allowed > 0)))
        if np.count_nonzero(active & bright) < needed:  # no picture in either image
            return None
        b_ = s.block_px
        diff = a - b
        crop = diff[:active.shape[0] * b_, :active.shape[1] * b_]
        pixels = np.repeat(np.repeat(active, b_, axis=0), b_, axis=1)
        offset = float(np.median(crop[pixels]))
        per_block = _block_mean(np.abs(crop - np.float32(offset)), b_)
        values = per_block[active]
        if top:
            return float(np.median(values)), float(values.max())
        return float(np.median(values))


def _block_mean(image: np.ndarray, block: int) -> np.ndarray:
    h, w = image.shape[0] // block, image.shape[1] // block
    return image[:h * block, :w * block].reshape(h, block, w, block).mean(axis=(1, 3), dtype=np.float32)


def _frame_image(frame) -> np.ndarray:
    image = getattr(frame, "image", None)
    if not isinstance(image, np.ndarray) or not hasattr(frame, "index") or not hasattr(frame, "timestamp_s"):
        raise InputError(f"expected a Frame (image, index, timestamp_s), got {type(frame).__name__}", "frame")
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise InputError(f"image must be (H, W) or (H, W, 3) uint8, got {image.shape} {image.dtype}", "frame")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    return image


def _mask(mask, frame_shape, name: str) -> np.ndarray:
    if not isinstance(mask, np.ndarray) or mask.shape != tuple(frame_shape[:2]):
        shape = getattr(mask, "shape", type(mask).__name__)
        raise InputError(f"must be a bool array of the frame's shape {tuple(frame_shape[:2])}, got {shape}", name)
    return mask.astype(bool, copy=False)
