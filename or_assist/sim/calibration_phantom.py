"""A bead calibration phantom as an attenuation volume, to simulate its images.

The phantom's definition and file are :mod:`or_assist.calibration.phantom`; this is its
voxel model for the shot simulator (:class:`~or_assist.render.drr.DRRRenderer` and
:mod:`or_assist.sim.shots`), used by the calibration tests and benchmark.
"""

from __future__ import annotations

import numpy as np

from or_assist.calibration.phantom import BeadPhantom
from or_assist.core.ct.attenuation import mu_water_per_mm
from or_assist.core.validate import check_positive
from or_assist.errors import InputError
from or_assist.render.drr import AttenuationVolume
from or_assist.render.implants import metal_mu_per_mm

__all__ = ["bead_phantom_volume", "simulate_phantom_on_cover"]


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


def simulate_phantom_on_cover(renderer, phantom: BeadPhantom, geometry, settings, *, angle_deg: float = 0.0,
                              shift_mm=(0.0, 0.0)):
    """A shot of ``phantom`` lying on the detector cover: ``(SimulatedShot, T_source_from_phantom)``.

    Parameters
    ----------
    renderer : DRRRenderer
        Of :func:`bead_phantom_volume` of ``phantom``.
    phantom : BeadPhantom
    geometry : CArmGeometry
        The C-arm (no distortion of its own; ``settings.ii_distortion`` adds it).
    settings : ShotSettings
        The chain (intensifier distortion, S-distortion, noise, framing).
    angle_deg : float
        The phantom's in-plane angle (its +x axis from the image's +u axis towards +v).
    shift_mm : (float, float)
        Its centre off the central ray, mm in the plate's plane.
    """
    import math

    from or_assist.core.pose import Pose, rotation_about_axis
    from or_assist.sim.shots.simulate import simulate_shot

    depth = geometry.sid_mm - phantom.plate_to_detector_mm
    pose = Pose.from_rotation_translation(rotation_about_axis((0, 0, 1), math.radians(angle_deg)),
                                          [float(shift_mm[0]), float(shift_mm[1]), depth])
    return simulate_shot(renderer, pose, geometry, settings=settings), pose
