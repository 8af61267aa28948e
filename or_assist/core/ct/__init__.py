"""CT volumes: reading and writing NIfTI/NRRD/MHA and DICOM series through SimpleITK,
file checks, HU to attenuation, the voxel grid.

Modules::

    attenuation  Hounsfield units to linear X-ray attenuation (mm⁻¹) at a nominal photon energy.
    dicom        Reading a CT from DICOM: a series folder or a single (multi-frame) file.
    files        Integrity and geometry checks of CT volume files, before SimpleITK reads them.
    load         CT loading, saving, sanity checks, cropping, resampling and a summary for the CLI.
    tilt         Gantry-tilted (sheared) volumes resampled onto an orthonormal grid.
    volume       The CT volume type: HU voxels with their physical (LPS) geometry.
    voxel_grid   The geometry of a voxel grid in the patient frame, shared by CT and attenuation volumes.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.core.ct import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['attenuation', 'dicom', 'files', 'load', 'tilt', 'volume', 'voxel_grid'],
    submod_attrs={
        'attenuation': ['ENERGY_RANGE_KEV', 'mu_water_per_mm', 'mu_cortical_bone_per_mm', 'hu_to_attenuation', 'loglog_mu_rho'],
        'dicom': ['read_dicom_folder', 'read_dicom_file', 'sitk_reason', 'NotDicomError'],
        'files': ['check_volume_file'],
        'load': ['CTWarning', 'load_ct', 'save_ct', 'check_hu', 'crop_ct', 'resample_ct', 'ct_info', 'VOLUME_SUFFIXES'],
        'tilt': ['FILL_HU', 'ResampledWarning', 'tilt_deg', 'resample_sheared', 'nifti_sform_shear'],
        'volume': ['CTVolume', 'axis_codes'],
        'voxel_grid': ['VoxelGrid', 'as_points', 'corner_indices'],
    },
)
