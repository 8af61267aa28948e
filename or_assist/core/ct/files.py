"""Integrity and geometry checks of CT volume files, before SimpleITK reads them.

ITK fills a truncated NIfTI with zeros (air-less 0 HU slices) and replaces a NaN, zero or
negative voxel size by 1 mm or a mirrored axis, silently. These checks read the raw
headers and the data length themselves and refuse such files with one
:class:`~or_assist.errors.InputError` that names the file and the field:

* any gzip/zlib-compressed file (``.nii.gz``, gzip NRRD, compressed MetaImage) is
  decompressed as a stream (bounded memory) to check that it is complete and that its
  CRC matches;
* NIfTI-1 (``.nii``, ``.nii.gz``), MetaImage (``.mha``, ``.mhd``) and NRRD (``.nrrd``,
  ``.nhdr``): the voxel data must be as long as the header says, the voxel spacing
  finite and > 0 and the direction (sform / space directions) orthogonal; a NIfTI sform
  of a gantry-tilted stack (only the slice axis leans) passes, ``load_ct`` resamples it.
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from pathlib import Path

import numpy as np

from or_assist.errors import InputError

__all__ = ["check_volume_file"]

_CHUNK = 1 << 20
_ORTHO_TOL = 1e-3  # |cos| between axes accepted as orthogonal
_SCALE_RTOL = 1e-3

_NIFTI_BITPIX_OK = {8, 16, 32, 64, 128, 256}
_META_TYPES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4,
               "MET_UINT": 4, "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8,
               "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}
_NRRD_TYPES = {1: ("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t", "char"),
               2: ("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort",
                   "unsigned short", "unsigned short int", "uint16", "uint16_t"),
               4: ("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t",
                   "float"),
               8: ("longlong", "long long", "long long int", "signed long long", "signed long long int",
                   "int64", "int64_t", "ulonglong", "unsigned long long", "unsigned long long int", "uint64",
                   "uint64_t", "double")}
_NRRD_SIZE = {name: n for n, names in _NRRD_TYPES.items() for name in names}


def check_volume_file(path: Path, suffix: str) -> None:
    """Refuse a truncated, corrupt or geometrically damaged volume file.

    Parameters
    ----------
    path : pathlib.Path
        The file (for ``.mhd`` / ``.nhdr`` the header; its data file is checked too).
    suffix : str
        Its recognised ending: ``.nii.gz``, ``.nii``, ``.mha``, ``.mhd``, ``.nrrd`` or ``.nhdr``.

    Raises
    ------
    InputError
        Naming the file and what is wrong: ``truncated: ... expected N bytes of voxel
        data, found M``, ``corrupt compressed data``, or the header field that is not a
        finite positive spacing or an orthogonal direction.
    """
    where = str(path)
    try:
        if suffix in (".nii", ".nii.gz"):
            _check_nifti(path, suffix == ".nii.gz", where)
        elif suffix in (".mha", ".mhd"):
            _check_meta(path, where)
        elif suffix in (".nrrd", ".nhdr"):
            _check_nrrd(path, where)
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror or exc})", where) from None


# --------------------------------------------------------------------------- compressed streams


def _inflate(fh, where: str, keep: int = 0) -> tuple[int, bytes, bool]:
    """Decompress a gzip or zlib stream from ``fh`` chunk by chunk (bounded memory).

    Returns (number of decompressed bytes, the first ``keep`` of them, whether the stream
    was complete). Concatenated gzip members are followed; corrupt data or a failed CRC /
    Adler check raises InputError.
    """
    total, head = 0, b""
    dec = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, checks CRC / Adler
    pending = b""
    while True:
        chunk = pending or fh.read(_CHUNK)
        pending = b""
        if not chunk:
            return total, head, dec.eof
        try:
            out = dec.decompress(chunk)
        except zlib.error as exc:
            raise InputError(f"cannot read the image: corrupt compressed data ({exc}) after {total} "
                             f"decompressed bytes", where) from None
        total += len(out)
        if len(head) < keep:
            head += out[: keep - len(head)]
        if dec.eof:
            rest = dec.unused_data
            if not rest.strip(b"\0"):  # trailing zero padding is tolerated
                return total, head, True
            dec = zlib.decompressobj(zlib.MAX_WBITS | 32)  # another gzip member follows
            pending = rest


def _truncated(where: str, expected: int, found: int, complete: bool = True) -> InputError:
    how = "" if complete else "the compressed stream ends early; "
    return InputError(
        f"truncated: {how}expected {expected} bytes of voxel data, found {found} "
        f"({100.0 * found / max(expected, 1):.0f}%; incomplete copy or download?)", where)


def _check_spacing(values, field: str, where: str) -> None:
    vals = [float(v) for v in values]
    if not all(math.isfinite(v) and v > 0 for v in vals):
        raise InputError(f"{field} must be finite and > 0 mm, got {_fmt(vals)}", where)


def _check_orthogonal(columns: np.ndarray, field: str, where: str) -> None:
    """Columns of ``columns`` (3 x n) must be finite, non-zero and mutually orthogonal."""
    if not np.all(np.isfinite(columns)):
        raise InputError(f"{field} contains NaN or inf", where)
    norms = np.linalg.norm(columns, axis=0)
    if np.any(norms <= 0):
        raise InputError(f"{field} has a zero axis (voxel size 0)", where)
    unit = columns / norms
    gram = unit.T @ unit
    off = np.abs(gram - np.eye(gram.shape[0]))
    if np.max(off) > _ORTHO_TOL:
        raise InputError(f"{field} is not orthogonal (axes at {_angles(gram)} deg); the direction "
                         f"must be orthonormal", where)


def _tilted_stack(columns: np.ndarray) -> bool:
    """Whether an affine's columns are a gantry-tilted stack: orthogonal rows and columns of each slice, the
    slice step leaning off their normal by less than 60 deg (``load_ct`` resamples it, core/ct/tilt.py)."""
    norms = np.linalg.norm(columns, axis=0)
    if not np.all(np.isfinite(columns)) or np.any(norms <= 0):
        return False
    unit = columns / norms
    normal = np.cross(unit[:, 0], unit[:, 1])
    return abs(float(unit[:, 0] @ unit[:, 1])) <= _ORTHO_TOL and abs(float(normal @ unit[:, 2])) >= 0.5


def _angles(gram: np.ndarray) -> str:
    n = gram.shape[0]
    return ", ".join(f"{math.degrees(math.acos(max(-1.0, min(1.0, gram[i, j])))):.1f}"
                     for i in range(n) for j in range(i + 1, n))


def _fmt(vals) -> str:
    return "[" + ", ".join(f"{v:g}" for v in vals) + "]"


# --------------------------------------------------------------------------- NIfTI-1


def _check_nifti(path: Path, gz: bool, where: str) -> None:
    with open(path, "rb") as fh:
        if gz and fh.read(2) == b"\x1f\x8b":  # (a .nii.gz that is not gzip is read as is)
            fh.seek(0)
            length, head, complete = _inflate(fh, where, keep=352)
        else:
            fh.seek(0)
            head = fh.read(352)
            length, complete = path.stat().st_size, True
    if len(head) < 348:
        raise InputError(f"truncated: {len(head)} bytes, shorter than a NIfTI header (348)", where)
    if struct.unpack("<i", head[:4])[0] == 540 or struct.unpack(">i", head[:4])[0] == 540:
        raise InputError("a NIfTI-2 file, which SimpleITK's NIfTI reader does not read; save it as NIfTI-1 "
                         "(.nii.gz), MetaImage (.mha) or NRRD", where)
    layout = _nifti_layout(head, where)
    if layout is None:  # not NIfTI: left to ITK
        if not complete:
            raise InputError("truncated: the compressed stream ends early", where)
        return
    offset, expected = layout
    found = max(0, length - offset)
    if not complete or found < expected:
        raise _truncated(where, expected, found, complete)


def _nifti_layout(head: bytes, where: str) -> tuple[int, int] | None:
    """Check a NIfTI-1 header's geometry; returns (vox_offset, voxel data bytes), or None if not NIfTI-1."""
    if struct.unpack("<i", head[:4])[0] == 348:
        end = "<"
    elif struct.unpack(">i", head[:4])[0] == 348:
        end = ">"
    else:
        return None
    dim = struct.unpack(end + "8h", head[40:56])
    bitpix = struct.unpack(end + "h", head[72:74])[0]
    pixdim = struct.unpack(end + "8f", head[76:108])
    vox_offset = struct.unpack(end + "f", head[108:112])[0]
    qform_code, sform_code = struct.unpack(end + "2h", head[252:256])
    quat = struct.unpack(end + "6f", head[256:280])
    srow = np.array(struct.unpack(end + "12f", head[280:328]), dtype=np.float64).reshape(3, 4)
    ndim = dim[0]
    if not 1 <= ndim <= 7 or any(d < 1 for d in dim[1 : ndim + 1]):
        raise InputError(f"header field dim must hold 1..7 positive sizes, got {list(dim)}", where)
    if bitpix not in _NIFTI_BITPIX_OK:
        raise InputError(f"header field bitpix must be one of 8, 16, 32, 64, got {bitpix}", where)
    n_space = min(ndim, 3)
    _check_spacing(pixdim[1 : n_space + 1], "header field pixdim (voxel size)", where)
    if qform_code > 0 and not all(math.isfinite(v) for v in quat):
        raise InputError(f"header fields quatern_b/c/d, qoffset_x/y/z must be finite, got {_fmt(quat)}", where)
    if sform_code > 0 and not (n_space == 3 and _tilted_stack(srow[:, :3])):
        _check_orthogonal(srow[:, :n_space], "header field srow_x/y/z (sform)", where)
        if not np.all(np.isfinite(srow)):
            raise InputError("header field srow_x/y/z (sform) contains NaN or inf", where)
    offset = int(vox_offset) if math.isfinite(vox_offset) and vox_offset >= 348 else 352
    n_vox = math.prod(int(d) for d in dim[1 : ndim + 1])
    return offset, n_vox * bitpix // 8


