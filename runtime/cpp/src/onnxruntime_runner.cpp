// OnnxRuntimeRunner: dlopen'ed ONNX Runtime, sessions per graph with the Python runtime's settings
// (runtime/backends/ort.py), float32 tensors in and out (float16 / int32 / int64 graph inputs converted).
#define ORT_API_MANUAL_INIT
#include "lictrt/onnxruntime_runner.hpp"

#include <dlfcn.h>
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <vector>

#include "lictrt/onnx_ops.hpp"

#ifndef LICTRT_ONNXRUNTIME_SEARCH_DIRS
#define LICTRT_ONNXRUNTIME_SEARCH_DIRS ""
#endif

namespace lictrt {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t a = 0;
  while (a <= s.size()) {
    size_t b = s.find(sep, a);
    if (b == std::string::npos) b = s.size();
    if (b > a) out.push_back(s.substr(a, b - a));
    a = b + 1;
  }
  return out;
}

// "libonnxruntime.so.1.32.0" -> {1, 32, 0}: newest first when several versions sit in one directory.
std::vector<int> version_of(const std::string& name) {
  std::vector<int> v;
  const size_t at = name.find(".so");
  for (const std::string& part : split(at == std::string::npos ? "" : name.substr(at + 3), '.'))
    v.push_back(std::atoi(part.c_str()));
  return v;
}

// The library files to try, in order (see OnnxRuntimeOptions::library).
std::vector<std::string> candidates(const std::string& given) {
  if (!given.empty()) return {given};
  if (const char* env = std::getenv("LICTRT_ONNXRUNTIME_LIBRARY"); env && *env) return {env};
  std::vector<std::string> out;
  for (const std::string& dir : split(LICTRT_ONNXRUNTIME_SEARCH_DIRS, ';')) {
    std::error_code ec;
    std::vector<fs::path> found;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind("libonnxruntime.so", 0) == 0) found.push_back(e.path());
    }
    std::sort(found.begin(), found.end(), [](const fs::path& a, const fs::path& b) {
      return version_of(a.filename().string()) > version_of(b.filename().string());
    });
    for (auto& p : found) out.push_back(p.string());
  }
  out.push_back("libonnxruntime.so.1");
  out.push_back("libonnxruntime.so");
  return out;
}

GraphOptimizationLevel opt_level(const std::string& s) {
  if (s == "ORT_DISABLE_ALL") return ORT_DISABLE_ALL;
  if (s == "ORT_ENABLE_BASIC") return ORT_ENABLE_BASIC;
  if (s == "ORT_ENABLE_EXTENDED") return ORT_ENABLE_EXTENDED;
  if (s == "ORT_ENABLE_ALL") return ORT_ENABLE_ALL;
  throw InvalidArgument("unknown ONNX Runtime optimization level '" + s +
                        "' (ORT_DISABLE_ALL, ORT_ENABLE_BASIC, ORT_ENABLE_EXTENDED, ORT_ENABLE_ALL)");
}

// IEEE binary16 <-> binary32, round to nearest even (numpy's astype).
uint16_t to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7FFFFFFFu;
  if (x >= 0x7F800000u) return uint16_t(sign | 0x7C00u | (x > 0x7F800000u ? 0x200u : 0u));  // inf / nan
  if (x >= 0x477FF000u) return uint16_t(sign | 0x7C00u);                                    // overflow
  if (x < 0x38800000u) {                                                                    // subnormal / zero
    if (x < 0x33000000u) return uint16_t(sign);
    const uint32_t m = (x & 0x7FFFFFu) | 0x800000u;
    const int shift = 126 - int(x >> 23);  // 14..24: value = m * 2^-(shift + 24) = h * 2^-24
    uint32_t h = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return uint16_t(sign | h);
  }
  uint32_t h = ((x - 0x38000000u) >> 13);
  const uint32_t rem = x & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return uint16_t(sign | h);
}

