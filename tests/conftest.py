"""Shared pytest fixtures: the real CT data in ../shared/data and a Qt-free guard."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data`` beside the repository (the real CT files)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared test data not found at {SHARED_DATA}; clone the repository beside ../shared")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_ct_path(shared_data_dir) -> Path:
    """The real 3 mm abdomen-pelvis CT (NIfTI, LPS direction diag(-1, -1, 1))."""
    return shared_data_dir / "ct_abdomen_pelvis_3mm.nii.gz"


@pytest.fixture(scope="session")
def dicom_dir(shared_data_dir) -> Path:
    """The real 20-slice DICOM series folder."""
    return shared_data_dir / "ct_pelvis_dicom"
