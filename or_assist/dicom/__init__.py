"""DICOM: patient identity, objects for the archive, and the network (Storage SCU). Imports only ``core``.

Modules::

    identity     The patient identity of the plan's CT and the check that an incoming image is of that patient.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.dicom import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['identity'],
    submod_attrs={
        'identity': ['PatientIdentity', 'WrongPatientError', 'ct_identity', 'check_patient', 'VOLUME_SUFFIXES'],
    },
)
