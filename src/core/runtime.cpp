#include "brainspade/core/runtime.h"

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <unistd.h>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/error.h"

namespace brainspade {

torch::Device parse_device(const std::string& spec) {
  if (spec == "cpu") return torch::kCPU;
  if (spec == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (spec.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available())
      throw input_error("--device ", spec, ": this LibTorch build sees no CUDA device (",
                        "build against a CUDA LibTorch with -DTorch_DIR and run on a GPU machine, or use --device cpu)");
    int index = 0;
    if (spec.size() > 4) {
      if (spec[4] != ':') throw input_error("--device ", spec, ": expected cuda or cuda:N");
      try {
        index = std::stoi(spec.substr(5));
      } catch (const std::exception&) {
        throw input_error("--device ", spec, ": expected cuda:N with N an integer");
      }
    }
    if (index < 0 || index >= static_cast<int>(torch::cuda::device_count()))
      throw input_error("--device ", spec, ": only ", torch::cuda::device_count(), " CUDA device(s) present");
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw input_error("--device ", spec, ": expected auto, cpu, cuda or cuda:N");
}

int configure_threads(int64_t threads) {
  int n = threads > 0 ? static_cast<int>(threads) : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
  std::error_code ec;
  auto blas = std::filesystem::canonical("/usr/lib/x86_64-linux-gnu/libblas.so.3", ec);
  if (!ec) {
    std::string p = blas.string();
    if (p.find("openblas") == std::string::npos && p.find("mkl") == std::string::npos &&
        p.find("blis") == std::string::npos)
      spdlog::warn("libblas.so.3 resolves to {} (reference BLAS): matrix products run ~30x slower. "
                   "Install libopenblas0-pthread (scripts/setup.sh does).", p);
  }
  return n;
}

void seed_everything(uint64_t seed) {
  torch::manual_seed(seed);
  if (torch::cuda::is_available()) torch::cuda::manual_seed_all(seed);
}

uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b) {
  // splitmix64 over the three words: cheap, well mixed, platform independent.
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  uint64_t h = mix(seed);
  h = mix(h ^ a);
  h = mix(h ^ b);
  return h & 0x7fffffffffffffffULL;  // torch seeds are taken as signed in places
}

void setup_console_logging(const std::string& level) {
  auto logger = spdlog::default_logger();
  logger->set_pattern("[%H:%M:%S] [%^%l%$] %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
}

void add_log_file(const std::string& dir, const std::string& name) {
  make_dirs(dir);
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(dir + "/" + name, false);
  sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  spdlog::default_logger()->sinks().push_back(sink);
}

torch::Device start_run(const RunOptions& run, const std::string& resolved_config_yaml, const std::string& log_name) {
  torch::Device device = parse_device(run.device);  // validate before anything is written
  make_dirs(run.out_dir);
  add_log_file(run.out_dir, log_name);
  int threads = configure_threads(run.threads);
  seed_everything(static_cast<uint64_t>(run.seed));
  spdlog::info("brainspade {} (LibTorch {}), device {}, {} thread(s), seed {}", BRAINSPADE_VERSION, TORCH_VERSION,
               device.str(), threads, run.seed);
  spdlog::info("resolved config:\n{}", resolved_config_yaml);
  write_text_atomic(run.out_dir + "/config.yaml", resolved_config_yaml);
  return device;
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

void ensure_passive_openmp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (::setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  // execv returns only on failure (no /proc): carry on with the policy libgomp already read.
}

}  // namespace brainspade