float from_half(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu, x;
  if (e == 0) {
    if (m == 0) {
      x = sign;
    } else {
      int k = 0;
      while (!(m & 0x400u)) {
        m <<= 1;
        ++k;
      }
      x = sign | uint32_t(113 - k) << 23 | (m & 0x3FFu) << 13;
    }
  } else if (e == 31) {
    x = sign | 0x7F800000u | m << 13;
  } else {
    x = sign | (e + 112) << 23 | m << 13;
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

struct Session {
  std::unique_ptr<Ort::Session> session;
  std::vector<std::string> inputs, outputs;
  std::vector<ONNXTensorElementDataType> input_types;
};

}  // namespace

struct OnnxRuntimeRunner::Impl {
  const Bundle& bundle;
  OnnxRuntimeOptions opt;
  void* handle = nullptr;
  const OrtApiBase* base = nullptr;
  std::string path, custom_ops;
  std::unique_ptr<Ort::Env> env;
  std::mutex mu;
  std::map<std::string, std::unique_ptr<Session>> sessions;

  Impl(const Bundle& b, OnnxRuntimeOptions o) : bundle(b), opt(std::move(o)) {
    opt_level(opt.opt_level);  // validate early
    std::string tried;
    for (const std::string& c : candidates(opt.library)) {
      handle = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle) {
        path = c;
        break;
      }
      tried += (tried.empty() ? "" : ", ") + c;
    }
    if (!handle)
      throw OnnxRuntimeError("ONNX Runtime not found (tried " + tried +
                             "); pass its libonnxruntime.so or set LICTRT_ONNXRUNTIME_LIBRARY");
    using GetApiBase = const OrtApiBase* (*)();
    auto get = reinterpret_cast<GetApiBase>(dlsym(handle, "OrtGetApiBase"));
    base = get ? get() : nullptr;
    const OrtApi* api = base ? base->GetApi(ORT_API_VERSION) : nullptr;
    if (!api) {
      std::string v = base ? base->GetVersionString() : "?";
      dlclose(handle);
      throw OnnxRuntimeError(path + " (ONNX Runtime " + v + ") does not provide C API version " +
                             std::to_string(ORT_API_VERSION) + " (ONNX Runtime >= 1." +
                             std::to_string(ORT_API_VERSION) + " needed)");
    }
    Ort::InitApi(api);
    env = std::make_unique<Ort::Env>(ORT_LOGGING_LEVEL_ERROR, "lictrt");
    custom_ops = opt.custom_ops_library;
    const char* off = std::getenv("LICTRT_NATIVE_OPS");
    if (custom_ops.empty() && !(off && std::string(off) == "0"))
      if (const char* lib = std::getenv("LICTRT_CPU_OPS_LIB")) custom_ops = lib;
  }

  ~Impl() {
    sessions.clear();
    env.reset();
    // the library stays loaded: ONNX Runtime's thread pools and statics outlive the last session
  }

  Ort::SessionOptions options(bool pinned) const {
    Ort::SessionOptions so;
    so.SetInterOpNumThreads(1);
    so.SetExecutionMode(ORT_SEQUENTIAL);
    so.SetLogSeverityLevel(3);
    if (pinned) {  // runtime/backends/ort.py pinned_session_options
      so.SetIntraOpNumThreads(1);
      so.SetGraphOptimizationLevel(ORT_ENABLE_BASIC);
      so.DisableMemPattern();
      so.AddConfigEntry("session.set_denormal_as_zero", "0");
    } else {
      if (opt.threads > 0) so.SetIntraOpNumThreads(opt.threads);
      so.SetGraphOptimizationLevel(opt_level(opt.opt_level));
    }
    if (!custom_ops.empty()) so.RegisterCustomOpsLibrary(custom_ops.c_str());
    return so;
  }

  Session& session(const std::string& graph) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = sessions.find(graph);
    if (it != sessions.end()) return *it->second;
    const GraphInfo& g = bundle.graph(graph);
    if (g.file.empty()) throw BundleError("graph '" + graph + "' has no ONNX file in the bundle");
    std::string file = g.file[0] == '/' || bundle.dir().empty() ? g.file : bundle.dir() + "/" + g.file;
    auto s = std::make_unique<Session>();
    try {
      Ort::SessionOptions so = options(g.parse_critical);
      s->session = std::make_unique<Ort::Session>(*env, file.c_str(), so);
      Ort::AllocatorWithDefaultOptions alloc;
      for (size_t i = 0; i < s->session->GetInputCount(); ++i) {
        s->inputs.push_back(s->session->GetInputNameAllocated(i, alloc).get());
        s->input_types.push_back(s->session->GetInputTypeInfo(i).GetTensorTypeAndShapeInfo().GetElementType());
      }
      for (size_t i = 0; i < s->session->GetOutputCount(); ++i)
        s->outputs.push_back(s->session->GetOutputNameAllocated(i, alloc).get());
    } catch (const Ort::Exception& e) {
      std::vector<std::string> old = lictrt_op_versions(file);
      old.erase(std::remove(old.begin(), old.end(), std::string(kOpsVersion)), old.end());
      if (!old.empty()) {  // runtime/backends/ort.py words it the same
        std::string v;
        for (auto& o : old) v += (v.empty() ? "" : ", ") + o;
        throw OnnxRuntimeError("graph '" + graph + "' (" + std::filesystem::path(file).filename().string() +
                               ") holds lictrt ops of version " + v + "; this runtime runs version " + kOpsVersion +
                               ": re-export the bundle (python -m export.onnx CHECKPOINT)");
      }
      std::string msg = e.what();
      throw OnnxRuntimeError("onnxruntime cannot load graph '" + graph + "' (" + g.file +
                             "): " + msg.substr(0, msg.find('\n')));
    }
    Session& ref = *s;
    sessions.emplace(graph, std::move(s));
    return ref;
  }
};

