"""The C-arm receiver (Storage SCP) against a real pynetdicom SCU on 127.0.0.1: C-ECHO, access
(AE titles, addresses), the patient check, storage only in the store folder, compressed and
multi-frame objects, start/stop."""

from __future__ import annotations

import socket
import threading
import warnings

import numpy as np
import pydicom
import pytest
from pynetdicom import AE

from or_assist.core.geometry import CArmGeometry
from or_assist.dicom.receive import (ACCEPT_ANY, STATUS_NOT_A_SHOT, STATUS_WRONG_PATIENT, STORAGE_SOP_CLASSES,
                                     StorageServer, accepted_transfer_syntaxes, patient_check_for_ct, safe_file_name)
from or_assist.errors import InputError
from or_assist.sim.dicom_carm import encode_dataset, shot_dataset

GEOM = CArmGeometry((96, 80), 1000.0, (0.8, 0.8), (47.5, 39.5), 600.0)
VERIFICATION = "1.2.840.10008.1.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shot(seed: int = 0, **kwargs):
    """A small simulated-detector image as an XA object (12 bit, angles in the header)."""
    img = np.random.default_rng(seed).uniform(0.05, 1.0, (80, 96))
    kwargs.setdefault("angles_deg", (10.0, 5.0))
    return shot_dataset(img, GEOM, None, **kwargs)


def send(port: int, datasets, calling: str = "CARM1", called: str = "ORASSIST", compressed=()):
    """C-STORE each dataset from a real SCU; the association and the statuses (None: not associated).
    ``compressed``: transfer syntaxes proposed for XA objects, one context each (as a C-arm does)."""
    ae = AE(ae_title=calling)
    for uid in STORAGE_SOP_CLASSES:
        ae.add_requested_context(uid)
    for ts in compressed:
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.12.1", [ts])
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if not assoc.is_established:
        return assoc, None
    statuses = [assoc.send_c_store(ds) for ds in datasets]
    assoc.release()
    return assoc, statuses


@pytest.fixture
def received():
    return []


@pytest.fixture
def server(tmp_path, received):
    lines = []
    srv = StorageServer("ORASSIST", 0, allowed_calling_aes=["CARM1"], store_dir=tmp_path / "store",
                        on_image=received.append, patient_check=ACCEPT_ANY, log=lines.append)
    srv.lines = lines
    with srv:
        yield srv


def test_c_echo_answers(server):
    ae = AE(ae_title="CARM1")
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate("127.0.0.1", server.port, ae_title="ORASSIST")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()
    assert server.host == "127.0.0.1"


def test_unknown_calling_ae_title_is_rejected(server, received):
    assoc, statuses = send(server.port, [shot()], calling="INTRUDER")
    assert statuses is None and assoc.is_rejected
    rj = assoc.acceptor.primitive
    assert (rj.result, rj.result_source, rj.diagnostic) == (0x01, 0x01, 0x03)  # permanent, user, calling AE title
    assert not received and not any(server.store_dir.iterdir())
    assert any("'INTRUDER'" in line and "not allowed" in line for line in server.lines)


def test_address_not_allowed_is_rejected(tmp_path):
    with StorageServer("ORASSIST", 0, allowed_calling_aes=["CARM1"], allowed_addresses=["10.1.2.3"],
                       store_dir=tmp_path, patient_check=ACCEPT_ANY, log=lambda line: None) as srv:
        assoc, statuses = send(srv.port, [shot()])
        assert statuses is None and assoc.is_rejected
        assert (assoc.acceptor.primitive.result, assoc.acceptor.primitive.result_source) == (0x01, 0x01)
        assert any("127.0.0.1" in line and "address not allowed" in line for line in srv.refused)


def test_a_shot_is_stored_inside_the_store_folder_and_handed_on(server, received, tmp_path):
    ds = shot(seed=1)
    with warnings.catch_warnings():  # pydicom warns on the invalid UI value itself
        warnings.simplefilter("ignore")
        ds.SOPInstanceUID = "1.2.3/../../../evil"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        _, statuses = send(server.port, [ds])
    assert [s.Status for s in statuses] == [0x0000]
    assert len(received) == 1
    item = received[0]
    assert item.path.parent == server.store_dir and item.path.name == "00001_1.2.3.dcm"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]            # nothing beside the store
    assert [p.name for p in server.store_dir.iterdir()] == ["00001_1.2.3.dcm"]  # no temporary file left
    assert item.calling_ae == "CARM1" and item.address == "127.0.0.1"
    sent = pydicom.dcmread(item.path).pixel_array
    assert np.array_equal(item.shot.pixels, sent) and item.shot.bits_stored == 12
    assert item.shot.header.primary_angle_deg == pytest.approx(10.0) and item.shot.header.has_geometry


def test_safe_file_names_never_carry_a_path():
    assert safe_file_name(3, "../../etc/passwd") == "00003_no-uid.dcm"
    assert safe_file_name(12, "1.2.840/..\\x") == "00012_1.2.840.dcm"
    assert "/" not in safe_file_name(1, "/" * 200) and len(safe_file_name(1, "1" * 300)) <= 75


def test_the_same_instance_sent_twice_is_handed_on_once(server, received):
    ds = shot(seed=2)
    _, statuses = send(server.port, [ds, ds])
    assert [s.Status for s in statuses] == [0, 0]
    assert len(received) == 1 and any("received again" in line for line in server.lines)


