// `brainspade label`: tissue PV maps from a brain-extracted T1 (+ atlas deep GM) (library: data/labelling.h).
#include <spdlog/spdlog.h>

#include "app.h"
#include "brainspade/core/progress.h"
#include "brainspade/data/labelling.h"
#include "brainspade/draw/montage.h"
#include "brainspade/io/image_io.h"

namespace brainspade::app {
namespace cmd_label {


struct LabelFlags {
  std::string t1, atlas, out, montage;
  LabellingOptions options;
};

void run_label(const LabelFlags& f) {
  configure_threads(0);
  Progress timer("label", 1);
  Volume t1 = read_volume(f.t1);
  if (t1.channels() != 1) throw input_error(f.t1, ": expected a 3D T1 image, got ", t1.channels(), " channels");
  Volume atlas;
  if (!f.atlas.empty()) atlas = read_volume(f.atlas);
  spdlog::info("T1 {}: {}", f.t1, t1.grid_string());
  LabellingResult r = label_t1(t1, f.atlas.empty() ? nullptr : &atlas, f.options);
  write_volume(f.out, r.pv);
  if (!f.montage.empty()) {
    // Five axial slices: T1 above, argmax colours below.
    std::vector<torch::Tensor> tiles, colours;
    for (int i = 1; i <= 5; ++i) {
      int64_t z = t1.depth() * (i + 1) / 8;
      tiles.push_back(t1.data[0][z]);
      colours.push_back(label_to_rgb(r.pv.data.select(1, z)));
    }
    tiles.insert(tiles.end(), colours.begin(), colours.end());
    write_montage_png(f.montage, tiles, 5);
  }
  spdlog::info("wrote {} ({} channels: background, csf, gm, wm, deep_gm, brainstem) in {}", f.out, r.pv.channels(),
               format_duration(timer.elapsed_s()));
}

LabelFlags flags;
Registrar reg_label("10-label", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("label", "tissue PV maps [background, csf, gm, wm, deep_gm, brainstem] from a brain-extracted T1");
  cmd->add_option("--t1", flags.t1, "brain-extracted T1 (.nii/.nii.gz/.mha)")->required();
  cmd->add_option("--atlas", flags.atlas, "integer atlas on (or resampled to) the T1 grid, e.g. AAL, for deep GM");
  cmd->add_option("--out,-o", flags.out, "output 4D NIfTI, e.g. colin27_pv.nii.gz")->required();
  cmd->add_option("--montage", flags.montage, "optional PNG of five axial slices and their labels");
  cmd->add_option("--em-iterations", flags.options.em_iterations, "EM iterations")->check(CLI::PositiveNumber);
  cmd->add_option("--spatial-beta", flags.options.spatial_beta, "neighbourhood prior strength (0 = none)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--brain-threshold", flags.options.brain_threshold, "T1 values above this are brain");
  cmd->callback([] { run_label(flags); });
});

}  // namespace cmd_label
}  // namespace brainspade::app
