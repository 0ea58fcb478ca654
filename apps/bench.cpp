// brainspade bench [--config FILE] [--json FILE] [--repeats N] [--only NAME] [--scale S] [--sampling]: network timings,
// GFLOP/s against the measured ceiling, peak memory, sampling throughput (estimated per step, and with --sampling
// timed end to end) (library: eval/benchmark.h).
#include <spdlog/spdlog.h>

#include <iostream>

#include "app.h"
#include "brainspade/core/atomic_file.h"
#include "brainspade/eval/benchmark.h"

namespace cmd_bench {
std::string config, json, dtype;
std::vector<std::string> overrides, only, scales;
int64_t repeats = -1, threads = -1, sampling_steps = -1, audit = -1;
bool channels_last = false, no_backward = false, sampling = false;
brainspade::app::Registrar reg("90-bench", [](CLI::App& root) {
  auto* cmd = root.add_subcommand("bench", "time every network (tiny and paper scale) against this machine's ceiling");
  cmd->add_option("--config,-c", config, "YAML with bench keys (see eval/benchmark.h BenchJob)");
  cmd->add_option("--set", overrides, "override a key: --set paper.repeats=3 (repeatable)");
  cmd->add_option("--json", json, "also write the report as JSON to this file");
  cmd->add_option("--repeats", repeats, "timed calls per measurement at every scale (median reported)");
  cmd->add_option("--only", only, "networks: vae_encoder vae_decoder unet spade_generator style_encoder discriminator")
      ->delimiter(',');
  cmd->add_option("--scale", scales, "tiny | paper (repeatable; default both)")->delimiter(',');
  cmd->add_option("--threads", threads, "intra-op threads, 0 = OMP_NUM_THREADS when set, else all cores");
  cmd->add_option("--dtype", dtype, "float32 | bfloat16");
  cmd->add_flag("--channels-last", channels_last, "channels-last weights and inputs");
  cmd->add_flag("--no-backward", no_backward, "forward only");
  cmd->add_option("--sampling-steps", sampling_steps, "reverse steps timed for the per-step sampling estimate (0 = skip)");
  cmd->add_flag("--sampling", sampling,
                "also time real end-to-end sampling runs: sampling_samplers x sampling_dtypes x sampling_batches");
  cmd->add_option("--audit", audit, "also time the audit's nearest-neighbour search of N x N maps (audit_size)");
  cmd->callback([] {
    brainspade::ConfigSource src{config, overrides, {}};
    auto set = [&](const std::string& key, const auto& value) { src.values.emplace_back(key, YAML::Node(value)); };
    if (!only.empty()) set("only", only);
    if (!scales.empty()) set("scales", scales);
    if (repeats > 0) set("tiny.repeats", repeats), set("paper.repeats", repeats);
    if (threads >= 0) set("threads", threads);
    if (!dtype.empty()) set("dtype", dtype);
    if (channels_last) set("channels_last", true);
    if (no_backward) set("backward", false);
    if (sampling_steps >= 0) set("sampling_steps", sampling_steps);
    if (sampling) set("sampling_runs", true);
    if (audit >= 0) set("audit_size", audit);
    auto job = brainspade::load_config<brainspade::BenchJob>(src);
    auto report = brainspade::run_benchmark(job);
    std::cout << brainspade::format_bench_report(report) << std::flush;
    if (!json.empty()) {
      brainspade::write_text_atomic(json, brainspade::bench_report_json(report));
      spdlog::info("wrote {}", json);
    }
  });
});
}  // namespace cmd_bench
