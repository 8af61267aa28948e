"""The local optimiser of the CT-to-CT registration: images, masks and Mattes MI runs, level by level.

:func:`or_assist.postop.register3d.register_postop_to_preop` runs the optimiser from
several starts and at several levels. SimpleITK's ``ImageRegistrationMethod`` smooths the
whole fixed and moving image again at each level of every run (its shrink factors only
thin the grid of fixed points the metric samples; the images themselves are smoothed, not
shrunk). :class:`LevelImages` smooths each image once per level (the same
``DiscreteGaussian`` of ``sigma`` voxels the method would apply) and each run then samples
the cached image with no smoothing of its own: the same optimisation, without redoing the
smoothing of a post-op scan of some million voxels in every run.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from or_assist.core.ct.volume import CTVolume
from or_assist.core.pose import Pose

__all__ = ["LevelImages", "registration_image", "bone_masks", "mask_centroid_mm", "euler_to_pose"]

_CLAMP_HU = (-200.0, 2000.0)
_GRADIENT_FILTER = False


def registration_image(ct: CTVolume) -> sitk.Image:
    """The CT as float32 with HU clamped to the registration's range."""
    return sitk.Clamp(ct.to_sitk(), sitk.sitkFloat32, *_CLAMP_HU)


def bone_masks(ct: CTVolume, bone_hu: tuple[float, float], metal_hu: float, metal_margin_mm: float):
    """(bone mask without metal neighbourhood, metal-free mask) as sitk uint8 images."""
    img = ct.to_sitk()
    metal = sitk.BinaryThreshold(img, float(metal_hu), 1e9, 1, 0)
    if metal_margin_mm > 0:
        radius = [max(1, int(round(metal_margin_mm / s))) for s in ct.spacing_mm]
        metal = sitk.BinaryDilate(metal, radius)
    no_metal = sitk.BinaryNot(metal)
    bone = sitk.BinaryThreshold(img, float(bone_hu[0]), float(bone_hu[1]), 1, 0)
    bone = sitk.And(bone, no_metal)
    return bone, no_metal


def mask_centroid_mm(mask: sitk.Image) -> np.ndarray | None:
    """Centroid of the label-1 voxels (LPS mm), None when there are none."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    if not stats.HasLabel(1):
        return None
    return np.array(stats.GetCentroid(1))


def euler_to_pose(tx: sitk.Euler3DTransform) -> Pose:
    """SimpleITK fixed(pre-op) -> moving(post-op) transform as the Pose T_postop_from_preop."""
    r = np.array(tx.GetMatrix()).reshape(3, 3)
    c = np.array(tx.GetCenter())
    t = np.array(tx.GetTranslation())
    return Pose.from_rotation_translation(r, t + c - r @ c)


def _smoothed(img: sitk.Image, sigma_vox: float) -> sitk.Image:
    if sigma_vox <= 0:
        return img
    return sitk.DiscreteGaussian(img, variance=float(sigma_vox) ** 2, maximumKernelWidth=32, maximumError=0.01,
                                 useImageSpacing=False)


class LevelImages:
    """Fixed and moving image smoothed once per level; runs of the optimiser over a range of levels.

    Parameters
    ----------
    fixed, moving : sitk.Image
        Float images (:func:`registration_image`).
    fixed_mask, moving_mask : sitk.Image
        Where the metric samples (fixed) and which moving points count.
    shrink, smoothing_vox : sequences
        Per level: shrink factor of the fixed sampling grid, Gaussian sigma in voxels.
    iterations, bins : int
        Optimiser iterations per level; Mattes MI histogram bins.
    sampling : float
        Share of the fixed points sampled (regular, seeded); 1 = all.
    """

    def __init__(self, fixed, moving, fixed_mask, moving_mask, shrink, smoothing_vox, iterations: int, bins: int,
                 sampling: float = 1.0):
        self._images = (fixed, moving)
        self._masks = (fixed_mask, moving_mask)
        self.shrink, self.smoothing_vox = list(shrink), list(smoothing_vox)
        self.iterations, self.bins, self.sampling = int(iterations), int(bins), float(sampling)
        self._cache: dict[int, tuple[sitk.Image, sitk.Image]] = {}

    def __len__(self) -> int:
        return len(self.shrink)

    def level(self, k: int) -> tuple[sitk.Image, sitk.Image]:
        """(fixed, moving) smoothed for level ``k`` (computed on first use)."""
        if k not in self._cache:
            self._cache[k] = tuple(_smoothed(im, self.smoothing_vox[k]) for im in self._images)
        return self._cache[k]

    def run(self, initial: sitk.Euler3DTransform, first: int, stop: int | None = None):
        """Optimise from ``initial`` over levels ``first .. stop - 1``; (transform, metric value, stop reason).

        Raises
        ------
        RuntimeError
            From SimpleITK, e.g. too few samples inside the moving image.
        """
        tx = sitk.Euler3DTransform(initial)
        value, why = float("nan"), ""
        for k in range(first, len(self) if stop is None else stop):
            fixed, moving = self.level(k)
            reg = sitk.ImageRegistrationMethod()
            reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=self.bins)
            if self.sampling < 1.0:
                reg.SetMetricSamplingStrategy(reg.REGULAR)
                reg.SetMetricSamplingPercentage(self.sampling, 1)
            else:
                reg.SetMetricSamplingStrategy(reg.NONE)
            reg.SetMetricFixedMask(self._masks[0])
            reg.SetMetricMovingMask(self._masks[1])
            reg.SetInterpolator(sitk.sitkLinear)
            if not _GRADIENT_FILTER:
                reg.SetMetricUseMovingImageGradientFilter(False)
                reg.SetMetricUseFixedImageGradientFilter(False)
            reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3,
                                                         numberOfIterations=self.iterations, relaxationFactor=0.5,
                                                         gradientMagnitudeTolerance=1e-8)
            reg.SetOptimizerScalesFromPhysicalShift()
            reg.SetShrinkFactorsPerLevel([self.shrink[k]])
            reg.SetSmoothingSigmasPerLevel([0.0])
            reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
            reg.SetInitialTransform(tx, inPlace=True)
            reg.Execute(fixed, moving)
            value, why = float(reg.GetMetricValue()), reg.GetOptimizerStopConditionDescription()
        return tx, value, why
