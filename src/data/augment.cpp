#include "brainspade/data/augment.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

namespace brainspade {

namespace {
// n values ~ U(lo, hi) in double on the CPU.
std::vector<double> uniform(int64_t n, double lo, double hi, torch::Generator& gen) {
  torch::Tensor r = torch::rand({n}, gen, torch::TensorOptions().dtype(torch::kDouble).device(gen.device())).cpu();
  std::vector<double> out(n);
  for (int64_t i = 0; i < n; ++i) out[i] = lo + (hi - lo) * r[i].item<double>();
  return out;
}

void check_images(const torch::Tensor& images, const char* what) {
  TORCH_CHECK(images.dim() == 4, what, " expects images [B, C, H, W], got ", images.sizes());
}

// Legendre polynomials P_0..P_degree at t (Bonnet's recurrence): [degree+1, N].
torch::Tensor legendre(const torch::Tensor& t, int64_t degree) {
  std::vector<torch::Tensor> p{torch::ones_like(t)};
  if (degree >= 1) p.push_back(t);
  for (int64_t n = 1; n < degree; ++n) p.push_back(((2.0 * n + 1) * t * p[n] - double(n) * p[n - 1]) / double(n + 1));
  return torch::stack(p);
}

// grid_sample options for the config's interpolation mode and padding (align_corners false, as affine_theta assumes).
torch::nn::functional::GridSampleFuncOptions grid_sample_options(const std::string& padding, const std::string& mode) {
  auto opts = torch::nn::functional::GridSampleFuncOptions().align_corners(false);
  if (mode == "bilinear") opts.mode(torch::kBilinear);
  else if (mode == "nearest") opts.mode(torch::kNearest);
  else TORCH_CHECK(false, "affine mode must be bilinear or nearest, got '", mode, "'");
  if (padding == "border") opts.padding_mode(torch::kBorder);
  else if (padding == "zeros") opts.padding_mode(torch::kZeros);
  else if (padding == "reflection") opts.padding_mode(torch::kReflection);
  else TORCH_CHECK(false, "affine padding must be zeros, border or reflection, got '", padding, "'");
  return opts;
}

bool coin(double prob, torch::Generator& gen) { return prob >= 1.0 || uniform(1, 0.0, 1.0, gen)[0] < prob; }
}  // namespace


void RandomAffineOptions::visit(ConfigVisitor& v) {
  v("rotate_range", rotate_range, "rotation ~ U(-r, r) radians", Bounds::non_negative());
  v("scale_range", scale_range, "scale ~ 1 + U(-s, s)", Bounds::range(0.0, 0.99));
  v("translate_range", translate_range, "translation ~ U(-t, t) pixels", Bounds::non_negative());
  v.choice("padding", padding, {"zeros", "border", "reflection"}, "grid_sample padding");
  v.choice("mode", mode, {"bilinear", "nearest"}, "grid_sample interpolation");
}

void IntensityAugmentOptions::visit(ConfigVisitor& v) {
  v("bias_field_prob", bias_field_prob, "probability of a random bias field", Bounds::unit());
  v("bias_field_coeff", bias_field_coeff, "bias-field coefficient range [lo, hi]");
  v("bias_field_degree", bias_field_degree, "degree of the Legendre bias field", Bounds::range(0, 6));
  v("gamma_prob", gamma_prob, "probability of a random gamma contrast", Bounds::unit());
  v("gamma", gamma, "gamma range [lo, hi]", Bounds::positive());
  v("noise_prob", noise_prob, "probability of Gaussian noise", Bounds::unit());
  v("noise_std", noise_std, "noise sigma range [lo, hi]", Bounds::non_negative());
}

torch::Tensor affine_theta(const AffineParams& p, int64_t height, int64_t width) {
  TORCH_CHECK(p.scale > 0, "affine scale must be positive, got ", p.scale);
  // affine_grid maps output coordinates to input coordinates in normalised units n = d / (size/2), d the offset from
  // the centre in pixels. With A = scale·R: d_in = A⁻¹ (d_out − t), so theta = [S⁻¹A⁻¹S | −S⁻¹A⁻¹t], S = diag(W/2, H/2).
  const double c = std::cos(p.rotation), s = std::sin(p.rotation), k = 1.0 / p.scale;
  const double ai[2][2] = {{k * c, k * s}, {-k * s, k * c}};  // A⁻¹ = R(−θ)/scale
  const double sz[2] = {width / 2.0, height / 2.0};
  const double t[2] = {p.tx, p.ty};
  torch::Tensor theta = torch::zeros({2, 3}, torch::kDouble);
  auto acc = theta.accessor<double, 2>();
  for (int i = 0; i < 2; ++i) {
    double shift = 0;
    for (int j = 0; j < 2; ++j) {
      acc[i][j] = ai[i][j] * sz[j] / sz[i];
      shift += ai[i][j] * t[j];
    }
    acc[i][2] = -shift / sz[i];
  }
  return theta;
}

torch::Tensor apply_affine(const torch::Tensor& images, const std::vector<AffineParams>& params,
                           const std::string& padding, const std::string& mode) {
  check_images(images, "apply_affine");
  TORCH_CHECK(static_cast<int64_t>(params.size()) == images.size(0), "apply_affine needs one transform per sample: ",
              params.size(), " for a batch of ", images.size(0));
  namespace F = torch::nn::functional;
  std::vector<torch::Tensor> thetas;
  for (const auto& p : params) thetas.push_back(affine_theta(p, images.size(2), images.size(3)));
  torch::Tensor theta = torch::stack(thetas).to(images.options());                            // [B, 2, 3]
  torch::Tensor grid = F::affine_grid(theta, images.sizes(), /*align_corners=*/false);         // [B, H, W, 2]
  return F::grid_sample(images, grid, grid_sample_options(padding, mode));  // [B, C, H, W]
}

AffineParams sample_affine(const RandomAffineOptions& o, torch::Generator& generator) {
  auto r = uniform(4, -1.0, 1.0, generator);
  return {r[0] * o.rotate_range, 1.0 + r[1] * o.scale_range, r[2] * o.translate_range, r[3] * o.translate_range};
}

torch::Tensor random_affine(const torch::Tensor& images, const RandomAffineOptions& options,
                            torch::Generator& generator) {
  check_images(images, "random_affine");
  std::vector<AffineParams> params;
  for (int64_t b = 0; b < images.size(0); ++b) params.push_back(sample_affine(options, generator));
  return apply_affine(images, params, options.padding, options.mode);
}

torch::Tensor random_bias_field(const torch::Tensor& images, double lo, double hi, int64_t degree,
                                torch::Generator& generator) {
  check_images(images, "random_bias_field");
  TORCH_CHECK(degree >= 0 && lo <= hi, "random_bias_field needs degree >= 0 and lo <= hi, got ", degree, ", ", lo,
              ", ", hi);
  const int64_t B = images.size(0), H = images.size(2), W = images.size(3);
  auto fopt = torch::TensorOptions().dtype(torch::kFloat);
  torch::Tensor py = legendre(torch::linspace(-1.0, 1.0, H, fopt), degree);  // [D+1, H]
  torch::Tensor px = legendre(torch::linspace(-1.0, 1.0, W, fopt), degree);  // [D+1, W]
  std::vector<torch::Tensor> fields;
  for (int64_t b = 0; b < B; ++b) {
    torch::Tensor log_field = torch::zeros({H, W}, fopt);
    for (int64_t i = 0; i <= degree; ++i) {
      for (int64_t j = 0; i + j <= degree; ++j) {
        const double c = uniform(1, lo, hi, generator)[0];
        log_field += c * py[i].unsqueeze(1) * px[j].unsqueeze(0);
      }
    }
    fields.push_back(torch::exp(log_field));
  }
  torch::Tensor field = torch::stack(fields).unsqueeze(1).to(images.options());  // [B, 1, H, W]
  return images * field;
}

torch::Tensor random_gamma_contrast(const torch::Tensor& images, double lo, double hi, torch::Generator& generator) {
  check_images(images, "random_gamma_contrast");
  const int64_t B = images.size(0);
  auto g = uniform(B, lo, hi, generator);
  torch::Tensor flat = images.reshape({B, -1});
  torch::Tensor mn = std::get<0>(flat.min(1, true)).view({B, 1, 1, 1});
  torch::Tensor range = std::get<0>(flat.max(1, true)).view({B, 1, 1, 1}) - mn;
  torch::Tensor gamma = torch::tensor(g, torch::kDouble).to(images.options()).view({B, 1, 1, 1});
  return torch::pow((images - mn) / (range + 1e-7), gamma) * range + mn;
}

torch::Tensor random_gaussian_noise(const torch::Tensor& images, double lo, double hi, torch::Generator& generator) {
  check_images(images, "random_gaussian_noise");
  const int64_t B = images.size(0);
  auto sigma = uniform(B, lo, hi, generator);
  torch::Tensor s = torch::tensor(sigma, torch::kDouble).to(images.options()).view({B, 1, 1, 1});
  torch::Tensor noise =
      torch::randn(images.sizes(), generator, images.options().device(generator.device())).to(images.device());
  return images + s * noise;
}

torch::Tensor intensity_augment(const torch::Tensor& images, const IntensityAugmentOptions& o,
                                torch::Generator& generator) {
  check_lo_hi(o.bias_field_coeff, "intensity_augment.bias_field_coeff");
  check_lo_hi(o.gamma, "intensity_augment.gamma");
  check_lo_hi(o.noise_std, "intensity_augment.noise_std");
  torch::Tensor x = images;
  if (coin(o.bias_field_prob, generator))
    x = random_bias_field(x, o.bias_field_coeff[0], o.bias_field_coeff[1], o.bias_field_degree, generator);
  if (coin(o.gamma_prob, generator)) x = random_gamma_contrast(x, o.gamma[0], o.gamma[1], generator);
  if (coin(o.noise_prob, generator)) x = random_gaussian_noise(x, o.noise_std[0], o.noise_std[1], generator);
  return x;
}

}  // namespace brainspade

