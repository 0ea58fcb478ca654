// Noise schedules, DDPM and DDIM: closed forms written out here, golden steps from scripts/make_golden.py.
#include <cmath>

#include <gtest/gtest.h>

#include "brainspade/core/config.h"
#include "brainspade/nn/blocks.h"
#include "brainspade/schedulers/ddim_scheduler.h"
#include "brainspade/schedulers/dpm_solver.h"
#include "brainspade/schedulers/ddpm_scheduler.h"
#include "support/helpers.h"

using namespace brainspade;

namespace {
// ᾱ_t = Π_{s<=t} (1 − β_s) with β from the formula of each schedule, in plain doubles.
double alpha_bar_formula(const std::string& schedule, int64_t t, int64_t T = 1000, double b0 = 0.0015, double b1 = 0.0195) {
  double ab = 1.0;
  for (int64_t s = 0; s <= t; ++s) {
    double frac = static_cast<double>(s) / (T - 1);
    double beta = schedule == "linear" ? b0 + frac * (b1 - b0)
                                       : std::pow(std::sqrt(b0) + frac * (std::sqrt(b1) - std::sqrt(b0)), 2);
    ab *= 1.0 - beta;
  }
  return ab;
}
torch::Tensor randn(std::vector<int64_t> shape, uint64_t seed) {
  auto g = make_generator(seed);
  return torch::randn(shape, c10::optional<torch::Generator>(g));
}
}  // namespace

TEST(NoiseSchedule, AlphaBarMatchesTheFormulaForLinearAndScaledLinear) {
  for (std::string schedule : {"linear", "scaled_linear"}) {
    auto ab = alphas_cumprod_from_betas(make_betas(schedule, 1000, 0.0015, 0.0195));
    for (int64_t t : {0, 499, 999}) {
      double expect = alpha_bar_formula(schedule, t);
      EXPECT_NEAR(ab[t].item<double>(), expect, 1e-12 + 1e-9 * expect) << schedule << " t=" << t;
    }
  }
  // The two differ noticeably: the notes quote ᾱ_999 ≈ 1.42e-4 (scaled) vs ≈ 2.6e-5 (true linear).
  auto scaled = alphas_cumprod_from_betas(make_betas("scaled_linear", 1000, 0.0015, 0.0195));
  auto linear = alphas_cumprod_from_betas(make_betas("linear", 1000, 0.0015, 0.0195));
  EXPECT_NEAR(scaled[999].item<double>(), 1.42e-4, 0.02e-4);
  EXPECT_NEAR(linear[999].item<double>(), 2.6e-5, 0.1e-5);
  EXPECT_NEAR(make_betas("scaled_linear", 1000, 0.0015, 0.0195)[999].item<double>(), 0.0195, 1e-12);
}

TEST(NoiseSchedule, CosineIsClippedAndDecreasing) {
  auto betas = make_betas("cosine", 1000, 0.0, 0.0);
  EXPECT_LE(betas.max().item<double>(), 0.999 + 1e-12);
  EXPECT_GT(betas.min().item<double>(), 0.0);
  auto ab = alphas_cumprod_from_betas(betas);
  EXPECT_TRUE((ab.slice(0, 1) < ab.slice(0, 0, -1)).all().item<bool>());
  // ᾱ(1)/ᾱ(0) with s = 0.008 (Nichol & Dhariwal eq. 17).
  const double pi = 3.14159265358979323846, s = 0.008;
  auto f = [&](double t) { return std::pow(std::cos((t / 1000.0 + s) / (1 + s) * pi / 2), 2); };
  EXPECT_NEAR(ab[0].item<double>(), f(1) / f(0), 1e-12);
}

