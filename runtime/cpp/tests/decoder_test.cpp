// C++ tests of the bundle reader and the plan decoder.
//
//   lictrt_decoder_test                    unit tests (JSON, .npy, wavefront schedule, scale index rule)
//   lictrt_decoder_test BUNDLE FIXTURE     + decode FIXTURE/stream.lic with a GraphRunner that replays the network
//                                            outputs the Python runtime recorded (FIXTURE/calls.json + .npy files),
//                                            checking every graph input bit for bit, and that y_hat and the image
//                                            equal the Python decode exactly; corrupted inputs must raise; and, when
//                                            FIXTURE/encode_calls.json exists, encode FIXTURE/input.npy replaying the
//                                            Python encode's network outputs: the bytes must equal stream.lic.
// Exits non-zero on failure; prints one JSON summary line for tests/test_cpp_decoder.py.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "check.hpp"
#include "lictrt/bundle.hpp"
#include "lictrt/decoder.hpp"
#include "lictrt/encoder.hpp"
#include "lictrt/format.hpp"

using namespace lictrt;

namespace {

template <class E, class Fn>
std::string throws(Fn fn) {  // the message of E if fn throws E, else ""
  try {
    fn();
  } catch (const E& e) {
    return std::string("!") + e.what();
  }
  return "";
}

void unit_tests() {
  // JSON: nesting, escapes, numbers, errors with offsets
  Json j = Json::parse(R"({"a": [1, -2.5e1, true, null], "s": "x\"\u00e9\n", "o": {"k": "v"}})");
  CHECK(j.at("a").size() == 4 && j.at("a").at(1).num() == -25.0 && j.at("a").at(2).boolean());
  CHECK(j.at("a").at(3).is_null() && j.at("a").at(0).integer() == 1);
  CHECK(j.at("s").str() == "x\"\xc3\xa9\n");
  CHECK(j.at("o").at("k").str() == "v" && j.get("missing").is_null());
  CHECK(!throws<BundleError>([] { Json::parse("{\"a\": 1,}"); }).empty());
  CHECK(!throws<BundleError>([] { Json::parse("[1 2]"); }).empty());
  CHECK(!throws<BundleError>([] { Json::parse("\"abc"); }).empty());
  CHECK(!throws<BundleError>([] { Json::parse(std::string(100, '[')); }).empty());  // depth limit
  CHECK(!throws<BundleError>([&] { j.at("a").at(9); }).empty());

  // .npy write/read round trip and corrupt headers
  std::string p = (std::filesystem::temp_directory_path() / "lictrt_decoder_test_tmp.npy").string();
  std::vector<float> v = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  write_npy(p, "<f4", {2, 3}, v.data());
  NpyArray a = read_npy(p);
  CHECK(a.dtype == "<f4" && a.shape == std::vector<int64_t>({2, 3}) && a.as_float32() == v);
  CHECK(!throws<BundleError>([&] { a.as_int32(); }).empty());
  auto raw = read_file(p);
  std::remove(p.c_str());
  CHECK(!throws<BundleError>([&] { parse_npy(raw.data(), raw.size() - 1, "t"); }).empty());  // truncated data
  CHECK(!throws<BundleError>([&] { parse_npy(raw.data(), 9, "t"); }).empty());
  CHECK(!throws<BundleError>([&] { parse_npz(raw.data(), raw.size(), "t"); }).empty());  // not a zip

  // wavefront: 3(h-1)+w steps, every position once, every 5x5-causal dependency in an earlier step
  for (auto hw : {std::pair<int, int>{1, 1}, {2, 5}, {4, 6}, {5, 3}, {7, 2}}) {
    int h = hw.first, w = hw.second;
    auto steps = wavefront_schedule(h, w);
    std::vector<int> when(size_t(h * w), -1);
    for (size_t t = 0; t < steps.size(); ++t)
      for (auto& rc : steps[t]) {
        CHECK(when[size_t(rc.first * w + rc.second)] == -1);
        when[size_t(rc.first * w + rc.second)] = int(t);
      }
    for (int x : when) CHECK(x >= 0);
    if (w >= 3) CHECK(int(steps.size()) == 3 * (h - 1) + w);
    for (int i = 0; i < h; ++i)
      for (int jj = 0; jj < w; ++jj)
        for (int di = -2; di <= 0; ++di)
          for (int dj = -2; dj <= 2; ++dj) {
            if (di == 0 && dj >= 0) continue;
            int r = i + di, c = jj + dj;
            if (r < 0 || c < 0 || c >= w) continue;
            CHECK(when[size_t(r * w + c)] < when[size_t(i * w + jj)]);
          }
  }
  CHECK(wavefront_schedule(32, 48).size() == 141);  // DESIGN.md: Kodak latent

