// Real scans come at every spacing and orientation (issue 19): `slice` resamples to data.spacing and records it,
// `segment` brings any scan to the training layout and spacing and writes its result on the scan's own grid, a head
// with skull is warned about (and a mask fixes it), `evaluate` refuses a reference on another grid.
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>

#include "brainspade/core/error.h"
#include "brainspade/data/slicing.h"
#include "brainspade/eval/metrics.h"
#include "brainspade/inference/segment.h"
#include "brainspade/io/geometry.h"
#include "brainspade/training/train_segmenter.h"
#include "support/helpers.h"

using namespace brainspade;
namespace fs = std::filesystem;

namespace {

// A 1 mm "brain" in LPS order: an ellipsoid with a CSF rim, GM, WM and a deep-GM core; T1-like intensities.
// X 48 (L-R), Y 64 (A-P), Z 40 (I-S).
struct Head {
  Volume image, labels;  // [1, Z, Y, X] and PV maps [6, Z, Y, X]
};
Head make_head() {
  const int64_t X = 48, Y = 64, Z = 40;
  auto z = torch::arange(Z, torch::kFloat32).view({Z, 1, 1}), y = torch::arange(Y, torch::kFloat32).view({1, Y, 1}),
       x = torch::arange(X, torch::kFloat32).view({1, 1, X});
  // Normalised radius: 1 on the surface. Layers 3-8 mm thick, so that 2-3 mm sampling still shows them.
  auto r = (((x - 23.5) / 20).pow(2) + ((y - 31.5) / 28).pow(2) + ((z - 19.5) / 16).pow(2)).sqrt();
  auto label = torch::zeros({Z, Y, X}, torch::kLong);
  label.masked_fill_(r < 1.0, 1);   // CSF rim
  label.masked_fill_(r < 0.82, 2);  // GM
  label.masked_fill_(r < 0.55, 3);  // WM
  label.masked_fill_(r < 0.25, 4);  // deep GM
  const std::vector<float> value{0.0f, 0.25f, 0.6f, 1.0f, 0.75f, 0.9f};
  auto image = torch::tensor(value).index({label});
  torch::manual_seed(5);
  image = (image + 0.02 * torch::randn({Z, Y, X})) * (label > 0).to(torch::kFloat32);
  Head h;
  h.image.data = image.unsqueeze(0);
  h.image.origin = {-24.0, -32.0, -20.0};
  h.labels = h.image.with_data(torch::one_hot(label, 6).permute({3, 0, 1, 2}).to(torch::kFloat32).contiguous());
  return h;
}

// Slices of the head and a segmenter trained on them (once per test binary).
struct TrainedGeometry {
  testutil::TempDir dir;
  std::string dataset, ckpt;
  TrainedGeometry() {
    const Head h = make_head();
    SliceOptions o;
    o.height = 48;  // x_rows: rows run along X
    o.width = 64;
    SliceInput in;
    in.image = h.image;
    in.labels = h.labels;
    in.subject = "phantom";
    in.modality = "T1";
    in.dataset = "test";
    SliceDataset ds = slice_volumes({in}, o, 0);
    dataset = dir / "dataset.pt";
    ds.save(dataset);
    SegmenterTrainConfig c;
    c.run.out_dir = dir / "seg";
    c.run.device = "cpu";
    c.data.sources = {dataset};
    c.data.label_map = {0, 1, 2, 3, 2, 3};
    c.data.class_names = {"background", "csf", "gm", "wm"};
    c.model.num_classes = 4;
    c.model.features = {8, 16, 32};
    c.train.steps = 120;
    c.train.batch_size = 8;
    c.train.log_every = 20;
    c.train.checkpoint_every = 120;
    c.train.validate_every = 0;
    c.train.val_fraction = 0.1;
    train_segmenter(c, false);
    ckpt = dir / "seg/checkpoints/last.ckpt";
  }
};
TrainedGeometry& trained_geometry() {
  static TrainedGeometry t;
  return t;
}

// A grid over the head's extent stored coronally and flipped: array X runs to the patient's right, Y up, Z forward
// ("RSA"), at 2 x 2 x 3 mm.
Volume coronal_grid(const Volume& head) {
  Volume g;
  g.spacing = {2.0, 2.0, 3.0};
  // Row-major; column i is the LPS direction of array axis i: X = (-1, 0, 0) = R, Y = (0, 0, 1) = S, Z = (0, -1, 0) = A.
  g.direction = {-1, 0, 0,
                 0, 0, -1,
                 0, 1, 0};
  const double x_max = head.origin[0] + (head.width() - 1), y_max = head.origin[1] + (head.height() - 1);
  g.origin = {x_max, y_max, head.origin[2]};
  g.data = torch::zeros({1, head.height() / 3, head.depth() / 2, head.width() / 2});  // [C, Z(A-P), Y(I-S), X(L-R)]
  return g;
}

}  // namespace