namespace brainspade {

void LabelAugmentOptions::visit(ConfigVisitor& v) {
  v("flip_prob", flip_prob, "probability of a mirror along flip_axis, per sample", Bounds::unit());
  v("flip_axis", flip_axis, "0 = H (left-right in axial slices), 1 = W", Bounds::range(0, 1));
  v("affine_prob", affine_prob, "probability of a random similarity transform, per sample", Bounds::unit());
  v.section("affine", affine);
  v("elastic_prob", elastic_prob, "probability of a smooth random displacement, per sample", Bounds::unit());
  v("elastic_magnitude", elastic_magnitude, "largest control-point displacement, pixels", Bounds::non_negative());
  v("elastic_grid", elastic_grid, "control points per side of the displacement grid", Bounds::range(2, 64));
}

torch::Tensor augment_label_maps(const torch::Tensor& maps, const LabelAugmentOptions& o, torch::Generator& gen) {
  check_images(maps, "augment_label_maps");
  namespace F = torch::nn::functional;
  const int64_t B = maps.size(0), H = maps.size(2), W = maps.size(3);
  torch::Tensor out = maps.clone();
  std::vector<int64_t> warped;
  std::vector<AffineParams> params;
  std::vector<torch::Tensor> displacement;  // per warped sample: [H, W, 2] in normalised units, or undefined
  for (int64_t b = 0; b < B; ++b) {
    // Every draw happens for every sample whatever the probabilities say, so one option never shifts another's draws.
    const bool flip = uniform(1, 0.0, 1.0, gen)[0] < o.flip_prob;
    const bool affine = uniform(1, 0.0, 1.0, gen)[0] < o.affine_prob;
    const AffineParams a = sample_affine(o.affine, gen);
    const bool elastic = uniform(1, 0.0, 1.0, gen)[0] < o.elastic_prob;
    const int64_t g = o.elastic_grid;
    torch::Tensor ctrl = torch::rand({1, 2, g, g}, gen, torch::TensorOptions().dtype(torch::kFloat)) * 2 - 1;
    if (flip) out[b] = out[b].flip({1 + o.flip_axis});
    if (!affine && !elastic) continue;
    warped.push_back(b);
    params.push_back(affine ? a : AffineParams{});
    if (elastic) {
      // Control-point displacements in pixels → normalised grid units (2/size per pixel), x then y as grid_sample wants.
      auto scale = torch::tensor({2.0f / W, 2.0f / H}).view({1, 2, 1, 1});
      auto field = F::interpolate(ctrl * o.elastic_magnitude * scale,
                                  F::InterpolateFuncOptions().size(std::vector<int64_t>{H, W}).mode(torch::kBicubic).align_corners(true));
      displacement.push_back(field[0].permute({1, 2, 0}));  // [H, W, 2]
    } else {
      displacement.push_back(torch::zeros({H, W, 2}));
    }
  }
  if (warped.empty()) return out;
  std::vector<torch::Tensor> thetas;
  for (const auto& p : params) thetas.push_back(affine_theta(p, H, W));
  auto idx = torch::tensor(warped);
  auto sel = out.index_select(0, idx);
  auto theta = torch::stack(thetas).to(sel.options());
  auto grid = F::affine_grid(theta, sel.sizes(), /*align_corners=*/false) + torch::stack(displacement).to(sel.options());
  out.index_copy_(0, idx, F::grid_sample(sel, grid, grid_sample_options(o.affine.padding, o.affine.mode)));
  return out;
}

}  // namespace brainspade
