#pragma once
// Helpers shared by register-slice and style-slices: the dataset plane's flags, a slice's brain mask, parent folders.
#include <filesystem>
#include <string>

#include "app.h"
#include "brainspade/data/slicing.h"

namespace brainspade::app {


struct PlaneFlags {
  int64_t height = 192, width = 256;
  std::string layout = "x_rows";
  SliceOptions options() const {
    SliceOptions o;
    o.height = height;
    o.width = width;
    o.layout = layout;
    return o;
  }
};

inline void add_plane_flags(CLI::App* cmd, PlaneFlags& f) {
  cmd->add_option("--height", f.height, "style image rows (the dataset's data.height)")->check(CLI::PositiveNumber);
  cmd->add_option("--width", f.width, "style image columns (the dataset's data.width)")->check(CLI::PositiveNumber);
  cmd->add_option("--layout", f.layout, "the dataset's data.layout")->check(CLI::IsMember({"x_rows", "y_rows"}));
}

// Brain mask [Y, X] of a PV map's axial slice z (background PV < 0.5, as the slicer defines it).
inline torch::Tensor brain_mask(const Volume& pv, int64_t z) { return (pv.data[0][z] < 0.5).to(torch::kFloat32); }

inline void ensure_parent(const std::string& path) {
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
}

}  // namespace brainspade::app
