"""Bulk loading of history files and maintenance of the rollups (``eras ingest``,
``eras rebuild-rollups``, ``eras verify``)."""
