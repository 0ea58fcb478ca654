#pragma once
/// Building blocks shared by the label VAE and the latent diffusion U-Net.
///
/// Sources (descriptions, not code): the taming-transformers / CompVis latent-diffusion autoencoder
/// (ResnetBlock, AttnBlock, asymmetric Downsample; Rombach et al. 2022, appendix), the CompVis
/// `openaimodel` U-Net (ResBlock with time embedding and up/down resampling, zero-initialised output
/// convolutions; Dhariwal & Nichol 2021) and the CompVis `SpatialTransformer` (self- then cross-attention,
/// GEGLU feed-forward; Rombach et al. 2022 section 3.3). brainSPADE (Fernandez et al. 2022) uses these
/// blocks unchanged; see docs/label-generator.md.
///
/// Submodule names follow the taming/CompVis state dicts (norm1, conv1, temb_proj, nin_shortcut, q, k, v,
/// proj_out, transformer_blocks.0.attn1.to_q, ...), so weights exported from PyTorch load by a key copy.
/// Every attention is written with matmul + softmax (no fused kernels), so the code builds against LibTorch
/// 1.13 and 2.x alike.
#include <cstdint>
#include <optional>
#include <string>

#include <torch/torch.h>

#include "brainspade/core/runtime.h"

namespace brainspade::nn {

/// GroupNorm with affine parameters; 32 groups and eps 1e-6 as in every CompVis block.
/// Throws (TORCH_CHECK) when `channels` is not divisible by `groups`.
torch::nn::GroupNorm make_group_norm(int64_t channels, int64_t groups = 32, double eps = 1e-6);

/// Sinusoidal timestep embedding, CompVis/openaimodel `timestep_embedding` (Vaswani et al. 2017 §3.5 with
/// the [cos, sin] order): freqs_i = exp(-ln(max_period)·i/half), i < half = dim/2; out = [cos(t·f), sin(t·f)],
/// zero-padded by one column when `dim` is odd.
/// t: [B] (int64 or float) → [B, dim] float32.
torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim, double max_period = 10000.0);

/// Plain scaled dot-product attention: softmax(q·kᵀ·scale)·v.
/// q: [N, Lq, D], k: [N, Lk, D], v: [N, Lk, Dv] → [N, Lq, Dv]. Softmax runs in float32.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale);

// ---------------------------------------------------------------------------------------------------------
struct ResBlockOptions {
  ResBlockOptions(int64_t in_channels, int64_t out_channels) : in_channels_(in_channels), out_channels_(out_channels) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  /// Width of the time embedding projected and added after the first conv; 0 = no time embedding.
  TORCH_ARG(int64_t, temb_channels) = 0;
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(int64_t, norm_groups) = 32;
  TORCH_ARG(double, norm_eps) = 1e-6;
  /// Zero-initialise conv2 (CompVis U-Net `zero_module` on the out conv); the VAE leaves it random.
  TORCH_ARG(bool, zero_init_out) = false;
  /// "none" | "down" (2x2 average pool) | "up" (nearest x2): CompVis ResBlock with up/down=True
  /// (`resblock_updown`); the resampling sits between norm1/SiLU and conv1 and is applied to the skip too.
  TORCH_ARG(std::string, resample) = "none";
};

/// Residual block: GN → SiLU → [resample] → conv3 → (+ temb_proj(SiLU(temb))) → GN → SiLU → dropout → conv3,
/// plus the input ([resampled,] through a 1x1 `nin_shortcut` when the channel count changes).
class ResBlockImpl : public torch::nn::Module {
 public:
  explicit ResBlockImpl(const ResBlockOptions& options);
  /// x: [B, Cin, H, W], temb: [B, temb_channels] or undefined → [B, Cout, H', W'] (H' = H, H/2 or 2H).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb = {});

  ResBlockOptions options;
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, nin_shortcut{nullptr};
  torch::nn::Linear temb_proj{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(ResBlock);

// ---------------------------------------------------------------------------------------------------------
struct AttnBlockOptions {
  explicit AttnBlockOptions(int64_t channels) : channels_(channels) {}
  TORCH_ARG(int64_t, channels);
  /// 1 = the taming VAE AttnBlock; more heads give the CompVis U-Net AttentionBlock (separate q/k/v convs
  /// instead of one fused qkv conv: same function, different parameter layout).
  TORCH_ARG(int64_t, num_heads) = 1;
  TORCH_ARG(int64_t, norm_groups) = 32;
  TORCH_ARG(double, norm_eps) = 1e-6;
  /// Zero-initialise proj_out (U-Net); the VAE leaves it random.
  TORCH_ARG(bool, zero_init_out) = false;
};

/// Spatial self-attention: x + proj_out(attn(q(GN x), k(GN x), v(GN x))) over all H·W positions,
/// scale (C/heads)^-0.5, q/k/v/proj_out are 1x1 convs.
class AttnBlockImpl : public torch::nn::Module {
 public:
  explicit AttnBlockImpl(const AttnBlockOptions& options);
  /// x: [B, C, H, W] → [B, C, H, W].
  torch::Tensor forward(const torch::Tensor& x);

  AttnBlockOptions options;
  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Conv2d q{nullptr}, k{nullptr}, v{nullptr}, proj_out{nullptr};
};
TORCH_MODULE(AttnBlock);

// ---------------------------------------------------------------------------------------------------------
/// Multi-head attention on token sequences (CompVis `CrossAttention`): to_q/to_k/to_v without bias,
/// to_out = Linear + Dropout, scale dim_head^-0.5. With context_dim 0 it is self-attention.
class CrossAttentionImpl : public torch::nn::Module {
 public:
  CrossAttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t dim_head, double dropout);
  /// x: [B, N, query_dim], context: [B, M, context_dim] or undefined (self-attention) → [B, N, query_dim].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context = {});

  int64_t heads, dim_head;
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  torch::nn::Sequential to_out{nullptr};
};
TORCH_MODULE(CrossAttention);

/// GEGLU (Shazeer 2020): proj → split in two halves (a, g) along the last dim → a · GELU(g).
class GEGLUImpl : public torch::nn::Module {
 public:
  GEGLUImpl(int64_t dim_in, int64_t dim_out);
  torch::Tensor forward(const torch::Tensor& x);  // [.., dim_in] → [.., dim_out]
  torch::nn::Linear proj{nullptr};
};
TORCH_MODULE(GEGLU);

/// CompVis `FeedForward` with glu=True: net.0 GEGLU(dim → 4·dim), net.1 Dropout, net.2 Linear(4·dim → dim).
class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t dim, double dropout);
  torch::Tensor forward(const torch::Tensor& x);  // [.., dim] → [.., dim]
  torch::nn::Sequential net{nullptr};
};
TORCH_MODULE(FeedForward);

