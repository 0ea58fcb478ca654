#include "brainspade/schedulers/ddim_scheduler.h"

#include <cmath>

#include "brainspade/nn/blocks.h"

#include "schedule_keys.h"

namespace brainspade {

void DDIMSchedulerOptions::visit(ConfigVisitor& v) {
  visit_schedule_keys(v, *this);
  v.choice("timestep_spacing", timestep_spacing, {"compvis", "leading"},
           "compvis: range(0,T,T//S)+1 with alpha_prev[0]=alphabar[0]; leading: diffusers grid, final alpha 1");
  v("eta", eta, "DDIM eta (0 deterministic, 1 as the authors)", Bounds::non_negative());
  v("clip_sample", clip_sample, "clamp the predicted x0");
  v("clip_sample_range", clip_sample_range, "clamp range for x0", Bounds::positive());
}

DDIMScheduler::DDIMScheduler(const DDIMSchedulerOptions& o) : options_(o) {
  TORCH_CHECK(o.beta_start > 0.0 && o.beta_end < 1.0, "DDIMScheduler needs 0 < beta_start and beta_end < 1; got ",
              o.beta_start, ", ", o.beta_end);
  TORCH_CHECK(o.timestep_spacing == "compvis" || o.timestep_spacing == "leading",
              "DDIMScheduler timestep_spacing must be compvis or leading; got '", o.timestep_spacing, "'");
  betas_ = make_betas(o.beta_schedule, o.num_train_timesteps, o.beta_start, o.beta_end);
  alphas_cumprod_ = alphas_cumprod_from_betas(betas_);
  ab_.assign(alphas_cumprod_.data_ptr<double>(), alphas_cumprod_.data_ptr<double>() + alphas_cumprod_.numel());
}

void DDIMScheduler::set_timesteps(int64_t S) {
  const int64_t T = options_.num_train_timesteps;
  TORCH_CHECK(S >= 1 && S <= T, "DDIMScheduler.set_timesteps needs 1 <= steps <= ", T, "; got ", S);
  step_ratio_ = T / S;
  timesteps_.clear();
  if (options_.timestep_spacing == "compvis") {
    for (int64_t t = 0; t < T; t += step_ratio_) timesteps_.push_back(t + 1);
    TORCH_CHECK(timesteps_.back() < T, "the CompVis DDIM grid range(0, ", T, ", ", step_ratio_,
                ")+1 reaches timestep ", timesteps_.back(), " which is outside [0, ", T,
                "); choose more steps or timestep_spacing 'leading'");
  } else {
    for (int64_t i = 0; i < S; ++i) timesteps_.push_back(i * step_ratio_);
  }
  std::reverse(timesteps_.begin(), timesteps_.end());
}

double DDIMScheduler::alpha_bar_prev(int64_t t) const {
  const int64_t prev_t = t - step_ratio_;
  if (prev_t >= 0) return ab_[prev_t];
  return options_.timestep_spacing == "compvis" ? ab_[0] : 1.0;
}

torch::Tensor DDIMScheduler::add_noise(const torch::Tensor& x0, const torch::Tensor& noise, const torch::Tensor& t) const {
  auto [sa, sb] = sqrt_alpha_terms(alphas_cumprod_, t, x0);
  return sa * x0 + sb * noise;
}

torch::Tensor DDIMScheduler::get_velocity(const torch::Tensor& x0, const torch::Tensor& noise, const torch::Tensor& t) const {
  auto [sa, sb] = sqrt_alpha_terms(alphas_cumprod_, t, x0);
  return sa * noise - sb * x0;
}

StepOutput DDIMScheduler::step(const torch::Tensor& model_output, int64_t t, const torch::Tensor& sample,
                               std::optional<torch::Generator> generator) const {
  TORCH_CHECK(step_ratio_ > 0, "DDIMScheduler.step called before set_timesteps");
  TORCH_CHECK(t >= 0 && t < options_.num_train_timesteps, "DDIMScheduler.step needs 0 <= t < ",
              options_.num_train_timesteps, "; got ", t);
  const double ab_t = ab_[t], ab_prev = alpha_bar_prev(t);
  auto pred = predict_x0_eps(options_.prediction_type, model_output, sample, ab_t);
  auto x0 = pred.x0;
  if (options_.clip_sample) x0 = x0.clamp(-options_.clip_sample_range, options_.clip_sample_range);
  // Song et al. 2021 eq. 16 (σ) and eq. 12 (update).
  const double sigma = options_.eta * std::sqrt((1.0 - ab_prev) / (1.0 - ab_t)) * std::sqrt(1.0 - ab_t / ab_prev);
  const double dir = std::sqrt(std::max(1.0 - ab_prev - sigma * sigma, 0.0));
  auto prev = std::sqrt(ab_prev) * x0 + dir * pred.eps;
  if (sigma > 0.0) prev = prev + sigma * nn::randn_like(sample, generator);
  return {prev, x0};
}

}  // namespace brainspade
