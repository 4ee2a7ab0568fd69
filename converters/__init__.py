"""Offline converters: fetch pinned sources, build ONNX/TFLite models, quantize, verify, bundle."""

CONVERTER_VERSION = "0.1.0"
