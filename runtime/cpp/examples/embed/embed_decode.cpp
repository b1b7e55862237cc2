// Decode a .lic bitstream into a PPM image with lictrt on ONNX Runtime (CPU): the whole embedding API in a page.
//
//   lictrt_embed_decode BUNDLE in.lic out.ppm
#include <cstdio>
#include <exception>

#include "lictrt/bundle.hpp"
#include "lictrt/decoder.hpp"
#include "lictrt/onnxruntime_runner.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s BUNDLE in.lic out.ppm\n", argv[0]);
    return 2;
  }
  try {
    lictrt::Bundle bundle = lictrt::Bundle::load(argv[1]);  // manifest.json + tables.npz
    lictrt::OnnxRuntimeOptions options;
    options.threads = 1;                                // reconstruction graphs; parse-critical ones are pinned
    lictrt::OnnxRuntimeRunner runner(bundle, options);  // finds the onnxruntime library at run time
    lictrt::Decoder decoder(bundle, runner);
    lictrt::DecodeResult image = decoder.decode(lictrt::read_file(argv[2]));
    lictrt::write_ppm(argv[3], image.rgb, image.height, image.width);
    std::printf("%s: %ux%u\n", argv[3], image.width, image.height);
    return 0;
  } catch (const std::exception& e) {  // BitstreamError, BundleError, OnnxRuntimeError, ...
    std::fprintf(stderr, "%s: error: %s\n", argv[0], e.what());
    return 1;
  }
}
