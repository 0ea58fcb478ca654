// Segmentation experiments: the U-Net, its loss, training on slices and pair folders, resume, whole-volume prediction.
#include <filesystem>

#include <gtest/gtest.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/checkpoint.h"
#include "brainspade/io/image_io.h"
#include "brainspade/training/train_segmenter.h"
#include "support/helpers.h"
#include "support/phantom.h"

using namespace brainspade;

namespace {

SegmenterTrainConfig tiny_seg(const std::vector<std::string>& sources, const std::string& out, int64_t steps) {
  SegmenterTrainConfig c;
  c.run.out_dir = out;
  c.run.device = "cpu";
  c.data.sources = sources;
  c.data.class_names = {"background", "csf", "gm", "wm", "deep_gm", "brainstem"};
  c.model.num_classes = 6;
  c.model.features = {8, 16, 32};
  c.train.steps = steps;
  c.train.batch_size = 4;
  c.train.log_every = 2;
  c.train.checkpoint_every = 2;
  c.train.validate_every = 0;
  c.train.val_fraction = 0.2;
  return c;
}


// One small trained segmenter shared by the prediction tests.
struct TrainedSegmenter {
  testutil::TempDir dir;
  std::string ckpt;
  TrainedSegmenter() {
    auto ds = testutil::write_phantom_dataset(dir.path(), {});
    train_segmenter(tiny_seg({ds}, dir / "seg", 4), false);
    ckpt = dir / "seg/checkpoints/last.ckpt";
  }
};
TrainedSegmenter& trained_segmenter() {
  static TrainedSegmenter t;
  return t;
}

}  // namespace

TEST(SegmenterNet, OutputsOneMapPerDecoderResolutionWhileTraining) {
  SegmenterOptions o;
  o.features = {8, 16, 32, 64};
  o.num_classes = 3;
  Segmenter net(o);
  torch::manual_seed(0);
  auto outs = net->forward(torch::randn({2, 1, 32, 48}));
  ASSERT_EQ(outs.size(), 3u);
  EXPECT_EQ(outs[0].sizes(), (std::vector<int64_t>{2, 3, 32, 48}));
  EXPECT_EQ(outs[1].sizes(), (std::vector<int64_t>{2, 3, 16, 24}));
  EXPECT_EQ(outs[2].sizes(), (std::vector<int64_t>{2, 3, 8, 12}));
  torch::Tensor sum = outs[0].sum() + outs[1].sum() + outs[2].sum();
  sum.backward();
  for (const auto& p : net->parameters()) EXPECT_TRUE(p.grad().defined());
  net->eval();
  EXPECT_EQ(net->forward(torch::randn({1, 1, 32, 48})).size(), 1u);
  EXPECT_THROW(net->forward(torch::randn({1, 1, 30, 48})), c10::Error);  // not divisible by 8
}

TEST(SegLoss, DeepSupervisionWeightsHalveDropTheLowestAndSumToOne) {
  auto w = deep_supervision_weights(4);  // 1, 1/2, 1/4, 0 → / 1.75
  ASSERT_EQ(w.size(), 4u);
  EXPECT_NEAR(w[0], 1 / 1.75, 1e-12);
  EXPECT_NEAR(w[1], 0.5 / 1.75, 1e-12);
  EXPECT_NEAR(w[2], 0.25 / 1.75, 1e-12);
  EXPECT_EQ(w[3], 0.0);
  EXPECT_EQ(deep_supervision_weights(1), std::vector<double>{1.0});
}

TEST(SegLoss, ConfidentCorrectLogitsGiveMinusOneDiceAndNoCrossEntropy) {
  auto target = torch::randint(0, 3, {2, 8, 8}, torch::kLong);
  auto logits = 50.0 * torch::nn::functional::one_hot(target, 3).permute({0, 3, 1, 2}).to(torch::kFloat);
  SegLossOptions o;
  EXPECT_NEAR(loss_dice_ce(logits, target, o).item<double>(), -1.0, 1e-4);
  auto wrong = loss_dice_ce(-logits, target, o).item<double>();
  EXPECT_GT(wrong, 1.0);
}

