#include "brainspade/eval/benchmark.h"

#include <ATen/record_function.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "brainspade/core/runtime.h"
#include "brainspade/eval/audit.h"
#include "brainspade/schedulers/ddim_scheduler.h"
#include "brainspade/schedulers/ddpm_scheduler.h"

namespace brainspade {

const std::vector<std::string>& bench_network_names() {
  static const std::vector<std::string> names{"vae_encoder",     "vae_decoder",   "unet",
                                              "spade_generator", "style_encoder", "discriminator"};
  return names;
}

void BenchScale::visit(ConfigVisitor& v) {
  v("configs", configs, "folder of the scale's configs (vae.yaml, ldm.yaml, spade.yaml) whose networks are timed");
  v("batch", batch, "samples per timed call", Bounds::at_least(1));
  v("warmup", warmup, "untimed calls first", Bounds::non_negative());
  v("repeats", repeats, "timed calls (median reported)", Bounds::at_least(1));
}

BenchScale tiny_bench_scale() {
  BenchScale s;
  s.name = "tiny";
  s.configs = "configs/tiny";
  s.batch = 4;
  s.warmup = 2;
  s.repeats = 10;
  return s;
}

BenchScale paper_bench_scale() {
  BenchScale s;
  s.name = "paper";
  s.configs = "configs/paper";
  return s;
}

void load_bench_networks(BenchScale& s) {
  auto text = [&](const char* file) {
    const std::string path = s.configs + "/" + file;
    BRAINSPADE_CHECK_INPUT(std::filesystem::exists(path), "bench: ", path, " does not exist (run from the repository root, ",
                           "or set ", s.name, ".configs to the folder of the ", s.name, " configs)");
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return std::pair<std::string, std::string>{ss.str(), path};
  };
  auto [vae, vae_path] = text("vae.yaml");
  auto [ldm, ldm_path] = text("ldm.yaml");
  auto [spade, spade_path] = text("spade.yaml");
  s.vae = load_section<AutoencoderKLOptions>("vae", vae, vae_path);
  s.unet = load_section<DiffusionUNetOptions>("unet", ldm, ldm_path);
  s.scheduler = load_section<DDPMSchedulerOptions>("scheduler", ldm, ldm_path);
  s.cond_dim = s.unet.conditioning == "none" ? 0 : s.unet.cond_dim;
  s.generator = load_section<SPADEGeneratorOptions>("generator", spade, spade_path);
  s.encoder = load_section<ConvEncoderOptions>("encoder", spade, spade_path);
  s.discriminator = load_section<MultiscaleDiscriminatorOptions>("discriminator", spade, spade_path);
  s.height = s.generator.height;
  s.width = s.generator.width;
}

void BenchJob::visit(ConfigVisitor& v) {
  v("threads", threads, "intra-op threads; 0 = OMP_NUM_THREADS when set, else the number of cores", Bounds::non_negative());
  v("scales", scales, "scales to run: tiny, paper");
  v("only", only, "networks to run (vae_encoder vae_decoder unet spade_generator style_encoder discriminator); empty = all");
  v.choice("dtype", dtype, {"float32", "bfloat16"}, "compute dtype of modules and inputs");
  v("channels_last", channels_last, "channels-last (NHWC) weights and inputs");
  v("inference_mode", inference_mode, "time forwards under InferenceMode (false: NoGradGuard)");
  v("flush_denormal", flush_denormal, "flush denormal floats to zero (FTZ/DAZ) while benchmarking");
  v("backward", backward, "also time forward+backward (float32 only)");
  v("sampling_steps", sampling_steps, "reverse steps timed for the sampling estimate; 0 = skip", Bounds::non_negative());
  v("sampling_runs", sampling_runs, "time real end-to-end sampling runs (bench --sampling)");
  v("sampling_samplers", sampling_samplers, "sampler:steps of the end-to-end runs (ddpm, ddim, dpmpp_2m, dpmpp_2m_sde)");
  v("sampling_dtypes", sampling_dtypes, "U-Net dtypes of the end-to-end runs (float32, bfloat16)");
  v("sampling_batches", sampling_batches, "batch sizes of the end-to-end runs", Bounds::at_least(1));
  v("sampling_max_timed_steps", sampling_max_timed_steps,
    "end-to-end runs with more steps are timed at this many and extrapolated; 0 = all in full", Bounds::non_negative());
  v("ceiling_repeats", ceiling_repeats, "timed calls of the ceiling matmul and conv", Bounds::at_least(1));
  v("audit_size", audit_size,
    "time the audit's nearest-neighbour search of this many synthetic against as many training maps; 0 = skip",
    Bounds::non_negative());
  v("audit_downsamples", audit_downsamples, "pooling factors (search_downsample) the audit search is timed at",
    Bounds::range(1, 8));
  v.section("tiny", tiny, "tiny-scale networks");
  v.section("paper", paper, "paper-scale networks");
}

// ---------------------------------------------------------------------------------------------------------------
// FLOP counting through an at::RecordFunction observer.

namespace {

thread_local double tl_flops = 0;

int64_t int_at(const c10::IValue& v, size_t i) {
  auto l = v.toIntList();
  return l.size() == 1 ? l.get(0) : l.get(i);
}

std::unique_ptr<at::ObserverContext> count_op(const at::RecordFunction& fn) {
  const std::string name = fn.name();
  auto in = fn.inputs();
  auto sizes = [&](size_t i) { return in[i].toTensor().sizes(); };
  if (name == "aten::convolution" && in.size() >= 9) {
    // input [B, Cin, H, W], weight [Cout, Cin/g, kh, kw] (transposed: [Cin, Cout/g, kh, kw])
    auto x = sizes(0), w = sizes(1);
    if (x.size() != 4 || w.size() != 4) return nullptr;
    bool transposed = in[6].toBool();
    int64_t groups = in[8].toInt();
    if (transposed) {
      // every input element meets Cout/g · kh · kw weights
      tl_flops += 2.0 * x[0] * x[1] * x[2] * x[3] * w[1] * w[2] * w[3];
      return nullptr;
    }
    double out_hw = 1;
    for (size_t d = 0; d < 2; ++d) {
      int64_t k = w[2 + d], s = int_at(in[3], d), p = int_at(in[4], d), dil = int_at(in[5], d);
      out_hw *= static_cast<double>((x[2 + d] + 2 * p - dil * (k - 1) - 1) / s + 1);
    }
    tl_flops += 2.0 * x[0] * w[0] * out_hw * (x[1] / groups) * w[2] * w[3];
  } else if (name == "aten::mm" || name == "aten::addmm") {
    size_t a = name == "aten::mm" ? 0 : 1;
    auto m1 = sizes(a), m2 = sizes(a + 1);
    tl_flops += 2.0 * m1[0] * m1[1] * m2[1];
  } else if (name == "aten::bmm" || name == "aten::baddbmm") {
    size_t a = name == "aten::bmm" ? 0 : 1;
    auto b1 = sizes(a), b2 = sizes(a + 1);
    tl_flops += 2.0 * b1[0] * b1[1] * b1[2] * b2[2];
  }
  return nullptr;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t proc_status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(std::string(key).size()));
  return 0;
}

/// Peak RSS growth (MB) while `fn` runs: VmHWM reset through /proc/self/clear_refs (Linux >= 4.0).
double peak_rss_growth_mb(const std::function<void()>& fn) {
  { std::ofstream("/proc/self/clear_refs") << "5"; }
  int64_t before = proc_status_kb("VmRSS:");
  fn();
  int64_t peak = proc_status_kb("VmHWM:");
  return std::max<int64_t>(0, peak - before) / 1024.0;
}

std::string read_first_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string shape_str(at::IntArrayRef s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "x" : "") + std::to_string(s[i]);
  return r;
}

