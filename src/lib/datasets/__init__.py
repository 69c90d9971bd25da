"""Datasets: dataset classes (paths, tables, evaluation) and per-task sample generators."""
