#pragma once
/// brainSPADE image generator: the SPADE VAE-GAN decoder (paper section 2.2 "Image generator"; authors'
/// image_generator/models/networks/generator.py, following NVlabs/SPADE SPADEGenerator with use_vae).
///
/// z [B, z_dim] → fc → [B, 16·ngf, sh, sw] → head_0, ↑, G_middle_0, (↑ if more|most), G_middle_1,
/// ↑ up_0, ↑ up_1, ↑ up_2, ↑ up_3, (↑ up_4 if most) → LeakyReLU(0.2) → conv_img → 1 channel → activation.
/// ↑ is nearest ×2 upsampling; sh = height / 2^n, sw = width / 2^n with n = 5 (normal), 6 (more), 7 (most),
/// so height and width must both be divisible by 2^n (192×256 with normal → a 6×8 grid).
/// Project extension: "less" (n = 4) drops the ↑ after head_0, so tiny CPU configurations such as 48×64
/// (a 3×4 grid) work; it has no counterpart in the authors' code.
#include <string>

#include <torch/torch.h>

#include "brainspade/core/config.h"
#include "brainspade/nn/spade_norm.h"

namespace brainspade {

/// Settings of the SPADE generator (config section "generator").
struct SPADEGeneratorOptions {
  int64_t label_channels = 6;      ///< partial-volume channels of the semantic map
  int64_t ngf = 64;          ///< base width; the 1024-channel head is 16·ngf
  int64_t z_dim = 256;       ///< style code size
  std::string num_upsampling_layers = "normal";  ///< less (4, project extension) | normal (5) | more (6) | most (7)
  int64_t height = 192;      ///< output height; divisible by 2^n
  int64_t width = 256;       ///< output width; divisible by 2^n
  std::string norm = "batch";                     ///< SPADE parameter-free norm: batch | instance | group
  std::string segmap_interpolation = "nearest";   ///< nearest | bilinear
  std::string output_activation = "leaky_relu";   ///< leaky_relu (z-scored images) | tanh ([-1, 1] images)
  bool spectral = true;      ///< spectral norm on the residual blocks' convolutions
  int64_t spade_hidden = 128;
  void visit(ConfigVisitor& v);
  /// 4, 5, 6 or 7.
  int64_t upsampling_count() const;
  /// Throws InputError for impossible combinations (e.g. height not divisible by 2^n).
  void validate() const;
};

/// The generator network. Submodule names follow NVlabs (fc, head_0, G_middle_0, G_middle_1, up_0..up_4, conv_img).
class SPADEGeneratorImpl : public torch::nn::Module {
 public:
  explicit SPADEGeneratorImpl(SPADEGeneratorOptions options);
  /// seg: [B, label_channels, height, width] partial-volume map; z: [B, z_dim] style code → [B, 1, height, width].
  torch::Tensor forward(const torch::Tensor& seg, const torch::Tensor& z);

  const SPADEGeneratorOptions& options() const { return options_; }
  int64_t grid_height() const { return sh_; }
  int64_t grid_width() const { return sw_; }

  torch::nn::Linear fc{nullptr};
  nn::SPADEResnetBlock head_0{nullptr}, G_middle_0{nullptr}, G_middle_1{nullptr};
  nn::SPADEResnetBlock up_0{nullptr}, up_1{nullptr}, up_2{nullptr}, up_3{nullptr}, up_4{nullptr};
  torch::nn::Conv2d conv_img{nullptr};

 private:
  SPADEGeneratorOptions options_;
  int64_t sh_ = 0, sw_ = 0;
};
TORCH_MODULE(SPADEGenerator);

}  // namespace brainspade