TEST(DDPMScheduler, AddNoiseMatchesClosedForm) {
  DDPMScheduler sched;
  auto x0 = randn({3, 3, 4, 5}, 1), noise = randn({3, 3, 4, 5}, 2);
  auto t = torch::tensor({0, 499, 999}, torch::kLong);
  auto xt = sched.add_noise(x0, noise, t);
  for (int64_t i = 0; i < 3; ++i) {
    double ab = alpha_bar_formula("scaled_linear", t[i].item<int64_t>());
    auto expect = std::sqrt(ab) * x0[i] + std::sqrt(1 - ab) * noise[i];
    EXPECT_TRUE(testutil::tensors_close(xt[i], expect, 1e-6, 1e-5));
  }
}

TEST(DDPMScheduler, TrainingTargetsAreConsistentForEveryPredictionType) {
  auto x0 = randn({2, 3, 4, 4}, 3), noise = randn({2, 3, 4, 4}, 4);
  auto t = torch::tensor({37, 812}, torch::kLong);
  for (std::string type : {"epsilon", "v_prediction", "sample"}) {
    DDPMSchedulerOptions o;
    o.prediction_type = type;
    DDPMScheduler sched(o);
    auto xt = sched.add_noise(x0, noise, t);
    auto target = sched.training_target(x0, noise, t);
    for (int64_t i = 0; i < 2; ++i) {
      double ab = sched.alphas_cumprod()[t[i].item<int64_t>()].item<double>();
      auto back = predict_x0_eps(type, target[i], xt[i], ab);
      EXPECT_TRUE(testutil::tensors_close(back.x0, x0[i], 1e-4, 1e-4)) << type;
      EXPECT_TRUE(testutil::tensors_close(back.eps, noise[i], 1e-4, 1e-4)) << type;
    }
  }
  // v = √ᾱ ε − √(1−ᾱ) x0
  DDPMScheduler sched;
  auto v = sched.get_velocity(x0, noise, t);
  double ab = alpha_bar_formula("scaled_linear", 37);
  EXPECT_TRUE(testutil::tensors_close(v[0], std::sqrt(ab) * noise[0] - std::sqrt(1 - ab) * x0[0], 1e-6, 1e-5));
}

TEST(DDPMScheduler, OneStepMatchesThePosteriorFormula) {
  DDPMScheduler sched;
  auto x = randn({2, 3, 4, 4}, 5), eps = randn({2, 3, 4, 4}, 6);
  const int64_t t = 500;
  auto out = sched.step(eps, t, x, make_generator(77));
  double a = alpha_bar_formula("scaled_linear", t), ap = alpha_bar_formula("scaled_linear", t - 1);
  double beta = 1 - a / ap;
  auto x0 = (x - std::sqrt(1 - a) * eps) / std::sqrt(a);
  auto mean = std::sqrt(ap) * beta / (1 - a) * x0 + std::sqrt(1 - beta) * (1 - ap) / (1 - a) * x;
  auto z = randn({2, 3, 4, 4}, 77);
  auto expect = mean + std::sqrt(beta * (1 - ap) / (1 - a)) * z;
  EXPECT_TRUE(testutil::tensors_close(out.pred_original_sample, x0, 1e-5, 1e-5));
  EXPECT_TRUE(testutil::tensors_close(out.prev_sample, expect, 1e-5, 1e-5));
  // t = 0 adds no noise and lands on x0 (ᾱ_prev = 1).
  auto last = sched.step(eps, 0, x);
  EXPECT_TRUE(testutil::tensors_close(last.prev_sample, last.pred_original_sample, 1e-5, 1e-5));
}

TEST(DDPMScheduler, StepMatchesGoldenFromPython) {
  auto g = testutil::load_golden("ddpm_step");
  ASSERT_FALSE(g.empty());
  DDPMScheduler sched;
  EXPECT_TRUE(testutil::tensors_close(sched.alphas_cumprod(), g["alphas_cumprod"], 1e-12, 1e-10));
  // The C++ CPU generator and Python's draw the same numbers for the same seed.
  EXPECT_TRUE(testutil::tensors_close(randn({2, 3, 6, 8}, 1234), g["noise_seed1234"], 0, 0));
  auto out = sched.step(g["model_output"], g["t"].item<int64_t>(), g["sample"], make_generator(1234));
  EXPECT_TRUE(testutil::tensors_close(out.pred_original_sample, g["pred_x0"], 1e-5, 1e-5));
  EXPECT_TRUE(testutil::tensors_close(out.prev_sample, g["prev_sample"], 1e-5, 1e-5));
}

