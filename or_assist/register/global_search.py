"""A global stage before the 3-D search: rotation hypotheses, in-plane shift by masked NCC.

From ±15 mm / ±10 deg the start sees little of the basin on cluttered shots (the 32-px
similarity at the start is about zero), and a local CMA-ES from there finds a wrong
optimum. This stage searches the in-plane part of the pose exhaustively, at the cost of
a few DRRs:

1. **Out-of-plane hypotheses**: the start rotated about the isocentre by a grid of
   ``(rx, ry)`` (:attr:`GlobalSearch.tilts_deg`), one DRR each, rendered over the shot's
   level widened by the largest shift on every side (``max_shift_mm`` at the isocentre).
2. **In-plane rotation** (about the central ray, ``rz``) needs no DRR: the DRR is
   rotated about the principal point (:attr:`GlobalSearch.rolls_deg`).
3. **In-plane shift**: masked normalised cross-correlation (what OpenCV's ``matchTemplate``
   with ``TM_CCOEFF_NORMED`` and the shot's mask computes, here by FFT for all rolls of a
   DRR at once: :func:`ncc_maps`) over every shift of the widened DRR, refined to sub-pixel
   by a parabola.

What is correlated (:attr:`GlobalSearch.compare`):

- ``"gc"`` (default): the signed image gradients, each direction on its own and the two
  maps averaged: at every shift this is the first CMA-ES stage's own gradient correlation
  (:mod:`or_assist.register.similarity`), so the hypotheses are ranked by what the search
  then climbs. On 16 low-dose and cluttered inlets / outlets of diagnosis seed 19 (real CT,
  starts +-15 mm / +-10 deg) the best hypothesis lay within 3 deg and 5 mm (in-plane, at
  the isocentre) of the truth in 15 of 16, against 5 of 16 with ``"edges"`` (on its first
  grid, 5 x 5 tilts of 4 deg); on fresh seed
  34 (24 shots of the four held-out families) in 19 of 24 against 4 of 24
  (``benchmarks/registration_global.py``, docs/registration_global_search.md).
- ``"edges"``: gradient magnitudes of the lightly blurred images, clipped at a high
  percentile of the shot's own so that metal and burnt-in objects the CT does not show
  cannot dominate, then square-rooted (the first version of this stage).

The best few distinct hypotheses become poses (:func:`~or_assist.register.init2d.pose_from_2d`)
and starts of the CMA-ES.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose
from or_assist.core.validate import check_integer, check_number
from or_assist.errors import InputError
from or_assist.register.init2d import Alignment2D, pose_from_2d, similarity_matrix
from or_assist.register.optimize import parabola_vertex
from or_assist.register.pose_params import apply_update, pose_error
from or_assist.register.similarity import gradients

__all__ = ["GlobalSearch", "GlobalCandidate", "COMPARE", "edge_image", "match_shift", "ncc_maps", "peak_shift",
           "global_candidates"]

#: What :func:`global_candidates` correlates (module doc).
COMPARE = ("gc", "edges")


@dataclass(frozen=True)
class GlobalSearch:
    """Settings of the global stage (module doc).

    Attributes
    ----------
    size_px : int
        Pyramid level the hypotheses are compared at.
    step_mm : float
        DRR ray step.
    tilts_deg : tuple of float
        Out-of-plane rotations tried about each of the two image axes (a grid: ``n**2`` DRRs).
        The gradient correlation's peak is a few degrees wide: on the 16 shots above a 4-deg
        grid put the best hypothesis in range in 12, a 2.5-deg one in 15. The default, 3 deg
        (49 DRRs), registered as well as 2.5 deg (81) on diagnosis seed 33 and lost fewer
        shots to the time budget (:data:`~or_assist.register.settings.GLOBAL_STARTS`).
    rolls_deg : tuple of float
        In-plane rotations tried per DRR (image rotations, no DRR).
    compare : {'gc', 'edges'}
        What is correlated (module doc).
    max_shift_mm : float
        Largest in-plane shift searched, at the isocentre.
    keep : int
        Distinct hypotheses returned, best first.
    border_px : int
        The shot's mask is eroded by this many pixels before it is compared (the pixels
        outside it are filled, and their edge would count).
    distinct_deg, distinct_mm : float
        Hypotheses closer than both of these (rotation, isocentre displacement) to a better
        one are the same hypothesis.
    """

    size_px: int = 32
    step_mm: float = 4.0
    tilts_deg: tuple = (-9.0, -6.0, -3.0, 0.0, 3.0, 6.0, 9.0)
    rolls_deg: tuple = (-9.0, -6.0, -3.0, 0.0, 3.0, 6.0, 9.0)
    compare: str = "gc"
    max_shift_mm: float = 25.0
    keep: int = 3
    border_px: int = 1
    distinct_deg: float = 3.0
    distinct_mm: float = 5.0

    def __post_init__(self):
        check_integer(self.size_px, "size_px", 16, 4096)
        check_number(self.step_mm, "step_mm", 0.0, 20.0, lo_open=True, unit="mm")
        check_number(self.max_shift_mm, "max_shift_mm", 0.0, 200.0, lo_open=True, unit="mm")
        for name in ("tilts_deg", "rolls_deg"):
            values = getattr(self, name)
            if len(values) == 0 or not all(isinstance(v, (int, float)) and abs(v) <= 45 for v in values):
                raise InputError(f"must be a non-empty tuple of angles within +-45 deg, got {values!r}", name)
        check_integer(self.keep, "keep", 1, 1000)
        if self.compare not in COMPARE:
            raise InputError(f"must be one of {', '.join(COMPARE)}, got {self.compare!r}", "compare")

    @property
    def n_renders(self) -> int:
        """DRRs one search renders."""
        return len(self.tilts_deg) ** 2


@dataclass(frozen=True)
class GlobalCandidate:
    """One hypothesis: the pose, its correlation and the in-plane part found."""

    pose: Pose
    score: float
    tilt_deg: tuple
    alignment: Alignment2D


def edge_image(image: np.ndarray, sigma_px: float, clip_at: float | None = None) -> np.ndarray:
    """Square root of the gradient magnitude of ``image`` blurred by ``sigma_px``, clipped at ``clip_at``.

    Parameters
    ----------
    image : (H, W) float array
    sigma_px : float
        Gaussian blur before the Sobel gradients.
    clip_at : float, optional
        Largest gradient magnitude kept (before the square root).

    Returns
    -------
    (H, W) float32 ndarray
    """
    img = cv2.GaussianBlur(np.asarray(image, dtype=np.float32), (0, 0), sigma_px)
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
    mag = cv2.magnitude(gx, gy)
    if clip_at is not None:
        mag = np.minimum(mag, np.float32(clip_at))
    return np.sqrt(mag)


def match_shift(wide, template, mask) -> tuple[float, float, float]:
    """Shift of ``template`` within ``wide`` by masked normalised cross-correlation.

    Parameters
    ----------
    wide : (N + 2m, N + 2m) float32 array, or a tuple of them
        The view's image widened by ``m`` pixels on every side (one per channel).
    template : (N, N) float32 array, or a tuple of them
        The shot's image (one per channel).
    mask : (N, N) bool array, or a tuple of them
        Template pixels compared (one per channel). With several channels the correlation
        maps are averaged.

    Returns
    -------
    shift_u_px, shift_v_px, score : float
        Where the view's content must move to lie on the shot's (``p_shot = p_view + shift``,
        sub-pixel), and the correlation there.
    """
    single = isinstance(wide, np.ndarray)
    wides, templates, masks = ((wide,), (template,), (mask,)) if single else (wide, template, mask)
    m = (wides[0].shape[0] - templates[0].shape[0]) // 2
    res = sum(ncc_maps(w[None], t, k)[0] for w, t, k in zip(wides, templates, masks)) / len(wides)
    return peak_shift(res, m)


def ncc_maps(wides: np.ndarray, template: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked normalised cross-correlation of ``template`` at every shift within each of ``wides``.

    The same as OpenCV's ``matchTemplate(..., TM_CCOEFF_NORMED, mask=mask)`` (the template's
    mean and norm over the mask, each window's over the mask's pixels), computed for a stack
    of images at once by FFT: the global stage correlates each DRR at every roll.

    Parameters
    ----------
    wides : (K, N, N) float array
        Images, each at least the template's size.
    template : (n, n) float array
    mask : (n, n) bool array
        Template pixels compared.

    Returns
    -------
    (K, N - n + 1, N - n + 1) float64 ndarray
        ``[k, y, x]``: the correlation with the template's corner at ``(x, y)`` of image
        ``k``; -1 where either is constant over the mask.
    """
    wides = np.asarray(wides, dtype=np.float64)
    return _MaskedTemplate(template, mask, wides.shape[-2:]).maps(wides)