int64_t count_params(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

/// Casts a module the benchmark owns to the job's dtype / memory format.
void prepare_module(torch::nn::Module& m, const BenchJob& job) {
  if (job.dtype == "bfloat16") m.to(torch::kBFloat16);
  if (job.channels_last) {
    torch::NoGradGuard ng;
    for (auto& p : m.parameters())
      if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }
}
torch::Tensor prepare_input(torch::Tensor x, const BenchJob& job) {
  if (job.dtype == "bfloat16" && x.is_floating_point()) x = x.to(torch::kBFloat16);
  if (job.channels_last && x.dim() == 4) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  return x;
}

/// A network under test: a forward for inference and a scalar loss for forward+backward.
struct Runner {
  std::string name, input;
  std::shared_ptr<torch::nn::Module> module;
  std::function<void()> forward;
  std::function<torch::Tensor()> loss;
};

std::vector<Runner> make_runners(const BenchScale& s, const BenchJob& job, torch::Generator& gen) {
  const int64_t B = s.batch;
  auto in = [&](std::vector<int64_t> shape) { return prepare_input(torch::randn(shape, gen), job); };
  std::vector<Runner> r;
  auto wants = [&](const std::string& n) {
    return job.only.empty() || std::find(job.only.begin(), job.only.end(), n) != job.only.end();
  };
  AutoencoderKL vae{nullptr};
  int64_t f = 1 << (s.vae.channels.size() - 1);
  if (wants("vae_encoder") || wants("vae_decoder")) {
    vae = AutoencoderKL(s.vae);
    prepare_module(*vae, job);
  }
  if (wants("vae_encoder")) {
    auto x = in({B, s.vae.in_channels, s.height, s.width});
    r.push_back({"vae_encoder", shape_str(x.sizes()), vae.ptr(), [vae, x]() mutable { vae->encode(x); },
                 [vae, x]() mutable { return vae->encode(x).mean.sum(); }});
  }
  if (wants("vae_decoder")) {
    auto z = in({B, s.vae.latent_channels, s.height / f, s.width / f});
    r.push_back({"vae_decoder", shape_str(z.sizes()), vae.ptr(), [vae, z]() mutable { vae->decode(z); },
                 [vae, z]() mutable { return vae->decode(z).sum(); }});
  }
  if (wants("unet")) {
    DiffusionUNet unet(s.unet);
    prepare_module(*unet, job);
    auto x = in({B, s.unet.in_channels, s.height / f, s.width / f});
    auto t = torch::full({B}, 500, torch::kLong);
    auto c = s.unet.conditioning == "none" ? torch::Tensor() : torch::rand({B, s.unet.cond_dim}, gen);
    r.push_back({"unet", shape_str(x.sizes()), unet.ptr(), [unet, x, t, c]() mutable { unet->forward(x, t, c); },
                 [unet, x, t, c]() mutable { return unet->forward(x, t, c).sum(); }});
  }
  if (wants("spade_generator")) {
    SPADEGenerator g(s.generator);
    prepare_module(*g, job);
    auto seg = prepare_input(torch::softmax(torch::randn({B, s.generator.label_channels, s.generator.height, s.generator.width}, gen), 1), job);
    auto z = in({B, s.generator.z_dim});
    r.push_back({"spade_generator", shape_str(seg.sizes()), g.ptr(), [g, seg, z]() mutable { g->forward(seg, z); },
                 [g, seg, z]() mutable { return g->forward(seg, z).sum(); }});
  }
  if (wants("style_encoder")) {
    ConvEncoder e(s.encoder);
    prepare_module(*e, job);
    auto x = in({B, s.encoder.in_channels, s.encoder.height, s.encoder.width});
    r.push_back({"style_encoder", shape_str(x.sizes()), e.ptr(), [e, x]() mutable { e->encode(x); },
                 [e, x]() mutable {
                   auto o = e->encode(x);
                   return o.mu.sum() + o.logvar.sum();
                 }});
  }
  if (wants("discriminator")) {
    MultiscaleDiscriminator d(s.discriminator);
    prepare_module(*d, job);
    auto pv = prepare_input(torch::softmax(torch::randn({B, s.discriminator.label_channels, s.height, s.width}, gen), 1), job);
    auto img = in({B, s.discriminator.image_channels, s.height, s.width});
    r.push_back({"discriminator", shape_str(pv.sizes()) + "+" + shape_str(img.sizes()), d.ptr(),
                 [d, pv, img]() mutable { d->forward(pv, img); },
                 [d, pv, img]() mutable {
                   auto feats = d->forward(pv, img);
                   torch::Tensor l = torch::zeros({}, pv.options());
                   for (auto& scale : feats) l = l + scale.back().mean();
                   return l;
                 }});
  }
  return r;
}

BenchCeiling measure_ceiling(const BenchJob& job) {
  torch::InferenceMode im;
  BenchCeiling c;
  auto gen = at::detail::createCPUGenerator(1);
  auto a = torch::randn({2048, 2048}, gen), b = torch::randn({2048, 2048}, gen);
  const double mm_flops = 2.0 * 2048 * 2048 * 2048;
  auto x = torch::randn({8, 128, 48, 64}, gen), w = torch::randn({128, 128, 3, 3}, gen) * 0.03;
  const double conv_flops = 2.0 * 8 * 128 * 48 * 64 * 128 * 9;
  c.matmul_gflops = mm_flops / median_seconds([&] { torch::mm(a, b); }, 1, job.ceiling_repeats) / 1e9;
  c.conv_gflops = conv_flops / median_seconds([&] { torch::conv2d(x, w, {}, 1, 1); }, 1, job.ceiling_repeats) / 1e9;
  auto ah = a.to(torch::kBFloat16), bh = b.to(torch::kBFloat16);
  auto xh = x.to(torch::kBFloat16), wh = w.to(torch::kBFloat16);
  c.matmul_bf16_gflops = mm_flops / median_seconds([&] { torch::mm(ah, bh); }, 1, job.ceiling_repeats) / 1e9;
  c.conv_bf16_gflops = conv_flops / median_seconds([&] { torch::conv2d(xh, wh, {}, 1, 1); }, 1, job.ceiling_repeats) / 1e9;
  return c;
}

/// Times `steps` reverse steps (U-Net forward + scheduler step) of DDPM and DDIM on a batch, per sample.
void measure_sampling(const BenchScale& s, const BenchJob& job, SamplingBench& out) {
  c10::optional<torch::InferenceMode> im;
  c10::optional<torch::NoGradGuard> ng;
  if (job.inference_mode) im.emplace(); else ng.emplace();
  auto gen = at::detail::createCPUGenerator(7);
  DiffusionUNet unet(s.unet);
  prepare_module(*unet, job);
  unet->eval();
  int64_t f = 1 << (s.vae.channels.size() - 1);
  const int64_t B = s.batch;
  auto c = s.unet.conditioning == "none" ? torch::Tensor() : torch::rand({B, s.unet.cond_dim}, gen);
  DDPMSchedulerOptions so;
  DDPMScheduler ddpm(so);
  ddpm.set_timesteps(1000);
  DDIMSchedulerOptions dopt;
  dopt.eta = 1.0;
  DDIMScheduler ddim(dopt);
  ddim.set_timesteps(50);
  auto run = [&](bool use_ddim) {
    auto x = torch::randn({B, s.unet.in_channels, s.height / f, s.width / f}, gen);
    auto ts = use_ddim ? ddim.timesteps() : ddpm.timesteps();
    auto one_step = [&](int64_t t) {
      auto tt = torch::full({B}, t, torch::kLong);
      auto eps = unet->forward(prepare_input(x, job), tt, c).to(torch::kFloat);
      x = use_ddim ? ddim.step(eps, t, x, gen).prev_sample : ddpm.step(eps, t, x, gen).prev_sample;
    };
    one_step(ts[0]);  // warm-up
    std::vector<double> times;
    for (int64_t i = 1; i <= job.sampling_steps; ++i) {
      double t0 = now_s();
      one_step(ts[i]);
      times.push_back(now_s() - t0);
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2] / B;
  };
  out.ddpm_step_s = run(false);
  out.ddim_step_s = run(true);
}

}  // namespace

