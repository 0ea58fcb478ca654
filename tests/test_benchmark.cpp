// brainspade bench: FLOP counting against hand counts, and the command end to end on the tiny networks.
// Nothing here asserts speed: timings on a shared CPU are only checked to be positive.
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <set>

#include <yaml-cpp/yaml.h>

#include "brainspade/eval/benchmark.h"
#include "support/helpers.h"

using namespace brainspade;

namespace {
struct FlopCase {
  const char* name;
  std::function<void()> fn;
  double expected;
};
}  // namespace

TEST(CountFlops, MatchesHandCountsForSingleLayers) {
  torch::InferenceMode im;
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 8, 3).padding(1));
  torch::nn::Conv2d strided(torch::nn::Conv2dOptions(3, 8, 3).stride(2).padding(1));
  torch::nn::Conv2d grouped(torch::nn::Conv2dOptions(8, 8, 3).padding(1).groups(4).bias(false));
  torch::nn::ConvTranspose2d up(torch::nn::ConvTranspose2dOptions(4, 6, 2).stride(2));
  torch::nn::Linear linear(10, 20);
  auto x = torch::randn({2, 3, 16, 16});
  std::vector<FlopCase> cases{
      // 2 · B · Cout · Hout · Wout · Cin · kh · kw
      {"conv 3->8 k3 p1 on 2x3x16x16", [&] { conv->forward(x); }, 2.0 * 2 * 8 * 16 * 16 * 3 * 9},
      {"conv 3->8 k3 s2 p1 (8x8 out)", [&] { strided->forward(x); }, 2.0 * 2 * 8 * 8 * 8 * 3 * 9},
      {"conv 8->8 k3 groups 4", [&] { grouped->forward(torch::randn({1, 8, 5, 7})); }, 2.0 * 1 * 8 * 5 * 7 * 2 * 9},
      // transposed: every input element meets Cout · kh · kw weights
      {"conv-transpose 4->6 k2 s2 on 1x4x3x3", [&] { up->forward(torch::randn({1, 4, 3, 3})); }, 2.0 * 36 * 6 * 4},
      // 2 · rows · in · out (addmm for 2-D input, matmul → mm for 3-D)
      {"linear 10->20 on 4x10", [&] { linear->forward(torch::randn({4, 10})); }, 2.0 * 4 * 10 * 20},
      {"linear 10->20 on 4x5x10", [&] { linear->forward(torch::randn({4, 5, 10})); }, 2.0 * 20 * 10 * 20},
      {"bmm 3x4x5 @ 3x5x6", [&] { torch::bmm(torch::randn({3, 4, 5}), torch::randn({3, 5, 6})); }, 2.0 * 3 * 4 * 5 * 6},
      {"relu counts nothing", [&] { torch::relu(x); }, 0.0},
  };
  for (const auto& c : cases) EXPECT_DOUBLE_EQ(count_flops(c.fn), c.expected) << c.name;
}

TEST(BenchCommand, TinyRunWritesJsonWithEveryNetwork) {
  testutil::TempDir dir;
  const std::string json = dir / "bench.json";
  const std::string cmd = std::string(BRAINSPADE_BINARY) +
                          " --log-level warn bench --threads 1 --scale tiny --repeats 1 --set tiny.warmup=0 --set tiny.batch=2"
                          " --set ceiling_repeats=1 --sampling-steps 1 --json " + json + " > " + (dir / "out.txt");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  YAML::Node r = YAML::LoadFile(json);  // JSON is YAML
  EXPECT_GT(r["ceiling"]["matmul_gflops"].as<double>(), 0.0);
  EXPECT_GT(r["ceiling"]["conv_gflops"].as<double>(), 0.0);
  EXPECT_EQ(r["dtype"].as<std::string>(), "float32");
  std::set<std::string> seen;
  for (const auto& n : r["networks"]) {
    std::string name = n["network"].as<std::string>();
    seen.insert(name);
    EXPECT_EQ(n["scale"].as<std::string>(), "tiny");
    EXPECT_GT(n["params"].as<int64_t>(), 0) << name;
    EXPECT_GT(n["flops_per_sample"].as<double>(), 0.0) << name;
    EXPECT_GT(n["forward_s"].as<double>(), 0.0) << name;
    EXPECT_GT(n["forward_backward_s"].as<double>(), 0.0) << name;
    EXPECT_GT(n["forward_gflops"].as<double>(), 0.0) << name;
  }
  for (const auto& name : bench_network_names()) EXPECT_EQ(seen.count(name), 1u) << name;
  ASSERT_EQ(r["sampling"].size(), 1u);
  auto s = r["sampling"][0];
  EXPECT_GT(s["ddpm1000_pairs_per_s"].as<double>(), 0.0);
  EXPECT_GT(s["ddim50_pairs_per_s"].as<double>(), s["ddpm1000_pairs_per_s"].as<double>());
  EXPECT_GT(s["ddim50_flops_per_pair"].as<double>(), 0.0);
}

