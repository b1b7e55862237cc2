// The CRC-32 paths behind lictrt::crc32, for tests: the portable slicing-by-8 and whether the PCLMULQDQ
// folding path is compiled in and supported by this CPU (lictrt::crc32 then takes it for buffers of 256 bytes
// and more).
#pragma once

#include <cstddef>
#include <cstdint>

namespace lictrt {
namespace detail {

uint32_t crc32_portable(const void* data, size_t len, uint32_t crc = 0) noexcept;
bool crc32_clmul_enabled() noexcept;

}  // namespace detail
}  // namespace lictrt
