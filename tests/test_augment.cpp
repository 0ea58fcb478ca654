// Augmentations: the affine transform is a true rotation/scale/translation in pixel units, and every random
// augmentation is reproducible from its generator and stays within its documented range.
#include <gtest/gtest.h>

#include <cmath>

#include "brainspade/data/augment.h"
#include "support/helpers.h"

using namespace brainspade;

namespace {
// Intensity-weighted centroid (x, y) of a [1, 1, H, W] image.
std::pair<double, double> centroid(const torch::Tensor& img) {
  auto im = img[0][0].to(torch::kDouble).clamp_min(0);
  const int64_t H = im.size(0), W = im.size(1);
  auto ys = torch::arange(H, torch::kDouble).view({H, 1});
  auto xs = torch::arange(W, torch::kDouble).view({1, W});
  const double m = im.sum().item<double>();
  return {(im * xs).sum().item<double>() / m, (im * ys).sum().item<double>() / m};
}
}  // namespace

TEST(Augment, AffineMovesABrightSpotWhereTheMatrixSays) {
  struct Case {
    AffineParams p;
  };
  const int64_t H = 48, W = 64;
  const double cx = (W - 1) / 2.0, cy = (H - 1) / 2.0;
  const double px = 40, py = 15;  // the spot, off-centre
  auto img = torch::zeros({1, 1, H, W});
  img[0][0][static_cast<int64_t>(py)][static_cast<int64_t>(px)] = 1.0;
  for (const auto& p : std::vector<AffineParams>{
           {0.0, 1.0, 3.0, -2.0}, {0.5, 1.0, 0.0, 0.0}, {-0.75, 1.2, 2.5, 1.5}, {M_PI / 2, 0.8, -3.0, 3.0}}) {
    SCOPED_TRACE("rot " + std::to_string(p.rotation) + " scale " + std::to_string(p.scale));
    auto out = apply_affine(img, {p}, "zeros", "bilinear");
    auto [ox, oy] = centroid(out);
    const double c = std::cos(p.rotation), s = std::sin(p.rotation);
    const double ex = cx + p.scale * (c * (px - cx) - s * (py - cy)) + p.tx;
    const double ey = cy + p.scale * (s * (px - cx) + c * (py - cy)) + p.ty;
    EXPECT_NEAR(ox, ex, 0.35);
    EXPECT_NEAR(oy, ey, 0.35);
  }
}

TEST(Augment, IntegerTranslationIsExact) {
  auto img = torch::rand({2, 1, 16, 20});
  auto out = apply_affine(img, {{0, 1, 2, 1}, {0, 1, 0, 0}}, "zeros", "bilinear");
  // out(y, x) = in(y - 1, x - 2)
  EXPECT_TRUE(testutil::tensors_close(out[0].slice(1, 1).slice(2, 2), img[0].slice(1, 0, 15).slice(2, 0, 18), 1e-5, 0));
  EXPECT_TRUE(testutil::tensors_close(out[1], img[1], 1e-5, 0));
}

TEST(Augment, RandomAffineIsReproducibleAndWithinRange) {
  RandomAffineOptions o;
  auto g1 = make_generator(7), g2 = make_generator(7);
  for (int i = 0; i < 50; ++i) {
    auto a = sample_affine(o, g1);
    auto b = sample_affine(o, g2);
    EXPECT_EQ(a.rotation, b.rotation);
    EXPECT_LE(std::abs(a.rotation), 0.75);
    EXPECT_LE(std::abs(a.scale - 1), 0.2);
    EXPECT_LE(std::abs(a.tx), 3.0);
    EXPECT_LE(std::abs(a.ty), 3.0);
  }
  auto img = torch::rand({3, 1, 24, 32});
  auto ga = make_generator(1), gb = make_generator(1);
  auto x = random_affine(img, o, ga);
  EXPECT_TRUE(torch::equal(x, random_affine(img, o, gb)));
  EXPECT_EQ(x.sizes(), img.sizes());
  // border padding keeps the value range of the input
  EXPECT_LE(x.max().item<double>(), img.max().item<double>() + 1e-6);
}

