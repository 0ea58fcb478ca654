// brainspade sample images --spade CKPT --labels FILES_OR_DIRS_OR_DATASET [--rows R...] --style FILES --out DIR:
// SPADE synthesis alone.
#include "app.h"
#include "brainspade/sampling/pair_sampler.h"

namespace cmd_sample_images {
brainspade::app::CommonFlags flags;
std::string spade;
std::vector<std::string> labels, styles;
std::vector<int64_t> rows;
brainspade::app::Registrar reg("31-sample-images", [](CLI::App& root) {
  auto* cmd = brainspade::app::group(root, "sample", "generate synthetic data with trained models")
                  ->add_subcommand("images", "SPADE: label maps + style images of any contrast -> MRI slices");
  brainspade::app::add_common_flags(cmd, flags, false);
  cmd->add_option("--spade", spade, "SPADE checkpoint")->required();
  cmd->add_option("--labels", labels, "label NIfTI files, folders of *_pv.nii.gz, or slice datasets (.pt)")->required();
  cmd->add_option("--rows", rows, "rows taken from each .pt in --labels (default: all)");
  cmd->add_option("--style", styles, "style images (PNG or NIfTI) or folders")->required();
  cmd->callback([] {
    flags.set("spade_checkpoint", spade);
    flags.set("labels", labels);
    flags.set("styles", styles);
    if (!rows.empty()) flags.set("label_rows", rows);
    auto job = brainspade::app::resolve_config<brainspade::ImageSampleJob>(flags);
    brainspade::start_run(job.run, brainspade::dump_config(job), "sample_images.log");
    brainspade::run_image_sampling(job);
  });
});
}  // namespace cmd_sample_images
