#pragma once
/// SPADE: spatially-adaptive normalisation (Park et al. 2019, "Semantic Image Synthesis with Spatially-Adaptive
/// Normalization", eq. 1) and the SPADE residual block, as used by brainSPADE's image generator
/// (paper section 2.2 "Image generator"; authors' image_generator/models/networks/{normalization,architecture}.py,
/// itself NVlabs/SPADE). Submodule names follow NVlabs so state dicts import by key copy:
///   SPADE: param_free_norm, mlp_shared.0 (conv), mlp_gamma, mlp_beta.
///   SPADEResnetBlock: conv_0, conv_1, conv_s (spectral: weight_orig/weight_u/weight_v), norm_0, norm_1, norm_s.
#include <string>

#include <torch/torch.h>

#include "brainspade/nn/spectral_norm.h"

namespace brainspade::nn {

/// Settings of one SPADE normalisation layer.
struct SPADEOptions {
  SPADEOptions(int64_t norm_nc, int64_t label_channels) : norm_nc_(norm_nc), label_channels_(label_channels) {}
  TORCH_ARG(int64_t, norm_nc);             ///< channels of the normalised activations
  TORCH_ARG(int64_t, label_channels);            ///< channels of the semantic (partial-volume) map
  TORCH_ARG(int64_t, hidden) = 128;        ///< width of mlp_shared (NVlabs hard-codes 128)
  TORCH_ARG(int64_t, kernel_size) = 3;     ///< kernel of mlp_shared / mlp_gamma / mlp_beta
  TORCH_ARG(std::string, norm) = "batch";  ///< parameter-free norm: batch | instance | group
  TORCH_ARG(int64_t, groups) = 32;         ///< groups for norm == "group" (clamped to divide norm_nc)
  TORCH_ARG(std::string, interpolation) = "nearest";  ///< segmap resize: nearest | bilinear
};

/// out = norm(x)·(1 + γ(seg)) + β(seg), with γ, β predicted by convolutions from the resized segmap.
class SPADEImpl : public torch::nn::Module {
 public:
  explicit SPADEImpl(SPADEOptions options);
  /// x: [B, norm_nc, H, W]; segmap: [B, label_channels, H0, W0] (any size, resized to H×W) → [B, norm_nc, H, W].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& segmap);

  SPADEOptions options;
  torch::nn::AnyModule param_free_norm;
  torch::nn::Sequential mlp_shared{nullptr};  // [conv(label_channels→hidden), ReLU]
  torch::nn::Conv2d mlp_gamma{nullptr}, mlp_beta{nullptr};
};
TORCH_MODULE(SPADE);

/// Resizes a segmentation / partial-volume map to `size` with "nearest" or "bilinear" (align_corners false).
torch::Tensor resize_segmap(const torch::Tensor& segmap, torch::IntArrayRef size, const std::string& mode);

/// Settings of a SPADE residual block.
struct SPADEResnetBlockOptions {
  SPADEResnetBlockOptions(int64_t fin, int64_t fout, int64_t label_channels) : fin_(fin), fout_(fout), label_channels_(label_channels) {}
  TORCH_ARG(int64_t, fin);
  TORCH_ARG(int64_t, fout);
  TORCH_ARG(int64_t, label_channels);
  TORCH_ARG(bool, spectral) = true;        ///< spectral norm on conv_0, conv_1, conv_s (norm_G "spectral...")
  TORCH_ARG(std::string, norm) = "batch";  ///< SPADE's parameter-free norm
  TORCH_ARG(std::string, interpolation) = "nearest";
  TORCH_ARG(int64_t, hidden) = 128;
};

/// NVlabs SPADEResnetBlock: x_s + conv_1(act(norm_1(conv_0(act(norm_0(x, seg))), seg))) with
/// fmiddle = min(fin, fout), act = LeakyReLU(0.2), and a learned 1×1 shortcut (no bias, own SPADE) when fin ≠ fout.
class SPADEResnetBlockImpl : public torch::nn::Module {
 public:
  explicit SPADEResnetBlockImpl(SPADEResnetBlockOptions options);
  /// x: [B, fin, H, W]; seg: [B, label_channels, H0, W0] → [B, fout, H, W].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& seg);
  bool learned_shortcut() const { return options.fin() != options.fout(); }

  SPADEResnetBlockOptions options;
  torch::nn::AnyModule conv_0, conv_1, conv_s;  // SpectralNormConv2d or Conv2d
  SPADE norm_0{nullptr}, norm_1{nullptr}, norm_s{nullptr};
};
TORCH_MODULE(SPADEResnetBlock);

/// NVlabs `init_weights(init_type='xavier', gain)`: xavier-normal(gain) for every conv / linear weight
/// (`weight_orig` for spectral layers), zero biases, N(1, gain) for affine norm weights. Used with gain 0.02.
void spade_init_weights(torch::nn::Module& module, double gain = 0.02);

}  // namespace brainspade::nn