# --------------------------------------------------------------------------- MetaImage


def _read_text_header(fh, where: str, stop) -> tuple[list[str], int]:
    """Lines of an ASCII header up to (and including) the line where ``stop(line)``; offset after it."""
    lines, offset = [], 0
    for _ in range(4096):
        raw = fh.readline(65536)
        if not raw:
            break
        offset += len(raw)
        line = raw.decode("latin-1").rstrip("\r\n")
        lines.append(line)
        if stop(line):
            break
    return lines, offset


def _check_meta(path: Path, where: str) -> None:
    with open(path, "rb") as fh:
        lines, offset = _read_text_header(fh, where, lambda ln: ln.split("=")[0].strip() == "ElementDataFile")
    fields = {}
    for line in lines:
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key.strip()] = value.strip()
    for key in ("ElementSpacing", "ElementSize"):
        if key in fields:
            _check_spacing(_numbers(fields[key], key, where), f"header field {key}", where)
    for key in ("TransformMatrix", "Rotation", "Orientation"):
        if key in fields:
            m = _numbers(fields[key], key, where)
            n = int(round(math.sqrt(len(m))))
            if n * n == len(m) and n >= 2:
                _check_orthogonal(np.array(m).reshape(n, n).T, f"header field {key}", where)
    try:
        dims = [int(v) for v in fields.get("DimSize", "").split()]
    except ValueError:
        raise InputError(f"header field DimSize must be integers, got {fields['DimSize']!r}", where) from None
    size = _META_TYPES.get(fields.get("ElementType", ""))
    data_file = fields.get("ElementDataFile")
    if not dims or size is None or data_file is None or int(fields.get("HeaderSize", "0") or 0) != 0:
        return
    if data_file == "LOCAL":
        data_path, start = path, offset
    elif data_file.startswith("LIST") or "%" in data_file or " " in data_file:
        return
    else:
        data_path, start = path.parent / data_file, 0
        if not data_path.is_file():
            raise InputError(f"header field ElementDataFile names {data_file!r}, which does not exist", where)
    channels = int(fields.get("ElementNumberOfChannels", "1") or 1)
    expected = math.prod(dims) * size * channels
    where_data = str(data_path)
    compressed = fields.get("CompressedData", "False").lower() == "true"
    with open(data_path, "rb") as fh:
        fh.seek(start)
        if compressed:
            length, _, complete = _inflate(fh, where_data)
        else:
            length, complete = max(0, data_path.stat().st_size - start), True
    if not complete or length < expected:
        raise _truncated(where_data, expected, length, complete)


