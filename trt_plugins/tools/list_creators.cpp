// list_creators: dlopen a TensorRT plugin library, call its getCreators(), print the creators as JSON.
//
//   list_creators [--probe] build/trt_plugins/liblictrt_plugins.so
//
// Output: [{"name", "version", "namespace", "interface": {"kind", "major", "minor"},
//           "fields": [{"name", "type", "length"}]}]   (type = PluginFieldType without the k, e.g. "INT32").
// --probe adds "probe": what the builder-side plugin methods answer, without a GPU (see probe() below).
// Needs neither a GPU nor libnvinfer: creators are only constructed and queried.  Exit code 0 on success,
// 1 with a one-line message on stderr when the library or the symbol cannot be loaded.
#include <NvInferRuntime.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

char const* fieldTypeName(nvinfer1::PluginFieldType t) {
  using T = nvinfer1::PluginFieldType;
  switch (t) {
    case T::kFLOAT16:
      return "FLOAT16";
    case T::kFLOAT32:
      return "FLOAT32";
    case T::kFLOAT64:
      return "FLOAT64";
    case T::kINT8:
      return "INT8";
    case T::kINT16:
      return "INT16";
    case T::kINT32:
      return "INT32";
    case T::kCHAR:
      return "CHAR";
    case T::kDIMS:
      return "DIMS";
    case T::kUNKNOWN:
      return "UNKNOWN";
    case T::kBF16:
      return "BF16";
    case T::kINT64:
      return "INT64";
    case T::kFP8:
      return "FP8";
    case T::kINT4:
      return "INT4";
    case T::kFP4:
      return "FP4";
  }
  return "INVALID";
}

std::string quoted(char const* s) {
  std::string out = "\"";
  for (char const* p = s ? s : ""; *p; ++p) {
    unsigned char const ch = static_cast<unsigned char>(*p);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += *p;
    } else if (ch < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out += buf;
    } else {
      out += *p;
    }
  }
  return out + "\"";
}

using nvinfer1::DataType;
using nvinfer1::DynamicPluginTensorDesc;

char const* dataTypeName(DataType t) {
  switch (t) {
    case DataType::kFLOAT:
      return "FLOAT";
    case DataType::kHALF:
      return "HALF";
    case DataType::kINT32:
      return "INT32";
    default:
      return "OTHER";
  }
}

std::string intFieldsJson(nvinfer1::PluginFieldCollection const* fc) {
  std::string out = "{";
  for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i) {
    nvinfer1::PluginField const& f = fc->fields[i];
    out += (i ? ", " : "") + quoted(f.name) + ": ";
    out += (f.type == nvinfer1::PluginFieldType::kINT32 && f.data && f.length == 1)
               ? std::to_string(*static_cast<int32_t const*>(f.data))
               : std::string("null");
  }
  return out + "}";
}

