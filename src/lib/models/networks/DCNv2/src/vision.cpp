// Python bindings of the DCNv2 ops (module `_ext`).
#include <torch/extension.h>

#include "dcn_v2.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("dcn_v2_forward", &dcn_v2_forward, "modulated deformable convolution, forward");
  m.def("dcn_v2_backward", &dcn_v2_backward,
        "modulated deformable convolution, backward: [grad_input, grad_offset, grad_mask, grad_weight, grad_bias]");
  m.def("dcn_v2_psroi_pooling_forward", &dcn_v2_psroi_pooling_forward,
        "deformable PSROI pooling, forward: (output, top_count)");
  m.def("dcn_v2_psroi_pooling_backward", &dcn_v2_psroi_pooling_backward,
        "deformable PSROI pooling, backward: (grad_input, grad_offset)");
#ifdef WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
}
