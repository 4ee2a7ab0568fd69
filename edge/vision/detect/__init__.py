"""Face detectors: each owns its pre/post-processing and runs on any ``Backend``."""

from facegate.vision.detect.mtcnn import MTCNN, MTCNNConfig, nms, pyramid_scales

__all__ = ["MTCNN", "MTCNNConfig", "nms", "pyramid_scales"]
