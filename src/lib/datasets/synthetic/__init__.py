"""Generators of the built-in synthetic datasets (no download needed): shapes (det), people (hp), kitti (ddd)."""
