"""Task name -> detector class."""
from __future__ import annotations

from utils.registry import LazyRegistry

detector_factory = LazyRegistry("task", {
    "exdet": "detectors.exdet:ExdetDetector",
    "ddd": "detectors.ddd:DddDetector",
    "ctdet": "detectors.ctdet:CtdetDetector",
    "multi_pose": "detectors.multi_pose:MultiPoseDetector",
    "centernet2": "detectors.centernet2:CenterNet2Detector",
})