/// CompVis `BasicTransformerBlock` with `gated_ff=True`: x += attn1(LN x); x += attn2(LN x, context);
/// x += ff(LN x) where ff = net.0 GEGLU(dim → 4·dim), net.1 Dropout, net.2 Linear(4·dim → dim).
/// With context_dim 0 the cross-attention (attn2, norm2) is left out.
class BasicTransformerBlockImpl : public torch::nn::Module {
 public:
  BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t dim_head, int64_t context_dim, double dropout);
  /// x: [B, N, dim], context: [B, M, context_dim] → [B, N, dim].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context = {});

  CrossAttention attn1{nullptr}, attn2{nullptr};
  FeedForward ff{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

struct SpatialTransformerOptions {
  SpatialTransformerOptions(int64_t channels, int64_t num_heads) : channels_(channels), num_heads_(num_heads) {}
  TORCH_ARG(int64_t, channels);
  TORCH_ARG(int64_t, num_heads);
  /// Per-head width; 0 = channels / num_heads (the CompVis U-Net with num_head_channels -1).
  TORCH_ARG(int64_t, dim_head) = 0;
  TORCH_ARG(int64_t, depth) = 1;
  /// Width of the context tokens; 0 = self-attention only.
  TORCH_ARG(int64_t, context_dim) = 0;
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(int64_t, norm_groups) = 32;
  TORCH_ARG(double, norm_eps) = 1e-6;
};

/// CompVis `SpatialTransformer`: GN → proj_in (1x1 conv) → tokens [B, H·W, inner] → `depth` transformer
/// blocks → back to [B, inner, H, W] → proj_out (1x1 conv, zero-initialised) → + input.
class SpatialTransformerImpl : public torch::nn::Module {
 public:
  explicit SpatialTransformerImpl(const SpatialTransformerOptions& options);
  /// x: [B, C, H, W], context: [B, M, context_dim] (or undefined when context_dim is 0) → [B, C, H, W].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context = {});

  SpatialTransformerOptions options;
  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Conv2d proj_in{nullptr}, proj_out{nullptr};
  torch::nn::ModuleList transformer_blocks{nullptr};
};
TORCH_MODULE(SpatialTransformer);

// ---------------------------------------------------------------------------------------------------------
struct DownsampleOptions {
  explicit DownsampleOptions(int64_t channels) : channels_(channels) {}
  TORCH_ARG(int64_t, channels);
  /// true: conv3 stride 2; false: 2x2 average pool.
  TORCH_ARG(bool, with_conv) = true;
  /// true: pad (left 0, right 1, top 0, bottom 1) then conv padding 0 (taming VAE);
  /// false: conv padding 1 (CompVis U-Net Downsample).
  TORCH_ARG(bool, asymmetric_pad) = true;
};

/// Halves H and W. x: [B, C, H, W] → [B, C, H/2, W/2] (H, W even).
class DownsampleImpl : public torch::nn::Module {
 public:
  explicit DownsampleImpl(const DownsampleOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  DownsampleOptions options;
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Downsample);

/// Nearest-neighbour x2 then (optionally) conv3 padding 1. x: [B, C, H, W] → [B, C, 2H, 2W].
class UpsampleImpl : public torch::nn::Module {
 public:
  UpsampleImpl(int64_t channels, bool with_conv = true);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample);

/// Standard normal noise shaped like `ref` (same dtype and device). With a generator the draw happens on the
/// generator's device and is then moved to `ref`'s device (as diffusers' `randn_tensor`), so a CPU generator
/// gives the same numbers on CPU and GPU; without one, the global generator of `ref`'s device is used.
torch::Tensor randn_like(const torch::Tensor& ref, const std::optional<torch::Generator>& generator);


/// Sets every parameter of `m` to zero (CompVis `zero_module`).
void zero_parameters(torch::nn::Module& m);

}  // namespace brainspade::nn
