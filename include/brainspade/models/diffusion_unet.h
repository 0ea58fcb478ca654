#pragma once
/// The latent diffusion U-Net that predicts ε (or v, or x0) from a noisy latent, a timestep and an optional
/// conditioning vector.
///
/// Follows the CompVis `openaimodel.UNetModel` used by brainSPADE (`unet_v2_conditioned.py`;
/// Fernandez et al. 2022 §2.1; Rombach et al. 2022 §3.3; Dhariwal & Nichol 2021 appendix):
///   time_embed: sinusoidal(model_channels) → Linear → SiLU → Linear (4·model_channels);
///   input_blocks.0: conv3 in → model_channels; per level l: num_res_blocks × [ResBlock (+ attention if
///   l ∈ attention_levels)], then (except at the last level) a down ResBlock (resblock_updown) or a conv
///   Downsample; middle_block: ResBlock, attention, ResBlock; output_blocks mirror the input blocks with
///   num_res_blocks+1 blocks per level, each ResBlock taking the concatenated skip; out: GN → SiLU → conv3.
///   Zero-initialised: every ResBlock's conv2, every attention's proj_out, the final conv.
/// Attention is a `SpatialTransformer` (self- then cross-attention to the conditioning, depth
/// transformer_depth, GEGLU feed-forward) when cross-attention is on, else a multi-head `AttnBlock`.
///
/// Conditioning (a vector cond [B, K] per sample, e.g. [tumour, edema, slice_no]):
///   none      – cond must be undefined;
///   concat    – cond broadcast to K constant channels [B, K, H, W] and concatenated to x (brainSPADE v1);
///   crossattn – cond used as a one-token context [B, 1, K] (brainSPADE v0);
///   hybrid    – both (brainSPADE v2, the released model: in_channels 3 + 3 concat, context_dim 3).
/// With `cond_embedding` (not in the authors' models) cond also passes through an MLP `label_emb`
/// (Linear K → 4·mc, SiLU, Linear) added to the timestep embedding, as CompVis' `num_classes: sequential` and ADM's
/// class embedding: the condition then reaches every ResBlock, not only the input conv and the attention layers.
/// A one-token cross-attention and constant concat planes act on the network as per-sample biases at a few places.
/// On the lesion flags it changed nothing measurable (docs/label-generator.md, "The lesion LDM, session 16").
///
/// Classifier-free guidance convention (the authors trained without it; MONAI's inferer uses the same):
/// the unconditional input is cond filled with `null_cond_value` (default −1, outside the [0, 1] range of
/// flags and slice positions). A training loop drops conditioning by replacing rows of cond with
/// null_cond(); `forward_guided` combines ε̂_uncond + s·(ε̂_cond − ε̂_uncond).
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"
#include "brainspade/nn/blocks.h"

namespace brainspade {

struct DiffusionUNetOptions {
  int64_t in_channels = 3;   ///< latent channels (conditioning channels are added on top for concat/hybrid)
  int64_t out_channels = 3;
  int64_t model_channels = 256;
  std::vector<int64_t> channel_mult{1, 2, 3, 4};
  int64_t num_res_blocks = 2;
  /// Level indices (0 = full latent resolution) that get attention after each ResBlock. The authors'
  /// attention_resolutions [8, 4, 2] (downsampling factors) are levels {1, 2, 3}.
  std::vector<int64_t> attention_levels{1, 2, 3};
  bool mid_attention = true;  ///< attention in the middle block (always on in CompVis)
  int64_t num_heads = 1;      ///< heads; per-head width = channels / num_heads
  int64_t transformer_depth = 1;
  std::string conditioning = "hybrid";  ///< none | concat | crossattn | hybrid
  int64_t cond_dim = 3;                 ///< K, length of the conditioning vector (ignored for none)
  double null_cond_value = -1.0;        ///< fill value of the unconditional input (classifier-free guidance)
  bool cond_embedding = false;          ///< cond also enters the timestep embedding through `label_emb`
  bool resblock_updown = true;  ///< ResBlock avg-pool down / nearest up instead of conv resampling
  double dropout = 0.0;
  int64_t norm_groups = 32;
  double norm_eps = 1e-6;
  void visit(ConfigVisitor& v);

  /// Constant channels concatenated to x: cond_dim for concat/hybrid, else 0.
  int64_t concat_channels() const;
  /// Width of the cross-attention context: cond_dim for crossattn/hybrid, else 0.
  int64_t context_dim() const;
};

/// A sequence of blocks called with (h, emb, context): ResBlocks take emb, attention blocks take context
/// (CompVis `TimestepEmbedSequential`). Children are named 0, 1, ... as in the authors' state dict.
class EmbedSequentialImpl : public torch::nn::Module {
 public:
  void append(std::shared_ptr<torch::nn::Module> m);
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& emb, const torch::Tensor& context);
  std::vector<std::shared_ptr<torch::nn::Module>> layers;
};
TORCH_MODULE(EmbedSequential);

class DiffusionUNetImpl : public torch::nn::Module {
 public:
  explicit DiffusionUNetImpl(const DiffusionUNetOptions& options = {});
  /// x: [B, in_channels, H, W] with H, W divisible by 2^(levels-1); t: [B] or scalar timesteps (int64 or
  /// float); cond: [B, cond_dim] (undefined for conditioning "none") → model output [B, out_channels, H, W].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond = {});
  /// The unconditional input: [batch, cond_dim] filled with null_cond_value.
  torch::Tensor null_cond(int64_t batch, torch::Device device = torch::kCPU) const;
  /// Classifier-free guidance: out_u + scale·(out_c − out_u), out_u with `uncond` (default null_cond(): every entry
  /// nulled; a caller that trained with only some entries dropped passes cond with those entries nulled), computed
  /// as one forward pass over 2B. scale 1 is the plain conditional model.
  torch::Tensor forward_guided(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond, double scale,
                               const torch::Tensor& uncond = {});

  DiffusionUNetOptions options;
  torch::nn::Sequential time_embed{nullptr};  ///< time_embed.0 Linear, .1 SiLU, .2 Linear
  torch::nn::Sequential label_emb{nullptr};   ///< with cond_embedding: label_emb.0 Linear, .1 SiLU, .2 Linear
  torch::nn::ModuleList input_blocks{nullptr}, output_blocks{nullptr};
  EmbedSequential middle_block{nullptr};
  torch::nn::Sequential out{nullptr};  ///< out.0 GN, out.1 SiLU, out.2 conv3 (zero-initialised)
};
TORCH_MODULE(DiffusionUNet);

}  // namespace brainspade