double count_flops(const std::function<void()>& fn) {
  tl_flops = 0;
  auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback(&count_op).needsInputs(true));
  try {
    fn();
  } catch (...) {
    at::removeCallback(handle);
    throw;
  }
  at::removeCallback(handle);
  return tl_flops;
}

double median_seconds(const std::function<void()>& fn, int64_t warmup, int64_t repeats) {
  for (int64_t i = 0; i < warmup; ++i) fn();
  std::vector<double> t;
  for (int64_t i = 0; i < repeats; ++i) {
    double t0 = now_s();
    fn();
    t.push_back(now_s() - t0);
  }
  std::sort(t.begin(), t.end());
  size_t n = t.size();
  return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

namespace {

// bench --audit: the audit's search on random maps of the scale's size (its cost does not depend on the maps).
void measure_audit_search(const BenchScale& s, const BenchJob& job, BenchReport& report) {
  torch::NoGradGuard no_grad;
  const int64_t n = job.audit_size, K = s.generator.label_channels;
  auto gen = at::detail::createCPUGenerator(0);
  for (int64_t f : job.audit_downsamples) {
    if (s.height % f != 0 || s.width % f != 0) continue;
    AuditSearchBench b;
    b.scale = s.name;
    b.downsample = f;
    b.n = n;
    b.tissues = K - 1;
    const int64_t h = s.height / f, w = s.width / f;
    b.size = std::to_string(h) + "x" + std::to_string(w);
    auto a = torch::randint(0, K, {n, h, w}, gen, torch::kLong), r = torch::randint(0, K, {n, h, w}, gen, torch::kLong);
    double t0 = now_s();
    nearest_label_maps(a, r, K, b.max_shift);
    b.label_s = now_s() - t0;
    auto ai = torch::randn({n, h, w}, gen), ri = torch::randn({n, h, w}, gen);
    t0 = now_s();
    nearest_images(ai, ri, b.max_shift);
    b.image_s = now_s() - t0;
    b.per_million_s = (b.label_s + b.image_s) * 1e6 / (static_cast<double>(n) * static_cast<double>(n));
    spdlog::info("{} audit search {} ({} x {}): label maps {:.1f} s, images {:.1f} s", s.name, b.size, n, n, b.label_s,
                 b.image_s);
    report.audit.push_back(b);
  }
}

}  // namespace

BenchReport run_benchmark(const BenchJob& job) {
  for (const auto& n : job.only)
    BRAINSPADE_CHECK_INPUT(std::find(bench_network_names().begin(), bench_network_names().end(), n) !=
                               bench_network_names().end(),
                           "bench: unknown network '", n, "' (expected one of vae_encoder, vae_decoder, unet, ",
                           "spade_generator, style_encoder, discriminator)");
  for (const auto& s : job.scales)
    BRAINSPADE_CHECK_INPUT(s == "tiny" || s == "paper", "bench: unknown scale '", s, "' (expected tiny or paper)");
  for (const auto& spec : job.sampling_samplers) parse_sampling_spec(spec);  // bad specs fail before any timing
  for (const auto& d : job.sampling_dtypes)
    BRAINSPADE_CHECK_INPUT(d == "float32" || d == "bfloat16", "bench: config key 'sampling_dtypes': unknown dtype '", d,
                           "' (expected float32 or bfloat16)");
  BenchReport rep;
  rep.threads = configure_threads(job.threads);
  at::globalContext().setFlushDenormal(job.flush_denormal);
  rep.cores = std::max(1u, std::thread::hardware_concurrency());
  rep.cpu = cpu_model();
  rep.dtype = job.dtype;
  rep.channels_last = job.channels_last;
  rep.load_before = read_first_line("/proc/loadavg");
  {
    std::time_t tt = std::time(nullptr);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&tt));
    rep.date = buf;
  }
  spdlog::info("bench: {} threads on {} ({} cores), load {}", rep.threads, rep.cpu, rep.cores, rep.load_before);
  rep.ceiling = measure_ceiling(job);
  spdlog::info("ceiling: matmul {:.1f} GFLOP/s, conv {:.1f} GFLOP/s (bf16: {:.1f}, {:.1f})", rep.ceiling.matmul_gflops,
               rep.ceiling.conv_gflops, rep.ceiling.matmul_bf16_gflops, rep.ceiling.conv_bf16_gflops);
  const bool backward = job.backward && job.dtype == "float32";

  for (const auto& scale_name : job.scales) {
    BenchScale s = scale_name == "tiny" ? job.tiny : job.paper;
    load_bench_networks(s);
    auto gen = at::detail::createCPUGenerator(0);
    torch::manual_seed(0);
    std::vector<Runner> runners;
    {
      torch::NoGradGuard ng;  // building inputs only
      runners = make_runners(s, job, gen);
    }
    for (auto& r : runners) {
      NetworkBench nb;
      nb.scale = s.name;
      nb.network = r.name;
      nb.input = r.input;
      nb.batch = s.batch;
      nb.params = count_params(*r.module);
      r.module->eval();
      {
        c10::optional<torch::InferenceMode> im;
        c10::optional<torch::NoGradGuard> ng;
        if (job.inference_mode) im.emplace(); else ng.emplace();
        nb.flops = count_flops(r.forward) / s.batch;
        nb.forward_peak_mb = peak_rss_growth_mb(
            [&] { nb.forward_s = median_seconds(r.forward, s.warmup, s.repeats) / s.batch; });
      }
      nb.forward_gflops = nb.flops / nb.forward_s / 1e9;
      spdlog::info("{} {}: forward {:.4f} s/sample, {:.1f} GFLOP/s", s.name, r.name, nb.forward_s, nb.forward_gflops);
      if (backward) {
        r.module->train();
        auto step = [&] {
          r.module->zero_grad(true);
          r.loss().backward();
        };
        nb.forward_backward_peak_mb = peak_rss_growth_mb(
            [&] { nb.forward_backward_s = median_seconds(step, s.warmup, s.repeats) / s.batch; });
        nb.forward_backward_gflops = 3.0 * nb.flops / nb.forward_backward_s / 1e9;
        r.module->zero_grad(true);
        spdlog::info("{} {}: forward+backward {:.4f} s/sample", s.name, r.name, nb.forward_backward_s);
      }
      rep.networks.push_back(nb);
    }
    runners.clear();

    // Sampling estimate: needs the U-Net; decode and the image networks come from the table when present.
    bool have_unet = job.only.empty() || std::find(job.only.begin(), job.only.end(), "unet") != job.only.end();
    if (job.sampling_steps > 0 && have_unet) {
      SamplingBench sb;
      sb.scale = s.name;
      sb.batch = s.batch;
      measure_sampling(s, job, sb);
      double unet_flops = 0, dec_flops = 0, img_flops = 0;
      for (const auto& nb : rep.networks) {
        if (nb.scale != s.name) continue;
        if (nb.network == "unet") unet_flops = nb.flops;
        if (nb.network == "vae_decoder") sb.decode_s = nb.forward_s, dec_flops = nb.flops;
        if (nb.network == "spade_generator" || nb.network == "style_encoder") sb.image_s += nb.forward_s, img_flops += nb.flops;
      }
      double ddpm_label = 1000 * sb.ddpm_step_s + sb.decode_s, ddim_label = 50 * sb.ddim_step_s + sb.decode_s;
      sb.ddpm1000_labels_per_s = 1.0 / ddpm_label;
      sb.ddim50_labels_per_s = 1.0 / ddim_label;
      sb.ddpm1000_pairs_per_s = 1.0 / (ddpm_label + sb.image_s);
      sb.ddim50_pairs_per_s = 1.0 / (ddim_label + sb.image_s);
      sb.ddpm1000_flops_per_pair = 1000 * unet_flops + dec_flops + img_flops;
      sb.ddim50_flops_per_pair = 50 * unet_flops + dec_flops + img_flops;
      spdlog::info("{} sampling: DDPM step {:.4f} s, DDIM step {:.4f} s per sample", s.name, sb.ddpm_step_s, sb.ddim_step_s);
      rep.sampling.push_back(sb);
    }
    if (job.sampling_runs) measure_sampling_runs(s, job, rep);
    if (job.audit_size > 0) measure_audit_search(s, job, rep);
  }
  rep.load_after = read_first_line("/proc/loadavg");
  return rep;
}

}  // namespace brainspade
