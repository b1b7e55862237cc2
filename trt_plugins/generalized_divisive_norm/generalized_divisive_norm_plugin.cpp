// GeneralizedDivisiveNorm plugin: shape/type rules for the TensorRT builder and the enqueue into the CUDA kernel.
#include "generalized_divisive_norm_plugin.h"

#include "../common/lictrt_kernels.h"

#include <new>

using namespace nvinfer1;

namespace lictrt {
namespace {

enum Input : int32_t { kX = 0, kGamma, kBeta };

// x[B,C,H,W], gamma[C,C], beta[C].
bool shapesValid(PluginTensorDesc const* in) {
    Dims const& x = in[kX].dims;
    Dims const& g = in[kGamma].dims;
    Dims const& b = in[kBeta].dims;
    if (x.nbDims != 4 || g.nbDims != 2 || b.nbDims != 1) return false;
    return g.d[0] == x.d[1] && g.d[1] == x.d[1] && b.d[0] == x.d[1];
}

}  // namespace

GeneralizedDivisiveNormPlugin::GeneralizedDivisiveNormPlugin(int32_t inverse)
    : mInverse(inverse)
    , mSerialField("inverse", &mInverse, PluginFieldType::kINT32, 1)
    , mSerialFields{1, &mSerialField} {}

IPluginCapability* GeneralizedDivisiveNormPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept {
    switch (type) {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

IPluginV3* GeneralizedDivisiveNormPlugin::clone() noexcept {
    return new (std::nothrow) GeneralizedDivisiveNormPlugin(mInverse);
}

int32_t GeneralizedDivisiveNormPlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                                       DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept {
    return (in != nullptr && out != nullptr && nbInputs == kNbInputs && nbOutputs == 1) ? 0 : -1;
}

int32_t GeneralizedDivisiveNormPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs,
                                                          DataType const* inputTypes, int32_t nbInputs) const noexcept {
    if (nbOutputs != 1 || nbInputs != kNbInputs) return -1;
    outputTypes[0] = inputTypes[kX];
    return 0;
}

int32_t GeneralizedDivisiveNormPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs,
                                                       DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
                                                       DimsExprs* outputs, int32_t nbOutputs,
                                                       IExprBuilder& /*exprBuilder*/) noexcept {
    // y has x's shape [B, C, H, W].
    if (nbInputs != kNbInputs || nbOutputs != 1 || inputs[kX].nbDims != 4) return -1;
    outputs[0] = inputs[kX];
    return 0;
}

bool GeneralizedDivisiveNormPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut,
                                                              int32_t nbInputs, int32_t nbOutputs) noexcept {
    if (nbInputs != kNbInputs || nbOutputs != 1 || pos < 0 || pos >= kNbInputs + 1) return false;
    PluginTensorDesc const& d = inOut[pos].desc;
    if (pos == kX) return isLinearActivation(d);
    if (pos == kNbInputs) return isLinearActivation(d) && d.type == inOut[kX].desc.type;  // y
    return isLinearFloat(d);  // gamma, beta
}

int32_t GeneralizedDivisiveNormPlugin::onShapeChange(PluginTensorDesc const* in, int32_t nbInputs,
                                                     PluginTensorDesc const* out, int32_t nbOutputs) noexcept {
    if (in == nullptr || out == nullptr || nbInputs != kNbInputs || nbOutputs != 1) return -1;
    return shapesValid(in) ? 0 : -1;
}

int32_t GeneralizedDivisiveNormPlugin::enqueue(PluginTensorDesc const* inputDesc,
                                               PluginTensorDesc const* /*outputDesc*/,
                                               void const* const* inputs, void* const* outputs, void* /*workspace*/,
                                               cudaStream_t stream) noexcept {
    if (!shapesValid(inputDesc)) return -1;
    Dims const& x = inputDesc[kX].dims;
    int const dtype = toKernelDtype(inputDesc[kX].type);
    if (dtype < 0) return -1;
    int const st = lictrt_gdn_forward(inputs[kX], static_cast<float const*>(inputs[kGamma]),
                                      static_cast<float const*>(inputs[kBeta]), outputs[0], x.d[0], x.d[1],
                                      static_cast<int64_t>(x.d[2]) * x.d[3], mInverse, dtype, stream);
    return st == LICTRT_OK ? 0 : -1;
}

IPluginV3* GeneralizedDivisiveNormPlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept {
    return clone();
}

PluginFieldCollection const* GeneralizedDivisiveNormPlugin::getFieldsToSerialize() noexcept {
    mSerialField = PluginField("inverse", &mInverse, PluginFieldType::kINT32, 1);
    mSerialFields = PluginFieldCollection{1, &mSerialField};
    return &mSerialFields;
}

GeneralizedDivisiveNormCreator::GeneralizedDivisiveNormCreator() {
    mFields.emplace_back("inverse", nullptr, PluginFieldType::kINT32, 1);
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
}

IPluginV3* GeneralizedDivisiveNormCreator::createPlugin(char const* /*name*/, PluginFieldCollection const* fc,
                                                        TensorRTPhase /*phase*/) noexcept {
    int32_t inverse = 0;  // contract default
    if (!readIntField(fc, "inverse", &inverse)) return nullptr;
    if (inverse != 0 && inverse != 1) return nullptr;
    return new (std::nothrow) GeneralizedDivisiveNormPlugin(inverse);
}

}  // namespace lictrt
