// brainspade quality --pairs DIR --real DATASET [--segmenter CKPT] --out DIR: how close synthetic maps and images are
// to real slices (library: eval/quality.h; docs/quality.md).
#include "app.h"
#include "brainspade/eval/quality.h"
#include "brainspade/training/reference_segmenter.h"

namespace cmd_quality {
brainspade::app::CommonFlags flags;
std::string pairs, real, segmenter, modality;
brainspade::app::Registrar reg("43-quality", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("quality", "measure synthetic label maps and images against real slices");
  brainspade::app::add_common_flags(cmd, flags, false);
  cmd->add_option("--pairs", pairs, "folder from `sample` (manifest.csv) or `sample labels` (pairs)");
  cmd->add_option("--real", real, "slice dataset (.pt) of real slices (real)");
  cmd->add_option("--segmenter", segmenter, "segmenter trained on real slices (segmenter; default: train one)");
  cmd->add_option("--modality", modality, "modality of the real rows compared (modality)");
  cmd->callback([] {
    if (!pairs.empty()) flags.set("pairs", pairs);
    if (!real.empty()) flags.set("real", real);
    if (!segmenter.empty()) flags.set("segmenter", segmenter);
    if (!modality.empty()) flags.set("modality", modality);
    auto job = brainspade::app::resolve_config<brainspade::QualityJob>(flags);
    brainspade::start_run(job.run, brainspade::dump_config(job), "quality.log");
    if (job.images && job.segmenter.empty() && brainspade::file_exists(job.pairs + "/manifest.csv"))
      job.segmenter = brainspade::train_reference_segmenter(job.segmenter_config, job.real,
                                                             job.run.out_dir + "/segmenter", job.run);
    brainspade::run_quality(job);
  });
});
}  // namespace cmd_quality
