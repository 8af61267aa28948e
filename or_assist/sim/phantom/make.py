"""The built-in sample data: a deterministic synthetic pelvis CT with analytic anatomy.

:func:`make_phantom` voxelises an adult pelvis in Hounsfield units (L4, L5, a sacrum with
S1-S5 bodies, alae, anterior and dorsal foramina and the canal, both hip bones with
cortical shell and cancellous interior, ear-shaped SI joints with a joint space, femoral
heads in their acetabula, a body outline with fat and muscle, bowel and some gas), with a
label volume (:data:`LABELS`). The geometry is analytic, so :func:`phantom_landmarks` and
:func:`phantom_implant_targets` give the anatomy and three clinically placed SIJF
implants per side in the same LPS frame. :func:`sample_ct_path` writes the CT once as
NIfTI and reuses it while the generator is unchanged.

Frame: LPS mm (x patient left, y posterior, z superior), identity direction; S1's body
centre is the origin. Shapes live in ``phantom_csg`` (implicit-shape kernel),
``phantom_spine``, ``phantom_pelvis`` and ``phantom_soft``; voxelisation in
``phantom_build``; landmarks and implants in ``phantom_anatomy``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from or_assist.core.validate import check_number, is_integer
from or_assist.errors import InputError
from or_assist.sim.phantom.anatomy import implant_targets, landmarks
from or_assist.sim.phantom.build import LABELS, grid_axes, paint_phantom

__all__ = [
    "PHANTOM_SPACING_MM",
    "LABELS",
    "PhantomVolume",
    "make_phantom",
    "phantom_landmarks",
    "phantom_implant_targets",
    "sample_ct_path",
    "generator_version",
    "render_preview_png",
]

PHANTOM_SPACING_MM = 1.5
_SPACING_RANGE_MM = (1.0, 6.0)
_CACHE_SCHEMA = "or_assist.phantom_cache/1"
_CACHE_NAME = "phantom_pelvis_ct"


@dataclass(frozen=True, eq=False, repr=False)
class PhantomVolume:
    """The voxelised phantom.

    Attributes
    ----------
    hu : (Z, Y, X) float32 array
        Hounsfield units (air outside the body exactly -1000).
    labels : (Z, Y, X) uint8 array
        Tissue label ids, see :data:`LABELS`.
    origin_mm : (3,) float64 array
        LPS position (mm) of the centre of voxel (0, 0, 0).
    spacing_mm : (3,) float64 array
        Voxel size (mm) along x, y, z.
    direction : (3, 3) float64 array
        Identity: index axes i, j, k point to patient left, posterior, superior.
    """

    hu: np.ndarray
    labels: np.ndarray
    origin_mm: np.ndarray
    spacing_mm: np.ndarray
    direction: np.ndarray

    def __repr__(self) -> str:
        z, y, x = self.hu.shape
        return (f"PhantomVolume({x} x {y} x {z} voxels, spacing {self.spacing_mm[0]:g} mm, "
                f"origin {np.round(self.origin_mm, 2).tolist()} mm, HU {self.hu.min():g}..{self.hu.max():g})")

    def lps_to_index(self, points_mm) -> np.ndarray:
        """Continuous voxel index (i, j, k) of LPS points ``(N, 3)`` mm."""
        p = np.asarray(points_mm, np.float64).reshape(-1, 3)
        return (p - self.origin_mm) / self.spacing_mm

    def label_at(self, points_mm) -> np.ndarray:
        """Label id of the voxel containing each point ``(N, 3)`` (0 outside the volume)."""
        ijk = np.rint(self.lps_to_index(points_mm)).astype(np.int64)
        shape_xyz = np.array(self.labels.shape[::-1])
        ok = np.all((ijk >= 0) & (ijk < shape_xyz), axis=1)
        out = np.zeros(len(ijk), np.uint8)
        i, j, k = ijk[ok].T
        out[ok] = self.labels[k, j, i]
        return out

    def to_ct(self, source: str = "phantom"):
        """The HU as a :class:`~or_assist.core.ct.volume.CTVolume` (shares the voxels)."""
        from or_assist.core.ct.volume import CTVolume
        return CTVolume(self.hu, self.origin_mm, self.spacing_mm, self.direction, source=source)


def _check_args(spacing_mm, seed) -> tuple[float, int]:
    lo, hi = _SPACING_RANGE_MM
    check_number(spacing_mm, "spacing_mm", lo, hi, expected=f"a number from {lo:g} to {hi:g} mm")
    if not is_integer(seed) or seed < 0:
        raise InputError(f"must be a non-negative integer, got {seed!r}", "seed")
    return float(spacing_mm), int(seed)


def make_phantom(spacing_mm: float = PHANTOM_SPACING_MM, seed: int = 0) -> PhantomVolume:
    """Generate the synthetic pelvis CT.

    Parameters
    ----------
    spacing_mm : float
        Isotropic voxel size, 1 to 6 mm (default 1.5: 253 x 176 x 168 voxels).
    seed : int
        Seed of the texture noise; the anatomy does not depend on it. The same arguments
        give bit-identical volumes.

    Returns
    -------
    PhantomVolume

    Raises
    ------
    InputError
        ``spacing_mm`` or ``seed`` out of range.
    """
    spacing_mm, seed = _check_args(spacing_mm, seed)
    hu, labels = paint_phantom(spacing_mm, seed)
    xs, ys, zs = grid_axes(spacing_mm)
    return PhantomVolume(hu=hu, labels=labels, origin_mm=np.array([xs[0], ys[0], zs[0]], np.float64),
                         spacing_mm=np.full(3, spacing_mm), direction=np.eye(3))


def _check_side(side) -> str:
    if side not in ("left", "right"):
        raise InputError(f"must be 'left' or 'right', got {side!r}", "side")
    return side


def phantom_landmarks() -> list[dict]:
    """Analytic landmarks of the phantom's anatomy (LPS mm).

    Returns
    -------
    list of dict
        ``{"name", "kind", "side", "position_lps_mm": [x, y, z], "radius_mm"}``. Kinds:
        ``s1_foramen``, ``s2_foramen`` (each side: the point of the anterior foramen's
        channel axis nearest that side's implants of the level; radius = channel radius),
        ``spinal_canal`` (centre at S1 and at S2; radius = the canal's half-width),
        ``sacral_promontory``, ``alar_line`` (three points on the anterior-superior edge
        of each ala), ``s1_endplate_posterior``, ``s2_anterior_body`` (points on the bone
        surface, radius 0) and ``si_joint`` (three points on each joint's mid-surface in
        the articular region; radius = half the joint space).
    """
    return landmarks()


def phantom_implant_targets(side: str = "left") -> list[dict]:
    """Three clinically placed triangular implants on one side (two in S1, one in S2).

    Parameters
    ----------
    side : {'left', 'right'}

    Returns
    -------
    list of dict
        ``{"id": "L1".."L3" or "R1".."R3", "side", "level": "S1"/"S1"/"S2",
        "entry_lps_mm": [x, y, z] on the lateral iliac cortex, "apex_lps_mm": [x, y, z]
        in the sacrum, "length_mm": catalogue length (30-90 mm in 5 mm steps, equal to
        |apex - entry|), "inscribed_diameter_mm": 7.0}``. Each crosses the SI joint roughly
        perpendicular to it and stays >= 3 mm (surface to surface, circumradius 7 mm)
        from the foramina and the canal and from the other implants.
    """
    return implant_targets(_check_side(side))


# --------------------------------------------------------------------------- caching


def generator_version() -> str:
    """Identifies the generator: a digest of the phantom modules' source code."""
    h = hashlib.sha256()
    for name in sorted(p.name for p in Path(__file__).parent.glob("*.py")):
        h.update(name.encode())
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:16]


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _default_cache_dir() -> Path:
    repo = Path(__file__).resolve().parents[3]
    if (repo / "pyproject.toml").is_file():
        sample = repo / "sample_data"
        try:
            sample.mkdir(exist_ok=True)
        except OSError:
            pass
        if sample.is_dir() and os.access(sample, os.W_OK):
            return sample
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "or_assist"


def _cache_is_valid(nii: Path, meta: Path, expected: dict) -> bool:
    from or_assist.core.jsonio import read_json
    if not nii.is_file() or not meta.is_file():
        return False
    try:
        doc = read_json(meta, _CACHE_SCHEMA)
    except InputError:
        return False
    if any(doc.get(k) != v for k, v in expected.items()):
        return False
    return doc.get("sha256") == _file_sha256(nii)


def sample_ct_path(cache_dir: str | os.PathLike | None = None, *, force: bool = False) -> Path:
    """The phantom CT as a NIfTI file (HU as int16), generated once and cached.

    Parameters
    ----------
    cache_dir : path-like, optional
        Where to keep it. Default: the repository's ``sample_data/`` when running from a
        source checkout and writable, else ``$XDG_CACHE_HOME/or_assist`` (``~/.cache``).
    force : bool
        Regenerate even if a valid cached file exists.

    Returns
    -------
    pathlib.Path
        ``<cache_dir>/phantom_pelvis_ct.nii.gz``. A sidecar ``phantom_pelvis_ct.json``
        records the generator version, the parameters and the file's SHA-256; the file
        is regenerated when any of them does not match.

    Raises
    ------
    InputError
        ``cache_dir`` cannot be created or written.
    """
    from or_assist.core.ct.load import save_ct
    from or_assist.core.ct.volume import CTVolume
    from or_assist.core.jsonio import write_json

    folder = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder {folder} ({exc.strerror or exc})", "cache_dir") from None
    if not os.access(folder, os.W_OK):
        raise InputError(f"folder {folder} is not writable", "cache_dir")
    nii, meta = folder / f"{_CACHE_NAME}.nii.gz", folder / f"{_CACHE_NAME}.json"
    expected = {"generator_version": generator_version(), "spacing_mm": PHANTOM_SPACING_MM, "seed": 0}
    if not force and _cache_is_valid(nii, meta, expected):
        return nii
    vol = make_phantom(PHANTOM_SPACING_MM, 0)
    # whole HU, so that save_ct writes int16
    ct = CTVolume(np.rint(vol.hu), vol.origin_mm, vol.spacing_mm, vol.direction, source=str(nii))
    tmp = folder / f".{_CACHE_NAME}.{os.getpid()}.tmp.nii.gz"
    try:
        try:
            save_ct(ct, tmp)
        except InputError as exc:   # name the file the user asked for, not the temporary one
            if exc.source != str(tmp):
                raise
            raise InputError(str(exc)[len(exc.source) + 2:], str(nii)) from None
        digest = _file_sha256(tmp)
        os.replace(tmp, nii)
    finally:
        if tmp.exists():
            tmp.unlink()
    write_json(meta, {"schema": _CACHE_SCHEMA, **expected, "sha256": digest,
                      "shape_zyx": list(vol.hu.shape), "labels": LABELS})
    return nii


def render_preview_png(path: str | os.PathLike, spacing_mm: float = 3.0) -> Path:
    """Write a quick preview (AP and lateral parallel projections side by side) as a PNG.

    Bone is dark, as on a C-arm monitor; one image pixel is 1 mm. A coarse ``spacing_mm``
    keeps it under a second.

    Returns
    -------
    pathlib.Path
        The PNG written (8-bit grayscale).
    """
    import cv2

    vol = make_phantom(spacing_mm)
    mu = 0.02 * np.clip(1.0 + vol.hu / 1000.0, 0.0, None) + 0.016 * np.clip(vol.hu - 100.0, 0.0, None) / 1000.0
    views = [mu.sum(axis=1)[::-1], mu.sum(axis=2)[::-1]]
    tiles = []
    for p in views:
        lo, hi = np.percentile(p, [1.0, 99.5])
        tiles.append((255 * (1.0 - np.clip((p - lo) / (hi - lo + 1e-9), 0.0, 1.0))).astype(np.uint8))
    image = np.hstack(tiles)
    scale = float(vol.spacing_mm[0])
    image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                       interpolation=cv2.INTER_LINEAR)
    from or_assist.core.outputs import write_image

    return write_image(Path(path), image, what="the preview PNG")
