"""Voxelising the synthetic pelvis: paints the implicit shapes into HU and label volumes.

Tissues are painted in order (air, fat, muscle, viscera, joints, bones, canal and
foramina), each with a one-voxel partial-volume edge. Bones get a cortical shell of a
fixed thickness over a cancellous interior. Seeded noise adds CT texture inside the body.
"""

from __future__ import annotations

import functools

import numpy as np

from or_assist.sim.phantom.csg import GridCtx, Intersect, Shape, Subtract, Union
from or_assist.sim.phantom.pelvis import femur, hip_bone, hip_joint_space, si_joint
from or_assist.sim.phantom.soft import (body_outline, bladder, gas_pockets, inner_body, mesenteric_fat,
                                    muscles, rectum, visceral_cavity)
from or_assist.sim.phantom.spine import (lumbar_discs, lumbar_vertebra, sacral_canal, sacral_foramina,
                                     sacrum_raw)

__all__ = ["LABELS", "EXTENT_LO_MM", "EXTENT_HI_MM", "HU", "grid_axes", "sacrum", "shapes", "paint_phantom"]

LABELS = {
    "air": 0,
    "sacrum": 1,
    "ilium_left": 2,
    "ilium_right": 3,
    "si_joint": 4,
    "l5": 5,
    "femur": 6,
    "canal": 7,
    "foramen": 8,
    "soft": 9,
    "fat": 10,
    "gas": 11,
    "disc": 12,
    "l4": 13,
}

# Field of view (LPS mm): L4 to below the lesser trochanters, skin to skin.
EXTENT_LO_MM = (-190.0, -170.0, -160.0)
EXTENT_HI_MM = (190.0, 94.0, 92.0)

# HU of each tissue; bones: (cortical, cancellous, cortical thickness mm)
HU = {
    "air": -1000.0, "fat": -100.0, "visceral_fat": -85.0, "muscle": 50.0, "bowel": 30.0,
    "bladder": 10.0, "gas": -900.0, "joint": 100.0, "ligament": 70.0, "hip_cartilage": 80.0, "disc": 90.0,
    "canal": 15.0, "foramen": 0.0,
    "sacrum": (1250.0, 240.0, 1.5), "ilium": (1450.0, 270.0, 2.0), "lumbar": (1300.0, 235.0, 1.5),
    "femur": (1550.0, 300.0, 2.5),
}
NOISE_HU = 10.0            # white noise inside the body (std)
TEXTURE_CANCELLOUS = 0.08  # relative low-frequency texture of cancellous bone (std)


