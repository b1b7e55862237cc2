// TensorRT IPluginV3 plugin "GeneralizedDivisiveNorm" (namespace "lictrt", version "1").
// Inputs: x, gamma, beta (export/op_contracts.py GENERALIZED_DIVISIVE_NORM); output y.
// Field: inverse (kINT32).  Enqueue calls lictrt_gdn_forward.  No workspace.  The rest is common/plugin_base.h.
#pragma once

#include "../common/plugin_base.h"

namespace lictrt {

class GeneralizedDivisiveNormPlugin : public PluginBase<GeneralizedDivisiveNormPlugin> {
 public:
  static constexpr char const* kName = "GeneralizedDivisiveNorm";
  static constexpr char const* kFieldName = "inverse";
  static constexpr int32_t kFieldDefault = 0;
  static constexpr int32_t kNbInputs = 3;

  explicit GeneralizedDivisiveNormPlugin(int32_t inverse) : PluginBase(inverse) {}

  // x[B,C,H,W], gamma[C,C], beta[C].
  static bool shapesValid(nvinfer1::PluginTensorDesc const* in);

  bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                 int32_t nbOutputs) noexcept override;
  size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
                          nvinfer1::DynamicPluginTensorDesc const* /*outputs*/,
                          int32_t /*nbOutputs*/) const noexcept override {
    return 0;
  }
  int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                  void const* const* inputs, void* const* outputs, void* workspace,
                  cudaStream_t stream) noexcept override;
};

using GeneralizedDivisiveNormCreator = FieldCreator<GeneralizedDivisiveNormPlugin>;

}  // namespace lictrt
