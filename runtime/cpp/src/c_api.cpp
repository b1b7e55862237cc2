// C API over the C++ coder and container: exceptions become status codes + a thread-local message.
#include "lictrt/lictrt.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "lictrt/coder.hpp"
#include "lictrt/container.hpp"
#include "lictrt/crc32.hpp"

struct lictrt_tables {
  std::shared_ptr<const lictrt::Tables> t;
};
struct lictrt_stream_encoder {
  lictrt::StreamEncoder e;
};
struct lictrt_stream_decoder {
  lictrt::StreamDecoder d;
};

namespace {

thread_local std::string g_error;

template <class Fn>
lictrt_status guarded(Fn fn) {
  try {
    fn();
    g_error.clear();
    return LICTRT_OK;
  } catch (const lictrt::BitstreamError& e) {
    g_error = e.what();
    return LICTRT_ERR_BITSTREAM;
  } catch (const lictrt::InvalidArgument& e) {
    g_error = e.what();
    return LICTRT_ERR_INVALID_ARGUMENT;
  } catch (const std::bad_alloc&) {
    g_error = "out of memory";
    return LICTRT_ERR_NO_MEMORY;
  } catch (const std::exception& e) {
    g_error = e.what();
    return LICTRT_ERR_INTERNAL;
  }
}

void need(const void* p, const char* what) {
  if (!p) throw lictrt::InvalidArgument(std::string("null pointer: ") + what);
}

lictrt::Mode mode_of(lictrt_mode m) {
  if (m != LICTRT_MODE_COMPAT && m != LICTRT_MODE_FAST) throw lictrt::InvalidArgument("unknown coder mode");
  return static_cast<lictrt::Mode>(m);
}

void give(const std::vector<uint8_t>& v, uint8_t** out, size_t* len) {
  need(out, "out_data");
  need(len, "out_len");
  auto* buf = static_cast<uint8_t*>(std::malloc(v.empty() ? 1 : v.size()));
  if (!buf) throw std::bad_alloc();
  if (!v.empty()) std::memcpy(buf, v.data(), v.size());
  *out = buf;
  *len = v.size();
}

}  // namespace

