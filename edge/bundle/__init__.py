"""Model bundles: the manifest and its files (load, verify), and the parity helpers."""

from facegate.bundle.manifest import SCHEMA_VERSION, Bundle, InputSpec, ModelEntry, sha256_file

__all__ = ["SCHEMA_VERSION", "Bundle", "InputSpec", "ModelEntry", "sha256_file"]