TEST(Augment, GammaContrastKeepsMinAndMaxAndIsMonotone) {
  auto g = make_generator(3);
  auto img = torch::randn({4, 1, 10, 12});
  auto out = random_gamma_contrast(img, 0.85, 1.25, g);
  for (int64_t b = 0; b < 4; ++b) {
    EXPECT_NEAR(out[b].min().item<double>(), img[b].min().item<double>(), 1e-5);
    EXPECT_NEAR(out[b].max().item<double>(), img[b].max().item<double>(), 1e-4);
    auto order_in = img[b].flatten().argsort();
    auto sorted_out = out[b].flatten().index_select(0, order_in);
    EXPECT_TRUE((sorted_out.slice(0, 1) - sorted_out.slice(0, 0, -1) >= -1e-6).all().item<bool>());
  }
}

TEST(Augment, NoiseStdIsInRange) {
  auto g = make_generator(4);
  auto img = torch::zeros({6, 1, 64, 64});
  auto out = random_gaussian_noise(img, 0.05, 0.15, g);
  for (int64_t b = 0; b < 6; ++b) {
    const double s = out[b].std().item<double>();
    EXPECT_GT(s, 0.045);
    EXPECT_LT(s, 0.16);
  }
}

TEST(Augment, BiasFieldIsSmoothPositiveAndFollowsMonaiForm) {
  auto g = make_generator(5);
  auto img = torch::ones({2, 1, 32, 40});
  auto field = random_bias_field(img, 0.2, 0.6, 3, g);
  EXPECT_TRUE((field > 0).all().item<bool>());
  // log field at the centre row/col: all P_odd(0) = 0, P_2(0) = -1/2 -> bounded by the coefficient range
  // smoothness: neighbouring log values differ little
  auto lf = field.log();
  EXPECT_LT((lf.slice(3, 1) - lf.slice(3, 0, -1)).abs().max().item<double>(), 0.5);
  // degree 0: a constant factor exp(c), c in [0.2, 0.6]
  auto f0 = random_bias_field(img, 0.2, 0.6, 0, g);
  const double c = f0.log()[0].mean().item<double>();
  EXPECT_GE(c, 0.2 - 1e-6);
  EXPECT_LE(c, 0.6 + 1e-6);
  EXPECT_NEAR(f0[0].std().item<double>(), 0.0, 1e-5);
  // The Legendre form (MONAI RandBiasField): log field = sum over i + j <= degree of c_ij P_i(x) P_j(y) on a [-1, 1]
  // grid. Degree 1 (P_0 = 1, P_1 = t) is a plane: every second difference, and the mixed one, vanish. Degree 2 adds
  // P_2 = (3t^2 - 1)/2 and x*y: a quadratic, whose third differences vanish but second differences do not.
  auto d1 = [](const torch::Tensor& t, int64_t dim) { return t.slice(dim, 1) - t.slice(dim, 0, -1); };
  auto l1 = random_bias_field(img, 0.2, 0.6, 1, g).log().to(torch::kDouble);  // [2, 1, 32, 40]
  EXPECT_LT(d1(d1(l1, 2), 2).abs().max().item<double>(), 1e-5);
  EXPECT_LT(d1(d1(l1, 3), 3).abs().max().item<double>(), 1e-5);
  EXPECT_LT(d1(d1(l1, 2), 3).abs().max().item<double>(), 1e-5);
  EXPECT_GT(d1(l1, 3).abs().max().item<double>(), 1e-4);  // not constant
  auto l2 = random_bias_field(img, 0.2, 0.6, 2, g).log().to(torch::kDouble);
  EXPECT_LT(d1(d1(d1(l2, 2), 2), 2).abs().max().item<double>(), 1e-5);
  EXPECT_LT(d1(d1(d1(l2, 3), 3), 3).abs().max().item<double>(), 1e-5);
  EXPECT_GT(d1(d1(l2, 2), 2).abs().max().item<double>() + d1(d1(l2, 3), 3).abs().max().item<double>(), 1e-6);
}

TEST(Augment, IntensityAugmentIsReproducible) {
  IntensityAugmentOptions o;
  auto img = torch::randn({2, 1, 16, 16});
  auto g1 = make_generator(9), g2 = make_generator(9);
  auto a = intensity_augment(img, o, g1);
  auto b = intensity_augment(img, o, g2);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, img));
  EXPECT_TRUE(torch::isfinite(a).all().item<bool>());
}