TEST(DDPMScheduler, SetTimestepsUsesTheLeadingGrid) {
  DDPMScheduler sched;
  EXPECT_EQ(sched.timesteps().size(), 1000u);
  sched.set_timesteps(10);
  EXPECT_EQ(sched.timesteps(), (std::vector<int64_t>{900, 800, 700, 600, 500, 400, 300, 200, 100, 0}));
}

TEST(DDIMScheduler, CompVisGridMatchesTheAuthors) {
  DDIMScheduler sched;
  sched.set_timesteps(50);
  ASSERT_EQ(sched.timesteps().size(), 50u);
  EXPECT_EQ(sched.timesteps().front(), 981);
  EXPECT_EQ(sched.timesteps().back(), 1);
  sched.set_timesteps(80);  // c = 12 → range(0, 1000, 12) has 84 entries, the last 996 + 1
  EXPECT_EQ(sched.timesteps().size(), 84u);
  EXPECT_EQ(sched.timesteps().front(), 997);
  EXPECT_DOUBLE_EQ(sched.alpha_bar_prev(1), sched.alphas_cumprod()[0].item<double>());

  DDIMSchedulerOptions o;
  o.timestep_spacing = "leading";
  DDIMScheduler leading(o);
  leading.set_timesteps(50);
  EXPECT_EQ(leading.timesteps().front(), 980);
  EXPECT_EQ(leading.timesteps().back(), 0);
  EXPECT_DOUBLE_EQ(leading.alpha_bar_prev(0), 1.0);
}

TEST(DDIMScheduler, EtaZeroIsDeterministicAndMatchesTheFormula) {
  DDIMSchedulerOptions o;
  o.eta = 0.0;
  DDIMScheduler sched(o);
  sched.set_timesteps(50);
  auto x = randn({2, 3, 4, 4}, 8), eps = randn({2, 3, 4, 4}, 9);
  auto a = sched.step(eps, 501, x), b = sched.step(eps, 501, x);
  EXPECT_TRUE(torch::equal(a.prev_sample, b.prev_sample));
  double at = alpha_bar_formula("scaled_linear", 501), ap = alpha_bar_formula("scaled_linear", 481);
  auto x0 = (x - std::sqrt(1 - at) * eps) / std::sqrt(at);
  EXPECT_TRUE(testutil::tensors_close(a.prev_sample, std::sqrt(ap) * x0 + std::sqrt(1 - ap) * eps, 1e-5, 1e-5));
}

TEST(DDIMScheduler, EtaOneStepMatchesTheFormula) {
  DDIMScheduler sched;  // η = 1, CompVis grid
  sched.set_timesteps(50);
  auto x = randn({2, 3, 4, 4}, 10), eps = randn({2, 3, 4, 4}, 11);
  auto out = sched.step(eps, 501, x, make_generator(5));
  double at = alpha_bar_formula("scaled_linear", 501), ap = alpha_bar_formula("scaled_linear", 481);
  double sigma = std::sqrt((1 - ap) / (1 - at)) * std::sqrt(1 - at / ap);
  auto x0 = (x - std::sqrt(1 - at) * eps) / std::sqrt(at);
  auto expect = std::sqrt(ap) * x0 + std::sqrt(1 - ap - sigma * sigma) * eps + sigma * randn({2, 3, 4, 4}, 5);
  EXPECT_TRUE(testutil::tensors_close(out.prev_sample, expect, 1e-5, 1e-5));
}

