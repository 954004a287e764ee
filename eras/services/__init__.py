"""What the service does, each job owning its transaction: ingest, loading, replay, stats."""
