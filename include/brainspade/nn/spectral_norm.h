#pragma once
/// Spectral normalisation (Miyato et al. 2018) for 2D convolutions and linear layers.
///
/// LibTorch has no `torch::nn::utils::spectral_norm`; these layers reproduce PyTorch's
/// `torch.nn.utils.spectral_norm(module, n_power_iterations=1, eps=1e-12, dim=0)`:
///   - parameter `weight_orig` (the unnormalised weight), optional `bias`;
///   - buffers `weight_u` [out] and `weight_v` [in·kh·kw], both unit vectors;
///   - in training mode each forward runs `n_power_iterations` power iterations updating u and v in place,
///     in eval mode the stored u and v are used as they are;
///   - the weight used is W / σ with σ = uᵀ W v (W reshaped to [out, in·kh·kw]).
/// The state-dict keys are therefore those of a PyTorch module wrapped by spectral_norm, so a checkpoint
/// written by the authors' Python code imports by a key copy.
#include <torch/torch.h>

namespace brainspade::nn {

/// Returns W/σ for `weight_orig` and updates `u`, `v` in place when `power_iteration` is true.
/// `u` is [out], `v` is [numel/out]. Follows torch/nn/utils/spectral_norm.py (compute_weight).
torch::Tensor spectral_normalize(const torch::Tensor& weight_orig, torch::Tensor& u, torch::Tensor& v,
                                 bool power_iteration, int64_t n_power_iterations = 1, double eps = 1e-12);

/// Settings of a spectrally normalised 2D convolution (zero padding only, as in SPADE).
struct SpectralNormConv2dOptions {
  SpectralNormConv2dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(int64_t, kernel_size);
  TORCH_ARG(int64_t, stride) = 1;
  TORCH_ARG(int64_t, padding) = 0;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(int64_t, n_power_iterations) = 1;
  TORCH_ARG(double, eps) = 1e-12;
};

/// Conv2d whose weight is divided by its largest singular value (estimated by power iteration).
class SpectralNormConv2dImpl : public torch::nn::Module {
 public:
  explicit SpectralNormConv2dImpl(SpectralNormConv2dOptions options);
  /// x: [B, in, H, W] → [B, out, H', W'].
  torch::Tensor forward(const torch::Tensor& x);
  /// The normalised weight W/σ with the stored u, v (no power iteration, no buffer update).
  torch::Tensor normalized_weight() const;

  SpectralNormConv2dOptions options;
  torch::Tensor weight_orig;  ///< [out, in, k, k]
  torch::Tensor bias;         ///< [out] or undefined
  torch::Tensor weight_u;     ///< [out]
  torch::Tensor weight_v;     ///< [in·k·k]
};
TORCH_MODULE(SpectralNormConv2d);

/// Settings of a spectrally normalised linear layer.
struct SpectralNormLinearOptions {
  SpectralNormLinearOptions(int64_t in_features, int64_t out_features)
      : in_features_(in_features), out_features_(out_features) {}
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, out_features);
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(int64_t, n_power_iterations) = 1;
  TORCH_ARG(double, eps) = 1e-12;
};

/// Linear layer whose weight is divided by its largest singular value.
class SpectralNormLinearImpl : public torch::nn::Module {
 public:
  explicit SpectralNormLinearImpl(SpectralNormLinearOptions options);
  /// x: [B, in] → [B, out].
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor normalized_weight() const;

  SpectralNormLinearOptions options;
  torch::Tensor weight_orig;  ///< [out, in]
  torch::Tensor bias;         ///< [out] or undefined
  torch::Tensor weight_u;     ///< [out]
  torch::Tensor weight_v;     ///< [in]
};
TORCH_MODULE(SpectralNormLinear);

}  // namespace brainspade::nn
