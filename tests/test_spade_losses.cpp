// Image-generator losses against values computed by hand on tiny inputs.
#include <gtest/gtest.h>

#include "brainspade/losses/spade_losses.h"
#include "support/helpers.h"

using namespace brainspade;

namespace {
torch::Tensor t(std::vector<double> v) { return torch::tensor(v, torch::kFloat).view({1, 1, 1, -1}); }
double val(const torch::Tensor& x) { return x.item<double>(); }
}  // namespace

TEST(SpadeLosses, HingeDiscriminatorAndGeneratorByHand) {
  // Two scales; only the last entry (logits) counts.
  DiscriminatorFeatures real = {{t({9, 9}), t({2.0, 0.5})}, {t({7}), t({-1.0, 0.0})}};
  DiscriminatorFeatures fake = {{t({9}), t({-2.0, 0.5})}, {t({7}), t({1.0, -0.5})}};
  // real: scale 0: min(D-1,0) = [0, -0.5] -> -mean = 0.25; scale 1: [-2, -1] -> 1.5; mean over scales 0.875
  EXPECT_NEAR(val(loss_gan_d_real(real)), 0.875, 1e-6);
  // fake: min(-D-1,0): scale 0 [0, -1.5] -> 0.75; scale 1 [-2, -0.5] -> 1.25; mean 1.0
  EXPECT_NEAR(val(loss_gan_d_fake(fake)), 1.0, 1e-6);
  // G: -mean(D): scale 0 0.75; scale 1 -0.25; mean 0.25
  EXPECT_NEAR(val(loss_gan_g(fake)), 0.25, 1e-6);
}

TEST(SpadeLosses, FeatureMatchingSkipsLogitsAndDividesByNumD) {
  DiscriminatorFeatures real = {{t({1, 2}), t({0, 0}), t({100})}, {t({0}), t({5})}};
  DiscriminatorFeatures fake = {{t({2, 4}), t({1, -1}), t({-100})}, {t({3}), t({-5})}};
  // scale 0: L1 [1,2] -> 1.5, [1,1] -> 1; scale 1: [3] -> 3. Sum 5.5 / 2 scales = 2.75
  EXPECT_NEAR(val(loss_feature_matching(fake, real)), 2.75, 1e-6);
}

TEST(SpadeLosses, FeatureMatchingDoesNotBackpropagateIntoRealFeatures) {
  auto r = torch::ones({1, 1, 1, 2}, torch::requires_grad());
  auto f = torch::zeros({1, 1, 1, 2}, torch::requires_grad());
  DiscriminatorFeatures real = {{r, t({0})}}, fake = {{f, t({0})}};
  loss_feature_matching(fake, real).backward();
  EXPECT_FALSE(r.grad().defined());
  EXPECT_TRUE(f.grad().defined());
}

TEST(SpadeLosses, KldIsTheSummedSpadeForm) {
  auto mu = torch::tensor({{1.0f, 0.0f}, {0.0f, 2.0f}});
  auto logvar = torch::tensor({{0.0f, std::log(2.0f)}, {0.0f, 0.0f}});
  // per element -0.5(1 + lv - mu^2 - e^lv): (1,0)->0.5; (0,ln2)->-0.5(1+ln2-2)=0.5(1-ln2); (0,0)->0; (2,0)->2
  const double expected = 0.5 + 0.5 * (1 - std::log(2.0)) + 0.0 + 2.0;
  EXPECT_NEAR(val(loss_kld(mu, logvar)), expected, 1e-6);
  EXPECT_NEAR(val(loss_kld(torch::zeros({4, 3}), torch::zeros({4, 3}))), 0.0, 1e-7);
}

TEST(SpadeLosses, ModalityDatasetBceOnOneHotTargets) {
  ClassifierOutput out;
  out.modality_logits = torch::tensor({{0.0f, 0.0f}});
  out.dataset_logits = torch::tensor({{2.0f, -1.0f, 0.0f}});
  auto l = loss_modality_dataset(out, torch::tensor({1}), torch::tensor({0}), 2.5, 1.0);
  // modality: both logits 0 -> BCE log 2 each -> mean log 2
  EXPECT_NEAR(val(l.modality), std::log(2.0), 1e-6);
  // dataset: target [1,0,0]: -log s(2), -log(1-s(-1)), -log(1-s(0)) = softplus(-2), softplus(-1), log 2
  auto sp = [](double x) { return std::log1p(std::exp(x)); };
  const double ds = (sp(-2.0) + sp(-1.0) + std::log(2.0)) / 3.0;
  EXPECT_NEAR(val(l.dataset), ds, 1e-6);
  EXPECT_NEAR(val(l.total), 2.5 * std::log(2.0) + ds, 1e-5);
}

TEST(SpadeLosses, ContrastiveStyleIsOneMinusCosine) {
  auto z = torch::tensor({{1.0f, 0.0f}, {1.0f, 1.0f}});
  auto za = torch::tensor({{0.0f, 3.0f}, {2.0f, 2.0f}});
  // sample 0 orthogonal: 1; sample 1 parallel: 0 -> mean 0.5
  EXPECT_NEAR(val(loss_contrastive_style(z, za)), 0.5, 1e-6);
  EXPECT_NEAR(val(loss_contrastive_style(z, -z)), 2.0, 1e-6);
}
