// `brainspade label-agreement`: Dice of `label`'s maps against independent tissue probability maps
// (library: data/labelling.h).
#include <cstdio>

#include <spdlog/spdlog.h>

#include "app.h"
#include "brainspade/core/progress.h"
#include "brainspade/data/labelling.h"
#include "brainspade/io/image_io.h"

namespace brainspade::app {
namespace cmd_label_agreement {

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

AgreementFlags flags;
Registrar reg_agreement("11-label-agreement", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("label-agreement", "Dice of `brainspade label` output against independent CSF/GM/WM maps");
  cmd->add_option("--pv", flags.pv, "output of brainspade label")->required();
  cmd->add_option("--t1", flags.t1, "the T1 it was made from (used only to align the reference)")->required();
  cmd->add_option("--csf", flags.csf, "reference CSF map")->required();
  cmd->add_option("--gm", flags.gm, "reference GM map")->required();
  cmd->add_option("--wm", flags.wm, "reference WM map")->required();
  cmd->add_option("--max-shift-mm", flags.max_shift_mm, "largest alignment shift searched per axis");
  cmd->callback([] { run_agreement(flags); });
});

}  // namespace cmd_label_agreement
}  // namespace brainspade::app