TEST(DDIMScheduler, StepsMatchGoldenFromPython) {
  auto g = testutil::load_golden("ddim_step");
  ASSERT_FALSE(g.empty());
  for (std::string name : {"t21_eta1", "t1_eta1", "t981_eta0"}) {
    DDIMSchedulerOptions o;
    o.eta = name == "t981_eta0" ? 0.0 : 1.0;
    DDIMScheduler sched(o);
    sched.set_timesteps(50);
    auto out = sched.step(g[name + ".model_output"], g[name + ".t"].item<int64_t>(), g[name + ".sample"],
                          make_generator(99));
    std::printf("  %s\n", name.c_str());
    EXPECT_TRUE(testutil::tensors_close(out.pred_original_sample, g[name + ".pred_x0"], 1e-5, 1e-5)) << name;
    EXPECT_TRUE(testutil::tensors_close(out.prev_sample, g[name + ".prev_sample"], 1e-5, 1e-5)) << name;
  }
}

TEST(DDIMScheduler, GridThatLeavesTheScheduleIsRejected) {
  DDIMScheduler sched;
  EXPECT_NO_THROW(sched.set_timesteps(1));            // range(0, 1000, 1000) + 1 = {1}
  EXPECT_THROW(sched.set_timesteps(333), c10::Error);  // c = 3: range(0, 1000, 3) + 1 ends at 1000
  EXPECT_THROW(sched.set_timesteps(1000), c10::Error);
}

TEST(SchedulerOptions, LoadFromYamlAndRejectUnknownChoices) {
  auto o = load_config_text<DDIMSchedulerOptions>("eta: 0.0\ntimestep_spacing: leading\nbeta_schedule: linear\n");
  EXPECT_DOUBLE_EQ(o.eta, 0.0);
  EXPECT_EQ(o.timestep_spacing, "leading");
  EXPECT_THROW(load_config_text<DDPMSchedulerOptions>("prediction_type: eps\n"), InputError);
  auto d = load_config_text<DDPMSchedulerOptions>("variance_type: fixed_large\n");
  EXPECT_EQ(d.variance_type, "fixed_large");
}

namespace {
// The stand-in network of scripts/make_golden.py golden_dpm_solver.
torch::Tensor stand_in_model(const torch::Tensor& x, int64_t t) {
  return torch::tanh(0.5 * x) * (0.5 + double(t) / 2000.0) + 0.1 * torch::cos(3.0 * x);
}
}  // namespace

