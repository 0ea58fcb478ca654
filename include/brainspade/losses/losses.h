#pragma once
/// Losses of the label generator: KL of the VAE posterior, adversarial (PatchGAN) and the diffusion loss.
#include <string>

#include <torch/torch.h>

#include "brainspade/models/autoencoder_kl.h"

namespace brainspade {

/// KL(q(z|x) ‖ N(0, I)) = 0.5·Σ_{C,H,W}(μ² + σ² − log σ² − 1), mean over the batch (brainSPADE's VAE,
/// weight 1e-6 in the authors' training).
torch::Tensor loss_kl(const Posterior& posterior);

/// Which side of the GAN game a logits map is scored for.
enum class GanTarget { Real, Fake };

/// Patch adversarial loss on a logits map (MONAI `PatchAdversarialLoss` criteria):
///   least_squares: mean (D − 1)² for Real, mean D² for Fake (LSGAN, Mao et al. 2017; the authors' choice);
///   bce:           binary cross-entropy with logits against 1 / 0;
///   hinge:         discriminator: mean relu(1 − D) (Real), mean relu(1 + D) (Fake);
///                  generator (for_discriminator false): −mean D (target must be Real).
/// The generator's loss is loss_adversarial(D(fake), Real, false); the discriminator's is the average of
/// loss_adversarial(D(real), Real, true) and loss_adversarial(D(fake), Fake, true).
torch::Tensor loss_adversarial(const torch::Tensor& logits, GanTarget target, bool for_discriminator,
                               const std::string& criterion = "least_squares");

/// Diffusion loss between the network output and its target: "l1" mean |a − b| (the released brainSPADE
/// LDM) or "l2" mean (a − b)². With `weight` (broadcastable to the inputs, e.g. [B, 1, h, w]) each element's error is
/// multiplied by it before the mean.
torch::Tensor loss_diffusion(const torch::Tensor& prediction, const torch::Tensor& target, const std::string& kind = "l1",
                             const torch::Tensor& weight = {});

/// Soft Dice loss of probabilities `probs` against a soft (partial-volume) `target`, both [B, C, H, W], every channel
/// counted (MONAI DiceLoss, include_background, batch false): per sample and channel
/// 1 − (2·Σ p·t + smooth) / (Σ p + Σ t + smooth), mean over samples and channels.
torch::Tensor loss_soft_dice(const torch::Tensor& probs, const torch::Tensor& target, double smooth = 1e-4);

/// Generalised Dice loss (Crum et al. 2006; MONAI GeneralizedDiceLoss, square weights, batch false): per sample
/// w_c = 1 / (Σ t_c)², 1 − (2·Σ_c w_c Σ p·t + smooth) / (Σ_c w_c Σ (p + t) + smooth), mean over samples. A channel
/// absent from a sample (Σ t_c = 0) takes the largest finite weight of that sample, as MONAI does. Rare tissues weigh
/// as much as common ones: what keeps thin sulcal CSF in the label VAE's reconstruction.
/// `absent_max` = false leaves a tissue absent from a sample out of that sample's sum instead (weight 0): with lesion
/// channels absent from the lesion-free third of the slices, MONAI's rule makes every lesion pixel predicted there
/// cost the largest weight, while a large lesion (edema) present elsewhere gets a small one.
torch::Tensor loss_generalized_dice(const torch::Tensor& probs, const torch::Tensor& target, double smooth = 1e-4,
                                    bool absent_max = true);

/// Cross-entropy of per-tissue `logits` against a soft (partial-volume) `target`, both [B, C, H, W]:
/// mean over pixels of −Σ_c t_c · log softmax(logits)_c (PyTorch's cross_entropy with probability targets). Its
/// gradient on a logit is softmax − t, whatever the softmax: a tissue the Dice terms have pushed to probability ~0
/// everywhere still gets a full-sized gradient where the target holds it (nnU-Net trains Dice + CE for this reason).
torch::Tensor loss_soft_cross_entropy(const torch::Tensor& logits, const torch::Tensor& target);

}  // namespace brainspade
