#include "brainspade/losses/spade_losses.h"

namespace brainspade {

namespace {
void check_features(const DiscriminatorFeatures& f, const char* what) {
  TORCH_CHECK(!f.empty(), what, ": no discriminator scales");
  for (const auto& scale : f) TORCH_CHECK(!scale.empty(), what, ": a discriminator scale has no outputs");
}

// Mean over scales of `per_scale(logits)`.
template <class Fn>
torch::Tensor mean_over_scales(const DiscriminatorFeatures& f, Fn per_scale) {
  torch::Tensor total;
  for (const auto& scale : f) {
    torch::Tensor l = per_scale(scale.back());
    total = total.defined() ? total + l : l;
  }
  return total / static_cast<double>(f.size());
}
}  // namespace

torch::Tensor loss_gan_d_real(const DiscriminatorFeatures& real) {
  check_features(real, "loss_gan_d_real");
  return mean_over_scales(real, [](const torch::Tensor& d) { return -torch::clamp_max(d - 1, 0).mean(); });
}

torch::Tensor loss_gan_d_fake(const DiscriminatorFeatures& fake) {
  check_features(fake, "loss_gan_d_fake");
  return mean_over_scales(fake, [](const torch::Tensor& d) { return -torch::clamp_max(-d - 1, 0).mean(); });
}

torch::Tensor loss_gan_g(const DiscriminatorFeatures& fake) {
  check_features(fake, "loss_gan_g");
  return mean_over_scales(fake, [](const torch::Tensor& d) { return -d.mean(); });
}

torch::Tensor loss_feature_matching(const DiscriminatorFeatures& fake,
                                    const DiscriminatorFeatures& real) {
  check_features(fake, "loss_feature_matching");
  TORCH_CHECK(fake.size() == real.size(), "loss_feature_matching: ", fake.size(), " fake scales vs ", real.size(),
              " real scales");
  torch::Tensor total = torch::zeros({}, fake[0].back().options());
  for (size_t s = 0; s < fake.size(); ++s) {
    TORCH_CHECK(fake[s].size() == real[s].size(), "loss_feature_matching: scale ", s, " has ", fake[s].size(),
                " fake vs ", real[s].size(), " real features");
    for (size_t j = 0; j + 1 < fake[s].size(); ++j) total = total + torch::l1_loss(fake[s][j], real[s][j].detach());
  }
  return total / static_cast<double>(fake.size());
}

torch::Tensor loss_kld(const torch::Tensor& mu, const torch::Tensor& logvar) {
  TORCH_CHECK(mu.sizes() == logvar.sizes(), "loss_kld: mu ", mu.sizes(), " vs logvar ", logvar.sizes());
  return -0.5 * torch::sum(1 + logvar - mu.pow(2) - logvar.exp());
}

ModalityDatasetLoss loss_modality_dataset(const ClassifierOutput& out, const torch::Tensor& modality,
                                          const torch::Tensor& dataset, double alpha_mod, double alpha_dat) {
  const int64_t B = out.modality_logits.size(0);
  TORCH_CHECK(modality.dim() == 1 && modality.size(0) == B && dataset.dim() == 1 && dataset.size(0) == B,
              "loss_modality_dataset expects class indices [", B, "], got ", modality.sizes(), " and ",
              dataset.sizes());
  auto one_hot = [](const torch::Tensor& idx, const torch::Tensor& logits) {
    return torch::one_hot(idx.to(logits.device()).to(torch::kLong), logits.size(1)).to(logits.dtype());
  };
  ModalityDatasetLoss l;
  l.modality = torch::binary_cross_entropy_with_logits(out.modality_logits, one_hot(modality, out.modality_logits));
  l.dataset = torch::binary_cross_entropy_with_logits(out.dataset_logits, one_hot(dataset, out.dataset_logits));
  l.total = alpha_mod * l.modality + alpha_dat * l.dataset;
  return l;
}

torch::Tensor loss_contrastive_style(const torch::Tensor& z, const torch::Tensor& z_aug) {
  TORCH_CHECK(z.dim() == 2 && z.sizes() == z_aug.sizes(), "loss_contrastive_style expects two [B, z_dim], got ",
              z.sizes(), " and ", z_aug.sizes());
  return (1 - torch::cosine_similarity(z, z_aug, 1, 1e-8)).mean();
}

}  // namespace brainspade
