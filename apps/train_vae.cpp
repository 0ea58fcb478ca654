// brainspade train vae --config FILE [--resume]: the label VAE (library: training/train_vae.h).
#include "app.h"
#include "brainspade/core/distributed.h"
#include "brainspade/training/train_vae.h"

namespace cmd_train_vae {
brainspade::app::CommonFlags flags;
bool resume = false;
brainspade::app::Registrar reg("20-train-vae", [](CLI::App& root) {
  auto* cmd = brainspade::app::group(root, "train", "train one stage from a YAML config")
                  ->add_subcommand("vae", "spatial VAE on partial-volume label maps (label generator, stage 1)");
  brainspade::app::add_common_flags(cmd, flags);
  cmd->add_flag("--resume", resume, "continue from <out>/checkpoints/last.ckpt");
  cmd->callback([] {
    auto cfg = brainspade::app::resolve_config<brainspade::VAETrainConfig>(flags);
    brainspade::start_training_run(cfg.run, brainspade::dump_config(cfg), "train_vae.log");
    brainspade::train_vae(cfg, resume);
  });
});
}  // namespace cmd_train_vae
