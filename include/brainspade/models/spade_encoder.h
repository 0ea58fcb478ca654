#pragma once
/// Style encoder of the SPADE VAE-GAN (paper section 2.2 "Image generator": E_s; authors'
/// image_generator/models/networks/encoder.py ConvEncoder, after NVlabs/SPADE).
///
/// num_layers × [conv 3×3 stride 2 pad 1 (spectral norm, no bias) → InstanceNorm(affine false)], LeakyReLU(0.2)
/// after each, widths ndf·{1, 2, 4, 8, 8, 8, ...}; flatten; fc_mu and fc_var → z_dim.
/// Difference from the authors: the image is NOT resized to 256×256. The fc input size is computed from
/// (height, width): each layer maps n → floor((n − 1)/2) + 1, so 192×256 with 6 layers ends at 3×4×8ndf = 6144
/// features (authors: 4×4×512 = 8192 after the resize). Weights of fc_mu/fc_var therefore differ in shape
/// from the authors' for 192×256 inputs; all convolutions are identical.
#include <optional>
#include <string>

#include <torch/torch.h>

#include "brainspade/core/config.h"
#include "brainspade/nn/spectral_norm.h"

namespace brainspade {

/// Settings of the style encoder (config section "encoder").
struct ConvEncoderOptions {
  int64_t in_channels = 1;
  int64_t ndf = 64;        ///< base width (authors: ndf = ngf = 64)
  int64_t z_dim = 256;
  int64_t num_layers = 6;  ///< stride-2 convolutions (authors: 6 at 256×256 → 4×4)
  int64_t height = 192;    ///< input height the fc layers are sized for
  int64_t width = 256;     ///< input width
  bool spectral = true;    ///< spectral norm on the convolutions (norm_E = spectralinstance)
  void visit(ConfigVisitor& v);
  void validate() const;
  /// Spatial size after all layers: {h, w}.
  std::pair<int64_t, int64_t> final_size() const;
  /// Channels of layer i (0-based): ndf·min(2^i, 8).
  int64_t layer_channels(int64_t i) const;
};

/// Result of encoding a batch of style images.
struct EncoderOutput {
  torch::Tensor mu;      ///< [B, z_dim]
  torch::Tensor logvar;  ///< [B, z_dim]
  torch::Tensor z;       ///< [B, z_dim] = mu + eps·exp(0.5·logvar)
};

/// z = mu + eps·exp(0.5·logvar), eps ~ N(0, I) drawn from `generator` (the default one when absent).
/// eps is drawn on the generator's device and moved to mu's device, so a CPU generator drives CUDA runs.
torch::Tensor reparameterise(const torch::Tensor& mu, const torch::Tensor& logvar,
                             std::optional<torch::Generator> generator = std::nullopt);

class ConvEncoderImpl : public torch::nn::Module {
 public:
  explicit ConvEncoderImpl(ConvEncoderOptions options);
  /// x: [B, in_channels, height, width] → {mu, logvar, z}; z uses `generator` (or the default one).
  EncoderOutput forward(const torch::Tensor& x, std::optional<torch::Generator> generator = std::nullopt);
  /// Only the posterior parameters, no sampling: {mu, logvar, z = undefined}.
  EncoderOutput encode(const torch::Tensor& x);
  const ConvEncoderOptions& options() const { return options_; }

  /// layer1 ... layerN, each Sequential(conv, InstanceNorm2d) as in the authors' state dict ("layer1.0.weight_orig").
  std::vector<torch::nn::Sequential> layers;
  torch::nn::Linear fc_mu{nullptr}, fc_var{nullptr};

 private:
  ConvEncoderOptions options_;
};
TORCH_MODULE(ConvEncoder);

}  // namespace brainspade
