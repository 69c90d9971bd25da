"""Benchmark evaluators the dataset classes call in-process: KITTI object (`kitti`) and Pascal VOC07 (`voc`)."""
