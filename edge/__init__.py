"""facegate on-device runtime: detection, alignment, embedding, gallery and events."""

__version__ = "0.1.0"
