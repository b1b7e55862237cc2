// Private: what a plan runs against (the C++ mirror of runtime/plans/context.py): graph calls through the caller's
// GraphRunner (checked for the outputs the plan reads), the entropy models of the selected width, and the streams
// being decoded or encoded.
#pragma once

#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lictrt/bundle.hpp"
#include "lictrt/container.hpp"
#include "lictrt/decoder.hpp"
#include "lictrt/levels.hpp"

namespace lictrt {
struct GroupMask;  // lictrt/encoder.hpp

namespace plans {

using Stats = CodecStats;

/// Seconds since an arbitrary epoch (steady clock).
double now_s() noexcept;

class PlanContext {
 public:
  PlanContext(const Bundle& bundle, GraphRunner& runner, std::string prefix, Mode mode, Stats& stats)
      : bundle(bundle), runner(runner), prefix(std::move(prefix)), mode(mode), stats(stats) {}

  const Bundle& bundle;
  GraphRunner& runner;
  const std::string prefix;  ///< width prefix of a slimmable bundle ("w48."), else ""
  const Mode mode;
  Stats& stats;
  bool raster = false;                  ///< spatial_context: raster order instead of wavefront
  const Level* level = nullptr;         ///< grouped_context: the operating level (from the options or the header)
  std::string synthesis = "synthesis";  ///< the graph the decoder runs on y_hat (a plan's decode may name another)

  /// Run graph prefix + `graph`; BundleError if an output in `outs` is missing or a shape disagrees with its data.
  TensorMap run(const std::string& graph, const TensorMap& inputs, std::initializer_list<const char*> outs) const;
  const EntropyModel& tables(const std::string& model) const { return bundle.entropy(prefix + model); }
  /// Integer field `key` of the manifest plan, else `dflt`.
  int plan_int(const char* key, int dflt) const;

  // ---- grouped plans (grouped_slices)
  const GroupMask* mask = nullptr;               ///< encoding: the caller's labels (nullptr: one group, 0)
  uint32_t image_h = 0, image_w = 0;             ///< encoding: the unpadded image size the mask covers
  const std::vector<int32_t>* groups = nullptr;  ///< decoding: the sorted groups to decode (nullptr: all)
  std::vector<int32_t> groups_decoded;           ///< decoding: the groups whose streams were read
  TensorMap synthesis_inputs;                    ///< decoding: what synthesis takes besides y_hat (the mask)

  // ---- decoding: the streams of the bitstream, by kind
  std::map<std::string, const ContainerStream*> in_streams;
  const ContainerStream& stream(const std::string& kind) const;
  /// Decode stream `kind` with entropy model `model`; BitstreamError naming the stream on any mismatch.
  std::vector<int32_t> decode(const std::string& kind, const std::string& model, const std::vector<int32_t>& idx) const;

  // ---- encoding: the streams written so far, in order
  std::vector<ContainerStream> out_streams;
  int substreams = 1;
  /// Encode `sym` (table rows `idx`) as stream `kind` with entropy model `model`.
  void encode(const std::string& kind, const std::string& model, const std::vector<int32_t>& sym,
              const std::vector<int32_t>& idx);
};

/// Stream `kind` coded in pieces by an autoregressive plan (runtime/plans/context.py stream_encoder, stream_decoder):
/// with `encoding`, code() encodes `sym` and close() adds the stream; else code() decodes into `sym` and close() runs
/// the count, final-state and symbol-CRC checks. Errors name the stream.
class IncrementalStream {
 public:
  IncrementalStream(PlanContext& c, const std::string& kind, const std::string& model, bool encoding);
  /// Encode or decode `idx.size()` symbols (`sym` is resized to match).
  void code(std::vector<int32_t>& sym, const std::vector<int32_t>& idx);
  void close();

 private:
  PlanContext& c_;
  std::string kind_;
  const ContainerStream* in_ = nullptr;
  std::unique_ptr<StreamEncoder> enc_;
  std::unique_ptr<StreamDecoder> dec_;
  size_t n_ = 0;
  uint32_t crc_ = 0;
};

/// Round half to even in the default rounding mode, for |v| < 2^22 (adding and removing 1.5 * 2^23 leaves the
/// integer part: the same result as std::nearbyint without the libm call that saves and restores the FP environment).
inline float round_half_even_small(float v) noexcept {
  const float k = 12582912.0f;
  return (v + k) - k;
}

/// round(v - mean) half to even in float32, as runtime/plans/_entropy.py to_symbols; InvalidArgument
/// ("cannot encode: ...") for a non-finite or out-of-range value.
int32_t to_symbol(float v, float mean);

/// A one-tensor feed that takes the tensor over instead of copying it.
inline TensorMap feed(const char* name, Tensor&& t) {
  TensorMap m;
  m.emplace(name, std::move(t));
  return m;
}

/// BundleError unless `t` holds `n` values.
void expect_count(const Tensor& t, size_t n, const std::string& what);

}  // namespace plans
}  // namespace lictrt
