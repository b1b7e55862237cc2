// ONNX Runtime custom-op library: registers lictrt::SelectiveScan2D on the CPU execution provider, running the
// CPU kernel of cpu_kernels.h on ONNX Runtime's intra-op thread pool (KernelContext::ParallelFor).
//
// ONNX Runtime prefers a registered kernel to the model-local function of the same domain and name, so a
// bundle's graphs need no change: sessions that load this library run the native kernel, others the function
// body. Loaded by path (SessionOptions.register_custom_ops_library in Python, RegisterCustomOpsLibrary_V2 in C,
// --plugins in polygraphy); compiled against the C API headers only (lictrt::onnxruntime_headers) and linked
// against no onnxruntime library: the API comes from the OrtApiBase passed to RegisterCustomOps.
//
// Two kernels per op name: fp32 and fp16 activations (u, dts, Bs, Cs, y); dt_weight, A, D, delta_bias are fp32.
#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include "cpu_kernels.h"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace lictrt {
namespace {

constexpr char const* kDomain = "lictrt";

void runOnOrtPool(void* ctx, void (*fn)(void*, size_t), void* arg, size_t n) {
  Ort::KernelContext(static_cast<OrtKernelContext*>(ctx)).ParallelFor(fn, n, 0, arg);
}

int64_t intAttribute(OrtKernelInfo const* info, char const* name, int64_t fallback) {
  int64_t v = fallback;
  OrtStatus* st = Ort::GetApi().KernelInfoGetAttribute_int64(info, name, &v);
  if (st != nullptr) {  // absent: the contract's default
    Ort::GetApi().ReleaseStatus(st);
    return fallback;
  }
  return v;
}

struct Ss2dKernel {
  explicit Ss2dKernel(OrtKernelInfo const* info, cpu::DType io)
      : softplus_(intAttribute(info, "delta_softplus", 1) != 0), io_(io) {}

  void Compute(OrtKernelContext* raw) {
    Ort::KernelContext ctx(raw);
    Ort::ConstValue in[8];  // u, dts, dt_weight, A, Bs, Cs, D, delta_bias
    for (size_t i = 0; i < 8; ++i) in[i] = ctx.GetInput(i);
    std::vector<int64_t> const su = in[0].GetTensorTypeAndShapeInfo().GetShape();
    std::vector<int64_t> const sw = in[2].GetTensorTypeAndShapeInfo().GetShape();
    std::vector<int64_t> const sa = in[3].GetTensorTypeAndShapeInfo().GetShape();
    if (su.size() != 4 || sw.size() != 2 || sa.size() != 2)
      ORT_CXX_API_THROW("lictrt::SelectiveScan2D: u must be [B,Di,H,W], dt_weight [4Di,R] and A [4Di,N]",
                        ORT_INVALID_ARGUMENT);
    cpu::Ss2dShape s{su[0], su[1], su[2], su[3], sa[1], sw[1]};
    check(in[1], {s.B, 4, s.R, s.H, s.W}, "dts");
    check(in[2], {4 * s.Di, s.R}, "dt_weight");
    check(in[3], {4 * s.Di, s.N}, "A");
    check(in[4], {s.B, 4, s.N, s.H, s.W}, "Bs");
    check(in[5], {s.B, 4, s.N, s.H, s.W}, "Cs");
    check(in[6], {4 * s.Di}, "D");
    check(in[7], {4 * s.Di}, "delta_bias");
    Ort::UnownedValue y = ctx.GetOutput(0, su.data(), su.size());
    cpu::Parallel par{runOnOrtPool, raw};
    char const* err = cpu::ss2dForward(in[0].GetTensorRawData(), in[1].GetTensorRawData(), in[2].GetTensorData<float>(),
                                       in[3].GetTensorData<float>(), in[4].GetTensorRawData(), in[5].GetTensorRawData(),
                                       in[6].GetTensorData<float>(), in[7].GetTensorData<float>(),
                                       y.GetTensorMutableRawData(), s, softplus_, io_, par);
    if (err) ORT_CXX_API_THROW(std::string("lictrt::") + err, ORT_INVALID_ARGUMENT);
  }

 private:
  static void check(Ort::ConstValue const& v, std::vector<int64_t> const& want, char const* name) {
    if (v.GetTensorTypeAndShapeInfo().GetShape() != want)
      ORT_CXX_API_THROW(std::string("lictrt::SelectiveScan2D: input ") + name + " has the wrong shape",
                        ORT_INVALID_ARGUMENT);
  }
  bool softplus_;
  cpu::DType io_;
};

template <ONNXTensorElementDataType kAct>
struct Ss2dOp : Ort::CustomOpBase<Ss2dOp<kAct>, Ss2dKernel> {
  void* CreateKernel(OrtApi const&, OrtKernelInfo const* info) const {
    return new Ss2dKernel(info, kAct == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT ? cpu::DType::kF32 : cpu::DType::kF16);
  }
  char const* GetName() const { return "SelectiveScan2D"; }
  char const* GetExecutionProviderType() const { return "CPUExecutionProvider"; }
  size_t GetInputTypeCount() const { return 8; }
  ONNXTensorElementDataType GetInputType(size_t i) const {  // u, dts, Bs, Cs in the activation type
    return (i == 0 || i == 1 || i == 4 || i == 5) ? kAct : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return kAct; }
};

Ss2dOp<ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT> g_ss2dF32;
Ss2dOp<ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16> g_ss2dF16;

std::mutex g_mutex;
std::vector<std::unique_ptr<Ort::CustomOpDomain>> g_domains;  // alive as long as the library is loaded

}  // namespace
}  // namespace lictrt

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                                                            OrtApiBase const* api) {
  OrtApi const* ort = api->GetApi(ORT_API_VERSION);
  if (ort == nullptr) return nullptr;  // cannot even report: this ONNX Runtime is older than the headers
  Ort::InitApi(ort);
  try {
    auto domain = std::make_unique<Ort::CustomOpDomain>(lictrt::kDomain);
    domain->Add(&lictrt::g_ss2dF32);
    domain->Add(&lictrt::g_ss2dF16);
    Ort::UnownedSessionOptions(options).Add(*domain);
    std::lock_guard<std::mutex> lock(lictrt::g_mutex);
    lictrt::g_domains.push_back(std::move(domain));
  } catch (Ort::Exception const& e) {
    return ort->CreateStatus(e.GetOrtErrorCode(), e.what());
  }
  return nullptr;
}
