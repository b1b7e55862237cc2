// Encoder: image -> padded network input, the plan (src/plans/<kind>.cpp), the container (runtime/codec.py encode).
#include "lictrt/encoder.hpp"

#include "lictrt/container.hpp"
#include "lictrt/format.hpp"
#include "plans/plans.hpp"

namespace lictrt {

Tensor image_to_input(const uint8_t* rgb, uint32_t height, uint32_t width, int multiple) {
  if (height < 1 || width < 1 || multiple < 1) throw InvalidArgument("cannot encode: empty image");
  const uint32_t m = uint32_t(multiple);
  const uint32_t ph = (height + m - 1) / m * m, pw = (width + m - 1) / m * m;
  const uint32_t top = (ph - height) / 2, left = (pw - width) / 2;
  float scaled[256];  // v / 255 in float32, as numpy divides
  for (int v = 0; v < 256; ++v) scaled[v] = float(v) / 255.0f;
  Tensor x({1, 3, int64_t(ph), int64_t(pw)}, std::vector<float>(size_t(3) * ph * pw, 0.0f));
  const size_t plane = size_t(ph) * pw;
  for (uint32_t i = 0; i < height; ++i) {  // one pass over the interleaved rows, three planes written
    float* r = x.data.data() + (size_t(top) + i) * pw + left;
    float* g = r + plane;
    float* b = g + plane;
    const uint8_t* src = rgb + size_t(i) * width * 3;
    for (uint32_t j = 0; j < width; ++j, src += 3) {
      r[j] = scaled[src[0]];
      g[j] = scaled[src[1]];
      b[j] = scaled[src[2]];
    }
  }
  return x;
}

Encoder::Encoder(const Bundle& bundle, GraphRunner& runner, EncoderOptions options)
    : bundle_(bundle), runner_(runner), opt_(std::move(options)) {
  const plans::Plan* plan = plans::find(bundle.plan_kind());
  if (!plan)
    throw BundleError(
        "plan kind '" + bundle.plan_kind() +
        "' is not implemented by the C++ encoder "
        "(factorized, hyperprior, mean_scale, spatial_context, channel_slices, grouped_context, grouped_slices)");
  if (opt_.substreams < 1) throw InvalidArgument("substreams must be >= 1, got " + std::to_string(opt_.substreams));
  if (opt_.width != 0) {
    const Json& widths = bundle.plan().get("widths");
    width_index_ = -1;
    for (size_t i = 0; i < widths.size(); ++i)
      if (widths.at(i).is_number() && widths.at(i).integer() == opt_.width) width_index_ = int(i);
    if (width_index_ < 0 || size_t(width_index_) >= bundle.prefixes().size())
      throw InvalidArgument("width " + std::to_string(opt_.width) + " is not one of the bundle's widths");
  }
  std::string order = opt_.context_order;
  if (order.empty()) {
    const Json& ctx = bundle.plan().get("context");
    order = ctx.is_object() && ctx.get("order").is_string() ? ctx.get("order").str() : "wavefront";
  }
  if (order != "wavefront" && order != "raster")
    throw InvalidArgument("unknown context order '" + order + "' (wavefront, raster)");
  raster_ = order == "raster";
  parse_path_ = code_of(kParsePaths, opt_.parse_path);
  if (parse_path_ < 0) throw InvalidArgument("unknown parse path '" + opt_.parse_path + "'");
  levels_ = levels_of(bundle.plan());
  if (!levels_ && opt_.level)
    throw InvalidArgument("this bundle (" + bundle.plan_kind() + ") has one operating point: --level does not apply");
  if (levels_) level_ = levels_->parse(opt_.level);
  plan->check(bundle, bundle.prefixes()[size_t(width_index_)]);
}

EncodeResult Encoder::encode(const uint8_t* rgb, uint32_t height, uint32_t width, const GroupMask* mask) const {
  const double t0 = plans::now_s();
  if (height < 1 || width < 1) throw InvalidArgument("cannot encode: empty image");
  if (uint64_t(height) * width > kMaxPixels)
    throw InvalidArgument("image " + std::to_string(height) + "x" + std::to_string(width) + " is too large (limit " +
                          std::to_string(kMaxPixels) + " pixels)");
  if (mask && !plan_has_groups(bundle_.plan_kind()))
    throw InvalidArgument("plan '" + bundle_.plan_kind() + "' codes no groups: it takes no mask");
  EncodeResult res;
  plans::PlanContext c(bundle_, runner_, bundle_.prefixes()[size_t(width_index_)], opt_.mode, res.stats);
  c.mask = mask;
  c.image_h = height, c.image_w = width;
  c.raster = raster_;
  c.substreams = opt_.substreams;
  if (levels_) c.level = &level_;
  plans::find(bundle_.plan_kind())->encode(c, image_to_input(rgb, height, width, bundle_.pad_multiple()));
  ContainerHeader h;
  h.model_hash = bundle_.model_hash();
  h.height = height;
  h.width = width;
  h.pad_multiple = uint16_t(bundle_.pad_multiple());
  h.coder_mode = uint8_t(opt_.mode);
  h.parse_path = uint8_t(parse_path_);
  h.plan_kind = uint8_t(code_of(kPlanKinds, bundle_.plan_kind()));
  h.width_index = uint8_t(width_index_);
  h.flags = raster_ ? kFlagRasterContext : 0;
  if (levels_) {
    h.level = levels_->to_bytes(level_);
    res.level = Levels::format(level_);
  }
  res.data = pack_container(h, c.out_streams);
  res.stats.total_s = plans::now_s() - t0;
  return res;
}

}  // namespace lictrt
