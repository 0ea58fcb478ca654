// brainspade bench [--config FILE] [--json FILE] [--repeats N] [--only NAME] [--scale S]: network timings, GFLOP/s
// against the measured ceiling, peak memory and sampling throughput (library: eval/benchmark.h).
#include <spdlog/spdlog.h>

#include <iostream>

#include "app.h"
#include "brainspade/core/atomic_file.h"
#include "brainspade/eval/benchmark.h"

namespace {
std::string config, json, dtype;
std::vector<std::string> overrides, only, scales;
int64_t repeats = -1, threads = -1, sampling_steps = -1;
bool channels_last = false, no_backward = false;
brainspade::app::Registrar reg("90-bench", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("bench", "time every network (tiny and paper scale) against this machine's ceiling");
  cmd->add_option("--config,-c", config, "YAML with bench keys (see eval/benchmark.h BenchJob)");
  cmd->add_option("--set", overrides, "override a key: --set paper.repeats=3 (repeatable)");
  cmd->add_option("--json", json, "also write the report as JSON to this file");
  cmd->add_option("--repeats", repeats, "timed calls per measurement at every scale (median reported)");
  cmd->add_option("--only", only, "networks: vae_encoder vae_decoder unet spade_generator style_encoder discriminator")
      ->delimiter(',');
  cmd->add_option("--scale", scales, "tiny | paper (repeatable; default both)")->delimiter(',');
  cmd->add_option("--threads", threads, "intra-op threads, 0 = all cores");
  cmd->add_option("--dtype", dtype, "float32 | bfloat16");
  cmd->add_flag("--channels-last", channels_last, "channels-last weights and inputs");
  cmd->add_flag("--no-backward", no_backward, "forward only");
  cmd->add_option("--sampling-steps", sampling_steps, "reverse steps timed for the sampling estimate (0 = skip)");
  cmd->callback([] {
    auto ov = overrides;
    auto list = [](const std::vector<std::string>& v) {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
      return s + "]";
    };
    if (!only.empty()) ov.push_back("only=" + list(only));
    if (!scales.empty()) ov.push_back("scales=" + list(scales));
    if (repeats > 0) ov.insert(ov.end(), {"tiny.repeats=" + std::to_string(repeats), "paper.repeats=" + std::to_string(repeats)});
    if (threads >= 0) ov.push_back("threads=" + std::to_string(threads));
    if (!dtype.empty()) ov.push_back("dtype=" + dtype);
    if (channels_last) ov.push_back("channels_last=true");
    if (no_backward) ov.push_back("backward=false");
    if (sampling_steps >= 0) ov.push_back("sampling_steps=" + std::to_string(sampling_steps));
    auto job = brainspade::load_config<brainspade::eval::BenchJob>({config, ov});
    auto report = brainspade::eval::run_benchmark(job);
    std::cout << brainspade::eval::format_bench_report(report) << std::flush;
    if (!json.empty()) {
      brainspade::write_text_atomic(json, brainspade::eval::bench_report_json(report));
      spdlog::info("wrote {}", json);
    }
  });
});
}  // namespace
