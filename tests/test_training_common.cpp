// Shared training machinery: deterministic batches, splits, metrics on resume, checkpoint rotation, EMA.
#include <filesystem>
#include <set>

#include <gtest/gtest.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/models/patch_discriminator.h"
#include "brainspade/training/common.h"
#include "support/helpers.h"

using namespace brainspade;

TEST(BatchRows, EveryRowOncePerEpochAndReproducible) {
  const int64_t n = 10, b = 3;
  std::multiset<int64_t> first_epoch;
  for (int64_t k = 0; k < 30; ++k) {
    auto rows = batch_rows(7, k, n, b);
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows, batch_rows(7, k, n, b));  // any step's batch can be recomputed (exact resume)
    for (size_t j = 0; j < rows.size(); ++j)
      if (k * b + static_cast<int64_t>(j) < n) first_epoch.insert(rows[j]);
  }
  EXPECT_EQ(first_epoch.size(), 10u);
  EXPECT_EQ(std::set<int64_t>(first_epoch.begin(), first_epoch.end()).size(), 10u);
  EXPECT_NE(batch_rows(7, 0, n, b), batch_rows(8, 0, n, b));
}

TEST(SplitRows, BySubjectKeepsSubjectsWhole) {
  auto subject = torch::tensor({0, 0, 1, 1, 2, 2, 3, 3, 4, 4}, torch::kLong);
  auto slice = torch::arange(10);
  auto s = split_rows(subject, slice, 0.2, 1);
  EXPECT_EQ(s.train.size() + s.val.size(), 10u);
  EXPECT_EQ(s.val.size(), 2u);
  std::set<int64_t> val_subjects;
  for (auto r : s.val) val_subjects.insert(subject[r].item<int64_t>());
  for (auto r : s.train) EXPECT_FALSE(val_subjects.count(subject[r].item<int64_t>()));
}

TEST(SplitRows, OneSubjectHoldsOutSlabs) {
  auto subject = torch::zeros({40}, torch::kLong);
  auto slice = torch::arange(40);
  auto s = split_rows(subject, slice, 0.25, 1);
  EXPECT_FALSE(s.val.empty());
  EXPECT_FALSE(s.train.empty());
  EXPECT_EQ(s.train.size() + s.val.size(), 40u);
}

TEST(MetricsCsv, ResumeDropsRowsPastTheCheckpoint) {
  testutil::TempDir dir;
  std::string path = dir / "metrics.csv";
  {
    MetricsCsv m(path, 0);
    for (int64_t s = 10; s <= 50; s += 10) m.write(s, {{"loss", s * 0.1}});
  }
  {
    MetricsCsv m(path, 30);  // resumed from step 30: rows 40, 50 are gone, new rows append
    m.write(40, {{"loss", 9.0}});
  }
  EXPECT_EQ(read_text(path), "step,loss\n10,1\n20,2\n30,3\n40,9\n");
}

TEST(MetricsCsv, ColumnsThatAppearLaterWidenTheHeader) {
  testutil::TempDir dir;
  std::string path = dir / "metrics.csv";
  MetricsCsv m(path, 0);
  m.write(1, {{"loss", 1.0}});
  m.write(2, {{"loss", 0.5}, {"val", 0.25}});
  m.write(3, {{"loss", 0.125}});
  EXPECT_EQ(read_text(path), "step,loss,val\n1,1,\n2,0.5,0.25\n3,0.125,\n");
}

TEST(CheckpointFiles, KeepsTheNewestAndLast) {
  testutil::TempDir dir;
  CheckpointFiles files(dir.path(), 2);
  Checkpoint ck;
  for (int64_t s : {1, 2, 3}) {
    ck.set_int("step", s);
    files.save(ck, s);
  }
  int n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir / "checkpoints")) n += e.path().extension() == ".ckpt";
  EXPECT_EQ(n, 3);  // step 2, step 3, last
  EXPECT_FALSE(std::filesystem::exists(dir / "checkpoints/step_00000001.ckpt"));
  EXPECT_EQ(Checkpoint::load(files.last()).get_int("step"), 3);
}

TEST(EMA, FollowsTheClosedForm) {
  torch::nn::Linear lin(2, 1);
  {
    torch::NoGradGuard g;
    lin->weight.fill_(1.0);
  }
  EMA ema(*lin, 0.9);
  {
    torch::NoGradGuard g;
    lin->weight.fill_(2.0);
  }
  ema.update(*lin);  // 0.9*1 + 0.1*2 = 1.1
  torch::nn::Linear out(2, 1);
  ema.copy_to(*out);
  EXPECT_NEAR(out->weight[0][0].item<double>(), 1.1, 1e-6);
}

TEST(ClipGradients, ScalesToTheMaxNorm) {
  auto p = torch::zeros({2}, torch::requires_grad());
  (p * torch::tensor({3.0f, 4.0f})).sum().backward();
  double norm = clip_gradients({p}, 1.0);
  EXPECT_NEAR(norm, 5.0, 1e-5);
  EXPECT_NEAR(p.grad().norm().item<double>(), 1.0, 1e-4);
}

