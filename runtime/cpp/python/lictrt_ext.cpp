// runtime._lictrt: nanobind binding of the lictrt coder, CRC, container and operating levels. Takes contiguous numpy
// arrays (int32 symbols/indexes/tables, uint8 data), never Python lists; releases the GIL while coding.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstring>

#include "lictrt/bundle_schema.hpp"
#include "lictrt/coder.hpp"
#include "lictrt/container.hpp"
#include "lictrt/crc32.hpp"
#include "lictrt/onnx_ops.hpp"
#include "lictrt/format.hpp"
#include "lictrt/json.hpp"
#include "lictrt/levels.hpp"
#include "lictrt/sha256.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using I32 = nb::ndarray<const int32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using I32_2D = nb::ndarray<const int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using U8 = nb::ndarray<const uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using OutI32 = nb::ndarray<nb::numpy, int32_t, nb::ndim<1>>;

// Python exception classes raised for the C++ errors (set by runtime/coder.py and runtime/levels.py to
// runtime.errors.BitstreamError, CoderArgumentError, runtime.bundle.BundleError and runtime.levels.LevelError).
PyObject* g_bitstream_error = PyExc_ValueError;
PyObject* g_invalid_error = PyExc_ValueError;
PyObject* g_bundle_error = PyExc_ValueError;
PyObject* g_level_error = PyExc_ValueError;

void set_error_type(PyObject*& slot, nb::handle type) {
  if (type.is_none()) return;
  Py_INCREF(type.ptr());
  slot = type.ptr();
}

lictrt::Mode to_mode(int mode) {
  if (mode != 0 && mode != 1) throw lictrt::InvalidArgument("mode must be 0 (compat) or 1 (fast)");
  return static_cast<lictrt::Mode>(mode);
}

void check_same(size_t a, size_t b) {
  if (a != b)
    throw lictrt::InvalidArgument("symbols and indexes differ in length (" + std::to_string(a) + " vs " +
                                  std::to_string(b) + ")");
}

/// Uninitialized int32 output owned by the returned numpy array (the decoder writes every element; zeroing
/// a 2 MB vector first cost as much as a tenth of a fast decode).
struct OutBuf {
  int32_t* data;
  size_t n;
  explicit OutBuf(size_t n_) : data(new int32_t[n_ ? n_ : 1]), n(n_) {}
  ~OutBuf() { delete[] data; }
  OutBuf(const OutBuf&) = delete;
  OutBuf& operator=(const OutBuf&) = delete;
  OutI32 release() {
    int32_t* p = data;
    data = nullptr;
    nb::capsule owner(p, [](void* q) noexcept { delete[] static_cast<int32_t*>(q); });
    return OutI32(p, {n}, owner);
  }
};

nb::bytes to_bytes(const std::vector<uint8_t>& v) {
  return nb::bytes(reinterpret_cast<const char*>(v.data()), v.size());
}

// A level as Python sees it: (axis, value) in axis order, values int for integer values and str for the others.
using PyLevel = std::vector<std::pair<std::string, nb::object>>;

nb::object py_value(const lictrt::Levels::Axis& ax, size_t i) {
  if (ax.number[i]) return nb::int_(std::stoll(ax.values[i]));
  return nb::str(ax.values[i].c_str(), ax.values[i].size());
}

PyLevel py_level(const lictrt::Levels& levels, const lictrt::Level& level) {
  const std::vector<uint8_t> index = levels.to_bytes(level);
  PyLevel out;
  for (size_t k = 0; k < index.size(); ++k)
    out.emplace_back(levels.axes()[k].name, py_value(levels.axes()[k], index[k]));
  return out;
}

using HeaderTuple = std::tuple<int, int, int, nb::bytes, uint32_t, uint32_t, int, int, int, int, int, nb::bytes>;
using StreamTuple = std::tuple<std::string, uint32_t, uint32_t, nb::bytes>;

}  // namespace

