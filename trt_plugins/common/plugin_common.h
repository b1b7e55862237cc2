// Shared helpers of the lictrt TensorRT plugins (IPluginV3 / IPluginCreatorV3One).
//
// The plugins are written against the IPluginV3One* interfaces only (identical in TensorRT 10.14 and 11.x).
// The library registers through the exported getCreators() alone: no REGISTER_TENSORRT_PLUGIN, no
// getPluginRegistry(), no calls through the ILoggerFinder, so it never links libnvinfer.
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace lictrt {

constexpr char const* kPluginNamespace = "lictrt";  // export/op_contracts.py PLUGIN_NAMESPACE
constexpr char const* kPluginVersion = "2";         // export/op_contracts.py PLUGIN_VERSION

#define LICTRT_STR2(x) #x
#define LICTRT_STR(x) LICTRT_STR2(x)
// Returned by getMetadataString(): which TensorRT headers the plugin was compiled against.
constexpr char const* kPluginMetadata = "lictrt plugins 1; TensorRT headers " LICTRT_STR(
    NV_TENSORRT_MAJOR) "." LICTRT_STR(NV_TENSORRT_MINOR) "." LICTRT_STR(NV_TENSORRT_PATCH);

// Reads an int32 field `name` from a field collection into *value (left unchanged when absent).
// Returns false when the field is present with a type or length the contract does not allow.
// INT attributes arrive as kINT32 from TensorRT's ONNX parser; kINT64 is accepted when it fits.
inline bool readIntField(nvinfer1::PluginFieldCollection const* fc, char const* name, int32_t* value) {
  if (fc == nullptr) return true;
  for (int32_t i = 0; i < fc->nbFields; ++i) {
    nvinfer1::PluginField const& f = fc->fields[i];
    if (f.name == nullptr || std::strcmp(f.name, name) != 0) continue;
    if (f.data == nullptr || f.length != 1) return false;
    if (f.type == nvinfer1::PluginFieldType::kINT32) {
      *value = *static_cast<int32_t const*>(f.data);
    } else if (f.type == nvinfer1::PluginFieldType::kINT64) {
      int64_t v = *static_cast<int64_t const*>(f.data);
      if (v < INT32_MIN || v > INT32_MAX) return false;
      *value = static_cast<int32_t>(v);
    } else {
      return false;
    }
  }
  return true;
}

// True for a linear tensor of type fp32 or fp16 (activations).
inline bool isLinearActivation(nvinfer1::PluginTensorDesc const& d) {
  return d.format == nvinfer1::TensorFormat::kLINEAR &&
         (d.type == nvinfer1::DataType::kFLOAT || d.type == nvinfer1::DataType::kHALF);
}

// True for a linear fp32 tensor (weights).
inline bool isLinearFloat(nvinfer1::PluginTensorDesc const& d) {
  return d.format == nvinfer1::TensorFormat::kLINEAR && d.type == nvinfer1::DataType::kFLOAT;
}

// Maps a TensorRT activation type to the kernels' dtype enum (-1 if unsupported).
int toKernelDtype(nvinfer1::DataType t) noexcept;

}  // namespace lictrt
