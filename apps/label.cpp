// `brainspade label`: tissue PV maps from a brain-extracted T1 (+ atlas deep GM).
// `brainspade label-agreement`: Dice of those maps against independent tissue probability maps.
#include <spdlog/spdlog.h>

#include "app.h"
#include "brainspade/core/progress.h"
#include "brainspade/data/labelling.h"
#include "brainspade/io/image_io.h"

namespace brainspade::app {
namespace {

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

struct AgreementFlags {
  std::string pv, t1, csf, gm, wm;
  double max_shift_mm = 6.0;
};

void run_agreement(const AgreementFlags& f) {
  configure_threads(0);
  Progress timer("agreement", 1);
  Volume pv = read_volume(f.pv), t1 = read_volume(f.t1);
  if (pv.channels() != 6) throw input_error(f.pv, ": expected the 6-channel output of `brainspade label`");
  if (!pv.same_grid(t1)) throw input_error(f.pv, ": not on the grid of ", f.t1);
  AgreementResult r = measure_agreement(pv, t1, read_volume(f.csf), read_volume(f.gm), read_volume(f.wm), f.max_shift_mm);
  std::printf("trusting the reference header: Dice CSF %.3f  GM %.3f  WM %.3f\n", r.dice_header[0], r.dice_header[1],
              r.dice_header[2]);
  std::printf("box-centred, flips (x,y,z) = (%d,%d,%d), shift = (%.1f, %.1f, %.1f) mm, T1 corr %.3f\n", r.flips[0],
              r.flips[1], r.flips[2], r.shift_mm[0], r.shift_mm[1], r.shift_mm[2], r.correlation);
  std::printf("aligned: Dice CSF %.3f  GM %.3f  WM %.3f\n", r.dice[0], r.dice[1], r.dice[2]);
  std::printf("aligned, inside our brain mask: Dice CSF %.3f  GM %.3f  WM %.3f\n", r.dice_in_brain[0],
              r.dice_in_brain[1], r.dice_in_brain[2]);
  spdlog::info("agreement measured in {}", format_duration(timer.elapsed_s()));
}

Registrar reg_label("10-label", [](CLI::App& root) {
  auto flags = std::make_shared<LabelFlags>();
  auto* cmd = root.add_subcommand("label", "tissue PV maps [background, csf, gm, wm, deep_gm, brainstem] from a brain-extracted T1");
  cmd->add_option("--t1", flags->t1, "brain-extracted T1 (.nii/.nii.gz/.mha)")->required();
  cmd->add_option("--atlas", flags->atlas, "integer atlas on (or resampled to) the T1 grid, e.g. AAL, for deep GM");
  cmd->add_option("--out,-o", flags->out, "output 4D NIfTI, e.g. colin27_pv.nii.gz")->required();
  cmd->add_option("--montage", flags->montage, "optional PNG of five axial slices and their labels");
  cmd->add_option("--em-iterations", flags->options.em_iterations, "EM iterations")->check(CLI::PositiveNumber);
  cmd->add_option("--spatial-beta", flags->options.spatial_beta, "neighbourhood prior strength (0 = none)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--brain-threshold", flags->options.brain_threshold, "T1 values above this are brain");
  cmd->callback([flags] { run_label(*flags); });
});

Registrar reg_agreement("11-label-agreement", [](CLI::App& root) {
  auto flags = std::make_shared<AgreementFlags>();
  auto* cmd = root.add_subcommand("label-agreement", "Dice of `brainspade label` output against independent CSF/GM/WM maps");
  cmd->add_option("--pv", flags->pv, "output of brainspade label")->required();
  cmd->add_option("--t1", flags->t1, "the T1 it was made from (used only to align the reference)")->required();
  cmd->add_option("--csf", flags->csf, "reference CSF map")->required();
  cmd->add_option("--gm", flags->gm, "reference GM map")->required();
  cmd->add_option("--wm", flags->wm, "reference WM map")->required();
  cmd->add_option("--max-shift-mm", flags->max_shift_mm, "largest alignment shift searched per axis");
  cmd->callback([flags] { run_agreement(*flags); });
});

}  // namespace
}  // namespace brainspade::app
