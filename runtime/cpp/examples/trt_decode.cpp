// lictrt_trt_decode: decode a .lic bitstream with a codec bundle's TensorRT engines through the lictrt C++ API.
//
//   lictrt_trt_decode BUNDLE_DIR IN.lic OUT.ppm [--plugins liblictrt_plugins.so] [--verbose]
//
// A GraphRunner backed by the engines listed in the bundle manifest's "engines" (python -m export.trt), the
// lictrt::Decoder for the entropy decoding, a binary PPM out. libnvinfer and libcudart are loaded at run time
// (dlopen), so this links without TensorRT; a missing TensorRT, CUDA runtime or GPU is a one-line error.
// UNVERIFIED at run time in this repository's CI (no TensorRT, no GPU there): it is compile- and link-checked only.
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <NvInferRuntime.h>
#include <NvInferVersion.h>
#include <cuda_runtime_api.h>

#include "lictrt/bundle.hpp"
#include "lictrt/decoder.hpp"

namespace {

struct SetupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

bool g_verbose = false;

void* open_first(std::initializer_list<const char*> names, int flags, std::string& tried) {
  for (const char* n : names) {
    if (void* h = dlopen(n, flags)) return h;
    tried += std::string(tried.empty() ? "" : ", ") + n;
  }
  return nullptr;
}

template <class F>
F sym(void* lib, const char* name, const char* libname) {
  void* p = dlsym(lib, name);
  if (!p) throw SetupError(std::string(libname) + " has no symbol " + name);
  return reinterpret_cast<F>(p);
}

/// The CUDA runtime entry points we use, resolved from libcudart at run time.
struct Cuda {
  cudaError_t (*getDeviceCount)(int*);
  cudaError_t (*malloc)(void**, size_t);
  cudaError_t (*free)(void*);
  cudaError_t (*memcpy)(void*, const void*, size_t, cudaMemcpyKind);
  cudaError_t (*streamCreate)(cudaStream_t*);
  cudaError_t (*streamSynchronize)(cudaStream_t);
  const char* (*errorString)(cudaError_t);

  Cuda() {
    std::string tried;
    void* lib = open_first({"libcudart.so", "libcudart.so.13", "libcudart.so.12"}, RTLD_NOW | RTLD_GLOBAL, tried);
    if (!lib) throw SetupError("CUDA runtime not found (tried " + tried + "); install CUDA or set LD_LIBRARY_PATH");
    getDeviceCount = sym<decltype(getDeviceCount)>(lib, "cudaGetDeviceCount", "libcudart");
    malloc = sym<decltype(malloc)>(lib, "cudaMalloc", "libcudart");
    free = sym<decltype(free)>(lib, "cudaFree", "libcudart");
    memcpy = sym<decltype(memcpy)>(lib, "cudaMemcpy", "libcudart");
    streamCreate = sym<decltype(streamCreate)>(lib, "cudaStreamCreate", "libcudart");
    streamSynchronize = sym<decltype(streamSynchronize)>(lib, "cudaStreamSynchronize", "libcudart");
    errorString = sym<decltype(errorString)>(lib, "cudaGetErrorString", "libcudart");
    int n = 0;
    cudaError_t e = getDeviceCount(&n);
    if (e != cudaSuccess || n < 1)
      throw SetupError(std::string("no CUDA GPU available (") + (e != cudaSuccess ? errorString(e) : "0 devices") +
                       ")");
  }
  void check(cudaError_t e, const char* what) const {
    if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + errorString(e));
  }
};

class Logger : public nvinfer1::ILogger {
 public:
  void log(Severity s, const char* msg) noexcept override {
    if (s <= Severity::kERROR || (g_verbose && s <= Severity::kINFO)) std::fprintf(stderr, "[TensorRT] %s\n", msg);
  }
};

