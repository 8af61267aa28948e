"""The dicom:// frame source and ``or-assist receive``: specs, frames at full depth with the header,
clear errors, and the standalone receiver's lines."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from or_assist.cli import main
from or_assist.cli.dicom import receive_command
from or_assist.errors import InputError
from or_assist.video.sources.dicom import DicomFrame, DicomSource, full_range_u16, parse_dicom_spec
from or_assist.video.sources.spec import open_source
from tests.dicom.test_receive import free_port, send, shot


def test_specs_parse_and_bad_ones_are_named():
    assert parse_dicom_spec("dicom://ORASSIST@11112") == {"ae_title": "ORASSIST", "host": "127.0.0.1", "port": 11112,
                                                          "allow": None, "address": None, "frames": None}
    got = parse_dicom_spec("dicom://ORASSIST@10.0.0.5:104?allow=CARM1,CARM2&address=10.0.0.9")
    assert (got["host"], got["port"], got["allow"], got["address"]) == ("10.0.0.5", 104, ["CARM1", "CARM2"],
                                                                        ["10.0.0.9"])
    for bad in ("dicom://ORASSIST", "dicom://@104", "dicom://ORASSIST@99999", "dicom://ORASSIST@104?colour=1",
                "dicom://WAY-TOO-LONG-AE-TITLE@104"):
        with pytest.raises(InputError, match="dicom://"):
            parse_dicom_spec(bad)
    with pytest.raises(InputError, match="allow=CARM1"):   # the C-arm's AE title is required
        open_source("dicom://ORASSIST@11112", store_dir="x")
    with pytest.raises(InputError, match="'colour'"):
        open_source("dicom://ORASSIST@11112?allow=CARM1", colour=True)
    source = open_source("dicom://ORASSIST@11112?allow=*")
    assert isinstance(source, DicomSource) and source.allow == "accept any"
    with pytest.raises(InputError, match="store_dir"):
        source.open()
    source.store_dir = "somewhere"
    with pytest.raises(InputError, match="accept_any_patient"):
        source.open()


def test_full_range_keeps_every_level():
    stored = np.arange(4096, dtype=np.uint16).reshape(64, 64)
    full = full_range_u16(stored, 12)
    assert full.dtype == np.uint16 and full.max() == 65520 and len(np.unique(full)) == 4096


def test_received_images_are_frames_with_their_header_and_full_depth(tmp_path):
    port = free_port()
    source = open_source(f"dicom://ORASSIST@{port}?allow=CARM1", store_dir=tmp_path / "rx", accept_any_patient=True)
    with source:
        assert source.read() is None and not source.ended   # nothing sent yet: no frame, not the end
        datasets = [shot(seed=k, instance_number=k + 1) for k in range(2)]
        _, statuses = send(port, datasets)
        frames = [source.read() for _ in range(2)]
    assert [s.Status for s in statuses] == [0, 0]
    for k, (frame, ds) in enumerate(zip(frames, datasets)):
        assert isinstance(frame, DicomFrame) and frame.exposure == k + 1 and frame.index == k
        assert frame.dicom.sop_instance_uid == ds.SOPInstanceUID and frame.dicom.sid_mm == pytest.approx(1000)
        assert frame.image.dtype == np.uint8 and frame.pixels.dtype == np.uint16
        assert np.array_equal(frame.pixels >> 4, ds.pixel_array)                 # all 12 bits kept
        assert np.abs(frame.image.astype(int) - (ds.pixel_array >> 4)).max() <= 1
        assert frame.path.parent == tmp_path / "rx"
    assert not source.server  # closed: the port is released


def test_a_run_gives_its_last_frame_or_every_frame_when_asked(tmp_path):
    runs = [np.random.default_rng(k).uniform(0.05, 1.0, (80, 96)) for k in range(2)]
    for frames, expected in (("last", [2]), ("all", [0, 1, 2])):
        port = free_port()
        source = open_source(f"dicom://ORASSIST@{port}?allow=CARM1&frames={frames}", store_dir=tmp_path / frames,
                             accept_any_patient=True)
        with source:
            ds = shot(seed=9, frames=runs)
            _, statuses = send(port, [ds])
            got = [source.read() for _ in expected]
            assert source.read() is None
        assert statuses[0].Status == 0
        assert [f.dicom.frame_index for f in got] == expected and [f.exposure for f in got] == [1, 2, 3][:len(got)]
        assert all(np.array_equal(f.pixels >> 4, ds.pixel_array[k]) for f, k in zip(got, expected))
    with pytest.raises(InputError, match="frames"):
        open_source("dicom://ORASSIST@11112?allow=CARM1&frames=some")


def _run_receive(argv_or_kwargs, port):
    """Run the receiver in a thread until it has answered, then stop it; its lines and summary."""
    lines, stop, out = [], threading.Event(), {}

    def target():
        out["summary"] = receive_command("ORASSIST", port, ["CARM1"], log=lines.append, stop=stop, **argv_or_kwargs)

    worker = threading.Thread(target=target)
    worker.start()
    deadline = time.monotonic() + 20
    while not any(line.startswith("listening") for line in lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    return worker, stop, lines, out


def test_receive_lists_each_object_and_each_refusal(tmp_path):
    port = free_port()
    worker, stop, lines, out = _run_receive({"out_dir": tmp_path / "rx", "accept_any_patient": True}, port)
    try:
        _, statuses = send(port, [shot(seed=1, patient_id="P-77")])
        assoc, refused = send(port, [shot(seed=2)], calling="STRANGER")
    finally:
        stop.set()
        worker.join()
    assert statuses[0].Status == 0 and refused is None
    assert lines[0] == f"listening as ORASSIST on 127.0.0.1:{port} for CARM1; storing into {tmp_path / 'rx'}"
    line = next(line for line in lines if line.startswith("1: "))
    assert "patient P-77" in line and "XA 96x80 12-bit" in line and "from CARM1" in line
    assert "geometry tags: source-detector distance, source-patient distance, imager pixel spacing, " \
           "positioner angles" in line and str(tmp_path / "rx" / "00001_") in line
    assert any("'STRANGER'" in line and "refused" in line for line in lines)
    assert lines[-1] == "received 1 object(s), refused 1" and out["summary"]["refused"]


def test_receive_command_line_errors(tmp_path, capsys):
    assert main(["receive", "--ae", "ORASSIST", "--port", "11112", "--allow-ae", "CARM1", "--out", str(tmp_path),
                 "--duration", "1"]) == 2
    assert "--accept-any-patient" in capsys.readouterr().err
    (tmp_path / "file").write_text("x", encoding="utf-8")
    assert main(["receive", "--ae", "ORASSIST", "--port", "11112", "--allow-ae", "CARM1", "--out",
                 str(tmp_path / "file"), "--accept-any-patient", "--duration", "1"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["receive", "--ae", "ORASSIST", "--port", "11112", "--allow-ae", "BAD\\AE", "--out", str(tmp_path),
                 "--accept-any-patient", "--duration", "1"]) == 2
    assert "allowed_calling_aes" in capsys.readouterr().err


def test_receive_runs_for_its_duration(tmp_path, capsys):
    port = free_port()
    started = time.monotonic()
    assert main(["receive", "--ae", "ORASSIST", "--port", str(port), "--allow-ae", "CARM1", "--out", str(tmp_path),
                 "--accept-any-patient", "--duration", "0.5"]) == 0
    assert 0.4 < time.monotonic() - started < 10
    assert "received 0 object(s), refused 0" in capsys.readouterr().out
