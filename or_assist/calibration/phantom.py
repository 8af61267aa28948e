"""Bead calibration phantoms (``or_assist.bead_phantom/1``): definition, file, simulation volume.

A phantom is one or two parallel plates, each with a square grid of metal beads. Its
frame (mm): origin at the centre of the **detector-side** bead plane, +x and +y in that
plane, +z perpendicular to it, pointing **towards the detector** (along the beam), so
that a phantom lying on the detector cover appears in the image unmirrored, with +x and
+y turned by the same angle as +u and +v. A second plane (``z_mm < 0``) sits nearer the
source.

Each plane is a grid of ``grid_size = [nx, ny]`` (odd) beads at ``pitch_mm``, centred
on ``offset_mm``; grid cell ``(i, j)`` (``i = -(nx-1)/2 .. (nx-1)/2``, likewise ``j``)
holds a bead at ``(offset_x + i * pitch, offset_y + j * pitch, z_mm)`` unless it is
listed in ``missing``. The missing cells are the marker: an asymmetric pattern near the
centre that tells which bead is which under any in-plane rotation and reveals a mirrored
image. In a two-plane phantom the planes' bead diameters differ by a factor of at least
1.5 so that their projections can be told apart by size.

``plate_to_detector_mm`` is the distance along +z from the ``z = 0`` bead plane to the
detector's input surface when the phantom lies on the detector cover; with it the
calibration turns the measured source-to-plane distance into the SID.

Example (``calibration/phantoms/bead_grid_two_plane.json``, shortened)::

    {"schema": "or_assist.bead_phantom/1", "name": "bead_grid_two_plane",
     "material": "steel", "plate_to_detector_mm": 20.0,
     "planes": [
       {"name": "detector_side", "z_mm": 0.0, "pitch_mm": 10.0, "grid_size": [25, 25],
        "offset_mm": [0.0, 0.0], "bead_diameter_mm": 1.5,
        "missing": [[1, 1], [2, 1], [3, 1], [1, 2]]},
       {"name": "source_side", "z_mm": -100.0, ...}]}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from or_assist.core import jsonio
from or_assist.core.validate import check_positive
from or_assist.errors import InputError, SchemaError

__all__ = ["BEAD_PHANTOM_SCHEMA", "PHANTOM_DIR", "BeadPlane", "BeadPhantom", "load_bead_phantom",
           "bead_phantom_volume", "grid_symmetries"]

BEAD_PHANTOM_SCHEMA = "or_assist.bead_phantom/1"
PHANTOM_DIR = Path(__file__).resolve().parents[2] / "calibration" / "phantoms"

#: The 8 symmetries of the square lattice as 2 x 2 integer matrices; the first 4 are
#: rotations (det +1), the last 4 reflections (det -1).
_ROT = [np.array([[1, 0], [0, 1]]), np.array([[0, -1], [1, 0]]),
        np.array([[-1, 0], [0, -1]]), np.array([[0, 1], [-1, 0]])]
_SYMMETRIES = tuple(_ROT + [r @ np.array([[1, 0], [0, -1]]) for r in _ROT])
_MIN_SIZE_RATIO = 1.5


def grid_symmetries() -> tuple[np.ndarray, ...]:
    """The 8 lattice symmetries, (2, 2) int arrays: 4 rotations, then 4 reflections."""
    return _SYMMETRIES


@dataclass(frozen=True)
class BeadPlane:
    """One plane of beads (see the module doc for the fields)."""

    name: str
    z_mm: float
    pitch_mm: float
    grid_size: tuple[int, int]
    offset_mm: tuple[float, float]
    bead_diameter_mm: float
    missing: tuple[tuple[int, int], ...]

    @property
    def cells(self) -> np.ndarray:
        """(N, 2) int64 grid cells ``(i, j)`` that hold a bead, centre-relative."""
        hx, hy = (self.grid_size[0] - 1) // 2, (self.grid_size[1] - 1) // 2
        jj, ii = np.mgrid[-hy:hy + 1, -hx:hx + 1]
        cells = np.column_stack([ii.ravel(), jj.ravel()])
        gone = {tuple(m) for m in self.missing}
        keep = np.array([tuple(c) not in gone for c in cells.tolist()], dtype=bool)
        return cells[keep].astype(np.int64)

    def cell_positions_mm(self, cells: np.ndarray) -> np.ndarray:
        """(N, 3) float64 phantom-frame positions (mm) of grid cells (N, 2)."""
        c = np.asarray(cells, dtype=np.float64).reshape(-1, 2)
        xy = c * self.pitch_mm + np.asarray(self.offset_mm)
        return np.column_stack([xy, np.full(len(c), self.z_mm)])

    def contains(self, cells: np.ndarray) -> np.ndarray:
        """(N,) bool: the cells lie in the grid and are not missing."""
        c = np.asarray(cells).reshape(-1, 2)
        hx, hy = (self.grid_size[0] - 1) // 2, (self.grid_size[1] - 1) // 2
        inside = (np.abs(c[:, 0]) <= hx) & (np.abs(c[:, 1]) <= hy)
        gone = {tuple(m) for m in self.missing}
        return inside & np.array([tuple(x) not in gone for x in c.tolist()], dtype=bool)


@dataclass(frozen=True)
class BeadPhantom:
    """A bead calibration phantom (``or_assist.bead_phantom/1``).

    Attributes
    ----------
    name, description : str
    material : {"steel", "titanium"}
        Bead metal (for simulation).
    plate_to_detector_mm : float
        Distance along +z from the ``z = 0`` bead plane to the detector input surface
        when the phantom lies on the detector cover (> 0).
    planes : tuple of BeadPlane
        One or two planes, the first the detector-side one at ``z_mm = 0``.
    plate_thickness_mm : float
        PMMA plate around each bead plane (for simulation; 0 = none).
    source : str
        The file it came from (or ``"<memory>"``).
    """

    name: str
    description: str
    material: str
    plate_to_detector_mm: float
    planes: tuple[BeadPlane, ...]
    plate_thickness_mm: float = 3.0
    source: str = "<memory>"

    @property
    def is_planar(self) -> bool:
        """True for a single-plane phantom."""
        return len(self.planes) == 1

    @property
    def positions_mm(self) -> np.ndarray:
        """(N, 3) float64 positions of all beads, plane by plane, phantom frame, mm."""
        return np.concatenate([p.cell_positions_mm(p.cells) for p in self.planes])

    @property
    def plane_index(self) -> np.ndarray:
        """(N,) int64 plane of each bead of :attr:`positions_mm`."""
        return np.concatenate([np.full(len(p.cells), k, np.int64) for k, p in enumerate(self.planes)])

    @property
    def diameters_mm(self) -> np.ndarray:
        """(N,) float64 bead diameters (mm)."""
        return np.concatenate([np.full(len(p.cells), p.bead_diameter_mm) for p in self.planes])


def _plane(doc, where: str, k: int) -> BeadPlane:
    w = f"{where}: planes[{k}]"
    if not isinstance(doc, dict):
        raise SchemaError("must be an object", w)
    name = jsonio.field_str(doc, "name", w)
    z = jsonio.field_float(doc, "z_mm", w)
    pitch = jsonio.field_float(doc, "pitch_mm", w, positive=True)
    size = jsonio.field_array(doc, "grid_size", w, (2,))
    if np.any(size != np.round(size)) or np.any(size < 3) or np.any(size % 2 == 0):
        raise SchemaError(f"field 'grid_size' must be two odd integers >= 3, got {size.tolist()}", w)
    offset = jsonio.field_array(doc, "offset_mm", w, (2,), default=np.zeros(2))
    diameter = jsonio.field_float(doc, "bead_diameter_mm", w, positive=True)
    if diameter >= 0.7 * pitch:
        raise SchemaError(f"field 'bead_diameter_mm' ({diameter:g}) must be < 0.7 x pitch_mm "
                          f"({pitch:g}) so neighbouring beads stay apart", w)
    missing = jsonio.field_array(doc, "missing", w, (None, 2))
    hx, hy = (int(size[0]) - 1) // 2, (int(size[1]) - 1) // 2
    if np.any(missing != np.round(missing)) or np.any(np.abs(missing[:, 0]) > hx) \
            or np.any(np.abs(missing[:, 1]) > hy):
        raise SchemaError(f"field 'missing' must hold integer cells [i, j] inside the grid "
                          f"(|i| <= {hx}, |j| <= {hy})", w)
    cells = {tuple(int(v) for v in m) for m in missing}
    if len(cells) < 3:
        raise SchemaError("field 'missing' must list at least 3 distinct cells (the marker pattern)", w)
    pattern = np.array(sorted(cells))
    for t in _SYMMETRIES[1:]:
        moved = pattern @ t.T
        moved = moved - moved.min(axis=0) + pattern.min(axis=0)
        if {tuple(m) for m in moved.tolist()} == cells:
            raise SchemaError("field 'missing' must be an asymmetric pattern: it looks the same after "
                              "a rotation or reflection of the grid, so beads could be mislabelled", w)
    return BeadPlane(name, z, pitch, (int(size[0]), int(size[1])), (float(offset[0]), float(offset[1])),
                     diameter, tuple(sorted(cells)))


def load_bead_phantom(path: str | os.PathLike) -> BeadPhantom:
    """Read an ``or_assist.bead_phantom/1`` file (a name looks in ``calibration/phantoms``).

    Parameters
    ----------
    path : path-like or str
        A file, or the name of a shipped phantom (e.g. ``"bead_grid_two_plane"``).

    Returns
    -------
    BeadPhantom

    Raises
    ------
    InputError
        Missing or unreadable file.
    SchemaError
        Wrong schema, or a missing or malformed field (named with the file).
    """
    p = Path(path)
    if not p.suffix and not p.exists():
        if not (PHANTOM_DIR / f"{p.name}.json").is_file():
            known = ", ".join(sorted(q.stem for q in PHANTOM_DIR.glob("*.json"))) or "(none found)"
            raise InputError(f"no such file or shipped phantom; shipped phantoms: {known}", str(path))
        p = PHANTOM_DIR / f"{p.name}.json"
    where = str(p)
    doc = jsonio.read_json(p, BEAD_PHANTOM_SCHEMA)
    planes_doc = jsonio.field(doc, "planes", where)
    if not isinstance(planes_doc, list) or not 1 <= len(planes_doc) <= 2:
        raise SchemaError("field 'planes' must be a list of one or two bead planes", where)
    planes = tuple(_plane(d, where, k) for k, d in enumerate(planes_doc))
    if planes[0].z_mm != 0.0:
        raise SchemaError(f"planes[0] must be the detector-side plane at z_mm = 0, got {planes[0].z_mm:g}",
                          where)
    if len(planes) == 2:
        if planes[1].z_mm >= 0:
            raise SchemaError("planes[1] must lie nearer the source than planes[0] (z_mm < 0), got "
                              f"{planes[1].z_mm:g}", where)
        ratio = planes[1].bead_diameter_mm / planes[0].bead_diameter_mm
        if max(ratio, 1 / ratio) < _MIN_SIZE_RATIO:
            raise SchemaError(f"the two planes' bead diameters must differ by a factor >= {_MIN_SIZE_RATIO} "
                              f"so their beads can be told apart, got {ratio:.2f}", where)
    material = jsonio.field_str(doc, "material", where, choices=("steel", "titanium"))
    plate = jsonio.field_float(doc, "plate_thickness_mm", where, default=3.0)
    if plate < 0:
        raise SchemaError(f"field 'plate_thickness_mm' must be >= 0, got {plate:g}", where)
    return BeadPhantom(
        name=jsonio.field_str(doc, "name", where),
        description=jsonio.field_str(doc, "description", where, default=""),
        material=material,
        plate_to_detector_mm=jsonio.field_float(doc, "plate_to_detector_mm", where, positive=True),
        planes=planes,
        plate_thickness_mm=plate,
        source=where)


# --------------------------------------------------------------------------- simulation


def bead_phantom_volume(phantom: BeadPhantom, *, voxel_mm: float = 0.5, slice_mm: float = 2.5,
                        energy_kev: float = 60.0, margin_mm: float = 4.0):
    """The phantom as an attenuation volume for the shot simulator (phantom frame = LPS).

    Beads are spheres voxelised with partial volume (each voxel's fraction inside the
    sphere from sub-voxel points 0.125 mm apart); each bead plane sits in a PMMA plate
    (about 1.1 x water) of :attr:`BeadPhantom.plate_thickness_mm`. Slices along z may
    be thicker than the in-plane voxels: the rays run nearly along z, and a linear
    interpolation along z keeps each bead's centroid.

    Parameters
    ----------
    phantom : BeadPhantom
    voxel_mm : float
        In-plane voxel size (mm); about a third of the smallest bead diameter or less.
    slice_mm : float
        Voxel size along z (mm).
    energy_kev : float
        Effective photon energy for the attenuation coefficients.
    margin_mm : float
        Empty border around the beads (mm).

    Returns
    -------
    or_assist.render.drr.AttenuationVolume
        Identity direction; index (i, j, k) along phantom (x, y, z).
    """
    from or_assist.core.ct.attenuation import mu_water_per_mm
    from or_assist.render.drr import AttenuationVolume
    from or_assist.render.implants import metal_mu_per_mm

    if not isinstance(phantom, BeadPhantom):
        raise InputError(f"expected a BeadPhantom, got {type(phantom).__name__}", "phantom")
    for name, val in (("voxel_mm", voxel_mm), ("slice_mm", slice_mm), ("margin_mm", margin_mm)):
        check_positive(val, name)
    mu_bead = metal_mu_per_mm(phantom.material, energy_kev)
    mu_plate = 1.1 * mu_water_per_mm(energy_kev)
    pos = phantom.positions_mm
    rad = phantom.diameters_mm / 2.0
    half_plate = phantom.plate_thickness_mm / 2.0
    lo = pos.min(axis=0) - rad.max() - margin_mm
    hi = pos.max(axis=0) + rad.max() + margin_mm
    lo[2] = min(lo[2], min(p.z_mm for p in phantom.planes) - half_plate - slice_mm)
    hi[2] = max(hi[2], max(p.z_mm for p in phantom.planes) + half_plate + slice_mm)
    spacing = np.array([voxel_mm, voxel_mm, slice_mm], dtype=np.float64)
    origin = np.floor(lo / spacing) * spacing          # the z = 0 plane falls on a slice centre
    n = np.ceil((hi - origin) / spacing).astype(int) + 1
    mu = np.zeros((n[2], n[1], n[0]), np.float32)
    z_c = origin[2] + spacing[2] * np.arange(n[2])
    for plane in phantom.planes:                       # plates: slice overlap with the slab
        a, b = plane.z_mm - half_plate, plane.z_mm + half_plate
        overlap = np.clip(np.minimum(b, z_c + slice_mm / 2) - np.maximum(a, z_c - slice_mm / 2), 0, None)
        mu += (mu_plate * overlap / slice_mm).astype(np.float32)[:, None, None]
    sub = [np.arange(max(1, int(round(s / 0.125)))) for s in spacing]
    offs = [((k + 0.5) / len(k) - 0.5) * s for k, s in zip(sub, spacing)]
    for p, r in zip(pos, rad):
        i0 = np.floor((p - r - origin) / spacing + 0.5).astype(int)
        i1 = np.floor((p + r - origin) / spacing + 0.5).astype(int)
        ax = [origin[a] + spacing[a] * np.arange(i0[a], i1[a] + 1) for a in range(3)]
        # distance^2 of every sub-point, separable: (K*sk, J*sj, I*si)
        d2 = [((ax[a][:, None] + offs[a][None, :]).ravel() - p[a]) ** 2 for a in range(3)]
        inside = (d2[2][:, None, None] + d2[1][None, :, None] + d2[0][None, None, :]) <= r * r
        k, j, i = (len(ax[2]), len(offs[2])), (len(ax[1]), len(offs[1])), (len(ax[0]), len(offs[0]))
        frac = inside.reshape(k[0], k[1], j[0], j[1], i[0], i[1]).mean(axis=(1, 3, 5))
        block = mu[i0[2]:i1[2] + 1, i0[1]:i1[1] + 1, i0[0]:i1[0] + 1]
        block += (frac * (mu_bead - block)).astype(np.float32)
    return AttenuationVolume(mu, origin, spacing, np.eye(3))
