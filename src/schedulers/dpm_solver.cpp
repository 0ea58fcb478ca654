#include "brainspade/schedulers/dpm_solver.h"

#include <algorithm>
#include <cmath>

#include "brainspade/nn/blocks.h"
#include "schedule_keys.h"

namespace brainspade {

void DPMSolverOptions::visit(ConfigVisitor& v) {
  visit_schedule_keys(v, *this);
  v.choice("timestep_spacing", timestep_spacing, {"linspace", "leading"}, "grid of the solver's timesteps");
  v("use_karras_sigmas", use_karras_sigmas, "space the grid's noise levels as Karras et al. 2022 (rho 7)");
  v("solver_order", solver_order, "1 (DDIM, eta 0) or 2 (DPM-Solver++ 2M)", Bounds::range(1, 2));
  v.choice("algorithm_type", algorithm_type, {"dpmsolver++", "sde-dpmsolver++"},
           "dpmsolver++: the diffusion ODE (no noise); sde-dpmsolver++: the reverse SDE (noise every step, as DDIM eta 1)");
}

DPMSolverMultistepScheduler::DPMSolverMultistepScheduler(const DPMSolverOptions& o) : options_(o) {
  TORCH_CHECK(o.beta_start > 0.0 && o.beta_end < 1.0, "DPMSolverMultistepScheduler needs 0 < beta_start and beta_end < 1; got ",
              o.beta_start, ", ", o.beta_end);
  TORCH_CHECK(o.timestep_spacing == "linspace" || o.timestep_spacing == "leading",
              "DPMSolverMultistepScheduler timestep_spacing must be linspace or leading; got '", o.timestep_spacing, "'");
  TORCH_CHECK(o.solver_order == 1 || o.solver_order == 2, "DPM-Solver++ solver_order must be 1 or 2; got ", o.solver_order);
  TORCH_CHECK(o.algorithm_type == "dpmsolver++" || o.algorithm_type == "sde-dpmsolver++",
              "DPM-Solver++ algorithm_type must be dpmsolver++ or sde-dpmsolver++; got '", o.algorithm_type, "'");
  alphas_cumprod_ = alphas_cumprod_from_betas(make_betas(o.beta_schedule, o.num_train_timesteps, o.beta_start, o.beta_end));
  ab_.assign(alphas_cumprod_.data_ptr<double>(), alphas_cumprod_.data_ptr<double>() + alphas_cumprod_.numel());
}

void DPMSolverMultistepScheduler::set_timesteps(int64_t S) {
  const int64_t T = options_.num_train_timesteps;
  TORCH_CHECK(S >= 1 && S <= T, "DPMSolverMultistepScheduler.set_timesteps needs 1 <= steps <= ", T, "; got ", S);
  timesteps_.clear();
  grid_ab_.clear();
  if (options_.use_karras_sigmas) {
    // σ(t) = √((1 − ᾱ_t)/ᾱ_t) rises with t; Karras: σ_i = (σ_max^{1/ρ} + i/(S−1) (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ.
    std::vector<double> log_sigma(T);
    for (int64_t t = 0; t < T; ++t) log_sigma[t] = 0.5 * std::log((1.0 - ab_[t]) / ab_[t]);
    const double rho = 7.0, lo = std::exp(log_sigma.front()), hi = std::exp(log_sigma.back());
    for (int64_t i = 0; i < S; ++i) {
      const double ramp = S == 1 ? 0.0 : double(i) / double(S - 1);
      const double sigma = std::pow(std::pow(hi, 1.0 / rho) + ramp * (std::pow(lo, 1.0 / rho) - std::pow(hi, 1.0 / rho)), rho);
      // Fractional timestep by linear interpolation of log σ (monotone in t), then rounded for the network.
      const double ls = std::log(sigma);
      auto it = std::lower_bound(log_sigma.begin(), log_sigma.end(), ls);
      double tf;
      if (it == log_sigma.begin()) tf = 0.0;
      else if (it == log_sigma.end()) tf = double(T - 1);
      else {
        const int64_t k = it - log_sigma.begin();
        tf = double(k - 1) + (ls - log_sigma[k - 1]) / (log_sigma[k] - log_sigma[k - 1]);
      }
      timesteps_.push_back(static_cast<int64_t>(std::nearbyint(tf)));
      grid_ab_.push_back(1.0 / (1.0 + sigma * sigma));
    }
  } else {
    if (options_.timestep_spacing == "linspace") {
      for (int64_t i = S; i >= 1; --i)
        timesteps_.push_back(static_cast<int64_t>(std::nearbyint(double(T - 1) * double(i) / double(S))));
    } else {
      const int64_t c = T / S;
      for (int64_t i = S - 1; i >= 0; --i) timesteps_.push_back(i * c);
    }
    for (int64_t t : timesteps_) grid_ab_.push_back(ab_[t]);
  }
  grid_ab_.push_back(1.0);  // the clean sample
  index_ = 0;
  prev_x0_ = torch::Tensor();
}

torch::Tensor DPMSolverMultistepScheduler::add_noise(const torch::Tensor& x0, const torch::Tensor& noise,
                                                     const torch::Tensor& t) const {
  auto [sa, sb] = sqrt_alpha_terms(alphas_cumprod_, t, x0);
  return sa * x0 + sb * noise;
}

StepOutput DPMSolverMultistepScheduler::step(const torch::Tensor& model_output, int64_t t, const torch::Tensor& sample,
                                             std::optional<torch::Generator> generator) {
  const bool last = index_ + 1 == timesteps_.size();
  torch::Tensor noise;
  if (stochastic() && !last && index_ < timesteps_.size() && timesteps_[index_] == t)
    noise = nn::randn_like(sample, generator);
  return step_with_noise(model_output, t, sample, noise);
}

StepOutput DPMSolverMultistepScheduler::step_with_noise(const torch::Tensor& model_output, int64_t t,
                                                        const torch::Tensor& sample, const torch::Tensor& noise) {
  TORCH_CHECK(!timesteps_.empty(), "DPMSolverMultistepScheduler.step called before set_timesteps");
  TORCH_CHECK(index_ < timesteps_.size() && timesteps_[index_] == t, "DPMSolverMultistepScheduler.step expects timestep ",
              index_ < timesteps_.size() ? std::to_string(timesteps_[index_]) : std::string("none (the grid is done)"),
              " next; got ", t, " (call step on timesteps() in order; set_timesteps starts again)");
  const double ab_s = grid_ab_[index_], ab_t = grid_ab_[index_ + 1];
  auto x0 = predict_x0_eps(options_.prediction_type, model_output, sample, ab_s).x0;
  const double alpha_s = std::sqrt(ab_s), sigma_s = std::sqrt(1.0 - ab_s);
  const double alpha_t = std::sqrt(ab_t), sigma_t = std::sqrt(1.0 - ab_t);
  // α_t (e^{−h} − 1) with e^{−h} = (σ_t/α_t)/(σ_s/α_s): finite also for the final σ_t = 0.
  const double phi = sigma_t * alpha_s / sigma_s - alpha_t;
  const bool last = index_ + 1 == timesteps_.size();
  torch::Tensor d = x0;
  if (options_.solver_order == 2 && prev_x0_.defined() && !last) {
    const double ab_r = grid_ab_[index_ - 1];
    const double lambda_r = 0.5 * std::log(ab_r / (1.0 - ab_r)), lambda_s = 0.5 * std::log(ab_s / (1.0 - ab_s)),
                 lambda_t = 0.5 * std::log(ab_t / (1.0 - ab_t));
    const double r = (lambda_s - lambda_r) / (lambda_t - lambda_s);
    d = (1.0 + 0.5 / r) * x0 - (0.5 / r) * prev_x0_;
  }
  torch::Tensor prev;
  if (!stochastic()) {
    prev = (sigma_t / sigma_s) * sample - phi * d;
  } else {
    // e^{−h} = (σ_t/α_t)/(σ_s/α_s): 0 at the final σ_t = 0, where the step is x̂0 itself and draws no noise.
    const double e_h = sigma_t * alpha_s / (alpha_t * sigma_s), one_minus_e2h = 1.0 - e_h * e_h;
    prev = (sigma_t / sigma_s * e_h) * sample + (alpha_t * one_minus_e2h) * d;
    if (!last) {
      TORCH_CHECK(noise.defined() && noise.sizes() == sample.sizes(), "DPMSolverMultistepScheduler (sde-dpmsolver++) needs ",
                  "noise of the sample's shape ", sample.sizes(), " at timestep ", t);
      prev = prev + (sigma_t * std::sqrt(one_minus_e2h)) * noise;
    }
  }
  prev_x0_ = x0;
  ++index_;
  return {prev, x0};
}

}  // namespace brainspade
