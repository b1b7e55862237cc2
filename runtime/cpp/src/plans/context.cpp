// Plan context: graph routing and stream coding shared by the plans (runtime/plans/context.py).
#include "context.hpp"

#include <chrono>
#include <cmath>

#include "lictrt/coder.hpp"
#include "lictrt/crc32.hpp"

namespace lictrt {
namespace plans {

TensorMap PlanContext::run(const std::string& graph, const TensorMap& in,
                           std::initializer_list<const char*> outs) const {
  std::string name = prefix + graph;
  const double t0 = now_s();
  TensorMap r = runner.run(name, in);
  const double dt = now_s() - t0;
  stats.network_s += dt;
  stats.network_by_graph_s[graph] += dt;
  ++stats.network_calls;
  for (const char* o : outs)
    if (!r.count(o)) throw BundleError("graph '" + name + "' gave no output '" + o + "'");
  for (auto& kv : r)
    if (kv.second.count() != kv.second.data.size())
      throw BundleError("graph '" + name + "' output '" + kv.first + "' has a shape that does not match its data");
  return r;
}

int PlanContext::plan_int(const char* key, int dflt) const {
  const Json& v = bundle.plan().get(key);
  return v.is_number() ? int(v.integer()) : dflt;
}

const ContainerStream& PlanContext::stream(const std::string& kind) const {
  auto it = in_streams.find(kind);
  if (it == in_streams.end()) {  // the message of runtime/plans/context.py, the kinds as a Python list
    std::string has;
    for (auto& kv : in_streams) has += (has.empty() ? "'" : ", '") + kv.first + "'";
    throw BitstreamError("stream '" + kind + "' is missing from the bitstream (has [" + has + "])");
  }
  return *it->second;
}

std::vector<int32_t> PlanContext::decode(const std::string& kind, const std::string& model,
                                         const std::vector<int32_t>& idx) const {
  const ContainerStream& s = stream(kind);
  if (s.symbols != idx.size())
    throw BitstreamError("stream '" + kind + "': header says " + std::to_string(s.symbols) +
                         " symbols, the model expects " + std::to_string(idx.size()));
  std::vector<int32_t> out(idx.size());
  const double t0 = now_s();
  try {
    lictrt::decode(*tables(model).tables, s.payload.data(), s.payload.size(), idx.data(), idx.size(), out.data(), mode);
  } catch (const BitstreamError& e) {
    throw BitstreamError("stream '" + kind + "': " + e.what());
  }
  stats.entropy_s += now_s() - t0;
  if (symbols_crc32(out.data(), out.size()) != s.symbols_crc)
    throw BitstreamError("stream '" + kind +
                         "': decoded-symbol CRC mismatch (the parse-critical networks differ "
                         "from the encoder's)");
  return out;
}

void PlanContext::encode(const std::string& kind, const std::string& model, const std::vector<int32_t>& sym,
                         const std::vector<int32_t>& idx) {
  if (sym.size() != idx.size()) throw InvalidArgument("stream '" + kind + "': symbols and indexes differ in count");
  EncodeOptions opt;
  opt.mode = mode;
  opt.substreams = substreams;
  const double t0 = now_s();
  ContainerStream s;
  s.kind = kind;
  s.symbols = uint32_t(sym.size());
  s.payload = lictrt::encode(*tables(model).tables, sym.data(), idx.data(), sym.size(), opt);
  s.symbols_crc = symbols_crc32(sym.data(), sym.size());
  stats.entropy_s += now_s() - t0;
  out_streams.push_back(std::move(s));
}

IncrementalStream::IncrementalStream(PlanContext& c, const std::string& kind, const std::string& model, bool encoding)
    : c_(c), kind_(kind) {
  const EntropyModel& m = c.tables(model);
  if (encoding) {
    enc_.reset(new StreamEncoder(m.tables, c.mode));
    return;
  }
  in_ = &c.stream(kind);
  try {
    dec_.reset(new StreamDecoder(m.tables, in_->payload.data(), in_->payload.size(), c.mode));
  } catch (const BitstreamError& e) {
    throw BitstreamError("stream '" + kind + "': " + e.what());
  }
}

void IncrementalStream::code(std::vector<int32_t>& sym, const std::vector<int32_t>& idx) {
  const size_t n = idx.size();
  const double t0 = now_s();
  if (enc_) {
    if (sym.size() != n) throw InvalidArgument("stream '" + kind_ + "': symbols and indexes differ in count");
    enc_->encode(sym.data(), idx.data(), n);
  } else {
    if (n_ + n > in_->symbols)
      throw BitstreamError("stream '" + kind_ + "': the model asks for more than the " + std::to_string(in_->symbols) +
                           " symbols the header records");
    sym.resize(n);
    try {
      dec_->decode(idx.data(), n, sym.data());
    } catch (const BitstreamError& e) {
      throw BitstreamError("stream '" + kind_ + "': " + e.what());
    }
  }
  crc_ = crc32(sym.data(), n * sizeof(int32_t), crc_);  // int32 LE (little-endian hosts only)
  c_.stats.entropy_s += now_s() - t0;
  n_ += n;
}

void IncrementalStream::close() {
  if (enc_) {
    const double t0 = now_s();
    ContainerStream out;
    out.kind = kind_;
    out.symbols = uint32_t(n_);
    out.symbols_crc = crc_;
    out.payload = enc_->flush();
    c_.stats.entropy_s += now_s() - t0;
    c_.out_streams.push_back(std::move(out));
    return;
  }
  if (n_ != in_->symbols)
    throw BitstreamError("stream '" + kind_ + "': decoded " + std::to_string(n_) + " symbols, header says " +
                         std::to_string(in_->symbols));
  try {
    dec_->finish();
  } catch (const BitstreamError& e) {
    throw BitstreamError("stream '" + kind_ + "': " + e.what());
  }
  if (crc_ != in_->symbols_crc)
    throw BitstreamError("stream '" + kind_ +
                         "': decoded-symbol CRC mismatch (the parse-critical networks differ from the encoder's)");
}

int32_t to_symbol(float v, float mean) {
  const float d = v - mean;  // float32 difference, rounded half to even (np.rint)
  const float r = std::fabs(d) < 4194304.0f ? round_half_even_small(d) : std::nearbyint(d);
  if (!std::isfinite(r) || std::fabs(r) >= 1073741824.0f)
    throw InvalidArgument("cannot encode: latent has non-finite or out-of-range values");
  return int32_t(r);
}

double now_s() noexcept {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void expect_count(const Tensor& t, size_t n, const std::string& what) {
  if (t.data.size() != n)
    throw BundleError(what + " has " + std::to_string(t.data.size()) + " values, expected " + std::to_string(n));
}

}  // namespace plans
}  // namespace lictrt
