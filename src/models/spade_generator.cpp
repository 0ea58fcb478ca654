#include "brainspade/models/spade_generator.h"

namespace brainspade {

void SPADEGeneratorOptions::visit(ConfigVisitor& v) {
  v.renamed("label_nc", "label_channels");  // until 2026-11-30
  v("label_channels", label_channels, "channels of the partial-volume semantic map", Bounds::at_least(1));
  v("ngf", ngf, "base width of the generator (head is 16*ngf channels)", Bounds::at_least(1));
  v("z_dim", z_dim, "size of the style code", Bounds::at_least(1));
  v.choice("num_upsampling_layers", num_upsampling_layers, {"less", "normal", "more", "most"},
           "4 (project extension for tiny sizes), 5, 6 or 7 nearest x2 upsamplings; height and width must be "
           "divisible by 2^n");
  v("height", height, "image height (divisible by 2^n)", Bounds::at_least(1));
  v("width", width, "image width (divisible by 2^n)", Bounds::at_least(1));
  v.choice("norm", norm, {"batch", "instance", "group"}, "SPADE parameter-free normalisation");
  v.choice("segmap_interpolation", segmap_interpolation, {"nearest", "bilinear"},
           "how the semantic map is resized to each block's resolution");
  v.choice("output_activation", output_activation, {"leaky_relu", "tanh"},
           "leaky_relu(0.2) for z-scored images, tanh for images in [-1, 1]");
  v("spectral", spectral, "spectral normalisation on the residual blocks' convolutions");
  v("spade_hidden", spade_hidden, "width of SPADE's shared convolution (NVlabs: 128)", Bounds::at_least(1));
}

int64_t SPADEGeneratorOptions::upsampling_count() const {
  if (num_upsampling_layers == "less") return 4;
  if (num_upsampling_layers == "normal") return 5;
  if (num_upsampling_layers == "more") return 6;
  if (num_upsampling_layers == "most") return 7;
  throw input_error("generator.num_upsampling_layers must be less, normal, more or most, got '", num_upsampling_layers, "'");
}

void SPADEGeneratorOptions::validate() const {
  const int64_t n = upsampling_count(), f = int64_t{1} << n;
  BRAINSPADE_CHECK_INPUT(height > 0 && width > 0 && height % f == 0 && width % f == 0, "generator: height ", height,
                         " and width ", width, " must both be divisible by 2^", n, " = ", f,
                         " (num_upsampling_layers=", num_upsampling_layers, ")");
  BRAINSPADE_CHECK_INPUT(norm != "instance" || (height / f) * (width / f) > 1, "generator: norm=instance needs a ",
                         "latent grid of more than one pixel, got ", height / f, "x", width / f,
                         " (instance statistics of a single pixel are undefined)");
  BRAINSPADE_CHECK_INPUT(label_channels > 0 && ngf > 0 && z_dim > 0 && spade_hidden > 0,
                         "generator: label_channels, ngf, z_dim and spade_hidden must be positive");
  BRAINSPADE_CHECK_INPUT(num_upsampling_layers != "most" || ngf >= 2, "generator: num_upsampling_layers=most needs ngf >= 2");
  BRAINSPADE_CHECK_INPUT(norm == "batch" || norm == "instance" || norm == "group",
                         "generator.norm must be batch, instance or group, got '", norm, "'");
  BRAINSPADE_CHECK_INPUT(segmap_interpolation == "nearest" || segmap_interpolation == "bilinear",
                         "generator.segmap_interpolation must be nearest or bilinear, got '", segmap_interpolation, "'");
  BRAINSPADE_CHECK_INPUT(output_activation == "leaky_relu" || output_activation == "tanh",
                         "generator.output_activation must be leaky_relu or tanh, got '", output_activation, "'");
}

SPADEGeneratorImpl::SPADEGeneratorImpl(SPADEGeneratorOptions options) : options_(std::move(options)) {
  options_.validate();
  const int64_t n = options_.upsampling_count(), nf = options_.ngf, L = options_.label_channels;
  sh_ = options_.height >> n;
  sw_ = options_.width >> n;
  auto block = [&](int64_t fin, int64_t fout) {
    return nn::SPADEResnetBlock(nn::SPADEResnetBlockOptions(fin, fout, L)
                                    .spectral(options_.spectral)
                                    .norm(options_.norm)
                                    .interpolation(options_.segmap_interpolation)
                                    .hidden(options_.spade_hidden));
  };
  fc = register_module("fc", torch::nn::Linear(options_.z_dim, 16 * nf * sh_ * sw_));
  head_0 = register_module("head_0", block(16 * nf, 16 * nf));
  G_middle_0 = register_module("G_middle_0", block(16 * nf, 16 * nf));
  G_middle_1 = register_module("G_middle_1", block(16 * nf, 16 * nf));
  up_0 = register_module("up_0", block(16 * nf, 8 * nf));
  up_1 = register_module("up_1", block(8 * nf, 4 * nf));
  up_2 = register_module("up_2", block(4 * nf, 2 * nf));
  up_3 = register_module("up_3", block(2 * nf, nf));
  int64_t final_nc = nf;
  if (n == 7) {
    up_4 = register_module("up_4", block(nf, nf / 2));
    final_nc = nf / 2;
  }
  conv_img = register_module("conv_img", torch::nn::Conv2d(torch::nn::Conv2dOptions(final_nc, 1, 3).padding(1)));
}

torch::Tensor SPADEGeneratorImpl::forward(const torch::Tensor& seg, const torch::Tensor& z) {
  const auto& o = options_;
  TORCH_CHECK(seg.dim() == 4 && seg.size(1) == o.label_channels, "SPADEGenerator expects seg [B, ", o.label_channels, ", ",
              o.height, ", ", o.width, "], got ", seg.sizes());
  TORCH_CHECK(z.dim() == 2 && z.size(1) == o.z_dim && z.size(0) == seg.size(0), "SPADEGenerator expects z [",
              seg.size(0), ", ", o.z_dim, "], got ", z.sizes());
  auto up = [](const torch::Tensor& t) {
    return torch::nn::functional::interpolate(
        t, torch::nn::functional::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest));
  };
  const int64_t n = o.upsampling_count();
  torch::Tensor x = fc->forward(z).view({z.size(0), 16 * o.ngf, sh_, sw_});  // [B, 16ngf, sh, sw]
  x = head_0->forward(x, seg);
  if (n >= 5) x = up(x);                                                     // [B, 16ngf, 2sh, 2sw]
  x = G_middle_0->forward(x, seg);
  if (n >= 6) x = up(x);
  x = G_middle_1->forward(x, seg);
  x = up_0->forward(up(x), seg);  // [B, 8ngf, ...]
  x = up_1->forward(up(x), seg);  // [B, 4ngf, ...]
  x = up_2->forward(up(x), seg);  // [B, 2ngf, ...]
  x = up_3->forward(up(x), seg);  // [B, ngf, H, W] for normal / more
  if (n == 7) x = up_4->forward(up(x), seg);  // [B, ngf/2, H, W]
  x = conv_img->forward(torch::leaky_relu(x, 0.2));  // [B, 1, H, W]
  return o.output_activation == "tanh" ? torch::tanh(x) : torch::leaky_relu(x, 0.2);
}

}  // namespace brainspade
