#pragma once
/// `brainspade bench`: per-network forward / forward+backward timings, achieved GFLOP/s against the machine's
/// own measured ceiling (a large matmul and a large convolution, timed in the same run), peak memory, and an
/// estimate of end-to-end sampling throughput (DDPM-1000 vs DDIM-50) from a couple of measured reverse steps.
///
/// FLOPs are counted, not guessed: one traced forward with an at::RecordFunction observer that sees every
/// aten::convolution, mm, addmm, bmm and baddbmm with its input shapes and adds 2·MACs. Backward is counted
/// as 2× forward (the usual convention: grad w.r.t. input and w.r.t. weight), so forward+backward = 3× forward.
/// Norms, activations, softmax and elementwise ops are not counted (they are memory-bound, not FLOP-bound).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"
#include "brainspade/models/autoencoder_kl.h"
#include "brainspade/models/diffusion_unet.h"
#include "brainspade/models/spade_discriminator.h"
#include "brainspade/models/spade_encoder.h"
#include "brainspade/models/spade_generator.h"
#include "brainspade/schedulers/ddpm_scheduler.h"

namespace brainspade {

/// Names of the benchmarked networks, in table order.
const std::vector<std::string>& bench_network_names();  // vae_encoder, vae_decoder, unet, spade_generator, ...

/// The networks of one scale (tiny or paper) and how long to measure them. The networks are those of the shipped
/// configs in `configs` (vae.yaml's `vae`, ldm.yaml's `unet`, `scheduler` and `conditioning`, spade.yaml's
/// `generator`, `encoder` and `discriminator`), read when the benchmark runs (load_bench_networks), so that the
/// figures measure what those configs train; height × width is the SPADE generator's.
struct BenchScale {
  std::string name;
  std::string configs;    ///< folder of the scale's YAML configs (relative to the working directory)
  int64_t height = 192;   ///< image / label map size; the latent is height/f × width/f (f = VAE factor)
  int64_t width = 256;
  int64_t batch = 1;      ///< samples per timed call; figures are per sample
  int64_t warmup = 1;
  int64_t repeats = 2;    ///< measured calls; the median is reported
  AutoencoderKLOptions vae;
  DiffusionUNetOptions unet;
  DDPMSchedulerOptions scheduler;
  int64_t cond_dim = 1;   ///< conditioning vector length of the LDM (ldm.yaml `conditioning`)
  SPADEGeneratorOptions generator;
  ConvEncoderOptions encoder;
  MultiscaleDiscriminatorOptions discriminator;
  void visit(ConfigVisitor& v);
};
/// configs/tiny at batch 4, 2 warm-up + 10 measured calls.
BenchScale tiny_bench_scale();
/// configs/paper at batch 1, 1 warm-up + 2 measured calls (a paper-scale U-Net forward takes seconds on a CPU).
BenchScale paper_bench_scale();
/// Fills the networks, schedule and size of `s` from its `configs` folder (InputError naming a missing file or key).
void load_bench_networks(BenchScale& s);

/// One end-to-end sampling configuration: `sampler:steps` (ddpm, ddim or dpmpp_2m), e.g. "dpmpp_2m:20".
struct SamplingRunSpec {
  std::string sampler;
  int64_t steps = 0;
};
SamplingRunSpec parse_sampling_spec(const std::string& spec);

/// Root of `brainspade bench`.
struct BenchJob {
  int64_t threads = 0;                          ///< intra-op threads; 0 = number of cores
  std::vector<std::string> scales{"tiny", "paper"};
  std::vector<std::string> only;                ///< network names to run; empty = all
  std::string dtype = "float32";                ///< float32 | bfloat16 (modules and inputs cast; forward only)
  bool channels_last = false;                   ///< 4-D weights and inputs in channels-last (NHWC) for oneDNN
  bool inference_mode = true;                   ///< forwards under torch::InferenceMode (false: NoGradGuard)
  bool flush_denormal = false;                  ///< at::globalContext().setFlushDenormal (FTZ/DAZ)
  bool backward = true;                         ///< also time forward+backward (float32 only)
  int64_t sampling_steps = 2;                   ///< measured reverse steps for the sampling estimate (0 = skip)
  /// End-to-end sampling (`bench --sampling`): real sample_label_batch runs (random weights, the configs' networks)
  /// plus the style encoder and SPADE generator, for every sampler × dtype × batch below.
  bool sampling_runs = false;
  std::vector<std::string> sampling_samplers{"ddim:50", "dpmpp_2m_sde:20", "dpmpp_2m:15", "ddpm:1000"};
  std::vector<std::string> sampling_dtypes{"float32", "bfloat16"};
  std::vector<int64_t> sampling_batches{1, 8};
  /// runs with more reverse steps than this are timed at this many steps and 1 step and extrapolated linearly
  /// (reported as extrapolated); 0 = time every run in full
  int64_t sampling_max_timed_steps = 0;
  int64_t ceiling_repeats = 5;
  /// `bench --audit N`: time the audit's nearest-neighbour search of N synthetic against N training maps (and images)
  /// at each scale's map size, pooled by each of audit_downsamples (0 = skip)
  int64_t audit_size = 0;
  std::vector<int64_t> audit_downsamples{1, 2};
  BenchScale tiny = tiny_bench_scale();
  BenchScale paper = paper_bench_scale();
  void visit(ConfigVisitor& v);
};

/// The machine's ceiling, measured in the same run as the networks.
struct BenchCeiling {
  double matmul_gflops = 0;       ///< float32 2048×2048×2048 matmul
  double conv_gflops = 0;         ///< float32 conv 128→128 3×3 pad 1 on [8, 128, 48, 64]
  double matmul_bf16_gflops = 0;  ///< the same matmul in bfloat16
  double conv_bf16_gflops = 0;    ///< the same conv in bfloat16
};

/// One network at one scale. Times are seconds per sample (median over repeats); < 0 when not measured.
struct NetworkBench {
  std::string scale, network, input;  ///< input: the shape of the timed batch, e.g. "1x3x48x64"
  int64_t batch = 1;
  int64_t params = 0;
  double flops = 0;                 ///< forward FLOPs per sample (2·MACs of conv and matmul)
  double forward_s = -1, forward_backward_s = -1;
  double forward_gflops = 0, forward_backward_gflops = 0;
  double forward_peak_mb = 0, forward_backward_peak_mb = 0;  ///< peak RSS growth during the timed calls
};

/// End-to-end sampling estimate at one scale: per reverse step (U-Net forward + scheduler step), measured
/// on `sampling_steps` steps of a batch of `batch`, then × the number of steps, plus VAE decode and
/// (for pairs) the style encoder and SPADE generator.
struct SamplingBench {
  std::string scale;
  int64_t batch = 1;
  double ddpm_step_s = 0, ddim_step_s = 0;  ///< per sample
  double decode_s = 0, image_s = 0;         ///< per sample: VAE decode; style encoder + SPADE generator
  double ddpm1000_labels_per_s = 0, ddim50_labels_per_s = 0;
  double ddpm1000_pairs_per_s = 0, ddim50_pairs_per_s = 0;
  double ddpm1000_flops_per_pair = 0, ddim50_flops_per_pair = 0;
};

/// One timed end-to-end sampling run (per sample = per label map or pair).
struct SamplingRun {
  std::string scale, sampler, dtype;
  int64_t steps = 0, batch = 1;
  int64_t timed_steps = 0;          ///< reverse steps actually run (< steps: extrapolated)
  bool extrapolated = false;
  double label_s = 0;               ///< seconds per label map: conditions, reverse loop, VAE decode, post-processing
  double image_s = 0;               ///< seconds per image: style encoder + SPADE generator at the same batch and dtype
  double pairs_per_s = 0;           ///< 1 / (label_s + image_s)
};

/// The audit's nearest-neighbour search timed at one scale and pooling (random maps: the cost does not depend on them).
struct AuditSearchBench {
  std::string scale, size;          ///< size: the searched maps, e.g. "96x128"
  int64_t downsample = 1, n = 0, tissues = 0, max_shift = 2;
  double label_s = 0, image_s = 0;  ///< seconds for n x n label maps / images
  double per_million_s = 0;         ///< (label_s + image_s) per 1,000 x 1,000 comparisons
};

struct BenchReport {
  std::string date, cpu, dtype;
  int64_t cores = 0, threads = 0;
  bool channels_last = false;
  std::string load_before, load_after;  ///< /proc/loadavg
  BenchCeiling ceiling;
  std::vector<NetworkBench> networks;
  std::vector<SamplingBench> sampling;
  std::vector<SamplingRun> sampling_runs;
  std::vector<AuditSearchBench> audit;
};

/// Times the end-to-end sampling runs of `job` at scale `s` (networks loaded); appends to `report`.
void measure_sampling_runs(const BenchScale& s, const BenchJob& job, BenchReport& report);

/// Runs everything `job` asks for; logs progress through spdlog.
BenchReport run_benchmark(const BenchJob& job);
/// Human-readable table (every figure also as a fraction of the ceiling).
std::string format_bench_report(const BenchReport& report);
/// The same as JSON.
std::string bench_report_json(const BenchReport& report);

/// Forward FLOPs (2·MACs of convolution / mm / addmm / bmm / baddbmm) of whatever `fn` runs on this thread.
double count_flops(const std::function<void()>& fn);

/// Median wall time in seconds of `repeats` calls of `fn` after `warmup` calls.
double median_seconds(const std::function<void()>& fn, int64_t warmup, int64_t repeats);

}  // namespace brainspade