OnnxRuntimeRunner::OnnxRuntimeRunner(const Bundle& bundle, OnnxRuntimeOptions options)
    : impl_(std::make_unique<Impl>(bundle, std::move(options))) {}

OnnxRuntimeRunner::~OnnxRuntimeRunner() = default;

const std::string& OnnxRuntimeRunner::library_path() const noexcept { return impl_->path; }
const std::string& OnnxRuntimeRunner::custom_ops_library() const noexcept { return impl_->custom_ops; }
std::string OnnxRuntimeRunner::version() const { return impl_->base->GetVersionString(); }

TensorMap OnnxRuntimeRunner::run(const std::string& graph, const TensorMap& inputs) {
  Session& s = impl_->session(graph);
  Ort::MemoryInfo mem = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  std::vector<Ort::Value> values;
  std::vector<std::vector<uint16_t>> halves;
  std::vector<std::vector<int32_t>> i32s;
  std::vector<std::vector<int64_t>> i64s;
  std::vector<const char*> in_names, out_names;
  values.reserve(s.inputs.size());
  for (size_t i = 0; i < s.inputs.size(); ++i) {
    auto it = inputs.find(s.inputs[i]);
    if (it == inputs.end()) throw OnnxRuntimeError("graph '" + graph + "' needs input '" + s.inputs[i] + "'");
    const Tensor& t = it->second;
    if (t.count() != t.data.size())
      throw InvalidArgument("input '" + s.inputs[i] + "' of graph '" + graph + "': shape does not match its data");
    const auto* shape = t.shape.data();
    const size_t rank = t.shape.size(), n = t.data.size();
    switch (s.input_types[i]) {
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: {
        halves.emplace_back(n);
        for (size_t k = 0; k < n; ++k) halves.back()[k] = to_half(t.data[k]);
        values.push_back(Ort::Value::CreateTensor(mem, halves.back().data(), n * 2, shape, rank,
                                                  ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16));
        break;
      }
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32:
        i32s.emplace_back(t.data.begin(), t.data.end());
        values.push_back(Ort::Value::CreateTensor<int32_t>(mem, i32s.back().data(), n, shape, rank));
        break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64:
        i64s.emplace_back(t.data.begin(), t.data.end());
        values.push_back(Ort::Value::CreateTensor<int64_t>(mem, i64s.back().data(), n, shape, rank));
        break;
      default:
        values.push_back(Ort::Value::CreateTensor<float>(mem, const_cast<float*>(t.data.data()), n, shape, rank));
    }
    in_names.push_back(s.inputs[i].c_str());
  }
  for (auto& o : s.outputs) out_names.push_back(o.c_str());
  std::vector<Ort::Value> outs;
  try {
    outs = s.session->Run(Ort::RunOptions{nullptr}, in_names.data(), values.data(), values.size(), out_names.data(),
                          out_names.size());
  } catch (const Ort::Exception& e) {
    std::string msg = e.what();
    throw OnnxRuntimeError("onnxruntime failed on graph '" + graph + "': " + msg.substr(0, msg.find('\n')));
  }
  TensorMap result;
  for (size_t i = 0; i < outs.size(); ++i) {
    auto info = outs[i].GetTensorTypeAndShapeInfo();
    Tensor t(info.GetShape());
    const size_t n = info.GetElementCount();
    const ONNXTensorElementDataType type = info.GetElementType();
    if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {  // one pass: no zero-fill before the copy
      const float* p = outs[i].GetTensorData<float>();
      t.data.assign(p, p + n);
      result.emplace(s.outputs[i], std::move(t));
      continue;
    }
    t.data.resize(n);
    switch (type) {
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: {
        const uint16_t* p = static_cast<const uint16_t*>(outs[i].GetTensorRawData());
        for (size_t k = 0; k < n; ++k) t.data[k] = from_half(p[k]);
        break;
      }
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: {
        const int32_t* p = outs[i].GetTensorData<int32_t>();
        for (size_t k = 0; k < n; ++k) t.data[k] = float(p[k]);
        break;
      }
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: {
        const int64_t* p = outs[i].GetTensorData<int64_t>();
        for (size_t k = 0; k < n; ++k) t.data[k] = float(p[k]);
        break;
      }
      default:
        throw OnnxRuntimeError("graph '" + graph + "' output '" + s.outputs[i] + "' has an unsupported type");
    }
    result.emplace(s.outputs[i], std::move(t));
  }
  return result;
}

}  // namespace lictrt