TEST(Geometry, OrientationCodesAndResamplingToASpacing) {
  Volume v;
  v.data = torch::zeros({1, 4, 4, 4});
  EXPECT_EQ(orientation_code(v), "LPS");
  Volume c = coronal_grid(make_head().image);
  EXPECT_EQ(orientation_code(c), "RSA");
  EXPECT_EQ(geometry_string(c), "2x2x3 mm RSA");
  // A linear ramp along X survives resampling to 2 mm at the same physical points.
  Volume ramp;
  ramp.data = torch::arange(40, torch::kFloat32).view({1, 1, 1, 40}).expand({1, 10, 10, 40}).contiguous();
  Volume r2 = resample_to_spacing(ramp, {2.0, 1.0, 1.0}, false);
  EXPECT_EQ(r2.width(), 20);
  EXPECT_EQ(r2.depth(), 10);
  EXPECT_NEAR(r2.data[0][3][3][5].item<double>(), 10.0, 1e-4);  // x = 10 mm
  EXPECT_TRUE(same_spacing(r2.spacing, {2.0, 1.0, 1.0}));
}

// The head stored at 2 x 2 x 3 mm in coronal, flipped order: `segment` resamples it to the training's 1 mm LPS grid,
// predicts and writes the labels back on the input's grid with the input's header; they agree with the 1 mm original's
// prediction brought to the same grid on >= 95% of brain voxels.
TEST(Segment, AnySpacingAndOrientationAgreesWithTheOneMillimetreResult) {
  auto& t = trained_geometry();
  testutil::TempDir dir;
  const Head h = make_head();
  write_volume(dir / "head_1mm.nii.gz", h.image);
  const Volume grid = coronal_grid(h.image);
  write_volume(dir / "head_rsa.nii.gz", resample_like(h.image, grid, false, 0.0));
  run_segment({t.ckpt, {dir / "head_1mm.nii.gz"}, dir / "seg_1mm.nii.gz", "", "", true, "cpu"});
  auto cli = testutil::run_cli("segment --model " + t.ckpt + " --in " + (dir / "head_rsa.nii.gz") + " --out " +
                               (dir / "seg_rsa.nii.gz") + " --device cpu");
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find("2x2x3 mm RSA -> 1x1x1 mm LPS; back to the input grid"), std::string::npos) << cli.output;
  const Volume in = read_volume_as_stored(dir / "head_rsa.nii.gz");
  const Volume out = read_volume_as_stored(dir / "seg_rsa.nii.gz");
  EXPECT_TRUE(out.same_grid(in)) << out.grid_string() << " vs " << in.grid_string();
  EXPECT_EQ(orientation_code(out), "RSA");
  // The 1 mm prediction and the true labels on the coronal grid.
  const Volume ref = resample_like(read_volume(dir / "seg_1mm.nii.gz"), in, /*nearest=*/true, 0.0);
  const Volume truth = resample_like(h.labels, in, false, 0.0);
  auto brain = truth.data[0] < 0.5;  // [Z, Y, X]
  const double agree = (out.data[0] == ref.data[0]).logical_and(brain).sum().item<double>() / brain.sum().item<double>();
  // For the message: each side against the true labels on the coronal grid.
  auto t_rsa = torch::tensor({0, 1, 2, 3, 2, 3}, torch::kLong).index({truth.data.argmax(0)});
  auto vs_truth = [&](const torch::Tensor& l) {
    return (l.to(torch::kLong) == t_rsa).logical_and(brain).sum().item<double>() / brain.sum().item<double>();
  };
  EXPECT_GE(agree, 0.95) << "agreement on brain voxels; against the truth: coronal " << vs_truth(out.data[0])
                         << ", 1 mm " << vs_truth(ref.data[0]);
  // And the 1 mm prediction itself is a segmentation (the segmenter learned the phantom).
  auto lm = torch::tensor({0, 1, 2, 3, 2, 3}, torch::kLong);
  auto true_1mm = lm.index({h.labels.data.argmax(0)});
  const Volume seg1 = read_volume(dir / "seg_1mm.nii.gz");
  auto b1 = true_1mm > 0;
  const double acc = (seg1.data[0].to(torch::kLong) == true_1mm).logical_and(b1).sum().item<double>() / b1.sum().item<double>();
  EXPECT_GE(acc, 0.85) << "1 mm prediction accuracy on brain voxels";
}

