"""KITTI object evaluation in Python (numba): 2D, orientation (AOS), bird's-eye-view and 3D AP."""
