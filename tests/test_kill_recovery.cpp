// Kill-anywhere recovery: `brainspade train vae|ldm|classifier|spade|segmenter` and `brainspade sample` are SIGKILLed at random moments and
// restarted (--resume for training; the same command for generation). After every kill each checkpoint or pair under
// its final name loads, and the finished run equals an uninterrupted one (weights; files byte for byte).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <filesystem>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/checkpoint.h"
#include "brainspade/io/image_io.h"
#include "brainspade/sampling/pair_sampler.h"
#include "brainspade/training/train_ldm.h"
#include "brainspade/training/train_segmenter.h"
#include "brainspade/training/train_spade.h"
#include "brainspade/training/train_vae.h"
#include "support/helpers.h"
#include "support/phantom.h"

using namespace brainspade;
namespace fs = std::filesystem;

namespace {

std::uintmax_t size_or_zero(const std::string& path) {
  std::error_code ec;
  auto n = fs::file_size(path, ec);
  return ec ? 0 : n;
}

// Starts the program with `args`, output discarded. With `kill_after_ms` >= 0 it is SIGKILLed that long after
// `progress()` first changes (the size of metrics.csv, which gets a row per step; the count of finished pairs), so that
// every kill lands inside the work, often inside a checkpoint save. Returns the exit code, or -SIGKILL when killed.
using Progress = std::function<std::uintmax_t()>;

int run_and_kill(const std::vector<std::string>& args, const Progress& progress, int kill_after_ms) {
  std::vector<char*> argv;
  std::string bin = BRAINSPADE_BINARY;
  argv.push_back(bin.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const auto progress_before = progress ? progress() : 0;
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open("/dev/null", O_WRONLY);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  if (kill_after_ms >= 0) {
    std::optional<std::chrono::steady_clock::time_point> deadline;
    while (!deadline || std::chrono::steady_clock::now() < *deadline) {
      if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      if (!deadline && progress() != progress_before)
        deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kill_after_ms);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    kill(pid, SIGKILL);
  }
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Every file under its final name in the checkpoints folder must load.
void expect_checkpoints_load(const std::string& run_dir, const std::string& stage, int64_t* last_step) {
  const std::string dir = run_dir + "/checkpoints";
  if (!fs::exists(dir)) return;
  for (const auto& e : fs::directory_iterator(dir)) {
    // write_atomic's temporaries (".tmp-<pid>-last.ckpt") may be half-written: that is what they are for.
    if (e.path().extension() != ".ckpt" || e.path().filename().string().rfind(".tmp-", 0) == 0) continue;
    try {
      auto ck = Checkpoint::load(e.path().string());
      EXPECT_EQ(ck.get_string("stage"), stage);
      if (e.path().filename() == "last.ckpt") *last_step = ck.get_int("step");
    } catch (const std::exception& ex) {
      ADD_FAILURE() << "half-written checkpoint under its final name: " << e.path() << ": " << ex.what();
    }
  }
}

std::uintmax_t file_size_of(const std::string& path) { return size_or_zero(path); }
std::uintmax_t files_in(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  return static_cast<std::uintmax_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

// Runs `args(ref)` once uninterrupted (timing it), then `args(run)` again and again, each time SIGKILLed at a random
// moment within about `spread` of the reference run after its progress first moves (earlier for the first two
// attempts), until it finishes. After every
// kill `check()` looks at what is on disk. Returns the number of kills that landed.
int kill_until_done(const std::function<std::vector<std::string>(const std::string&)>& args, const std::string& ref,
                    const std::string& run, const Progress& progress, double spread, const std::function<void()>& check,
                    uint32_t seed) {
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(run_and_kill(args(ref), nullptr, -1), 0);
  const double run_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::mt19937 rng(seed);
  const int window = std::max(3, static_cast<int>(run_ms * spread));
  int kills = 0, finished = -1;
  for (int attempt = 0; attempt < 6 && finished != 0; ++attempt) {
    // The first kill within the first third of the window, the second within two thirds, then anywhere: a first kill
    // that lands late leaves a resumed run too short for a second one (seen under load: 1 kill, test failed).
    const int cap = window * std::min(attempt + 1, 3) / 3;
    const int ms = std::uniform_int_distribution<int>(0, cap)(rng);
    const int rc = run_and_kill(args(run), progress, ms);
    if (rc == -SIGKILL) ++kills;
    else finished = rc;
    check();
    std::printf("    attempt %d: kill %d ms after the first progress -> %s\n", attempt, ms,
                rc == -SIGKILL ? "killed" : "exited");
  }
  if (finished != 0) {
    EXPECT_EQ(run_and_kill(args(run), nullptr, -1), 0);
  }
  return kills;
}

// The phantom slice dataset every kill test trains on (3 slices: a run takes seconds).
std::string three_slice_phantom(const std::string& dir) {
  testutil::PhantomOptions po;
  po.slices = 3;
  return testutil::write_phantom_dataset(dir + "/data", po);
}

// A loop that logs and checkpoints at every step, so that many kills land inside a save.
void save_every_step(TrainLoopOptions& t, int64_t steps, int64_t batch_size) {
  t.steps = steps;
  t.batch_size = batch_size;
  t.log_every = 1;
  t.checkpoint_every = 1;
  t.keep_checkpoints = 2;
  t.validate_every = 0;
}

// Kills `brainspade train STAGE --config YAML` until it finishes; the finished checkpoint must hold the uninterrupted
// run's tensors under every prefix. Returns the path of the killed-and-resumed run's last checkpoint.
std::string kill_training(const std::string& dir, const std::string& stage, const std::string& yaml,
                          const std::vector<std::string>& prefixes, int64_t steps, uint32_t seed) {
  SCOPED_TRACE(stage);
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{"--log-level", "warn", "train", stage, "--config", yaml, "--out", out, "--resume"};
  };
  const std::string ref = dir + "/" + stage + "_ref", run = dir + "/" + stage + "_run";
  int64_t last_step = 0, prev_step = 0;
  const int kills = kill_until_done(
      args, ref, run, [&] { return file_size_of(run + "/metrics.csv"); }, 1.0 / 8,
      [&] {
        expect_checkpoints_load(run, stage, &last_step);
        EXPECT_GE(last_step, prev_step) << "a resumed run went back in steps";
        prev_step = last_step;
      },
      seed);
  EXPECT_GE(kills, 2) << "too few kills landed inside the " << stage << " run";
  EXPECT_EQ(Checkpoint::load(run + "/checkpoints/last.ckpt").get_int("step"), steps);
  for (const auto& p : prefixes)
    EXPECT_TRUE(testutil::same_checkpoint_tensors(ref + "/checkpoints/last.ckpt", run + "/checkpoints/last.ckpt", p))
        << stage << " " << p;
  return run + "/checkpoints/last.ckpt";
}

}  // namespace

TEST(KillRecovery, TrainVAEKilledAnywhereResumesToTheUninterruptedWeights) {
  testutil::TempDir dir;
  VAETrainConfig c;
  c.run.device = "cpu";
  c.run.threads = 1;
  c.data.dataset = three_slice_phantom(dir.path());
  c.vae.in_channels = 6;
  c.vae.channels = {8, 16};
  c.vae.num_res_blocks = 1;
  c.vae.norm_groups = 4;
  c.vae.mid_attention = false;
  c.discriminator.in_channels = 6;
  c.discriminator.ndf = 8;
  c.discriminator.num_layers = 2;
  c.loss.adv_start_step = 3;
  save_every_step(c.train, 16, 2);
  c.train.val_fraction = 0.2;
  write_text_atomic(dir / "vae.yaml", dump_config(c));
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{"--log-level", "warn", "train", "vae", "--config", dir / "vae.yaml", "--out", out, "--resume"};
  };

  int64_t last_step = 0, prev_step = 0;
  const int kills = kill_until_done(
      args, dir / "ref", dir / "run", [&] { return file_size_of(dir / "run/metrics.csv"); }, 1.0 / 16,
      [&] {
        expect_checkpoints_load(dir / "run", "vae", &last_step);
        EXPECT_GE(last_step, prev_step) << "a resumed run went back in steps";
        prev_step = last_step;
      },
      8);
  EXPECT_GE(kills, 3) << "too few kills landed inside the run";
  const std::string a = dir / "ref/checkpoints/last.ckpt", b = dir / "run/checkpoints/last.ckpt";
  EXPECT_EQ(Checkpoint::load(b).get_int("step"), 16);
  EXPECT_TRUE(testutil::same_checkpoint_tensors(a, b, "vae."));
  EXPECT_TRUE(testutil::same_checkpoint_tensors(a, b, "discriminator."));
  // The temporaries of killed saves are cleaned up by the later saves.
  for (const auto& e : fs::directory_iterator(dir / "run/checkpoints"))
    EXPECT_NE(e.path().filename().string().rfind(".tmp-", 0), 0u) << "stale temporary " << e.path();
}

// The other stages the same way, in one test because each needs the one before: the LDM (on a VAE trained here), SPADE
// (without the classifier) and `sample` (pairs from both). Training ends with the uninterrupted weights; generation
// ends with the uninterrupted files, byte for byte, and never shows a half-written pair under its final name.
TEST(KillRecovery, LDMSpadeAndSamplingKilledAnywhereEndAsTheUninterruptedRun) {
  testutil::TempDir dir;
  const std::string dataset = three_slice_phantom(dir.path());
  VAETrainConfig v;
  v.run.device = "cpu";
  v.run.threads = 1;
  v.run.out_dir = dir / "vae";
  v.data.dataset = dataset;
  v.vae.channels = {8, 16};
  v.vae.num_res_blocks = 1;
  v.vae.norm_groups = 4;
  v.vae.mid_attention = false;
  v.discriminator.ndf = 8;
  v.train.steps = 2;
  v.train.batch_size = 2;
  v.train.validate_every = 0;
  train_vae(v, false);

  LDMTrainConfig l;
  l.run.device = "cpu";
  l.run.threads = 1;
  l.data.dataset = dataset;
  l.vae_checkpoint = dir / "vae/checkpoints/last.ckpt";
  l.unet.model_channels = 8;
  l.unet.channel_mult = {1, 2};
  l.unet.num_res_blocks = 1;
  l.unet.attention_levels = {};
  l.unet.norm_groups = 4;
  l.unet.conditioning = "hybrid";
  l.unet.cond_dim = 1;
  l.optim.ema_decay = 0.9;
  save_every_step(l.train, 12, 2);
  write_text_atomic(dir / "ldm.yaml", dump_config(l));
  const std::string ldm = kill_training(dir.path(), "ldm", dir / "ldm.yaml", {"unet.", "ema."}, 12, 21);

  SPADETrainConfig s;
  s.run.device = "cpu";
  s.run.threads = 1;
  s.data.dataset = dataset;
  s.classifier_checkpoint = "";
  s.loss.perceptual_network = "none";
  s.generator.ngf = 4;
  s.generator.z_dim = 8;
  s.generator.num_upsampling_layers = "less";
  s.generator.height = 32;
  s.generator.width = 48;
  s.generator.spade_hidden = 8;
  s.encoder.ndf = 4;
  s.encoder.z_dim = 8;
  s.encoder.num_layers = 3;
  s.encoder.height = 32;
  s.encoder.width = 48;
  s.discriminator.ndf = 4;
  s.discriminator.num_layers = 2;
  save_every_step(s.train, 10, 2);
  s.train.val_fraction = 0.25;
  write_text_atomic(dir / "spade.yaml", dump_config(s));
  const std::string spade =
      kill_training(dir.path(), "spade", dir / "spade.yaml", {"generator.", "encoder.", "discriminator."}, 10, 22);

  // Generation: 12 pairs, one per batch, so that kills land between and inside pairs.
  PairSampleJob j;
  j.run.device = "cpu";
  j.run.threads = 1;
  j.run.seed = 5;
  j.ldm_checkpoint = ldm;
  j.spade_checkpoint = spade;
  j.styles = {dir / "style.png"};
  write_png(dir / "style.png", (torch::rand({32, 48}) * 200 + 20).to(torch::kUInt8));
  j.num = 12;
  j.montage_pairs = 2;
  j.sampler.steps = 40;  // long enough per pair that kills land between and inside pairs
  j.sampler.batch_size = 1;
  write_text_atomic(dir / "sample.yaml", dump_config(j));
  auto sample_args = [&](const std::string& out) {
    return std::vector<std::string>{"--log-level", "warn", "sample", "--config", dir / "sample.yaml", "--out", out};
  };
  const std::string ref = dir / "pairs_ref", run = dir / "pairs_run";
  const int kills = kill_until_done(
      sample_args, ref, run, [&] { return files_in(run + "/records"); }, 1.0 / 8,
      [&] {
        // Every pair under its final name is whole: its image reads.
        std::error_code ec;
        if (!fs::is_directory(run + "/images", ec)) return;
        for (const auto& e : fs::directory_iterator(run + "/images")) {
          const std::string name = e.path().filename().string();
          if (name.rfind(".tmp-", 0) == 0) continue;
          EXPECT_NO_THROW(read_volume(e.path().string())) << "half-written pair image " << name;
        }
      },
      23);
  EXPECT_GE(kills, 2) << "too few kills landed inside generation";
  for (const char* sub : {"images", "labels", "labels_pv"}) {
    std::map<std::string, std::string> a, b;
    for (const auto& e : fs::directory_iterator(ref + "/" + sub)) a[e.path().filename()] = read_text(e.path());
    for (const auto& e : fs::directory_iterator(run + "/" + sub)) b[e.path().filename()] = read_text(e.path());
    EXPECT_EQ(a.size(), 12u) << sub;
    EXPECT_TRUE(a == b) << sub << ": the killed-and-resumed run differs from the uninterrupted one";
  }
  EXPECT_EQ(read_text(ref + "/manifest.csv"), read_text(run + "/manifest.csv"));
  // The killed attempts' half-written temporaries are gone once the run finishes.
  for (const char* sub : {"", "/images", "/labels", "/labels_pv", "/records"})
    for (const auto& e : fs::directory_iterator(run + sub))
      EXPECT_NE(e.path().filename().string().rfind(".tmp-", 0), 0u) << "stale temporary " << e.path();
}

// The two remaining training stages: the modality/dataset classifier and the segmenter (on the phantom slices).
TEST(KillRecovery, ClassifierAndSegmenterKilledAnywhereResumeToTheUninterruptedWeights) {
  testutil::TempDir dir;
  const std::string dataset = three_slice_phantom(dir.path());

  ClassifierTrainConfig c;
  c.run.device = "cpu";
  c.run.threads = 1;
  c.data.dataset = dataset;
  c.classifier.arch = "small";
  c.classifier.n_modalities = 2;
  c.classifier.n_datasets = 2;
  c.classifier.small_widths = {8, 16};
  save_every_step(c.train, 24, 4);
  c.train.val_fraction = 0.0;
  write_text_atomic(dir / "classifier.yaml", dump_config(c));
  kill_training(dir.path(), "classifier", dir / "classifier.yaml", {"classifier."}, 24, 31);

  SegmenterTrainConfig s;
  s.run.device = "cpu";
  s.run.threads = 1;
  s.data.sources = {dataset};
  s.data.class_names = {"background", "csf", "gm", "wm", "deep_gm", "brainstem"};
  s.model.num_classes = 6;
  s.model.features = {8, 16, 32};
  save_every_step(s.train, 16, 4);
  s.train.val_fraction = 0.2;
  write_text_atomic(dir / "segmenter.yaml", dump_config(s));
  kill_training(dir.path(), "segmenter", dir / "segmenter.yaml", {"segmenter."}, 16, 32);
}
