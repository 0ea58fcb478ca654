#pragma once
/// The label autoencoder: a KL-regularised spatial VAE on partial-volume maps.
///
/// Follows brainSPADE `condldm_models/ae_kl_v1.py` (Fernandez et al. 2022 §2.1; the structure of the
/// taming/CompVis AutoencoderKL and of MONAI GenerativeModels' AutoencoderKL):
///   encoder: conv_in → per level i: num_res_blocks ResBlocks (→ channels[i]) [+ asymmetric-pad conv
///            Downsample except at the last level] → mid (block_1, attn_1, block_2) → GN → conv3 → latent;
///   quant_conv_mu / quant_conv_log_sigma (1x1) give μ and log σ² (clamped to [logvar_min, logvar_max]);
///   decoder: post_quant_conv (1x1) → conv_in → mid → per level (deepest first) num_res_blocks ResBlocks
///            [+ nearest x2 + conv Upsample except at level 0] → GN → conv3 → in_channels (raw output).
/// Like the authors' code (and MONAI) there is no SiLU between the final GroupNorm and conv of either tail.
/// 192x256 input with 3 levels → [B, latent_channels, 48, 64] latent.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"
#include "brainspade/nn/blocks.h"

namespace brainspade {

struct AutoencoderKLOptions {
  int64_t in_channels = 6;                     ///< PV channels (6 healthy tissues; 9 with lesions)
  std::vector<int64_t> channels{64, 128, 256}; ///< width per level; len-1 downsamplings
  int64_t num_res_blocks = 2;                  ///< per level, encoder and decoder alike
  int64_t latent_channels = 3;                 ///< z channels (= embed_dim)
  bool mid_attention = true;                   ///< AttnBlock in the mid blocks
  int64_t norm_groups = 32;
  double norm_eps = 1e-6;
  double logvar_min = -30.0;
  double logvar_max = 20.0;
  /// What decode() returns: "raw" (the decoder's output, trained by L1 to be the PV map; the authors' default) or
  /// "softmax" over channels (a VAE trained with loss.reconstruction: dice, whose raw output is per-tissue logits).
  std::string output = "raw";
  void visit(ConfigVisitor& v);
};

/// Diagonal Gaussian posterior q(z|x).
struct Posterior {
  torch::Tensor mean;    ///< [B, Z, h, w]
  torch::Tensor logvar;  ///< [B, Z, h, w], already clamped
  torch::Tensor std() const { return torch::exp(0.5 * logvar); }
  /// mean + std·ε, ε ~ N(0, I) drawn from `generator` (the global CPU/CUDA generator when absent).
  torch::Tensor sample(std::optional<torch::Generator> generator = std::nullopt) const;
  /// 0.5·Σ_{C,H,W}(μ² + σ² − log σ² − 1), averaged over the batch (scalar).
  torch::Tensor kl() const;
};

struct AutoencoderOutput {
  torch::Tensor reconstruction;  ///< [B, in_channels, H, W], decoded from a posterior sample
  Posterior posterior;
};

/// One resolution level: `block` (ModuleList of ResBlocks) and an optional `downsample` / `upsample`.
class AutoencoderLevelImpl : public torch::nn::Module {
 public:
  torch::nn::ModuleList block{nullptr};
  nn::Downsample downsample{nullptr};
  nn::Upsample upsample{nullptr};
};
TORCH_MODULE(AutoencoderLevel);

/// Mid block: block_1 → [attn_1] → block_2.
class AutoencoderMidImpl : public torch::nn::Module {
 public:
  AutoencoderMidImpl(int64_t channels, bool attention, int64_t groups, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  nn::ResBlock block_1{nullptr}, block_2{nullptr};
  nn::AttnBlock attn_1{nullptr};
};
TORCH_MODULE(AutoencoderMid);

class VAEEncoderImpl : public torch::nn::Module {
 public:
  explicit VAEEncoderImpl(const AutoencoderKLOptions& o);
  torch::Tensor forward(const torch::Tensor& x);  // [B, in, H, W] → [B, Z, H/2^(L-1), W/2^(L-1)]
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down{nullptr};
  AutoencoderMid mid{nullptr};
  torch::nn::GroupNorm norm_out{nullptr};
};
TORCH_MODULE(VAEEncoder);

class VAEDecoderImpl : public torch::nn::Module {
 public:
  explicit VAEDecoderImpl(const AutoencoderKLOptions& o);
  torch::Tensor forward(const torch::Tensor& z);  // [B, Z, h, w] → [B, in, h·2^(L-1), w·2^(L-1)]
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList up{nullptr};  ///< up.{i} is level i (taming order); applied from the deepest level
  AutoencoderMid mid{nullptr};
  torch::nn::GroupNorm norm_out{nullptr};
};
TORCH_MODULE(VAEDecoder);

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  explicit AutoencoderKLImpl(const AutoencoderKLOptions& options = {});
  /// x: [B, in_channels, H, W] (H, W divisible by 2^(levels-1)) → posterior over [B, Z, h, w].
  Posterior encode(const torch::Tensor& x);
  /// z: [B, latent_channels, h, w] → [B, in_channels, h·2^(L-1), w·2^(L-1)]: the PV map (options.output applied).
  torch::Tensor decode(const torch::Tensor& z);
  /// The decoder's raw output before options.output (what the reconstruction losses of training see).
  torch::Tensor decode_raw(const torch::Tensor& z);
  /// encode → sample (from `generator`, or the global one) → decode.
  AutoencoderOutput forward(const torch::Tensor& x, std::optional<torch::Generator> generator = std::nullopt);
  /// Spatial downsampling factor 2^(levels-1) (4 for the paper's 3 levels).
  int64_t downsampling_factor() const;

  AutoencoderKLOptions options;
  VAEEncoder encoder{nullptr};
  VAEDecoder decoder{nullptr};
  torch::nn::Conv2d quant_conv_mu{nullptr}, quant_conv_log_sigma{nullptr}, post_quant_conv{nullptr};
};
TORCH_MODULE(AutoencoderKL);

}  // namespace brainspade