class _MaskedTemplate:
    """A template and its mask, Fourier-transformed once for images of ``size`` (:func:`ncc_maps`)."""

    def __init__(self, template: np.ndarray, mask: np.ndarray, size: tuple):
        k = np.asarray(mask, dtype=bool)
        self.size = tuple(size)
        self.out = (self.size[0] - k.shape[0] + 1, self.size[1] - k.shape[1] + 1)
        self.n_px = int(k.sum())
        t = np.where(k, np.asarray(template, dtype=np.float64), 0.0)
        t = np.where(k, t - t.sum() / max(self.n_px, 1), 0.0)
        self.norm = math.sqrt(float((t * t).sum()))
        self.flat = self.n_px < 2 or self.norm <= 1e-12 * max(1.0, float(np.abs(template).max()))
        self.f_t = np.conj(np.fft.rfft2(t, s=self.size))
        self.f_k = np.conj(np.fft.rfft2(k.astype(np.float64), s=self.size))

    def _corr(self, f_images: np.ndarray, f_kernel: np.ndarray) -> np.ndarray:
        return np.fft.irfft2(f_images * f_kernel, s=self.size)[..., :self.out[0], :self.out[1]]

    def maps(self, wides: np.ndarray) -> np.ndarray:
        """(K, ...) correlation maps of the (K, N, N) ``wides`` (see :func:`ncc_maps`)."""
        wides = np.asarray(wides, dtype=np.float64)
        if self.flat:
            return np.full((len(wides),) + self.out, -1.0)
        f_w, f_w2 = np.fft.rfft2(wides), np.fft.rfft2(wides * wides)
        num, s1, s2 = self._corr(f_w, self.f_t), self._corr(f_w, self.f_k), self._corr(f_w2, self.f_k)
        var = s2 - s1 * s1 / self.n_px
        ok = var > 1e-12 * np.maximum(s2, 1e-300)
        return np.where(ok, num / (self.norm * np.sqrt(np.where(ok, var, 1.0))), -1.0)


