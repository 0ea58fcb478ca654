// `bench --sampling`: real end-to-end sampling runs at each scale (eval/benchmark.h). The benchmark is the one place
// in eval/ that includes sampling/: it times it.
#include <chrono>

#include <spdlog/spdlog.h>

#include "brainspade/core/error.h"
#include "brainspade/eval/benchmark.h"
#include "brainspade/sampling/label_sampler.h"

namespace brainspade {

SamplingRunSpec parse_sampling_spec(const std::string& spec) {
  const auto colon = spec.find(':');
  SamplingRunSpec out;
  if (colon != std::string::npos) {
    out.sampler = spec.substr(0, colon);
    try {
      size_t used = 0;
      out.steps = std::stoll(spec.substr(colon + 1), &used);
      if (used != spec.size() - colon - 1) out.steps = 0;
    } catch (const std::exception&) {
      out.steps = 0;
    }
  }
  BRAINSPADE_CHECK_INPUT((out.sampler == "ddpm" || out.sampler == "ddim" || out.sampler == "dpmpp_2m" ||
                          out.sampler == "dpmpp_2m_sde") && out.steps >= 1 &&
                             out.steps <= 1000,
                         "bench: config key 'sampling_samplers': '", spec,
                         "' is not sampler:steps with sampler ddpm, ddim, dpmpp_2m or dpmpp_2m_sde and 1 <= steps <= 1000");
  return out;
}

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

void measure_sampling_runs(const BenchScale& s, const BenchJob& job, BenchReport& report) {
  // Random weights: the cost of a forward does not depend on the values (no data-dependent branches), and the
  // benchmark must not need trained checkpoints.
  torch::manual_seed(0);
  LabelGenerator g;
  g.vae = AutoencoderKL(s.vae);
  g.unet = DiffusionUNet(s.unet);
  g.vae->eval();
  g.unet->eval();
  g.scheduler = s.scheduler;
  g.conditioning.slice_position = s.cond_dim > 0;
  const int64_t f = int64_t(1) << (s.vae.channels.size() - 1);
  g.latent_shape = {s.vae.latent_channels, s.height / f, s.width / f};
  SPADEGenerator G(s.generator);
  ConvEncoder E(s.encoder);
  G->eval();
  E->eval();

  for (const auto& spec_text : job.sampling_samplers) {
    const auto spec = parse_sampling_spec(spec_text);
    for (const auto& dtype : job.sampling_dtypes) {
      for (const int64_t batch : job.sampling_batches) {
        LabelSamplerOptions o;
        o.sampler = spec.sampler;
        o.eta = 1.0;
        o.batch_size = batch;
        o.dtype = dtype;
        auto time_labels = [&](int64_t steps) {
          o.steps = steps;
          const auto t0 = std::chrono::steady_clock::now();
          sample_label_batch(g, o, batch, 11, torch::kCPU);
          return seconds_since(t0) / double(batch);
        };
        SamplingRun run;
        run.scale = s.name;
        run.sampler = spec.sampler;
        run.steps = spec.steps;
        run.dtype = dtype;
        run.batch = batch;
        const bool extrapolate = job.sampling_max_timed_steps > 1 && spec.steps > job.sampling_max_timed_steps;
        run.timed_steps = extrapolate ? job.sampling_max_timed_steps : spec.steps;
        time_labels(std::min<int64_t>(2, spec.steps));  // warm-up: oneDNN primitives, allocator
        if (extrapolate) {
          // label_s(S) = fixed + S·step: step from the difference of a timed run and a 1-step run (which still
          // decodes), fixed = what the 1-step run spent besides its step. Under load the difference can come out
          // <= 0; then the whole timed run counts as steps (fixed 0), so the estimate stays positive.
          const double one = time_labels(1), timed = time_labels(run.timed_steps);
          double step = (timed - one) / double(run.timed_steps - 1), fixed = one - step;
          if (step <= 0 || fixed < 0) step = timed / double(run.timed_steps), fixed = 0;
          run.label_s = fixed + double(spec.steps) * step;
          run.extrapolated = true;
        } else {
          run.label_s = time_labels(spec.steps);
        }
        {
          torch::InferenceMode im;
          auto seg = torch::softmax(torch::randn({batch, s.generator.label_channels, s.height, s.width}), 1);
          auto style = torch::randn({batch, s.encoder.in_channels, s.height, s.width});
          auto image = [&] { return G->forward(seg, E->encode(style).mu); };
          image();  // warm-up
          const auto t0 = std::chrono::steady_clock::now();
          image();
          run.image_s = seconds_since(t0) / double(batch);
        }
        run.pairs_per_s = 1.0 / (run.label_s + run.image_s);
        spdlog::info("{} sampling {}-{} {} batch {}: {:.4f} s/label{}, {:.4f} s/image, {:.4f} pairs/s", s.name,
                     spec.sampler, spec.steps, dtype, batch, run.label_s, run.extrapolated ? " (extrapolated)" : "",
                     run.image_s, run.pairs_per_s);
        report.sampling_runs.push_back(run);
      }
    }
  }
}

}  // namespace brainspade
