#pragma once
/// Losses of the brainSPADE image generator (paper section 2.2 "Image generator" and eq. 1; Appendix A.1 weights;
/// authors' image_generator/models/{pix2pix_model.py, networks/loss.py}, after NVlabs/SPADE).
/// Every function returns an unweighted loss except where a weight is an argument; the trainer applies
/// lambda_feat, lambda_kld, ... (see docs/image-generator.md for the paper's and the authors' numbers).
#include <vector>

#include <torch/torch.h>

#include "brainspade/models/modality_classifier.h"
#include "brainspade/models/spade_discriminator.h"

namespace brainspade {

/// Hinge loss of the discriminator on real inputs: mean over scales of −mean(min(D(x) − 1, 0)).
torch::Tensor loss_gan_d_real(const DiscriminatorFeatures& real);
/// Hinge loss of the discriminator on generated inputs: mean over scales of −mean(min(−D(x) − 1, 0)).
torch::Tensor loss_gan_d_fake(const DiscriminatorFeatures& fake);
/// Hinge (adversarial) loss of the generator: mean over scales of −mean(D(G(z))).
torch::Tensor loss_gan_g(const DiscriminatorFeatures& fake);

/// Feature matching (pix2pixHD / SPADE): Σ_scales Σ_{layers except logits} L1(fake, real.detach()) / num_D.
torch::Tensor loss_feature_matching(const DiscriminatorFeatures& fake,
                                    const DiscriminatorFeatures& real);

/// KL divergence of N(mu, exp(logvar)) from N(0, I) in SPADE's form: −0.5·Σ(1 + logvar − mu² − exp(logvar)),
/// summed over batch and dimensions (not averaged). mu, logvar: [B, z_dim].
torch::Tensor loss_kld(const torch::Tensor& mu, const torch::Tensor& logvar);

/// Parts of L_mod,dat (paper eq. 1).
struct ModalityDatasetLoss {
  torch::Tensor total;     ///< alpha_mod·modality + alpha_dat·dataset
  torch::Tensor modality;  ///< BCE-with-logits on one-hot modality targets (mean)
  torch::Tensor dataset;   ///< BCE-with-logits on one-hot dataset targets (mean)
};
/// modality, dataset: class indices [B] (int64). Targets are one-hot, as in the authors' code.
ModalityDatasetLoss loss_modality_dataset(const ClassifierOutput& out, const torch::Tensor& modality,
                                          const torch::Tensor& dataset, double alpha_mod, double alpha_dat);

/// Contrastive style loss (paper section 2.2, after SimCLR): mean over the batch of 1 − cos(z, z_aug),
/// z = E_s(i), z_aug = E_s(T(i)). z, z_aug: [B, z_dim].
torch::Tensor loss_contrastive_style(const torch::Tensor& z, const torch::Tensor& z_aug);

}  // namespace brainspade