def _ct_with_patient(dicom_dir, folder, patient_id="PAT-001"):
    """One slice of the real CT fixture with a patient ID (the fixture is anonymised)."""
    folder.mkdir()
    ds = pydicom.dcmread(sorted(dicom_dir.iterdir())[0])
    ds.PatientID, ds.StudyInstanceUID = patient_id, "1.2.826.0.1.3680043.10.77"
    ds.save_as(folder / "ct.dcm")
    return folder / "ct.dcm"


@pytest.mark.parametrize("override", [False, True])
def test_a_wrong_patient_is_refused_unless_overridden(dicom_dir, tmp_path, override):
    ct = _ct_with_patient(dicom_dir, tmp_path / "ct")
    got, lines = [], []
    check = patient_check_for_ct(ct, override=override)
    with StorageServer("ORASSIST", 0, allowed_calling_aes=["CARM1"], store_dir=tmp_path / "store",
                       on_image=got.append, patient_check=check, log=lines.append) as srv:
        right = shot(seed=3, patient_id="PAT-001", study_instance_uid="1.2.826.0.1.3680043.10.77")
        wrong = shot(seed=4, patient_id="SOMEONE-ELSE")
        _, statuses = send(srv.port, [right, wrong])
    if override:
        assert [s.Status for s in statuses] == [0, 0] and len(got) == 2
        assert got[0].warning is None and "SOMEONE-ELSE" in got[1].warning and "overridden" in got[1].warning
        assert len(list(srv.store_dir.iterdir())) == 2
    else:
        assert statuses[0].Status == 0 and statuses[1].Status == STATUS_WRONG_PATIENT
        assert "wrong patient" in str(statuses[1].ErrorComment)
        assert [g.identity.patient_id for g in got] == ["PAT-001"]        # nothing of the other patient handed on
        assert len(list(srv.store_dir.iterdir())) == 1                     # nor stored
        assert any("'SOMEONE-ELSE'" in line and "'PAT-001'" in line and "refused" in line for line in lines)


def test_an_object_that_is_not_a_shot_gets_a_failure_status(server, received):
    ct = shot(seed=5, sop_class="sc", extra={"Modality": "CT"})
    _, statuses = send(server.port, [ct])
    assert statuses[0].Status == STATUS_NOT_A_SHOT and "projection" in str(statuses[0].ErrorComment)
    assert not received and not any(server.store_dir.iterdir())


def test_compressed_and_multi_frame_objects(server, received):
    rle = encode_dataset(shot(seed=6), pydicom.uid.RLELossless)
    frames = [np.random.default_rng(k).uniform(0.05, 1.0, (80, 96)) for k in range(2)]
    multi = shot(seed=7, sop_class="xa", frames=frames)
    assert pydicom.uid.RLELossless in accepted_transfer_syntaxes()
    _, statuses = send(server.port, [rle, multi], compressed=[pydicom.uid.RLELossless])
    assert [s.Status for s in statuses] == [0, 0]
    assert pydicom.dcmread(received[0].path).file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    assert np.array_equal(received[0].shot.pixels, shot(seed=6).pixel_array)    # lossless, full depth
    last = received[1].shot
    assert last.header.frame_count == 3 and last.header.frame_index == 2    # the last frame of the run
    assert np.array_equal(last.pixels, pydicom.dcmread(received[1].path).pixel_array[-1])


def test_start_stop_start_on_the_same_port(tmp_path):
    port = free_port()
    srv = StorageServer("ORASSIST", port, allowed_calling_aes=["CARM1"], store_dir=tmp_path,
                        patient_check=ACCEPT_ANY)
    for _ in range(2):
        srv.start()
        assert srv.running and srv.port == port
        _, statuses = send(port, [shot()])
        assert statuses[0].Status == 0
        srv.stop()
        assert not srv.running
    with pytest.raises(ConnectionRefusedError):  # nobody listens any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_concurrent_senders(server, received):
    results = []

    def one(seed):
        results.append(send(server.port, [shot(seed=seed)])[1][0].Status)

    threads = [threading.Thread(target=one, args=(10 + k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [0, 0, 0]
    assert sorted(r.number for r in received) == [1, 2, 3]
    assert len({r.path for r in received}) == 3


def test_bad_arguments_are_named(tmp_path):
    base = dict(store_dir=tmp_path, patient_check=ACCEPT_ANY)
    with pytest.raises(InputError, match="allowed_calling_aes"):
        StorageServer("ORASSIST", 0, allowed_calling_aes=[], **base)
    with pytest.raises(InputError, match="allowed_calling_aes"):
        StorageServer("ORASSIST", 0, **base)
    with pytest.raises(InputError, match="ae_title"):
        StorageServer("THIS-TITLE-IS-TOO-LONG", 0, allowed_calling_aes=ACCEPT_ANY, **base)
    with pytest.raises(InputError, match="port"):
        StorageServer("ORASSIST", 70000, allowed_calling_aes=ACCEPT_ANY, **base)
    with pytest.raises(InputError, match="host"):
        StorageServer("ORASSIST", 0, host="localhost:1", allowed_calling_aes=ACCEPT_ANY, **base)
    with pytest.raises(InputError, match="patient_check"):
        StorageServer("ORASSIST", 0, allowed_calling_aes=ACCEPT_ANY, store_dir=tmp_path)
    with pytest.raises(InputError, match="allowed_addresses"):
        StorageServer("ORASSIST", 0, allowed_calling_aes=ACCEPT_ANY, allowed_addresses=["not-an-ip"], **base)


def test_a_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        srv = StorageServer("ORASSIST", s.getsockname()[1], allowed_calling_aes=ACCEPT_ANY, store_dir=tmp_path,
                            patient_check=ACCEPT_ANY)
        with pytest.raises(InputError, match="could not listen"):
            srv.start()
        assert not srv.running
