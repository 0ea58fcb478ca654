// Slicing: the paper's rules (brain fraction, lesion share, 192x256 crop/pad) and every refusal of bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/error.h"
#include "brainspade/data/slicing.h"
#include "support/helpers.h"

using namespace brainspade;

namespace {
constexpr int64_t kZ = 10, kY = 40, kX = 30;

// Background everywhere; slice z gets a WM block of `area[z]` pixels (rows of 20 voxels along X from y = 5).
SliceInput block_volume(const std::vector<int64_t>& area, int64_t C = 6) {
  auto l = torch::zeros({C, kZ, kY, kX});  // [C, Z, Y, X]
  l[0].fill_(1.0);
  for (int64_t z = 0; z < kZ; ++z) {
    int64_t a = area[z];
    for (int64_t i = 0; i < a; ++i) {
      int64_t y = 5 + i / 20, x = 5 + i % 20;
      l[0][z][y][x] = 0.0;
      l[3][z][y][x] = 1.0;
    }
  }
  SliceInput in;
  in.labels.data = l;
  in.image.data = torch::rand({1, kZ, kY, kX}) * 100 + 50;
  in.subject = "s";
  in.modality = "T1";
  in.dataset = "d";
  in.label_path = "labels.nii.gz";
  in.image_path = "image.nii.gz";
  return in;
}

SliceOptions small_options() {
  SliceOptions o;
  o.height = 32;  // X = 30 padded to 32 (x_rows)
  o.width = 48;   // Y = 40 padded to 48
  return o;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Slicing, KeepsOnlySlicesWithEnoughBrain) {
  // H x W = 32 x 48 = 1536 pixels; 10% = 153.6.
  std::vector<int64_t> area{0, 50, 153, 154, 200, 400, 154, 10, 0, 300};
  auto ds = slice_volumes({block_volume(area)}, small_options(), 0);
  ASSERT_EQ(ds.size(), 5);
  EXPECT_EQ(std::vector<int64_t>(ds.slice_index.data_ptr<int64_t>(), ds.slice_index.data_ptr<int64_t>() + 5),
            (std::vector<int64_t>{3, 4, 5, 6, 9}));
  EXPECT_FLOAT_EQ(ds.slice_position[0].item<float>(), 0.3f);
  EXPECT_EQ(ds.labels.sizes(), (std::vector<int64_t>{5, 6, 32, 48}));
  EXPECT_EQ(ds.images.sizes(), (std::vector<int64_t>{5, 1, 32, 48}));
  EXPECT_TRUE(testutil::tensors_close(ds.labels.sum(1), torch::ones({5, 32, 48}), 1e-6, 0));
  EXPECT_EQ(ds.channel_names, small_options().channel_names);
  EXPECT_EQ(ds.subject_names, (std::vector<std::string>{"s"}));
}

TEST(Slicing, SlicePositionDivisorGivesTheAuthorsScale) {
  std::vector<int64_t> area{0, 50, 153, 154, 200, 400, 154, 10, 0, 300};
  auto o = small_options();
  o.slice_position_divisor = 256;  // the authors' slice_no = index / 256
  auto ds = slice_volumes({block_volume(area)}, o, 0);
  ASSERT_EQ(ds.size(), 5);
  EXPECT_FLOAT_EQ(ds.slice_position[0].item<float>(), 3.0f / 256.0f);
  EXPECT_FLOAT_EQ(ds.slice_position[4].item<float>(), 9.0f / 256.0f);
  o.slice_position_divisor = 5;  // below the 10 slices: positions would pass 1
  auto msg = error_of([&] { slice_volumes({block_volume(area)}, o, 0); });
  EXPECT_NE(msg.find("slice_position_divisor"), std::string::npos) << msg;
  EXPECT_NE(msg.find("labels.nii.gz"), std::string::npos) << msg;
}

TEST(Slicing, CropAndPadAreCentredAndPaddingIsBackground) {
  std::vector<int64_t> area(kZ, 400);
  auto in = block_volume(area);
  in.labels.data[3][0][0][0] = 1.0;  // a marker at (y=0, x=0) of slice 0
  in.labels.data[0][0][0][0] = 0.0;
  auto o = small_options();
  o.min_brain_fraction = 0;
  // x_rows: rows = X (30 → 32, pad 1 before), columns = Y (40 → 48, pad 4 before).
  auto ds = slice_volumes({in}, o, 0);
  EXPECT_EQ(ds.labels[0][3][1][4].item<float>(), 1.0f);
  EXPECT_EQ(ds.labels[0][0][0][0].item<float>(), 1.0f) << "padding is background";
  // y_rows with cropping: rows = Y (40 → 36, crop 2), columns = X (30 → 24, crop 3).
  o.layout = "y_rows";
  o.height = 36;
  o.width = 24;
  in.labels.data[3][0][2][3] = 1.0;
  in.labels.data[0][0][2][3] = 0.0;
  ds = slice_volumes({in}, o, 0);
  EXPECT_EQ(ds.labels.sizes(), (std::vector<int64_t>{kZ, 6, 36, 24}));
  EXPECT_EQ(ds.labels[0][3][0][0].item<float>(), 1.0f);
}

TEST(Slicing, ImagesAreZScoredInsideTheBrainAndZeroOutside) {
  std::vector<int64_t> area(kZ, 300);
  auto o = small_options();
  auto ds = slice_volumes({block_volume(area)}, o, 0);
  auto brain = ds.labels.select(1, 0) < 0.5;  // [N, H, W]
  auto inside = ds.images.select(1, 0).masked_select(brain);
  EXPECT_NEAR(inside.mean().item<double>(), 0.0, 1e-4);
  EXPECT_NEAR(inside.std().item<double>(), 1.0, 1e-3);
  EXPECT_EQ(ds.images.select(1, 0).masked_select(~brain).abs().max().item<float>(), 0.0f);
  o.normalisation = "slice";
  ds = slice_volumes({block_volume(area)}, o, 0);
  auto first = ds.images[0][0].masked_select(ds.labels[0][0] < 0.5);
  EXPECT_NEAR(first.mean().item<double>(), 0.0, 1e-4);
  EXPECT_NEAR(first.std().item<double>(), 1.0, 1e-3);
}

TEST(Slicing, LesionShareIsTwoThirdsAndSmallLesionsAreDropped) {
  // 8 channels: tumour = 7. Slices 0-8: 30 tumour pixels; 9: 5 tumour pixels (neither group).
  auto o = small_options();
  o.channel_names = {"background", "csf", "gm", "wm", "deep_gm", "brainstem", "wmh", "tumour"};
  o.lesion_channels = {"tumour"};
  std::vector<SliceInput> inputs;
  for (int v = 0; v < 2; ++v) {
    auto in = block_volume(std::vector<int64_t>(kZ, 400), 8);
    in.subject = "s" + std::to_string(v);
    if (v == 0) {
      for (int64_t z = 0; z < kZ; ++z) {
        int64_t n = z < 9 ? 30 : 5;
        for (int64_t i = 0; i < n; ++i) {
          in.labels.data[3][z][5 + i / 10][10 + i % 10] = 0.0;
          in.labels.data[7][z][5 + i / 10][10 + i % 10] = 1.0;
        }
      }
    }
    inputs.push_back(in);
  }
  // 9 lesion slices, 10 clean slices (volume 1): 9 * (1/3)/(2/3) = 4.5 → 5 clean.
  auto ds = slice_volumes(inputs, o, 7);
  ASSERT_EQ(ds.lesion_flags.sizes(), (std::vector<int64_t>{14, 1}));
  EXPECT_EQ(ds.lesion_flags.sum().item<float>(), 9.0f);
  EXPECT_EQ(ds.lesion_names, (std::vector<std::string>{"tumour"}));
  for (int64_t i = 0; i < ds.size(); ++i) {
    int64_t px = (ds.labels[i][7] > 0.5).sum().item<int64_t>();
    EXPECT_TRUE(px == 0 || px >= 20) << "row " << i << " has " << px << " lesion pixels";
    EXPECT_EQ(ds.lesion_flags[i][0].item<float>() == 1.0f, px >= 20);
  }
  // Few clean slices: the lesion side shrinks to keep the share (2 clean → 4 lesion).
  inputs[1].labels.data = inputs[1].labels.data.slice(1, 0, 2);
  inputs[1].image.data = inputs[1].image.data.slice(1, 0, 2);
  ds = slice_volumes(inputs, o, 7);
  EXPECT_EQ(ds.size(), 6);
  EXPECT_EQ(ds.lesion_flags.sum().item<float>(), 4.0f);
  // Without balancing every slice with enough brain stays.
  o.balance_lesions = false;
  EXPECT_EQ(slice_volumes(inputs, o, 7).size(), 12);
}

TEST(Slicing, MismatchedGridsAreRefused) {
  auto in = block_volume(std::vector<int64_t>(kZ, 300));
  in.image.origin[0] = 1.0;
  auto msg = error_of([&] { slice_volumes({in}, small_options(), 0); });
  EXPECT_NE(msg.find("are not on the same grid"), std::string::npos) << msg;
  in = block_volume(std::vector<int64_t>(kZ, 300));
  in.image.data = in.image.data.slice(1, 0, 9);
  EXPECT_NE(error_of([&] { slice_volumes({in}, small_options(), 0); }).find("same grid"), std::string::npos);
}

TEST(Slicing, NaNInImageOrLabelsIsRefused) {
  auto in = block_volume(std::vector<int64_t>(kZ, 300));
  in.image.data[0][2][3][4] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(error_of([&] { slice_volumes({in}, small_options(), 0); }).find("image.nii.gz: image contains NaN"),
            std::string::npos);
  in = block_volume(std::vector<int64_t>(kZ, 300));
  in.labels.data[1][2][3][4] = std::numeric_limits<float>::infinity();
  EXPECT_NE(error_of([&] { slice_volumes({in}, small_options(), 0); }).find("labels.nii.gz: label map contains NaN"),
            std::string::npos);
}

TEST(Slicing, PVMapsMustSumToOneUnlessRenormalised) {
  auto in = block_volume(std::vector<int64_t>(kZ, 300));
  in.labels.data[2][4][20][15] = 0.5;  // this background pixel now sums to 1.5
  in.labels.data[3][4][21][15] = -0.2;
  in.labels.data[0][4][21][15] = 1.2;
  auto o = small_options();
  auto msg = error_of([&] { slice_volumes({in}, o, 0); });
  EXPECT_NE(msg.find("labels.nii.gz: not partial-volume maps"), std::string::npos) << msg;
  EXPECT_NE(msg.find("renormalise_labels"), std::string::npos) << msg;
  o.renormalise_labels = true;
  o.min_brain_fraction = 0;
  auto ds = slice_volumes({in}, o, 0);
  EXPECT_TRUE(testutil::tensors_close(ds.labels.sum(1), torch::ones({kZ, 32, 48}), 1e-6, 0));
  // x_rows: (y=20, x=15) lands at row 15 + 1, column 20 + 4.
  EXPECT_NEAR(ds.labels[4][2][16][24].item<float>(), 1.0 / 3.0, 1e-6);
  EXPECT_NEAR(ds.labels[4][0][16][24].item<float>(), 2.0 / 3.0, 1e-6);
  EXPECT_EQ(ds.labels.min().item<float>(), 0.0f);
  // Within the tolerance nothing is refused.
  auto near = block_volume(std::vector<int64_t>(kZ, 300));
  near.labels.data[0] += 5e-4;
  EXPECT_EQ(slice_volumes({near}, small_options(), 0).size(), kZ);
}

TEST(Slicing, HardIntegerLabelsAreOneHotEncoded) {
  auto in = block_volume(std::vector<int64_t>(kZ, 300));
  in.labels.data = in.labels.data.argmax(0, true).to(torch::kFloat32);  // [1, Z, Y, X] with 0 and 3
  in.labels.data[0][5][30][20] = 4.0;
  auto o = small_options();
  auto ds = slice_volumes({in}, o, 0);
  EXPECT_EQ(ds.labels.size(1), 6);
  EXPECT_EQ(ds.labels[5 - 0][4][21][34].item<float>(), 1.0f);  // rows: x 20 + 1, cols: y 30 + 4
  EXPECT_TRUE(testutil::tensors_close(ds.labels.sum(1), torch::ones({ds.size(), 32, 48}), 0, 0));
  in.labels.data[0][5][30][20] = 2.5;
  EXPECT_NE(error_of([&] { slice_volumes({in}, o, 0); }).find("must hold integer labels"), std::string::npos);
  in.labels.data[0][5][30][20] = 9.0;
  EXPECT_NE(error_of([&] { slice_volumes({in}, o, 0); }).find("integer labels span [0, 9]"), std::string::npos);
}

TEST(Slicing, TooFewSlicesLeftIsAnError) {
  auto o = small_options();
  o.min_slices = 3;
  std::vector<int64_t> area(kZ, 0);
  area[4] = area[5] = 300;
  auto msg = error_of([&] { slice_volumes({block_volume(area)}, o, 0); });
  EXPECT_NE(msg.find("only 2 slices are left"), std::string::npos) << msg;
  area.assign(kZ, 0);
  o.min_slices = 1;
  EXPECT_NE(error_of([&] { slice_volumes({block_volume(area)}, o, 0); }).find("no brain voxels"), std::string::npos);
}

TEST(SliceDataset, SaveLoadRoundTripAndBadFiles) {
  auto ds = slice_volumes({block_volume(std::vector<int64_t>(kZ, 300))}, small_options(), 0);
  testutil::TempDir dir;
  ds.save(dir / "dataset.pt");
  auto back = SliceDataset::load(dir / "dataset.pt");
  EXPECT_TRUE(testutil::tensors_close(back.images, ds.images, 0, 0));
  EXPECT_TRUE(testutil::tensors_close(back.labels, ds.labels, 0, 0));
  EXPECT_TRUE(back.slice_index.equal(ds.slice_index));
  EXPECT_EQ(back.channel_names, ds.channel_names);
  EXPECT_EQ(back.modality_names, (std::vector<std::string>{"T1"}));
  EXPECT_EQ(back.lesion_flags.sizes(), (std::vector<int64_t>{kZ, 0}));
  EXPECT_THROW(SliceDataset::load(dir / "none.pt"), InputError);
  std::string bytes = read_text(dir / "dataset.pt");
  testutil::write_file(dir / "cut.pt", bytes.substr(0, bytes.size() / 3));
  EXPECT_THROW(SliceDataset::load(dir / "cut.pt"), InputError);
  auto sub = ds.select(torch::tensor({1, 3}));
  EXPECT_EQ(sub.size(), 2);
  EXPECT_EQ(sub.slice_index[1].item<int64_t>(), 3);
}

TEST(SliceDataset, OtherSliceIsNeverTheRowAndAlwaysTheSameVolume) {
  SliceDataset ds;
  // Rows interleave 3 volumes: (subject 0, T1) x4, (subject 0, FLAIR) x3, (subject 1, T1) x1.
  std::vector<int64_t> subj{0, 0, 1, 0, 0, 0, 0, 0}, mod{0, 1, 0, 0, 1, 0, 1, 0};
  ds.subject = torch::tensor(subj);
  ds.modality = torch::tensor(mod);
  ds.labels = torch::zeros({8, 2, 4, 4});
  std::mt19937_64 rng(3);
  for (int64_t row = 0; row < 8; ++row) {
    std::set<int64_t> seen;
    for (int i = 0; i < 200; ++i) {
      int64_t other = ds.other_slice_same_volume(row, rng);
      if (row == 2) {
        EXPECT_EQ(other, -1) << "a one-slice volume has no other slice";
        break;
      }
      ASSERT_NE(other, row);
      ASSERT_EQ(subj[other], subj[row]);
      ASSERT_EQ(mod[other], mod[row]);
      seen.insert(other);
    }
    if (row != 2) {
      int64_t volume_size = 0;
      for (int64_t r = 0; r < 8; ++r) volume_size += subj[r] == subj[row] && mod[r] == mod[row];
      EXPECT_EQ(static_cast<int64_t>(seen.size()), volume_size - 1) << "every other slice is reachable";
    }
  }
}

TEST(Slicing, CommandRefusesBadInputWithoutWritingAnything) {
  testutil::TempDir dir;
  auto in = block_volume(std::vector<int64_t>(kZ, 300));
  in.labels.data[2][4][20][15] = 0.5;
  write_volume(dir / "img.nii.gz", in.image);
  write_volume(dir / "lab.nii.gz", in.labels);
  testutil::write_file(dir / "c.yaml", "data:\n  images: [" + (dir / "img.nii.gz") + "]\n  labels: [" +
                                           (dir / "lab.nii.gz") + "]\n  height: 32\n  width: 48\n");
  auto bad = testutil::run_cli("slice --config " + (dir / "c.yaml") + " --out " + (dir / "out"));
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("not partial-volume maps"), std::string::npos) << bad.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
  auto ok = testutil::run_cli("slice --config " + (dir / "c.yaml") + " --set data.renormalise_labels=true --out " +
                              (dir / "out"));
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  auto ds = SliceDataset::load(dir / "out/dataset.pt");
  EXPECT_EQ(ds.size(), kZ);
  EXPECT_EQ(ds.subject_names, (std::vector<std::string>{"lab"}));
  EXPECT_TRUE(std::filesystem::exists(dir / "out/montage.png"));
  EXPECT_TRUE(std::filesystem::exists(dir / "out/config.yaml"));
}

