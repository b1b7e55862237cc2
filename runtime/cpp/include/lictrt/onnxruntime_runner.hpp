// lictrt::OnnxRuntimeRunner: a GraphRunner over ONNX Runtime's C/C++ API, on CPU, with the session settings of the
// Python runtime (runtime/backends/ort.py): parse-critical graphs on the pinned deterministic path (1 thread,
// sequential, ORT_ENABLE_BASIC, no memory patterns, denormals kept), reconstruction graphs with `threads` intra-op
// threads and `opt_level`. Same ONNX Runtime library + same settings = the same floats as the Python runtime.
//
// The library is loaded at run time (dlopen), never linked: see runtime/cpp/README.md "ONNX Runtime". This header
// needs no ONNX Runtime headers; the library target is lictrt::onnxruntime.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include "lictrt/bundle.hpp"
#include "lictrt/graph_runner.hpp"

namespace lictrt {

/// ONNX Runtime cannot be loaded, or a graph cannot be loaded or run (one-line message).
class OnnxRuntimeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct OnnxRuntimeOptions {
  /// libonnxruntime.so to load. "" = $LICTRT_ONNXRUNTIME_LIBRARY, else the newest libonnxruntime.so* in the
  /// directories found at build time (the onnxruntime wheel's capi/, a user's ONNX Runtime), else the loader's
  /// search path (libonnxruntime.so.1, libonnxruntime.so).
  std::string library;
  /// intra-op threads of reconstruction graphs (analysis, synthesis); 0 = ONNX Runtime's default (all cores).
  int threads = 0;
  /// graph optimization level of reconstruction graphs: ORT_DISABLE_ALL, ORT_ENABLE_BASIC, ORT_ENABLE_EXTENDED,
  /// ORT_ENABLE_ALL (parse-critical graphs always use the pinned ORT_ENABLE_BASIC).
  std::string opt_level = "ORT_ENABLE_ALL";
  /// custom-op library registered with every session (the native CPU ops, liblictrt_cpu_ops.so). "" =
  /// $LICTRT_CPU_OPS_LIB when set; none when LICTRT_NATIVE_OPS=0.
  std::string custom_ops_library;
};

class OnnxRuntimeRunner : public GraphRunner {
 public:
  /// Loads ONNX Runtime (OnnxRuntimeError when it cannot). Sessions are created on first use of each graph.
  explicit OnnxRuntimeRunner(const Bundle& bundle, OnnxRuntimeOptions options = {});
  ~OnnxRuntimeRunner() override;
  OnnxRuntimeRunner(const OnnxRuntimeRunner&) = delete;
  OnnxRuntimeRunner& operator=(const OnnxRuntimeRunner&) = delete;

  TensorMap run(const std::string& graph, const TensorMap& inputs) override;
  /// The file the library was loaded from, and its version string.
  const std::string& library_path() const noexcept;
  std::string version() const;
  /// The custom-op library registered with each session, or "".
  const std::string& custom_ops_library() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lictrt
