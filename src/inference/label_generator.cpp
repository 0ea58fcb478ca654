#include "brainspade/inference/label_generator.h"

#include "brainspade/data/slice_dataset.h"

#include "brainspade/core/checkpoint.h"
#include "brainspade/core/error.h"

namespace brainspade {

void ConditioningOptions::visit(ConfigVisitor& v) {
  v("lesions", lesions, "lesion flags in the condition vector, names from the dataset's lesion_names");
  v("slice_position", slice_position, "append the relative slice position (paper: slice_no = index/256)");
  v("cfg_dropout", cfg_dropout, "probability of training a row with the null condition (classifier-free guidance)",
    Bounds::unit());
  v.choice("cfg_drop", cfg_drop, {"all", "lesions"},
           "what the CFG dropout nulls and guidance's unconditional branch lacks: the whole condition, or only the "
           "lesion flags (the slice position stays)");
}

torch::Tensor ConditioningOptions::unconditional(const torch::Tensor& cond, double null_value) const {
  TORCH_CHECK(cond.dim() == 2 && cond.size(1) == dim(), "unconditional: cond must be [B, ", dim(), "]; got ",
              cond.sizes());
  if (cfg_drop == "all") return torch::full_like(cond, null_value);
  auto u = cond.clone();
  u.slice(1, 0, static_cast<int64_t>(lesions.size())).fill_(null_value);  // the flags come first
  return u;
}
namespace {
// A stage trained with an EMA stores the averaged weights as "ema.<name>": later stages use those.
void use_ema_weights(const Checkpoint& ck, torch::nn::Module& net) {
  auto params = net.named_parameters();
  if (params.is_empty() || !ck.has("ema." + params.keys().front())) return;
  torch::NoGradGuard no_grad;
  for (auto& p : params) p.value().copy_(ck.tensor("ema." + p.key()));
}
}  // namespace

torch::Tensor conditions_of(const SliceDataset& data, const ConditioningOptions& c) {
  std::vector<torch::Tensor> cols;
  for (const auto& name : c.lesions) {
    auto it = std::find(data.lesion_names.begin(), data.lesion_names.end(), name);
    if (it == data.lesion_names.end()) {
      std::string have;
      for (const auto& l : data.lesion_names) have += (have.empty() ? "" : ", ") + l;
      throw input_error("config key 'conditioning.lesions': '", name, "' is not a lesion of the dataset (it has: ",
                        have.empty() ? "none" : have, ")");
    }
    cols.push_back(data.lesion_flags.select(1, it - data.lesion_names.begin()).to(torch::kFloat));
  }
  if (c.slice_position) cols.push_back(data.slice_position.to(torch::kFloat));
  if (cols.empty()) return torch::zeros({data.size(), 0});
  return torch::stack(cols, 1);  // [N, K]
}

AutoencoderKL load_vae(const std::string& path, torch::Device device, std::vector<std::string>* channel_names) {
  auto ck = Checkpoint::load(path);
  check_checkpoint_stage(ck, "vae");
  auto opts = load_section<AutoencoderKLOptions>("vae", ck.get_string("model_config"), path);
  AutoencoderKL vae(opts);
  ck.load_module("vae", *vae, "VAE checkpoint " + path);
  use_ema_weights(ck, *vae);  // trained with optim.ema_decay: the averaged weights
  vae->to(device);
  vae->eval();
  if (channel_names) *channel_names = ck.get_strings("channel_names");
  return vae;
}

LabelGenerator load_label_generator(const std::string& ldm_path, const std::string& vae_path, torch::Device device) {
  auto ck = Checkpoint::load(ldm_path);
  check_checkpoint_stage(ck, "ldm");
  LabelGenerator g;
  std::string vpath = vae_path.empty() ? ck.get_string("vae_checkpoint") : vae_path;
  auto vck = Checkpoint::load(vpath);
  check_checkpoint_stage(vck, "vae");
  // Both read through today's keys: a VAE or LDM checkpoint written before a key was added or renamed still pairs.
  const std::string vae_given =
      dump_section("vae", load_section<AutoencoderKLOptions>("vae", vck.get_string("model_config"), vpath));
  const std::string vae_trained_on =
      dump_section("vae", load_section<AutoencoderKLOptions>("vae", ck.get_string("vae_model_config"), ldm_path));
  if (vae_given != vae_trained_on) {
    throw input_error("VAE ", vpath, " is not the VAE that LDM ", ldm_path,
                      " was trained on (their vae configs differ, LDM's -> given: ",
                      describe_config_differences(vae_trained_on, vae_given), ")");
  }
  g.vae = load_vae(vpath, device, &g.channel_names);
  auto unet_opts = load_section<DiffusionUNetOptions>("unet", ck.get_string("model_config"), ldm_path);
  g.unet = DiffusionUNet(unet_opts);
  ck.load_module("unet", *g.unet, "LDM checkpoint " + ldm_path);
  use_ema_weights(ck, *g.unet);  // sample with the averaged weights
  g.unet->to(device);
  g.unet->eval();
  g.scheduler = load_section<DDPMSchedulerOptions>("scheduler", ck.get_string("scheduler_config"), ldm_path);
  g.conditioning = load_section<ConditioningOptions>("conditioning", ck.get_string("conditioning_config"), ldm_path);
  g.latent_scale = ck.get_double("latent_scale");
  auto shape = ck.tensor("latent_shape");
  g.latent_shape = {shape[0].item<int64_t>(), shape[1].item<int64_t>(), shape[2].item<int64_t>()};
  return g;
}

}  // namespace brainspade
