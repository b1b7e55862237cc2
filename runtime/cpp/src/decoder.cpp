// Plan decoder (factorized, hyperprior, mean_scale, spatial_context, channel_slices): the C++ mirror of
// runtime/plans/*.py.
#include "lictrt/decoder.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "lictrt/coder.hpp"
#include "lictrt/crc32.hpp"

namespace lictrt {

namespace {

constexpr uint16_t kFlagRasterContext = 1;  // runtime.codec.FLAG_RASTER_CONTEXT
constexpr uint64_t kMaxPixels = uint64_t(1) << 28;
constexpr int K = 5;  // spatial_context window

const char* const kKinds[] = {"factorized", "hyperprior", "mean_scale", "spatial_context", "channel_slices",
                              "grouped_context"};  // container plan-kind ids (append only)

int kind_id(const std::string& k) {
  for (int i = 0; i < 6; ++i)
    if (k == kKinds[i]) return i;
  return -1;
}

struct Ctx {
  const Bundle& b;
  GraphRunner& runner;
  std::string prefix;
  Mode mode;
  std::map<std::string, const ContainerStream*> streams;
  DecodeResult& res;

  const ContainerStream& stream(const std::string& kind) const {
    auto it = streams.find(kind);
    if (it == streams.end()) throw BitstreamError("stream '" + kind + "' is missing from the bitstream");
    return *it->second;
  }

  std::vector<int32_t> decode(const std::string& kind, const EntropyModel& m, const std::vector<int32_t>& idx) const {
    const ContainerStream& s = stream(kind);
    if (s.symbols != idx.size())
      throw BitstreamError("stream '" + kind + "': header says " + std::to_string(s.symbols) +
                           " symbols, the model expects " + std::to_string(idx.size()));
    std::vector<int32_t> out(idx.size());
    try {
      lictrt::decode(*m.tables, s.payload.data(), s.payload.size(), idx.data(), idx.size(), out.data(), mode);
    } catch (const BitstreamError& e) {
      throw BitstreamError("stream '" + kind + "': " + e.what());
    }
    uint32_t crc = symbols_crc32(out.data(), out.size());
    if (crc != s.symbols_crc)
      throw BitstreamError("stream '" + kind + "': decoded-symbol CRC mismatch (the parse-critical networks differ "
                           "from the encoder's)");
    return out;
  }

