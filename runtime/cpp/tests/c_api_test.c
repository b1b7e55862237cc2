/* C API smoke test: tables, one-shot + incremental round trip, error reporting, container. */
#include <stdio.h>
#include <string.h>

#include "lictrt/lictrt.h"

#define CHECK(c)                                                                                      \
  do {                                                                                                \
    if (!(c)) {                                                                                       \
      fprintf(stderr, "%s:%d: CHECK failed: %s (%s)\n", __FILE__, __LINE__, #c, lictrt_last_error()); \
      return 1;                                                                                       \
    }                                                                                                 \
  } while (0)

int main(void) {
  /* Two tables: 3 bins + escape (values 0..2 around offset -1), 1 bin + escape. */
  const int32_t cdf[2 * 5] = {0, 20000, 45000, 60000, 65536, 0, 60000, 65536, 0, 0};
  const int32_t len[2] = {5, 3}, off[2] = {-1, 0};
  lictrt_tables* t = NULL;
  CHECK(lictrt_tables_create(cdf, 2, 5, len, off, &t) == LICTRT_OK);
  const int32_t sym[6] = {-1, 0, 1, 7, 0, -5};
  const int32_t idx[6] = {0, 0, 0, 0, 1, 1};
  for (int mode = 0; mode < 2; ++mode) {
    uint8_t* data = NULL;
    size_t n = 0;
    int32_t out[6] = {0};
    CHECK(lictrt_encode(t, (lictrt_mode)mode, 1, 1, sym, idx, 6, &data, &n) == LICTRT_OK);
    CHECK(lictrt_decode(t, (lictrt_mode)mode, 1, data, n, idx, 6, out) == LICTRT_OK);
    CHECK(memcmp(out, sym, sizeof sym) == 0);
    CHECK(lictrt_decode(t, (lictrt_mode)mode, 1, data, n - 4, idx, 6, out) == LICTRT_ERR_BITSTREAM);
    CHECK(strlen(lictrt_last_error()) > 0);
    lictrt_stream_decoder* dec = NULL;
    CHECK(lictrt_stream_decoder_create(t, (lictrt_mode)mode, data, n, &dec) == LICTRT_OK);
    CHECK(lictrt_stream_decoder_decode(dec, idx, 2, out) == LICTRT_OK);
    CHECK(lictrt_stream_decoder_decode(dec, idx + 2, 4, out + 2) == LICTRT_OK);
    CHECK(lictrt_stream_decoder_finish(dec) == LICTRT_OK);
    CHECK(memcmp(out, sym, sizeof sym) == 0);
    lictrt_stream_decoder_destroy(dec);
    lictrt_free(data);
  }
  const int32_t bad_idx[1] = {2};
  uint8_t* data = NULL;
  size_t n = 0;
  CHECK(lictrt_encode(t, LICTRT_MODE_FAST, 1, 1, sym, bad_idx, 1, &data, &n) == LICTRT_ERR_INVALID_ARGUMENT);

  lictrt_container_header h;
  memset(&h, 0, sizeof h);
  h.major = 1;
  h.height = 64;
  h.width = 96;
  lictrt_container_stream s;
  memset(&s, 0, sizeof s);
  strcpy(s.kind, "y");
  s.symbols = 6;
  s.symbols_crc = lictrt_symbols_crc32(sym, 6);
  s.payload = (const uint8_t*)"abc";
  s.payload_len = 3;
  CHECK(lictrt_container_pack(&h, &s, 1, &data, &n) == LICTRT_OK);
  lictrt_container_header h2;
  lictrt_container_stream* s2 = NULL;
  size_t ns = 0;
  CHECK(lictrt_container_unpack(data, n, &h2, &s2, &ns) == LICTRT_OK);
  CHECK(ns == 1 && h2.width == 96 && strcmp(s2[0].kind, "y") == 0 && s2[0].payload_len == 3);
  CHECK(memcmp(s2[0].payload, "abc", 3) == 0 && s2[0].symbols_crc == s.symbols_crc);
  lictrt_free(s2);
  data[n - 1] ^= 1;
  CHECK(lictrt_container_unpack(data, n, &h2, &s2, &ns) == LICTRT_ERR_BITSTREAM);
  lictrt_free(data);
  lictrt_tables_destroy(t);
  printf("lictrt c_api_test: all checks passed\n");
  return 0;
}