def grid_axes(spacing_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-centre coordinates (mm) along x, y, z for an isotropic ``spacing_mm``."""
    axes = []
    for lo, hi in zip(EXTENT_LO_MM, EXTENT_HI_MM):
        n = int(round((hi - lo) / spacing_mm))
        axes.append(lo + spacing_mm * (np.arange(n) + 0.5))
    return tuple(axes)


def sacrum() -> tuple[Shape, Shape, Shape]:
    """The sacrum: as painted (clipped at both SI joints, canal and foramina cut), clipped
    only, and raw (with the joint fillers, before the clips)."""
    raw = Union([sacrum_raw(), si_joint(1.0).filler(-10.0, 3.0), si_joint(-1.0).filler(-10.0, 3.0)], k=5.0)
    clipped = Intersect([raw, si_joint(1.0).sacral_clip(), si_joint(-1.0).sacral_clip()])
    return Subtract(clipped, [sacral_canal(), *sacral_foramina()]), clipped, raw


@functools.lru_cache(maxsize=1)
def shapes() -> dict:
    """The bones as implicit shapes (built once): ``sacrum``, ``sacrum_clipped``,
    ``sacrum_raw``, ``hip_left``/``hip_right`` (as painted) and ``hip_left_raw``/``hip_right_raw``."""
    sac, clipped, raw = sacrum()
    out = {"sacrum": sac, "sacrum_clipped": clipped, "sacrum_raw": raw}
    for side, name in ((1.0, "left"), (-1.0, "right")):
        bone, hip_raw = hip_bone(side, clipped)
        out[f"hip_{name}"], out[f"hip_{name}_raw"] = bone, hip_raw
    return out


def _smooth_noise(rng: np.random.Generator, shape, cell: int) -> np.ndarray:
    """Unit-variance noise with a correlation length of ``cell`` voxels (trilinear)."""
    coarse = rng.standard_normal(tuple(n // cell + 2 for n in shape)).astype(np.float32)
    out = coarse
    for axis, n in enumerate(shape):
        pos = (np.arange(n, dtype=np.float32) + 0.5) / cell
        i0 = pos.astype(np.int64)
        w = (pos - i0).reshape([-1 if a == axis else 1 for a in range(3)])
        out = np.take(out, i0, axis=axis) * (1 - w) + np.take(out, i0 + 1, axis=axis) * w
    out /= np.float32(out.std() + 1e-6)
    return out


class _Painter:
    def __init__(self, spacing_mm: float, seed: int):
        xs, ys, zs = grid_axes(spacing_mm)
        self.ctx = GridCtx(xs, ys, zs)
        self.voxel = np.float32(spacing_mm)
        self.hu = np.full(self.ctx.shape, HU["air"], np.float32)
        self.labels = np.zeros(self.ctx.shape, np.uint8)
        self.rng = np.random.default_rng(seed)
        self.texture = _smooth_noise(self.rng, self.ctx.shape, max(2, int(round(4.5 / spacing_mm))))

    def paint(self, shape: Shape, label: str, value) -> None:
        """Paint ``shape`` with ``value`` and ``label``.

        ``value``: HU; a bone tuple (cortical HU, cancellous HU, cortical thickness mm);
        or a function of the sub-grid giving HU there.
        """
        found = self.ctx.sub(shape.lo, shape.hi)
        if found is None:
            return
        idx, sub = found
        d = shape.eval(sub)
        frac = np.clip(0.5 - d / self.voxel, 0.0, 1.0)
        if isinstance(value, tuple):
            cort, canc, t = value
            canc_map = np.float32(canc) * (1.0 + np.float32(TEXTURE_CANCELLOUS) * self.texture[idx])
            w = np.clip((d + np.float32(t)) / self.voxel + 0.5, 0.0, 1.0)
            val = canc_map + (np.float32(cort) - canc_map) * w
        elif callable(value):
            val = value(sub)
        else:
            val = np.float32(value)
        block = self.hu[idx]
        block += frac * (val - block)
        self.labels[idx][d < 0] = LABELS[label]

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        inside = self.labels != LABELS["air"]
        noise = self.rng.standard_normal(self.ctx.shape, dtype=np.float32)
        self.hu += np.where(inside, np.float32(NOISE_HU) * noise, np.float32(0.0))
        # air outside the body stays exactly -1000 (no noise, no partial volume below it)
        np.maximum(self.hu, np.float32(HU["air"]), out=self.hu)
        return self.hu, self.labels


def paint_phantom(spacing_mm: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """HU (Z, Y, X) float32 and labels (Z, Y, X) uint8 of the phantom at ``spacing_mm``."""
    p = _Painter(spacing_mm, seed)
    p.paint(body_outline(), "fat", HU["fat"])
    p.paint(inner_body(), "soft", HU["muscle"])
    cavity = Intersect([Union(visceral_cavity(), k=10.0), inner_body(12.0)])
    p.paint(cavity, "soft", HU["bowel"])
    for blob in mesenteric_fat():
        p.paint(Intersect([blob, cavity]), "fat", HU["visceral_fat"])
    for side in (1.0, -1.0):
        for m in muscles(side):
            p.paint(m, "soft", HU["muscle"])
    p.paint(rectum(), "soft", HU["bowel"])
    p.paint(bladder(), "soft", HU["bladder"])
    for pocket in gas_pockets():
        p.paint(pocket, "gas", HU["gas"])
    for disc in lumbar_discs():
        p.paint(disc, "disc", HU["disc"])
    bones = shapes()
    sac, sac_clipped, sac_raw = bones["sacrum"], bones["sacrum_clipped"], bones["sacrum_raw"]
    for side, name in ((1.0, "ilium_left"), (-1.0, "ilium_right")):
        bone, raw = bones[f"hip_{name[6:]}"], bones[f"hip_{name[6:]}_raw"]
        joint = si_joint(side)

        def joint_hu(sub, joint=joint):
            _, a, b = joint.local(sub.x, sub.y, sub.z)
            articular = joint.auricular_sdf(a, b) < 0
            return np.where(articular, np.float32(HU["joint"]), np.float32(HU["ligament"]))

        p.paint(Intersect([joint.gap_slab(), sac_raw, raw]), "si_joint", joint_hu)
        p.paint(hip_joint_space(side), "soft", HU["hip_cartilage"])
        p.paint(femur(side), "femur", HU["femur"])
        p.paint(bone, name, HU["ilium"])
    p.paint(sac, "sacrum", HU["sacrum"])
    for name, label in (("L5", "l5"), ("L4", "l4")):
        bone, canal = lumbar_vertebra(name)
        p.paint(bone, label, HU["lumbar"])
        p.paint(canal, "canal", HU["canal"])
    p.paint(sacral_canal(), "canal", HU["canal"])
    for channel in sacral_foramina():
        p.paint(Intersect([channel, sac_clipped]), "foramen", HU["foramen"])
    return p.finish()
