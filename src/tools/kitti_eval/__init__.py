"""Command-line wrapper of the KITTI object evaluation (the evaluator lives in src/lib/evaluation/kitti)."""
