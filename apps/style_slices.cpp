// `brainspade style-slices`: axial slices of a volume as single-slice style images for `brainspade sample`.
#include <cstdio>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "app.h"
#include "brainspade/core/atomic_file.h"
#include "brainspade/core/error.h"
#include "brainspade/data/slice_registration.h"
#include "plane_flags.h"

namespace brainspade::app {
namespace cmd_style_slices {

struct StyleFlags {
  std::string image, labels, out_dir, prefix = "slice";
  std::vector<int64_t> z;
  PlaneFlags plane;
};

void run_styles(const StyleFlags& f) {
  Volume img = read_volume(f.image);
  BRAINSPADE_CHECK_INPUT(img.channels() == 1, f.image, ": expected a single-channel image");
  Volume pv = read_volume(f.labels);
  BRAINSPADE_CHECK_INPUT(pv.same_grid(img), f.labels, " is not on the grid of ", f.image);
  std::filesystem::create_directories(f.out_dir);
  const SliceOptions plane = f.plane.options();
  for (int64_t z : f.z) {
    BRAINSPADE_CHECK_INPUT(z >= 0 && z < img.depth(), "--z ", z, " is outside ", f.image, " (depth ", img.depth(), ")");
    auto s = img.data[0][z].to(torch::kFloat32) * brain_mask(pv, z);
    char name[64];
    std::snprintf(name, sizeof(name), "%s_z%03ld.nii.gz", f.prefix.c_str(), static_cast<long>(z));
    const std::string path = f.out_dir + "/" + name;
    write_style_slice(path, slice_to_dataset_plane(s, plane));
    spdlog::info("wrote style image {} (axial slice {} of {})", path, z, f.image);
  }
}

StyleFlags flags;

Registrar reg_styles("14-style-slices", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("style-slices", "brain-masked axial slices as single-slice style images");
  cmd->add_option("--image", flags.image, "image volume")->required();
  cmd->add_option("--labels", flags.labels, "PV maps on its grid (brain mask)")->required();
  cmd->add_option("--z", flags.z, "axial indices (repeatable)")->required();
  cmd->add_option("--out-dir", flags.out_dir, "output folder")->required();
  cmd->add_option("--prefix", flags.prefix, "file name prefix: PREFIX_zNNN.nii.gz");
  add_plane_flags(cmd, flags.plane);
  cmd->callback([] { run_styles(flags); });
});

}  // namespace cmd_style_slices
}  // namespace brainspade::app
