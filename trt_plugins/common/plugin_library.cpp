// Entry points of liblictrt_plugins.so for dynamic loading (trtexec --dynamicPlugins,
// IPluginRegistry::loadLibrary): getCreators() and a no-op setLoggerFinder().
#include "../common/lictrt_kernels.h"
#include "../common/plugin_common.h"
#include "../generalized_divisive_norm/generalized_divisive_norm_plugin.h"
#include "../selective_scan_2d/selective_scan_2d_plugin.h"

namespace lictrt {

int toKernelDtype(nvinfer1::DataType t) noexcept {
  switch (t) {
    case nvinfer1::DataType::kFLOAT:
      return LICTRT_FP32;
    case nvinfer1::DataType::kHALF:
      return LICTRT_FP16;
    default:
      return -1;
  }
}

}  // namespace lictrt

extern "C" {

// The creators live for the lifetime of the library.  Their constructors only fill field tables, so
// listing creators needs neither a GPU nor libnvinfer.
__attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
  static lictrt::SelectiveScan2DCreator scan;
  static lictrt::GeneralizedDivisiveNormCreator gdn;
  static nvinfer1::IPluginCreatorInterface* const creators[] = {&scan, &gdn};
  nbCreators = 2;
  return creators;
}

// The ILoggerFinder interface differs between TensorRT 10 and 11, so the library never calls through it.
__attribute__((visibility("default"))) void setLoggerFinder(nvinfer1::ILoggerFinder* /*finder*/) {}

}  // extern "C"
