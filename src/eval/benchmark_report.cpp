// The benchmark report as a Markdown table and as JSON (eval/benchmark.h).
#include <cmath>
#include <iomanip>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "brainspade/eval/benchmark.h"

namespace brainspade {

namespace {
std::string fmt(double v, int prec = 2) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(prec) << v;
  return o.str();
}
}  // namespace

std::string format_bench_report(const BenchReport& r) {
  std::ostringstream o;
  const auto& c = r.ceiling;
  const bool bf16 = r.dtype == "bfloat16";
  const double mm = bf16 ? c.matmul_bf16_gflops : c.matmul_gflops, cv = bf16 ? c.conv_bf16_gflops : c.conv_gflops;
  o << "machine: " << r.cpu << ", " << r.cores << " cores, " << r.threads << " threads, " << r.date << "\n"
    << "load (1/5/15 min): before " << r.load_before << " | after " << r.load_after << "\n"
    << "dtype " << r.dtype << (r.channels_last ? ", channels-last" : "") << "\n"
    << "ceiling: matmul 2048^3 fp32 " << fmt(c.matmul_gflops, 1) << " GFLOP/s, conv 128->128 3x3 on 8x128x48x64 fp32 "
    << fmt(c.conv_gflops, 1) << " GFLOP/s; bf16 " << fmt(c.matmul_bf16_gflops, 1) << " / " << fmt(c.conv_bf16_gflops, 1)
    << " GFLOP/s\n\n";
  o << "| scale | network | input | params (M) | GFLOP/sample | fwd s/sample | fwd GFLOP/s | %mm | %conv | fwd+bwd s/sample | "
       "fwd+bwd GFLOP/s | %mm | peak MB fwd / fwd+bwd |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& n : r.networks) {
    o << "| " << n.scale << " | " << n.network << " | " << n.input << " | " << fmt(n.params / 1e6, 2) << " | "
      << fmt(n.flops / 1e9, 3) << " | " << fmt(n.forward_s, 4) << " | " << fmt(n.forward_gflops, 1) << " | "
      << fmt(100 * n.forward_gflops / mm, 0) << "% | " << fmt(100 * n.forward_gflops / cv, 0) << "% | ";
    if (n.forward_backward_s > 0)
      o << fmt(n.forward_backward_s, 4) << " | " << fmt(n.forward_backward_gflops, 1) << " | "
        << fmt(100 * n.forward_backward_gflops / mm, 0) << "% | ";
    else
      o << "- | - | - | ";
    o << fmt(n.forward_peak_mb, 0) << " / " << (n.forward_backward_s > 0 ? fmt(n.forward_backward_peak_mb, 0) : "-")
      << " |\n";
  }
  if (!r.sampling.empty()) {
    o << "\n| scale | batch | DDPM step s/sample | DDIM step s/sample | decode s | SPADE E+G s | DDPM-1000 labels/s | "
         "DDIM-50 labels/s | DDPM-1000 pairs/s | DDIM-50 pairs/s | DDIM/DDPM | GFLOP/pair DDPM-1000 | GFLOP/pair DDIM-50 |\n"
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& s : r.sampling)
      o << "| " << s.scale << " | " << s.batch << " | " << fmt(s.ddpm_step_s, 4) << " | " << fmt(s.ddim_step_s, 4) << " | "
        << fmt(s.decode_s, 4) << " | " << fmt(s.image_s, 4) << " | " << fmt(s.ddpm1000_labels_per_s, 5) << " | "
        << fmt(s.ddim50_labels_per_s, 5) << " | " << fmt(s.ddpm1000_pairs_per_s, 5) << " | "
        << fmt(s.ddim50_pairs_per_s, 5) << " | " << fmt(s.ddim50_pairs_per_s / s.ddpm1000_pairs_per_s, 1) << "x | "
        << fmt(s.ddpm1000_flops_per_pair / 1e9, 0) << " | " << fmt(s.ddim50_flops_per_pair / 1e9, 0) << " |\n";
  }
  if (!r.sampling_runs.empty()) {
    o << "\nEnd to end (sample_label_batch + style encoder + SPADE generator; random weights, the configs' networks; "
         "'~' = extrapolated from shorter timed runs):\n\n"
         "| scale | sampler | steps | dtype | batch | s/label | s/image | pairs/s | vs first row of the scale |\n"
         "|---|---|---|---|---|---|---|---|---|\n";
    std::map<std::string, double> first;
    for (const auto& x : r.sampling_runs) {
      if (!first.count(x.scale)) first[x.scale] = x.pairs_per_s;
      o << "| " << x.scale << " | " << x.sampler << " | " << x.steps << " | " << x.dtype << " | " << x.batch << " | "
        << (x.extrapolated ? "~" : "") << fmt(x.label_s, 4) << " | " << fmt(x.image_s, 4) << " | "
        << (x.extrapolated ? "~" : "") << fmt(x.pairs_per_s, 4) << " | " << fmt(x.pairs_per_s / first[x.scale], 2)
        << "x |\n";
    }
  }
  if (!r.audit.empty()) {
    o << "\nAudit nearest-neighbour search (brainspade audit; n synthetic x n training, shifts of +-2 px, one process):\n\n"
         "| scale | searched at | pooled by | tissues | n | label maps s | images s | s per 1,000 x 1,000 |\n"
         "|---|---|---|---|---|---|---|---|\n";
    for (const auto& x : r.audit)
      o << "| " << x.scale << " | " << x.size << " | " << x.downsample << " | " << x.tissues << " | " << x.n << " | "
        << fmt(x.label_s, 1) << " | " << fmt(x.image_s, 1) << " | " << fmt(x.per_million_s, 1) << " |\n";
  }
  return o.str();
}

