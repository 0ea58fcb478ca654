// Runtime basics: seeds, atomic files, checkpoints, the CLI's exit codes.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <fstream>

#include <gtest/gtest.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <torch/torch.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/checkpoint.h"
#include "brainspade/core/runtime.h"
#include "support/helpers.h"

using namespace brainspade;

TEST(Runtime, DerivedSeedsAreStableAndDistinct) {
  EXPECT_EQ(derive_seed(1, 2, 3), derive_seed(1, 2, 3));
  EXPECT_NE(derive_seed(1, 2, 3), derive_seed(1, 3, 2));
  EXPECT_NE(derive_seed(1, 2), derive_seed(2, 2));
  // Fixed values, computed by an independent Python splitmix64 (whose mix(0) is the published first output
  // 0xe220a8397b1dcdaf): changing the mixer would silently change every seeded output.
  EXPECT_EQ(derive_seed(0, 0, 0), 2558736989570252433ULL);
  EXPECT_EQ(derive_seed(1, 2, 3), 5797055558538453683ULL);
  EXPECT_EQ(derive_seed(42, 7, 0), 6178525862795807727ULL);
}

// threads: 0 follows OMP_NUM_THREADS when it is a positive integer (ctest sets 1), else every core.
TEST(Runtime, ZeroThreadsFollowsOmpNumThreads) {
  const char* old = std::getenv("OMP_NUM_THREADS");
  const std::string saved = old ? old : "";
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  setenv("OMP_NUM_THREADS", "3", 1);
  EXPECT_EQ(default_threads(), 3);
  EXPECT_EQ(configure_threads(0), 3);
  EXPECT_EQ(torch::get_num_threads(), 3);
  EXPECT_EQ(configure_threads(1), 1);  // an explicit count wins
  for (const char* bad : {"two", "0", "-1", "2x", ""}) {
    setenv("OMP_NUM_THREADS", bad, 1);
    EXPECT_EQ(default_threads(), cores) << "'" << bad << "'";
  }
  unsetenv("OMP_NUM_THREADS");
  EXPECT_EQ(default_threads(), cores);
  if (old) setenv("OMP_NUM_THREADS", saved.c_str(), 1);
  configure_threads(0);
}

#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)  // ASan brings its own allocator
// reuse_freed_memory: a 64 MiB tensor is mapped afresh by glibc's default (above its mmap threshold) and comes from
// the heap afterwards, where freeing it keeps the memory for the next one.
TEST(Runtime, ReuseFreedMemoryServesLargeTensorsFromTheHeap) {
  if (std::getenv("GLIBC_TUNABLES") != nullptr) GTEST_SKIP() << "GLIBC_TUNABLES is set: reuse_freed_memory leaves malloc alone";
  const int64_t n = (int64_t(64) << 20) / 4;
  auto mapped_while_alive = [&] {
    const size_t before = mallinfo2().hblkhd;
    auto t = torch::ones({n});
    return mallinfo2().hblkhd - before;
  };
  const size_t by_default = mapped_while_alive();
  ASSERT_TRUE(reuse_freed_memory());
  EXPECT_EQ(mapped_while_alive(), 0u);
  const size_t heap_before = mallinfo2().arena;
  { auto t = torch::ones({n}); }
  EXPECT_GE(mallinfo2().arena, heap_before);  // not given back
  std::printf("  64 MiB tensor: %zu bytes mapped by default, 0 after reuse_freed_memory\n", by_default);
  if (by_default == 0) std::printf("  (malloc was already set up this way in this process)\n");
  else EXPECT_GE(by_default, size_t(n) * 4);
}
#endif

TEST(Runtime, DeviceParsing) {
  EXPECT_EQ(parse_device("cpu"), torch::Device(torch::kCPU));
  if (!torch::cuda::is_available()) {
    EXPECT_EQ(parse_device("auto"), torch::Device(torch::kCPU));
    EXPECT_THROW(parse_device("cuda"), InputError);
  }
  EXPECT_THROW(parse_device("tpu"), InputError);
}

