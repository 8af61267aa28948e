"""Case log and report.

    caselog   the case folder: SQLite (WAL) database + atomically written images; the
              only module (with ``schema``) that knows SQL
    schema    database versions and migrations
    images    image checks, atomic PNG files, text masking
    export    export with text masking and pseudonymisation
    report    self-contained HTML report (PDF through headless Chromium)
    command   ``or-assist report`` / ``cases`` / ``export``
"""

__all__: list[str] = []
