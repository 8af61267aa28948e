"""DICOM: patient identity, objects for the archive, and the network (Storage SCU). Imports only ``core``.

Modules::

    identity     The patient identity of the plan's CT and the check that an incoming image is of that patient.
    objects      DICOM objects for the PACS archive: captures as secondary capture images, the report as encapsulated PDF.
    send         Sending DICOM objects to PACS: C-STORE (Storage SCU) and C-ECHO, with pynetdicom.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.dicom import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['identity', 'objects', 'send'],
    submod_attrs={
        'identity': ['PatientIdentity', 'WrongPatientError', 'ct_identity', 'check_patient', 'VOLUME_SUFFIXES'],
        'objects': ['SERIES', 'ENCAPSULATED_PDF_STORAGE', 'MANUFACTURER', 'Deidentification', 'object_uid',
                    'derived_pseudonym', 'deidentified_identity', 'capture_image', 'encapsulated_pdf'],
        'send': ['StoreResult', 'Destination', 'parse_destination', 'store_objects', 'echo', 'STORED', 'FAILED'],
    },
)
