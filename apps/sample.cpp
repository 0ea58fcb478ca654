// brainspade sample --config FILE --num N --out DIR [--shard i/n] [--format nnunet]: labelled synthetic pairs
// (library: sampling/pair_sampler.h). `sample labels` and `sample images` run one generator alone.
#include <spdlog/spdlog.h>

#include "app.h"
#include "brainspade/sampling/pair_sampler.h"

namespace cmd_sample {
brainspade::app::CommonFlags flags;
std::string ldm, vae, spade, classifier, shard, format;
std::vector<std::string> styles;
int64_t num = -1;
brainspade::app::Registrar reg("29-sample", [](CLI::App& root) {
  auto* cmd = brainspade::app::group(root, "sample", "generate synthetic data with trained models");
  cmd->require_subcommand(0, 1);
  cmd->description("generate labelled synthetic pairs (label generator + SPADE); or one generator with a subcommand");
  brainspade::app::add_common_flags(cmd, flags, false);
  cmd->add_option("--ldm", ldm, "LDM checkpoint (ldm_checkpoint)");
  cmd->add_option("--vae", vae, "VAE checkpoint (vae_checkpoint; default: the LDM's)");
  cmd->add_option("--spade", spade, "SPADE checkpoint (spade_checkpoint)");
  cmd->add_option("--classifier", classifier, "modality classifier for rejection (classifier_checkpoint)");
  cmd->add_option("--style", styles, "style images or folders (styles)");
  cmd->add_option("--num,-n", num, "pairs to generate (num)");
  cmd->add_option("--format", format, "native | nnunet (format)");
  cmd->add_option("--shard", shard, "i/n: make only shard i of n (default: SLURM_ARRAY_TASK_ID/COUNT when set)");
  cmd->callback([cmd] {
    if (!cmd->get_subcommands().empty()) return;  // `sample labels|images` ran instead
    if (!ldm.empty()) flags.set("ldm_checkpoint", ldm);
    if (!vae.empty()) flags.set("vae_checkpoint", vae);
    if (!spade.empty()) flags.set("spade_checkpoint", spade);
    if (!classifier.empty()) flags.set("classifier_checkpoint", classifier);
    if (num != -1) flags.set("num", num);
    if (!format.empty()) flags.set("format", format);
    if (!styles.empty()) flags.set("styles", styles);
    auto job = brainspade::app::resolve_config<brainspade::PairSampleJob>(flags);
    auto sh = brainspade::parse_shard(shard);
    brainspade::start_run(job.run, brainspade::dump_config(job), "sample.log");
    brainspade::run_pair_sampling(job, sh);
  });
});
}  // namespace cmd_sample
