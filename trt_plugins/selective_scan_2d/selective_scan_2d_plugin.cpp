// SelectiveScan2D plugin: shape/type rules for the TensorRT builder and the enqueue into the CUDA kernels.
#include "selective_scan_2d_plugin.h"

#include "../common/lictrt_kernels.h"

#include <new>

using namespace nvinfer1;

namespace lictrt {
namespace {

enum Input : int32_t { kU = 0, kDelta, kA, kBs, kCs, kD, kDeltaBias };

bool isActivationInput(int32_t pos) { return pos == kU || pos == kDelta || pos == kBs || pos == kCs; }

// Checks the contract's shape relations; dims are u[B,Di,H,W], delta[B,4Di,H,W], A[4Di,N],
// Bs/Cs[B,4,N,H,W], D/delta_bias[4Di].
bool shapesValid(PluginTensorDesc const* in) {
    Dims const& u = in[kU].dims;
    Dims const& dl = in[kDelta].dims;
    Dims const& a = in[kA].dims;
    Dims const& bs = in[kBs].dims;
    Dims const& cs = in[kCs].dims;
    if (u.nbDims != 4 || dl.nbDims != 4 || a.nbDims != 2 || bs.nbDims != 5 || cs.nbDims != 5) return false;
    if (in[kD].dims.nbDims != 1 || in[kDeltaBias].dims.nbDims != 1) return false;
    int64_t const B = u.d[0], Di = u.d[1], H = u.d[2], W = u.d[3], N = a.d[1];
    if (dl.d[0] != B || dl.d[1] != 4 * Di || dl.d[2] != H || dl.d[3] != W) return false;
    if (a.d[0] != 4 * Di) return false;
    for (Dims const* x : {&bs, &cs})
        if (x->d[0] != B || x->d[1] != 4 || x->d[2] != N || x->d[3] != H || x->d[4] != W) return false;
    return in[kD].dims.d[0] == 4 * Di && in[kDeltaBias].dims.d[0] == 4 * Di;
}

}  // namespace

SelectiveScan2DPlugin::SelectiveScan2DPlugin(int32_t deltaSoftplus)
    : mDeltaSoftplus(deltaSoftplus)
    , mSerialField("delta_softplus", &mDeltaSoftplus, PluginFieldType::kINT32, 1)
    , mSerialFields{1, &mSerialField} {}

IPluginCapability* SelectiveScan2DPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept {
    switch (type) {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

IPluginV3* SelectiveScan2DPlugin::clone() noexcept { return new (std::nothrow) SelectiveScan2DPlugin(mDeltaSoftplus); }

int32_t SelectiveScan2DPlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                               DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept {
    return (in != nullptr && out != nullptr && nbInputs == kNbInputs && nbOutputs == 1) ? 0 : -1;
}

int32_t SelectiveScan2DPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                                                  int32_t nbInputs) const noexcept {
    if (nbOutputs != 1 || nbInputs != kNbInputs) return -1;
    outputTypes[0] = inputTypes[kU];
    return 0;
}

int32_t SelectiveScan2DPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs,
                                               DimsExprs const* /*shapeInputs*/,
                                               int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
                                               IExprBuilder& /*exprBuilder*/) noexcept {
    // y has u's shape [B, Di, H, W]; the expressions are passed through unchanged.
    if (nbInputs != kNbInputs || nbOutputs != 1 || inputs[kU].nbDims != 4) return -1;
    outputs[0] = inputs[kU];
    return 0;
}

bool SelectiveScan2DPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut,
                                                      int32_t nbInputs, int32_t nbOutputs) noexcept {
    if (nbInputs != kNbInputs || nbOutputs != 1 || pos < 0 || pos >= kNbInputs + 1) return false;
    PluginTensorDesc const& d = inOut[pos].desc;
    if (pos == kU) return isLinearActivation(d);
    if (pos == kNbInputs || isActivationInput(pos))  // output y, delta, Bs, Cs: same type as u
        return isLinearActivation(d) && d.type == inOut[kU].desc.type;
    return isLinearFloat(d);  // A, D, delta_bias
}

size_t SelectiveScan2DPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                                               DynamicPluginTensorDesc const* /*outputs*/,
                                               int32_t /*nbOutputs*/) const noexcept {
    if (nbInputs != kNbInputs) return 0;
    Dims const& u = inputs[kU].max;
    Dims const& a = inputs[kA].max;
    if (u.nbDims != 4 || a.nbDims != 2) return 0;
    size_t bytes = 0;
    int const dtype = toKernelDtype(inputs[kU].desc.type);
    if (lictrt_ss2d_workspace_size(u.d[0], u.d[1], u.d[2], u.d[3], a.d[1], dtype < 0 ? LICTRT_FP16 : dtype, &bytes) !=
        LICTRT_OK)
        return 0;
    return bytes;
}

int32_t SelectiveScan2DPlugin::onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out,
                                             int32_t nbOutputs) noexcept {
    if (in == nullptr || out == nullptr || nbInputs != kNbInputs || nbOutputs != 1) return -1;
    return shapesValid(in) ? 0 : -1;
}

int32_t SelectiveScan2DPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
                                       void const* const* inputs, void* const* outputs, void* workspace,
                                       cudaStream_t stream) noexcept {
    if (!shapesValid(inputDesc)) return -1;
    Dims const& u = inputDesc[kU].dims;
    int64_t const N = inputDesc[kA].dims.d[1];
    int const dtype = toKernelDtype(inputDesc[kU].type);
    size_t bytes = 0;
    if (dtype < 0 || lictrt_ss2d_workspace_size(u.d[0], u.d[1], u.d[2], u.d[3], N, dtype, &bytes) != LICTRT_OK)
        return -1;
    int const st = lictrt_ss2d_forward(inputs[kU], inputs[kDelta], static_cast<float const*>(inputs[kA]),
                                       inputs[kBs], inputs[kCs], static_cast<float const*>(inputs[kD]),
                                       static_cast<float const*>(inputs[kDeltaBias]), outputs[0], u.d[0], u.d[1],
                                       u.d[2], u.d[3], N, mDeltaSoftplus, dtype, workspace, bytes, stream);
    return st == LICTRT_OK ? 0 : -1;
}

IPluginV3* SelectiveScan2DPlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept { return clone(); }

PluginFieldCollection const* SelectiveScan2DPlugin::getFieldsToSerialize() noexcept {
    mSerialField = PluginField("delta_softplus", &mDeltaSoftplus, PluginFieldType::kINT32, 1);
    mSerialFields = PluginFieldCollection{1, &mSerialField};
    return &mSerialFields;
}

SelectiveScan2DCreator::SelectiveScan2DCreator() {
    mFields.emplace_back("delta_softplus", nullptr, PluginFieldType::kINT32, 1);
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
}

IPluginV3* SelectiveScan2DCreator::createPlugin(char const* /*name*/, PluginFieldCollection const* fc,
                                                TensorRTPhase /*phase*/) noexcept {
    int32_t deltaSoftplus = 1;  // contract default
    if (!readIntField(fc, "delta_softplus", &deltaSoftplus)) return nullptr;
    if (deltaSoftplus != 0 && deltaSoftplus != 1) return nullptr;
    return new (std::nothrow) SelectiveScan2DPlugin(deltaSoftplus);
}

}  // namespace lictrt