// Builder-side behaviour of a creator's plugin, host-only:
//   defaults:       fields serialised by a plugin created from an empty field collection
//   roundtrip_v:    fields serialised by a plugin created with every INT32 field = v (0, 1); clone_*: by its clone
//   rejects_value:  createPlugin refuses every INT32 field = 7;  rejects_type: refuses a FLOAT32 field
//   nb_inputs:      smallest input count whose all-fp32 linear combination is accepted
//   preferred:      per position (inputs..., output) the type chosen when trying HALF first, else FLOAT
//   output_type:    getOutputDataTypes for those input types
//   rejects_int32_input0 / rejects_vectorized_input0: other types/formats refused at position 0
std::string probe(nvinfer1::IPluginCreatorV3One* c) {
  using namespace nvinfer1;
  std::string out = "{";
  PluginFieldCollection const* names = c->getFieldNames();
  std::vector<PluginField> fields;
  int32_t zero = 0, one = 1, seven = 7;
  float fone = 1.f;
  PluginFieldCollection empty{0, nullptr};
  IPluginV3* dflt = c->createPlugin("probe", &empty, TensorRTPhase::kBUILD);
  auto rt = [](IPluginV3* x) {
    return static_cast<IPluginV3OneRuntime*>(x->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
  };
  auto serialized = [&](IPluginV3* x) { return x ? intFieldsJson(rt(x)->getFieldsToSerialize()) : "null"; };
  out += "\"defaults\": " + serialized(dflt);

  for (int32_t i = 0; names && i < names->nbFields; ++i)
    fields.emplace_back(names->fields[i].name, &one, PluginFieldType::kINT32, 1);
  PluginFieldCollection fc{static_cast<int32_t>(fields.size()), fields.data()};
  for (int32_t v : {0, 1}) {  // every INT32 field = v, serialised by the plugin and by its clone
    for (auto& f : fields) f.data = v ? &one : &zero;
    IPluginV3* q = c->createPlugin("probe", &fc, TensorRTPhase::kBUILD);
    IPluginV3* qc = q ? q->clone() : nullptr;
    out += ", \"roundtrip_" + std::to_string(v) + "\": " + serialized(q);
    out += ", \"clone_roundtrip_" + std::to_string(v) + "\": " + serialized(qc);
    delete qc;
    delete q;
  }
  for (auto& f : fields) f.data = &one;
  IPluginV3* p = c->createPlugin("probe", &fc, TensorRTPhase::kBUILD);

  for (auto& f : fields) f.data = &seven;
  IPluginV3* bad = c->createPlugin("probe", &fc, TensorRTPhase::kBUILD);
  out += std::string(", \"rejects_value\": ") + (bad == nullptr ? "true" : "false");
  delete bad;
  for (auto& f : fields) {
    f.data = &fone;
    f.type = PluginFieldType::kFLOAT32;
  }
  bad = fields.empty() ? nullptr : c->createPlugin("probe", &fc, TensorRTPhase::kBUILD);
  out += std::string(", \"rejects_type\": ") + (bad == nullptr ? "true" : "false");
  delete bad;

  if (p != nullptr) {
    auto* core = static_cast<IPluginV3OneCore*>(p->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
    out += ", \"core\": {\"name\": " + quoted(core->getPluginName()) +
           ", \"version\": " + quoted(core->getPluginVersion()) +
           ", \"namespace\": " + quoted(core->getPluginNamespace()) + "}";
    out += ", \"nb_outputs\": " + std::to_string(build->getNbOutputs());
    out += ", \"metadata\": " + quoted(build->getMetadataString());
    int32_t const nbOut = build->getNbOutputs();
    int32_t nbIn = -1;
    std::vector<DynamicPluginTensorDesc> io;
    auto setAll = [&](int32_t n, DataType t) {
      io.assign(n + nbOut, DynamicPluginTensorDesc{});
      for (auto& d : io) {
        d.desc.type = t;
        d.desc.format = TensorFormat::kLINEAR;
      }
    };
    auto accepts = [&](int32_t n) {
      for (int32_t pos = 0; pos < n + nbOut; ++pos)
        if (!build->supportsFormatCombination(pos, io.data(), n, nbOut)) return false;
      return true;
    };
    for (int32_t n = 1; n <= 16 && nbIn < 0; ++n) {
      setAll(n, DataType::kFLOAT);
      if (accepts(n)) nbIn = n;
    }
    out += ", \"nb_inputs\": " + std::to_string(nbIn);
    if (nbIn > 0) {
      setAll(nbIn, DataType::kFLOAT);
      out += ", \"preferred\": [";
      for (int32_t pos = 0; pos < nbIn + nbOut; ++pos) {
        io[pos].desc.type = DataType::kHALF;
        if (!build->supportsFormatCombination(pos, io.data(), nbIn, nbOut)) io[pos].desc.type = DataType::kFLOAT;
        out += std::string(pos ? ", " : "") + "\"" + dataTypeName(io[pos].desc.type) + "\"";
      }
      std::vector<DataType> inTypes, outTypes(nbOut);
      for (int32_t i = 0; i < nbIn; ++i) inTypes.push_back(io[i].desc.type);
      int32_t const st = build->getOutputDataTypes(outTypes.data(), nbOut, inTypes.data(), nbIn);
      out += std::string("], \"output_type\": \"") + (st == 0 ? dataTypeName(outTypes[0]) : "ERROR") + "\"";
      setAll(nbIn, DataType::kFLOAT);
      io[0].desc.type = DataType::kINT32;
      out += std::string(", \"rejects_int32_input0\": ") +
             (build->supportsFormatCombination(0, io.data(), nbIn, nbOut) ? "false" : "true");
      io[0].desc.type = DataType::kFLOAT;
      io[0].desc.format = TensorFormat::kCHW32;
      out += std::string(", \"rejects_vectorized_input0\": ") +
             (build->supportsFormatCombination(0, io.data(), nbIn, nbOut) ? "false" : "true");
    }
  }
  delete p;
  delete dflt;
  return out + "}";
}

}  // namespace

int main(int argc, char** argv) {
  bool const withProbe = argc == 3 && std::strcmp(argv[1], "--probe") == 0;
  if (argc != 2 && !withProbe) {
    std::fprintf(stderr, "usage: %s [--probe] <plugin-library.so>\n", argv[0]);
    return 1;
  }
  char const* path = argv[argc - 1];
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    std::fprintf(stderr, "error: cannot load %s: %s\n", path, dlerror());
    return 1;
  }
  using GetCreators = nvinfer1::IPluginCreatorInterface* const* (*)(int32_t&);
  auto getCreators = reinterpret_cast<GetCreators>(dlsym(lib, "getCreators"));
  if (getCreators == nullptr) {
    std::fprintf(stderr, "error: %s does not export getCreators\n", path);
    return 1;
  }
  int32_t n = 0;
  nvinfer1::IPluginCreatorInterface* const* creators = getCreators(n);
  std::printf("[");
  for (int32_t i = 0; i < n; ++i) {
    nvinfer1::IPluginCreatorInterface* base = creators[i];
    nvinfer1::InterfaceInfo const info = base->getInterfaceInfo();
    std::printf("%s\n  {\"interface\": {\"kind\": %s, \"major\": %d, \"minor\": %d}", i ? "," : "",
                quoted(info.kind).c_str(), info.major, info.minor);
    if (info.kind == nullptr || std::strcmp(info.kind, "PLUGIN CREATOR_V3ONE") != 0) {
      std::printf("}");  // not a V3One creator: nothing more can be queried safely
      continue;
    }
    auto* c = static_cast<nvinfer1::IPluginCreatorV3One*>(base);
    std::printf(", \"name\": %s, \"version\": %s, \"namespace\": %s, \"fields\": [", quoted(c->getPluginName()).c_str(),
                quoted(c->getPluginVersion()).c_str(), quoted(c->getPluginNamespace()).c_str());
    nvinfer1::PluginFieldCollection const* fc = c->getFieldNames();
    for (int32_t f = 0; fc != nullptr && f < fc->nbFields; ++f) {
      nvinfer1::PluginField const& pf = fc->fields[f];
      std::printf("%s{\"name\": %s, \"type\": \"%s\", \"length\": %d}", f ? ", " : "", quoted(pf.name).c_str(),
                  fieldTypeName(pf.type), pf.length);
    }
    std::printf("]");
    if (withProbe) std::printf(", \"probe\": %s", probe(c).c_str());
    std::printf("}");
  }
  std::printf("\n]\n");
  return 0;
}
