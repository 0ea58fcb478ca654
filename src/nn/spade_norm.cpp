#include "brainspade/nn/spade_norm.h"

#include <numeric>

namespace brainspade::nn {

namespace {
torch::nn::AnyModule make_param_free_norm(const std::string& norm, int64_t channels, int64_t groups) {
  if (norm == "batch")
    return torch::nn::AnyModule(torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(channels).affine(false)));
  if (norm == "instance")
    return torch::nn::AnyModule(torch::nn::InstanceNorm2d(torch::nn::InstanceNorm2dOptions(channels).affine(false)));
  if (norm == "group") {
    // The largest group count <= `groups` that divides the channel count.
    int64_t g = std::gcd(channels, std::max<int64_t>(groups, 1));
    return torch::nn::AnyModule(torch::nn::GroupNorm(torch::nn::GroupNormOptions(g, channels).affine(false)));
  }
  TORCH_CHECK(false, "SPADE norm must be batch, instance or group, got '", norm, "'");
}

torch::nn::AnyModule make_conv(int64_t in, int64_t out, int64_t k, bool spectral, bool bias) {
  if (spectral) return torch::nn::AnyModule(SpectralNormConv2d(SpectralNormConv2dOptions(in, out, k).padding(k / 2).bias(bias)));
  return torch::nn::AnyModule(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).padding(k / 2).bias(bias)));
}
}  // namespace

torch::Tensor resize_segmap(const torch::Tensor& segmap, torch::IntArrayRef size, const std::string& mode) {
  if (segmap.size(2) == size[0] && segmap.size(3) == size[1]) return segmap;
  auto opts = torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{size[0], size[1]});
  if (mode == "nearest") return torch::nn::functional::interpolate(segmap, opts.mode(torch::kNearest));
  TORCH_CHECK(mode == "bilinear", "segmap interpolation must be nearest or bilinear, got '", mode, "'");
  return torch::nn::functional::interpolate(segmap, opts.mode(torch::kBilinear).align_corners(false));
}

SPADEImpl::SPADEImpl(SPADEOptions options_) : options(std::move(options_)) {
  TORCH_CHECK(options.norm_nc() > 0 && options.label_channels() > 0 && options.hidden() > 0,
              "SPADE needs positive channel counts, got norm_nc=", options.norm_nc(), " label_channels=",
              options.label_channels(), " hidden=", options.hidden());
  TORCH_CHECK(options.kernel_size() % 2 == 1, "SPADE kernel size must be odd, got ", options.kernel_size());
  TORCH_CHECK(options.interpolation() == "nearest" || options.interpolation() == "bilinear",
              "SPADE interpolation must be nearest or bilinear, got '", options.interpolation(), "'");
  param_free_norm = make_param_free_norm(options.norm(), options.norm_nc(), options.groups());
  register_module("param_free_norm", param_free_norm.ptr());
  const int64_t k = options.kernel_size(), p = k / 2;
  mlp_shared = register_module(
      "mlp_shared", torch::nn::Sequential(
                        torch::nn::Conv2d(torch::nn::Conv2dOptions(options.label_channels(), options.hidden(), k).padding(p)),
                        torch::nn::ReLU()));
  mlp_gamma = register_module(
      "mlp_gamma", torch::nn::Conv2d(torch::nn::Conv2dOptions(options.hidden(), options.norm_nc(), k).padding(p)));
  mlp_beta = register_module(
      "mlp_beta", torch::nn::Conv2d(torch::nn::Conv2dOptions(options.hidden(), options.norm_nc(), k).padding(p)));
}

torch::Tensor SPADEImpl::forward(const torch::Tensor& x, const torch::Tensor& segmap) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options.norm_nc(), "SPADE expects x [B, ", options.norm_nc(),
              ", H, W], got ", x.sizes());
  TORCH_CHECK(segmap.dim() == 4 && segmap.size(1) == options.label_channels() && segmap.size(0) == x.size(0),
              "SPADE expects segmap [", x.size(0), ", ", options.label_channels(), ", H0, W0], got ", segmap.sizes());
  torch::Tensor normalized = param_free_norm.forward(x);                                // [B, C, H, W]
  torch::Tensor seg = resize_segmap(segmap, {x.size(2), x.size(3)}, options.interpolation());  // [B, L, H, W]
  torch::Tensor actv = mlp_shared->forward(seg);                                        // [B, hidden, H, W]
  torch::Tensor gamma = mlp_gamma->forward(actv);                                       // [B, C, H, W]
  torch::Tensor beta = mlp_beta->forward(actv);                                         // [B, C, H, W]
  return normalized * (1 + gamma) + beta;
}

SPADEResnetBlockImpl::SPADEResnetBlockImpl(SPADEResnetBlockOptions options_) : options(std::move(options_)) {
  TORCH_CHECK(options.fin() > 0 && options.fout() > 0 && options.label_channels() > 0,
              "SPADEResnetBlock needs positive channel counts, got fin=", options.fin(), " fout=", options.fout(),
              " label_channels=", options.label_channels());
  const int64_t fmiddle = std::min(options.fin(), options.fout());
  conv_0 = make_conv(options.fin(), fmiddle, 3, options.spectral(), true);
  register_module("conv_0", conv_0.ptr());
  conv_1 = make_conv(fmiddle, options.fout(), 3, options.spectral(), true);
  register_module("conv_1", conv_1.ptr());
  if (learned_shortcut()) {
    conv_s = make_conv(options.fin(), options.fout(), 1, options.spectral(), false);
    register_module("conv_s", conv_s.ptr());
  }
  auto spade = [&](int64_t nc) {
    return SPADE(SPADEOptions(nc, options.label_channels())
                     .norm(options.norm())
                     .interpolation(options.interpolation())
                     .hidden(options.hidden()));
  };
  norm_0 = register_module("norm_0", spade(options.fin()));
  norm_1 = register_module("norm_1", spade(fmiddle));
  if (learned_shortcut()) norm_s = register_module("norm_s", spade(options.fin()));
}

torch::Tensor SPADEResnetBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& seg) {
  auto actvn = [](const torch::Tensor& t) { return torch::leaky_relu(t, 0.2); };
  torch::Tensor x_s = learned_shortcut() ? conv_s.forward(norm_s->forward(x, seg)) : x;  // [B, fout, H, W]
  torch::Tensor dx = conv_0.forward(actvn(norm_0->forward(x, seg)));                      // [B, fmiddle, H, W]
  dx = conv_1.forward(actvn(norm_1->forward(dx, seg)));                                   // [B, fout, H, W]
  return x_s + dx;
}

void spade_init_weights(torch::nn::Module& module, double gain) {
  torch::NoGradGuard no_grad;
  for (auto& child : module.modules(/*include_self=*/true)) {
    const std::string name = child->name();
    auto params = child->named_parameters(/*recurse=*/false);
    bool is_norm = name.find("BatchNorm") != std::string::npos || name.find("InstanceNorm") != std::string::npos ||
                   name.find("GroupNorm") != std::string::npos;
    if (is_norm) {
      if (auto* w = params.find("weight")) torch::nn::init::normal_(*w, 1.0, gain);
      if (auto* b = params.find("bias")) torch::nn::init::zeros_(*b);
      continue;
    }
    torch::Tensor* w = params.find("weight_orig");
    if (!w) w = params.find("weight");
    if (w && w->dim() >= 2) {
      torch::nn::init::xavier_normal_(*w, gain);
      if (auto* b = params.find("bias")) torch::nn::init::zeros_(*b);
    }
  }
}

}  // namespace brainspade::nn
