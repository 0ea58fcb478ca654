// Pictures of tensors: windowing to 8 bits, the label colour map and montages (draw/montage.h).
#include <algorithm>
#include <array>
#include <cmath>

#include "brainspade/draw/montage.h"
#include "brainspade/io/image_io.h"

namespace brainspade {

torch::Tensor window_to_uint8(const torch::Tensor& image, double lo, double hi, double low_q, double high_q) {
  TORCH_CHECK(image.dim() == 2, "window_to_uint8 expects [H, W], got ", image.sizes());
  torch::Tensor x = image.detach().to(torch::kCPU, torch::kFloat32);
  if (lo == hi) {
    torch::Tensor vals = x.flatten();
    torch::Tensor nz = vals.masked_select(vals != 0);
    if (nz.numel() > 0) vals = nz;
    torch::Tensor sorted = std::get<0>(vals.sort());
    const int64_t n = sorted.numel();
    auto at_q = [&](double q) {
      int64_t k = std::clamp<int64_t>(static_cast<int64_t>(std::llround(q * (n - 1))), 0, n - 1);
      return sorted[k].item<double>();
    };
    lo = at_q(low_q);
    hi = at_q(high_q);
    // Images with zero background: keep the background black rather than mid-grey.
    if (nz.numel() > 0 && nz.numel() < x.numel() && lo > 0) lo = 0.0;
    if (hi <= lo) {
      // A constant tile: show it white when positive, black otherwise.
      if (hi > 0) lo = 0.0;
      else hi = lo + 1.0;
    }
  }
  torch::Tensor out = ((x - lo) / (hi - lo) * 255.0).round().clamp(0, 255).to(torch::kUInt8);
  // Exact zeros are the background of brain images (also of z-scored ones, whose brain is centred on 0):
  // keep them black so the brain stands out.
  if (auto zero = x == 0; zero.any().item<bool>() && !zero.all().item<bool>()) out.masked_fill_(zero, 0);
  return out;
}

std::array<uint8_t, 3> label_colour(int64_t c) {
  static const std::array<std::array<uint8_t, 3>, 9> palette = {{
      {0, 0, 0},        // background
      {40, 90, 230},    // CSF
      {140, 140, 140},  // GM
      {245, 245, 245},  // WM
      {240, 150, 30},   // deep GM
      {60, 190, 80},    // brainstem
      {250, 230, 40},   // WMH
      {220, 30, 30},    // tumour
      {220, 60, 220},   // edema
  }};
  static const std::array<std::array<uint8_t, 3>, 6> spare = {
      {{0, 200, 200}, {150, 90, 40}, {130, 60, 200}, {120, 200, 30}, {255, 140, 170}, {90, 120, 160}}};
  if (c >= 0 && c < static_cast<int64_t>(palette.size())) return palette[c];
  return spare[static_cast<size_t>(std::max<int64_t>(c, 0)) % spare.size()];
}

torch::Tensor label_to_rgb(const torch::Tensor& labels, bool soft) { return label_to_rgb(labels, {}, soft); }

torch::Tensor label_to_rgb(const torch::Tensor& labels, const std::vector<std::string>& channel_names, bool soft) {
  TORCH_CHECK(labels.dim() == 3, "label_to_rgb expects [C, H, W], got ", labels.sizes());
  static const std::vector<std::string> authors{"background", "csf", "gm", "wm", "deep_gm", "brainstem",
                                                "wmh", "tumour", "edema"};
  const int64_t C = labels.size(0);
  auto palette = torch::empty({C, 3}, torch::kFloat32);
  for (int64_t c = 0; c < C; ++c) {
    int64_t index = c;
    if (c < static_cast<int64_t>(channel_names.size())) {
      auto it = std::find(authors.begin(), authors.end(), channel_names[c]);
      if (it != authors.end()) index = it - authors.begin();
    }
    auto col = label_colour(index);
    for (int k = 0; k < 3; ++k) palette[c][k] = static_cast<float>(col[k]);
  }
  torch::Tensor l = labels.detach().to(torch::kCPU, torch::kFloat32);
  torch::Tensor rgb;
  if (soft) {
    auto w = l.clamp_min(0);
    w = w / w.sum(0, true).clamp_min(1e-6);
    rgb = torch::einsum("chw,ck->hwk", {w, palette});  // [H, W, 3]
  } else {
    rgb = palette.index_select(0, l.argmax(0).flatten()).view({l.size(1), l.size(2), 3});  // [H, W, 3]
  }
  return rgb.round().clamp(0, 255).to(torch::kUInt8);
}

void write_montage_png(const std::string& path, const std::vector<torch::Tensor>& tiles, int64_t cols,
                       const MontageOptions& o) {
  TORCH_CHECK(!tiles.empty(), "write_montage_png needs at least one tile");
  TORCH_CHECK(cols >= 1, "write_montage_png: cols must be >= 1, got ", cols);
  std::vector<torch::Tensor> rgb;  // each [h, w, 3] uint8
  int64_t cell_h = 0, cell_w = 0;
  for (const auto& t : tiles) {
    torch::Tensor r;
    if (t.dim() == 3 && t.size(2) == 3 && t.scalar_type() == torch::kUInt8) {
      r = t.cpu();
    } else {
      TORCH_CHECK(t.dim() == 2, "montage tiles are [H, W] float or [H, W, 3] uint8, got ", t.sizes());
      r = window_to_uint8(t, 0.0, 0.0, o.low_quantile, o.high_quantile).unsqueeze(-1).expand({-1, -1, 3});
    }
    cell_h = std::max(cell_h, r.size(0));
    cell_w = std::max(cell_w, r.size(1));
    rgb.push_back(r);
  }
  const int64_t n = static_cast<int64_t>(rgb.size());
  const int64_t ncols = std::min(cols, n), nrows = (n + ncols - 1) / ncols, pad = o.padding;
  auto canvas = torch::full({nrows * (cell_h + pad) + pad, ncols * (cell_w + pad) + pad, 3}, o.background,
                            torch::kUInt8);  // [H_total, W_total, 3]
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = i / ncols, c = i % ncols;
    const int64_t h = rgb[i].size(0), w = rgb[i].size(1);
    const int64_t y0 = pad + r * (cell_h + pad) + (cell_h - h) / 2, x0 = pad + c * (cell_w + pad) + (cell_w - w) / 2;
    canvas.slice(0, y0, y0 + h).slice(1, x0, x0 + w).copy_(rgb[i]);
  }
  write_png(path, canvas);
}

}  // namespace brainspade
