#include "brainspade/models/patch_discriminator.h"

#include <algorithm>

namespace brainspade {

void PatchDiscriminatorOptions::visit(ConfigVisitor& v) {
  v.renamed("n_layers", "num_layers");  // until 2026-11-30
  v("in_channels", in_channels, "input channels", Bounds::at_least(1));
  v("ndf", ndf, "filters of the first layer", Bounds::at_least(1));
  v("num_layers", num_layers, "stride-2 layers", Bounds::at_least(1));
  v.choice("norm", norm, {"batch", "instance", "none"}, "normalisation after each inner conv");
}

PatchDiscriminatorImpl::PatchDiscriminatorImpl(const PatchDiscriminatorOptions& o) : options(o) {
  TORCH_CHECK(o.norm == "batch" || o.norm == "instance" || o.norm == "none",
              "PatchDiscriminator norm must be batch, instance or none; got '", o.norm, "'");
  TORCH_CHECK(o.in_channels >= 1 && o.ndf >= 1 && o.num_layers >= 1,
              "PatchDiscriminator needs in_channels, ndf and num_layers >= 1; got ", o.in_channels, ", ", o.ndf, ", ",
              o.num_layers);
  const bool bias = o.norm != "batch";
  auto conv = [](int64_t in, int64_t out, int64_t stride, bool b) {
    return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 4).stride(stride).padding(1).bias(b));
  };
  auto add_norm = [&](torch::nn::Sequential& s, int64_t c) {
    if (o.norm == "batch") s->push_back(torch::nn::BatchNorm2d(c));
    if (o.norm == "instance") s->push_back(torch::nn::InstanceNorm2d(c));  // affine=False, as pix2pix
  };
  auto lrelu = [] { return torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)); };
  torch::nn::Sequential seq;
  seq->push_back(conv(o.in_channels, o.ndf, 2, true));
  seq->push_back(lrelu());
  int64_t mult = 1;
  for (int64_t n = 1; n < o.num_layers; ++n) {
    int64_t prev = mult;
    mult = std::min<int64_t>(int64_t{1} << n, 8);
    seq->push_back(conv(o.ndf * prev, o.ndf * mult, 2, bias));
    add_norm(seq, o.ndf * mult);
    seq->push_back(lrelu());
  }
  int64_t prev = mult;
  mult = std::min<int64_t>(int64_t{1} << o.num_layers, 8);
  seq->push_back(conv(o.ndf * prev, o.ndf * mult, 1, bias));
  add_norm(seq, o.ndf * mult);
  seq->push_back(lrelu());
  seq->push_back(conv(o.ndf * mult, 1, 1, true));
  model = register_module("model", seq);

  torch::NoGradGuard no_grad;
  for (auto& m : model->modules(false)) {
    if (auto* c = m->as<torch::nn::Conv2d>()) {
      c->weight.normal_(0.0, 0.02);
      if (c->bias.defined()) c->bias.zero_();
    } else if (auto* b = m->as<torch::nn::BatchNorm2d>()) {
      b->weight.normal_(1.0, 0.02);
      b->bias.zero_();
    }
  }
}

torch::Tensor PatchDiscriminatorImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options.in_channels, "PatchDiscriminator expects [B, ", options.in_channels,
              ", H, W]; got ", x.sizes());
  return model->forward(x);
}

}  // namespace brainspade
