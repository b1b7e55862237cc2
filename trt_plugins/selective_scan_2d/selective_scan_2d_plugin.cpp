// SelectiveScan2D plugin: shape/type rules for the TensorRT builder and the enqueue into the CUDA kernels.
#include "selective_scan_2d_plugin.h"

#include "../common/lictrt_kernels.h"

using namespace nvinfer1;

namespace lictrt {
namespace {

enum Input : int32_t { kU = 0, kDts, kDtWeight, kA, kBs, kCs, kD, kDeltaBias };

bool isActivationInput(int32_t pos) { return pos == kU || pos == kDts || pos == kBs || pos == kCs; }

}  // namespace

// Dims are u[B,Di,H,W], dts[B,4,R,H,W], dt_weight[4Di,R], A[4Di,N], Bs/Cs[B,4,N,H,W], D/delta_bias[4Di].
bool SelectiveScan2DPlugin::shapesValid(PluginTensorDesc const* in) {
  Dims const& u = in[kU].dims;
  Dims const& dt = in[kDts].dims;
  Dims const& wt = in[kDtWeight].dims;
  Dims const& a = in[kA].dims;
  Dims const& bs = in[kBs].dims;
  Dims const& cs = in[kCs].dims;
  if (u.nbDims != 4 || dt.nbDims != 5 || wt.nbDims != 2 || a.nbDims != 2 || bs.nbDims != 5 || cs.nbDims != 5)
    return false;
  if (in[kD].dims.nbDims != 1 || in[kDeltaBias].dims.nbDims != 1) return false;
  int64_t const B = u.d[0], Di = u.d[1], H = u.d[2], W = u.d[3], N = a.d[1], R = wt.d[1];
  if (dt.d[0] != B || dt.d[1] != 4 || dt.d[2] != R || dt.d[3] != H || dt.d[4] != W) return false;
  if (wt.d[0] != 4 * Di || a.d[0] != 4 * Di) return false;
  for (Dims const* x : {&bs, &cs})
    if (x->d[0] != B || x->d[1] != 4 || x->d[2] != N || x->d[3] != H || x->d[4] != W) return false;
  return in[kD].dims.d[0] == 4 * Di && in[kDeltaBias].dims.d[0] == 4 * Di;
}

bool SelectiveScan2DPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut,
                                                      int32_t nbInputs, int32_t nbOutputs) noexcept {
  if (nbInputs != kNbInputs || nbOutputs != 1 || pos < 0 || pos >= kNbInputs + 1) return false;
  PluginTensorDesc const& d = inOut[pos].desc;
  if (pos == kU) return isLinearActivation(d);
  if (pos == kNbInputs || isActivationInput(pos))  // output y, dts, Bs, Cs: same type as u
    return isLinearActivation(d) && d.type == inOut[kU].desc.type;
  return isLinearFloat(d);  // dt_weight, A, D, delta_bias
}

size_t SelectiveScan2DPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                                               DynamicPluginTensorDesc const* /*outputs*/,
                                               int32_t /*nbOutputs*/) const noexcept {
  if (nbInputs != kNbInputs) return 0;
  Dims const& u = inputs[kU].max;
  Dims const& a = inputs[kA].max;
  Dims const& wt = inputs[kDtWeight].max;
  if (u.nbDims != 4 || a.nbDims != 2 || wt.nbDims != 2) return 0;
  size_t bytes = 0;
  int const dtype = toKernelDtype(inputs[kU].desc.type);
  if (lictrt_ss2d_workspace_size(u.d[0], u.d[1], u.d[2], u.d[3], a.d[1], wt.d[1], dtype < 0 ? LICTRT_FP16 : dtype,
                                 &bytes) != LICTRT_OK)
    return 0;
  return bytes;
}

int32_t SelectiveScan2DPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
                                       void const* const* inputs, void* const* outputs, void* workspace,
                                       cudaStream_t stream) noexcept {
  if (!shapesValid(inputDesc)) return -1;
  Dims const& u = inputDesc[kU].dims;
  int64_t const N = inputDesc[kA].dims.d[1], R = inputDesc[kDtWeight].dims.d[1];
  int const dtype = toKernelDtype(inputDesc[kU].type);
  size_t bytes = 0;
  if (dtype < 0 || lictrt_ss2d_workspace_size(u.d[0], u.d[1], u.d[2], u.d[3], N, R, dtype, &bytes) != LICTRT_OK)
    return -1;
  int const st = lictrt_ss2d_forward(
      inputs[kU], inputs[kDts], static_cast<float const*>(inputs[kDtWeight]), static_cast<float const*>(inputs[kA]),
      inputs[kBs], inputs[kCs], static_cast<float const*>(inputs[kD]), static_cast<float const*>(inputs[kDeltaBias]),
      outputs[0], u.d[0], u.d[1], u.d[2], u.d[3], N, R, mField, dtype, workspace, bytes, stream);
  return st == LICTRT_OK ? 0 : -1;
}

}  // namespace lictrt
