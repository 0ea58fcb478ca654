#include "brainspade/core/runtime.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/error.h"
#include "brainspade/core/run_rollback.h"

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

int default_threads() {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const char* env = std::getenv("OMP_NUM_THREADS");
  if (!env || !*env) return cores;
  char* end = nullptr;
  const long v = std::strtol(env, &end, 10);
  if (end != env && *end == '\0' && v > 0) return static_cast<int>(std::min<long>(v, 4096));
  spdlog::warn("OMP_NUM_THREADS='{}' is not a positive integer: ignored, using all {} cores", env, cores);
  return cores;
}

int configure_threads(int64_t threads) {
  int n = threads > 0 ? static_cast<int>(threads) : default_threads();
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

torch::Generator make_generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

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

namespace {

// Every regular file under `dir` (relative path → size and modification time); empty when dir is absent.
std::map<std::string, std::pair<uintmax_t, std::filesystem::file_time_type>> list_files(const std::string& dir) {
  namespace fs = std::filesystem;
  std::map<std::string, std::pair<uintmax_t, fs::file_time_type>> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    std::error_code e2;
    if (!it->is_regular_file(e2)) continue;
    out[fs::relative(it->path(), dir, e2).string()] = {it->file_size(e2), it->last_write_time(e2)};
  }
  return out;
}

// What the last start_run() did, for abandon_run().
struct RunStart {
  std::string dir, log_name;
  std::string made_root;  // the highest folder start_run created ("" when dir existed)
  std::optional<uintmax_t> log_size_before;       // nullopt: the log file did not exist
  std::optional<std::string> config_before;       // nullopt: config.yaml did not exist
  std::map<std::string, std::pair<uintmax_t, std::filesystem::file_time_type>> files_before;
  std::shared_ptr<spdlog::sinks::sink> log_sink;
};
std::optional<RunStart> g_run_start;

}  // namespace

bool abandon_run() {
  namespace fs = std::filesystem;
  if (!g_run_start) return false;
  RunStart rs = std::move(*g_run_start);
  g_run_start.reset();
  // Close the log file first: its sink is the only holder of the file.
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), rs.log_sink), sinks.end());
  rs.log_sink.reset();
  // Anything written besides the log and config.yaml means the command got past its checks: keep it all.
  auto now = list_files(rs.dir);
  for (const auto& [rel, info] : now) {
    if (rel == rs.log_name || rel == "config.yaml") continue;
    auto it = rs.files_before.find(rel);
    if (it == rs.files_before.end() || it->second != info) return false;
  }
  for (const auto& [rel, info] : rs.files_before)
    if (!now.count(rel)) return false;
  std::error_code ec;
  const std::string log = rs.dir + "/" + rs.log_name, config = rs.dir + "/config.yaml";
  if (rs.log_size_before) fs::resize_file(log, *rs.log_size_before, ec);
  else fs::remove(log, ec);
  if (rs.config_before) write_text_atomic(config, *rs.config_before);
  else fs::remove(config, ec);
  // Remove the folders start_run created, innermost first; fs::remove leaves a folder that is not empty.
  if (!rs.made_root.empty())
    for (fs::path p = rs.dir; !p.empty(); p = p.parent_path()) {
      fs::remove(p, ec);
      if (p == fs::path(rs.made_root) || p == p.parent_path()) break;
    }
  return true;
}

torch::Device start_run(const RunOptions& run, const std::string& resolved_config_yaml, const std::string& log_name) {
  torch::Device device = parse_device(run.device);  // validate before anything is written
  RunStart rs;
  rs.dir = run.out_dir;
  rs.log_name = log_name;
  for (std::filesystem::path p = run.out_dir; !p.empty() && !file_exists(p.string()); p = p.parent_path()) {
    rs.made_root = p.string();
    if (p == p.parent_path()) break;
  }
  rs.files_before = list_files(run.out_dir);
  if (auto it = rs.files_before.find(log_name); it != rs.files_before.end()) rs.log_size_before = it->second.first;
  if (rs.files_before.count("config.yaml")) rs.config_before = read_text(run.out_dir + "/config.yaml");
  make_dirs(run.out_dir);
  add_log_file(run.out_dir, log_name);
  rs.log_sink = spdlog::default_logger()->sinks().back();
  g_run_start = std::move(rs);
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

void ensure_thread_environment(char** argv) {
  // Both libraries read their variable only when they load: set what the user left unset, then start again once.
  bool changed = false;
  for (const auto& [name, value] : {std::pair<const char*, const char*>{"OMP_WAIT_POLICY", "PASSIVE"},
                                    std::pair<const char*, const char*>{"OPENBLAS_NUM_THREADS", "1"}}) {
    if (std::getenv(name) != nullptr) continue;
    if (::setenv(name, value, 1) != 0) return;
    changed = true;
  }
  if (!changed) return;
  ::execv("/proc/self/exe", argv);
  // execv returns only on failure (no /proc): carry on with what the libraries already read.
}

bool reuse_freed_memory() {
#if defined(__GLIBC__)
  if (std::getenv("GLIBC_TUNABLES") != nullptr) return false;
  // mallopt(3): M_MMAP_MAX 0 disables mmap for large requests; M_TRIM_THRESHOLD -1 disables trimming completely.
  return ::mallopt(M_MMAP_MAX, 0) == 1 && ::mallopt(M_TRIM_THRESHOLD, -1) == 1;
#else
  return false;
#endif
}

}  // namespace brainspade