std::string bench_report_json(const BenchReport& r) {
  // A non-finite measurement (a network not timed) is null.
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr); };
  const auto& c = r.ceiling;
  nlohmann::ordered_json o;
  o["date"] = r.date;
  o["cpu"] = r.cpu;
  o["cores"] = r.cores;
  o["threads"] = r.threads;
  o["dtype"] = r.dtype;
  o["channels_last"] = r.channels_last;
  o["load_before"] = r.load_before;
  o["load_after"] = r.load_after;
  o["ceiling"] = {{"matmul_gflops", num(c.matmul_gflops)},
                  {"conv_gflops", num(c.conv_gflops)},
                  {"matmul_bf16_gflops", num(c.matmul_bf16_gflops)},
                  {"conv_bf16_gflops", num(c.conv_bf16_gflops)}};
  o["networks"] = nlohmann::ordered_json::array();
  for (const auto& n : r.networks) {
    nlohmann::ordered_json e;
    e["scale"] = n.scale;
    e["network"] = n.network;
    e["input"] = n.input;
    e["batch"] = n.batch;
    e["params"] = n.params;
    e["flops_per_sample"] = num(n.flops);
    e["forward_s"] = num(n.forward_s);
    e["forward_gflops"] = num(n.forward_gflops);
    e["forward_fraction_of_matmul"] = num(n.forward_gflops / c.matmul_gflops);
    e["forward_fraction_of_conv"] = num(n.forward_gflops / c.conv_gflops);
    e["forward_backward_s"] = n.forward_backward_s > 0 ? num(n.forward_backward_s) : nlohmann::ordered_json(nullptr);
    e["forward_backward_gflops"] = n.forward_backward_s > 0 ? num(n.forward_backward_gflops) : nlohmann::ordered_json(nullptr);
    e["forward_peak_mb"] = num(n.forward_peak_mb);
    e["forward_backward_peak_mb"] = num(n.forward_backward_peak_mb);
    o["networks"].push_back(e);
  }
  o["sampling"] = nlohmann::ordered_json::array();
  for (const auto& x : r.sampling) {
    nlohmann::ordered_json e;
    e["scale"] = x.scale;
    e["batch"] = x.batch;
    e["ddpm_step_s"] = num(x.ddpm_step_s);
    e["ddim_step_s"] = num(x.ddim_step_s);
    e["decode_s"] = num(x.decode_s);
    e["image_s"] = num(x.image_s);
    e["ddpm1000_labels_per_s"] = num(x.ddpm1000_labels_per_s);
    e["ddim50_labels_per_s"] = num(x.ddim50_labels_per_s);
    e["ddpm1000_pairs_per_s"] = num(x.ddpm1000_pairs_per_s);
    e["ddim50_pairs_per_s"] = num(x.ddim50_pairs_per_s);
    e["ddpm1000_flops_per_pair"] = num(x.ddpm1000_flops_per_pair);
    e["ddim50_flops_per_pair"] = num(x.ddim50_flops_per_pair);
    o["sampling"].push_back(e);
  }
  o["sampling_runs"] = nlohmann::ordered_json::array();
  for (const auto& x : r.sampling_runs)
    o["sampling_runs"].push_back({{"scale", x.scale},
                                  {"sampler", x.sampler},
                                  {"steps", x.steps},
                                  {"dtype", x.dtype},
                                  {"batch", x.batch},
                                  {"timed_steps", x.timed_steps},
                                  {"extrapolated", x.extrapolated},
                                  {"label_s", num(x.label_s)},
                                  {"image_s", num(x.image_s)},
                                  {"pairs_per_s", num(x.pairs_per_s)}});
  o["audit"] = nlohmann::ordered_json::array();
  for (const auto& x : r.audit)
    o["audit"].push_back({{"scale", x.scale},
                          {"size", x.size},
                          {"downsample", x.downsample},
                          {"tissues", x.tissues},
                          {"n", x.n},
                          {"max_shift", x.max_shift},
                          {"label_s", num(x.label_s)},
                          {"image_s", num(x.image_s)},
                          {"per_million_s", num(x.per_million_s)}});
  return o.dump(2) + "\n";
}

}  // namespace brainspade