  // CompressAI's index rule: entries of scale_table[:-1] strictly below max(scale, bound); NaN -> T-1
  EntropyModel m;
  m.scales = ScaleIndex({0.11f, 0.2f, 0.5f, 1.0f}, 0.11f);
  CHECK(m.scales(0.0f) == 0 && m.scales(0.11f) == 0 && m.scales(0.2f) == 1);
  CHECK(m.scales(0.2000001f) == 2 && m.scales(1.0f) == 3 && m.scales(100.0f) == 3);
  CHECK(m.scales(NAN) == 3 && m.scales(INFINITY) == 3 && m.scales(-INFINITY) == 0);
  // the bucket lookup equals std::lower_bound's count for every table length, at, between and beside entries, for
  // CompressAI-like geometric tables, for dense tables (many entries per octave), with entries below the bound and
  // for a bound above every entry
  auto agrees = [](const std::vector<float>& table, float bound, const std::vector<float>& probes) {
    const ScaleIndex index(table, bound);
    std::vector<int32_t> batch(probes.size());
    index(probes.data(), batch.data(), probes.size());  // AVX2 lanes where the CPU has them, then the tail
    for (size_t k = 0; k < probes.size(); ++k) {
      const float v = probes[k];
      const float s = std::max(v, bound);
      const auto want =
          std::isnan(v) ? table.size() - 1 : std::lower_bound(table.begin(), table.end() - 1, s) - table.begin();
      if (index(v) != int32_t(want) || batch[k] != int32_t(want)) return false;
    }
    return true;
  };
  auto probes_of = [](const std::vector<float>& table, float bound) {
    std::vector<float> p{
        0.0f, -1.0f,    1e30f,    1e-30f, 1e-45f, bound, std::nextafter(bound, 0.0f), std::nextafter(bound, 1e9f),
        NAN,  INFINITY, -INFINITY};
    for (float t : table)
      for (float v : {t, std::nextafter(t, -1e9f), std::nextafter(t, 1e9f), t * 1.05f, t * 0.97f}) p.push_back(v);
    for (int k = -40; k <= 40; ++k) p.push_back(std::ldexp(1.0f, k));
    p.push_back(NAN);  // an odd count: the batch form's scalar tail runs too
    return p;
  };
  for (size_t T = 1; T <= 66; ++T) {
    std::vector<float> t(T);
    for (size_t i = 0; i < T; ++i) t[i] = 0.11f * std::pow(2.0f, 0.2f * float(i));
    CHECK(agrees(t, t[0], probes_of(t, t[0])));
  }
  std::vector<float> dense(3000), below(40), low(5);
  for (size_t i = 0; i < dense.size(); ++i) dense[i] = 1.0f + float(i) * 1e-4f;   // 3000 entries in [1, 1.3)
  for (size_t i = 0; i < below.size(); ++i) below[i] = -2.0f + 0.25f * float(i);  // negative, zero, positive
  for (size_t i = 0; i < low.size(); ++i) low[i] = 0.01f * float(i + 1);          // all below the bound
  CHECK(agrees(dense, 0.5f, probes_of(dense, 0.5f)));
  CHECK(agrees(below, 0.3f, probes_of(below, 0.3f)));
  CHECK(agrees(low, 0.11f, probes_of(low, 0.11f)));
  // bad tables and bounds are refused
  for (auto bad : {std::vector<float>{}, std::vector<float>{1.0f, 1.0f}, std::vector<float>{2.0f, 1.0f},
                   std::vector<float>{1.0f, NAN}, std::vector<float>{1.0f, INFINITY}}) {
    bool thrown = false;
    try {
      ScaleIndex s(bad, 0.11f);
    } catch (const InvalidArgument&) {
      thrown = true;
    }
    CHECK(thrown);
  }
  for (float bound : {0.0f, -1.0f, NAN, INFINITY}) {
    bool thrown = false;
    try {
      ScaleIndex s({0.11f, 1.0f}, bound);
    } catch (const InvalidArgument&) {
      thrown = true;
    }
    CHECK(thrown);
  }
}

std::string hex_of(const std::vector<int64_t>& s) {
  std::string r;
  for (auto d : s) r += std::to_string(d) + ",";
  return r;
}

