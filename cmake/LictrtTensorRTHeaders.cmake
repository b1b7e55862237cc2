# lictrt_tensorrt_headers(<out_var>): directory holding NvInferRuntime.h, for compiling against TensorRT without
# linking it. Order: -DTENSORRT_INCLUDE_DIR / -DTENSORRT_ROOT (or the env vars of the same name), else the
# TensorRT 10.14.1 headers of the kernel-lens==2.0.1 wheel (Apache-2.0): -DLICTRT_KERNEL_LENS_WHEEL=<file>, or
# `pip download --no-deps` at configure time, unpacked into the build tree (never committed).
# Shared by trt_plugins/CMakeLists.txt and runtime/cpp/examples/CMakeLists.txt.
set(TENSORRT_ROOT "$ENV{TENSORRT_ROOT}" CACHE PATH "TensorRT install prefix (headers in include/)")
set(TENSORRT_INCLUDE_DIR "$ENV{TENSORRT_INCLUDE_DIR}" CACHE PATH "Directory containing NvInferRuntime.h")
set(LICTRT_KERNEL_LENS_WHEEL "" CACHE FILEPATH "Local kernel_lens-2.0.1 wheel (skips pip download)")

function(lictrt_tensorrt_headers out_var)
  if(TENSORRT_INCLUDE_DIR)
    set(_inc "${TENSORRT_INCLUDE_DIR}")
  elseif(TENSORRT_ROOT)
    set(_inc "${TENSORRT_ROOT}/include")
  else()
    set(_kl "${CMAKE_BINARY_DIR}/_deps/kernel_lens")
    set(_inc "${_kl}/kernel_lens/include/tensorrt")
    if(NOT EXISTS "${_inc}/NvInferRuntime.h")
      set(_whl "${LICTRT_KERNEL_LENS_WHEEL}")
      if(NOT _whl)
        find_package(Python3 REQUIRED COMPONENTS Interpreter)
        message(STATUS "lictrt: fetching TensorRT headers: pip download --no-deps kernel-lens==2.0.1")
        execute_process(COMMAND "${Python3_EXECUTABLE}" -m pip download --no-deps --only-binary=:all:
                                kernel-lens==2.0.1 -d "${_kl}/wheel"
                        RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_VARIABLE _err)
        file(GLOB _whl "${_kl}/wheel/kernel_lens-2.0.1-*.whl")
        if(NOT _rc EQUAL 0 OR NOT _whl)
          message(FATAL_ERROR "lictrt: could not download kernel-lens==2.0.1 for the TensorRT headers (${_err}). "
                              "Set TENSORRT_INCLUDE_DIR or TENSORRT_ROOT, or pass LICTRT_KERNEL_LENS_WHEEL.")
        endif()
        list(GET _whl 0 _whl)
      endif()
      file(ARCHIVE_EXTRACT INPUT "${_whl}" DESTINATION "${_kl}" PATTERNS "kernel_lens/include/tensorrt/*")
    endif()
  endif()
  if(NOT EXISTS "${_inc}/NvInferRuntime.h")
    message(FATAL_ERROR "lictrt: NvInferRuntime.h not found in ${_inc}")
  endif()
  message(STATUS "lictrt: TensorRT headers from ${_inc}")
  set(${out_var} "${_inc}" PARENT_SCOPE)
endfunction()