TEST(TrainSegmenter, OverfitsPhantomTissues) {
  testutil::TempDir dir;
  auto ds = testutil::write_phantom_dataset(dir.path(), {});
  auto c = tiny_seg({ds}, dir / "seg", 150);
  c.train.log_every = 50;
  c.train.checkpoint_every = 150;
  c.train.val_fraction = 0.0;  // validate on training slices: this is an overfitting test
  c.augment.affine_prob = 0;
  c.augment.mirror = false;
  c.augment.intensity.gamma_prob = 0;
  c.augment.intensity.noise_prob = 0;
  auto val = train_segmenter(c, false);
  ASSERT_EQ(val.dice.size(), 6u);
  for (int ch : {0, 1, 2, 3}) EXPECT_GT(val.dice[ch], 0.8) << "class " << ch;  // background, CSF, GM, WM
  EXPECT_TRUE(std::filesystem::exists(dir / "seg/predictions.png"));
  EXPECT_TRUE(std::filesystem::exists(dir / "seg/metrics.csv"));
}

TEST(TrainSegmenter, ResumeGivesTheSameWeightsAsAnUninterruptedRun) {
  testutil::TempDir dir;
  auto ds = testutil::write_phantom_dataset(dir.path(), {});
  auto a = tiny_seg({ds}, dir / "a", 6);
  a.augment.affine_prob = 0.5;  // every augmentation on: its draws must be replayed exactly
  auto b = a;
  b.run.out_dir = dir / "b";
  train_segmenter(a, false);
  // The poly learning rate depends on train.steps, so an interrupted run is emulated with the step-4 checkpoint of
  // the same 6-step schedule (what Ctrl-C at step 4 saves), then resumed.
  std::filesystem::create_directories(dir / "b/checkpoints");
  std::filesystem::copy_file(dir / "a/checkpoints/step_00000004.ckpt", dir / "b/checkpoints/last.ckpt");
  train_segmenter(b, true);
  EXPECT_EQ(Checkpoint::load(dir / "b/checkpoints/last.ckpt").get_int("step"), 6);
  EXPECT_TRUE(testutil::same_checkpoint_tensors(dir / "a/checkpoints/last.ckpt", dir / "b/checkpoints/last.ckpt", "segmenter."));
}

TEST(TrainSegmenter, MixesSliceDatasetsAndPairFolders) {
  testutil::TempDir dir;
  auto ds = testutil::write_phantom_dataset(dir.path(), {});
  auto phantom = testutil::make_phantom_dataset({});
  for (int i = 0; i < 3; ++i) {  // the layout `brainspade sample` writes
    Volume img, seg;
    img.data = phantom.images[i].unsqueeze(1);                                          // [1, 1, H, W]
    seg.data = phantom.labels[i].argmax(0).unsqueeze(0).unsqueeze(0).to(torch::kFloat);  // [1, 1, H, W]
    write_volume(dir / ("pairs/images/pair_" + std::to_string(i) + ".nii.gz"), img);
    write_volume(dir / ("pairs/labels/pair_" + std::to_string(i) + "_seg.nii.gz"), seg);
  }
  SegDataOptions o;
  o.sources = {ds, dir / "pairs"};
  o.label_map = {0, 1, 2, 3, 2, 0};
  auto s = load_segmentation_data(o);
  EXPECT_EQ(s.images.size(0), phantom.size() + 3);
  EXPECT_LE(s.labels.max().item<int64_t>(), 3);
  EXPECT_TRUE(torch::equal(s.images.slice(0, phantom.size()), phantom.images.slice(0, 0, 3)));
  auto c = tiny_seg({ds, dir / "pairs"}, dir / "seg", 2);
  c.data.weights = {1.0, 3.0};
  c.data.label_map = o.label_map;
  c.data.class_names = {"background", "csf", "gm", "wm"};
  c.model.num_classes = 4;
  EXPECT_NO_THROW(train_segmenter(c, false));
  // A source that does not exist is named.
  o.sources = {dir / "nowhere"};
  try {
    load_segmentation_data(o);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("nowhere"), std::string::npos) << e.what();
  }
}