/// An edit of replayed outputs: every output named in `outputs` of graph `graph` ("" = any graph) becomes x * mul +
/// add.
struct Perturb {
  std::vector<std::string> outputs;
  std::string graph;
  float mul = 1.0f, add = 0.0f;
  bool applies(const std::string& g, const std::string& out) const {
    return (graph.empty() || g == graph) && std::find(outputs.begin(), outputs.end(), out) != outputs.end();
  }
};

/// Replays recorded network outputs in call order; with `check`, every input must equal the recording bit for bit.
class ReplayRunner : public GraphRunner {
 public:
  ReplayRunner(const std::string& dir, bool check, Perturb perturb = {}, const std::string& calls = "calls.json")
      : dir_(dir), check_(check), perturb_(std::move(perturb)) {
    calls_ = Json::parse([&] {
      auto d = read_file(dir + "/" + calls);
      return std::string(d.begin(), d.end());
    }());
  }
  TensorMap run(const std::string& graph, const TensorMap& in) override {
    if (next_ >= calls_.size()) throw std::runtime_error("replay: unexpected extra call of " + graph);
    const Json& c = calls_.at(next_++);
    if (c.at("graph").str() != graph)
      throw std::runtime_error("replay: call " + std::to_string(next_ - 1) + " is " + graph + ", recorded " +
                               c.at("graph").str());
    if (check_) {
      if (in.size() != c.at("inputs").size()) throw std::runtime_error("replay: " + graph + " input count differs");
      for (auto& kv : c.at("inputs").items()) {
        auto it = in.find(kv.first);
        if (it == in.end()) throw std::runtime_error("replay: " + graph + " lacks input " + kv.first);
        NpyArray a = read_npy(dir_ + "/" + kv.second.str());
        auto ref = a.as_float32();
        if (a.shape != it->second.shape)
          throw std::runtime_error("replay: " + graph + "." + kv.first + " shape " + hex_of(it->second.shape) +
                                   " != recorded " + hex_of(a.shape));
        if (std::memcmp(ref.data(), it->second.data.data(), ref.size() * 4) != 0)
          throw std::runtime_error("replay: " + graph + "." + kv.first + " differs from the Python runtime's input");
        ++inputs_checked_;
      }
    }
    TensorMap out;
    for (auto& kv : c.at("outputs").items()) {
      NpyArray a = read_npy(dir_ + "/" + kv.second.str());
      Tensor t(a.shape, a.as_float32());
      if (perturb_.applies(graph, kv.first))
        for (auto& x : t.data) x = x * perturb_.mul + perturb_.add;
      out.emplace(kv.first, std::move(t));
    }
    return out;
  }
  bool has_output(const std::string& name) const {
    for (size_t k = 0; k < calls_.size(); ++k)
      if (calls_.at(k).at("outputs").has(name)) return true;
    return false;
  }
  size_t consumed() const { return next_; }
  size_t recorded() const { return calls_.size(); }
  size_t inputs_checked() const { return inputs_checked_; }

 private:
  std::string dir_;
  bool check_;
  Perturb perturb_;
  Json calls_;
  size_t next_ = 0, inputs_checked_ = 0;
};

