// The domain-randomisation baseline generator: drawn statistics, determinism, background, bad input.
#include <cmath>

#include <gtest/gtest.h>

#include "brainspade/core/error.h"
#include "brainspade/sampling/randomized_images.h"

using namespace brainspade;

namespace {

// A 4-channel PV map [4, 32, 40]: background border, three pure-tissue bands and a mixed band between two of them.
torch::Tensor band_map() {
  auto pv = torch::zeros({4, 32, 40});
  pv[0].fill_(1.0);
  auto set = [&](int64_t c, int64_t x0, int64_t x1, double w) {
    pv[0].narrow(0, 4, 24).narrow(1, x0, x1 - x0).fill_(0.0);
    pv[c].narrow(0, 4, 24).narrow(1, x0, x1 - x0).add_(w);
  };
  set(1, 4, 12, 1.0);   // pure tissue 1
  set(2, 12, 20, 1.0);  // pure tissue 2
  set(3, 20, 28, 1.0);  // pure tissue 3
  set(2, 28, 36, 0.5);  // half tissue 2, half tissue 3
  set(3, 28, 36, 0.5);
  return pv;
}

RandomizedImageOptions plain() {  // only the tissue Gaussians: no bias, blur, noise or normalisation
  RandomizedImageOptions o;
  o.bias_field_degree = 0;
  o.blur_sigma = {0.0, 0.0};
  o.noise_sd = {0.0, 0.0};
  o.normalise = false;
  return o;
}

}  // namespace

TEST(RandomizedImages, PureTissueMeanMatchesTheDrawnMeanAndMixesFollowThePVWeights) {
  auto pv = band_map();
  auto r = randomized_image(pv, plain(), 7);
  ASSERT_EQ(r.image.sizes(), (std::vector<int64_t>{1, 32, 40}));
  ASSERT_EQ(r.means.size(), 4u);
  EXPECT_EQ(r.means[0], 0.0);
  EXPECT_EQ(r.sds[0], 0.0);
  auto img = r.image[0];
  for (int64_t c = 1; c <= 3; ++c) {
    auto region = img.narrow(0, 4, 24).narrow(1, 4 + 8 * (c - 1), 8);  // 192 pure pixels
    // Standard error of the mean of 192 pixels is sd/13.9; 5 standard errors + float slack.
    EXPECT_NEAR(region.mean().item<double>(), r.means[c], 5 * r.sds[c] / std::sqrt(192.0) + 1e-5) << "tissue " << c;
    EXPECT_NEAR(region.std().item<double>(), r.sds[c], 0.25 * r.sds[c] + 1e-5) << "tissue " << c;
  }
  auto mixed = img.narrow(0, 4, 24).narrow(1, 28, 8).mean().item<double>();
  EXPECT_NEAR(mixed, 0.5 * (r.means[2] + r.means[3]), 5 * 0.5 * (r.sds[2] + r.sds[3]) / std::sqrt(192.0) + 1e-5);
}

TEST(RandomizedImages, TissueMeansDifferAcrossSeedsAndTheSameSeedGivesTheSameBytes) {
  auto pv = band_map();
  RandomizedImageOptions o;  // defaults: bias field, blur and noise on
  auto a = randomized_image(pv, o, 1), b = randomized_image(pv, o, 2), a2 = randomized_image(pv, o, 1);
  EXPECT_TRUE(torch::equal(a.image, a2.image));
  EXPECT_EQ(a.means, a2.means);
  EXPECT_FALSE(torch::equal(a.image, b.image));
  int differ = 0;
  for (int c = 1; c <= 3; ++c) differ += std::abs(a.means[c] - b.means[c]) > 1e-6;
  EXPECT_EQ(differ, 3);
  // The contrast ordering itself is random: over 20 seeds tissue 1 is sometimes brighter than tissue 3, sometimes not.
  int brighter = 0;
  for (uint64_t s = 0; s < 20; ++s) {
    auto r = randomized_image(pv, plain(), s);
    brighter += r.means[1] > r.means[3];
  }
  EXPECT_GT(brighter, 0);
  EXPECT_LT(brighter, 20);
}

TEST(RandomizedImages, BackgroundIsZeroAndTheBrainIsZScored) {
  auto pv = band_map();
  RandomizedImageOptions o;
  o.blur_sigma = {1.5, 1.5};
  o.noise_sd = {0.05, 0.05};
  auto r = randomized_image(pv, o, 11);
  auto img = r.image[0];
  auto bg = pv[0] > 0.99;
  EXPECT_EQ(img.masked_select(bg).abs().max().item<double>(), 0.0);
  auto brain = img.masked_select(pv[0] < 0.5);
  EXPECT_NEAR(brain.mean().item<double>(), 0.0, 1e-4);
  EXPECT_NEAR(brain.std().item<double>(), 1.0, 1e-4);
  EXPECT_FALSE(torch::isnan(img).any().item<bool>());
  EXPECT_NEAR(r.blur_sigma, 1.5, 1e-12);
}

TEST(RandomizedImages, BadRangesAndShapesAreInputErrors) {
  auto pv = band_map();
  auto o = plain();
  o.mean_range = {1.0, 0.0};
  try {
    randomized_image(pv, o, 0);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("randomized.mean_range"), std::string::npos) << e.what();
  }
  EXPECT_THROW(randomized_image(torch::zeros({32, 40}), plain(), 0), InputError);
}