TEST(Slicing, Colin27ExampleGivesThePapersSliceShape) {
  std::string d = testutil::example_data_dir();
  if (d.empty() || !std::filesystem::exists(d + "/colin27_pv.nii.gz"))
    GTEST_SKIP() << "run scripts/prepare_example_data.sh for this test";
  SliceOptions o;
  o.images = {d + "/ch2bet.nii.gz"};
  o.labels = {d + "/colin27_pv.nii.gz"};
  o.subjects = {"colin27"};
  auto ds = build_slice_dataset(o, 0);
  std::printf("    Colin27: %ld slices of %ldx%ldx%ld\n", static_cast<long>(ds.size()), static_cast<long>(ds.channels()),
              static_cast<long>(ds.height()), static_cast<long>(ds.width()));
  EXPECT_GT(ds.size(), 90);
  EXPECT_LT(ds.size(), 160);
  EXPECT_EQ(ds.labels.sizes().slice(1), (std::vector<int64_t>{6, 192, 256}));
  EXPECT_TRUE(testutil::tensors_close(ds.labels.sum(1), torch::ones({ds.size(), 192, 256}), 1e-5, 0));
  // Every kept slice has at least 10% brain.
  auto frac = (ds.labels.select(1, 0) < 0.5).flatten(1).sum(1).to(torch::kFloat64) / (192.0 * 256.0);
  EXPECT_GE(frac.min().item<double>(), 0.10);
  // Deep GM appears in the middle slices.
  EXPECT_GT(ds.labels.select(1, 4).sum().item<double>(), 1000.0);
}
