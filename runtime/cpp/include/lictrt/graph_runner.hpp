// The one interface between the plans (lictrt::Encoder, lictrt::Decoder) and an inference engine: run a bundle graph
// on named float32 host tensors. Implementations: lictrt::OnnxRuntimeRunner (lictrt/onnxruntime_runner.hpp, CPU) and
// the TensorRT runner of examples/trt_decode.cpp; tests replay recorded outputs through their own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lictrt {

/// A dense float32 NCHW (or any rank) tensor in host memory, C order.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  Tensor() = default;
  Tensor(std::vector<int64_t> s, std::vector<float> d = {});
  size_t count() const noexcept;
};
using TensorMap = std::map<std::string, Tensor>;

/// Runs one bundle graph (manifest "graphs" key, e.g. "hyper_synthesis" or "w48.synthesis") on named inputs.
/// A runner must compute parse-critical graphs (manifest "parse_critical": true) bit-identically to the path the
/// encoder ran them on (the container's parse path); a divergence is detected by the decoder, never silent.
class GraphRunner {
 public:
  virtual ~GraphRunner() = default;
  virtual TensorMap run(const std::string& graph, const TensorMap& inputs) = 0;
};

/// Timings and counts of one encode or decode.
struct CodecStats {
  int network_calls = 0;
  int sequential_steps = 0;  ///< dependent network + coder rounds (spatial_context: the context steps)
  double network_s = 0.0;    ///< inside GraphRunner::run
  double entropy_s = 0.0;    ///< inside the rANS coder
  double loop_s = 0.0;       ///< the autoregressive loop of spatial_context, networks and coder included
  double total_s = 0.0;
  std::map<std::string, double> network_by_graph_s;
};

}  // namespace lictrt
