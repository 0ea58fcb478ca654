#include "brainspade/sampling/randomized_images.h"

#include <cmath>

#include "brainspade/core/error.h"
#include "brainspade/data/augment.h"

namespace brainspade {

namespace {
double draw(const std::vector<double>& range, torch::Generator& gen) {
  double u = torch::rand({1}, gen, torch::TensorOptions().dtype(torch::kDouble)).item<double>();
  return range[0] + (range[1] - range[0]) * u;
}

// Separable Gaussian blur of x [1, 1, H, W] with σ in pixels (kernel radius ⌈3σ⌉, zero padding).
torch::Tensor gaussian_blur(const torch::Tensor& x, double sigma) {
  if (sigma <= 1e-3) return x;
  const int64_t r = static_cast<int64_t>(std::ceil(3.0 * sigma));
  auto t = torch::arange(-r, r + 1, torch::kFloat);
  auto k = torch::exp(-0.5 * (t / sigma).pow(2));
  k = k / k.sum();
  const std::vector<int64_t> stride{1, 1}, pad_w{0, r}, pad_h{r, 0};
  auto y = torch::conv2d(x, k.view({1, 1, 1, -1}), torch::Tensor(), stride, pad_w);  // along W
  return torch::conv2d(y, k.view({1, 1, -1, 1}), torch::Tensor(), stride, pad_h);   // along H
}
}  // namespace

void RandomizedImageOptions::visit(ConfigVisitor& v) {
  v("mean_range", mean_range, "tissue mean ~ U(lo, hi), per tissue channel");
  v("sd_range", sd_range, "within-tissue standard deviation ~ U(lo, hi), per tissue channel", Bounds::non_negative());
  v("bias_field_coeff", bias_field_coeff, "Legendre bias-field coefficients ~ U(lo, hi)");
  v("bias_field_degree", bias_field_degree, "degree of the Legendre bias field (0 = none)", Bounds::range(0, 6));
  v("blur_sigma", blur_sigma, "Gaussian blur sigma in pixels ~ U(lo, hi)", Bounds::non_negative());
  v("noise_sd", noise_sd, "additive Gaussian noise sigma ~ U(lo, hi), inside the brain", Bounds::non_negative());
  v("normalise", normalise, "z-score each image within the brain (background stays 0)");
  v("stream", stream, "independent draw of contrasts (0 = the original): the same seed with another stream gives the "
    "same label maps in unrelated contrasts (channels of a multi-contrast DR baseline)", Bounds::non_negative());
}

RandomizedImage randomized_image(const torch::Tensor& pv, const RandomizedImageOptions& o, uint64_t seed) {
  BRAINSPADE_CHECK_INPUT(pv.dim() == 3 && pv.size(0) >= 2, "randomized images need a PV map [C >= 2, H, W], got ",
                         pv.sizes());
  check_lo_hi(o.mean_range, "randomized.mean_range");
  check_lo_hi(o.sd_range, "randomized.sd_range");
  check_lo_hi(o.bias_field_coeff, "randomized.bias_field_coeff");
  check_lo_hi(o.blur_sigma, "randomized.blur_sigma");
  check_lo_hi(o.noise_sd, "randomized.noise_sd");
  torch::Generator gen = make_generator(seed);
  const int64_t C = pv.size(0), H = pv.size(1), W = pv.size(2);
  auto w = pv.to(torch::kFloat).contiguous();  // [C, H, W]
  RandomizedImage out;
  out.means.assign(C, 0.0);
  out.sds.assign(C, 0.0);
  for (int64_t c = 1; c < C; ++c) out.means[c] = draw(o.mean_range, gen);
  for (int64_t c = 1; c < C; ++c) out.sds[c] = draw(o.sd_range, gen);
  out.blur_sigma = draw(o.blur_sigma, gen);
  out.noise_sd = draw(o.noise_sd, gen);

  auto mu = torch::tensor(out.means, torch::kDouble).to(torch::kFloat).view({C, 1, 1});
  auto sd = torch::tensor(out.sds, torch::kDouble).to(torch::kFloat).view({C, 1, 1});
  auto n = torch::randn({C, H, W}, gen);
  auto x = (w * (mu + sd * n)).sum(0, true).unsqueeze(0);  // [1, 1, H, W]
  if (o.bias_field_degree > 0)
    x = random_bias_field(x, o.bias_field_coeff[0], o.bias_field_coeff[1], o.bias_field_degree, gen);
  x = gaussian_blur(x, out.blur_sigma);
  auto brain_weight = (1.0 - w[0]).clamp(0.0, 1.0);  // [H, W]
  auto noise = torch::randn({H, W}, gen) * out.noise_sd;
  auto img = (x[0][0] + noise) * brain_weight;  // [H, W]; background 0
  if (o.normalise) {
    auto mask = w[0] < 0.5;
    if (mask.sum().item<int64_t>() > 1) {
      auto vals = img.masked_select(mask);
      auto m = vals.mean(), s = vals.std().clamp_min(1e-6);
      img = torch::where(mask, (img - m) / s, torch::zeros_like(img));
    }
  }
  out.image = img.unsqueeze(0).contiguous();  // [1, H, W]
  return out;
}

}  // namespace brainspade
