#pragma once
/// DPM-Solver++ (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models",
/// Algorithm 2, "2M"): a multistep solver of the diffusion ODE in the data-prediction form. With α_t = √ᾱ_t,
/// σ_t = √(1 − ᾱ_t), λ_t = log(α_t/σ_t) and h_i = λ_{t_i} − λ_{t_{i−1}}, each step is
///   x_{t_i} = (σ_{t_i}/σ_{t_{i−1}}) x_{t_{i−1}} − α_{t_i} (e^{−h_i} − 1) D_i,
///   D_i = x̂0(t_{i−1})                                           (first order: the first step, and the last one)
///   D_i = (1 + 1/(2 r_i)) x̂0(t_{i−1}) − 1/(2 r_i) x̂0(t_{i−2}),  r_i = h_{i−1}/h_i   (second order otherwise).
/// The stochastic form ("sde-dpmsolver++", Lu et al. 2022b §5 / diffusers' SDE-DPM-Solver++ with its midpoint
/// second-order term) solves the reverse SDE instead, with the same D_i:
///   x_{t_i} = (σ_{t_i}/σ_{t_{i−1}}) e^{−h_i} x_{t_{i−1}} + α_{t_i} (1 − e^{−2h_i}) D_i + σ_{t_i} √(1 − e^{−2h_i}) z_i,
/// z_i ~ N(0, I): one draw per step except the last (σ = 0). Its first order is DDIM with η = 1 (the DDPM posterior
/// variance) on the same grid.
/// The network may predict ε, v or x0 (converted to x̂0 with the ᾱ of the grid point). The last step goes to σ = 0,
/// the clean sample, in first order ("lower_order_final": a second-order step to σ = 0 has r = 0).
///
/// Grids of S points (T training steps):
///   "linspace" (diffusers' default for this solver): round(linspace(0, T − 1, S + 1)) (half to even, as numpy) descending, the last point
///              (t = 0) dropped — it is where the final step lands;
///   "leading":  t ∈ {0, c, ..., (S − 1)c}, c = T / S (DDIM's diffusers grid);
///   use_karras_sigmas: σ = √((1 − ᾱ)/ᾱ) spaced as Karras et al. 2022 eq. 5 (ρ = 7) between the schedule's largest and
///              smallest σ; the network gets the timestep found by linear interpolation of log σ (rounded half to even, as numpy), the
///              solver the exact σ.
/// The solver keeps the previous x̂0: step() must be called on timesteps() in order; set_timesteps() resets it.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"
#include "brainspade/schedulers/noise_schedule.h"

namespace brainspade {

struct DPMSolverOptions {
  int64_t num_train_timesteps = 1000;
  std::string beta_schedule = "scaled_linear";
  double beta_start = 0.0015;
  double beta_end = 0.0195;
  std::string prediction_type = "epsilon";  ///< epsilon | v_prediction | sample
  std::string timestep_spacing = "linspace"; ///< linspace | leading
  bool use_karras_sigmas = false;
  int64_t solver_order = 2;                  ///< 1 (= DDIM with η 0, or η 1 for the SDE) | 2
  std::string algorithm_type = "dpmsolver++"; ///< dpmsolver++ (the ODE, no noise) | sde-dpmsolver++ (noise per step)
  void visit(ConfigVisitor& v);
};

class DPMSolverMultistepScheduler {
 public:
  explicit DPMSolverMultistepScheduler(const DPMSolverOptions& options = {});

  /// Builds the S-point grid (see the header comment) and forgets the previous x̂0.
  void set_timesteps(int64_t num_inference_steps);
  /// Integer timesteps the network is called with, descending.
  const std::vector<int64_t>& timesteps() const { return timesteps_; }
  /// ᾱ the solver uses at grid point i (i = S: 1, the clean sample).
  double alpha_bar_at(size_t i) const { return grid_ab_.at(i); }

  torch::Tensor add_noise(const torch::Tensor& x0, const torch::Tensor& noise, const torch::Tensor& t) const;

  /// One solver step from grid point t (the next of timesteps(), in order) to the following one. The ODE draws no
  /// noise; the SDE draws z from `generator` (randn_like(sample)) on every step but the last.
  StepOutput step(const torch::Tensor& model_output, int64_t t, const torch::Tensor& sample,
                  std::optional<torch::Generator> generator = std::nullopt);
  /// The same step with the SDE's z given (ignored by the ODE and on the last step): the golden tests.
  StepOutput step_with_noise(const torch::Tensor& model_output, int64_t t, const torch::Tensor& sample,
                             const torch::Tensor& noise);
  bool stochastic() const { return options_.algorithm_type == "sde-dpmsolver++"; }

  const DPMSolverOptions& options() const { return options_; }
  const torch::Tensor& alphas_cumprod() const { return alphas_cumprod_; }

 private:
  DPMSolverOptions options_;
  torch::Tensor alphas_cumprod_;
  std::vector<double> ab_;
  std::vector<int64_t> timesteps_;
  std::vector<double> grid_ab_;  // [S + 1]: ᾱ of each grid point, then 1
  size_t index_ = 0;             // next grid point step() expects
  torch::Tensor prev_x0_;        // x̂0 at the previous grid point (second order)
};

}  // namespace brainspade