TEST(AtomicFile, LeavesNoTemporaryBehind) {
  testutil::TempDir dir;
  write_text_atomic(dir / "sub/a.txt", "hello");
  EXPECT_EQ(read_text(dir / "sub/a.txt"), "hello");
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir / "sub")) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  // A writer that fails leaves neither the final file nor its temporary.
  EXPECT_THROW(write_atomic(dir / "sub/b.txt", [](const std::string& tmp) {
                 std::ofstream(tmp) << "partial";
                 throw InputError("boom");
               }),
               InputError);
  EXPECT_FALSE(std::filesystem::exists(dir / "sub/b.txt"));
  files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir / "sub")) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST(AtomicFile, RemovesOnlyTheTemporariesOfDeadProcessesOfThisHost) {
  testutil::TempDir dir;
  // A pid that is certainly dead: a child that has exited and been reaped.
  pid_t child = fork();
  if (child == 0) _exit(0);
  int status = 0;
  waitpid(child, &status, 0);
  const std::string mine = temporary_prefix();  // ".tmp-<host>.<pid>-"
  ASSERT_EQ(mine.rfind(".tmp-", 0), 0u);
  const std::string host = mine.substr(0, mine.rfind('.', mine.size() - 2) + 1);  // ".tmp-<host>."
  const std::string dead = host + std::to_string(child) + "-pair_000001.nii.gz";
  const std::string alive = mine + "pair_000002.nii.gz";
  const std::string other_host = ".tmp-elsewhere." + std::to_string(child) + "-pair_000003.nii.gz";
  const std::string plain = "pair_000000.nii.gz";
  for (const auto& f : {dead, alive, other_host, plain}) write_text_atomic(dir / f, "x");
  EXPECT_EQ(remove_dead_temporaries(dir.path()), 1);
  EXPECT_FALSE(std::filesystem::exists(dir / dead));
  EXPECT_TRUE(std::filesystem::exists(dir / alive)) << "a running process's temporary was removed";
  EXPECT_TRUE(std::filesystem::exists(dir / other_host)) << "another host's temporary was removed";
  EXPECT_TRUE(std::filesystem::exists(dir / plain));
  EXPECT_EQ(remove_dead_temporaries(dir / "missing"), 0);
}

TEST(Checkpoint, RoundTripsModulesOptimizersAndScalars) {
  testutil::TempDir dir;
  torch::manual_seed(0);
  torch::nn::Sequential net(torch::nn::Conv2d(torch::nn::Conv2dOptions(2, 3, 3)), torch::nn::BatchNorm2d(3));
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-3));
  auto loss = net->forward(torch::randn({2, 2, 5, 5})).pow(2).mean();
  loss.backward();
  opt.step();
  Checkpoint ck;
  ck.set_string("stage", "test");
  ck.set_int("step", 12);
  ck.set_double("lr", 0.25);
  ck.add_module("net", *net);
  ck.add_optimizer("optim", opt);
  ck.save(dir / "a.ckpt");

  torch::nn::Sequential net2(torch::nn::Conv2d(torch::nn::Conv2dOptions(2, 3, 3)), torch::nn::BatchNorm2d(3));
  torch::optim::Adam opt2(net2->parameters(), torch::optim::AdamOptions(1e-3));
  auto back = Checkpoint::load(dir / "a.ckpt");
  back.load_module("net", *net2, "test");
  back.load_optimizer("optim", opt2);
  EXPECT_EQ(back.get_int("step"), 12);
  EXPECT_DOUBLE_EQ(back.get_double("lr"), 0.25);
  EXPECT_NO_THROW(check_checkpoint_stage(back, "test"));
  EXPECT_THROW(check_checkpoint_stage(back, "vae"), InputError);
  auto p1 = net->parameters(), p2 = net2->parameters();
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(torch::equal(p1[i], p2[i]));
  EXPECT_TRUE(torch::equal(net->named_buffers()["1.running_mean"], net2->named_buffers()["1.running_mean"]));
  // The restored Adam moments produce the same next step.
  for (auto* pair : {&net, &net2}) {
    (void)pair;
  }
  auto x = torch::randn({2, 2, 5, 5});
  opt.zero_grad();
  net->forward(x).pow(2).mean().backward();
  opt.step();
  opt2.zero_grad();
  net2->forward(x).pow(2).mean().backward();
  opt2.step();
  p1 = net->parameters();
  p2 = net2->parameters();
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(torch::allclose(p1[i], p2[i])) << i;
}

TEST(Checkpoint, WrongShapeNamesTheKey) {
  torch::nn::Linear a(3, 4), b(3, 5);
  Checkpoint ck;
  ck.add_module("m", *a);
  try {
    ck.load_module("m", *b, "model.ckpt");
    FAIL();
  } catch (const InputError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("m.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[4, 3]"), std::string::npos) << msg;
  }
}

TEST(Checkpoint, BadFilesAreInputErrors) {
  testutil::TempDir dir;
  EXPECT_THROW(Checkpoint::load(dir / "missing.ckpt"), InputError);
  testutil::write_file(dir / "empty.ckpt", "");
  EXPECT_THROW(Checkpoint::load(dir / "empty.ckpt"), InputError);
  testutil::write_file(dir / "junk.ckpt", "this is not a pickle archive at all");
  EXPECT_THROW(Checkpoint::load(dir / "junk.ckpt"), InputError);
  Checkpoint ck;
  ck.set("w", torch::randn({64, 64}));
  ck.save(dir / "good.ckpt");
  auto bytes = read_text(dir / "good.ckpt");
  testutil::write_file(dir / "trunc.ckpt", bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(Checkpoint::load(dir / "trunc.ckpt"), InputError);
}

TEST(Cli, VersionAndHelp) {
  auto v = testutil::run_cli("--version");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.output.find("LibTorch"), std::string::npos) << v.output;
  auto bad = testutil::run_cli("no-such-command");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
}