NB_MODULE(_lictrt, m) {
  m.doc() = "lictrt C++ rANS coder (compat/fast), CRC-32 and .lic container";

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const lictrt::LevelError& e) {
      PyErr_SetString(g_level_error, e.what());
    } catch (const lictrt::BitstreamError& e) {
      PyErr_SetString(g_bitstream_error, e.what());
    } catch (const lictrt::BundleError& e) {
      PyErr_SetString(g_bundle_error, e.what());
    } catch (const lictrt::InvalidArgument& e) {
      PyErr_SetString(g_invalid_error, e.what());
    }
  });

  m.def(
      "sha256", [](nb::bytes data) { return lictrt::sha256_hex(data.c_str(), data.size()); }, "data"_a,
      "lower-case hex SHA-256 of data (the bundle reader's own FIPS 180-4 implementation)");

  m.def(
      "_set_exception_types",
      [](nb::handle bitstream, nb::handle invalid, nb::handle bundle, nb::handle level) {
        set_error_type(g_bitstream_error, bitstream);
        set_error_type(g_invalid_error, invalid);
        set_error_type(g_bundle_error, bundle);
        set_error_type(g_level_error, level);
      },
      "bitstream"_a = nb::none(), "invalid"_a = nb::none(), "bundle"_a = nb::none(), "level"_a = nb::none(),
      "the Python exception types of lictrt's BitstreamError, InvalidArgument, BundleError and LevelError (None: "
      "keep)");

  nb::class_<lictrt::Levels>(m, "Levels", "the operating levels of a scalable bundle plan (lictrt/levels.hpp)")
      .def(
          "__init__",
          [](lictrt::Levels* self, const std::string& spec) { new (self) lictrt::Levels(lictrt::Json::parse(spec)); },
          "spec_json"_a, "from the JSON text of the plan's levels object; BundleError when it is malformed")
      .def_prop_ro("axes",
                   [](const lictrt::Levels& l) {
                     std::vector<std::pair<std::string, std::vector<nb::object>>> out;
                     for (auto& ax : l.axes()) {
                       std::vector<nb::object> values;
                       for (size_t i = 0; i < ax.values.size(); ++i) values.push_back(py_value(ax, i));
                       out.emplace_back(ax.name, std::move(values));
                     }
                     return out;
                   })
      .def_prop_ro("presets",
                   [](const lictrt::Levels& l) {
                     std::vector<std::pair<std::string, PyLevel>> out;
                     for (auto& p : l.presets()) out.emplace_back(p.first, py_level(l, p.second));
                     return out;
                   })
      .def_prop_ro("default", &lictrt::Levels::default_preset)
      .def(
          "parse",
          [](const lictrt::Levels& l, const std::optional<std::string>& text) { return py_level(l, l.parse(text)); },
          "text"_a.none(), "a level from text (preset name or axis=value,...), None: the default preset; LevelError")
      .def(
          "resolve",
          [](const lictrt::Levels& l, const std::string& level) {
            return py_level(l, l.resolve(lictrt::Json::parse(level)));
          },
          "level_json"_a, "a level from the JSON text of an axis -> value object; unnamed axes from the default preset")
      .def(
          "to_bytes",
          [](const lictrt::Levels& l, const std::string& level) {
            return to_bytes(l.to_bytes(l.resolve(lictrt::Json::parse(level))));
          },
          "level_json"_a, "the header's level block (one index per axis) of a level given as in resolve")
      .def(
          "from_bytes",
          [](const lictrt::Levels& l, nb::bytes data) {
            const auto* p = reinterpret_cast<const uint8_t*>(data.c_str());
            return py_level(l, l.from_bytes(std::vector<uint8_t>(p, p + data.size())));
          },
          "data"_a, "the level of a header's level block; BitstreamError when it does not fit the axes")
      .def_static("format", &lictrt::Levels::format, "level"_a,
                  "'g_a=48,...,context=4stage' of (axis, value text) pairs");

  nb::class_<lictrt::Tables>(m, "Tables")
      .def(
          "__init__",
          [](lictrt::Tables* self, I32_2D cdf, I32 cdf_length, I32 offset) {
            const int T = static_cast<int>(cdf.shape(0));
            if (cdf_length.shape(0) != cdf.shape(0) || offset.shape(0) != cdf.shape(0))
              throw lictrt::InvalidArgument("tables: cdf_length and offset must have one entry per CDF row");
            new (self) lictrt::Tables(cdf.data(), T, static_cast<int>(cdf.shape(1)), cdf_length.data(), offset.data());
          },
          "cdf"_a.noconvert(), "cdf_length"_a.noconvert(), "offset"_a.noconvert())
      .def_prop_ro("num_tables", &lictrt::Tables::num_tables)
      .def_prop_ro("max_length", &lictrt::Tables::max_length)
      .def_prop_ro("fast_precision", &lictrt::Tables::fast_precision)
      .def_prop_ro("memory_bytes", &lictrt::Tables::memory_bytes);

  m.def(
      "encode",
      [](const lictrt::Tables& t, I32 symbols, I32 indexes, int mode, int substreams, int threads) {
        check_same(symbols.shape(0), indexes.shape(0));
        lictrt::EncodeOptions opt;
        opt.mode = to_mode(mode);
        opt.substreams = substreams;
        opt.threads = threads;
        std::vector<uint8_t> out;
        {
          nb::gil_scoped_release nogil;
          out = lictrt::encode(t, symbols.data(), indexes.data(), symbols.shape(0), opt);
        }
        return to_bytes(out);
      },
      "tables"_a, "symbols"_a.noconvert(), "indexes"_a.noconvert(), "mode"_a, "substreams"_a = 1, "threads"_a = 0);

  m.def(
      "decode",
      [](const lictrt::Tables& t, U8 data, I32 indexes, int mode, int threads) {
        const lictrt::Mode md = to_mode(mode);
        OutBuf out(indexes.shape(0));
        {
          nb::gil_scoped_release nogil;
          lictrt::decode(t, data.data(), data.shape(0), indexes.data(), indexes.shape(0), out.data, md, threads);
        }
        return out.release();
      },
      "tables"_a, "data"_a.noconvert(), "indexes"_a.noconvert(), "mode"_a, "threads"_a = 0);

  nb::class_<lictrt::StreamEncoder>(m, "StreamEncoder")
      .def(
          "__init__",
          [](lictrt::StreamEncoder* self, const lictrt::Tables& t, int mode) {
            // Tables copies share the resident table data (a shared_ptr copy).
            new (self) lictrt::StreamEncoder(std::make_shared<const lictrt::Tables>(t), to_mode(mode));
          },
          "tables"_a, "mode"_a)
      .def(
          "encode",
          [](lictrt::StreamEncoder& e, I32 symbols, I32 indexes) {
            check_same(symbols.shape(0), indexes.shape(0));
            e.encode(symbols.data(), indexes.data(), symbols.shape(0));
          },
          "symbols"_a.noconvert(), "indexes"_a.noconvert())
      .def("flush",
           [](lictrt::StreamEncoder& e) {
             std::vector<uint8_t> out;
             {
               nb::gil_scoped_release nogil;
               out = e.flush();
             }
             return to_bytes(out);
           })
      .def_prop_ro("pending", &lictrt::StreamEncoder::pending);

  nb::class_<lictrt::StreamDecoder>(m, "StreamDecoder")
      .def(
          "__init__",
          [](lictrt::StreamDecoder* self, const lictrt::Tables& t, U8 data, int mode) {
            new (self) lictrt::StreamDecoder(std::make_shared<const lictrt::Tables>(t), data.data(), data.shape(0),
                                             to_mode(mode));
          },
          "tables"_a, "data"_a.noconvert(), "mode"_a)
      .def(
          "decode",
          [](lictrt::StreamDecoder& d, I32 indexes) {
            OutBuf out(indexes.shape(0));
            {
              nb::gil_scoped_release nogil;
              d.decode(indexes.data(), indexes.shape(0), out.data);
            }
            return out.release();
          },
          "indexes"_a.noconvert())
      .def("finish", &lictrt::StreamDecoder::finish)
      .def_prop_ro("decoded", &lictrt::StreamDecoder::decoded);

  m.def(
      "crc32",
      [](U8 data, uint32_t crc) {
        nb::gil_scoped_release nogil;
        return lictrt::crc32(data.data(), data.shape(0), crc);
      },
      "data"_a.noconvert(), "crc"_a = 0);

  m.def(
      "symbols_crc",
      [](I32 symbols) {
        nb::gil_scoped_release nogil;
        return lictrt::symbols_crc32(symbols.data(), symbols.shape(0));
      },
      "symbols"_a.noconvert());

  m.def("container_pack", [](const HeaderTuple& h, const std::vector<StreamTuple>& streams) {
    lictrt::ContainerHeader hd;
    hd.major = static_cast<uint8_t>(std::get<0>(h));
    hd.minor = static_cast<uint8_t>(std::get<1>(h));
    hd.flags = static_cast<uint16_t>(std::get<2>(h));
    const nb::bytes& hash = std::get<3>(h);
    if (hash.size() != 32) throw lictrt::InvalidArgument("container: model hash must be 32 bytes");
    std::memcpy(hd.model_hash.data(), hash.c_str(), 32);
    hd.height = std::get<4>(h);
    hd.width = std::get<5>(h);
    hd.pad_multiple = static_cast<uint16_t>(std::get<6>(h));
    hd.coder_mode = static_cast<uint8_t>(std::get<7>(h));
    hd.parse_path = static_cast<uint8_t>(std::get<8>(h));
    hd.plan_kind = static_cast<uint8_t>(std::get<9>(h));
    hd.width_index = static_cast<uint8_t>(std::get<10>(h));
    const nb::bytes& level = std::get<11>(h);
    hd.level.assign(reinterpret_cast<const uint8_t*>(level.c_str()),
                    reinterpret_cast<const uint8_t*>(level.c_str()) + level.size());
    std::vector<lictrt::ContainerStream> ss(streams.size());
    for (size_t i = 0; i < streams.size(); ++i) {
      ss[i].kind = std::get<0>(streams[i]);
      ss[i].symbols = std::get<1>(streams[i]);
      ss[i].symbols_crc = std::get<2>(streams[i]);
      const nb::bytes& p = std::get<3>(streams[i]);
      ss[i].payload.assign(reinterpret_cast<const uint8_t*>(p.c_str()),
                           reinterpret_cast<const uint8_t*>(p.c_str()) + p.size());
    }
    return to_bytes(lictrt::pack_container(hd, ss));
  });

  m.def(
      "container_unpack",
      [](U8 data) {
        lictrt::ContainerHeader hd;
        std::vector<lictrt::ContainerStream> ss;
        lictrt::unpack_container(data.data(), data.shape(0), hd, ss);
        HeaderTuple h{hd.major,        hd.minor,
                      hd.flags,        nb::bytes(reinterpret_cast<const char*>(hd.model_hash.data()), 32),
                      hd.height,       hd.width,
                      hd.pad_multiple, hd.coder_mode,
                      hd.parse_path,   hd.plan_kind,
                      hd.width_index,  nb::bytes(reinterpret_cast<const char*>(hd.level.data()), hd.level.size())};
        std::vector<StreamTuple> out;
        out.reserve(ss.size());
        for (auto& s : ss) out.emplace_back(s.kind, s.symbols, s.symbols_crc, to_bytes(s.payload));
        return std::make_pair(h, out);
      },
      "data"_a.noconvert());

  m.attr("OPS_VERSION") = lictrt::kOpsVersion;
  m.def("lictrt_op_versions", &lictrt::lictrt_op_versions, "path"_a);

  m.attr("CONTAINER_MAJOR") = lictrt::kContainerMajor;
  m.attr("CONTAINER_MINOR") = lictrt::kContainerMinor;
  auto names = [](const auto& table) {
    nb::list l;
    for (const char* n : table) l.append(nb::str(n));
    return nb::tuple(l);
  };
  m.attr("PLAN_KINDS") = names(lictrt::kPlanKinds);
  m.attr("CODER_MODES") = names(lictrt::kCoderModes);
  m.attr("PARSE_PATHS") = names(lictrt::kParsePaths);
  m.attr("FLAG_RASTER_CONTEXT") = lictrt::kFlagRasterContext;
  m.attr("FLAG_LEVEL") = lictrt::kFlagLevel;
  m.attr("MAX_LEVEL_BYTES") = lictrt::kMaxLevelBytes;
  m.attr("KNOWN_FLAGS") = lictrt::kKnownFlags;
  m.attr("MAX_PIXELS") = lictrt::kMaxPixels;

  m.attr("BUNDLE_FORMAT") = lictrt::kBundleFormat;
  m.attr("BUNDLE_FORMAT_VERSION") = lictrt::kBundleFormatVersion;
  m.attr("MANIFEST_FILE") = lictrt::kManifestFile;
  m.attr("TABLES_FILE") = lictrt::kTablesFile;
  nb::dict plan_graphs;
  for (const auto& p : lictrt::kPlanGraphs) {
    nb::list l;
    for (const char* const* g = p.graphs; *g; ++g) l.append(nb::str(*g));
    plan_graphs[nb::str(p.kind)] = nb::tuple(l);
  }
  m.attr("PLAN_GRAPHS") = plan_graphs;
  nb::list level_graphs;
  for (const auto& g : lictrt::kLevelGraphs) level_graphs.append(nb::make_tuple(nb::str(g.axis), nb::str(g.graph)));
  m.attr("LEVEL_GRAPHS") = level_graphs;
}
