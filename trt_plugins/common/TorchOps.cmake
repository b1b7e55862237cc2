# lictrt_torch_ops: the CPU kernels of the PyTorch operators torch.ops.lictrt.* (torch_ops.cpp) over the C API of
# lictrt_cpu_ops, for torch.ops.load_library (train/layers/native_scan.py). Built when torch is found:
#   -DLICTRT_TORCH_DIR=<torch package directory> (holding include/ and lib/), else the torch that
#   ${Python_EXECUTABLE} imports: first as the build runs it, then in its own environment (`python -I`), which is
#   where the package is installed when pip builds in an isolated environment without torch.
# Without torch one status line says so and the operators run their PyTorch reference on the CPU.
# include()d by the root CMakeLists.txt after CpuOps.cmake (needs the lictrt_cpu_ops target and Python).
set(LICTRT_TORCH_DIR "" CACHE PATH "torch package directory for lictrt_torch_ops (default: torch of the Python)")
option(LICTRT_TORCH_OPS "Build the PyTorch CPU kernels of torch.ops.lictrt.* when torch is found" ON)

set(_lictrt_torch_abi "")
if(LICTRT_TORCH_OPS AND NOT LICTRT_TORCH_DIR AND Python_EXECUTABLE)
  foreach(_isolated OFF ON)
    set(_flags "")
    if(_isolated)
      set(_flags "-I")
    endif()
    execute_process(
      COMMAND "${Python_EXECUTABLE}" ${_flags} -c
              "import os, torch; print(os.path.dirname(torch.__file__)); print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"
      OUTPUT_VARIABLE _out RESULT_VARIABLE _rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(_rc EQUAL 0)
      string(REPLACE "\n" ";" _out "${_out}")
      list(GET _out 0 LICTRT_TORCH_DIR)
      list(GET _out 1 _lictrt_torch_abi)
      break()
    endif()
  endforeach()
endif()

if(NOT LICTRT_TORCH_OPS)
  message(STATUS "lictrt: PyTorch CPU kernels off (LICTRT_TORCH_OPS=OFF)")
elseif(NOT LICTRT_TORCH_DIR OR NOT EXISTS "${LICTRT_TORCH_DIR}/include/torch/library.h")
  message(STATUS "lictrt: torch not found (set LICTRT_TORCH_DIR): PyTorch CPU kernels of torch.ops.lictrt skipped")
else()
  find_library(_lictrt_torch_cpu torch_cpu PATHS "${LICTRT_TORCH_DIR}/lib" NO_DEFAULT_PATH)
  find_library(_lictrt_c10 c10 PATHS "${LICTRT_TORCH_DIR}/lib" NO_DEFAULT_PATH)
  message(STATUS "lictrt: PyTorch CPU kernels of torch.ops.lictrt against ${LICTRT_TORCH_DIR}")
  add_library(lictrt_torch_ops SHARED "${CMAKE_CURRENT_LIST_DIR}/torch_ops.cpp")
  target_include_directories(lictrt_torch_ops SYSTEM PRIVATE "${LICTRT_TORCH_DIR}/include")
  # libtorch_cpu and libc10 are already loaded by torch when torch.ops.load_library opens this library, and
  # liblictrt_cpu_ops is found next to it ($ORIGIN, in the build tree too): the same file runtime.native_ops loads.
  target_link_libraries(lictrt_torch_ops PRIVATE lictrt_cpu_ops "${_lictrt_torch_cpu}" "${_lictrt_c10}")
  if(NOT _lictrt_torch_abi STREQUAL "")
    target_compile_definitions(lictrt_torch_ops PRIVATE _GLIBCXX_USE_CXX11_ABI=${_lictrt_torch_abi})
  endif()
  set_target_properties(lictrt_torch_ops PROPERTIES CXX_STANDARD 20 CXX_STANDARD_REQUIRED ON
                                                    CXX_VISIBILITY_PRESET hidden INSTALL_RPATH "$ORIGIN"
                                                    BUILD_WITH_INSTALL_RPATH ON)
  target_compile_options(lictrt_torch_ops PRIVATE -O2)
endif()
