// Slice matching (data/slice_registration.h) on synthetic volumes with a known answer, the style-slice format,
// and the BrainWeb/Colin27 example when data/example is present.
#include <filesystem>

#include <gtest/gtest.h>

#include "brainspade/data/slice_dataset.h"
#include "brainspade/data/slice_registration.h"
#include "brainspade/data/slicing.h"
#include "brainspade/io/image_io.h"
#include "support/helpers.h"

namespace brainspade {
namespace {

// The image png with orient_slice(png, o) == q.
torch::Tensor unorient(const torch::Tensor& q, int o) {
  torch::Tensor t = q;
  if (o & 2) t = t.flip({1});
  if (o & 1) t = t.flip({0});
  if (o & 4) t = t.t();
  return t.contiguous();
}

Volume random_volume(int64_t Z, int64_t Y, int64_t X, uint64_t seed) {
  torch::manual_seed(seed);
  Volume v;
  // Smooth-ish random content: noise blurred by a 3x3 box so that neighbouring shifts are not trivially distinct.
  auto noise = torch::rand({Z, 1, Y + 2, X + 2});
  v.data = torch::avg_pool2d(noise, 3, 1).view({1, Z, Y, X}).contiguous();
  return v;
}

TEST(SliceRegistration, OrientationsAreTheEightDistinctSymmetries) {
  auto a = torch::arange(6, torch::kFloat32).view({2, 3});
  std::vector<torch::Tensor> seen;
  for (int o = 0; o < kOrientations; ++o) {
    auto t = orient_slice(a, o);
    EXPECT_TRUE(torch::equal(unorient(t, o), a)) << orientation_name(o);
    for (const auto& s : seen) EXPECT_FALSE(s.sizes() == t.sizes() && torch::equal(s, t)) << orientation_name(o);
    seen.push_back(t);
  }
  EXPECT_TRUE(torch::equal(orient_slice(a, 0), a));
  EXPECT_EQ(orient_slice(a, 4).sizes(), (std::vector<int64_t>{3, 2}));
}

struct MatchCase {
  int orientation;
  int64_t z, dy, dx;
  bool square;  // a square plane: the transposed orientations compete too
};

class SliceMatchCases : public ::testing::TestWithParam<MatchCase> {};

TEST_P(SliceMatchCases, RecoversAnEmbeddedTransformedSlice) {
  const MatchCase c = GetParam();
  const int64_t Z = 14, Y = 24, X = c.square ? 24 : 18;
  Volume v = random_volume(Z, Y, X, 7 + c.orientation);
  // q(y - dy, x - dx) = slice(y, x): a roll by (-dy, -dx); the PNG is q in orientation `orientation`⁻¹,
  // with another intensity scale and offset (NCC ignores both) and a little noise.
  auto q = v.data[0][c.z].roll({-c.dy, -c.dx}, {0, 1});
  auto png = unorient(q, c.orientation) * 80.0 + 20.0 + torch::randn(unorient(q, c.orientation).sizes()) * 0.5;
  SliceMatch m = match_slice(png, v, 3);
  EXPECT_EQ(m.z, c.z);
  EXPECT_EQ(m.orientation, c.orientation) << orientation_name(m.orientation);
  EXPECT_EQ(m.shift_y, c.dy);
  EXPECT_EQ(m.shift_x, c.dx);
  EXPECT_GT(m.correlation, 0.95);
  EXPECT_LT(m.runner_up_correlation, 0.5);
  EXPECT_LT(m.best_other_orientation, 0.9);
  ASSERT_EQ(static_cast<int64_t>(m.per_z.size()), Z);
  EXPECT_DOUBLE_EQ(m.per_z[c.z], m.correlation);
  // place_slice undoes the orientation and shift: it reproduces the slice where the PNG covers it.
  auto placed = place_slice(png, m, Y, X);
  auto [y0, y1] = std::pair<int64_t, int64_t>{std::max<int64_t>(0, c.dy), std::min<int64_t>(Y, Y + c.dy)};
  auto [x0, x1] = std::pair<int64_t, int64_t>{std::max<int64_t>(0, c.dx), std::min<int64_t>(X, X + c.dx)};
  auto expect = v.data[0][c.z].slice(0, y0, y1).slice(1, x0, x1) * 80.0 + 20.0;
  EXPECT_TRUE(testutil::tensors_close(placed.slice(0, y0, y1).slice(1, x0, x1), expect, 3.0, 0));
  if (y0 > 0) {
    EXPECT_EQ(placed[0].abs().sum().item<float>(), 0.0f);  // uncovered rows are zero
  }
}

INSTANTIATE_TEST_SUITE_P(Table, SliceMatchCases,
                         ::testing::Values(MatchCase{0, 5, 0, 0, false}, MatchCase{1, 0, 2, -1, false},
                                           MatchCase{2, 13, -3, 3, false}, MatchCase{3, 7, 1, 0, false},
                                           MatchCase{4, 9, 0, 2, false}, MatchCase{5, 3, -2, -2, false},
                                           MatchCase{6, 11, 3, 1, true}, MatchCase{7, 6, 0, -3, true}));

TEST(SliceRegistration, RefusesAnImageThatFitsNoOrientation) {
  Volume v = random_volume(4, 10, 12, 1);
  EXPECT_THROW(match_slice(torch::rand({9, 12}), v), InputError);
}

TEST(SliceRegistration, DatasetPlaneAndStyleSliceFollowTheSlicerLayout) {
  // A labelled volume sliced by slice_volumes and the same slice through slice_to_dataset_plane agree.
  const int64_t Z = 3, Y = 9, X = 7;
  SliceOptions o;
  o.height = 10;
  o.width = 6;
  o.channel_names = {"background", "brain"};
  o.normalisation = "none";
  o.min_brain_fraction = 0.0;
  SliceInput in;
  in.image.data = torch::rand({1, Z, Y, X}) + 1.0;
  in.labels.data = torch::zeros({1, Z, Y, X});
  in.labels.data.slice(2, 2, 7).slice(3, 1, 6).fill_(1.0);  // integer labels: 1 = brain
  auto ds = slice_volumes({in}, o, 0);
  ASSERT_EQ(ds.size(), Z);
  for (int64_t z = 0; z < Z; ++z) {
    auto brain = (in.labels.data[0][z] > 0.5).to(torch::kFloat32);
    auto plane = slice_to_dataset_plane(in.image.data[0][z] * brain, o);
    EXPECT_TRUE(testutil::tensors_close(plane, ds.images[z][0], 1e-6, 0)) << "z " << z;
  }
  // The style file reads back as the same [H, W] array (depth 1, no reorientation).
  testutil::TempDir dir;
  auto plane = slice_to_dataset_plane(in.image.data[0][1], o);
  write_style_slice(dir / "s.nii.gz", plane);
  Volume back = read_volume(dir / "s.nii.gz");
  ASSERT_EQ(back.data.sizes(), (std::vector<int64_t>{1, 1, 10, 6}));
  EXPECT_TRUE(testutil::tensors_close(back.data[0][0], plane, 1e-6, 0));
}

// --- the real example (scripts/prepare_example_data.sh) ---

TEST(SliceRegistration, BrainWebT1MatchesAColin27Slice) {
  std::string d = testutil::example_data_dir();
  if (d.empty() || !std::filesystem::exists(d + "/ch2.nii.gz") || !std::filesystem::exists(d + "/BrainT1Slice.png"))
    GTEST_SKIP() << "run scripts/prepare_example_data.sh for this test";
  Volume ch2 = read_volume(d + "/ch2.nii.gz");
  auto png = read_png(d + "/BrainT1Slice.png");
  SliceMatch m = match_slice(png, ch2, 1);  // ±1 px keeps the test short; ±3 px gives the same match
  std::printf("    BrainWeb T1 ~ Colin27 z=%ld (%s, shift %ld,%ld): NCC %.4f, runner-up z=%ld %.4f, other orientation %.4f\n",
              static_cast<long>(m.z), orientation_name(m.orientation).c_str(), static_cast<long>(m.shift_y),
              static_cast<long>(m.shift_x), m.correlation, static_cast<long>(m.runner_up_z), m.runner_up_correlation,
              m.best_other_orientation);
  // Measured (docs/data.md): z = 94, rotate 180 (orientation 3), no shift, NCC 0.989; runner-up 0.911 (z 98),
  // best other orientation 0.929.
  EXPECT_EQ(m.z, 94);
  EXPECT_EQ(m.orientation, 3);
  EXPECT_EQ(m.shift_y, 0);
  EXPECT_EQ(m.shift_x, 0);
  EXPECT_GT(m.correlation, 0.97);
  EXPECT_GT(m.correlation - m.runner_up_correlation, 0.05);
  EXPECT_GT(m.correlation - m.best_other_orientation, 0.03);
}

// Mean raw intensity of GM and WM (PV > 0.9) of a registered BrainWeb slice volume.
std::pair<double, double> gm_wm_means(const Volume& image, const Volume& pv) {
  auto img = image.data[0];
  auto gm = (pv.data[2] > 0.9) & (img > 0), wm = (pv.data[3] > 0.9) & (img > 0);
  return {img.masked_select(gm).mean().item<double>(), img.masked_select(wm).mean().item<double>()};
}

TEST(SliceRegistration, ExampleDatasetHasTwoContrastsWithPhysicalGmWmOrder) {
  std::string d = testutil::example_data_dir();
  if (d.empty() || !std::filesystem::exists(d + "/slices/dataset.pt") ||
      !std::filesystem::exists(d + "/brainweb_pd.nii.gz"))
    GTEST_SKIP() << "run scripts/prepare_example_data.sh for this test";
  // Raw intensities: T1 has GM darker than WM, PD has GM brighter than WM.
  Volume pv = read_volume(d + "/brainweb_pv.nii.gz");
  auto [t1_gm, t1_wm] = gm_wm_means(read_volume(d + "/brainweb_t1.nii.gz"), pv);
  auto [pd_gm, pd_wm] = gm_wm_means(read_volume(d + "/brainweb_pd.nii.gz"), pv);
  std::printf("    GM/WM ratio: T1 %.3f, PD %.3f\n", t1_gm / t1_wm, pd_gm / pd_wm);
  EXPECT_LT(t1_gm / t1_wm, 1.0);
  EXPECT_GT(pd_gm / pd_wm, 1.0);

  SliceDataset ds = SliceDataset::load(d + "/slices/dataset.pt");
  EXPECT_EQ(ds.modality_names, (std::vector<std::string>{"T1", "PD"}));
  EXPECT_EQ(ds.dataset_names, (std::vector<std::string>{"colin27", "brainweb"}));
  EXPECT_EQ(ds.labels.sizes().slice(1), (std::vector<int64_t>{6, 192, 256}));
  // The dataset's images are z-scored per volume, so compare GM and WM means per contrast by sign.
  for (int64_t mod = 0; mod < 2; ++mod) {
    auto rows = (ds.modality == mod).nonzero().view(-1);
    ASSERT_GT(rows.numel(), 0);
    auto img = ds.images.index_select(0, rows).select(1, 0);
    auto lab = ds.labels.index_select(0, rows);
    double gm = img.masked_select(lab.select(1, 2) > 0.9).mean().item<double>();
    double wm = img.masked_select(lab.select(1, 3) > 0.9).mean().item<double>();
    if (ds.modality_names[mod] == "PD") EXPECT_GT(gm, wm) << "PD";
    else EXPECT_LT(gm, wm) << ds.modality_names[mod];
  }
  // The BrainWeb slices keep their place in the volume (slice_index 94 of 181).
  auto bw = (ds.dataset == 1).nonzero().view(-1);
  ASSERT_EQ(bw.numel(), 2);
  for (int64_t i = 0; i < 2; ++i) EXPECT_EQ(ds.slice_index[bw[i]].item<int64_t>(), 94);
}

}  // namespace
}  // namespace brainspade
