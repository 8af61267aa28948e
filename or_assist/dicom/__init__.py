"""DICOM in the OR: shots read from DICOM objects, their header geometry, and (in other
modules) the C-arm receiver and the PACS archive. Imports only ``or_assist.core``.

Modules::

    header           The header of a DICOM projection shot: identity, geometry and exposure tags.
    shot             Reading a fluoroscopy shot from a DICOM object: full-bit-depth pixels and the header.
    header_geometry  C-arm geometry and a registration start from a shot's header; checks against a calibration.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.dicom import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['header', 'shot', 'header_geometry'],
    submod_attrs={
        'header': ['DicomShotHeader', 'header_from_dataset', 'find_tag', 'shutter_mask'],
        'shot': ['DicomShot', 'read_dicom_shot', 'read_dicom_shots', 'read_dicom_header', 'read_dicom_dataset',
                 'PROJECTION_SOP_CLASSES', 'PROJECTION_MODALITIES', 'is_dicom_file'],
        'header_geometry': ['DEFAULT_ISOCENTER_FRACTION', 'SID_TOLERANCE_FRACTION', 'FIELD_TOLERANCE_FRACTION',
                            'MAGNIFICATION_TOLERANCE_FRACTION', 'geometry_from_header', 'missing_geometry_reason',
                            'compare_geometry', 'beam_from_positioner_angles', 'positioner_angles_from_beam',
                            'start_pose_from_header', 'patient_direction_lps', 'resolve_geometry'],
    },
)