TEST(DPMSolver, TrajectoriesMatchTheIndependentPythonSolverStepByStep) {
  auto g = testutil::load_golden("dpm_solver");
  ASSERT_FALSE(g.empty());
  struct Case {
    std::string name, schedule;
    double b0, b1;
    std::string prediction, spacing;
    bool karras;
    int64_t steps, order;
    bool sde = false;
  };
  for (const Case& c : {Case{"eps_scaled_linspace15", "scaled_linear", 0.0015, 0.0195, "epsilon", "linspace", false, 15, 2},
                        Case{"v_cosine_leading10", "cosine", 0.0001, 0.02, "v_prediction", "leading", false, 10, 2},
                        Case{"eps_karras10", "scaled_linear", 0.0015, 0.0195, "epsilon", "linspace", true, 10, 2},
                        Case{"x0_linear_linspace12", "linear", 0.0001, 0.02, "sample", "linspace", false, 12, 2},
                        Case{"eps_order1_linspace8", "scaled_linear", 0.0015, 0.0195, "epsilon", "linspace", false, 8, 1},
                        Case{"sde_eps_scaled_linspace15", "scaled_linear", 0.0015, 0.0195, "epsilon", "linspace", false, 15, 2, true},
                        Case{"sde_v_cosine_karras10", "cosine", 0.0001, 0.02, "v_prediction", "linspace", true, 10, 2, true},
                        Case{"sde_eps_order1_leading8", "scaled_linear", 0.0015, 0.0195, "epsilon", "leading", false, 8, 1, true}}) {
    SCOPED_TRACE(c.name);
    DPMSolverOptions o;
    o.beta_schedule = c.schedule;
    o.beta_start = c.b0;
    o.beta_end = c.b1;
    o.prediction_type = c.prediction;
    o.timestep_spacing = c.spacing;
    o.use_karras_sigmas = c.karras;
    o.solver_order = c.order;
    o.algorithm_type = c.sde ? "sde-dpmsolver++" : "dpmsolver++";
    DPMSolverMultistepScheduler sched(o);
    sched.set_timesteps(c.steps);
    auto noise = c.sde ? g.at(c.name + ".noise") : torch::Tensor();  // the SDE's z, one per step
    auto ts = g[c.name + ".timesteps"];
    auto abg = g[c.name + ".alpha_bars"];
    auto traj = g[c.name + ".trajectory"];
    ASSERT_EQ(static_cast<int64_t>(sched.timesteps().size()), ts.numel());
    for (int64_t i = 0; i < ts.numel(); ++i) {
      EXPECT_EQ(sched.timesteps()[i], ts[i].item<int64_t>()) << "grid point " << i;
      EXPECT_NEAR(sched.alpha_bar_at(i), abg[i].item<double>(), 1e-12) << "grid point " << i;
    }
    auto x = traj[0].clone();
    for (size_t i = 0; i < sched.timesteps().size(); ++i) {
      const int64_t t = sched.timesteps()[i];
      x = c.sde ? sched.step_with_noise(stand_in_model(x, t), t, x, noise[i]).prev_sample
                : sched.step(stand_in_model(x, t), t, x).prev_sample;
      EXPECT_TRUE(testutil::tensors_close(x, traj[i + 1], 1e-9, 1e-9)) << "after step " << i;
    }
  }
}

TEST(DPMSolver, ExactModelOfOnePointReturnsThatPoint) {
  // Data = one point x*: the exact ε-model is ε = (x − √ᾱ x*)/√(1 − ᾱ), so x̂0 = x* at every step and the solver must
  // land on x* whatever the order, grid or step count.
  auto target = torch::randn({1, 2, 4, 4}, torch::kDouble);
  for (int64_t steps : {1, 2, 7, 20}) {
    DPMSolverMultistepScheduler sched;
    sched.set_timesteps(steps);
    auto x = torch::randn({1, 2, 4, 4}, torch::kDouble);
    for (size_t i = 0; i < sched.timesteps().size(); ++i) {
      const double ab = sched.alpha_bar_at(i);
      auto eps = (x - std::sqrt(ab) * target) / std::sqrt(1 - ab);
      x = sched.step(eps, sched.timesteps()[i], x).prev_sample;
    }
    EXPECT_LT((x - target).abs().max().item<double>(), 1e-9) << steps << " steps";
  }
}

