#!/usr/bin/env bash
# Compile-only check of the DCNv2 CUDA sources, so a broken .cu fails CI on machines without a GPU.
# Each src/cuda/*.cu is compiled to an object file with nvcc against torch's headers, and the
# dispatcher/bindings (src/vision.cpp) with the C++ compiler and WITH_CUDA defined. Nothing is linked
# or run. Exits 0 with a message when nvcc is not available.
#   PYTHON=...      interpreter whose torch provides the headers (default: the project's .venv)
#   NVCC=...        nvcc to use (default: nvcc on PATH, else $CUDA_HOME/bin/nvcc, else /usr/local/cuda/bin/nvcc)
#   NVCC_ARCH=...   target architecture (default sm_80)
#   CXX_STD=...     C++ standard (default: the one torch's extension builder uses)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../../../.." && pwd)"

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
if [[ -z "${NVCC:-}" ]]; then
  if command -v nvcc >/dev/null 2>&1; then NVCC="$(command -v nvcc)"
  elif [[ -n "${CUDA_HOME:-}" && -x "$CUDA_HOME/bin/nvcc" ]]; then NVCC="$CUDA_HOME/bin/nvcc"
  elif [[ -x /usr/local/cuda/bin/nvcc ]]; then NVCC=/usr/local/cuda/bin/nvcc
  else
    echo "check_cuda_compile: nvcc not found; CUDA sources not compile-checked (skipped)"
    exit 0
  fi
fi

mapfile -t INFO < <("$PYTHON" - <<'PY'
import os, re, sysconfig
import torch
from torch.utils import cpp_extension
print(os.pathsep.join(cpp_extension.include_paths()))
print(sysconfig.get_paths()["include"])
src = open(cpp_extension.__file__).read()
print("c++20" if "-std=c++20" in src else "c++17")
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
PY
)
IFS=':' read -r -a TORCH_INC <<< "${INFO[0]}"
PY_INC="${INFO[1]}"
STD="${CXX_STD:-${INFO[2]}}"
ABI="${INFO[3]}"
ARCH="${NVCC_ARCH:-sm_80}"
CUDA_ROOT="$(cd "$(dirname "$NVCC")/.." && pwd)"

INC=(-I"$HERE/src" -I"$CUDA_ROOT/include")
for d in "${TORCH_INC[@]}"; do INC+=(-I"$d"); done
for h in ATen/cuda/Atomic.cuh c10/cuda/CUDAStream.h c10/cuda/CUDAGuard.h c10/cuda/CUDAException.h; do
  if [[ ! -f "${TORCH_INC[0]}/$h" ]]; then
    echo "check_cuda_compile: torch at ${TORCH_INC[0]} lacks $h (CPU-only wheel); CUDA sources not compile-checked (skipped)"
    exit 0
  fi
done

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
# CPU-only torch wheels ship the c10/cuda headers but not this generated one; supply what a CUDA
# build generates there (shared-library build) so the rest of the headers can be checked.
SHIM_NOTE=""
if [[ ! -f "${TORCH_INC[0]}/c10/cuda/impl/cuda_cmake_macros.h" ]]; then
  mkdir -p "$OUT/shim/c10/cuda/impl"
  printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' > "$OUT/shim/c10/cuda/impl/cuda_cmake_macros.h"
  INC+=(-I"$OUT/shim")
  SHIM_NOTE=" (generated c10/cuda/impl/cuda_cmake_macros.h missing from this torch: shimmed)"
fi
echo "check_cuda_compile: $("$NVCC" --version | tail -n 1), -std=$STD, -arch=$ARCH, torch headers ${TORCH_INC[0]}$SHIM_NOTE"
# The units compile in parallel (each takes a minute or more, most of it in torch's headers);
# each one's messages go to its own log, printed in a fixed order afterwards.
compile_cu() {
  "$NVCC" -c "$1" -o "$OUT/$2.o" -std="$STD" -arch="$ARCH" -O1 "${INC[@]}" \
    --expt-relaxed-constexpr -Xcompiler -fPIC -D_GLIBCXX_USE_CXX11_ABI="$ABI" \
    -DCUDA_HAS_FP16=1 -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__ \
    -DTORCH_EXTENSION_NAME=_ext -DTORCH_API_INCLUDE_EXTENSION_H
}
CXX="${CXX:-c++}"
compile_cpp() {
  "$CXX" -c "$HERE/src/vision.cpp" -o "$OUT/vision.o" -std="$STD" -O0 -fPIC -DWITH_CUDA "${INC[@]}" -I"$PY_INC" \
    -D_GLIBCXX_USE_CXX11_ABI="$ABI" -DTORCH_EXTENSION_NAME=_ext -DTORCH_API_INCLUDE_EXTENSION_H
}
names=() pids=()
for cu in "$HERE"/src/cuda/*.cu; do
  name="$(basename "$cu" .cu)"
  compile_cu "$cu" "$name" > "$OUT/$name.log" 2>&1 &
  names+=("$name") pids+=($!)
done
compile_cpp > "$OUT/vision.log" 2>&1 &
vision_pid=$!
status=0
for i in "${!names[@]}"; do
  name="${names[$i]}"
  if wait "${pids[$i]}"; then
    echo "  ok   nvcc -c src/cuda/$name.cu"
  else
    cat "$OUT/$name.log"; echo "  FAIL nvcc -c src/cuda/$name.cu"; status=1
  fi
done
if wait "$vision_pid"; then
  echo "  ok   $CXX -c src/vision.cpp -DWITH_CUDA (dispatch to the CUDA kernels)"
else
  cat "$OUT/vision.log"; echo "  FAIL $CXX -c src/vision.cpp -DWITH_CUDA"; status=1
fi
[[ $status -eq 0 ]] && echo "check_cuda_compile: all CUDA sources compile" || echo "check_cuda_compile: FAILED"
exit $status
