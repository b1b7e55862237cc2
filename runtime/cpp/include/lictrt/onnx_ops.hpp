// The lictrt custom ops an ONNX graph uses, read without an ONNX library: the runtimes name a graph exported for
// another version of the ops' contract instead of passing on ONNX Runtime's schema error.
#pragma once

#include <string>
#include <vector>

namespace lictrt {

/// The ops' contract version the native kernels and plugins implement (export/op_contracts.py PLUGIN_VERSION; a
/// test ties the two). Written into each lictrt node as its plugin_version attribute.
inline constexpr const char* kOpsVersion = "2";

/// The plugin_version values of the lictrt-domain nodes of the main graph of ONNX file `path`, sorted and unique;
/// empty when there are none or the file cannot be read or parsed (protobuf wire format, every read bounded).
std::vector<std::string> lictrt_op_versions(const std::string& path);

}  // namespace lictrt