// A bright ring around the brain (scalp): the warning names --mask; with the brain mask, the prediction inside it is
// the skull-free prediction.
TEST(Segment, SkullRingWarnsAndAMaskRecoversTheBrainOnlyPrediction) {
  auto& t = trained_geometry();
  testutil::TempDir dir;
  const Head h = make_head();
  write_volume(dir / "brain.nii.gz", h.image);
  Volume head = h.image;
  auto brain = h.labels.data[0] < 0.5;  // [Z, Y, X]
  auto near = torch::max_pool3d(brain.to(torch::kFloat32).unsqueeze(0).unsqueeze(0), 7, 1, 3)[0][0] > 0;
  auto ring = near & ~brain;
  head.data = head.data + 2.0 * ring.to(torch::kFloat32).unsqueeze(0);
  write_volume(dir / "head.nii.gz", head);
  Volume mask = h.image.with_data(brain.to(torch::kFloat32).unsqueeze(0));
  write_volume(dir / "mask.nii.gz", mask);
  auto warned = testutil::run_cli("segment --model " + t.ckpt + " --in " + (dir / "head.nii.gz") + " --out " +
                                  (dir / "seg_head.nii.gz") + " --device cpu");
  ASSERT_EQ(warned.exit_code, 0) << warned.output;
  EXPECT_NE(warned.output.find("--mask"), std::string::npos) << warned.output;
  auto clean = testutil::run_cli("segment --model " + t.ckpt + " --in " + (dir / "brain.nii.gz") + " --out " +
                                 (dir / "seg_brain.nii.gz") + " --device cpu");
  EXPECT_EQ(clean.output.find("--mask"), std::string::npos) << "a brain-extracted scan is not warned about:\n" << clean.output;
  run_segment({t.ckpt, {dir / "head.nii.gz"}, dir / "seg_masked.nii.gz", "", dir / "mask.nii.gz", true, "cpu"});
  auto a = read_volume(dir / "seg_masked.nii.gz").data[0], b = read_volume(dir / "seg_brain.nii.gz").data[0];
  EXPECT_TRUE(torch::equal(a.masked_select(brain), b.masked_select(brain)));
}

TEST(Segment, RefusesWhatItCannotReadCorrectly) {
  auto& t = trained_geometry();
  testutil::TempDir dir;
  const Head h = make_head();
  write_volume(dir / "brain.nii.gz", h.image);
  write_volume(dir / "empty_mask.nii.gz", h.image.with_data(torch::zeros_like(h.image.data)));
  Volume other = h.image;
  other.spacing = {1.0, 1.0, 2.0};
  write_volume(dir / "other_mask.nii.gz", other);
  // A field of view wider than the model's 48-row window at 1 mm, full of signal: the brain would be cut.
  Volume wide;
  wide.data = torch::rand({1, 8, 64, 96}) + 0.5;
  write_volume(dir / "wide.nii.gz", wide);
  const std::vector<std::pair<std::string, std::string>> cases{
      {"--in " + (dir / "brain.nii.gz") + " --mask " + (dir / "empty_mask.nii.gz"), "mask is empty"},
      {"--in " + (dir / "brain.nii.gz") + " --mask " + (dir / "other_mask.nii.gz"), "is not on the grid"},
      {"--in " + (dir / "wide.nii.gz"), "field of view"},
  };
  for (const auto& [args, expect] : cases) {
    auto r = testutil::run_cli("segment --model " + t.ckpt + " " + args + " --out " + (dir / "out.nii.gz") + " --device cpu");
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(expect), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir / "out.nii.gz"));
  }
}