TEST(BenchCommand, OnlyPicksNetworksAndUnknownNamesAreRefused) {
  testutil::TempDir dir;
  const std::string json = dir / "bench.json";
  std::string base = std::string(BRAINSPADE_BINARY) + " --log-level warn bench --threads 1 --scale tiny --repeats 1 --no-backward"
                     " --set ceiling_repeats=1 --sampling-steps 0 ";
  ASSERT_EQ(std::system((base + "--only unet,vae_decoder --json " + json + " > /dev/null").c_str()), 0);
  YAML::Node r = YAML::LoadFile(json);
  ASSERT_EQ(r["networks"].size(), 2u);
  for (const auto& n : r["networks"]) EXPECT_TRUE(n["forward_backward_s"].IsNull());
  EXPECT_NE(std::system((base + "--only nonsense > /dev/null 2>&1").c_str()), 0);
}

TEST(BenchCommand, Bfloat16ForwardRuns) {
  BenchJob job;
  job.threads = 1;  // two OpenMP threads on a shared 2-core machine can be 10x slower (docs/performance.md)
  job.scales = {"tiny"};
  job.only = {"unet", "spade_generator"};
  job.dtype = "bfloat16";
  job.channels_last = true;
  job.sampling_steps = 1;
  job.ceiling_repeats = 1;
  job.tiny.batch = 1;
  job.tiny.warmup = 0;
  job.tiny.repeats = 1;
  const int threads_before = torch::get_num_threads();
  auto rep = run_benchmark(job);
  torch::set_num_threads(threads_before);  // run_benchmark sets the process-wide count
  ASSERT_EQ(rep.networks.size(), 2u);
  for (const auto& n : rep.networks) {
    EXPECT_GT(n.forward_s, 0.0);
    EXPECT_LT(n.forward_backward_s, 0.0);  // backward is float32 only
  }
  EXPECT_NE(format_bench_report(rep).find("bfloat16"), std::string::npos);
}

TEST(BenchScales, AreTheShippedConfigsNetworks) {
  // The benchmark times what configs/tiny and configs/paper train: read from the files, not copied into the code.
  for (const char* name : {"tiny", "paper"}) {
    SCOPED_TRACE(name);
    BenchScale s = std::string(name) == "tiny" ? tiny_bench_scale() : paper_bench_scale();
    load_bench_networks(s);
    const std::string dir = std::string(BRAINSPADE_SOURCE_DIR) + "/configs/" + name;
    YAML::Node ldm = YAML::LoadFile(dir + "/ldm.yaml"), vae = YAML::LoadFile(dir + "/vae.yaml"),
               spade = YAML::LoadFile(dir + "/spade.yaml");
    EXPECT_EQ(s.unet.model_channels, ldm["unet"]["model_channels"].as<int64_t>());
    EXPECT_EQ(s.unet.channel_mult, ldm["unet"]["channel_mult"].as<std::vector<int64_t>>());
    EXPECT_EQ(s.unet.attention_levels, ldm["unet"]["attention_levels"].as<std::vector<int64_t>>());
    EXPECT_EQ(s.vae.channels, vae["vae"]["channels"].as<std::vector<int64_t>>());
    EXPECT_EQ(s.generator.ngf, spade["generator"]["ngf"].as<int64_t>());
    EXPECT_EQ(s.height, spade["generator"]["height"].as<int64_t>());
  }
  BenchScale missing = tiny_bench_scale();
  missing.configs = "no/such/folder";
  try {
    load_bench_networks(missing);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/folder/vae.yaml does not exist"), std::string::npos) << e.what();
  }
}

TEST(BenchCommand, EndToEndSamplingRunsAndExtrapolation) {
  BenchJob job;
  job.threads = 1;
  job.scales = {"tiny"};
  job.only = {"unet"};
  job.backward = false;
  job.sampling_steps = 0;
  job.ceiling_repeats = 1;
  job.tiny.warmup = 0;
  job.tiny.repeats = 1;
  job.sampling_runs = true;
  job.sampling_samplers = {"ddim:8", "dpmpp_2m:4", "ddpm:40"};
  job.sampling_dtypes = {"float32"};
  job.sampling_batches = {2};
  job.sampling_max_timed_steps = 8;
  const int threads_before = torch::get_num_threads();
  auto rep = run_benchmark(job);
  torch::set_num_threads(threads_before);
  ASSERT_EQ(rep.sampling_runs.size(), 3u);
  const auto &ddim = rep.sampling_runs[0], &dpm = rep.sampling_runs[1], &ddpm = rep.sampling_runs[2];
  EXPECT_FALSE(ddim.extrapolated);
  EXPECT_EQ(ddim.timed_steps, 8);
  EXPECT_TRUE(ddpm.extrapolated);  // 40 steps > 8: timed at 8 and 1 and extrapolated
  EXPECT_EQ(ddpm.timed_steps, 8);
  for (const auto& r : rep.sampling_runs) {
    EXPECT_GT(r.label_s, 0.0);
    EXPECT_GT(r.image_s, 0.0);
    EXPECT_NEAR(r.pairs_per_s, 1.0 / (r.label_s + r.image_s), 1e-9);
  }
  EXPECT_FALSE(dpm.extrapolated);  // timings themselves are the benchmark's to report, not the test's to assert
  const auto json = bench_report_json(rep);
  EXPECT_NE(json.find("\"sampling_runs\""), std::string::npos);
  EXPECT_NE(format_bench_report(rep).find("| tiny | ddpm | 40 |"), std::string::npos) << format_bench_report(rep);
  job.sampling_samplers = {"dpmpp:10"};
  EXPECT_THROW(run_benchmark(job), InputError);
  torch::set_num_threads(threads_before);
}
