// Held-out slabs for the segmentation experiments: split of a slice dataset, test volumes, the `holdout` command.
#include <filesystem>

#include <gtest/gtest.h>

#include "brainspade/core/error.h"
#include "brainspade/data/holdout.h"
#include "support/helpers.h"
#include "support/phantom.h"

using namespace brainspade;
namespace fs = std::filesystem;

TEST(Holdout, SlabRowsOfTheSubjectLeaveTheTrainingSetInEveryModality) {
  auto ds = testutil::make_phantom_dataset({});  // 2 subjects x 2 modalities x 6 slices, positions k/7, z = 10 + k
  auto split = split_slab(ds, 0.4, 0.6, "sub-0");
  EXPECT_EQ(split.z_lo, 12);
  EXPECT_EQ(split.z_hi, 13);
  EXPECT_EQ(split.held_out, 4);
  EXPECT_EQ(split.train.size(), 20);
  auto in_slab = (split.train.subject == 0) & (split.train.slice_index >= 12) & (split.train.slice_index <= 13);
  EXPECT_EQ(in_slab.sum().item<int64_t>(), 0);
  // The other subject keeps all its slices.
  EXPECT_EQ((split.train.subject == 1).sum().item<int64_t>(), 12);
  // The held-out rows themselves: the subject's slab in both modalities.
  EXPECT_EQ(split.held.size(), 4);
  EXPECT_EQ((split.held.subject != 0).sum().item<int64_t>(), 0);
  EXPECT_EQ(((split.held.slice_index < 12) | (split.held.slice_index > 13)).sum().item<int64_t>(), 0);
  auto t1 = split_slab(ds, 0.4, 0.6, "sub-0", {"T1"});
  EXPECT_EQ(t1.train.size(), 10);
  EXPECT_EQ((t1.train.modality != 0).sum().item<int64_t>(), 0);
  EXPECT_EQ(t1.held.size(), 2);
}

TEST(Holdout, BadSlabsAreInputErrorsNamingTheProblem) {
  auto ds = testutil::make_phantom_dataset({});
  auto message = [&](double lo, double hi, const std::string& subject, std::vector<std::string> mods = {}) {
    try {
      split_slab(ds, lo, hi, subject, mods);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(0.6, 0.4, "sub-0").find("expected 0 <= lo < hi <= 1"), std::string::npos);
  EXPECT_NE(message(0.4, 0.6, "sub-9").find("subject 'sub-9' is not in the dataset (it has: sub-0, sub-1)"),
            std::string::npos);
  EXPECT_NE(message(0.4, 0.6, "sub-0", {"FLAIR"}).find("modality 'FLAIR'"), std::string::npos);
  EXPECT_NE(message(0.0, 0.1, "sub-0").find("no slice of subject sub-0"), std::string::npos);
}

TEST(Holdout, TestVolumesKeepOnlyTheSlabAndHardLabelsFollowTheLabelMap) {
  Volume v;
  v.data = torch::arange(1, 61, torch::kFloat).view({1, 5, 4, 3});
  v.spacing = {1.0, 2.0, 3.0};
  auto k = keep_slab(v, 1, 2);
  EXPECT_TRUE(k.same_grid(v));
  EXPECT_EQ(k.data.narrow(1, 0, 1).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(k.data.narrow(1, 3, 2).abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(torch::equal(k.data.narrow(1, 1, 2), v.data.narrow(1, 1, 2)));
  EXPECT_THROW(keep_slab(v, 3, 5), InputError);
  Volume pv;
  pv.data = torch::zeros({3, 1, 1, 3});
  pv.data[0][0][0][0] = 1.0;  // voxel 0: channel 0
  pv.data[1][0][0][1] = 0.7;  // voxel 1: channel 1
  pv.data[2][0][0][1] = 0.3;
  pv.data[2][0][0][2] = 0.9;  // voxel 2: channel 2
  auto hard = hard_labels(pv, {0, 2, 2});
  EXPECT_TRUE(torch::equal(hard.data.flatten(), torch::tensor({0.0f, 2.0f, 2.0f})));
  EXPECT_TRUE(torch::equal(hard_labels(pv, {}).data.flatten(), torch::tensor({0.0f, 1.0f, 2.0f})));
  EXPECT_THROW(hard_labels(pv, {0, 1}), InputError);
}

TEST(Holdout, CommandWritesTheTrainingSetAndTheTestVolumesOrExitsWith2) {
  testutil::TempDir dir;
  auto data = testutil::write_phantom_dataset(dir.path(), {});
  Volume img;
  img.data = torch::rand({1, 20, 8, 6}) + 0.5;
  write_volume(dir / "t1.nii.gz", img);
  Volume pv;
  pv.data = torch::rand({6, 20, 8, 6});
  write_volume(dir / "pv.nii.gz", pv);
  auto cli = testutil::run_cli("holdout --dataset " + data + " --slab 0.4:0.6 --subject sub-0 --modality T1 --train-out " +
                               (dir / "train.pt") + " --volume " + (dir / "t1.nii.gz") + " --volume-out " +
                               (dir / "test/t1.nii.gz") + " --labels " + (dir / "pv.nii.gz") +
                               " --label-map 0,1,2,3,2,3 --labels-out " + (dir / "ref/t1.nii.gz"));
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find("z_range 12 13"), std::string::npos) << cli.output;
  EXPECT_EQ(SliceDataset::load(dir / "train.pt").size(), 10);
  auto test = read_volume(dir / "test/t1.nii.gz");
  EXPECT_GT(test.data.narrow(1, 12, 2).min().item<double>(), 0.0);
  EXPECT_EQ(test.data.narrow(1, 0, 12).abs().sum().item<double>(), 0.0);
  auto ref = read_volume(dir / "ref/t1.nii.gz");
  EXPECT_LE(ref.data.max().item<double>(), 3.0);
  EXPECT_GT(ref.data.narrow(1, 12, 2).max().item<double>(), 0.0);
  auto bad = testutil::run_cli("holdout --dataset " + data + " --slab 0.4 --subject sub-0 --train-out " + (dir / "bad.pt"));
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("expected LO:HI"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(dir / "bad.pt"));
}