// `slice` of a 2 mm copy resamples it to data.spacing (1 mm) and records that spacing; its PV maps are close to the
// 1 mm original's slices (the difference is what 2 mm sampling loses at tissue borders).
TEST(Slice, ResamplesToTheDataSpacingAndRecordsIt) {
  testutil::TempDir dir;
  const Head h = make_head();
  write_volume(dir / "img_1mm.nii.gz", h.image);
  write_volume(dir / "pv_1mm.nii.gz", h.labels);
  Volume g2;
  g2.spacing = {2.0, 2.0, 2.0};
  g2.origin = h.image.origin;
  g2.data = torch::zeros({1, 20, 32, 24});
  write_volume(dir / "img_2mm.nii.gz", resample_like(h.image, g2, false, 0.0));
  write_volume(dir / "pv_2mm.nii.gz", resample_like(h.labels, g2, false, 0.0));
  SliceOptions o;
  o.height = 48;
  o.width = 64;
  o.min_brain_fraction = 0.0;
  o.images = {dir / "img_1mm.nii.gz"};
  o.labels = {dir / "pv_1mm.nii.gz"};
  const SliceDataset a = build_slice_dataset(o, 0);
  o.images = {dir / "img_2mm.nii.gz"};
  o.labels = {dir / "pv_2mm.nii.gz"};
  const SliceDataset b = build_slice_dataset(o, 0);
  EXPECT_TRUE(same_spacing(b.spacing, {1.0, 1.0, 1.0}));
  b.save(dir / "b.pt");
  EXPECT_TRUE(same_spacing(SliceDataset::load(dir / "b.pt").spacing, {1.0, 1.0, 1.0}));
  EXPECT_EQ(SliceDataset::load(dir / "b.pt").orientation, "LPS");
  ASSERT_EQ(b.labels.sizes(), a.labels.sizes()) << "the 2 mm copy is back on a 48 x 64 x 40 grid of 1 mm";
  EXPECT_TRUE(torch::allclose(b.labels.sum(1), torch::ones_like(b.labels.sum(1)), 1e-4, 1e-4));  // still PV maps
  const double mad = (b.labels - a.labels).abs().mean().item<double>();
  EXPECT_LT(mad, 0.05) << "mean |PV difference| between the 2 mm and 1 mm slicings";
  o.spacing = {2.0, 2.0, 2.0};  // slicing at 2 mm records 2 mm
  o.height = 24;
  o.width = 32;
  EXPECT_TRUE(same_spacing(build_slice_dataset(o, 0).spacing, {2.0, 2.0, 2.0}));
}

TEST(Evaluate, AReferenceOnAnotherGridIsRefusedOrResampled) {
  testutil::TempDir dir;
  const Head h = make_head();
  auto hard = h.labels.data.argmax(0, true).to(torch::kFloat32);
  fs::create_directories(dir / "pred");
  fs::create_directories(dir / "ref");
  write_label_volume(dir / "pred/case.nii.gz", h.image.with_data(hard));
  Volume g2;
  g2.spacing = {2.0, 2.0, 2.0};
  g2.origin = h.image.origin;
  g2.data = torch::zeros({1, 20, 32, 24});
  write_label_volume(dir / "ref/case.nii.gz", resample_like(h.image.with_data(hard), g2, true, 0.0));
  try {
    evaluate_folder(dir / "pred", dir / "ref", "A");
    ADD_FAILURE() << "accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--resample-ref"), std::string::npos) << e.what();
  }
  const auto ev = evaluate_folder(dir / "pred", dir / "ref", "A", {}, 0, /*resample_ref=*/true);
  ASSERT_FALSE(ev.dice.empty());
  EXPECT_GT(ev.dice[2][0], 0.8);  // WM of the 2 mm reference on the 1 mm grid
}