TEST(DPMSolver, SecondOrderSolvesTheGaussianODEBetterThanDDIMAtEqualSteps) {
  // Data ~ N(0, s²): the exact ε-model is E[ε | x_t] = σ x / (α² s² + σ²) and the probability-flow ODE keeps
  // x_t / √(ᾱ_t s² + 1 − ᾱ_t) constant. The error is measured at the last grid point, before the final first-order
  // jump to σ = 0 that every grid without Karras sigmas ends with (the same jump for both orders), and, with Karras
  // sigmas (whose last point is the schedule's smallest σ), at the endpoint.
  const double s = 0.5;
  auto model = [&](const torch::Tensor& x, double ab) { return std::sqrt(1 - ab) * x / (ab * s * s + 1 - ab); };
  auto xT = torch::randn({4, 8}, torch::kDouble);
  auto solve = [&](int64_t order, int64_t steps, bool karras, bool endpoint) {
    DPMSolverOptions o;
    o.solver_order = order;
    o.use_karras_sigmas = karras;
    DPMSolverMultistepScheduler sched(o);
    sched.set_timesteps(steps);
    const size_t n = sched.timesteps().size() - (endpoint ? 0 : 1);
    auto x = xT.clone();
    for (size_t i = 0; i < n; ++i)
      x = sched.step(model(x, sched.alpha_bar_at(i)), sched.timesteps()[i], x).prev_sample;
    const double ab0 = sched.alpha_bar_at(0), abn = sched.alpha_bar_at(n);
    auto exact = std::sqrt(abn * s * s + 1 - abn) * xT / std::sqrt(ab0 * s * s + 1 - ab0);
    return (x - exact).abs().max().item<double>() / exact.abs().max().item<double>();
  };
  const double ddim10 = solve(1, 10, false, false), dpm10 = solve(2, 10, false, false);
  const double ddim10k = solve(1, 10, true, true), dpm10k = solve(2, 10, true, true), dpm20k = solve(2, 20, true, true);
  std::printf("  relative error before the final jump: DDIM-10 %.2e, DPM-Solver++-10 %.2e\n", ddim10, dpm10);
  std::printf("  relative endpoint error, Karras sigmas: DDIM-10 %.2e, DPM-Solver++-10 %.2e, -20 %.2e\n", ddim10k, dpm10k,
              dpm20k);
  EXPECT_LT(dpm10, ddim10 / 3);
  EXPECT_LT(dpm10k, ddim10k / 3);
  EXPECT_LT(dpm20k, dpm10k / 1.5);  // more steps, less error (the last first-order jump from σ_min limits the order)
}

TEST(DPMSolver, StepOutOfOrderNamesTheExpectedTimestep) {
  DPMSolverMultistepScheduler sched;
  sched.set_timesteps(5);
  auto x = torch::zeros({1, 1, 2, 2});
  try {
    sched.step(x, sched.timesteps()[1], x);
    FAIL() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("expects timestep " + std::to_string(sched.timesteps()[0])), std::string::npos) << e.what();
  }
  sched.set_timesteps(5);  // starts again
  EXPECT_NO_THROW(sched.step(x, sched.timesteps()[0], x));
}

TEST(DPMSolver, FirstOrderIsDDIMWithEtaZeroOnTheSameGrid) {
  // Lu et al. 2022b §3.2: the first-order DPM-Solver++ step is the DDIM (η = 0) step.
  DPMSolverOptions po;
  po.solver_order = 1;
  po.timestep_spacing = "leading";
  DPMSolverMultistepScheduler dpm(po);
  DDIMSchedulerOptions dopt;
  dopt.eta = 0.0;
  dopt.timestep_spacing = "leading";
  DDIMScheduler ddim(dopt);
  dpm.set_timesteps(12);
  ddim.set_timesteps(12);
  ASSERT_EQ(dpm.timesteps(), ddim.timesteps());
  auto x = torch::randn({2, 3, 4, 4}, torch::kDouble), y = x.clone();
  for (int64_t t : ddim.timesteps()) {
    x = dpm.step(stand_in_model(x, t), t, x).prev_sample;
    y = ddim.step(stand_in_model(y, t), t, y).prev_sample;
  }
  EXPECT_LT((x - y).abs().max().item<double>(), 1e-9);
}

