#include "brainspade/models/spade_discriminator.h"

namespace brainspade {

void MultiscaleDiscriminatorOptions::visit(ConfigVisitor& v) {
  v.renamed("label_nc", "label_channels");  // until 2026-11-30
  v.renamed("image_nc", "image_channels");
  v.renamed("n_layers", "num_layers");
  v("label_channels", label_channels, "label channels given to the discriminator", Bounds::at_least(1));
  v("image_channels", image_channels, "image channels", Bounds::at_least(1));
  v("ndf", ndf, "base width (capped at 512 per layer)", Bounds::at_least(1));
  v("num_layers", num_layers, "layers per PatchGAN (n_layers_D)", Bounds::range(1, 8));
  v("num_d", num_d, "number of scales", Bounds::range(1, 6));
  v("downsample_kernel", downsample_kernel, "avg-pool kernel between scales (brainSPADE 4, NVlabs 3)",
    Bounds::range(2, 4));
  v.choice("label_input", label_input, {"onehot", "pv"}, "one-hot of argmax PV (authors) or the PV map itself");
  v("spectral", spectral, "spectral normalisation on the middle convolutions");
}

void MultiscaleDiscriminatorOptions::validate() const {
  BRAINSPADE_CHECK_INPUT(label_channels > 0 && image_channels > 0 && ndf > 0 && num_layers >= 1 && num_d >= 1,
                         "discriminator: label_channels, image_channels, ndf, num_layers and num_d must be positive");
  BRAINSPADE_CHECK_INPUT(label_input == "onehot" || label_input == "pv",
                         "discriminator.label_input must be onehot or pv, got '", label_input, "'");
  BRAINSPADE_CHECK_INPUT(downsample_kernel >= 2 && downsample_kernel <= 4,
                         "discriminator.downsample_kernel must be 2, 3 or 4 (pad 1 needs kernel >= 2), got ",
                         downsample_kernel);
}

ConvInstanceNormImpl::ConvInstanceNormImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                                           bool spectral) {
  if (spectral) {
    conv = torch::nn::AnyModule(
        nn::SpectralNormConv2d(nn::SpectralNormConv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false)));
  } else {
    conv = torch::nn::AnyModule(
        torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false)));
  }
  register_module("0", conv.ptr());
  norm = register_module("1", torch::nn::InstanceNorm2d(torch::nn::InstanceNorm2dOptions(out).affine(false)));
}

torch::Tensor ConvInstanceNormImpl::forward(const torch::Tensor& x) { return norm->forward(conv.forward(x)); }

NLayerDiscriminatorImpl::NLayerDiscriminatorImpl(int64_t input_nc, int64_t ndf, int64_t num_layers, bool spectral) {
  TORCH_CHECK(input_nc > 0 && ndf > 0 && num_layers >= 1, "NLayerDiscriminator needs positive sizes, got input_nc=",
              input_nc, " ndf=", ndf, " num_layers=", num_layers);
  const int64_t kw = 4, padw = 2;  // padw = ceil((kw - 1)/2) as in NVlabs
  auto lrelu = [] { return torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)); };
  int64_t nf = ndf;
  torch::nn::Sequential first(torch::nn::Conv2d(torch::nn::Conv2dOptions(input_nc, nf, kw).stride(2).padding(padw)),
                              lrelu());
  models.push_back(first);
  for (int64_t n = 1; n < num_layers; ++n) {
    const int64_t nf_prev = nf;
    nf = std::min<int64_t>(nf * 2, 512);
    const int64_t stride = n == num_layers - 1 ? 1 : 2;
    // get_nonspade_norm_layer: spectral norm on the conv, its bias removed, then InstanceNorm(affine false).
    ConvInstanceNorm conv_norm(nf_prev, nf, kw, stride, padw, spectral);
    models.push_back(torch::nn::Sequential(conv_norm, lrelu()));
  }
  models.push_back(torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(nf, 1, kw).stride(1).padding(padw))));
  for (size_t i = 0; i < models.size(); ++i) register_module("model" + std::to_string(i), models[i]);
}

std::vector<torch::Tensor> NLayerDiscriminatorImpl::forward(const torch::Tensor& x) {
  std::vector<torch::Tensor> outs;
  torch::Tensor h = x;
  for (auto& m : models) {
    h = m->forward(h);
    outs.push_back(h);
  }
  return outs;
}

MultiscaleDiscriminatorImpl::MultiscaleDiscriminatorImpl(MultiscaleDiscriminatorOptions options)
    : options_(std::move(options)) {
  options_.validate();
  for (int64_t i = 0; i < options_.num_d; ++i) {
    discriminators.push_back(register_module(
        "discriminator_" + std::to_string(i),
        NLayerDiscriminator(options_.label_channels + options_.image_channels, options_.ndf, options_.num_layers, options_.spectral)));
  }
}

torch::Tensor one_hot_argmax(const torch::Tensor& pv) {
  TORCH_CHECK(pv.dim() == 4, "one_hot_argmax expects [B, C, H, W], got ", pv.sizes());
  return torch::zeros_like(pv).scatter_(1, pv.argmax(1, /*keepdim=*/true), 1.0);
}

torch::Tensor MultiscaleDiscriminatorImpl::label_planes(const torch::Tensor& pv) const {
  return options_.label_input == "onehot" ? one_hot_argmax(pv.detach()) : pv;
}

DiscriminatorFeatures MultiscaleDiscriminatorImpl::forward(const torch::Tensor& pv, const torch::Tensor& image) {
  TORCH_CHECK(pv.dim() == 4 && pv.size(1) == options_.label_channels, "MultiscaleDiscriminator expects pv [B, ",
              options_.label_channels, ", H, W], got ", pv.sizes());
  TORCH_CHECK(image.dim() == 4 && image.size(1) == options_.image_channels && image.size(0) == pv.size(0) &&
                  image.size(2) == pv.size(2) && image.size(3) == pv.size(3),
              "MultiscaleDiscriminator expects image [", pv.size(0), ", ", options_.image_channels, ", ", pv.size(2), ", ",
              pv.size(3), "], got ", image.sizes());
  return forward_input(torch::cat({label_planes(pv), image}, 1));  // [B, label_channels + image_channels, H, W]
}

DiscriminatorFeatures MultiscaleDiscriminatorImpl::forward_input(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options_.label_channels + options_.image_channels,
              "MultiscaleDiscriminator expects [B, ", options_.label_channels + options_.image_channels, ", H, W], got ", x.sizes());
  DiscriminatorFeatures result;
  torch::Tensor h = x;
  for (size_t i = 0; i < discriminators.size(); ++i) {
    result.push_back(discriminators[i]->forward(h));
    if (i + 1 < discriminators.size()) {
      h = torch::avg_pool2d(h, options_.downsample_kernel, 2, 1, /*ceil_mode=*/false, /*count_include_pad=*/false);
    }
  }
  return result;
}

}  // namespace brainspade
