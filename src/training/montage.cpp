#include "brainspade/training/montage.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "brainspade/io/image_io.h"

namespace brainspade {

void write_label_pairs_montage(const std::string& path, const torch::Tensor& a, const torch::Tensor& b,
                               const std::string& a_name, const std::string& b_name) {
  std::vector<torch::Tensor> tiles;
  const int64_t n = std::min(a.size(0), b.size(0));
  for (int64_t i = 0; i < n; ++i) tiles.push_back(label_to_rgb(a[i]));
  for (int64_t i = 0; i < n; ++i) tiles.push_back(label_to_rgb(b[i]));
  write_montage_png(path, tiles, n);
  spdlog::info("montage ({} top, {} bottom): {}", a_name, b_name, path);
}

torch::Tensor render_plot(const std::vector<std::vector<std::pair<double, double>>>& series, int64_t H, int64_t W) {
  auto img = torch::full({H, W, 3}, 255, torch::kUInt8);
  auto px = img.accessor<uint8_t, 3>();
  const int64_t left = 40, right = 10, top = 10, bottom = 25;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  bool all_positive = true;
  for (const auto& s : series)
    for (const auto& [x, y] : s) {
      if (!std::isfinite(y)) continue;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      all_positive = all_positive && y > 0;
    }
  auto fy = [&](double y) { return all_positive ? std::log10(y) : y; };
  if (!std::isfinite(x0)) return img;
  double ly0 = fy(y0), ly1 = fy(y1);
  if (ly1 - ly0 < 1e-12) ly0 -= 0.5, ly1 += 0.5;
  if (x1 - x0 < 1e-12) x1 = x0 + 1;
  auto set = [&](int64_t r, int64_t c, std::array<uint8_t, 3> col) {
    if (r >= 0 && r < H && c >= 0 && c < W)
      for (int k = 0; k < 3; ++k) px[r][c][k] = col[k];
  };
  // Axes and a light grid (one line per decade on a log scale).
  for (int64_t r = top; r < H - bottom; ++r) set(r, left, {0, 0, 0});
  for (int64_t c = left; c < W - right; ++c) set(H - bottom, c, {0, 0, 0});
  if (all_positive)
    for (double d = std::ceil(ly0); d <= ly1; d += 1.0) {
      int64_t r = H - bottom - static_cast<int64_t>((d - ly0) / (ly1 - ly0) * (H - top - bottom));
      for (int64_t c = left + 1; c < W - right; c += 3) set(r, c, {190, 190, 190});
    }
  const std::array<std::array<uint8_t, 3>, 6> colours{{{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
                                                        {148, 103, 189}, {140, 86, 75}}};
  for (size_t si = 0; si < series.size(); ++si) {
    auto col = colours[si % colours.size()];
    int64_t pr = -1, pc = -1;
    for (const auto& [x, y] : series[si]) {
      if (!std::isfinite(y)) continue;
      int64_t c = left + static_cast<int64_t>((x - x0) / (x1 - x0) * (W - left - right - 1));
      int64_t r = H - bottom - static_cast<int64_t>((fy(y) - ly0) / (ly1 - ly0) * (H - top - bottom - 1));
      if (pr >= 0) {  // straight segment from the previous point
        int64_t steps = std::max(std::abs(r - pr), std::abs(c - pc)) + 1;
        for (int64_t k = 0; k <= steps; ++k) {
          int64_t rr = pr + (r - pr) * k / steps, cc = pc + (c - pc) * k / steps;
          set(rr, cc, col);
          set(rr + 1, cc, col);
        }
      }
      pr = r, pc = c;
    }
    // Legend swatch per series along the bottom.
    for (int64_t r = H - 12; r < H - 4; ++r)
      for (int64_t c = left + 20 * static_cast<int64_t>(si); c < left + 20 * static_cast<int64_t>(si) + 14; ++c) set(r, c, col);
  }
  return img;
}

void plot_metrics(const std::string& csv_path, const std::vector<std::string>& columns, const std::string& png_path) {
  std::ifstream in(csv_path);
  if (!in) return;
  std::string header, line;
  std::getline(in, header);
  std::vector<std::string> names;
  std::stringstream hs(header);
  for (std::string c; std::getline(hs, c, ',');) names.push_back(c);
  std::vector<int> idx;
  std::vector<std::string> used;
  for (const auto& want : columns)
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == want) idx.push_back(static_cast<int>(i)), used.push_back(want);
  if (idx.empty()) return;
  std::vector<std::vector<std::pair<double, double>>> series(idx.size());
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ls(line);
    for (std::string c; std::getline(ls, c, ',');) cells.push_back(c);
    if (cells.empty()) continue;
    double x = std::atof(cells[0].c_str());
    for (size_t k = 0; k < idx.size(); ++k)
      if (static_cast<size_t>(idx[k]) < cells.size() && !cells[idx[k]].empty())
        series[k].emplace_back(x, std::atof(cells[idx[k]].c_str()));
  }
  write_png(png_path, render_plot(series));
  std::string legend;
  for (size_t k = 0; k < used.size(); ++k) legend += (k ? ", " : "") + used[k];
  spdlog::info("loss plot ({}; colours in that order): {}", legend, png_path);
}

}  // namespace brainspade