def _numbers(text: str, key: str, where: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise InputError(f"header field {key} must be numbers, got {text!r}", where) from None


# --------------------------------------------------------------------------- NRRD


def _check_nrrd(path: Path, where: str) -> None:
    with open(path, "rb") as fh:
        magic = fh.read(4)
        fh.seek(0)
        if magic != b"NRRD":
            raise InputError("not a NRRD file (no NRRD magic)", where)
        lines, offset = _read_text_header(fh, where, lambda ln: ln.strip() == "")
    fields = {}
    for line in lines[1:]:
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip().lstrip("=").strip()
    if "spacings" in fields:
        vals = [v for v in fields["spacings"].split() if v.lower() != "nan"]  # nan = non-spatial axis
        _check_spacing(_numbers(" ".join(vals), "spacings", where), "header field spacings", where)
    if "space directions" in fields:
        vecs = re.findall(r"\(([^)]*)\)", fields["space directions"])
        if vecs:
            cols = np.array([_numbers(v, "space directions", where) for v in vecs], dtype=np.float64).T
            _check_orthogonal(cols, "header field space directions", where)
    try:
        sizes = [int(v) for v in fields.get("sizes", "").split()]
    except ValueError:
        raise InputError(f"header field sizes must be integers, got {fields['sizes']!r}", where) from None
    size = _NRRD_SIZE.get(fields.get("type", "").lower())
    encoding = fields.get("encoding", "").lower()
    data_file = fields.get("data file", fields.get("datafile"))
    if not sizes or size is None or encoding not in ("raw", "gzip", "gz") or "byte skip" in fields \
            or "line skip" in fields:
        return
    if data_file is None:
        data_path, start = path, offset
    elif " " in data_file or data_file.upper().startswith("LIST"):
        return
    else:
        data_path, start = path.parent / data_file, 0
        if not data_path.is_file():
            raise InputError(f"header field data file names {data_file!r}, which does not exist", where)
    expected = math.prod(sizes) * size
    where_data = str(data_path)
    with open(data_path, "rb") as fh:
        fh.seek(start)
        if encoding == "raw":
            length, complete = max(0, data_path.stat().st_size - start), True
        else:
            length, _, complete = _inflate(fh, where_data)
    if not complete or length < expected:
        raise _truncated(where_data, expected, length, complete)
