// Noise schedules, DDPM and DDIM: closed forms written out here, golden steps from scripts/make_golden.py.
#include <cmath>

#include <gtest/gtest.h>

#include "brainspade/core/config.h"
#include "brainspade/nn/blocks.h"
#include "brainspade/schedulers/ddim_scheduler.h"
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
  auto g = nn::make_generator(seed);
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
  auto out = sched.step(eps, t, x, nn::make_generator(77));
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
  auto out = sched.step(g["model_output"], g["t"].item<int64_t>(), g["sample"], nn::make_generator(1234));
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
  auto out = sched.step(eps, 501, x, nn::make_generator(5));
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
                          nn::make_generator(99));
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
