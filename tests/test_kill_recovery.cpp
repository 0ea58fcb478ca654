// Kill-anywhere recovery: `brainspade train vae` is SIGKILLed at random moments and resumed with --resume. After every
// kill each checkpoint under its final name loads, and the finished run's weights equal an uninterrupted run's.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <filesystem>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/checkpoint.h"
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

// Starts the program with `args`, output discarded. With `kill_after_ms` >= 0 it is SIGKILLed that long after its
// first new row in `progress_file` (metrics.csv gets a row per step), so that every kill lands inside training,
// often inside a checkpoint save. Returns the exit code, or -SIGKILL when it was killed.
int run_and_kill(const std::vector<std::string>& args, const std::string& progress_file, int kill_after_ms) {
  std::vector<char*> argv;
  std::string bin = BRAINSPADE_BINARY;
  argv.push_back(bin.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const auto size_before = size_or_zero(progress_file);
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
      if (!deadline && size_or_zero(progress_file) != size_before)
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
void expect_checkpoints_load(const std::string& run_dir, int64_t* last_step) {
  const std::string dir = run_dir + "/checkpoints";
  if (!fs::exists(dir)) return;
  for (const auto& e : fs::directory_iterator(dir)) {
    // write_atomic's temporaries (".tmp-<pid>-last.ckpt") may be half-written: that is what they are for.
    if (e.path().extension() != ".ckpt" || e.path().filename().string().rfind(".tmp-", 0) == 0) continue;
    try {
      auto ck = Checkpoint::load(e.path().string());
      EXPECT_EQ(ck.get_string("stage"), "vae");
      if (e.path().filename() == "last.ckpt") *last_step = ck.get_int("step");
    } catch (const std::exception& ex) {
      ADD_FAILURE() << "half-written checkpoint under its final name: " << e.path() << ": " << ex.what();
    }
  }
}

}  // namespace

TEST(KillRecovery, TrainVAEKilledAnywhereResumesToTheUninterruptedWeights) {
  testutil::TempDir dir;
  testutil::PhantomOptions po;
  po.slices = 3;
  VAETrainConfig c;
  c.run.device = "cpu";
  c.run.threads = 1;
  c.data.dataset = testutil::write_phantom_dataset(dir / "data", po);
  c.vae.in_channels = 6;
  c.vae.channels = {8, 16};
  c.vae.num_res_blocks = 1;
  c.vae.norm_groups = 4;
  c.vae.mid_attention = false;
  c.discriminator.in_channels = 6;
  c.discriminator.ndf = 8;
  c.discriminator.n_layers = 2;
  c.loss.adv_start_step = 3;
  c.train.steps = 16;
  c.train.batch_size = 2;
  c.train.log_every = 1;
  c.train.checkpoint_every = 1;  // a save at every step: many kills land inside one
  c.train.keep_checkpoints = 2;
  c.train.validate_every = 0;
  c.train.val_fraction = 0.2;
  write_text_atomic(dir / "vae.yaml", dump_config(c));
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{"--log-level", "warn", "train", "vae", "--config", dir / "vae.yaml", "--out", out, "--resume"};
  };

  // The reference: one uninterrupted run, timed to spread the kills over a few steps.
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(run_and_kill(args(dir / "ref"), "", -1), 0);
  const int run_ms = static_cast<int>(
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());

  std::mt19937 rng(8);
  std::uniform_int_distribution<int> when(0, std::max(1, run_ms / 16));  // up to ~2 steps after the first new row
  int kills = 0, finished = -1;
  int64_t last_step = 0, prev_step = 0;
  for (int attempt = 0; attempt < 6 && finished != 0; ++attempt) {
    const int ms = when(rng);
    const int rc = run_and_kill(args(dir / "run"), dir / "run/metrics.csv", ms);
    if (rc == -SIGKILL) ++kills;
    else finished = rc;
    expect_checkpoints_load(dir / "run", &last_step);
    EXPECT_GE(last_step, prev_step) << "a resumed run went back in steps";
    prev_step = last_step;
    std::printf("    attempt %d: kill %d ms after its first step -> %s, last.ckpt at step %lld\n", attempt, ms,
                rc == -SIGKILL ? "killed" : "exited", static_cast<long long>(last_step));
  }
  if (finished != 0) {
    ASSERT_EQ(run_and_kill(args(dir / "run"), "", -1), 0);
  }
  EXPECT_GE(kills, 3) << "too few kills landed inside the run";
  const std::string a = dir / "ref/checkpoints/last.ckpt", b = dir / "run/checkpoints/last.ckpt";
  EXPECT_EQ(Checkpoint::load(b).get_int("step"), 16);
  EXPECT_TRUE(testutil::same_checkpoint_tensors(a, b, "vae."));
  EXPECT_TRUE(testutil::same_checkpoint_tensors(a, b, "discriminator."));
  // The temporaries of killed saves are cleaned up by the later saves.
  for (const auto& e : fs::directory_iterator(dir / "run/checkpoints"))
    EXPECT_NE(e.path().filename().string().rfind(".tmp-", 0), 0u) << "stale temporary " << e.path();
}
