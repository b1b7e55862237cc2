// The boilerplate shared by the lictrt TensorRT plugins: every op has one output with the shape and type of its
// first input, one INT32 field (0 or 1), and checks its input shapes before running. A plugin derives from
// PluginBase<Derived> and supplies
//   static constexpr char const* kName, kFieldName;  static constexpr int32_t kNbInputs, kFieldDefault;
//   static bool shapesValid(nvinfer1::PluginTensorDesc const* in);
//   supportsFormatCombination(), enqueue() and, when it needs one, getWorkspaceSize();
// its creator is FieldCreator<Derived>.
#pragma once

#include "plugin_common.h"

#include <new>
#include <vector>

namespace lictrt {

template <typename Derived>
class PluginBase : public nvinfer1::IPluginV3,
                   public nvinfer1::IPluginV3OneCore,
                   public nvinfer1::IPluginV3OneBuild,
                   public nvinfer1::IPluginV3OneRuntime {
public:
    explicit PluginBase(int32_t field)
        : mField(field), mSerialField(Derived::kFieldName, &mField, nvinfer1::PluginFieldType::kINT32, 1),
          mSerialFields{1, &mSerialField} {}

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override {
        switch (type) {
        case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
        case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
        case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }
    nvinfer1::IPluginV3* clone() noexcept override { return new (std::nothrow) Derived(mField); }

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override { return Derived::kName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override {
        return (in != nullptr && out != nullptr && nbInputs == Derived::kNbInputs && nbOutputs == 1) ? 0 : -1;
    }
    // The output has the first input's type.
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
                               nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override {
        if (nbOutputs != 1 || nbInputs != Derived::kNbInputs) return -1;
        outputTypes[0] = inputTypes[0];
        return 0;
    }
    // The output has the first input's shape [B, C, H, W]; the expressions are passed through unchanged.
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
                            nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
                            nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                            nvinfer1::IExprBuilder& /*exprBuilder*/) noexcept override {
        if (nbInputs != Derived::kNbInputs || nbOutputs != 1 || inputs[0].nbDims != 4) return -1;
        outputs[0] = inputs[0];
        return 0;
    }
    int32_t getNbOutputs() const noexcept override { return 1; }
    char const* getMetadataString() noexcept override { return kPluginMetadata; }

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
                          int32_t nbOutputs) noexcept override {
        if (in == nullptr || out == nullptr || nbInputs != Derived::kNbInputs || nbOutputs != 1) return -1;
        return Derived::shapesValid(in) ? 0 : -1;
    }
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept override {
        return clone();
    }
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override {
        mSerialField = nvinfer1::PluginField(Derived::kFieldName, &mField, nvinfer1::PluginFieldType::kINT32, 1);
        mSerialFields = nvinfer1::PluginFieldCollection{1, &mSerialField};
        return &mSerialFields;
    }

protected:
    int32_t mField;  // the op's one field (delta_softplus, inverse)

private:
    nvinfer1::PluginField mSerialField;
    nvinfer1::PluginFieldCollection mSerialFields;
};

// The creator of a PluginBase plugin: one INT32 field, absent = the contract's default, 0 or 1 accepted.
template <typename Plugin>
class FieldCreator : public nvinfer1::IPluginCreatorV3One {
public:
    FieldCreator() {
        mFields.emplace_back(Plugin::kFieldName, nullptr, nvinfer1::PluginFieldType::kINT32, 1);
        mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
        mFieldCollection.fields = mFields.data();
    }
    nvinfer1::IPluginV3* createPlugin(char const* /*name*/, nvinfer1::PluginFieldCollection const* fc,
                                      nvinfer1::TensorRTPhase /*phase*/) noexcept override {
        int32_t value = Plugin::kFieldDefault;
        if (!readIntField(fc, Plugin::kFieldName, &value)) return nullptr;
        if (value != 0 && value != 1) return nullptr;
        return new (std::nothrow) Plugin(value);
    }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override { return &mFieldCollection; }
    char const* getPluginName() const noexcept override { return Plugin::kName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection;
};

}  // namespace lictrt