TEST(DPMSolver, FirstOrderSDEIsDDIMWithEtaOneOnTheSameGridAndNoise) {
  // The first-order SDE step's noise σ_t √(1 − e^{−2h}) equals DDIM's η = 1 σ (the DDPM posterior's), and its mean the
  // DDIM mean: with the same generator both draw the same z and must agree.
  DPMSolverOptions po;
  po.solver_order = 1;
  po.timestep_spacing = "leading";
  po.algorithm_type = "sde-dpmsolver++";
  DPMSolverMultistepScheduler dpm(po);
  DDIMSchedulerOptions dopt;
  dopt.eta = 1.0;
  dopt.timestep_spacing = "leading";
  dopt.clip_sample = false;
  DDIMScheduler ddim(dopt);
  dpm.set_timesteps(12);
  ddim.set_timesteps(12);
  ASSERT_EQ(dpm.timesteps(), ddim.timesteps());
  po.algorithm_type = "dpmsolver++";
  DPMSolverMultistepScheduler ode(po);
  ode.set_timesteps(12);
  auto x = torch::randn({2, 3, 4, 4}, torch::kDouble), y = x.clone(), z = x.clone();
  auto gen_a = at::detail::createCPUGenerator(5), gen_b = at::detail::createCPUGenerator(5);
  for (int64_t t : ddim.timesteps()) {
    x = dpm.step(stand_in_model(x, t), t, x, gen_a).prev_sample;
    y = ddim.step(stand_in_model(y, t), t, y, gen_b).prev_sample;
    z = ode.step(stand_in_model(z, t), t, z).prev_sample;
  }
  EXPECT_LT((x - y).abs().max().item<double>(), 1e-9);
  EXPECT_GT((x - z).abs().max().item<double>(), 1e-2);  // the noise is there: not the ODE's (η = 0) sample
}

TEST(DPMSolver, SDESamplesGaussianDataWithItsVariance) {
  // Data ~ N(0, s²) with the exact ε-model: both the ODE and the SDE solver must end with samples of sd s. A wrong
  // noise scale in the SDE (e.g. σ_t(1 − e^{−2h}) without the root) would shrink it. Few steps are not enough for this
  // check: in scripts/make_golden.py's solver, 200,000 samples, the SDE gives sd 0.510 / 0.519 / 0.503 / 0.499 at
  // 10 / 25 / 50 / 100 steps (its first order, DDIM η = 1: 0.317 / 0.409 / 0.450 / 0.473). Karras noise levels, so
  // that the final jump to σ = 0 starts at the schedule's smallest σ: from a linspace grid's last point (t ≈ 100 at
  // 10 steps) that jump is E[x0 | x_t], whose sd is ~0.7 s for this data, for any solver.
  const double s = 0.5;
  auto model = [&](const torch::Tensor& x, double ab) { return std::sqrt(1 - ab) * x / (ab * s * s + 1 - ab); };
  for (const std::string algo : {"dpmsolver++", "sde-dpmsolver++"}) {
    for (int64_t steps : {50, 100}) {
      DPMSolverOptions o;
      o.algorithm_type = algo;
      o.use_karras_sigmas = true;
      DPMSolverMultistepScheduler sched(o);
      sched.set_timesteps(steps);
      auto gen = at::detail::createCPUGenerator(11);
      auto x = torch::randn({20000}, gen).to(torch::kDouble);
      for (size_t i = 0; i < sched.timesteps().size(); ++i)
        x = sched.step(model(x, sched.alpha_bar_at(i)), sched.timesteps()[i], x, gen).prev_sample;
      const double sd = x.std().item<double>();
      std::printf("  %s, %ld steps: sample sd %.4f (data %.2f)\n", algo.c_str(), static_cast<long>(steps), sd, s);
      EXPECT_NEAR(sd, s, 0.02 * s) << algo << ", " << steps << " steps";
    }
  }
  // The SDE draws noise, the ODE does not: two generators give two SDE samples and one ODE sample.
  auto run = [&](const std::string& algo, uint64_t seed) {
    DPMSolverOptions o;
    o.algorithm_type = algo;
    DPMSolverMultistepScheduler sched(o);
    sched.set_timesteps(10);
    auto x = torch::ones({8}, torch::kDouble);
    auto gen = at::detail::createCPUGenerator(seed);
    for (size_t i = 0; i < sched.timesteps().size(); ++i)
      x = sched.step(model(x, sched.alpha_bar_at(i)), sched.timesteps()[i], x, gen).prev_sample;
    return x;
  };
  EXPECT_TRUE(torch::equal(run("dpmsolver++", 1), run("dpmsolver++", 2)));
  EXPECT_FALSE(torch::allclose(run("sde-dpmsolver++", 1), run("sde-dpmsolver++", 2)));
}
