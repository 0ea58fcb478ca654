// `brainspade style-montage`: a PNG of style images as `sample` reads them, beside dataset slices.
#include <cstdio>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "app.h"
#include "brainspade/core/atomic_file.h"
#include "brainspade/core/error.h"
#include "brainspade/draw/montage.h"
#include "brainspade/data/slice_registration.h"
#include "plane_flags.h"

namespace brainspade::app {
namespace cmd_style_montage {

struct MontageFlags {
  std::string out, dataset;
  std::vector<std::string> files;
  std::vector<int64_t> rows;
  int64_t cols = 4;
};

// Each file is shown as `brainspade sample` reads a style image (the middle slice data[0][depth / 2]), dataset rows
// as stored: to check by eye that style images come out in the dataset's layout.
void run_montage(const MontageFlags& f) {
  std::vector<torch::Tensor> tiles;
  for (const auto& path : f.files) {
    Volume v = read_volume(path);
    tiles.push_back(v.data[0][v.depth() / 2]);
  }
  if (!f.dataset.empty()) {
    SliceDataset ds = SliceDataset::load(f.dataset);
    BRAINSPADE_CHECK_INPUT(ds.images.defined(), f.dataset, ": has no images");
    for (int64_t r : f.rows) {
      BRAINSPADE_CHECK_INPUT(r >= 0 && r < ds.size(), "--rows ", r, " is outside ", f.dataset, " (", ds.size(), " rows)");
      tiles.push_back(ds.images[r][0]);
    }
  }
  BRAINSPADE_CHECK_INPUT(!tiles.empty(), "montage: nothing to show (give --files and/or --dataset with --rows)");
  ensure_parent(f.out);
  write_montage_png(f.out, tiles, f.cols);
  spdlog::info("wrote {} ({} tiles)", f.out, tiles.size());
}

MontageFlags flags;

Registrar reg_montage("15-style-montage", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("style-montage", "PNG of style images (as `sample` reads them) and dataset slices");
  cmd->add_option("--out,-o", flags.out, "output PNG")->required();
  cmd->add_option("--files", flags.files, "images/volumes (the middle axial slice of each is shown)");
  cmd->add_option("--dataset", flags.dataset, "dataset.pt to show rows of");
  cmd->add_option("--rows", flags.rows, "dataset rows to show");
  cmd->add_option("--cols", flags.cols, "tiles per row")->check(CLI::PositiveNumber);
  cmd->callback([] { run_montage(flags); });
});

}  // namespace cmd_style_montage
}  // namespace brainspade::app
