"""Plane polygons: convex hull, area, centroid, containment."""

from __future__ import annotations

import numpy as np
import pytest

from or_assist.core.polygon import convex_hull_2d, polygon_area, polygon_centroid, polygon_contains
from or_assist.errors import InputError


def test_hull_of_random_points():
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(500, 2)) * [30.0, 10.0] + [200.0, 100.0]
    hull = convex_hull_2d(pts)
    assert polygon_area(hull) > 0                                   # counter-clockwise
    edges = np.roll(hull, -1, axis=0) - hull
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    assert np.all(turns > 0)                                        # strictly convex
    assert np.all(polygon_contains(pts, hull, 1e-9))
    assert all(np.any(np.all(pts == h, axis=1)) for h in hull)      # vertices are input points


def test_hull_drops_duplicates_and_collinear_points():
    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], dtype=float)
    pts = np.vstack([square, square, [[1, 0], [2, 1], [1, 1]]])
    assert convex_hull_2d(pts).tolist() == square.tolist()
    assert convex_hull_2d([[0, 0], [1, 1], [2, 2]]).tolist() == [[0.0, 0.0], [2.0, 2.0]]


def test_area_centroid_and_contains():
    tri = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 3.0]])
    assert polygon_area(tri) == 9.0 and polygon_area(tri[::-1]) == -9.0
    assert np.allclose(polygon_centroid(tri), [2.0, 1.0])
    ell = np.array([[0, 0], [4, 0], [4, 1], [1, 1], [1, 4], [0, 4]], dtype=float)   # non-convex
    assert np.allclose(polygon_centroid(ell), [(4 * 2.0 + 3 * 0.5) / 7, (4 * 0.5 + 3 * 2.5) / 7])
    pts = np.array([[0.5, 3.0], [3.0, 3.0], [3.0, 0.5], [4.5, 0.5], [1.2, 2.0]])
    assert polygon_contains(pts, ell).tolist() == [True, False, True, False, False]
    assert polygon_contains(pts, ell, 0.5).tolist() == [True, False, True, True, True]
    assert polygon_contains(np.zeros((0, 2)), ell).shape == (0,)


def test_bad_input():
    with pytest.raises(InputError, match="points"):
        convex_hull_2d(np.zeros((3, 3)))
    with pytest.raises(InputError, match="polygon"):
        polygon_contains([[0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0]])
    with pytest.raises(InputError, match="margin_px"):
        polygon_contains([[0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], -1.0)
    with pytest.raises(InputError, match="polygon"):
        polygon_centroid([[np.nan, 0.0]])
