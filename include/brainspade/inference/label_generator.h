#pragma once
/// The label generator as sampling uses it: a trained VAE and LDM loaded from their checkpoints. Sampling depends on
/// this layer, never on training/ (docs/architecture.md).
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"
#include "brainspade/models/autoencoder_kl.h"
#include "brainspade/models/diffusion_unet.h"
#include "brainspade/schedulers/ddpm_scheduler.h"

namespace brainspade {

/// What the conditioning vector holds, in order: one 0/1 flag per lesion name, then the slice position.
struct ConditioningOptions {
  std::vector<std::string> lesions;  ///< lesion names from the dataset's lesion_names (e.g. [tumour, edema])
  bool slice_position = true;        ///< append the relative slice position in [0, 1]
  double cfg_dropout = 0.0;          ///< probability of replacing a row's condition by the null condition (CFG)
  /// Which entries the CFG dropout nulls, and so what guidance's unconditional branch is: "all" (the null
  /// condition), or "lesions" (only the lesion flags; the slice position stays given, so guidance sharpens the
  /// flags alone).
  std::string cfg_drop = "all";
  void visit(ConfigVisitor& v);
  int64_t dim() const { return static_cast<int64_t>(lesions.size()) + (slice_position ? 1 : 0); }
  /// cond [B, K] with the entries that cfg_drop names set to null_value: the unconditional input of guidance.
  torch::Tensor unconditional(const torch::Tensor& cond, double null_value) const;
};

/// Conditioning vectors [N, K] of dataset rows, in ConditioningOptions order (training and the audit alike);
/// InputError naming a lesion the dataset does not have.
torch::Tensor conditions_of(const struct SliceDataset& data, const ConditioningOptions& c);

/// Loads a VAE checkpoint (stage "vae") with the model options it was trained with; eval mode, on `device`.
AutoencoderKL load_vae(const std::string& path, torch::Device device, std::vector<std::string>* channel_names = nullptr);

/// A trained label generator ready to sample: VAE + U-Net (EMA weights when trained with EMA) + schedule.
struct LabelGenerator {
  AutoencoderKL vae{nullptr};
  DiffusionUNet unet{nullptr};
  DDPMSchedulerOptions scheduler;
  ConditioningOptions conditioning;
  double latent_scale = 1.0;
  std::vector<std::string> channel_names;
  std::vector<int64_t> latent_shape;  ///< [Z, h, w]
};
/// Loads the LDM checkpoint and the VAE it names (or `vae_path` when given); checks that they fit together.
LabelGenerator load_label_generator(const std::string& ldm_path, const std::string& vae_path, torch::Device device);

}  // namespace brainspade
