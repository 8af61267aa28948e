"""One shot-image reader (:func:`or_assist.video.shot_files.read_shot_image`) for every
command that reads a shot from a file: ``register`` and ``calibrate`` (whose two readers
decoded 16-bit, colour and DICOM images differently) now decode each file the same way."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from or_assist.core.carm_profiles import load_profile
from or_assist.core.geometry import save_geometry
from or_assist.core.pose import Pose, save_pose
from or_assist.errors import InputError
from or_assist.video import shot_files
from or_assist.video.shot_files import read_shot_image

RAMP = np.arange(64 * 48, dtype=np.int64).reshape(48, 64)


def _files(folder):
    """{name: (path, expected decoded array)} of an 8-bit, 16-bit, colour and DICOM shot."""
    import SimpleITK as sitk

    u8 = (RAMP % 251).astype(np.uint8)
    u16 = (RAMP * 21).astype(np.uint16)
    bgr = np.dstack([u8, u8 // 2, u8 // 3])
    files = {"u8": (folder / "u8.png", u8), "u16": (folder / "u16.png", u16),
             "bgr": (folder / "bgr.png", bgr.mean(axis=2).round().astype(np.uint8))}
    for path, img in ((folder / "u8.png", u8), (folder / "u16.png", u16), (folder / "bgr.png", bgr)):
        assert cv2.imwrite(str(path), img)
    stored = (RAMP - 1000).astype(np.int16)                      # DICOM: stored values, scaled to 0-65535
    sitk.WriteImage(sitk.GetImageFromArray(stored), str(folder / "shot.dcm"))
    files["dicom"] = (folder / "shot.dcm", np.round(RAMP / RAMP.max() * 65535).astype(np.uint16))
    return files


def test_the_reader_decodes_each_kind(tmp_path):
    for name, (path, expected) in _files(tmp_path).items():
        img = read_shot_image(path)
        assert img.dtype == expected.dtype and img.shape == (48, 64), name
        assert np.array_equal(img, expected), name


def test_a_non_ascii_path_and_bad_files(tmp_path):
    folder = tmp_path / "Röntgen"
    folder.mkdir()
    cv2.imwrite(str(tmp_path / "a.png"), np.full((8, 8), 7, np.uint16))
    (folder / "bild.png").write_bytes((tmp_path / "a.png").read_bytes())
    img = read_shot_image(folder / "bild.png")
    assert img.dtype == np.uint16 and int(img.max()) == 7
    with pytest.raises(InputError, match="not found"):
        read_shot_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="bad.png: not a readable image"):
        read_shot_image(tmp_path / "bad.png")
    (tmp_path / "bad.dcm").write_bytes(b"DICM" + bytes(100))
    with pytest.raises(InputError, match="not a readable DICOM image"):
        read_shot_image(tmp_path / "bad.dcm")


def test_register_and_calibrate_read_shots_the_same_way(tmp_path, monkeypatch):
    """Both commands go through the one reader and get the same array for every file."""
    from or_assist.cli.calibrate import calibrate_command
    from or_assist.register.files import register_files

    seen = {"register": [], "calibrate": []}
    who = []

    def spy(path):
        img = read_shot_image(path)
        seen[who[-1]].append(img)
        return img

    monkeypatch.setattr(shot_files, "read_shot_image", spy)
    save_geometry(load_profile("siemens_cios_fusion").geometry_at(64), tmp_path / "g.json")
    save_pose(Pose(np.eye(4)), tmp_path / "init.json")
    files = _files(tmp_path)
    for path, _ in files.values():
        who.append("register")       # the CT is missing: it stops after reading the shot
        with pytest.raises(InputError, match="no_ct"):
            register_files(tmp_path / "no_ct.nii", tmp_path / "g.json", path, tmp_path / "init.json",
                           tmp_path / "r.json")
        who.append("calibrate")      # the phantom is unknown: it stops after reading the images
        with pytest.raises(InputError, match="no_such_phantom"):
            calibrate_command([path], "no_such_phantom", tmp_path / "c.json")
    assert len(seen["register"]) == len(seen["calibrate"]) == len(files)
    for (name, (_, expected)), a, b in zip(files.items(), seen["register"], seen["calibrate"]):
        assert a.dtype == b.dtype == expected.dtype and np.array_equal(a, b) and np.array_equal(a, expected), name
