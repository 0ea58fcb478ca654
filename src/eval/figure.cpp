#include "brainspade/eval/figure.h"

#include <algorithm>

#include "brainspade/core/error.h"
#include "brainspade/draw/montage.h"
#include "brainspade/io/image_io.h"

namespace brainspade {

std::string write_prediction_figure(const PredictionFigureJob& job) {
  BRAINSPADE_CHECK_INPUT(!job.out.empty(), "figure: an output PNG path is required");
  BRAINSPADE_CHECK_INPUT(job.rows >= 1, "figure: rows must be at least 1");
  Volume image = read_volume(job.image);
  Volume ref = read_volume(job.reference);
  BRAINSPADE_CHECK_INPUT(ref.same_grid(image), job.reference, ": grid ", ref.grid_string(), " differs from the image's ",
                         image.grid_string());
  std::vector<std::string> names{"image", "ground truth"};
  std::vector<Volume> preds;
  for (const auto& p : job.predictions) {
    auto eq = p.find('=');
    BRAINSPADE_CHECK_INPUT(eq != std::string::npos && eq > 0, "--pred ", p, ": expected NAME=PATH");
    preds.push_back(read_volume(p.substr(eq + 1)));
    BRAINSPADE_CHECK_INPUT(preds.back().same_grid(image), p.substr(eq + 1), ": grid ", preds.back().grid_string(),
                           " differs from the image's ", image.grid_string());
    names.push_back(p.substr(0, eq));
  }
  // Number of classes: the largest label present + 1 (at least 2), shared by every label tile so colours agree.
  int64_t K = static_cast<int64_t>(ref.data.max().item<double>()) + 1;
  for (const auto& v : preds) K = std::max<int64_t>(K, static_cast<int64_t>(v.data.max().item<double>()) + 1);
  K = std::max<int64_t>(K, 2);
  std::vector<int64_t> zs = job.slices;
  if (zs.empty()) {
    auto fg = (ref.data[0] > 0).sum({1, 2});  // [Z] foreground voxels per slice
    auto nz = fg.nonzero().flatten();
    BRAINSPADE_CHECK_INPUT(nz.numel() > 0, job.reference, ": the reference has no foreground to show");
    int64_t lo = nz.min().item<int64_t>(), hi = nz.max().item<int64_t>();
    for (int64_t r = 0; r < job.rows; ++r) zs.push_back(lo + (hi - lo) * (2 * r + 1) / (2 * job.rows));
  }
  auto tile_labels = [&](const Volume& v, int64_t z) {
    auto lab = v.data[0][z].round().to(torch::kLong).clamp(0, K - 1);  // [Y, X]
    auto onehot = torch::one_hot(lab, K).permute({2, 0, 1}).to(torch::kFloat);  // [K, Y, X]
    return label_to_rgb(onehot, job.class_names);
  };
  std::vector<torch::Tensor> tiles;
  std::string caption = "columns:";
  for (size_t i = 0; i < names.size(); ++i) caption += (i ? ", " : " ") + names[i];
  caption += "; slices z=";
  for (size_t r = 0; r < zs.size(); ++r) {
    const int64_t z = zs[r];
    BRAINSPADE_CHECK_INPUT(0 <= z && z < image.depth(), "figure: slice ", z, " is outside the volume (depth ",
                           image.depth(), ")");
    caption += (r ? "," : "") + std::to_string(z);
    tiles.push_back(image.data[0][z].contiguous());
    tiles.push_back(tile_labels(ref, z));
    for (const auto& v : preds) tiles.push_back(tile_labels(v, z));
  }
  write_montage_png(job.out, tiles, static_cast<int64_t>(names.size()));
  return caption;
}

}  // namespace brainspade
