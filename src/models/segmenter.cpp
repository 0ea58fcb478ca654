#include "brainspade/models/segmenter.h"

namespace brainspade {

namespace F = torch::nn::functional;

void SegmenterOptions::visit(ConfigVisitor& v) {
  v("in_channels", in_channels, "image channels", Bounds::at_least(1));
  v("num_classes", num_classes, "classes incl. background", Bounds::at_least(2));
  v("features", features, "channels per stage (nnU-Net 2D: 32, 64, 128, 256, 512, 512, ...)", Bounds::at_least(1));
  v("deep_supervision", deep_supervision, "segmentation heads at every decoder resolution (nnU-Net: true)");
  v("negative_slope", negative_slope, "LeakyReLU slope (nnU-Net: 0.01)", Bounds::non_negative());
}

StackedConvsImpl::StackedConvsImpl(int64_t in, int64_t out, int64_t stride, double slope) : slope_(slope) {
  conv_0 = register_module("conv_0", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1)));
  norm_0 = register_module("norm_0", torch::nn::InstanceNorm2d(torch::nn::InstanceNorm2dOptions(out).affine(true).eps(1e-5)));
  conv_1 = register_module("conv_1", torch::nn::Conv2d(torch::nn::Conv2dOptions(out, out, 3).padding(1)));
  norm_1 = register_module("norm_1", torch::nn::InstanceNorm2d(torch::nn::InstanceNorm2dOptions(out).affine(true).eps(1e-5)));
}

torch::Tensor StackedConvsImpl::forward(const torch::Tensor& x) {
  auto act = F::LeakyReLUFuncOptions().negative_slope(slope_);
  auto h = F::leaky_relu(norm_0(conv_0(x)), act);
  return F::leaky_relu(norm_1(conv_1(h)), act);
}

SegmenterImpl::SegmenterImpl(const SegmenterOptions& o) : options_(o) {
  TORCH_CHECK(o.features.size() >= 2, "segmenter needs at least 2 stages, got features of length ", o.features.size());
  TORCH_CHECK(o.in_channels >= 1 && o.num_classes >= 2, "segmenter needs in_channels >= 1 and num_classes >= 2, got ",
              o.in_channels, " and ", o.num_classes);
  for (auto f : o.features) TORCH_CHECK(f >= 1, "segmenter features must be positive, got ", f);
  encoder = register_module("encoder", torch::nn::ModuleList());
  upsample = register_module("upsample", torch::nn::ModuleList());
  decoder = register_module("decoder", torch::nn::ModuleList());
  seg_heads = register_module("seg_heads", torch::nn::ModuleList());
  const int64_t S = static_cast<int64_t>(o.features.size());
  int64_t in = o.in_channels;
  for (int64_t s = 0; s < S; ++s) {
    encoder->push_back(StackedConvs(in, o.features[s], s == 0 ? 1 : 2, o.negative_slope));
    in = o.features[s];
  }
  // Decoder stage d (d = 0 is the deepest) upsamples features[S-1-d] to features[S-2-d].
  for (int64_t d = 0; d < S - 1; ++d) {
    const int64_t below = o.features[S - 1 - d], skip = o.features[S - 2 - d];
    upsample->push_back(torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(below, skip, 2).stride(2)));
    decoder->push_back(StackedConvs(2 * skip, skip, 1, o.negative_slope));
    seg_heads->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(skip, o.num_classes, 1)));
  }
}

std::vector<torch::Tensor> SegmenterImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options_.in_channels, "segmenter expects [B, ", options_.in_channels,
              ", H, W], got ", x.sizes());
  const int64_t div = options_.size_divisor();
  TORCH_CHECK(x.size(2) % div == 0 && x.size(3) % div == 0, "segmenter input ", x.size(2), "x", x.size(3),
              " is not divisible by ", div, " (", options_.features.size() - 1, " downsamplings)");
  std::vector<torch::Tensor> skips;
  torch::Tensor h = x;
  for (const auto& m : *encoder) {
    h = m->as<StackedConvsImpl>()->forward(h);  // [B, f_s, H/2^s, W/2^s]
    skips.push_back(h);
  }
  const int64_t S = static_cast<int64_t>(skips.size());
  const bool all = options_.deep_supervision && is_training();
  std::vector<torch::Tensor> outs;  // deepest first, reversed below
  for (int64_t d = 0; d < S - 1; ++d) {
    h = upsample[d]->as<torch::nn::ConvTranspose2dImpl>()->forward(h);
    h = torch::cat({h, skips[S - 2 - d]}, 1);  // [B, 2 f, H', W']
    h = decoder[d]->as<StackedConvsImpl>()->forward(h);
    if (all || d == S - 2) outs.push_back(seg_heads[d]->as<torch::nn::Conv2dImpl>()->forward(h));
  }
  std::reverse(outs.begin(), outs.end());
  return outs;
}

torch::Tensor SegmenterImpl::predict_logits(const torch::Tensor& x) { return forward(x).front(); }

}  // namespace brainspade
