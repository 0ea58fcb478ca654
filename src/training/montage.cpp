#include "brainspade/training/montage.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/csv.h"
#include "brainspade/core/runtime.h"
#include "brainspade/draw/plot.h"
#include "brainspade/draw/montage.h"
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

void plot_metrics(const std::string& csv_path, const std::vector<std::string>& columns, const std::string& png_path) {
  if (!file_exists(csv_path)) return;
  const auto records = parse_csv(read_text(csv_path), csv_path);
  if (records.empty()) return;
  const std::vector<std::string>& names = records[0];
  std::vector<int> idx;
  std::vector<std::string> used;
  for (const auto& want : columns)
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == want) idx.push_back(static_cast<int>(i)), used.push_back(want);
  if (idx.empty()) return;
  LinePlot plot;
  plot.title = "Training curves (" + std::filesystem::path(csv_path).parent_path().filename().string() + ")";
  plot.x_label = "step";
  plot.y_label = "value";
  plot.log_y = true;
  for (size_t k = 0; k < idx.size(); ++k) {
    PlotSeries s;
    s.label = used[k];
    s.dashed = used[k].rfind("val_", 0) == 0;  // held-out curves dashed
    for (size_t r = 1; r < records.size(); ++r) {
      const auto& cells = records[r];
      if (cells.empty() || static_cast<size_t>(idx[k]) >= cells.size() || cells[idx[k]].empty()) continue;
      const double y = std::atof(cells[idx[k]].c_str());
      s.x.push_back(std::atof(cells[0].c_str()));
      s.y.push_back(y);
      if (y <= 0) plot.log_y = false;  // a log axis only when every value is positive
    }
    plot.series.push_back(s);
  }
  write_plot_png(png_path, {plot}, 640, 400);
  std::string legend;
  for (size_t k = 0; k < used.size(); ++k) legend += (k ? ", " : "") + used[k];
  spdlog::info("loss plot ({}): {}", legend, png_path);
}

}  // namespace brainspade
