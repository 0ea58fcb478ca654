#include "brainspade/models/spade_encoder.h"

namespace brainspade {

void ConvEncoderOptions::visit(ConfigVisitor& v) {
  v("in_channels", in_channels, "channels of the style image", Bounds::at_least(1));
  v("ndf", ndf, "base width of the encoder", Bounds::at_least(1));
  v("z_dim", z_dim, "size of the style code (must equal generator.z_dim)", Bounds::at_least(1));
  v("num_layers", num_layers, "stride-2 convolutions (authors: 6)", Bounds::range(1, 12));
  v("height", height, "style image height (no 256x256 resize; fc sized from it)", Bounds::at_least(1));
  v("width", width, "style image width", Bounds::at_least(1));
  v("spectral", spectral, "spectral normalisation on the convolutions");
}

void ConvEncoderOptions::validate() const {
  BRAINSPADE_CHECK_INPUT(in_channels > 0 && ndf > 0 && z_dim > 0 && height > 0 && width > 0,
                         "encoder: in_channels, ndf, z_dim, height and width must be positive");
  BRAINSPADE_CHECK_INPUT(num_layers >= 1, "encoder.num_layers must be at least 1, got ", num_layers);
}

std::pair<int64_t, int64_t> ConvEncoderOptions::final_size() const {
  int64_t h = height, w = width;
  for (int64_t i = 0; i < num_layers; ++i) {
    h = (h - 1) / 2 + 1;  // k3 s2 p1: floor((n + 2 - 3)/2) + 1
    w = (w - 1) / 2 + 1;
  }
  return {h, w};
}

int64_t ConvEncoderOptions::layer_channels(int64_t i) const { return ndf * std::min<int64_t>(int64_t{1} << std::min<int64_t>(i, 3), 8); }

torch::Tensor reparameterise(const torch::Tensor& mu, const torch::Tensor& logvar,
                             std::optional<torch::Generator> generator) {
  TORCH_CHECK(mu.sizes() == logvar.sizes(), "reparameterise: mu ", mu.sizes(), " and logvar ", logvar.sizes(),
              " differ");
  torch::Tensor eps;
  if (generator) {
    eps = torch::randn(mu.sizes(), *generator, mu.options().device(generator->device())).to(mu.device());
  } else {
    eps = torch::randn_like(mu);
  }
  return mu + eps * torch::exp(0.5 * logvar);
}

ConvEncoderImpl::ConvEncoderImpl(ConvEncoderOptions options) : options_(std::move(options)) {
  options_.validate();
  int64_t in = options_.in_channels;
  for (int64_t i = 0; i < options_.num_layers; ++i) {
    const int64_t out = options_.layer_channels(i);
    torch::nn::Sequential layer;
    // The authors' get_nonspade_norm_layer drops the conv bias whenever a norm follows.
    if (options_.spectral) {
      layer->push_back(nn::SpectralNormConv2d(nn::SpectralNormConv2dOptions(in, out, 3).stride(2).padding(1).bias(false)));
    } else {
      layer->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(2).padding(1).bias(false)));
    }
    layer->push_back(torch::nn::InstanceNorm2d(torch::nn::InstanceNorm2dOptions(out).affine(false)));
    layers.push_back(register_module("layer" + std::to_string(i + 1), layer));
    in = out;
  }
  auto [h, w] = options_.final_size();
  const int64_t features = in * h * w;
  fc_mu = register_module("fc_mu", torch::nn::Linear(features, options_.z_dim));
  fc_var = register_module("fc_var", torch::nn::Linear(features, options_.z_dim));
}

EncoderOutput ConvEncoderImpl::encode(const torch::Tensor& x) {
  const auto& o = options_;
  TORCH_CHECK(x.dim() == 4 && x.size(1) == o.in_channels && x.size(2) == o.height && x.size(3) == o.width,
              "ConvEncoder expects [B, ", o.in_channels, ", ", o.height, ", ", o.width, "], got ", x.sizes());
  torch::Tensor h = x;
  for (auto& layer : layers) h = torch::leaky_relu(layer->forward(h), 0.2);  // [B, C_i, H/2^i, W/2^i]
  h = h.flatten(1);                                                           // [B, C·h·w]
  return {fc_mu->forward(h), fc_var->forward(h), torch::Tensor()};
}

EncoderOutput ConvEncoderImpl::forward(const torch::Tensor& x, std::optional<torch::Generator> generator) {
  EncoderOutput out = encode(x);
  out.z = reparameterise(out.mu, out.logvar, std::move(generator));
  return out;
}

}  // namespace brainspade