  TensorMap run(const std::string& graph, const TensorMap& in, std::initializer_list<const char*> outs) const {
    std::string name = prefix + graph;
    TensorMap r = runner.run(name, in);
    ++res.network_calls;
    for (const char* o : outs)
      if (!r.count(o)) throw BundleError("graph '" + name + "' gave no output '" + o + "'");
    for (auto& kv : r)
      if (kv.second.count() != kv.second.data.size())
        throw BundleError("graph '" + name + "' output '" + kv.first + "' has a shape that does not match its data");
    return r;
  }
};

void expect_count(const Tensor& t, size_t n, const std::string& what) {
  if (t.data.size() != n)
    throw BundleError(what + " has " + std::to_string(t.data.size()) + " values, expected " + std::to_string(n));
}

int plan_int(const Bundle& b, const char* key, int dflt) {
  const Json& v = b.plan().get(key);
  return v.is_number() ? int(v.integer()) : dflt;
}

// factorized-prior latent: stream `kind` with model `m`, channels = tables, value = q + median[c]
Tensor decode_factorized(const Ctx& c, const std::string& kind, const EntropyModel& m, int stride, int ph, int pw) {
  if (m.medians.empty()) throw BundleError("tables '" + m.name + "' have no medians");
  if (stride < 1 || ph % stride || pw % stride) throw BundleError("latent stride does not divide the padded size");
  int64_t C = m.num_tables, h = ph / stride, w = pw / stride;
  size_t hw = size_t(h * w);
  std::vector<int32_t> idx(size_t(C) * hw);
  for (int64_t ch = 0; ch < C; ++ch) std::fill_n(idx.begin() + ch * hw, hw, int32_t(ch));
  auto q = c.decode(kind, m, idx);
  Tensor t({1, C, h, w}, std::vector<float>(q.size()));
  for (size_t k = 0; k < q.size(); ++k) t.data[k] = float(q[k]) + m.medians[k / hw];
  return t;
}

Tensor decode_z(const Ctx& c, int ph, int pw) {
  return decode_factorized(c, "z", c.b.entropy(c.prefix + "z"), plan_int(c.b, "z_stride", c.b.pad_multiple()), ph, pw);
}

Tensor plan_factorized(const Ctx& c, int ph, int pw) {
  std::string model = c.b.has_entropy(c.prefix + "y") ? "y" : "z";
  ++c.res.sequential_steps;
  return decode_factorized(c, "y", c.b.entropy(c.prefix + model), plan_int(c.b, "y_stride", c.b.pad_multiple()), ph, pw);
}

Tensor plan_hyperprior(const Ctx& c, int ph, int pw, bool means) {
  Tensor z_hat = decode_z(c, ph, pw);
  TensorMap out = means ? c.run("hyper_synthesis", {{"z_hat", z_hat}}, {"scales", "means"})
                        : c.run("hyper_synthesis", {{"z_hat", z_hat}}, {"scales"});
  const Tensor& scales = out["scales"];
  const EntropyModel& m = c.b.entropy(c.prefix + "y");
  if (!m.gaussian()) throw BundleError("tables '" + m.name + "' have no scale_table");
  std::vector<int32_t> idx(scales.data.size());
  for (size_t k = 0; k < idx.size(); ++k) idx[k] = m.scale_index(scales.data[k]);
  auto q = c.decode("y", m, idx);
  Tensor y(scales.shape, std::vector<float>(q.size()));
  auto mu = out.find("means");
  if (mu != out.end()) expect_count(mu->second, q.size(), "hyper_synthesis 'means'");
  for (size_t k = 0; k < q.size(); ++k) y.data[k] = mu == out.end() ? float(q[k]) : float(q[k]) + mu->second.data[k];
  c.res.sequential_steps += 2;
  return y;
}

Tensor plan_spatial_context(const Ctx& c, int ph, int pw, bool raster) {
  Tensor z_hat = decode_z(c, ph, pw);
  TensorMap hs = c.run("hyper_synthesis", {{"z_hat", z_hat}}, {"params"});
  const Tensor& params = hs["params"];
  if (params.shape.size() != 4 || params.shape[0] != 1 || params.shape[1] % 2)
    throw BundleError("hyper_synthesis 'params' must be [1, 2M, h, w]");
  const int64_t M = params.shape[1] / 2, h = params.shape[2], w = params.shape[3];
  const int64_t hp = h + K - 1, wp = w + K - 1;
  const EntropyModel& m = c.b.entropy(c.prefix + "y");
  if (!m.gaussian()) throw BundleError("tables '" + m.name + "' have no scale_table");
  const ContainerStream& s = c.stream("y");
  std::vector<float> y_pad(size_t(M * hp * wp), 0.0f);
  std::vector<std::vector<std::pair<int, int>>> steps;
  if (raster) {
    for (int i = 0; i < h; ++i)
      for (int j = 0; j < w; ++j) steps.push_back({{i, j}});
  } else {
    steps = wavefront_schedule(int(h), int(w));
  }
  std::unique_ptr<StreamDecoder> dec;
  try {
    dec.reset(new StreamDecoder(m.tables, s.payload.data(), s.payload.size(), c.mode));
  } catch (const BitstreamError& e) {
    throw BitstreamError("stream 'y': " + std::string(e.what()));
  }
  const int64_t hw = h * w;
  size_t n = 0;
  uint32_t crc = 0;
  for (auto& step : steps) {
    const int64_t P = int64_t(step.size());
    Tensor pin({P, 2 * M}, std::vector<float>(size_t(P * 2 * M)));
    Tensor win({P, M, K, K}, std::vector<float>(size_t(P * M * K * K)));
    for (int64_t p = 0; p < P; ++p) {
      const int64_t r = step[size_t(p)].first, q = step[size_t(p)].second;
      for (int64_t ch = 0; ch < 2 * M; ++ch) pin.data[size_t(p * 2 * M + ch)] = params.data[size_t(ch * hw + r * w + q)];
      for (int64_t ch = 0; ch < M; ++ch)
        for (int a = 0; a < K; ++a)
          for (int bb = 0; bb < K; ++bb)
            win.data[size_t(((p * M + ch) * K + a) * K + bb)] = y_pad[size_t((ch * hp + r + a) * wp + q + bb)];
    }
    TensorMap out = c.run("context_step", {{"params", std::move(pin)}, {"windows", std::move(win)}}, {"scales", "means"});
    const size_t PM = size_t(P * M);
    expect_count(out["scales"], PM, "context_step 'scales'");
    expect_count(out["means"], PM, "context_step 'means'");
    std::vector<int32_t> idx(PM), sym(PM);
    for (size_t k = 0; k < PM; ++k) idx[k] = m.scale_index(out["scales"].data[k]);
    if (n + PM > s.symbols)
      throw BitstreamError("stream 'y': the model asks for more than the " + std::to_string(s.symbols) +
                           " symbols the header records");
    try {
      dec->decode(idx.data(), PM, sym.data());
    } catch (const BitstreamError& e) {
      throw BitstreamError("stream 'y': " + std::string(e.what()));
    }
    crc = crc32(sym.data(), PM * sizeof(int32_t), crc);  // int32 LE (little-endian hosts only)
    n += PM;
    const std::vector<float>& mu = out["means"].data;
    for (int64_t p = 0; p < P; ++p) {
      const int64_t r = step[size_t(p)].first, q = step[size_t(p)].second;
      for (int64_t ch = 0; ch < M; ++ch)
        y_pad[size_t((ch * hp + r + K / 2) * wp + q + K / 2)] = float(sym[size_t(p * M + ch)]) + mu[size_t(p * M + ch)];
    }
    ++c.res.sequential_steps;
  }
  if (n != s.symbols)
    throw BitstreamError("stream 'y': decoded " + std::to_string(n) + " symbols, header says " + std::to_string(s.symbols));
  try {
    dec->finish();
  } catch (const BitstreamError& e) {
    throw BitstreamError("stream 'y': " + std::string(e.what()));
  }
  if (crc != s.symbols_crc)
    throw BitstreamError("stream 'y': decoded-symbol CRC mismatch (the parse-critical networks differ from the encoder's)");
  Tensor y({1, M, h, w}, std::vector<float>(size_t(M * hw)));
  for (int64_t ch = 0; ch < M; ++ch)
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j)
        y.data[size_t(ch * hw + i * w + j)] = y_pad[size_t((ch * hp + i + K / 2) * wp + j + K / 2)];
  return y;
}

// ---- channel_slices (runtime/plans/channel_slices.py) ----------------------------------------------------------

// Number of slices S: the graphs `<prefix>slice<i>`; slice0..S-1 and lrp0..S-1 must all exist.
int num_slices(const Bundle& b, const std::string& prefix) {
  auto is_slice = [&](const std::string& g) {  // prefix + "slice" + digits
    const size_t k = prefix.size() + 5;
    return g.size() > k && g.compare(0, k, prefix + "slice") == 0 &&
           std::all_of(g.begin() + long(k), g.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
  };
  int n = 0;
  for (auto& kv : b.graphs()) n += is_slice(kv.first);
  bool complete = n > 0;
  for (int i = 0; i < n && complete; ++i)
    complete = b.graphs().count(prefix + "slice" + std::to_string(i)) && b.graphs().count(prefix + "lrp" + std::to_string(i));
  if (!complete)
    throw BundleError("plan channel_slices: the bundle needs graphs slice0..sliceN-1 and lrp0..lrpN-1");
  return n;
}

// The inputs graph `graph` lists in the manifest, taken from `known` (the plan's tensors so far).
TensorMap slice_feeds(const Ctx& c, const std::string& graph, const TensorMap& known) {
  TensorMap in;
  for (const TensorSpec& t : c.b.graph(c.prefix + graph).inputs) {
    auto it = known.find(t.name);
    if (it == known.end())
      throw BundleError("graph '" + graph + "' needs input '" + t.name + "', which this plan does not produce");
    in.emplace(t.name, it->second);
  }
  return in;
}

// z, then per slice i: (mu, scale) = slice<i>(supports), q from stream y<i>, y_hat_i = mu + q fed to lrp<i>, and
// the slice's y_hat = mu + q + lrp (what later slices see); y_hat = concat over channels.
Tensor plan_channel_slices(const Ctx& c, int ph, int pw) {
  Tensor z_hat = decode_z(c, ph, pw);
  TensorMap known = c.run("hyper_synthesis", {{"z_hat", z_hat}}, {"latent_means", "latent_scales"});
  const int n = num_slices(c.b, c.prefix);
  const EntropyModel& m = c.b.entropy(c.prefix + "y");
  if (!m.gaussian()) throw BundleError("tables '" + m.name + "' have no scale_table");
  std::vector<Tensor> hats;
  for (int i = 0; i < n; ++i) {
    const std::string si = std::to_string(i), slice = "slice" + si, lrp_g = "lrp" + si, yi = "y_hat_" + si;
    TensorMap p = c.run(slice, slice_feeds(c, slice, known), {"mu", "scale"});
    const Tensor &mu = p["mu"], &scale = p["scale"];
    if (mu.shape != scale.shape) throw BundleError("graph '" + slice + "': 'mu' and 'scale' differ in shape");
    std::vector<int32_t> idx(scale.data.size());
    for (size_t k = 0; k < idx.size(); ++k) idx[k] = m.scale_index(scale.data[k]);
    auto q = c.decode("y" + si, m, idx);
    Tensor yq(scale.shape, std::vector<float>(q.size()));
    for (size_t k = 0; k < q.size(); ++k) yq.data[k] = float(q[k]) + mu.data[k];
    Tensor& hat = known[yi] = std::move(yq);  // lrp<i> sees mu + q as y_hat_<i> ...
    TensorMap l = c.run(lrp_g, slice_feeds(c, lrp_g, known), {"lrp"});
    const Tensor& lrp = l["lrp"];
    if (lrp.shape != hat.shape) throw BundleError("graph '" + lrp_g + "': 'lrp' does not have the slice's shape");
    for (size_t k = 0; k < hat.data.size(); ++k) hat.data[k] += lrp.data[k];  // ... later slices mu + q + lrp
    hats.push_back(hat);
    ++c.res.sequential_steps;
  }
  const std::vector<int64_t>& s0 = hats[0].shape;
  if (s0.size() != 4 || s0[0] != 1) throw BundleError("slice latents must be [1, C, h, w]");
  int64_t M = 0;
  for (size_t i = 0; i < hats.size(); ++i) {
    const std::vector<int64_t>& s = hats[i].shape;
    if (s.size() != 4 || s[0] != 1 || s[2] != s0[2] || s[3] != s0[3])
      throw BundleError("slice " + std::to_string(i) + " latent does not match slice 0's [1, C, h, w]");
    M += s[1];
  }
  Tensor y({1, M, s0[2], s0[3]});  // N = 1: the channel blocks are contiguous, so concat = append
  y.data.reserve(size_t(M * s0[2] * s0[3]));
  for (auto& h : hats) y.data.insert(y.data.end(), h.data.begin(), h.data.end());
  return y;
}

}  // namespace

Tensor::Tensor(std::vector<int64_t> s, std::vector<float> d) : shape(std::move(s)), data(std::move(d)) {}

size_t Tensor::count() const noexcept {
  size_t n = 1;
  for (auto d : shape) n *= size_t(d < 0 ? 0 : d);
  return n;
}

bool decoder_supports(const std::string& k) noexcept {
  return k == "factorized" || k == "hyperprior" || k == "mean_scale" || k == "spatial_context" ||
         k == "channel_slices";
}

std::vector<std::vector<std::pair<int, int>>> wavefront_schedule(int h, int w) {
  std::vector<std::vector<std::pair<int, int>>> steps;
  if (h < 1 || w < 1) return steps;
  for (int t = 0; t < 3 * (h - 1) + w; ++t) {
    std::vector<std::pair<int, int>> s;
    for (int i = std::max(0, (t - w + 1 + 2) / 3); i <= std::min(h - 1, t / 3); ++i)
      if (t - 3 * i >= 0 && t - 3 * i < w) s.emplace_back(i, t - 3 * i);
    if (!s.empty()) steps.push_back(std::move(s));
  }
  return steps;
}

Decoder::Decoder(const Bundle& bundle, GraphRunner& runner) : bundle_(bundle), runner_(runner) {
  if (!decoder_supports(bundle.plan_kind()))
    throw BundleError("plan kind '" + bundle.plan_kind() + "' is not implemented by the C++ decoder "
                      "(factorized, hyperprior, mean_scale, spatial_context, channel_slices)");
  if (bundle.plan_kind() == "channel_slices")
    for (auto& prefix : bundle.prefixes()) num_slices(bundle, prefix);
}

DecodeResult Decoder::decode(const uint8_t* data, size_t len) const {
  ContainerHeader hd;
  std::vector<ContainerStream> streams;
  unpack_container(data, len, hd, streams);
  if (hd.model_hash != bundle_.model_hash())
    throw BitstreamError("model hash does not match the bundle: encoded with another model");
  if (hd.plan_kind != kind_id(bundle_.plan_kind()))
    throw BitstreamError("bitstream plan kind " + std::to_string(hd.plan_kind) + " is not the bundle's '" +
                         bundle_.plan_kind() + "'");
  if (hd.pad_multiple != bundle_.pad_multiple())
    throw BitstreamError("bitstream pad multiple " + std::to_string(hd.pad_multiple) + " != bundle's " +
                         std::to_string(bundle_.pad_multiple()));
  if (hd.flags & ~kFlagRasterContext) throw BitstreamError("unknown header flags " + std::to_string(hd.flags));
  if (hd.coder_mode > 1) throw BitstreamError("unknown coder mode " + std::to_string(hd.coder_mode));
  if (hd.width_index >= bundle_.prefixes().size())
    throw BitstreamError("width index " + std::to_string(hd.width_index) + " outside the bundle's widths");
  if (hd.height < 1 || hd.width < 1 || uint64_t(hd.height) * hd.width > kMaxPixels)
    throw BitstreamError("bad image size in header");
  const int m = bundle_.pad_multiple();
  const int ph = int((hd.height + m - 1) / m * m), pw = int((hd.width + m - 1) / m * m);

  DecodeResult res;
  res.height = hd.height;
  res.width = hd.width;
  Ctx c{bundle_, runner_, bundle_.prefixes()[hd.width_index], hd.coder_mode ? Mode::Fast : Mode::Compat, {}, res};
  for (auto& s : streams) c.streams[s.kind] = &s;
  const std::string& k = bundle_.plan_kind();
  if (k == "factorized") res.y_hat = plan_factorized(c, ph, pw);
  else if (k == "hyperprior") res.y_hat = plan_hyperprior(c, ph, pw, false);
  else if (k == "mean_scale") res.y_hat = plan_hyperprior(c, ph, pw, true);
  else if (k == "spatial_context") res.y_hat = plan_spatial_context(c, ph, pw, hd.flags & kFlagRasterContext);
  else res.y_hat = plan_channel_slices(c, ph, pw);

  TensorMap out = c.run("synthesis", {{"y_hat", res.y_hat}}, {"x_hat"});
  res.x_hat = std::move(out["x_hat"]);
  const Tensor& x = res.x_hat;
  if (x.shape.size() != 4 || x.shape[0] != 1 || x.shape[1] != 3 || x.shape[2] != ph || x.shape[3] != pw)
    throw BundleError("synthesis output does not have the padded image shape 1x3x" + std::to_string(ph) + "x" +
                      std::to_string(pw));
  const uint32_t top = uint32_t(ph - int(hd.height)) / 2, left = uint32_t(pw - int(hd.width)) / 2;
  res.rgb.resize(size_t(hd.height) * hd.width * 3);
  for (uint32_t ch = 0; ch < 3; ++ch)
    for (uint32_t i = 0; i < hd.height; ++i)
      for (uint32_t j = 0; j < hd.width; ++j) {
        float v = x.data[(size_t(ch) * ph + top + i) * pw + left + j];
        v = std::isnan(v) ? 0.0f : std::min(std::max(v, 0.0f), 1.0f) * 255.0f;  // NaN -> 0 (defined, unlike a cast)
        res.rgb[(size_t(i) * hd.width + j) * 3 + ch] = uint8_t(std::nearbyint(v));  // half-to-even like np.rint
      }
  return res;
}

void write_ppm(const std::string& path, const std::vector<uint8_t>& rgb, uint32_t height, uint32_t width) {
  if (rgb.size() != size_t(height) * width * 3) throw InvalidArgument("write_ppm: buffer size does not match");
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    std::string hdr = "P6\n" + std::to_string(width) + " " + std::to_string(height) + "\n255\n";
    f.write(hdr.data(), std::streamsize(hdr.size()));
    f.write(reinterpret_cast<const char*>(rgb.data()), std::streamsize(rgb.size()));
    if (!f) throw InvalidArgument("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw InvalidArgument("cannot rename " + tmp + " to " + path);
}

}  // namespace lictrt
