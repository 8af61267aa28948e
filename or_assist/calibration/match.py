"""Which detected bead is which: plane by size, grid cell by lattice growth and marker.

For each image (:func:`identify_beads`):

1. **Planes**: with two bead planes, the blobs split into two size classes (the split
   of the log diameters with the largest between-class variance); the class with the
   larger beads in the image is the plane whose beads project larger (diameter over
   depth). Blobs far from their class's size (merged or cut beads) are left out.
2. **Lattice** (per plane): the nearest-neighbour vectors give the grid pitch and
   orientation in the image; from a seed bead the lattice grows cell by cell, each new
   cell predicted by an affine fit to the cells already found within two cells of it,
   so curvature from distortion and perspective is followed.
3. **Marker**: the missing beads of the plane (an asymmetric pattern) are looked for
   among the lattice's empty cells under the 4 rotations and 4 reflections of the
   grid; exactly one rotation must fit, with its neighbours present. A fit only under a
   reflection means a mirrored image (flipped video or a phantom upside down).

Failures are values: :class:`PlaneMatch` carries ``reason`` instead of raising, so the
calibration can report each image's state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from or_assist.calibration.detect import BeadDetections
from or_assist.calibration.phantom import BeadPhantom, BeadPlane, grid_symmetries

__all__ = ["PlaneMatch", "split_planes", "grow_lattice", "match_marker", "identify_beads"]

_GATE = 0.3            # acceptance radius of a lattice prediction, x pitch
_SIZE_TOL = 1.35       # a blob's diameter within this factor of its class's median
_MIN_RING = 0.7        # share of the marker's neighbour cells that must hold beads
_MIN_LATTICE = 9


@dataclass(frozen=True, eq=False)
class PlaneMatch:
    """Identified beads of one plane in one image.

    Attributes
    ----------
    plane : int
        Index into ``phantom.planes``.
    detection_index : (M,) int64
        Rows of the image's :class:`BeadDetections`.
    cells : (M, 2) int64
        Their grid cells ``(i, j)`` in the plane.
    n_candidates : int
        Blobs assigned to this plane by size.
    reason : str
        Empty on success, else why the plane could not be identified.
    """

    plane: int
    detection_index: np.ndarray
    cells: np.ndarray
    n_candidates: int
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


def split_planes(diameters_px: np.ndarray, phantom: BeadPhantom, nominal_depth_mm: float) -> list[np.ndarray]:
    """Indices of the blobs that belong to each plane, by size (module doc, step 1).

    Parameters
    ----------
    diameters_px : (N,) float64
    phantom : BeadPhantom
    nominal_depth_mm : float
        Roughly the source-to-``z = 0``-plane distance, to rank the planes' projected sizes.

    Returns
    -------
    list of (K,) int64 arrays, one per plane (possibly empty).
    """
    logd = np.log(np.asarray(diameters_px, dtype=np.float64))
    if len(phantom.planes) == 1 or len(logd) < 4:
        groups = [np.arange(len(logd))]
    else:
        s = np.sort(logd)
        best, cut = -1.0, s[0]
        for k in range(2, len(s) - 1):
            a, b = s[:k], s[k:]
            var = len(a) * len(b) * (a.mean() - b.mean()) ** 2
            if var > best:
                best, cut = var, 0.5 * (s[k - 1] + s[k])
        small, large = np.flatnonzero(logd < cut), np.flatnonzero(logd >= cut)
        projected = [p.bead_diameter_mm / (nominal_depth_mm + p.z_mm) for p in phantom.planes]
        groups = [small, large] if projected[0] < projected[1] else [large, small]
    out = []
    for g in groups:
        if len(g) == 0:
            out.append(g.astype(np.int64))
            continue
        med = np.median(logd[g])
        out.append(g[np.abs(logd[g] - med) < np.log(_SIZE_TOL)].astype(np.int64))
    return out


def _nearest(points: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d2 = ((queries[:, None, :] - points[None, :, :]) ** 2).sum(axis=2)
    idx = np.argmin(d2, axis=1)
    return idx, np.sqrt(d2[np.arange(len(queries)), idx])


def _lattice_basis(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Two grid vectors ``a``, ``b`` (``b`` anticlockwise of ``a`` in (u, v)) from each point's
    four nearest neighbours; the grid may be rotated, sheared or scaled per axis (a video
    stretched by the grabber)."""
    d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d2, np.inf)
    nn = np.argsort(d2, axis=1)[:, :4]
    vec = (pts[nn] - pts[:, None, :]).reshape(-1, 2)
    vec[(vec[:, 0] < 0) | ((vec[:, 0] == 0) & (vec[:, 1] < 0))] *= -1   # fold to one half-plane
    ang2 = np.exp(2j * np.arctan2(vec[:, 1], vec[:, 0]))
    z = np.mean(ang2 ** 2)                                               # 4 x angle: square grids
    if abs(z) < 0.2:
        return None
    centres = np.exp(1j * np.angle(z) / 2.0) * np.array([1.0, -1.0])     # doubled angles 180 deg apart
    for _ in range(10):
        label = np.argmin(np.abs(ang2[:, None] - centres[None, :]), axis=1)
        if min(np.sum(label == 0), np.sum(label == 1)) < 3:
            return None
        centres = np.array([np.mean(ang2[label == k]) for k in (0, 1)])
        centres /= np.abs(centres)
    out = []
    for k in (0, 1):
        v = vec[label == k]
        ref = np.exp(1j * np.angle(centres[k]) / 2.0)
        v = np.where(((v[:, 0] * ref.real + v[:, 1] * ref.imag) < 0)[:, None], -v, v)
        out.append(np.median(v, axis=0))
    a, b = out
    cross = a[0] * b[1] - a[1] * b[0]
    if abs(cross) < 0.3 * np.hypot(*a) * np.hypot(*b):
        return None
    return (a, b) if cross > 0 else (a, -b)


