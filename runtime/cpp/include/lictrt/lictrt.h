/* lictrt C API: rANS entropy coder (compat/fast), CRC-32 and the .lic container, behind opaque handles.
 *
 * Every function returns a lictrt_status; on failure lictrt_last_error() gives a one-line message
 * (thread-local, valid until the next call on the same thread). Buffers returned through uint8_t** are
 * owned by the caller and released with lictrt_free(). */
#ifndef LICTRT_LICTRT_H
#define LICTRT_LICTRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lictrt_status {
  LICTRT_OK = 0,
  LICTRT_ERR_INVALID_ARGUMENT = 1, /* malformed tables, index out of range, bad mode, null pointer */
  LICTRT_ERR_BITSTREAM = 2,        /* corrupt, truncated or mismatched data */
  LICTRT_ERR_NO_MEMORY = 3,
  LICTRT_ERR_INTERNAL = 4
} lictrt_status;

typedef enum lictrt_mode { LICTRT_MODE_COMPAT = 0, LICTRT_MODE_FAST = 1 } lictrt_mode;

typedef struct lictrt_tables lictrt_tables;
typedef struct lictrt_stream_encoder lictrt_stream_encoder;
typedef struct lictrt_stream_decoder lictrt_stream_decoder;

const char* lictrt_last_error(void);
void lictrt_free(void* buffer);

/* Tables: cdf is int32 [num_tables][max_length] (16-bit CDFs), cdf_length and offset int32 [num_tables]. */
lictrt_status lictrt_tables_create(const int32_t* cdf, int32_t num_tables, int32_t max_length,
                                   const int32_t* cdf_length, const int32_t* offset, lictrt_tables** out);
void lictrt_tables_destroy(lictrt_tables* tables);

/* One-shot coding. substreams/threads apply to fast mode (threads 0 = hardware concurrency). */
lictrt_status lictrt_encode(const lictrt_tables* tables, lictrt_mode mode, int32_t substreams, int32_t threads,
                            const int32_t* symbols, const int32_t* indexes, size_t n, uint8_t** out_data,
                            size_t* out_len);
lictrt_status lictrt_decode(const lictrt_tables* tables, lictrt_mode mode, int32_t threads, const uint8_t* data,
                            size_t len, const int32_t* indexes, size_t n, int32_t* out_symbols);

/* Incremental coding for autoregressive plans. */
lictrt_status lictrt_stream_encoder_create(const lictrt_tables* tables, lictrt_mode mode, lictrt_stream_encoder** out);
lictrt_status lictrt_stream_encoder_encode(lictrt_stream_encoder* enc, const int32_t* symbols, const int32_t* indexes,
                                           size_t n);
lictrt_status lictrt_stream_encoder_flush(lictrt_stream_encoder* enc, uint8_t** out_data, size_t* out_len);
void lictrt_stream_encoder_destroy(lictrt_stream_encoder* enc);

lictrt_status lictrt_stream_decoder_create(const lictrt_tables* tables, lictrt_mode mode, const uint8_t* data,
                                           size_t len, lictrt_stream_decoder** out);
lictrt_status lictrt_stream_decoder_decode(lictrt_stream_decoder* dec, const int32_t* indexes, size_t n,
                                           int32_t* out_symbols);
lictrt_status lictrt_stream_decoder_finish(lictrt_stream_decoder* dec);
void lictrt_stream_decoder_destroy(lictrt_stream_decoder* dec);

uint32_t lictrt_crc32(const void* data, size_t len, uint32_t crc);
uint32_t lictrt_symbols_crc32(const int32_t* symbols, size_t n);

/* Container (see docs/FORMATS.md). */
typedef struct lictrt_container_header {
  uint8_t major, minor;
  uint16_t flags;
  uint8_t model_hash[32];
  uint32_t height, width;
  uint16_t pad_multiple;
  uint8_t coder_mode, parse_path, plan_kind, width_index;
} lictrt_container_header;

typedef struct lictrt_container_stream {
  char kind[17]; /* NUL-terminated, at most 16 characters */
  uint32_t symbols;
  uint32_t symbols_crc;
  const uint8_t* payload; /* pack: input; unpack: points into the caller's container buffer */
  uint32_t payload_len;
} lictrt_container_stream;

lictrt_status lictrt_container_pack(const lictrt_container_header* header, const lictrt_container_stream* streams,
                                    size_t num_streams, uint8_t** out_data, size_t* out_len);
/* Verifies everything; on success *out_streams (release with lictrt_free) has *out_num entries whose payload
 * pointers point into `data`. */
lictrt_status lictrt_container_unpack(const uint8_t* data, size_t len, lictrt_container_header* header,
                                      lictrt_container_stream** out_streams, size_t* out_num);

#ifdef __cplusplus
}
#endif

#endif /* LICTRT_LICTRT_H */
