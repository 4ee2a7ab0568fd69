"""Errors facegate raises at its boundaries; the CLI turns each into a one-line message."""


class FacegateError(Exception):
    """Base class: anything the user can act on, printed as one line without a traceback."""


class ModelError(FacegateError):
    """A model file or bundle is missing, tampered with, truncated or has the wrong signature."""


class BundleError(ModelError):
    """A bundle manifest is missing, malformed or of an unknown schema."""


class ImageError(FacegateError):
    """An image cannot be read or decoded."""


class GalleryError(FacegateError):
    """The gallery cannot be opened, is inconsistent, or was made by another model."""


class ConfigError(FacegateError):
    """A configuration value is missing, unknown or out of range."""


class SourceError(FacegateError):
    """A model source package cannot be fetched or does not match its pinned sha256."""


class CameraError(FacegateError):
    """A frame source (camera, stream, video file, image folder) cannot be opened or read."""
