// brainspade train ldm --config FILE [--resume]: latent diffusion on the frozen VAE (library: training/train_ldm.h).
#include "app.h"
#include "brainspade/core/distributed.h"
#include "brainspade/training/train_ldm.h"

namespace cmd_train_ldm {
brainspade::app::CommonFlags flags;
bool resume = false;
brainspade::app::Registrar reg("21-train-ldm", [](CLI::App& root) {
  auto* cmd = brainspade::app::group(root, "train", "train one stage from a YAML config")
                  ->add_subcommand("ldm", "latent diffusion U-Net on VAE latents (label generator, stage 2)");
  brainspade::app::add_common_flags(cmd, flags);
  cmd->add_flag("--resume", resume, "continue from <out>/checkpoints/last.ckpt");
  cmd->callback([] {
    auto cfg = brainspade::app::resolve_config<brainspade::LDMTrainConfig>(flags);
    brainspade::start_training_run(cfg.run, brainspade::dump_config(cfg), "train_ldm.log");
    brainspade::train_ldm(cfg, resume);
  });
});
}  // namespace cmd_train_ldm
