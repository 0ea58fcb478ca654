#pragma once
/// Multiscale PatchGAN discriminator of the SPADE VAE-GAN (paper section 2.2: "an adversarial Hinge loss based on a
/// Patch-GAN discriminator"; authors' image_generator/models/networks/discriminator.py, after NVlabs/SPADE).
///
/// num_D NLayerDiscriminators see the input at full, 1/2, 1/4 ... resolution (avg_pool2d between scales:
/// kernel 4 in brainSPADE, 3 in NVlabs; stride 2, pad 1, count_include_pad false). Each one:
///   model0: conv k4 s2 p2 → LReLU(0.2)                           (plain conv with bias)
///   model1..model{n-1}: [conv k4 (s2, last s1) p2 + SN, InstanceNorm] → LReLU(0.2), width ndf·2^i capped at 512
///   model{n}: conv k4 s1 p2 → 1 channel (logits, plain)
/// and returns every intermediate output (the last is the patch logits) for the feature-matching loss.
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"
#include "brainspade/nn/spectral_norm.h"

namespace brainspade {

/// Settings of the multiscale discriminator (config section "discriminator").
struct MultiscaleDiscriminatorOptions {
  int64_t label_channels = 6;   ///< label channels (one-hot classes or PV channels)
  int64_t image_channels = 1;
  int64_t ndf = 64;
  int64_t num_layers = 4;   ///< n_layers_D
  int64_t num_d = 2;      ///< scales
  int64_t downsample_kernel = 4;  ///< avg-pool kernel between scales (brainSPADE 4, NVlabs 3)
  std::string label_input = "onehot";  ///< onehot: one-hot(argmax PV) | pv: the PV map as it is
  bool spectral = true;   ///< spectral norm on the middle convolutions (norm_D = spectralinstance)
  void visit(ConfigVisitor& v);
  void validate() const;
};

/// Per scale, the outputs of model0 ... model{n}; features[s].back() are scale s's logits [B, 1, h, w].
using DiscriminatorFeatures = std::vector<std::vector<torch::Tensor>>;

/// conv (spectral or plain, no bias) followed by InstanceNorm2d(affine false), registered as "0" and "1" so the
/// keys match the authors' nn.Sequential(conv, norm) ("model1.0.0.weight_orig").
class ConvInstanceNormImpl : public torch::nn::Module {
 public:
  ConvInstanceNormImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, bool spectral);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::AnyModule conv;
  torch::nn::InstanceNorm2d norm{nullptr};
};
TORCH_MODULE(ConvInstanceNorm);

/// One PatchGAN at one scale.
class NLayerDiscriminatorImpl : public torch::nn::Module {
 public:
  NLayerDiscriminatorImpl(int64_t input_nc, int64_t ndf, int64_t num_layers, bool spectral);
  /// x: [B, input_nc, H, W] → outputs of model0 ... model{num_layers}.
  std::vector<torch::Tensor> forward(const torch::Tensor& x);
  std::vector<torch::nn::Sequential> models;
};
TORCH_MODULE(NLayerDiscriminator);

class MultiscaleDiscriminatorImpl : public torch::nn::Module {
 public:
  explicit MultiscaleDiscriminatorImpl(MultiscaleDiscriminatorOptions options);
  /// pv: [B, label_channels, H, W] partial-volume (or one-hot) map; image: [B, image_channels, H, W].
  /// Builds the label planes (label_input), concatenates them with the image and runs every scale.
  DiscriminatorFeatures forward(const torch::Tensor& pv, const torch::Tensor& image);
  /// x: [B, label_channels + image_channels, H, W] already concatenated.
  DiscriminatorFeatures forward_input(const torch::Tensor& x);
  /// The label planes this discriminator sees for `pv` (one-hot of argmax, or pv itself).
  torch::Tensor label_planes(const torch::Tensor& pv) const;
  const MultiscaleDiscriminatorOptions& options() const { return options_; }

  std::vector<NLayerDiscriminator> discriminators;  ///< "discriminator_0", "discriminator_1", ...

 private:
  MultiscaleDiscriminatorOptions options_;
};
TORCH_MODULE(MultiscaleDiscriminator);

/// One-hot encoding of argmax over channels: [B, C, H, W] → [B, C, H, W] of 0/1 (authors' discriminator input).
torch::Tensor one_hot_argmax(const torch::Tensor& pv);

}  // namespace brainspade
