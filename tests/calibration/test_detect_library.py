"""Our bead detector against OpenCV's blob detector on an image with known sub-pixel bead
centres (issue 18: ours stays, ``docs/library_comparison_libfov.md``): on clean beads an
independent implementation finds the same beads at the same places."""

from __future__ import annotations

import cv2
import numpy as np

from or_assist.calibration.detect import detect_beads

SS = 4          # supersampling of the rendering


def bead_image(seed: int = 1):
    """(image, centres): a bright disc with a jittered 10 x 10 grid of spheres of radius 4 px
    (Beer-Lambert shadows), rendered 4x supersampled, area-averaged, blurred, with noise."""
    rng = np.random.default_rng(seed)
    centres = np.array([(u + rng.uniform(-0.5, 0.5), v + rng.uniform(-0.5, 0.5))
                        for u in range(120, 481, 40) for v in range(120, 481, 40)])
    big = np.zeros((600 * SS, 600 * SS), np.float32)
    cv2.circle(big, (300 * SS + SS // 2, 300 * SS + SS // 2), 290 * SS, 200.0, -1)
    for u, v in centres:
        x0, y0 = (u + 0.5) * SS - 0.5, (v + 0.5) * SS - 0.5       # pixel centres at integers
        ys, xs = slice(int(y0) - 6 * SS, int(y0) + 6 * SS), slice(int(x0) - 6 * SS, int(x0) + 6 * SS)
        yy, xx = np.mgrid[ys, xs]
        chord_px = np.sqrt(np.clip((4.0 * SS) ** 2 - (xx - x0) ** 2 - (yy - y0) ** 2, 0, None)) / SS
        big[ys, xs] *= np.exp(-0.25 * chord_px)
    img = cv2.GaussianBlur(cv2.resize(big, (600, 600), interpolation=cv2.INTER_AREA), (0, 0), 0.8)
    return (img + rng.normal(0, 1.0, img.shape)).astype(np.float32), centres


def opencv_blobs(img: np.ndarray) -> np.ndarray:
    """(N, 2) centres of ``cv2.SimpleBlobDetector``'s dark blobs."""
    params = cv2.SimpleBlobDetector_Params()
    params.filterByColor, params.blobColor = True, 0
    params.minThreshold, params.maxThreshold, params.thresholdStep = 20, 190, 10
    params.filterByArea, params.minArea, params.maxArea = True, 3.0, 400.0
    params.filterByCircularity = params.filterByInertia = params.filterByConvexity = False
    kps = cv2.SimpleBlobDetector_create(params).detect(np.clip(img, 0, 255).astype(np.uint8))
    return np.array([k.pt for k in kps])


def nearest_px(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.hypot(*(found[None, :, :] - truth[:, None, :]).transpose(2, 0, 1)).min(axis=1)


def test_ours_and_opencv_find_the_same_beads_at_the_true_centres():
    img, truth = bead_image()
    ours = detect_beads(img).centres_px
    lib = opencv_blobs(img)
    assert len(ours) == len(truth)
    d_ours, d_lib = nearest_px(ours, truth), nearest_px(lib, truth)
    assert np.sqrt(np.mean(d_ours ** 2)) < 0.05 and d_ours.max() < 0.1
    assert np.sqrt(np.mean(d_lib ** 2)) < 0.1            # the library finds each bead too
    assert np.all(nearest_px(ours, lib) < 0.2)            # and puts it where ours does
