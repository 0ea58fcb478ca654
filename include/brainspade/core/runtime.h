#pragma once
/// Process set-up shared by every command: device, threads, seeding, logging into the run folder.
#include <string>

#include <torch/torch.h>

#include "brainspade/core/config.h"

namespace brainspade {

/// "auto" → cuda:0 when LibTorch sees a GPU, else cpu. "cuda" without a GPU is an InputError.
torch::Device parse_device(const std::string& spec);

/// Threads that `threads: 0` stands for: OMP_NUM_THREADS when it is set to a positive integer (as PyTorch honours
/// it), else every core. Any other OMP_NUM_THREADS value is ignored with a warning.
int default_threads();

/// Sets intra-op threads (0 = default_threads()) and warns when libtorch would run matrix products on the
/// reference BLAS (measured 6 vs 207 GFLOP/s on the project's machines). Returns the thread count used.
int configure_threads(int64_t threads);

/// Threads that busy-wait waste the CPU the other threads need; two settings fix it, both measured in
/// docs/performance.md:
/// - OMP_WAIT_POLICY=PASSIVE (lever f): OpenMP threads that spin between parallel regions made a tiny SPADE training
///   step 8.6x slower on a 2-core machine shared with compilers (8.4 s vs 0.98 s).
/// - OPENBLAS_NUM_THREADS=1 (lever h): OpenBLAS's own pthread pool spins beside libtorch's OpenMP threads on every
///   small matrix product; one BLAS thread made the tiny LDM train 1.4x faster (3.05 -> 4.24 steps/s) and the paper
///   SPADE 1.2x, at the cost of single-threaded large matrix products (2048^3: 208 -> 84 GFLOP/s; the paper U-Net's
///   forward and backward 2.5% slower).
/// The libraries read these variables only when they load, so this sets the ones that are unset and re-executes the
/// program once (argv unchanged). A variable the user set is kept (e.g. OMP_WAIT_POLICY=ACTIVE on a dedicated
/// machine). Returns only when no re-execution happened.
void ensure_thread_environment(char** argv);

/// glibc serves every allocation above its mmap threshold (which it caps at 32 MiB) with a fresh mmap and unmaps it on
/// free, so a tensor larger than that costs page faults and zeroing every time it is made: a paper-scale SPADE
/// forward at batch 8 (activations of ~100 MB) took 12.1 s per image this way and 1.9 s with freed memory reused
/// (docs/performance.md). Unless GLIBC_TUNABLES is set (a user tuning malloc keeps their tuning), this makes malloc
/// take large blocks from the heap (M_MMAP_MAX 0) and keep freed memory for reuse (M_TRIM_THRESHOLD: never trim).
/// The price: the process keeps its peak heap until it exits. Returns whether it changed anything.
bool reuse_freed_memory();

/// Seeds torch (CPU and CUDA) and makes CPU kernels deterministic.
void seed_everything(uint64_t seed);

/// A seed derived from (seed, a, b): the same on every machine, independent of call order.
/// Used for per-step and per-sample randomness so that resume and sharding reproduce exact results.
uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b = 0);

/// A CPU generator seeded with `seed`, for randomness independent of the global generator (LibTorch 1.13 and 2.x).
torch::Generator make_generator(uint64_t seed);

/// Console logging at the given level ("debug", "info", "warn", "error").
void setup_console_logging(const std::string& level = "info");
/// Adds a log file `<dir>/<name>` to the default logger (creates dir).
void add_log_file(const std::string& dir, const std::string& name);

/// Everything an app does before calling into the library: creates out_dir, logs to <out_dir>/<log_name>,
/// sets threads and seed, logs and saves the resolved config text as <out_dir>/config.yaml.
torch::Device start_run(const RunOptions& run, const std::string& resolved_config_yaml, const std::string& log_name);

/// True when every value in the file system path exists.
bool file_exists(const std::string& path);

}  // namespace brainspade
