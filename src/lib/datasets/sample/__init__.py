"""Per-task training sample generators (__getitem__ halves of the datasets)."""
