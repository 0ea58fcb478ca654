#pragma once
/// PatchGAN discriminator of pix2pix (Isola et al. 2017 §3.2.2; `NLayerDiscriminator` in
/// junyanz/pytorch-CycleGAN-and-pix2pix), as used by brainSPADE to train the label VAE:
///   conv4 s2 p1 (in → ndf) → LReLU(0.2) → for n = 1..num_layers-1: conv4 s2 p1 (→ ndf·min(2^n, 8)) → norm → LReLU
///   → conv4 s1 p1 (→ ndf·min(2^num_layers, 8)) → norm → LReLU → conv4 s1 p1 (→ 1 logit per patch).
/// Convolutions followed by BatchNorm have no bias (pix2pix `use_bias = norm is InstanceNorm`).
/// Weights are initialised N(0, 0.02), norm scales N(1, 0.02), biases 0 (pix2pix `init_weights('normal')`).
#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "brainspade/core/config.h"

namespace brainspade {

struct PatchDiscriminatorOptions {
  int64_t in_channels = 6;
  int64_t ndf = 64;       ///< filters of the first layer
  int64_t num_layers = 3;   ///< stride-2 layers (receptive field 70x70 for 3)
  std::string norm = "batch";  ///< batch | instance | none
  void visit(ConfigVisitor& v);
};

class PatchDiscriminatorImpl : public torch::nn::Module {
 public:
  explicit PatchDiscriminatorImpl(const PatchDiscriminatorOptions& options = {});
  /// x: [B, in_channels, H, W] → logits [B, 1, H', W'] (192x256 with 3 layers → [B, 1, 22, 30]).
  torch::Tensor forward(const torch::Tensor& x);

  PatchDiscriminatorOptions options;
  torch::nn::Sequential model{nullptr};  ///< model.{i} as in pix2pix's state dict
};
TORCH_MODULE(PatchDiscriminator);

}  // namespace brainspade