def peak_shift(res: np.ndarray, m: int) -> tuple[float, float, float]:
    """The sub-pixel peak of a correlation map over shifts ``-m..m`` (``res[m, m]``: none).

    Returns
    -------
    shift_u_px, shift_v_px, score : float
        As :func:`match_shift`.
    """
    y, x = np.unravel_index(int(np.argmax(res)), res.shape)
    dx = _vertex_within_half(res[y, x - 1], res[y, x], res[y, x + 1]) if 0 < x < res.shape[1] - 1 else 0.0
    dy = _vertex_within_half(res[y - 1, x], res[y, x], res[y + 1, x]) if 0 < y < res.shape[0] - 1 else 0.0
    return m - (x + dx), m - (y + dy), float(res[y, x])


def _vertex_within_half(a: float, b: float, c: float) -> float:
    """:func:`~or_assist.register.optimize.parabola_vertex` about the peak sample ``b``,
    within +-0.5 (0 where the samples are not concave)."""
    vertex = parabola_vertex(a, b, c)
    return 0.0 if vertex is None else float(np.clip(vertex, -0.5, 0.5))


def global_candidates(render, image: np.ndarray, mask: np.ndarray, geometry: CArmGeometry, start: Pose,
                      center_source_mm: np.ndarray, search: GlobalSearch | None = None) -> list[GlobalCandidate]:
    """The best distinct in-plane hypotheses around ``start`` (module doc).

    Parameters
    ----------
    render : callable
        ``render(pose, geometry) -> (H, W) array``: the DRR (line integrals) at ``pose``
        with ``geometry``; may raise (the caller's time budget), and
        :class:`~or_assist.errors.InputError` for a pose that cannot be rendered (skipped).
    image, mask : (N, N) arrays
        The shot's level (attenuation-like) and its valid pixels.
    geometry : CArmGeometry
        Of the level's pixels.
    start : Pose
        The start pose.
    center_source_mm : (3,) array
        The isocentre in source coordinates (rotation centre of the hypotheses).
    search : GlobalSearch, optional

    Returns
    -------
    list of GlobalCandidate
        At most ``search.keep``, best correlation first (empty when no hypothesis
        could be rendered).
    """
    search = GlobalSearch() if search is None else search
    mask = np.asarray(mask, dtype=bool)
    if image.shape != mask.shape or image.shape != (geometry.height, geometry.width):
        raise InputError(f"image {image.shape} and mask {mask.shape} must have the geometry's shape "
                         f"{(geometry.height, geometry.width)}", "image")
    n = image.shape[0]
    sigma = max(0.7, n / 64.0)
    mm_per_px = geometry.pixel_spacing_mm[0] * geometry.source_to_isocenter_mm / geometry.sid_mm
    m = max(1, int(math.ceil(search.max_shift_mm / mm_per_px)))
    k = 2 * search.border_px + 1
    inner = cv2.erode(mask.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool) if search.border_px else mask
    size = (n + 2 * m, n + 2 * m)
    if search.compare == "gc":
        gu, gv, mu, mv = gradients(image, mask)
        templates = (_MaskedTemplate(gu, mu, size), _MaskedTemplate(gv, mv, size))
    else:
        raw = edge_image(image, sigma)
        clip = float(np.percentile(raw[inner] ** 2, 98)) if inner.any() else None
        templates = (_MaskedTemplate(edge_image(image, sigma, clip), inner, size),)
    wide_geometry = geometry.cropped(-m, -m, n + 2 * m, n + 2 * m)
    pp = np.asarray(wide_geometry.principal_point_px, dtype=np.float64)
    everywhere = np.ones(size, dtype=bool)
    # the DRR itself is turned (with the signed gradients, its gradients turn with it)
    border = cv2.BORDER_REPLICATE if search.compare == "gc" else cv2.BORDER_CONSTANT
    found = []
    for rx in search.tilts_deg:
        for ry in search.tilts_deg:
            hyp = apply_update(start, (rx, ry, 0.0, 0.0, 0.0, 0.0), center_source_mm)
            try:
                drr = np.asarray(render(hyp, wide_geometry), dtype=np.float32)
            except InputError:
                continue
            if search.compare == "edges":
                view_raw = edge_image(drr, sigma)
                core = drr[m:m + n, m:m + n]
                view_clip = float(np.percentile(edge_image(core, sigma)[inner] ** 2, 98)) if inner.any() else None
                drr = np.sqrt(np.minimum(view_raw ** 2, np.float32(view_clip))) if view_clip else view_raw
            turned = [cv2.warpAffine(drr, similarity_matrix(pp, roll, 1.0, (0.0, 0.0)), size,
                                     flags=cv2.INTER_LINEAR, borderMode=border) for roll in search.rolls_deg]
            if search.compare == "gc":
                grads = [gradients(t, everywhere)[:2] for t in turned]
                channels = [np.stack([g[c] for g in grads]) for c in (0, 1)]
            else:
                channels = [np.stack(turned)]
            maps = sum(t.maps(c) for t, c in zip(templates, channels)) / len(channels)
            for roll, res in zip(search.rolls_deg, maps):
                du, dv, score = peak_shift(res, m)
                found.append((score, (rx, ry), hyp, Alignment2D((float(du), float(dv)), float(roll), 1.0, score)))
    found.sort(key=lambda c: -c[0])
    kept: list[GlobalCandidate] = []
    for score, tilt, hyp, al in found:   # poses only for the few looked at
        cand = GlobalCandidate(pose_from_2d(hyp, al, geometry), score, tilt, al)
        if all(not _same(cand.pose, k.pose, center_source_mm, search) for k in kept):
            kept.append(cand)
        if len(kept) == search.keep:
            break
    return kept


def _same(a: Pose, b: Pose, center: np.ndarray, search: GlobalSearch) -> bool:
    angle, disp = pose_error(a, b, center)
    return angle < search.distinct_deg and float(np.linalg.norm(disp)) < search.distinct_mm
