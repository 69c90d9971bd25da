"""Task name -> detector class (multi_pose and ddd are imported on first use)."""
from __future__ import annotations

from utils.utils import LazyRegistry

from .ctdet import CtdetDetector
from .exdet import ExdetDetector

detector_factory = LazyRegistry(
    {'exdet': ExdetDetector, 'ctdet': CtdetDetector},
    {'ddd': ('detectors.ddd', 'DddDetector'), 'multi_pose': ('detectors.multi_pose', 'MultiPoseDetector')})
