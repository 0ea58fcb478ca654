// Labelling: a noisy 3-tissue phantom is recovered; atlas deep GM takes the GM+WM mass; channels sum to 1.
#include <gtest/gtest.h>

#include <filesystem>

#include "brainspade/core/error.h"
#include "brainspade/data/labelling.h"
#include "brainspade/io/image_io.h"
#include "support/helpers.h"

using namespace brainspade;

namespace {
// Concentric shells: WM core (r < 11), GM (11..15), CSF (15..18), background outside. Returns T1 and true labels.
std::pair<Volume, torch::Tensor> phantom(int64_t n = 44, double noise = 6.0, uint64_t seed = 1) {
  torch::manual_seed(seed);
  auto idx = torch::arange(n, torch::kFloat32) - (n - 1) / 2.0;
  auto r = (idx.view({n, 1, 1}).pow(2) + idx.view({1, n, 1}).pow(2) + idx.view({1, 1, n}).pow(2)).sqrt();  // [Z, Y, X]
  auto truth = torch::zeros({n, n, n}, torch::kInt64);
  truth.masked_fill_(r < 18, 1);
  truth.masked_fill_(r < 15, 2);
  truth.masked_fill_(r < 11, 3);
  auto means = torch::tensor({0.0f, 35.0f, 75.0f, 110.0f});
  auto img = means.index_select(0, truth.flatten()).view({n, n, n});
  img = torch::where(truth > 0, (img + noise * torch::randn({n, n, n})).clamp_min(1.0), img);
  Volume v;
  v.data = img.unsqueeze(0);  // [1, Z, Y, X]
  return {v, truth};
}
}  // namespace

TEST(Labelling, RecoversANoisyThreeTissuePhantom) {
  auto [t1, truth] = phantom();
  for (double beta : {0.0, 1.0}) {
    LabellingOptions o;
    o.spatial_beta = beta;
    auto r = label_t1(t1, nullptr, o);
    ASSERT_EQ(r.pv.data.sizes(), (std::vector<int64_t>{6, 44, 44, 44}));
    auto labels = argmax_labels(r.pv.data);
    for (int64_t k = 1; k <= 3; ++k) {
      double d = dice(labels, truth, k);
      std::printf("    beta %.1f tissue %ld Dice %.3f\n", beta, static_cast<long>(k), d);
      EXPECT_GT(d, 0.9) << "tissue " << k << " beta " << beta;
    }
    EXPECT_NEAR(r.fit.mean[0], 35, 3);
    EXPECT_NEAR(r.fit.mean[1], 75, 3);
    EXPECT_NEAR(r.fit.mean[2], 110, 3);
    EXPECT_TRUE(testutil::tensors_close(r.pv.data.sum(0), torch::ones({44, 44, 44}), 1e-5, 0));
    EXPECT_EQ(r.pv.data[5].abs().max().item<float>(), 0.0f) << "brainstem has no source and stays zero";
    EXPECT_TRUE(r.pv.same_grid(t1));
  }
}

TEST(Labelling, SpatialPriorReducesIsolatedErrors) {
  auto [t1, truth] = phantom(44, 14.0, 3);  // heavy noise
  LabellingOptions plain, smooth;
  plain.spatial_beta = 0.0;
  smooth.spatial_beta = 2.0;
  auto lp = argmax_labels(label_t1(t1, nullptr, plain).pv.data);
  auto ls = argmax_labels(label_t1(t1, nullptr, smooth).pv.data);
  double dp = dice(lp, truth, 2), ds = dice(ls, truth, 2);
  std::printf("    GM Dice plain %.3f, with spatial prior %.3f\n", dp, ds);
  EXPECT_GT(ds, dp + 0.01);
}

TEST(Labelling, AtlasDeepGreyMatterTakesTheGreyAndWhiteMass) {
  auto [t1, truth] = phantom();
  LabellingOptions o;
  auto base = label_t1(t1, nullptr, o);
  Volume atlas = t1.with_data(torch::zeros_like(t1.data));
  atlas.data.slice(1, 18, 26).slice(2, 18, 26).slice(3, 18, 26).fill_(73);  // a "putamen" cube in the WM core
  atlas.data.slice(1, 0, 3).fill_(73);  // atlas voxels outside the brain are ignored
  auto r = label_t1(t1, &atlas, o);
  auto cube = [](const torch::Tensor& t) { return t.slice(0, 18, 26).slice(1, 18, 26).slice(2, 18, 26); };
  EXPECT_TRUE(testutil::tensors_close(cube(r.pv.data[4]), cube(base.pv.data[2] + base.pv.data[3]), 1e-5, 0));
  EXPECT_EQ(cube(r.pv.data[2]).abs().max().item<float>(), 0.0f);
  EXPECT_EQ(cube(r.pv.data[3]).abs().max().item<float>(), 0.0f);
  EXPECT_EQ(r.pv.data[4].slice(0, 0, 3).abs().max().item<float>(), 0.0f);
  EXPECT_TRUE(testutil::tensors_close(r.pv.data.sum(0), torch::ones({44, 44, 44}), 1e-5, 0));
  // Outside the cube nothing changes.
  EXPECT_TRUE(testutil::tensors_close(r.pv.data[3].slice(0, 30, 44), base.pv.data[3].slice(0, 30, 44), 1e-6, 0));
}

