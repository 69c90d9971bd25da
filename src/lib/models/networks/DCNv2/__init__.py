"""DCNv2: modulated deformable convolution and deformable PSROI pooling (C++/CUDA extension `_ext`)."""