namespace {
// A partial-volume map [B, 3, H, W]: background, a disc of "tissue" and a one-pixel "sulcus" line, summing to 1.
torch::Tensor pv_maps(int64_t B, int64_t H, int64_t W) {
  auto y = torch::arange(H, torch::kFloat).view({H, 1}).expand({H, W});
  auto x = torch::arange(W, torch::kFloat).view({1, W}).expand({H, W});
  auto disc = ((y - H / 3.0).pow(2) + (x - W / 2.0).pow(2) < (H / 4.0) * (H / 4.0)).to(torch::kFloat);
  auto line = (x == W / 2).to(torch::kFloat) * disc;
  auto tissue = disc - line;
  auto m = torch::stack({1 - disc, tissue, line}).unsqueeze(0).repeat({B, 1, 1, 1});
  return m.contiguous();
}
}  // namespace

TEST(LabelAugment, NothingDrawnReturnsTheMapsBitForBit) {
  auto maps = pv_maps(4, 24, 32);
  LabelAugmentOptions o;  // all probabilities 0
  auto gen = make_generator(3);
  EXPECT_TRUE(torch::equal(augment_label_maps(maps, o, gen), maps));
}

TEST(LabelAugment, FlipMirrorsTheChosenAxisExactly) {
  auto maps = pv_maps(2, 24, 32);
  LabelAugmentOptions o;
  o.flip_prob = 1.0;
  o.flip_axis = 0;  // H
  auto gen = make_generator(1);
  EXPECT_TRUE(torch::equal(augment_label_maps(maps, o, gen), maps.flip({2})));
  o.flip_axis = 1;  // W
  EXPECT_TRUE(torch::equal(augment_label_maps(maps, o, gen), maps.flip({3})));
}

TEST(LabelAugment, WarpsKeepEveryPixelAPartitionOfUnityAndMoveTissue) {
  auto maps = pv_maps(6, 48, 64);
  LabelAugmentOptions o;
  o.affine_prob = 1.0;
  o.elastic_prob = 1.0;
  o.elastic_magnitude = 3.0;
  auto gen = make_generator(7);
  auto out = augment_label_maps(maps, o, gen);
  ASSERT_EQ(out.sizes(), maps.sizes());
  EXPECT_LT((out.sum(1) - 1).abs().max().item<double>(), 1e-5);  // bilinear = convex combination of pixels
  EXPECT_GE(out.min().item<double>(), -1e-6);
  for (int64_t b = 0; b < 6; ++b) EXPECT_GT((out[b] - maps[b]).abs().max().item<double>(), 0.2) << "sample " << b;
  // Tissue area changes by no more than the scale range allows (1 ± 0.1 per axis) plus resampling blur.
  auto area_in = maps.select(1, 1).sum().item<double>() + maps.select(1, 2).sum().item<double>();
  auto area_out = out.select(1, 1).sum().item<double>() + out.select(1, 2).sum().item<double>();
  EXPECT_NEAR(area_out / area_in, 1.0, 0.25);
  // Same seed, same result; another seed, another result.
  auto g1 = make_generator(7), g2 = make_generator(8);
  EXPECT_TRUE(torch::equal(augment_label_maps(maps, o, g1), out));
  EXPECT_FALSE(torch::equal(augment_label_maps(maps, o, g2), out));
}

TEST(LabelAugment, ElasticDisplacementIsBoundedByItsMagnitude) {
  // A single bright pixel far from the border moves by at most elastic_magnitude pixels (bicubic interpolation of the
  // control points may overshoot a little: allow one pixel more).
  const int64_t H = 40, W = 40;
  auto maps = torch::zeros({1, 2, H, W});
  maps.select(1, 0).fill_(1);
  maps[0][0][20][20] = 0;
  maps[0][1][20][20] = 1;
  LabelAugmentOptions o;
  o.elastic_prob = 1.0;
  o.elastic_magnitude = 2.0;
  for (uint64_t s = 0; s < 5; ++s) {
    auto gen = make_generator(s);
    auto out = augment_label_maps(maps, o, gen)[0][1];
    auto idx = torch::nonzero(out > 1e-4);
    ASSERT_GT(idx.size(0), 0);
    EXPECT_LE((idx.to(torch::kFloat) - 20).abs().max().item<double>(), 3.0 + 1e-6) << "seed " << s;
  }
}
