# lictrt_cpu_ops: the CPU kernels of the lictrt ops (trt_plugins/<op>/*_cpu_body.h) as one shared library
#   liblictrt_cpu_ops.so  C API for ctypes (lictrt_cpu_*: PyTorch's eager kernels, tests, benchmarks) and, when the
#                         ONNX Runtime headers are found (cmake/LictrtOnnxRuntime.cmake), RegisterCustomOps: the
#                         ONNX Runtime custom-op library. Links no onnxruntime or torch library.
# include()d by the root CMakeLists.txt (installed into the runtime package) and usable from any project.
include("${CMAKE_CURRENT_LIST_DIR}/../../cmake/LictrtOnnxRuntime.cmake")
find_package(Threads REQUIRED)

set(_dir "${CMAKE_CURRENT_LIST_DIR}")
add_library(lictrt_cpu_ops SHARED "${_dir}/cpu_kernels.cpp" "${_dir}/cpu_kernels_portable.cpp"
                                  "${_dir}/cpu_kernels_avx2.cpp" "${_dir}/cpu_c_api.cpp")
set_target_properties(lictrt_cpu_ops PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON CXX_VISIBILITY_PRESET hidden
                                                VISIBILITY_INLINES_HIDDEN ON)
# No contraction of a*b+c into fma beyond the explicit ones: the AVX2 and portable paths stay bit-identical.
target_compile_options(lictrt_cpu_ops PRIVATE -O3 -ffp-contract=off -fno-math-errno -Wall -Wextra)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|i.86")
  set_source_files_properties("${_dir}/cpu_kernels_avx2.cpp" PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
else()
  target_compile_definitions(lictrt_cpu_ops PRIVATE LICTRT_NO_SIMD=1)
endif()
target_link_libraries(lictrt_cpu_ops PRIVATE Threads::Threads)
target_link_options(lictrt_cpu_ops PRIVATE -Wl,--no-undefined)
if(TARGET lictrt::onnxruntime_headers)
  target_sources(lictrt_cpu_ops PRIVATE "${_dir}/ort_custom_ops.cpp")
  target_link_libraries(lictrt_cpu_ops PRIVATE lictrt::onnxruntime_headers)
  target_compile_definitions(lictrt_cpu_ops PRIVATE LICTRT_WITH_ONNXRUNTIME=1)
else()
  message(STATUS "lictrt: liblictrt_cpu_ops.so is built without the ONNX Runtime custom ops (no headers); "
                 "ONNX Runtime runs the ops' function bodies")
endif()
