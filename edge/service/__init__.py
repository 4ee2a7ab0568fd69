"""The service: the daemon's frame loop, capture, pipeline, health, metrics and snapshots."""
