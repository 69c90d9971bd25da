"""Task name -> trainer class (multi_pose and ddd are imported on first use)."""
from __future__ import annotations

from utils.utils import LazyRegistry

from .ctdet import CtdetTrainer
from .exdet import ExdetTrainer

train_factory = LazyRegistry(
    {'exdet': ExdetTrainer, 'ctdet': CtdetTrainer},
    {'multi_pose': ('trains.multi_pose', 'MultiPoseTrainer'), 'ddd': ('trains.ddd', 'DddTrainer')})