extern "C" {

const char* lictrt_last_error(void) { return g_error.c_str(); }
void lictrt_free(void* buffer) { std::free(buffer); }

lictrt_status lictrt_tables_create(const int32_t* cdf, int32_t num_tables, int32_t max_length,
                                   const int32_t* cdf_length, const int32_t* offset, lictrt_tables** out) {
  return guarded([&] {
    need(cdf, "cdf");
    need(cdf_length, "cdf_length");
    need(offset, "offset");
    need(out, "out");
    auto t = std::make_shared<const lictrt::Tables>(cdf, num_tables, max_length, cdf_length, offset);
    *out = new lictrt_tables{std::move(t)};
  });
}

void lictrt_tables_destroy(lictrt_tables* tables) { delete tables; }

lictrt_status lictrt_encode(const lictrt_tables* tables, lictrt_mode mode, int32_t substreams, int32_t threads,
                            const int32_t* symbols, const int32_t* indexes, size_t n, uint8_t** out_data,
                            size_t* out_len) {
  return guarded([&] {
    need(tables, "tables");
    if (n) need(symbols, "symbols"), need(indexes, "indexes");
    lictrt::EncodeOptions opt;
    opt.mode = mode_of(mode);
    opt.substreams = substreams;
    opt.threads = threads;
    give(lictrt::encode(*tables->t, symbols, indexes, n, opt), out_data, out_len);
  });
}

lictrt_status lictrt_decode(const lictrt_tables* tables, lictrt_mode mode, int32_t threads, const uint8_t* data,
                            size_t len, const int32_t* indexes, size_t n, int32_t* out_symbols) {
  return guarded([&] {
    need(tables, "tables");
    if (len) need(data, "data");
    if (n) need(indexes, "indexes"), need(out_symbols, "out_symbols");
    lictrt::decode(*tables->t, data, len, indexes, n, out_symbols, mode_of(mode), threads);
  });
}

lictrt_status lictrt_stream_encoder_create(const lictrt_tables* tables, lictrt_mode mode, lictrt_stream_encoder** out) {
  return guarded([&] {
    need(tables, "tables");
    need(out, "out");
    *out = new lictrt_stream_encoder{lictrt::StreamEncoder(tables->t, mode_of(mode))};
  });
}

lictrt_status lictrt_stream_encoder_encode(lictrt_stream_encoder* enc, const int32_t* symbols, const int32_t* indexes,
                                           size_t n) {
  return guarded([&] {
    need(enc, "encoder");
    if (n) need(symbols, "symbols"), need(indexes, "indexes");
    enc->e.encode(symbols, indexes, n);
  });
}

lictrt_status lictrt_stream_encoder_flush(lictrt_stream_encoder* enc, uint8_t** out_data, size_t* out_len) {
  return guarded([&] {
    need(enc, "encoder");
    give(enc->e.flush(), out_data, out_len);
  });
}

void lictrt_stream_encoder_destroy(lictrt_stream_encoder* enc) { delete enc; }

lictrt_status lictrt_stream_decoder_create(const lictrt_tables* tables, lictrt_mode mode, const uint8_t* data,
                                           size_t len, lictrt_stream_decoder** out) {
  return guarded([&] {
    need(tables, "tables");
    need(out, "out");
    if (len) need(data, "data");
    *out = new lictrt_stream_decoder{lictrt::StreamDecoder(tables->t, data, len, mode_of(mode))};
  });
}

lictrt_status lictrt_stream_decoder_decode(lictrt_stream_decoder* dec, const int32_t* indexes, size_t n,
                                           int32_t* out_symbols) {
  return guarded([&] {
    need(dec, "decoder");
    if (n) need(indexes, "indexes"), need(out_symbols, "out_symbols");
    dec->d.decode(indexes, n, out_symbols);
  });
}

lictrt_status lictrt_stream_decoder_finish(lictrt_stream_decoder* dec) {
  return guarded([&] {
    need(dec, "decoder");
    dec->d.finish();
  });
}

void lictrt_stream_decoder_destroy(lictrt_stream_decoder* dec) { delete dec; }

uint32_t lictrt_crc32(const void* data, size_t len, uint32_t crc) { return data ? lictrt::crc32(data, len, crc) : crc; }
uint32_t lictrt_symbols_crc32(const int32_t* symbols, size_t n) {
  return symbols ? lictrt::symbols_crc32(symbols, n) : 0;
}

lictrt_status lictrt_container_pack(const lictrt_container_header* header, const lictrt_container_stream* streams,
                                    size_t num_streams, uint8_t** out_data, size_t* out_len) {
  return guarded([&] {
    need(header, "header");
    if (num_streams) need(streams, "streams");
    lictrt::ContainerHeader h;
    h.major = header->major;
    h.minor = header->minor;
    h.flags = header->flags;
    std::memcpy(h.model_hash.data(), header->model_hash, 32);
    h.height = header->height;
    h.width = header->width;
    h.pad_multiple = header->pad_multiple;
    h.coder_mode = header->coder_mode;
    h.parse_path = header->parse_path;
    h.plan_kind = header->plan_kind;
    h.width_index = header->width_index;
    std::vector<lictrt::ContainerStream> ss(num_streams);
    for (size_t i = 0; i < num_streams; ++i) {
      ss[i].kind.assign(streams[i].kind, strnlen(streams[i].kind, sizeof(streams[i].kind)));
      ss[i].symbols = streams[i].symbols;
      ss[i].symbols_crc = streams[i].symbols_crc;
      if (streams[i].payload_len) need(streams[i].payload, "payload");
      ss[i].payload.assign(streams[i].payload, streams[i].payload + streams[i].payload_len);
    }
    give(lictrt::pack_container(h, ss), out_data, out_len);
  });
}

lictrt_status lictrt_container_unpack(const uint8_t* data, size_t len, lictrt_container_header* header,
                                      lictrt_container_stream** out_streams, size_t* out_num) {
  return guarded([&] {
    need(data, "data");
    need(header, "header");
    need(out_streams, "out_streams");
    need(out_num, "out_num");
    lictrt::ContainerHeader h;
    std::vector<lictrt::ContainerStream> ss;
    lictrt::unpack_container(data, len, h, ss);
    header->major = h.major;
    header->minor = h.minor;
    header->flags = h.flags;
    std::memcpy(header->model_hash, h.model_hash.data(), 32);
    header->height = h.height;
    header->width = h.width;
    header->pad_multiple = h.pad_multiple;
    header->coder_mode = h.coder_mode;
    header->parse_path = h.parse_path;
    header->plan_kind = h.plan_kind;
    header->width_index = h.width_index;
    auto* out =
        static_cast<lictrt_container_stream*>(std::calloc(ss.size() ? ss.size() : 1, sizeof(lictrt_container_stream)));
    if (!out) throw std::bad_alloc();
    size_t at = lictrt::kContainerFixedBytes + lictrt::kContainerStreamBytes * ss.size() + 4;
    for (size_t i = 0; i < ss.size(); ++i) {
      std::memcpy(out[i].kind, ss[i].kind.data(), ss[i].kind.size());
      out[i].symbols = ss[i].symbols;
      out[i].symbols_crc = ss[i].symbols_crc;
      out[i].payload = data + at;
      out[i].payload_len = static_cast<uint32_t>(ss[i].payload.size());
      at += ss[i].payload.size();
    }
    *out_streams = out;
    *out_num = ss.size();
  });
}

}  // extern "C"
