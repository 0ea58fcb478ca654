#include "brainspade/nn/spectral_norm.h"

#include <cmath>

namespace brainspade::nn {

namespace {
// Unit vector along dim 0, as torch.nn.functional.normalize(x, dim=0, eps).
torch::Tensor unit(const torch::Tensor& x, double eps) { return x / x.norm().clamp_min(eps); }

// PyTorch's initial u, v: normalised standard-normal vectors (spectral_norm.py, SpectralNorm.apply).
void init_uv(torch::Tensor& u, torch::Tensor& v, int64_t h, int64_t w, double eps) {
  u = unit(torch::randn({h}), eps);
  v = unit(torch::randn({w}), eps);
}
}  // namespace

torch::Tensor spectral_normalize(const torch::Tensor& weight_orig, torch::Tensor& u, torch::Tensor& v,
                                 bool power_iteration, int64_t n_power_iterations, double eps) {
  torch::Tensor w_mat = weight_orig.reshape({weight_orig.size(0), -1});  // [out, in·k·k]
  torch::Tensor u_used = u, v_used = v;
  if (power_iteration && n_power_iterations > 0) {
    torch::NoGradGuard no_grad;
    torch::Tensor w_det = w_mat.detach();
    torch::Tensor u_new = u, v_new = v;
    for (int64_t i = 0; i < n_power_iterations; ++i) {
      v_new = unit(torch::mv(w_det.t(), u_new), eps);
      u_new = unit(torch::mv(w_det, v_new), eps);
    }
    // In place, so the buffers registered on the module (and their state-dict entries) see the update.
    u.copy_(u_new);
    v.copy_(v_new);
    // As PyTorch does: sigma uses clones, so a later forward's in-place update cannot invalidate tensors that
    // this forward's graph saved (two forwards, e.g. E(i) and E(T(i)), then one backward).
    u_used = u.clone();
    v_used = v.clone();
  }
  // u and v are constants for autograd.
  torch::Tensor sigma = torch::dot(u_used.detach(), torch::mv(w_mat, v_used.detach()));
  return weight_orig / sigma;
}

SpectralNormConv2dImpl::SpectralNormConv2dImpl(SpectralNormConv2dOptions options_) : options(std::move(options_)) {
  TORCH_CHECK(options.in_channels() > 0 && options.out_channels() > 0,
              "SpectralNormConv2d needs positive channel counts, got in=", options.in_channels(),
              " out=", options.out_channels());
  TORCH_CHECK(options.kernel_size() > 0 && options.stride() > 0 && options.padding() >= 0,
              "SpectralNormConv2d needs kernel_size > 0, stride > 0, padding >= 0; got kernel ",
              options.kernel_size(), ", stride ", options.stride(), ", padding ", options.padding());
  TORCH_CHECK(options.n_power_iterations() >= 0, "n_power_iterations must be >= 0, got ",
              options.n_power_iterations());
  // Same initialisation as an ordinary Conv2d (kaiming-uniform weight, uniform bias).
  torch::nn::Conv2d proto(torch::nn::Conv2dOptions(options.in_channels(), options.out_channels(), options.kernel_size())
                              .bias(options.bias()));
  weight_orig = register_parameter("weight_orig", proto->weight.detach().clone());
  if (options.bias()) bias = register_parameter("bias", proto->bias.detach().clone());
  torch::Tensor u, v;
  init_uv(u, v, options.out_channels(), options.in_channels() * options.kernel_size() * options.kernel_size(),
          options.eps());
  weight_u = register_buffer("weight_u", u);
  weight_v = register_buffer("weight_v", v);
}

torch::Tensor SpectralNormConv2dImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options.in_channels(), "SpectralNormConv2d expects [B, ",
              options.in_channels(), ", H, W], got ", x.sizes());
  torch::Tensor w = spectral_normalize(weight_orig, weight_u, weight_v, is_training(), options.n_power_iterations(),
                                       options.eps());
  return torch::conv2d(x, w, bias, options.stride(), options.padding());
}

torch::Tensor SpectralNormConv2dImpl::normalized_weight() const {
  torch::Tensor u = weight_u, v = weight_v;
  return spectral_normalize(weight_orig, u, v, false);
}

SpectralNormLinearImpl::SpectralNormLinearImpl(SpectralNormLinearOptions options_) : options(std::move(options_)) {
  TORCH_CHECK(options.in_features() > 0 && options.out_features() > 0,
              "SpectralNormLinear needs positive sizes, got in=", options.in_features(),
              " out=", options.out_features());
  torch::nn::Linear proto(torch::nn::LinearOptions(options.in_features(), options.out_features()).bias(options.bias()));
  weight_orig = register_parameter("weight_orig", proto->weight.detach().clone());
  if (options.bias()) bias = register_parameter("bias", proto->bias.detach().clone());
  torch::Tensor u, v;
  init_uv(u, v, options.out_features(), options.in_features(), options.eps());
  weight_u = register_buffer("weight_u", u);
  weight_v = register_buffer("weight_v", v);
}

torch::Tensor SpectralNormLinearImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.size(-1) == options.in_features(), "SpectralNormLinear expects last dimension ",
              options.in_features(), ", got ", x.sizes());
  torch::Tensor w = spectral_normalize(weight_orig, weight_u, weight_v, is_training(), options.n_power_iterations(),
                                       options.eps());
  return torch::linear(x, w, bias);
}

torch::Tensor SpectralNormLinearImpl::normalized_weight() const {
  torch::Tensor u = weight_u, v = weight_v;
  return spectral_normalize(weight_orig, u, v, false);
}

}  // namespace brainspade::nn