// With --no-resample (the file's own 0.9x1.1x2 mm spacing), as segment worked before it resampled.
TEST(Segment, KeepsTheInputGridWhenCroppingAndPadding) {
  auto& t = trained_segmenter();
  testutil::TempDir dir;
  Volume v;
  v.data = torch::rand({1, 5, 44, 40}) + 0.5;  // Z 5, Y 44 (padded to 48 columns), X 40 (cropped to 32 rows)
  v.spacing = {0.9, 1.1, 2.0};
  v.origin = {10.0, -5.0, 3.0};
  write_volume(dir / "t1.nii.gz", v);
  run_segment({t.ckpt, {dir / "t1.nii.gz"}, dir / "seg.nii.gz", dir / "prob.nii.gz", "", false, "cpu"});
  auto in = read_volume(dir / "t1.nii.gz"), seg = read_volume(dir / "seg.nii.gz"), prob = read_volume(dir / "prob.nii.gz");
  EXPECT_TRUE(seg.same_grid(in)) << seg.grid_string() << " vs " << in.grid_string();
  EXPECT_TRUE(prob.same_grid(in));
  EXPECT_EQ(seg.channels(), 1);
  EXPECT_EQ(prob.channels(), 6);
  EXPECT_TRUE(torch::equal(seg.data, seg.data.round()));
  EXPECT_GE(seg.data.min().item<double>(), 0);
  EXPECT_LT(seg.data.max().item<double>(), 6);
  EXPECT_TRUE(torch::allclose(prob.data.sum(0), torch::ones({5, 44, 40}), 1e-4, 1e-4));
  // Rows (X) 0-3 and 36-39 lie outside the model's 32-row window: background with probability 1.
  EXPECT_TRUE(torch::equal(prob.data[0].narrow(2, 0, 4), torch::ones({5, 44, 4})));
  EXPECT_TRUE(torch::equal(prob.data[0].narrow(2, 36, 4), torch::ones({5, 44, 4})));
  // An empty slice (skull-stripped top, outside a slab) is background without a network pass; the others are as before.
  // (An added zero slice leaves the volume's normalisation statistics, taken over non-zero voxels, unchanged.)
  Volume holed = v;
  holed.data = torch::cat({v.data, torch::zeros({1, 1, 44, 40})}, 1);  // Z 6: slice 5 empty
  write_volume(dir / "holed.nii.gz", holed);
  run_segment({t.ckpt, {dir / "holed.nii.gz"}, dir / "seg2.nii.gz", dir / "prob2.nii.gz", "", false, "cpu"});
  auto prob2 = read_volume(dir / "prob2.nii.gz");
  EXPECT_TRUE(torch::equal(prob2.data[0][5], torch::ones({44, 40})));
  EXPECT_TRUE(torch::allclose(prob2.data.narrow(1, 0, 5), prob.data, 1e-4, 1e-5));
}

TEST(Segment, BadInputsAreRefusedWithTheProblemNamed) {
  auto& t = trained_segmenter();
  testutil::TempDir dir;
  Volume v;
  v.data = torch::rand({2, 3, 32, 48});  // two channels
  write_volume(dir / "two.nii.gz", v);
  try {
    run_segment({t.ckpt, {dir / "two.nii.gz"}, dir / "seg.nii.gz", "", "", true, "cpu"});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("2 channels"), std::string::npos) << e.what();
  }
  try {
    run_segment({dir / "missing.ckpt", {dir / "two.nii.gz"}, dir / "seg.nii.gz", "", "", true, "cpu"});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.ckpt"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "seg.nii.gz"));
}

// Multi-contrast segmentation (paper §3.3: T1 and FLAIR together): data.modalities turns a slice dataset's modalities
// at one position, or one pair folder per modality, into multi-channel samples; the checkpoint keeps the channel
// order and `segment` takes one --in per channel.
TEST(SegmenterMultiContrast, SliceDatasetModalitiesBecomeChannelsInTheListedOrder) {
  testutil::TempDir dir;
  auto path = testutil::write_phantom_dataset(dir.path(), {});
  auto ds = SliceDataset::load(path);
  SegDataOptions o;
  o.sources = {path};
  o.label_map = {0, 1, 2, 3, 4, 5};
  o.class_names = {"background", "csf", "gm", "wm", "deep_gm", "brainstem"};
  o.modalities = {"PD", "T1"};
  auto s = load_segmentation_data(o);
  ASSERT_EQ(s.images.size(1), 2);
  ASSERT_EQ(s.images.size(0) * 2, ds.size());
  // Sample i: channel 0 is the PD row, channel 1 the T1 row of the same subject and slice.
  for (int64_t i = 0; i < s.images.size(0); ++i) {
    int found = 0;
    for (int64_t r = 0; r < ds.size(); ++r) {
      if (ds.subject[r].item<int64_t>() != s.subject[i].item<int64_t>() ||
          ds.slice_index[r].item<int64_t>() != s.slice_index[i].item<int64_t>())
        continue;
      const int64_t channel = ds.modality_names[ds.modality[r].item<int64_t>()] == "PD" ? 0 : 1;
      EXPECT_TRUE(torch::equal(ds.images[r][0], s.images[i][channel])) << "sample " << i;
      ++found;
    }
    EXPECT_EQ(found, 2);
  }
  o.modalities = {"T1", "FLAIR"};
  try {
    load_segmentation_data(o);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no slices of modality 'FLAIR'"), std::string::npos) << e.what();
  }
}

