// PNG through libpng: decode to 8-bit RGB, encode atomically.
#include "png_io.hpp"

#include <png.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace lictrt_cli {
namespace {

struct File {
  FILE* f = nullptr;
  ~File() {
    if (f) std::fclose(f);
  }
};

[[noreturn]] void png_fail(png_structp png, png_const_charp msg) {
  // libpng jumps back to setjmp in the caller; the message is kept in the error pointer's buffer.
  std::string* out = static_cast<std::string*>(png_get_error_ptr(png));
  if (out) *out = msg;
  png_longjmp(png, 1);
}

void png_warn(png_structp, png_const_charp) {}

}  // namespace

Image read_png(const std::string& path) {
  File file;
  file.f = std::fopen(path.c_str(), "rb");
  if (!file.f)
    throw ImageError(errno == ENOENT ? "no such image: " + path
                                     : "cannot read image " + path + ": " + std::strerror(errno));
  unsigned char sig[8] = {0};
  if (std::fread(sig, 1, 8, file.f) != 8 || png_sig_cmp(sig, 0, 8))
    throw ImageError("cannot read image " + path + ": not a PNG file");
  std::string why;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &why, png_fail, png_warn);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    throw ImageError("cannot read image " + path + ": out of memory");
  }
  Image im;
  std::vector<png_bytep> rows;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw ImageError("cannot read image " + path + ": " + (why.empty() ? "corrupt PNG" : why));
  }
  png_set_user_limits(png, 1u << 16, 1u << 16);
  png_init_io(png, file.f);
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  const int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  if (depth == 16) png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if ((color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) && depth < 8)
    png_set_expand_gray_1_2_4_to_8(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png), png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  im.width = png_get_image_width(png, info);
  im.height = png_get_image_height(png, info);
  if (png_get_rowbytes(png, info) != size_t(im.width) * 3) png_error(png, "unsupported PNG layout");
  im.rgb.resize(size_t(im.height) * im.width * 3);
  rows.resize(im.height);
  for (uint32_t i = 0; i < im.height; ++i) rows[i] = im.rgb.data() + size_t(i) * im.width * 3;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  if (im.height < 1 || im.width < 1) throw ImageError("cannot read image " + path + ": empty image");
  return im;
}

lictrt::GroupMask read_label_png(const std::string& path) {
  const std::string what = "cannot read label image " + path + ": ";
  File file;
  file.f = std::fopen(path.c_str(), "rb");
  if (!file.f)  // worded as Python's OSError
    throw ImageError(what + "[Errno " + std::to_string(errno) + "] " + std::strerror(errno) + ": '" + path + "'");
  unsigned char sig[8] = {0};
  if (std::fread(sig, 1, 8, file.f) != 8 || png_sig_cmp(sig, 0, 8))
    throw ImageError(what + "cannot identify image file '" + path + "'");
  std::string why;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &why, png_fail, png_warn);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    throw ImageError(what + "out of memory");
  }
  lictrt::GroupMask m;
  std::vector<uint8_t> buf;
  std::vector<png_bytep> rows;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw ImageError(what + (why.empty() ? "corrupt PNG" : why));
  }
  png_set_user_limits(png, 1u << 16, 1u << 16);
  png_init_io(png, file.f);
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  const int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  const bool grey16 = color == PNG_COLOR_TYPE_GRAY && depth == 16;  // Pillow "I;16": the full 16-bit value
  if (color == PNG_COLOR_TYPE_PALETTE || (color == PNG_COLOR_TYPE_GRAY && depth == 1))
    png_set_packing(png);  // palette indexes and 1-bit samples, unscaled
  else if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
    png_set_expand_gray_1_2_4_to_8(png);  // 2- and 4-bit grey scaled to 8 bits, as Pillow's "L"
  if (depth == 16 && !grey16) png_set_strip_16(png);
  if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  m.width = png_get_image_width(png, info);
  m.height = png_get_image_height(png, info);
  const size_t channels = png_get_channels(png, info), bytes = grey16 ? 2 : 1;
  const size_t row = size_t(m.width) * channels * bytes;
  if (png_get_rowbytes(png, info) != row) png_error(png, "unsupported PNG layout");
  buf.resize(row * m.height);
  rows.resize(m.height);
  for (uint32_t i = 0; i < m.height; ++i) rows[i] = buf.data() + i * row;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  m.labels.resize(size_t(m.height) * m.width);
  for (size_t k = 0; k < m.labels.size(); ++k) {
    const uint8_t* p = buf.data() + k * channels * bytes;
    if (grey16)
      m.labels[k] = int32_t(p[0]) << 8 | p[1];
    else if (channels == 3)  // Pillow's RGB -> L
      m.labels[k] = int32_t((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
    else
      m.labels[k] = p[0];
  }
  return m;
}

void write_png(const std::string& path, const Image& im) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  std::string tmp = (slash == std::string::npos ? std::string() : dir) + "." +
                    path.substr(slash == std::string::npos ? 0 : slash + 1) + ".XXXXXX";
  std::vector<char> name(tmp.begin(), tmp.end());
  name.push_back('\0');
  const int fd = mkstemp(name.data());
  if (fd < 0) throw ImageError("cannot write " + path + ": " + std::strerror(errno));
  tmp = name.data();
  File file;
  file.f = fdopen(fd, "wb");
  std::string why;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &why, png_fail, png_warn);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!file.f || !info) {
    if (!file.f) close(fd);
    png_destroy_write_struct(&png, nullptr);
    std::remove(tmp.c_str());
    throw ImageError("cannot write " + path + ": out of memory");
  }
  std::vector<png_bytep> rows(im.height);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::remove(tmp.c_str());
    throw ImageError("cannot write " + path + ": " + why);
  }
  png_init_io(png, file.f);
  png_set_IHDR(png, info, im.width, im.height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  for (uint32_t i = 0; i < im.height; ++i) rows[i] = const_cast<png_bytep>(im.rgb.data() + size_t(i) * im.width * 3);
  png_write_info(png, info);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  const bool ok = std::fflush(file.f) == 0 && fsync(fileno(file.f)) == 0;
  const int err = errno;
  std::fclose(file.f);
  file.f = nullptr;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = ok ? errno : err;
    std::remove(tmp.c_str());
    throw ImageError("cannot write " + path + ": " + std::strerror(e));
  }
}

}  // namespace lictrt_cli
