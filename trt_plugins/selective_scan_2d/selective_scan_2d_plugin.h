// TensorRT IPluginV3 plugin "SelectiveScan2D" (namespace "lictrt", version "2").
// Inputs: u, dts, dt_weight, A, Bs, Cs, D, delta_bias (export/op_contracts.py SELECTIVE_SCAN_2D); output y.
// Field: delta_softplus (kINT32).  Enqueue calls lictrt_ss2d_forward.  The rest is common/plugin_base.h.
#pragma once

#include "../common/plugin_base.h"

namespace lictrt {

class SelectiveScan2DPlugin : public PluginBase<SelectiveScan2DPlugin> {
 public:
  static constexpr char const* kName = "SelectiveScan2D";
  static constexpr char const* kFieldName = "delta_softplus";
  static constexpr int32_t kFieldDefault = 1;
  static constexpr int32_t kNbInputs = 8;

  explicit SelectiveScan2DPlugin(int32_t deltaSoftplus) : PluginBase(deltaSoftplus) {}

  // Checks the contract's shape relations.
  static bool shapesValid(nvinfer1::PluginTensorDesc const* in);

  bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                 int32_t nbOutputs) noexcept override;
  size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                          nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
  int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                  void const* const* inputs, void* const* outputs, void* workspace,
                  cudaStream_t stream) noexcept override;
};

using SelectiveScan2DCreator = FieldCreator<SelectiveScan2DPlugin>;

}  // namespace lictrt