TEST(SegmenterMultiContrast, PairFoldersPerModalityMustShareTheirLabelMaps) {
  testutil::TempDir dir;
  auto write_pair = [&](const std::string& mod, const std::string& id, float value, int64_t label) {
    Volume img, seg;
    img.data = torch::full({1, 1, 16, 24}, value);
    seg = img.with_data(torch::full({1, 1, 16, 24}, static_cast<float>(label)));
    write_volume(dir / ("pairs/" + mod + "/images/" + id + ".nii.gz"), img);
    write_label_volume(dir / ("pairs/" + mod + "/labels/" + id + "_seg.nii.gz"), seg);
  };
  for (const char* id : {"a", "b"}) {
    write_pair("T1", id, 1.0f, 2);
    write_pair("PD", id, 5.0f, 2);
  }
  SegDataOptions o;
  o.sources = {dir / "pairs"};
  o.modalities = {"T1", "PD"};
  auto s = load_segmentation_data(o);
  ASSERT_EQ(s.images.sizes(), (std::vector<int64_t>{2, 2, 16, 24}));
  EXPECT_EQ(s.images[1][0].mean().item<float>(), 1.0f);
  EXPECT_EQ(s.images[1][1].mean().item<float>(), 5.0f);
  EXPECT_EQ(s.labels.max().item<int64_t>(), 2);
  write_pair("PD", "b", 5.0f, 3);  // another label map under the same name
  try {
    load_segmentation_data(o);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("PD/labels/b_seg.nii.gz: its label map differs"), std::string::npos)
        << e.what();
  }
  o.modalities = {"T1", "FLAIR"};
  try {
    load_segmentation_data(o);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no folder 'FLAIR'"), std::string::npos) << e.what();
  }
}

TEST(SegmenterMultiContrast, CheckpointKeepsTheChannelOrderAndSegmentRefusesAnotherCount) {
  testutil::TempDir dir;
  auto ds = testutil::write_phantom_dataset(dir.path(), {});
  auto cfg = tiny_seg({ds}, dir / "seg", 2);
  cfg.data.modalities = {"T1", "PD"};
  try {
    train_segmenter(cfg, false);  // model.in_channels is still 1
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("model.in_channels' (1) must equal the number of input channels: 2"),
              std::string::npos) << e.what();
  }
  cfg.model.in_channels = 2;
  train_segmenter(cfg, false);
  const std::string ckpt = dir / "seg/checkpoints/last.ckpt";
  auto loaded = load_segmenter(ckpt, torch::kCPU);
  EXPECT_EQ(loaded.modalities, (std::vector<std::string>{"T1", "PD"}));
  Volume t1, pd;
  t1.data = torch::rand({1, 4, 40, 36}) + 0.5;
  pd = t1.with_data(torch::rand({1, 4, 40, 36}) + 0.5);
  write_volume(dir / "t1.nii.gz", t1);
  write_volume(dir / "pd.nii.gz", pd);
  try {
    run_segment({ckpt, {dir / "t1.nii.gz"}, dir / "out.nii.gz", "", "", false, "cpu"});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("takes 2 input channel(s): [T1, PD] in this order"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "out.nii.gz"));
  Volume shifted = pd;
  shifted.origin = {5.0, 0.0, 0.0};
  write_volume(dir / "pd_shifted.nii.gz", shifted);
  try {
    run_segment({ckpt, {dir / "t1.nii.gz", dir / "pd_shifted.nii.gz"}, dir / "out.nii.gz", "", "", false, "cpu"});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("must be co-registered"), std::string::npos) << e.what();
  }
  run_segment({ckpt, {dir / "t1.nii.gz", dir / "pd.nii.gz"}, dir / "out.nii.gz", "", "", false, "cpu"});
  auto out = read_volume(dir / "out.nii.gz");
  EXPECT_TRUE(out.same_grid(t1));
  // The command line: one --in for a two-channel model exits 2 and says how to call it.
  auto cli = testutil::run_cli("segment --model " + ckpt + " --in " + (dir / "t1.nii.gz") + " --out " + (dir / "x.nii.gz"));
  EXPECT_EQ(cli.exit_code, 2) << cli.output;
  EXPECT_NE(cli.output.find("repeat --in once per channel"), std::string::npos) << cli.output;
}
