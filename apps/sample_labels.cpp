// brainspade sample labels --ldm CKPT [--vae CKPT] --num N [--real DATASET] --out DIR: label maps from the label
// generator.
#include "app.h"
#include "brainspade/sampling/label_sampler.h"

namespace cmd_sample_labels {
brainspade::app::CommonFlags flags;
std::string ldm, vae, sampler, real;
int64_t num = -1, steps = -1;
double eta = -1, guidance = -1;
brainspade::app::Registrar reg("30-sample-labels", [](CLI::App& root) {
  auto* cmd = brainspade::app::group(root, "sample", "generate synthetic data with trained models")
                  ->add_subcommand("labels", "sample partial-volume label maps (LDM + VAE decode + post-processing)");
  brainspade::app::add_common_flags(cmd, flags, false);
  cmd->add_option("--ldm", ldm, "LDM checkpoint")->required();
  cmd->add_option("--vae", vae, "VAE checkpoint (default: the one the LDM was trained on)");
  cmd->add_option("--num,-n", num, "number of label maps");
  cmd->add_option("--sampler", sampler, "ddpm | ddim | dpmpp_2m | dpmpp_2m_sde");
  cmd->add_option("--steps", steps, "reverse steps");
  cmd->add_option("--eta", eta, "DDIM eta");
  cmd->add_option("--guidance", guidance, "classifier-free guidance scale");
  cmd->add_option("--real", real, "slice dataset (.pt) of real label maps for montage_vs_real.png");
  cmd->callback([] {
    flags.set("ldm_checkpoint", ldm);
    if (!vae.empty()) flags.set("vae_checkpoint", vae);
    if (!real.empty()) flags.set("real_dataset", real);
    if (num != -1) flags.set("num", num);
    if (!sampler.empty()) flags.set("sampler.sampler", sampler);
    if (steps != -1) flags.set("sampler.steps", steps);
    if (eta >= 0) flags.set("sampler.eta", eta);
    if (guidance >= 0) flags.set("sampler.guidance_scale", guidance);
    auto job = brainspade::app::resolve_config<brainspade::LabelSampleJob>(flags);
    brainspade::start_run(job.run, brainspade::dump_config(job), "sample_labels.log");
    brainspade::run_label_sampling(job);
  });
});
}  // namespace cmd_sample_labels
