#pragma once
/// Data-parallel training over a c10d process group (PyTorch's distributed engine, which LibTorch includes):
/// Gloo on CPU, NCCL on CUDA when the LibTorch was built with it. See docs/distributed.md.
///
/// Launch contract: any launcher that sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (torchrun --no-python,
/// by hand), or Slurm (SLURM_PROCID / SLURM_NTASKS are used when RANK / WORLD_SIZE are absent). With WORLD_SIZE
/// absent or 1 nothing distributed is created and every call below is a no-op (single-process behaviour).
///
/// Every training stage uses one process-wide context, `distributed()`: gradients are averaged after each backward
/// pass (`all_reduce_gradients`), the networks start from rank 0's weights (`broadcast_parameters`), each rank
/// computes its contiguous share of the same global batch (`shard`), and only rank 0 writes files.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"

namespace brainspade {

/// What the launcher told this process (environment variables), checked.
struct DistributedEnv {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;        ///< LOCAL_RANK / SLURM_LOCALID: picks cuda:<local_rank>
  int64_t local_world_size = 1;  ///< LOCAL_WORLD_SIZE / SLURM_NTASKS_PER_NODE: ranks sharing this machine's cores
  std::string master_addr;       ///< MASTER_ADDR (rank 0's host, where the TCPStore listens)
  int64_t master_port = 0;       ///< MASTER_PORT
  /// BRAINSPADE_DIST_TIMEOUT (seconds, default 1800): how long a collective or the rendezvous waits for a peer
  /// before failing. A peer that dies is noticed at once (its sockets close); the timeout covers a peer that hangs.
  std::chrono::milliseconds timeout{1800 * 1000};
};

/// Reads and checks the launch variables through `get` (getenv in production). A malformed or inconsistent value
/// (RANK=abc, RANK >= WORLD_SIZE, a missing MASTER_ADDR/MASTER_PORT when WORLD_SIZE > 1, ...) is an InputError
/// that names the variable.
DistributedEnv read_distributed_env(const std::function<const char*(const char*)>& get);
/// read_distributed_env(std::getenv).
DistributedEnv distributed_env_from_process();

/// A process group of `world_size` ranks, or the trivial group of one process.
class Distributed {
 public:
  /// The single-process context: rank 0 of 1, no c10d objects.
  Distributed();
  /// Joins the group described by `env` (rendezvous through a TCPStore on MASTER_ADDR:MASTER_PORT, served by rank
  /// 0). Gloo for CPU devices; NCCL for CUDA devices when compiled in. Fails with a clear error after env.timeout
  /// when a peer never arrives.
  Distributed(const DistributedEnv& env, torch::Device device);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int64_t rank() const { return rank_; }
  int64_t world_size() const { return world_; }
  bool active() const { return world_ > 1; }
  /// Rank 0: the only rank that writes checkpoints, metrics, montages and log files.
  bool is_main() const { return rank_ == 0; }
  /// `device` with cuda → cuda:<local_rank> when several ranks share a machine (unchanged on CPU).
  torch::Device local_device(torch::Device device) const;

  /// Checks that the GLOBAL batch (`train.batch_size`) splits evenly over the ranks; InputError naming `key` otherwise.
  void check_global_batch(int64_t global_batch, const std::string& key) const;
  /// Rows [begin, end) of a global batch of `global_batch` rows that this rank computes (contiguous shares).
  std::pair<int64_t, int64_t> shard(int64_t global_batch) const;
  /// This rank's rows (dim 0) of a tensor that holds the whole global batch; the tensor itself when not active.
  torch::Tensor local_rows(const torch::Tensor& global) const;
  std::vector<int64_t> local_rows(const std::vector<int64_t>& global) const;

  /// Reseeds the global generator from (step_seed, rank) in a distributed run (no-op otherwise), for the draws made
  /// inside the networks (dropout, the SPADE encoder's noise): the ranks then do not repeat each other's noise.
  /// Call after the step's global-batch draws, before the forward pass.
  void seed_network_draws(uint64_t step_seed) const;

  /// Sums every defined gradient over the ranks and divides by the world size, in flat buckets of at most
  /// `bucket_bytes` (one all-reduce per bucket). Call after backward(), before clipping and the optimiser step.
  void all_reduce_gradients(const std::vector<torch::Tensor>& params, int64_t bucket_bytes = 25 << 20);
  /// Copies rank 0's parameters and buffers into every rank's `module` (at start and after a resume).
  void broadcast_parameters(torch::nn::Module& module);
  /// Mean of a scalar over the ranks (logged losses, the SPADE discriminator accuracy that gates the updates).
  double all_reduce_mean(double value);
  /// Every value of `row` replaced by its mean over the ranks (one all-reduce; every rank must hold the same keys).
  void all_reduce_mean(std::map<std::string, double>& row);
  /// True on every rank when `flag` is true on any rank (a Ctrl-C seen by one rank stops all of them together).
  bool any(bool flag);
  /// Fails with an InputError when `value` differs between ranks (e.g. the step a resume starts from).
  void check_same(int64_t value, const std::string& what);
  void barrier();

 private:
  struct Group;
  void all_reduce_(std::vector<torch::Tensor>& tensors, bool max, const char* what);
  int64_t rank_ = 0, world_ = 1, local_rank_ = 0;
  std::chrono::milliseconds timeout_{0};
  std::unique_ptr<Group> group_;
};

/// The process-wide context used by the training stages: single-process until init_distributed() is called.
Distributed& distributed();
/// Creates the process-wide context from `env` (replacing the previous one). Called once by the train apps.
Distributed& init_distributed(const DistributedEnv& env, torch::Device device);

/// start_run() for a training command under any launcher: joins the process group described by the environment,
/// then rank 0 does everything start_run does (out_dir, log file, config.yaml) while the other ranks only log
/// warnings and errors to the console. With run.threads 0 each of the ranks sharing a machine gets cores / ranks.
torch::Device start_training_run(const RunOptions& run, const std::string& resolved_config_yaml, const std::string& log_name);

}  // namespace brainspade
