"""``or-assist info``: a CT's size, spacing, direction, HU range, series UID and memory.

    or-assist info CT
"""

from __future__ import annotations

from or_assist.cli._parser import emit

__all__ = ["add_parsers", "cmd_info", "format_ct_info"]


def cmd_info(args) -> int:
    """Print :func:`~or_assist.cli.ct.format_ct_info` of the CT."""
    from or_assist.core.ct.load import load_ct

    emit(format_ct_info(load_ct(args.ct)))
    return 0


def add_parsers(sub) -> None:
    """Add ``info``."""
    s = sub.add_parser("info", help="print a CT's size, spacing, direction, HU range, series UID, memory")
    s.add_argument("ct", help="DICOM folder or file, NIfTI, MHA/MHD or NRRD")
    s.set_defaults(func=cmd_info)


def format_ct_info(ct) -> str:
    """Human-readable :func:`~or_assist.core.ct.load.ct_info`, one item per line (what ``or-assist info CT`` prints)."""
    from or_assist.core.ct.load import ct_info

    info = ct_info(ct)

    def triple(values, fmt="{:.3f}", sep=" x "):
        return sep.join(fmt.format(v) for v in values)

    rows = "; ".join("[" + ", ".join(f"{v:+.4f}" for v in row) + "]" for row in info["direction"])
    lines = [
        f"CT:          {info['source'] or '(in memory)'}",
        f"series UID:  {info['series_uid'] or '-'}",
        f"size:        {triple(info['size_xyz'], '{:d}')} voxels (i, j, k)",
        f"spacing:     {triple(info['spacing_mm'])} mm",
        f"origin:      ({triple(info['origin_mm'], '{:.2f}', ', ')}) mm LPS",
        f"direction:   {rows} (rows x, y, z; columns i, j, k; axes point {info['axis_codes']})",
        f"extent:      {triple(info['extent_mm'], '{:.1f}')} mm",
        f"HU range:    {info['hu_min']:.0f} .. {info['hu_max']:.0f} "
        f"(1st-99th percentile {info['hu_p1']:.0f} .. {info['hu_p99']:.0f})",
        f"memory:      {info['memory_bytes'] / 2**20:.1f} MiB (float32)",
        f"voxel SHA-256: {info['voxel_sha256']}",
    ]
    return "\n".join(lines)
