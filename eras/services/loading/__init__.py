"""eras ingest: files of events, Panoptes exports and the original service's tables."""
