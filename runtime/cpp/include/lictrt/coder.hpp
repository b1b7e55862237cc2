// lictrt rANS entropy coder: CompressAI-compatible ("compat") and interleaved ("fast") modes.
//
// Tables are CompressAI-style integer CDFs: cdf[T][Lmax] with 16-bit precision, cdf_length[T], offset[T].
// Row t codes values v = symbol - offset[t] in [0, cdf_length[t] - 2); anything else is sent as the escape
// bin (cdf_length[t] - 2) followed by the zig-zagged overflow in bypass-coded 4-bit nibbles.
//
// compat: one rans64 state, precision 16, stream = final state (2 LE words) + LE 32-bit words; byte-identical
//         to compressai.ans (CompressAI 1.2.8) for every input it handles, and also correct for 0 and 1 symbols.
// fast:   format 2. N (1, 4, 8, 16 or 32, from the substream size) interleaved rANS states of 32 bits in
//         [2^16, 2^32) sharing one stream of 16-bit renormalization words (a decode step reads at most one
//         word), symbol i on lane i % N; precision 14 derived from the 16-bit tables in integer arithmetic (16
//         when a table has more than 2^14 bins), decoded through a 4096-entry slot->bin lookup table per row
//         (8 KiB) plus a forward step; on x86-64 CPUs with AVX2 whole blocks of 8 lanes decode in SIMD (chosen
//         at run time; LICTRT_CODER_SCALAR=1 forces the portable path, which reads and rejects identically).
//         Optionally k independent substreams (contiguous symbol chunks) coded in parallel threads.
//         Layout: u8 (log2 N | precision code << 4 | format 2 << 6; precision = 12 + 2 * code), u8 k,
//         (k - 1) x u32 substream byte sizes, then each substream = N initial states (LE u32 each) + LE u16
//         words. Bits 6-7 of byte 0 were 0 or 1 in the retired 64-bit-state format: rejected, never misread.
// Both modes escape values outside a row's range identically (CompressAI's scheme). Every read is bounded;
// decoding checks that all states return to their initial value and that every byte is consumed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "lictrt/errors.hpp"

namespace lictrt {

enum class Mode : int { Compat = 0, Fast = 1 };

namespace detail {
struct TableData;
}

/// Validated CDF tables plus the derived per-precision symbol info and decode lookup tables (built once).
class Tables {
 public:
  /// Throws InvalidArgument if a row is malformed (cdf[0] != 0, cdf[len-1] != 65536, not strictly increasing,
  /// len < 2 or len > Lmax).
  Tables(const int32_t* cdf, int num_tables, int max_length, const int32_t* cdf_length, const int32_t* offset);
  int num_tables() const noexcept;
  int max_length() const noexcept;
  /// Precision (bits) used by fast mode: 14, or 16 when some table has more than 2^14 bins.
  int fast_precision() const noexcept;
  /// Bytes held by the tables and lookup tables.
  size_t memory_bytes() const noexcept;
  const detail::TableData& data() const noexcept { return *d_; }

 private:
  std::shared_ptr<const detail::TableData> d_;
};

struct EncodeOptions {
  Mode mode = Mode::Fast;
  int substreams = 1;  ///< fast mode only; clamped to [1, max(n, 1)] and at most 255
  int threads = 0;     ///< worker threads for substreams; 0 = one per substream up to the hardware count
};

/// Encode n symbols with per-symbol table indexes. Throws InvalidArgument on an out-of-range index.
std::vector<uint8_t> encode(const Tables& tables, const int32_t* symbols, const int32_t* indexes, size_t n,
                            const EncodeOptions& opt = {});

/// Decode n symbols (n = number of indexes) into out[n]. Throws BitstreamError on corrupt or truncated data
/// (final-state check, every byte consumed, bounded reads), InvalidArgument on an out-of-range index.
void decode(const Tables& tables, const uint8_t* data, size_t len, const int32_t* indexes, size_t n, int32_t* out,
            Mode mode = Mode::Fast, int threads = 0);

/// Incremental encoder for autoregressive plans: successive (symbols, indexes) chunks, one stream at flush().
class StreamEncoder {
 public:
  StreamEncoder(std::shared_ptr<const Tables> tables, Mode mode);
  void encode(const int32_t* symbols, const int32_t* indexes, size_t n);
  /// Encode everything buffered (in reverse: rANS is LIFO) into one stream and reset.
  std::vector<uint8_t> flush();
  size_t pending() const noexcept { return symbols_.size(); }

 private:
  std::shared_ptr<const Tables> tables_;
  Mode mode_;
  std::vector<int32_t> symbols_, indexes_;
};

/// Incremental decoder: successive chunks given their indexes; finish() runs the final-state check.
class StreamDecoder {
 public:
  /// Copies `data`. Throws BitstreamError if the stream header or initial states are unreadable.
  StreamDecoder(std::shared_ptr<const Tables> tables, const uint8_t* data, size_t len, Mode mode);
  ~StreamDecoder();
  StreamDecoder(const StreamDecoder&) = delete;
  StreamDecoder& operator=(const StreamDecoder&) = delete;
  void decode(const int32_t* indexes, size_t n, int32_t* out);
  /// Throws BitstreamError unless every state is back to its initial value and every byte was consumed.
  void finish();
  size_t decoded() const noexcept;

 private:
  struct Impl;
  std::shared_ptr<const Tables> tables_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lictrt