/// Device buffer freed on scope exit.
struct DeviceBuffer {
  const Cuda& cuda;
  void* p = nullptr;
  DeviceBuffer(const Cuda& c, size_t bytes) : cuda(c) { cuda.check(cuda.malloc(&p, bytes ? bytes : 4), "cudaMalloc"); }
  ~DeviceBuffer() { cuda.free(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

/// GraphRunner over the bundle's TensorRT engines: one engine + execution context per graph, built lazily.
class TrtRunner : public lictrt::GraphRunner {
 public:
  TrtRunner(const lictrt::Bundle& b, const std::string& plugins) : bundle_(b) {
    std::string tried;
    lib_ = open_first({"libnvinfer.so", "libnvinfer.so.11", "libnvinfer.so.10"}, RTLD_NOW | RTLD_GLOBAL, tried);
    if (!lib_) throw SetupError("TensorRT not found (tried " + tried + "); install TensorRT or set LD_LIBRARY_PATH");
    auto version = sym<int32_t (*)()>(lib_, "getInferLibVersion", "libnvinfer");
    auto create = sym<void* (*)(void*, int32_t)>(lib_, "createInferRuntime_INTERNAL", "libnvinfer");
    int32_t v = version();
    int32_t major = v >= 100000 ? v / 10000 : v / 1000;  // TensorRT >= 10 encodes MMmmpp
    if (major != NV_TENSORRT_MAJOR)
      throw SetupError("libnvinfer is TensorRT " + std::to_string(major) + ", this program was compiled against " +
                       std::to_string(NV_TENSORRT_MAJOR) + " headers: rebuild with -DTENSORRT_ROOT=<your TensorRT>");
    runtime_.reset(static_cast<nvinfer1::IRuntime*>(create(&logger_, NV_TENSORRT_VERSION)));
    if (!runtime_) throw SetupError("createInferRuntime failed (TensorRT version " + std::to_string(v) + ")");
    if (!plugins.empty() && !runtime_->getPluginRegistry().loadLibrary(plugins.c_str()))
      throw SetupError("TensorRT could not load the plugin library " + plugins);
    cuda_.check(cuda_.streamCreate(&stream_), "cudaStreamCreate");
  }

  lictrt::TensorMap run(const std::string& graph, const lictrt::TensorMap& in) override {
    Entry& e = entry(graph);
    auto* ctx = e.ctx.get();
    std::vector<std::unique_ptr<DeviceBuffer>> bufs;
    for (auto& kv : in) {
      const char* name = kv.first.c_str();
      if (e.engine->getTensorIOMode(name) != nvinfer1::TensorIOMode::kINPUT)
        throw std::runtime_error("engine for '" + graph + "' has no input '" + kv.first + "'");
      if (e.engine->getTensorDataType(name) != nvinfer1::DataType::kFLOAT)
        throw std::runtime_error("engine input '" + graph + "." + kv.first + "' is not float32");
      nvinfer1::Dims d{};
      d.nbDims = int32_t(kv.second.shape.size());
      for (int k = 0; k < d.nbDims; ++k) d.d[k] = kv.second.shape[size_t(k)];
      if (!ctx->setInputShape(name, d))
        throw std::runtime_error("engine for '" + graph + "' rejects the shape of '" + kv.first +
                                 "' (outside its optimization profile?)");
      bufs.emplace_back(new DeviceBuffer(cuda_, kv.second.data.size() * 4));
      cuda_.check(
          cuda_.memcpy(bufs.back()->p, kv.second.data.data(), kv.second.data.size() * 4, cudaMemcpyHostToDevice),
          "cudaMemcpy to device");
      ctx->setTensorAddress(name, bufs.back()->p);
    }
    lictrt::TensorMap out;
    std::vector<std::pair<std::string, void*>> outs;
    for (int i = 0; i < e.engine->getNbIOTensors(); ++i) {
      const char* name = e.engine->getIOTensorName(i);
      if (e.engine->getTensorIOMode(name) != nvinfer1::TensorIOMode::kOUTPUT) continue;
      if (e.engine->getTensorDataType(name) != nvinfer1::DataType::kFLOAT)
        throw std::runtime_error("engine output '" + graph + "." + name + "' is not float32");
      nvinfer1::Dims d = ctx->getTensorShape(name);
      lictrt::Tensor t;
      for (int k = 0; k < d.nbDims; ++k) {
        if (d.d[k] < 0) throw std::runtime_error("engine output '" + graph + "." + name + "' has a dynamic shape");
        t.shape.push_back(d.d[k]);
      }
      t.data.resize(t.count());
      bufs.emplace_back(new DeviceBuffer(cuda_, t.data.size() * 4));
      ctx->setTensorAddress(name, bufs.back()->p);
      outs.emplace_back(name, bufs.back()->p);
      out.emplace(name, std::move(t));
    }
    if (!ctx->enqueueV3(stream_)) throw std::runtime_error("TensorRT enqueue failed for '" + graph + "'");
    cuda_.check(cuda_.streamSynchronize(stream_), "cudaStreamSynchronize");
    for (auto& o : outs) {
      auto& t = out[o.first];
      cuda_.check(cuda_.memcpy(t.data.data(), o.second, t.data.size() * 4, cudaMemcpyDeviceToHost),
                  "cudaMemcpy to host");
    }
    return out;
  }

 private:
  struct Entry {
    std::unique_ptr<nvinfer1::ICudaEngine> engine;
    std::unique_ptr<nvinfer1::IExecutionContext> ctx;
  };
  Entry& entry(const std::string& graph) {
    auto it = entries_.find(graph);
    if (it != entries_.end()) return it->second;
    std::string path = bundle_.engine_path(graph, "tensorrt");
    if (path.empty()) path = bundle_.engine_path(graph);
    if (path.empty())
      throw std::runtime_error("bundle has no TensorRT engine for graph '" + graph +
                               "' (build them with python -m export.trt)");
    auto blob = lictrt::read_file(path);
    Entry e;
    e.engine.reset(runtime_->deserializeCudaEngine(blob.data(), blob.size()));
    if (!e.engine) throw std::runtime_error("TensorRT cannot deserialize " + path + " (other GPU or version?)");
    e.ctx.reset(e.engine->createExecutionContext());
    if (!e.ctx) throw std::runtime_error("TensorRT cannot create an execution context for " + path);
    return entries_.emplace(graph, std::move(e)).first->second;
  }

  const lictrt::Bundle& bundle_;
  Cuda cuda_;  // before the runtime: fails first when there is no GPU
  void* lib_ = nullptr;
  Logger logger_;
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  cudaStream_t stream_{};
  std::map<std::string, Entry> entries_;  // destroyed before runtime_ (declared after it)
};

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s BUNDLE_DIR IN.lic OUT.ppm [--plugins LIB.so] [--verbose]\n", argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  std::string plugins;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--verbose")
      g_verbose = true;
    else if (a == "--plugins" && i + 1 < argc)
      plugins = argv[++i];
    else if (a.rfind("--", 0) == 0)
      return usage(argv[0]);
    else
      pos.push_back(a);
  }
  if (pos.size() != 3) return usage(argv[0]);
  try {
    lictrt::Bundle bundle = lictrt::Bundle::load(pos[0]);
    auto data = lictrt::read_file(pos[1]);
    TrtRunner runner(bundle, plugins);
    lictrt::Decoder decoder(bundle, runner);
    lictrt::DecodeResult r = decoder.decode(data);
    lictrt::write_ppm(pos[2], r.rgb, r.height, r.width);
    if (g_verbose)
      std::fprintf(stderr, "decoded %ux%u (%d network calls, %d sequential steps) -> %s\n", r.height, r.width,
                   r.network_calls, r.sequential_steps, pos[2].c_str());
  } catch (const std::exception& e) {
    std::string msg = e.what();
    for (auto& c : msg)
      if (c == '\n') c = ' ';
    std::fprintf(stderr, "lictrt_trt_decode: error: %s\n", msg.c_str());
    return 1;
  }
  return 0;
}