def grow_lattice(points_px: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Integer lattice coordinates of points on a (distorted) square grid (module doc, step 2).

    Parameters
    ----------
    points_px : (N, 2) float64

    Returns
    -------
    assigned : (N,) bool
        The points placed on the lattice.
    coords : (N, 2) int64
        Lattice cells of the assigned points (meaningless elsewhere), up to a rotation,
        reflection and shift that :func:`match_marker` resolves. Cell ``(p, q)`` lies
        near ``origin + p a + q b`` with ``b`` = ``a`` turned by +90 degrees in (u, v).
    pitch_px : float
        Median nearest-neighbour distance (0 when the points form no lattice).
    """
    pts = np.asarray(points_px, dtype=np.float64)
    n = len(pts)
    assigned = np.zeros(n, dtype=bool)
    coords = np.zeros((n, 2), dtype=np.int64)
    if n < _MIN_LATTICE:
        return assigned, coords, 0.0
    basis = _lattice_basis(pts)
    if basis is None:
        return assigned, coords, 0.0
    a, b = basis
    pitch = float(min(np.hypot(*a), np.hypot(*b)))
    steps = np.array([a, -a, b, -b])
    centre = np.median(pts, axis=0)
    seed = -1
    for k in np.argsort(np.hypot(*(pts - centre).T)):
        _, dist = _nearest(pts, pts[k] + steps)
        if np.all(dist < _GATE * pitch):
            seed = int(k)
            break
    if seed < 0:
        return assigned, coords, 0.0
    cell_of: dict[tuple[int, int], int] = {(0, 0): seed}
    assigned[seed] = True
    tried: dict[tuple[int, int], int] = {}
    offsets = [(dp, dq) for dp in range(-2, 3) for dq in range(-2, 3) if (dp, dq) != (0, 0)]
    while True:
        support: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for (p, q) in cell_of:
            for dp, dq in offsets:
                c = (p + dp, q + dq)
                if c not in cell_of:
                    support.setdefault(c, []).append((p, q))
        cand = [(c, s) for c, s in support.items() if tried.get(c, 0) < len(s)]
        if not cand:
            break
        preds, cells = [], []
        for c, sup in cand:
            tried[c] = len(sup)
            sc = np.array(sup, dtype=np.float64)
            sp = pts[[cell_of[s] for s in sup]]
            design = np.column_stack([sc, np.ones(len(sc))])
            gram = design.T @ design
            if len(sup) >= 3 and np.linalg.det(gram) > 1e-6 * np.trace(gram) ** 3:
                coef, *_ = np.linalg.lstsq(design, sp, rcond=None)
                pred = np.array([c[0], c[1], 1.0]) @ coef
            else:
                near = min(sup, key=lambda s: abs(s[0] - c[0]) + abs(s[1] - c[1]))
                pred = pts[cell_of[near]] + (c[0] - near[0]) * a + (c[1] - near[1]) * b
            preds.append(pred)
            cells.append(c)
        idx, dist = _nearest(pts, np.array(preds))
        order = np.argsort(dist)
        added = 0
        for k in order:
            if dist[k] >= _GATE * pitch or assigned[idx[k]]:
                continue
            assigned[idx[k]] = True
            cell_of[cells[k]] = int(idx[k])
            added += 1
        if added == 0:
            break
    for c, k in cell_of.items():
        coords[k] = c
    return assigned, coords, pitch


def match_marker(cells: np.ndarray, plane: BeadPlane) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """Find the plane's missing-bead marker among the empty lattice cells (module doc, step 3).

    Parameters
    ----------
    cells : (M, 2) int64
        Occupied lattice cells.
    plane : BeadPlane

    Returns
    -------
    transform : (2, 2) int64 or None
        ``lattice = transform @ (i, j) + shift`` for grid cell ``(i, j)``.
    shift : (2,) int64 or None
    reason : str
        Empty on success.
    """
    occ = {tuple(c) for c in np.asarray(cells).tolist()}
    marker = np.array(plane.missing, dtype=np.int64)
    mset = {tuple(m) for m in marker.tolist()}
    ring = sorted({(m[0] + di, m[1] + dj) for m in mset for di in (-1, 0, 1) for dj in (-1, 0, 1)} - mset)
    ring = np.array(ring, dtype=np.int64)
    holes = set()
    for (p, q) in occ:
        for c in ((p + 1, q), (p - 1, q), (p, q + 1), (p, q - 1)):
            if c not in occ:
                holes.add(c)
    found = []
    for k, t in enumerate(grid_symmetries()):
        tm, tr = marker @ t.T, ring @ t.T
        for h in holes:
            s = np.array(h) - tm[0]
            if any(tuple(c) in occ for c in (tm + s).tolist()):
                continue
            share = np.mean([tuple(c) in occ for c in (tr + s).tolist()])
            if share >= _MIN_RING:
                found.append((share, k, tuple(s)))
    found = sorted(set(found), reverse=True)
    if not found:
        return None, None, (f"marker of plane '{plane.name}' (missing beads {list(map(list, plane.missing))}) "
                            "not found among the beads: is the phantom's centre in the field?")
    if len(found) > 1 and found[1][0] >= found[0][0] - 0.15:
        return None, None, f"marker of plane '{plane.name}' is ambiguous ({len(found)} places fit)"
    share, k, s = found[0]
    if k >= 4:
        return None, None, (f"marker of plane '{plane.name}' appears mirrored: the image is flipped (undo "
                            "the flip first) or the phantom lies upside down")
    return grid_symmetries()[k].astype(np.int64), np.array(s, dtype=np.int64), ""


def identify_beads(detections: BeadDetections, phantom: BeadPhantom, nominal_depth_mm: float) -> list[PlaneMatch]:
    """Identify the detected beads of every plane (module doc).

    Parameters
    ----------
    detections : BeadDetections
    phantom : BeadPhantom
    nominal_depth_mm : float
        Rough source-to-``z = 0``-plane distance (only ranks the planes' bead sizes).

    Returns
    -------
    list of PlaneMatch, one per plane.
    """
    out = []
    for k, (plane, idx) in enumerate(zip(phantom.planes, split_planes(detections.diameters_px, phantom,
                                                                       nominal_depth_mm))):
        empty = np.zeros(0, np.int64)
        if len(idx) < _MIN_LATTICE:
            out.append(PlaneMatch(k, empty, np.zeros((0, 2), np.int64), len(idx),
                                  f"plane '{plane.name}': only {len(idx)} beads of its size found"))
            continue
        assigned, lat, _ = grow_lattice(detections.centres_px[idx])
        if assigned.sum() < _MIN_LATTICE:
            out.append(PlaneMatch(k, empty, np.zeros((0, 2), np.int64), len(idx),
                                  f"plane '{plane.name}': its {len(idx)} beads form no square grid"))
            continue
        t, s, reason = match_marker(lat[assigned], plane)
        if reason:
            out.append(PlaneMatch(k, empty, np.zeros((0, 2), np.int64), len(idx), reason))
            continue
        # lattice = t @ cell + s  ->  cell = t^T @ (lattice - s)   (t orthogonal)
        cells = (lat[assigned] - s) @ t
        rows = idx[assigned]
        ok = plane.contains(cells)
        out.append(PlaneMatch(k, rows[ok], cells[ok], len(idx)))
    return out
