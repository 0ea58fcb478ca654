// `brainspade register-slice`: places 2D slices (e.g. the BrainWeb T1/PD PNGs) into a co-registered volume's grid
// so that `brainspade slice` can take them as volumes (library: data/slice_registration.h).
#include <cstdio>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "app.h"
#include "brainspade/core/atomic_file.h"
#include "brainspade/core/error.h"
#include "brainspade/data/slice_registration.h"
#include "plane_flags.h"

namespace brainspade::app {
namespace cmd_register_slice {

struct RegisterFlags {
  std::string match, reference, labels, labels_out, report;
  std::vector<std::string> pngs, image_outs, style_outs;
  int64_t max_shift = 3;
  PlaneFlags plane;
};

void run_register(const RegisterFlags& f) {
  BRAINSPADE_CHECK_INPUT(f.pngs.size() == f.image_outs.size(), "--png is given ", f.pngs.size(),
                         " times but --image-out ", f.image_outs.size(), " times");
  BRAINSPADE_CHECK_INPUT(f.style_outs.empty() || f.style_outs.size() == f.pngs.size(), "--style-out is given ",
                         f.style_outs.size(), " times; give it once per --png or not at all");
  Volume ref = read_volume(f.reference);
  BRAINSPADE_CHECK_INPUT(ref.channels() == 1, f.reference, ": expected a single-channel image");
  Volume pv = read_volume(f.labels);
  BRAINSPADE_CHECK_INPUT(pv.same_grid(ref), f.labels, " (", pv.grid_string(), ") is not on the grid of ", f.reference,
                         " (", ref.grid_string(), ")");
  torch::Tensor png = read_png(f.match);
  SliceMatch m = match_slice(png, ref, f.max_shift);
  const std::string summary = fmt::format(
      "{} matches axial slice z = {} of {} (depth {}): orientation {} ({}), shift (y, x) = ({}, {}) px, NCC {:.4f}; "
      "runner-up z = {} (NCC {:.4f}, margin {:.4f}; slices within 3 of the best excluded); best other orientation "
      "NCC {:.4f}; neighbours z-1/z+1 NCC {:.4f}/{:.4f}",
      f.match, m.z, f.reference, ref.depth(), m.orientation, orientation_name(m.orientation), m.shift_y, m.shift_x,
      m.correlation, m.runner_up_z, m.runner_up_correlation, m.correlation - m.runner_up_correlation,
      m.best_other_orientation, m.z > 0 ? m.per_z[m.z - 1] : 0.0, m.z + 1 < ref.depth() ? m.per_z[m.z + 1] : 0.0);
  spdlog::info("{}", summary);
  if (!f.report.empty()) {
    ensure_parent(f.report);
    write_text_atomic(f.report, summary + "\n");
  }
  const int64_t Z = ref.depth(), Y = ref.height(), X = ref.width();
  auto mask = brain_mask(pv, m.z);
  const SliceOptions plane = f.plane.options();
  for (size_t i = 0; i < f.pngs.size(); ++i) {
    torch::Tensor img = f.pngs[i] == f.match ? png : read_png(f.pngs[i]);
    auto placed = place_slice(img, m, Y, X) * mask;  // [Y, X], zero outside the brain
    auto data = torch::zeros({1, Z, Y, X}, torch::kFloat32);
    data[0][m.z].copy_(placed);
    ensure_parent(f.image_outs[i]);
    write_volume(f.image_outs[i], pv.with_data(data));
    spdlog::info("wrote {} ({} at z = {}, zero elsewhere)", f.image_outs[i], f.pngs[i], m.z);
    if (!f.style_outs.empty()) {
      ensure_parent(f.style_outs[i]);
      write_style_slice(f.style_outs[i], slice_to_dataset_plane(placed, plane));
      spdlog::info("wrote style image {}", f.style_outs[i]);
    }
  }
  if (!f.labels_out.empty()) {
    // Background everywhere but the matched slice: the slicer's brain-fraction rule then keeps only that slice,
    // with its true slice_index and slice_position.
    auto data = torch::zeros_like(pv.data);
    data[0].fill_(1.0f);
    data.select(1, m.z).copy_(pv.data.select(1, m.z));
    ensure_parent(f.labels_out);
    write_volume(f.labels_out, pv.with_data(data));
    spdlog::info("wrote {} (labels of z = {} only)", f.labels_out, m.z);
  }
}

RegisterFlags flags;

Registrar reg("13-register-slice", [](CLI::App& root) {
  auto* cmd = root.add_subcommand(
      "register-slice", "place 2D slices (PNG) into a co-registered volume's grid by NCC slice matching");
  cmd->add_option("--match", flags.match, "PNG matched against the reference (e.g. BrainT1Slice.png)")->required();
  cmd->add_option("--reference", flags.reference, "volume of the same contrast and anatomy, non-brain-extracted (ch2)")
      ->required();
  cmd->add_option("--labels", flags.labels, "PV maps on the reference grid (brain mask and output labels)")->required();
  cmd->add_option("--png", flags.pngs, "PNG of the same slice to place (repeatable; --match itself may be listed)");
  cmd->add_option("--image-out", flags.image_outs, "output volume per --png: the slice at the matched z, zero elsewhere");
  cmd->add_option("--labels-out", flags.labels_out, "output PV volume: the matched slice's labels, background elsewhere");
  cmd->add_option("--style-out", flags.style_outs, "optional single-slice style image per --png (dataset layout)");
  cmd->add_option("--report", flags.report, "text file for the match summary");
  cmd->add_option("--max-shift", flags.max_shift, "in-plane shift searched, pixels per axis")->check(CLI::NonNegativeNumber);
  add_plane_flags(cmd, flags.plane);
  cmd->callback([] { run_register(flags); });
});

}  // namespace cmd_register_slice
}  // namespace brainspade::app
