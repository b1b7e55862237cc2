// GeneralizedDivisiveNorm plugin: shape/type rules for the TensorRT builder and the enqueue into the CUDA kernel.
#include "generalized_divisive_norm_plugin.h"

#include "../common/lictrt_kernels.h"

using namespace nvinfer1;

namespace lictrt {
namespace {

enum Input : int32_t { kX = 0, kGamma, kBeta };

}  // namespace

bool GeneralizedDivisiveNormPlugin::shapesValid(PluginTensorDesc const* in) {
  Dims const& x = in[kX].dims;
  Dims const& g = in[kGamma].dims;
  Dims const& b = in[kBeta].dims;
  if (x.nbDims != 4 || g.nbDims != 2 || b.nbDims != 1) return false;
  return g.d[0] == x.d[1] && g.d[1] == x.d[1] && b.d[0] == x.d[1];
}

bool GeneralizedDivisiveNormPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut,
                                                              int32_t nbInputs, int32_t nbOutputs) noexcept {
  if (nbInputs != kNbInputs || nbOutputs != 1 || pos < 0 || pos >= kNbInputs + 1) return false;
  PluginTensorDesc const& d = inOut[pos].desc;
  if (pos == kX) return isLinearActivation(d);
  if (pos == kNbInputs) return isLinearActivation(d) && d.type == inOut[kX].desc.type;  // y
  return isLinearFloat(d);                                                              // gamma, beta
}

int32_t GeneralizedDivisiveNormPlugin::enqueue(PluginTensorDesc const* inputDesc,
                                               PluginTensorDesc const* /*outputDesc*/, void const* const* inputs,
                                               void* const* outputs, void* /*workspace*/,
                                               cudaStream_t stream) noexcept {
  if (!shapesValid(inputDesc)) return -1;
  Dims const& x = inputDesc[kX].dims;
  int const dtype = toKernelDtype(inputDesc[kX].type);
  if (dtype < 0) return -1;
  int const st = lictrt_gdn_forward(inputs[kX], static_cast<float const*>(inputs[kGamma]),
                                    static_cast<float const*>(inputs[kBeta]), outputs[0], x.d[0], x.d[1],
                                    static_cast<int64_t>(x.d[2]) * x.d[3], mField, dtype, stream);
  return st == LICTRT_OK ? 0 : -1;
}

}  // namespace lictrt
