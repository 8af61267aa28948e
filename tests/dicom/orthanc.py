"""A real Orthanc PACS for the tests: started on 127.0.0.1 with a temporary configuration and
storage, queried over REST, stopped after (terminate, wait, kill).

The Debian package ``orthanc`` (``/usr/sbin/Orthanc``) is used; ``.ci/run`` installs it.
Orthanc 1.10 has no listen-address option: its ports are open on every interface, but HTTP
answers only 127.0.0.1 (``RemoteAccessAllowed`` false) and DICOM answers (echo, store, find)
only our AE title from 127.0.0.1 (``DicomCheckModalityHost``).
Tests skip, saying so, only when the binary is absent.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ORTHANC_BIN = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
PACS_AE = "ORTHANCTEST"
OUR_AE = "ORASSIST"


def orthanc_available() -> bool:
    return Path(ORTHANC_BIN).is_file()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Orthanc:
    """One Orthanc server with its own folder (configuration, storage, index, log).

    ``start()`` and ``stop()`` may be called again: the same ports and storage are used,
    so a restarted server has what it stored before.
    """

    def __init__(self, folder: Path, *, check_called_ae: bool = True):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dicom_port, self.http_port = free_port(), free_port()
        self.config = self.folder / "orthanc.json"
        self.log_path = self.folder / "orthanc.log"
        self.proc: subprocess.Popen | None = None
        cfg = {
            "Name": "or_assist-test", "DicomAet": PACS_AE, "DicomPort": self.dicom_port, "HttpPort": self.http_port,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "Plugins": [],
            "StorageDirectory": str(self.folder / "storage"), "IndexDirectory": str(self.folder / "index"),
            "DicomCheckCalledAet": check_called_ae, "DicomAlwaysAllowStore": False, "DicomAlwaysAllowEcho": False,
            "DicomAlwaysAllowFind": False, "DicomCheckModalityHost": True,
            "DicomModalities": {"orassist": [OUR_AE, "127.0.0.1", 104]},
            "HttpServerEnabled": True, "SaveJobs": False, "StableAge": 1, "ConcurrentJobs": 1,
            "DicomScpTimeout": 10, "HttpsVerifyPeers": False,
        }
        self.config.write_text(json.dumps(cfg, indent=1), encoding="utf-8")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout_s: float = 30.0) -> "Orthanc":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([ORTHANC_BIN, str(self.config)], stdout=log, stderr=subprocess.STDOUT,
                                     cwd=self.folder)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                self.get("/system")
                if self._dicom_listening():
                    return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout_s} s: {self.log_tail()}")

    def _dicom_listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.dicom_port), timeout=1.0):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def log_tail(self, n: int = 1500) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            data = r.read()
            return json.loads(data) if r.headers.get_content_type() == "application/json" else data

    def instances(self) -> list[str]:
        return self.get("/instances")

    def instance_file(self, orthanc_id: str) -> bytes:
        return self.get(f"/instances/{orthanc_id}/file")


# ---------------------------------------------------------------------------- test data

CT_PATIENT = {"PatientID": "PAT-0042", "PatientName": "Testperson^Anna", "PatientBirthDate": "19610203",
              "PatientSex": "F", "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.4242", "AccessionNumber": "ACC42",
              "StudyID": "S42", "ReferringPhysicianName": "Referrer^Rita", "InstitutionName": "Test Hospital"}


def identified_series(dicom_dir: Path, out_dir: Path, **values) -> Path:
    """A copy of the real DICOM series with identity tags set (pixel data left encapsulated, untouched)."""
    import pydicom

    out_dir.mkdir(parents=True)
    for path in sorted(Path(dicom_dir).iterdir()):
        ds = pydicom.dcmread(path)
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        ds.save_as(out_dir / path.name)
    return out_dir
