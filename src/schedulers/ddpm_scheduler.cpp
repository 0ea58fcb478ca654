#include "brainspade/schedulers/ddpm_scheduler.h"

#include <cmath>

#include "brainspade/nn/blocks.h"

#include "schedule_keys.h"

namespace brainspade {

void DDPMSchedulerOptions::visit(ConfigVisitor& v) {
  visit_schedule_keys(v, *this);
  v.choice("variance_type", variance_type, {"fixed_small", "fixed_large"}, "reverse-step variance");
  v("clip_sample", clip_sample, "clamp the predicted x0");
  v("clip_sample_range", clip_sample_range, "clamp range for x0", Bounds::positive());
}

DDPMScheduler::DDPMScheduler(const DDPMSchedulerOptions& o) : options_(o) {
  TORCH_CHECK(o.beta_start > 0.0 && o.beta_end < 1.0, "DDPMScheduler needs 0 < beta_start and beta_end < 1; got ",
              o.beta_start, ", ", o.beta_end);
  betas_ = make_betas(o.beta_schedule, o.num_train_timesteps, o.beta_start, o.beta_end);
  alphas_cumprod_ = alphas_cumprod_from_betas(betas_);
  ab_.assign(alphas_cumprod_.data_ptr<double>(), alphas_cumprod_.data_ptr<double>() + alphas_cumprod_.numel());
  set_timesteps(o.num_train_timesteps);
}

void DDPMScheduler::set_timesteps(int64_t S) {
  const int64_t T = options_.num_train_timesteps;
  TORCH_CHECK(S >= 1 && S <= T, "DDPMScheduler.set_timesteps needs 1 <= steps <= ", T, "; got ", S);
  step_ratio_ = T / S;
  timesteps_.clear();
  for (int64_t i = S - 1; i >= 0; --i) timesteps_.push_back(i * step_ratio_);
}

torch::Tensor DDPMScheduler::add_noise(const torch::Tensor& x0, const torch::Tensor& noise, const torch::Tensor& t) const {
  auto [sa, sb] = sqrt_alpha_terms(alphas_cumprod_, t, x0);
  return sa * x0 + sb * noise;
}

torch::Tensor DDPMScheduler::get_velocity(const torch::Tensor& x0, const torch::Tensor& noise, const torch::Tensor& t) const {
  auto [sa, sb] = sqrt_alpha_terms(alphas_cumprod_, t, x0);
  return sa * noise - sb * x0;
}

torch::Tensor DDPMScheduler::training_target(const torch::Tensor& x0, const torch::Tensor& noise,
                                             const torch::Tensor& t) const {
  if (options_.prediction_type == "epsilon") return noise;
  if (options_.prediction_type == "v_prediction") return get_velocity(x0, noise, t);
  return x0;
}

torch::Tensor DDPMScheduler::sample_timesteps(int64_t batch, torch::Device device,
                                              std::optional<torch::Generator> generator) const {
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(generator ? generator->device() : torch::Device(torch::kCPU));
  auto t = generator ? torch::randint(0, options_.num_train_timesteps, {batch}, c10::optional<torch::Generator>(*generator), opts)
                     : torch::randint(0, options_.num_train_timesteps, {batch}, opts);
  return t.to(device);
}

StepOutput DDPMScheduler::step(const torch::Tensor& model_output, int64_t t, const torch::Tensor& sample,
                               std::optional<torch::Generator> generator) const {
  const int64_t T = options_.num_train_timesteps;
  TORCH_CHECK(t >= 0 && t < T, "DDPMScheduler.step needs 0 <= t < ", T, "; got ", t);
  const int64_t prev_t = t - step_ratio_;
  const double ab_t = ab_[t], ab_prev = prev_t >= 0 ? ab_[prev_t] : 1.0;
  const double beta_prod_t = 1.0 - ab_t, beta_prod_prev = 1.0 - ab_prev;
  const double alpha_t = ab_t / ab_prev, beta_t = 1.0 - alpha_t;  // per-step α, β between grid points

  auto pred = predict_x0_eps(options_.prediction_type, model_output, sample, ab_t);
  auto x0 = pred.x0;
  if (options_.clip_sample) x0 = x0.clamp(-options_.clip_sample_range, options_.clip_sample_range);

  // Ho et al. 2020 eq. 7: μ̃ = √ᾱ_prev β_t/(1−ᾱ_t) x0 + √α_t (1−ᾱ_prev)/(1−ᾱ_t) x_t
  const double c_x0 = std::sqrt(ab_prev) * beta_t / beta_prod_t;
  const double c_xt = std::sqrt(alpha_t) * beta_prod_prev / beta_prod_t;
  auto prev = c_x0 * x0 + c_xt * sample;
  if (t > 0) {
    double var = options_.variance_type == "fixed_small" ? std::max(beta_prod_prev / beta_prod_t * beta_t, 1e-20) : beta_t;
    prev = prev + std::sqrt(var) * nn::randn_like(sample, generator);
  }
  return {prev, x0};
}

}  // namespace brainspade