TEST(Labelling, EmptyImageIsAnInputError) {
  Volume v;
  v.data = torch::zeros({1, 10, 10, 10});
  EXPECT_THROW(label_t1(v, nullptr, {}), InputError);
}

TEST(Labelling, CommandWritesSixChannelsAndRefusesBadInput) {
  testutil::TempDir dir;
  auto [t1, truth] = phantom(24);
  write_volume(dir / "t1.nii.gz", t1);
  auto ok = testutil::run_cli("label --t1 " + (dir / "t1.nii.gz") + " --out " + (dir / "pv.nii.gz"));
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  Volume pv = read_volume(dir / "pv.nii.gz");
  EXPECT_EQ(pv.data.sizes(), (std::vector<int64_t>{6, 24, 24, 24}));
  auto bad = testutil::run_cli("label --t1 " + (dir / "missing.nii.gz") + " --out " + (dir / "pv2.nii.gz"));
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("missing.nii.gz: file not found"), std::string::npos) << bad.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "pv2.nii.gz"));
}

TEST(Labelling, AgreementFindsAFlippedMisplacedReference) {
  // An asymmetric phantom: the WM core sits 5 voxels towards +X, so an X flip is visible.
  const int64_t n = 40;
  auto idx = torch::arange(n, torch::kFloat32) - (n - 1) / 2.0;
  auto zz = idx.view({n, 1, 1}), yy = idx.view({1, n, 1}), xx = idx.view({1, 1, n});
  auto r = (zz.pow(2) + yy.pow(2) + xx.pow(2)).sqrt();
  auto r_core = (zz.pow(2) + yy.pow(2) + (xx - 5).pow(2)).sqrt();
  auto truth = torch::zeros({n, n, n}, torch::kInt64);
  truth.masked_fill_(r < 17, 1);
  truth.masked_fill_(r < 14, 2);
  truth.masked_fill_(r_core < 8, 3);
  auto means = torch::tensor({0.0f, 35.0f, 75.0f, 110.0f});
  Volume t1;
  t1.data = means.index_select(0, truth.flatten()).view({1, n, n, n});
  auto pv = label_t1(t1, nullptr, {}).pv;
  // Reference: 2 mm one-hot maps, stored mirrored along X, with a nonsense origin.
  namespace F = torch::nn::functional;
  auto onehot = torch::one_hot(truth, 4).permute({3, 0, 1, 2}).to(torch::kFloat32);  // [4, Z, Y, X]
  auto coarse = F::avg_pool3d(onehot.unsqueeze(0), F::AvgPool3dFuncOptions(2)).squeeze(0).flip({3});  // [4, 20, 20, 20]
  Volume ref;
  ref.spacing = {2, 2, 2};
  ref.origin = {30, -25, 12};
  auto part = [&](int64_t c) { return ref.with_data(coarse.slice(0, c, c + 1).contiguous()); };
  ref.data = coarse.slice(0, 1, 2);
  auto res = measure_agreement(pv, t1, part(1), part(2), part(3), 4.0);
  std::printf("    flips (%d,%d,%d) shift (%.0f,%.0f,%.0f) Dice in brain %.3f %.3f %.3f, header %.3f\n", res.flips[0],
              res.flips[1], res.flips[2], res.shift_mm[0], res.shift_mm[1], res.shift_mm[2], res.dice_in_brain[0],
              res.dice_in_brain[1], res.dice_in_brain[2], res.dice_header[2]);
  EXPECT_EQ(res.flips, (std::array<int, 3>{1, 0, 0}));
  for (int k = 0; k < 3; ++k) EXPECT_GT(res.dice[k], 0.8) << "tissue " << k;
  EXPECT_LT(res.dice_header[2], 0.1) << "the header's placement should not line up";
}
