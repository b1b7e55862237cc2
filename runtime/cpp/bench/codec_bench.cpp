// C++ encode/decode timing of one image with a bundle on ONNX Runtime (benchmarks/cpp_runtime.py drives it).
//
//   lictrt_codec_bench BUNDLE IMAGE.png [--repeats R] [--threads T] [--out OUT.lic] [--level LEVEL]
//   lictrt_codec_bench BUNDLE --serve [--threads T] [--level LEVEL]
//
// One warm-up encode and decode (sessions created), then R timed encodes and R timed decodes, each with the codec's
// own stats; prints one JSON object: per-repeat totals and splits (network, per graph, entropy, context loop, steps).
// --serve keeps the runner (its ONNX Runtime sessions) across requests, as the Python runtime keeps an open Codec:
// each stdin line "IMAGE.png R OUT.lic" is answered by one JSON line on stdout; an empty line ends it.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "../cli/png_io.hpp"
#include "lictrt/decoder.hpp"
#include "lictrt/encoder.hpp"
#include "lictrt/onnxruntime_runner.hpp"

namespace {

std::string stats_json(const lictrt::CodecStats& s) {
  char buf[512];
  auto g = s.network_by_graph_s.find("context_step");
  std::snprintf(buf, sizeof buf,
                "{\"total_s\": %.9f, \"network_s\": %.9f, \"entropy_s\": %.9f, \"loop_s\": %.9f, "
                "\"context_step_s\": %.9f, \"network_calls\": %d, \"sequential_steps\": %d, ",
                s.total_s, s.network_s, s.entropy_s, s.loop_s, g == s.network_by_graph_s.end() ? 0.0 : g->second,
                s.network_calls, s.sequential_steps);
  std::string out = buf;
  out += "\"network_by_graph_s\": {";
  for (auto it = s.network_by_graph_s.begin(); it != s.network_by_graph_s.end(); ++it) {
    std::snprintf(buf, sizeof buf, "%s\"%s\": %.9f", it == s.network_by_graph_s.begin() ? "" : ", ", it->first.c_str(),
                  it->second);
    out += buf;
  }
  return out + "}}";
}

}  // namespace

// Warm-up, then R timed encodes and decodes of one image; the JSON object described above.
std::string measure(lictrt::Encoder& enc, lictrt::Decoder& dec, const std::string& runtime_version,
                    const std::string& png, int repeats, const std::string& out) {
  lictrt_cli::Image im = lictrt_cli::read_png(png);
  lictrt::EncodeResult e = enc.encode(im.rgb.data(), im.height, im.width);
  dec.decode(e.data);
  std::string encs, decs;
  for (int r = 0; r < repeats; ++r) {
    e = enc.encode(im.rgb.data(), im.height, im.width);
    encs += (r ? ", " : "") + stats_json(e.stats);
  }
  for (int r = 0; r < repeats; ++r) decs += (r ? ", " : "") + stats_json(dec.decode(e.data).stats);
  if (!out.empty())
    std::ofstream(out, std::ios::binary)
        .write(reinterpret_cast<const char*>(e.data.data()), std::streamsize(e.data.size()));
  return "{\"bytes\": " + std::to_string(e.data.size()) + ", \"onnxruntime\": \"" + runtime_version +
         "\", \"encode\": [" + encs + "], \"decode\": [" + decs + "]}";
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: %s BUNDLE IMAGE.png [--repeats R] [--threads T] [--out OUT.lic] [--level LEVEL]\n"
                 "       %s BUNDLE --serve [--threads T] [--level LEVEL]\n",
                 argv[0], argv[0]);
    return 2;
  }
  const bool serve = !std::strcmp(argv[2], "--serve");
  int repeats = 3, threads = 1;
  std::string out;
  lictrt::EncoderOptions eo;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--repeats"))
      repeats = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads"))
      threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--out"))
      out = argv[i + 1];
    else if (!std::strcmp(argv[i], "--level"))  // scalable bundles (BaSIC)
      eo.level = argv[i + 1];
  }
  try {
    lictrt::Bundle bundle = lictrt::Bundle::load(argv[1]);
    lictrt::OnnxRuntimeOptions o;
    o.threads = threads;
    lictrt::OnnxRuntimeRunner runner(bundle, o);
    lictrt::Encoder enc(bundle, runner, eo);
    lictrt::Decoder dec(bundle, runner);
    if (!serve) {
      std::printf("%s\n", measure(enc, dec, runner.version(), argv[2], repeats, out).c_str());
      return 0;
    }
    std::string line;
    while (std::getline(std::cin, line) && !line.empty()) {
      std::istringstream req(line);
      std::string png, lic;
      int r = 0;
      if (!(req >> png >> r >> lic)) throw std::runtime_error("bad request line: " + line);
      std::printf("%s\n", measure(enc, dec, runner.version(), png, r, lic).c_str());
      std::fflush(stdout);
    }
    return 0;
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "error: %s\n", ex.what());
    return 1;
  }
}