void fixture_test(const std::string& bundle_dir, const std::string& fx) {
  Bundle b = Bundle::load(bundle_dir);
  auto lic = read_file(fx + "/stream.lic");
  ReplayRunner replay(fx, true);
  Decoder dec(b, replay);
  DecodeResult r = dec.decode(lic);
  CHECK(replay.consumed() == replay.recorded());
  NpyArray y = read_npy(fx + "/y_hat.npy");
  NpyArray im = read_npy(fx + "/image.npy");
  bool y_same = y.shape == r.y_hat.shape && y.as_float32().size() == r.y_hat.data.size() &&
                std::memcmp(y.bytes.data(), r.y_hat.data.data(), y.bytes.size()) == 0;
  bool im_same = im.dtype == "|u1" && im.shape == std::vector<int64_t>({r.height, r.width, 3}) && im.bytes == r.rgb;
  CHECK(y_same);
  CHECK(im_same);
  write_ppm(fx + "/cpp_decoded.ppm", r.rgb, r.height, r.width);

  // A parse-critical mismatch (σ x1.5: 'scales', or each slice's 'scale') must raise BitstreamError naming the
  // first y stream it breaks ('y', or 'y0' for channel_slices), never give an image.
  // (Plans without a parse-critical network, i.e. factorized, have no σ to perturb.)
  std::string e1 = "n/a", e1_stream = "n/a";
  if (replay.has_output("scales") || replay.has_output("scale")) {
    ReplayRunner bad(fx, false, Perturb{{"scales", "scale"}, "", 1.5f, 0.0f});
    e1 = throws<BitstreamError>([&] { Decoder(b, bad).decode(lic); });
    size_t at = e1.find("stream '");
    CHECK(at != std::string::npos);
    e1_stream = at == std::string::npos ? "" : e1.substr(at + 8, e1.find('\'', at + 8) - at - 8);
    e1 = e1.empty() ? "" : "BitstreamError";
  }
  // channel_slices: the LRP output is part of y_hat_0 as later slices see it, so changing lrp0's output must change
  // the y_hat_0 input of slice1 (the replay's bit-for-bit input check catches it).
  std::string lrp_flow = "n/a";
  if (replay.has_output("lrp") && b.graphs().count(b.prefixes()[0] + "slice1")) {
    ReplayRunner bad(fx, true, Perturb{{"lrp"}, b.prefixes()[0] + "lrp0", 1.0f, 0.5f});
    std::string e = throws<std::runtime_error>([&] { Decoder(b, bad).decode(lic); });
    lrp_flow = e.find("slice1.y_hat_0 differs") != std::string::npos ? "true" : "false";
    CHECK(lrp_flow == "true");
  }
  // Truncated and bit-flipped bitstreams raise BitstreamError.
  ReplayRunner r2(fx, false), r3(fx, false);
  auto cut = std::vector<uint8_t>(lic.begin(), lic.end() - 3);
  CHECK(!throws<BitstreamError>([&] { Decoder(b, r2).decode(cut); }).empty());
  auto flip = lic;
  flip[flip.size() - 2] ^= 0x10;
  CHECK(!throws<BitstreamError>([&] { Decoder(b, r3).decode(flip); }).empty());

  // The encoder, replaying the Python encode's network outputs (every input checked): the same bytes.
  std::string enc_same = "n/a";
  if (std::filesystem::exists(fx + "/encode_calls.json")) {
    ContainerHeader hd;
    std::vector<ContainerStream> ss;
    unpack_container(lic.data(), lic.size(), hd, ss);
    EncoderOptions eo;
    eo.mode = static_cast<Mode>(hd.coder_mode);
    eo.context_order = hd.flags & kFlagRasterContext ? "raster" : "wavefront";
    eo.parse_path = code_name(kParsePaths, hd.parse_path);  // Codec.from_model records torch-cpu-fp32
    const Json& widths = b.plan().get("widths");
    if (widths.size()) eo.width = int(widths.at(hd.width_index).integer());
    ReplayRunner er(fx, true, {}, "encode_calls.json");
    NpyArray in = read_npy(fx + "/input.npy");
    CHECK(in.dtype == "|u1" && in.shape.size() == 3 && in.shape[2] == 3);
    EncodeResult e = Encoder(b, er, eo).encode(in.bytes.data(), uint32_t(in.shape[0]), uint32_t(in.shape[1]));
    CHECK(er.consumed() == er.recorded());
    enc_same = e.data == lic ? "true" : "false";
    CHECK(enc_same == "true");
  }

  std::printf(
      "{\"encode_identical\": \"%s\", \"plan\": \"%s\", \"height\": %u, \"width\": %u, \"network_calls\": %d, "
      "\"sequential_steps\": %d, "
      "\"inputs_checked\": %zu, \"y_hat_identical\": %s, \"image_identical\": %s, \"mismatch_error\": \"%s\", "
      "\"mismatch_stream\": \"%s\", \"lrp_feeds_next_slice\": \"%s\"}\n",
      enc_same.c_str(), b.plan_kind().c_str(), r.height, r.width, r.network_calls, r.sequential_steps,
      replay.inputs_checked(), y_same ? "true" : "false", im_same ? "true" : "false", e1.c_str(), e1_stream.c_str(),
      lrp_flow.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    unit_tests();
    if (argc == 3)
      fixture_test(argv[1], argv[2]);
    else if (argc != 1) {
      std::fprintf(stderr, "usage: %s [BUNDLE_DIR FIXTURE_DIR]\n", argv[0]);
      return 2;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  if (g_failures)
    std::fprintf(stderr, "%d check(s) failed\n", g_failures);
  else
    std::fprintf(stderr, "decoder_test: all checks passed\n");
  return g_failures ? 1 : 0;
}
