#include "brainspade/schedulers/noise_schedule.h"

#include <cmath>

namespace brainspade {

torch::Tensor make_betas(const std::string& schedule, int64_t T, double beta_start, double beta_end) {
  TORCH_CHECK(T >= 1, "the noise schedule needs at least one timestep; got ", T);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  if (schedule == "linear") return torch::linspace(beta_start, beta_end, T, f64);
  if (schedule == "scaled_linear") return torch::linspace(std::sqrt(beta_start), std::sqrt(beta_end), T, f64).pow(2);
  if (schedule == "cosine") {
    const double s = 0.008, pi = 3.14159265358979323846;
    auto abar = [&](double t) {
      double c = std::cos((t / static_cast<double>(T) + s) / (1.0 + s) * pi / 2.0);
      return c * c;
    };
    auto betas = torch::empty({T}, f64);
    auto acc = betas.accessor<double, 1>();
    for (int64_t i = 0; i < T; ++i) acc[i] = std::min(1.0 - abar(i + 1) / abar(i), 0.999);
    return betas;
  }
  TORCH_CHECK(false, "unknown beta schedule '", schedule, "' (expected linear, scaled_linear or cosine)");
}

torch::Tensor alphas_cumprod_from_betas(const torch::Tensor& betas) { return torch::cumprod(1.0 - betas, 0); }

X0Eps predict_x0_eps(const std::string& type, const torch::Tensor& out, const torch::Tensor& x, double ab) {
  const double sa = std::sqrt(ab), sb = std::sqrt(1.0 - ab);
  if (type == "epsilon") return {(x - sb * out) / sa, out};
  if (type == "v_prediction") return {sa * x - sb * out, sa * out + sb * x};
  if (type == "sample") return {out, (x - sa * out) / sb};
  TORCH_CHECK(false, "unknown prediction_type '", type, "' (expected epsilon, v_prediction or sample)");
}

std::pair<torch::Tensor, torch::Tensor> sqrt_alpha_terms(const torch::Tensor& alphas_cumprod, const torch::Tensor& t,
                                                         const torch::Tensor& like) {
  TORCH_CHECK(t.dim() == 1 && t.size(0) == like.size(0), "timesteps must be [B] matching the batch of ", like.sizes(),
              "; got ", t.sizes());
  const int64_t T = alphas_cumprod.size(0);
  auto tc = t.to(torch::kCPU, torch::kLong);
  TORCH_CHECK(tc.min().item<int64_t>() >= 0 && tc.max().item<int64_t>() < T, "timesteps must lie in [0, ", T, ")");
  auto ab = alphas_cumprod.index_select(0, tc);  // [B] float64
  std::vector<int64_t> shape(like.dim(), 1);
  shape[0] = like.size(0);
  auto sa = ab.sqrt().reshape(shape).to(like.device(), like.scalar_type());
  auto sb = (1.0 - ab).sqrt().reshape(shape).to(like.device(), like.scalar_type());
  return {sa, sb};
}

}  // namespace brainspade
