"""Case log (SQLite + images), report and export: stores and reports only.

Modules::

    archive      Archiving a case to PACS: captures as DICOM secondary capture images, the report as encapsulated PDF.
    caselog      The case log: a record of one operation, written as it happens.
    export       Exporting a case for use outside the OR: text-masked images, optional pseudonymisation.
    images       Image files of a case: checked arrays, atomic PNG writes, checked reads, text masking.
    report       The case report: one self-contained HTML file (and a PDF through Chromium if present).
    report_3d    The case report's two-view 3-D section: the latest 3-D deviation per implant beside the post-op CT's numbers.
    report_html  HTML pieces of the case report: stylesheet (screen and print), image-load script, tables.
    report_pdf   The case report as PDF: headless Chromium prints the HTML report.
    schema       The case database's schema: DDL of each version and the ordered migrations.

Names are exported lazily (``lazy_loader``, as in scikit-image): importing this package
imports no submodule, ``from or_assist.session import name`` imports only the one that
defines ``name``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['archive', 'caselog', 'export', 'images', 'report', 'report_3d', 'report_html', 'report_pdf', 'schema'],
    submod_attrs={
        'archive': ['ArchiveItem', 'ArchiveSummary', 'REPORT_PDF', 'archive_case', 'case_identity'],
        'caselog': ['CASE_DB', 'IMAGES_DIR', 'FOLDER_MODE', 'ARCHIVE_STATUSES', 'CaseLog', 'default_cases_root', 'list_cases'],
        'export': ['EXPORT_SCHEMA', 'shown_image', 'pseudonymise_summary', 'export_case'],
        'images': ['FILE_MODE', 'check_image', 'check_mask', 'encode_png', 'write_file_atomic', 'fsync_dir', 'read_png', 'apply_text_mask'],
        'report': ['REPORT_NAME', 'build_report', 'registration_stats', 'final_deviations'],
        'report_3d': ['latest_3d', 'read_postop_numbers', 'plus_minus', 'three_d_section'],
        'report_html': ['CSS', 'SCRIPT', 'fmt', 'table', 'kv_table', 'cue_html'],
        'report_pdf': ['find_chromium', 'chromium_args', 'export_pdf'],
        'schema': ['SCHEMA_VERSION', 'DDL_V1', 'MIGRATIONS', 'create_schema', 'read_schema_version', 'migrate'],
    },
)