// One PD slice that fell into validation beside T1 slices on both sides: it moves to training, T1 validation stays.
TEST(SplitRows, AClassWithoutTrainingRowsMovesToTraining) {
  Split s;
  s.train = {0, 1, 2};
  s.val = {3, 4};
  const auto modality = torch::tensor({0, 0, 0, 1, 0}, torch::kLong);
  keep_every_class_in_training(s, modality, {"T1", "PD"}, "modality");
  EXPECT_EQ(s.train, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(s.val, (std::vector<int64_t>{4}));
  keep_every_class_in_training(s, modality, {"T1", "PD"}, "modality");  // nothing left to move
  EXPECT_EQ(s.val, (std::vector<int64_t>{4}));
}

namespace {
// A last.ckpt of stage "vae" holding `model_config` as an earlier run would have written it.
CheckpointFiles run_with_model_config(const testutil::TempDir& dir, const std::string& model_config) {
  CheckpointFiles files(dir.path(), 2);
  Checkpoint ck;
  ck.set_string("stage", "vae");
  ck.set_int("step", 7);
  ck.set_string("model_config", model_config);
  files.save(ck, 7);
  return files;
}
std::string without_line(std::string yaml, const std::string& line) {
  const auto at = yaml.find(line);
  EXPECT_NE(at, std::string::npos) << line << " not in\n" << yaml;
  if (at != std::string::npos) yaml.erase(at, yaml.find('\n', at) - at + 1);
  return yaml;
}
}  // namespace

TEST(ResumeCheckpoint, ACheckpointFromBeforeAKeyWasAddedResumes) {
  testutil::TempDir dir;
  PatchDiscriminatorOptions now;
  const std::string full = dump_section("disc", now);
  // An older binary did not know `norm`: its stored config lacks the line; today's default equals the old behaviour.
  auto files = run_with_model_config(dir, without_line(full, "  norm: \"batch\""));
  auto ck = resume_checkpoint(files, true, "vae", model_section("disc", now));
  ASSERT_TRUE(ck.has_value());
  EXPECT_EQ(ck->get_int("step"), 7);
}

TEST(ResumeCheckpoint, ACheckpointWithARenamedKeyResumes) {
  testutil::TempDir dir;
  PatchDiscriminatorOptions now;
  std::string old = dump_section("disc", now);
  const auto at = old.find("num_layers:");
  ASSERT_NE(at, std::string::npos);
  old.replace(at, std::string("num_layers:").size(), "n_layers:");  // the key's name until 2026-11-30
  auto files = run_with_model_config(dir, old);
  EXPECT_TRUE(resume_checkpoint(files, true, "vae", model_section("disc", now)).has_value());
}

TEST(ResumeCheckpoint, ADifferentNetworkIsRefusedNamingEachKey) {
  testutil::TempDir dir;
  PatchDiscriminatorOptions then, now;
  now.ndf = 32;
  now.norm = "instance";
  auto files = run_with_model_config(dir, dump_section("disc", then));
  try {
    resume_checkpoint(files, true, "vae", model_section("disc", now));
    FAIL() << "resumed a checkpoint of another network";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("last.ckpt"), std::string::npos) << msg;
    EXPECT_NE(msg.find("disc.ndf: 64 -> 32"), std::string::npos) << msg;
    EXPECT_NE(msg.find("disc.norm: batch -> instance"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("num_layers"), std::string::npos) << msg;  // an equal key is not named
  }
  // Two sections added up compare both: the second one's change is named too.
  testutil::TempDir dir2;
  auto files2 = run_with_model_config(dir2, dump_section("a", then) + dump_section("b", then));
  EXPECT_TRUE(resume_checkpoint(files2, true, "vae", model_section("a", then) + model_section("b", then)).has_value());
  try {
    resume_checkpoint(files2, true, "vae", model_section("a", then) + model_section("b", now));
    FAIL() << "resumed with the second section changed";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("b.ndf: 64 -> 32"), std::string::npos) << e.what();
  }
}

TEST(ConfigDifferences, NamesNestedScalarsListsAndAbsentKeys) {
  const std::string a = "x:\n  lr: 0.1\n  dims: [1, 2]\n  deep:\n    k: a\n  gone: 1\n";
  const std::string b = "x:\n  lr: 0.1\n  dims: [1, 3]\n  deep:\n    k: b\n  new: true\n";
  const auto d = config_differences(a, b);
  const std::vector<std::string> want = {"x.dims: [1, 2] -> [1, 3]", "x.deep.k: a -> b", "x.gone: 1 -> (absent)",
                                         "x.new: (absent) -> true"};
  EXPECT_EQ(d, want);
  EXPECT_TRUE(config_differences(a, a).empty());
  EXPECT_THROW(config_differences("x: [", a), InputError);
}
