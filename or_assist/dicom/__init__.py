"""DICOM in the OR: shots read from DICOM objects, their header geometry, the patient identity,
the C-arm receiver (Storage SCP), and the PACS archive's objects and network (Storage SCU).
Imports only ``or_assist.core``.

Modules::

    header           The header of a DICOM projection shot: identity, geometry and exposure tags.
    shot             Reading a fluoroscopy shot from a DICOM object: full-bit-depth pixels and the header.
    header_geometry  C-arm geometry and a registration start from a shot's header; checks against a calibration.
    identity         The patient identity of the plan's CT and the check that an incoming image is of that patient.
    receive          Receiving shots from the C-arm over DICOM: a Storage SCP (pynetdicom).
    objects          DICOM objects for the PACS archive: captures as secondary capture images, the report as encapsulated PDF.
    send             Sending DICOM objects to PACS: C-STORE (Storage SCU) and C-ECHO, with pynetdicom.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.dicom import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['header', 'shot', 'header_geometry', 'identity', 'receive', 'objects', 'send'],
    submod_attrs={
        'header': ['DicomShotHeader', 'header_from_dataset', 'find_tag', 'shutter_mask'],
        'shot': ['DicomShot', 'read_dicom_shot', 'read_dicom_shots', 'read_dicom_header', 'read_dicom_dataset',
                 'PROJECTION_SOP_CLASSES', 'PROJECTION_MODALITIES', 'is_dicom_file'],
        'header_geometry': ['DEFAULT_ISOCENTER_FRACTION', 'SID_TOLERANCE_FRACTION', 'FIELD_TOLERANCE_FRACTION',
                            'MAGNIFICATION_TOLERANCE_FRACTION', 'geometry_from_header', 'missing_geometry_reason',
                            'compare_geometry', 'beam_from_positioner_angles', 'positioner_angles_from_beam',
                            'start_pose_from_header', 'patient_direction_lps', 'resolve_geometry'],
        'identity': ['PatientIdentity', 'WrongPatientError', 'ct_identity', 'check_patient', 'VOLUME_SUFFIXES'],
        'receive': ['ACCEPT_ANY', 'STORAGE_SOP_CLASSES', 'STATUS_WRONG_PATIENT', 'STATUS_NOT_A_SHOT',
                    'STATUS_NOT_STORED', 'ReceivedImage', 'StorageServer', 'accepted_transfer_syntaxes',
                    'patient_check_for_ct', 'check_ae_title', 'safe_file_name'],
        'objects': ['SERIES', 'ENCAPSULATED_PDF_STORAGE', 'MANUFACTURER', 'Deidentification', 'object_uid',
                    'derived_pseudonym', 'deidentified_identity', 'capture_image', 'encapsulated_pdf'],
        'send': ['StoreResult', 'Destination', 'parse_destination', 'store_objects', 'echo', 'STORED', 'FAILED'],
    },
)
