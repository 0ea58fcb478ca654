// c10d process groups for data-parallel training (docs/distributed.md).
// ProcessGroupGloo.hpp is guarded by USE_C10D_GLOO (environment.md, "Distributed"). It is defined here rather than
// on the target so the precompiled <torch/torch.h> shared by every other file stays as it is.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
// NCCL is used when the LibTorch is a CUDA build with NCCL headers (it then ships ProcessGroupNCCL in libtorch_cuda).
#if __has_include(<nccl.h>) && __has_include(<ATen/cuda/CUDAConfig.h>)
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#define BRAINSPADE_HAVE_NCCL 1
#endif

#include "brainspade/core/distributed.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <limits>

#include <spdlog/spdlog.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef BRAINSPADE_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "brainspade/core/error.h"
#include "brainspade/core/runtime.h"

namespace brainspade {

namespace {

/// A non-negative integer from an environment variable; InputError naming it otherwise.
int64_t env_int(const char* name, const char* text) {
  std::string s(text);
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  BRAINSPADE_CHECK_INPUT(!s.empty() && end && *end == '\0' && errno == 0 && v >= 0, "environment variable ", name, "='",
                         s, "' is not a non-negative integer (distributed launch: see docs/distributed.md)");
  return v;
}

/// The first of `names` that is set, or nullptr.
const char* first_set(const std::function<const char*(const char*)>& get, std::initializer_list<const char*> names,
                      const char** which) {
  for (const char* n : names) {
    const char* v = get(n);
    if (v && *v) {
      *which = n;
      return v;
    }
  }
  return nullptr;
}

/// The message of an exception without LibTorch's C++ backtrace.
std::string message_of(const std::exception& e) {
  if (const auto* ce = dynamic_cast<const c10::Error*>(&e)) return ce->what_without_backtrace();
  return e.what();
}

}  // namespace

DistributedEnv read_distributed_env(const std::function<const char*(const char*)>& get) {
  DistributedEnv e;
  const char* rank_name = "RANK";
  const char* world_name = "WORLD_SIZE";
  // torchrun / by hand first; Slurm's per-task variables when RANK is absent.
  const bool torch_style = get("RANK") && *get("RANK");
  const char* rank_v = torch_style ? get("RANK") : first_set(get, {"SLURM_PROCID"}, &rank_name);
  const char* world_v = torch_style ? first_set(get, {"WORLD_SIZE"}, &world_name)
                                    : first_set(get, {"WORLD_SIZE", "SLURM_NTASKS"}, &world_name);
  if (world_v) e.world_size = env_int(world_name, world_v);
  BRAINSPADE_CHECK_INPUT(e.world_size >= 1, "environment variable ", world_name, "=0: the world needs at least one rank");
  if (rank_v) e.rank = env_int(rank_name, rank_v);
  BRAINSPADE_CHECK_INPUT(e.rank < e.world_size, "environment variable ", rank_name, "=", e.rank, " is not below ",
                         world_name, "=", e.world_size);
  if (e.world_size == 1) return e;  // single process: nothing else is read

  const char* which = nullptr;
  if (const char* v = first_set(get, {"LOCAL_RANK", "SLURM_LOCALID"}, &which)) e.local_rank = env_int(which, v);
  if (const char* v = first_set(get, {"LOCAL_WORLD_SIZE"}, &which)) {
    e.local_world_size = std::max<int64_t>(1, env_int(which, v));
  } else if (const char* s = get("SLURM_NTASKS_PER_NODE")) {  // e.g. "4" or "4(x2)"
    e.local_world_size = std::max(1, std::atoi(s));
  }
  const char* addr = get("MASTER_ADDR");
  BRAINSPADE_CHECK_INPUT(addr && *addr, "environment variable MASTER_ADDR is not set but ", world_name, "=", e.world_size,
                         " asks for a distributed run (set it to rank 0's host name or address)");
  e.master_addr = addr;
  const char* port = get("MASTER_PORT");
  BRAINSPADE_CHECK_INPUT(port && *port, "environment variable MASTER_PORT is not set but ", world_name, "=", e.world_size,
                         " asks for a distributed run (set it to a free TCP port on rank 0's host)");
  e.master_port = env_int("MASTER_PORT", port);
  BRAINSPADE_CHECK_INPUT(e.master_port >= 1 && e.master_port <= 65535, "environment variable MASTER_PORT=",
                         e.master_port, " is not a TCP port (1..65535)");
  if (const char* t = get("BRAINSPADE_DIST_TIMEOUT")) {
    int64_t s = env_int("BRAINSPADE_DIST_TIMEOUT", t);
    BRAINSPADE_CHECK_INPUT(s >= 1, "environment variable BRAINSPADE_DIST_TIMEOUT=0: the timeout is in seconds, at least 1");
    e.timeout = std::chrono::milliseconds(s * 1000);
  }
  return e;
}

DistributedEnv distributed_env_from_process() {
  return read_distributed_env([](const char* n) { return std::getenv(n); });
}

// The backend: Gloo, or NCCL for CUDA tensors. Held by concrete type because LibTorch 1.x derives the groups from
// ProcessGroup and 2.x from Backend; both have the same allreduce/broadcast/barrier calls.
struct Distributed::Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#ifdef BRAINSPADE_HAVE_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  template <class F>
  c10::intrusive_ptr<c10d::Work> call(F&& f) {
#ifdef BRAINSPADE_HAVE_NCCL
    if (nccl) return f(*nccl);
#endif
    return f(*gloo);
  }
};

Distributed::Distributed() = default;
Distributed::~Distributed() = default;

Distributed::Distributed(const DistributedEnv& env, torch::Device device)
    : rank_(env.rank), world_(env.world_size), local_rank_(env.local_rank), timeout_(env.timeout) {
  if (world_ <= 1) return;  // no c10d objects in a single-process run
  group_ = std::make_unique<Group>();
  const auto t_s = std::chrono::duration_cast<std::chrono::seconds>(timeout_).count();
  spdlog::info("distributed: rank {} of {}, rendezvous at {}:{} (timeout {} s)", rank_, world_, env.master_addr,
               env.master_port, t_s);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env.master_port);
    so.isServer = rank_ == 0;
    so.numWorkers = static_cast<size_t>(world_);
    so.waitWorkers = true;
    so.timeout = timeout_;
    group_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    if (device.is_cuda()) {
#ifdef BRAINSPADE_HAVE_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout_;
      group_->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(group_->store, rank_, world_, o);
#else
      throw input_error("distributed training on ", device.str(),
                        " needs a LibTorch built with NCCL; this build has Gloo only (use run.device: cpu)");
#endif
    } else {
      auto o = c10d::ProcessGroupGloo::Options::create(timeout_);
      // GLOO_SOCKET_IFNAME picks the network interface (as in PyTorch); a loopback master means a one-machine run.
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      const bool loopback = env.master_addr == "localhost" || env.master_addr.rfind("127.", 0) == 0;
      if (ifname && *ifname) o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (loopback) o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      group_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(group_->store, rank_, world_, o);
    }
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format(
        "distributed: rank {} of {} could not join the process group at {}:{} within {} s (is every rank started, "
        "with the same MASTER_ADDR/MASTER_PORT and WORLD_SIZE?): {}",
        rank_, world_, env.master_addr, env.master_port, t_s, message_of(e)));
  }
}

torch::Device Distributed::local_device(torch::Device device) const {
  if (active() && device.is_cuda() && !device.has_index())
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank_));
  return device;
}

void Distributed::check_global_batch(int64_t global_batch, const std::string& key) const {
  BRAINSPADE_CHECK_INPUT(global_batch % world_ == 0, "config key '", key, "' is the GLOBAL batch (", global_batch,
                         ") and must be divisible by the number of ranks (WORLD_SIZE=", world_, ")");
}

std::pair<int64_t, int64_t> Distributed::shard(int64_t global_batch) const {
  const int64_t per = global_batch / world_;
  return {rank_ * per, (rank_ + 1) * per};
}

torch::Tensor Distributed::local_rows(const torch::Tensor& global) const {
  if (!active()) return global;
  auto [b, e] = shard(global.size(0));
  return global.slice(0, b, e);
}

std::vector<int64_t> Distributed::local_rows(const std::vector<int64_t>& global) const {
  if (!active()) return global;
  auto [b, e] = shard(static_cast<int64_t>(global.size()));
  return std::vector<int64_t>(global.begin() + b, global.begin() + e);
}

void Distributed::seed_network_draws(uint64_t step_seed) const {
  if (active()) torch::manual_seed(derive_seed(step_seed, 0xD157ULL, static_cast<uint64_t>(rank_)));
}

void Distributed::all_reduce_(std::vector<torch::Tensor>& tensors, bool max, const char* what) {
  c10d::AllreduceOptions o;
  o.reduceOp = max ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
  o.timeout = timeout_;
  try {
    auto work = group_->call([&](auto& g) { return g.allreduce(tensors, o); });
    work->wait(timeout_);
  } catch (const std::exception& e) {
    // A dead peer closes its sockets: Gloo reports it at once; a hung peer is reported after the timeout.
    throw std::runtime_error(fmt::format(
        "distributed: all-reduce of {} failed on rank {} of {}; another rank exited, crashed or stalled for more than "
        "{} s (see its log): {}",
        what, rank_, world_, std::chrono::duration_cast<std::chrono::seconds>(timeout_).count(),
        message_of(e)));
  }
}

void Distributed::all_reduce_gradients(const std::vector<torch::Tensor>& params, int64_t bucket_bytes) {
  if (!active()) return;
  torch::NoGradGuard no_grad;
  // Buckets of gradients with the same dtype and device, in parameter order (identical on every rank).
  std::vector<torch::Tensor> bucket;
  int64_t bytes = 0;
  auto flush = [&]() {
    if (bucket.empty()) return;
    std::vector<torch::Tensor> flat_views;
    for (auto& g : bucket) flat_views.push_back(g.reshape({-1}));
    std::vector<torch::Tensor> flat{torch::cat(flat_views)};
    all_reduce_(flat, false, "gradients");
    flat[0].div_(static_cast<double>(world_));
    int64_t off = 0;
    for (auto& g : bucket) {
      g.copy_(flat[0].slice(0, off, off + g.numel()).view_as(g));
      off += g.numel();
    }
    bucket.clear();
    bytes = 0;
  };
  for (const auto& p : params) {
    auto g = p.grad();
    if (!g.defined()) continue;
    if (!bucket.empty() && (g.scalar_type() != bucket.front().scalar_type() || g.device() != bucket.front().device() ||
                            bytes + g.numel() * static_cast<int64_t>(g.element_size()) > bucket_bytes))
      flush();
    bucket.push_back(g);
    bytes += g.numel() * static_cast<int64_t>(g.element_size());
  }
  flush();
}

void Distributed::broadcast_parameters(torch::nn::Module& module) {
  if (!active()) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> all;
  for (auto& p : module.parameters(true)) all.push_back(p);
  for (auto& b : module.buffers(true)) all.push_back(b);
  for (auto& t : all) {
    std::vector<torch::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
    c10d::BroadcastOptions o;
    o.rootRank = 0;
    o.timeout = timeout_;
    try {
      auto work = group_->call([&](auto& g) { return g.broadcast(one, o); });
      work->wait(timeout_);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("distributed: broadcast of the initial weights failed on rank {} of {}: {}",
                                           rank_, world_, message_of(e)));
    }
    if (!one[0].is_same(t)) t.copy_(one[0]);
  }
}

double Distributed::all_reduce_mean(double value) {
  if (!active()) return value;
  std::vector<torch::Tensor> t{torch::tensor({value}, torch::kDouble)};
  all_reduce_(t, false, "a logged metric");
  return t[0].item<double>() / static_cast<double>(world_);
}

void Distributed::all_reduce_mean(std::map<std::string, double>& row) {
  if (!active() || row.empty()) return;
  std::vector<double> values;
  for (const auto& kv : row) values.push_back(kv.second);
  std::vector<torch::Tensor> t{torch::tensor(values, torch::kDouble)};
  all_reduce_(t, false, "the logged metrics");
  auto a = t[0].accessor<double, 1>();
  int64_t i = 0;
  for (auto& kv : row) kv.second = a[i++] / static_cast<double>(world_);
}

bool Distributed::any(bool flag) {
  if (!active()) return flag;
  std::vector<torch::Tensor> t{torch::tensor({flag ? 1.0 : 0.0}, torch::kDouble)};
  all_reduce_(t, true, "the stop flag");
  return t[0].item<double>() > 0;
}

void Distributed::check_same(int64_t value, const std::string& what) {
  if (!active()) return;
  // max(v) and max(-v) together give the range over the ranks.
  std::vector<torch::Tensor> t{torch::tensor({double(value), -double(value)}, torch::kDouble)};
  all_reduce_(t, true, what.c_str());
  const double hi = t[0][0].item<double>(), lo = -t[0][1].item<double>();
  BRAINSPADE_CHECK_INPUT(hi == lo, "distributed: ", what, " differs between ranks (from ", static_cast<int64_t>(lo),
                         " to ", static_cast<int64_t>(hi), "; rank ", rank_, " has ", value,
                         "). Every rank must read the same files; put run.out_dir on a shared file system");
}

void Distributed::barrier() {
  if (!active()) return;
  std::vector<torch::Tensor> t{torch::zeros({1})};
  all_reduce_(t, false, "a barrier");
}

namespace {
std::unique_ptr<Distributed>& global_context() {
  static std::unique_ptr<Distributed> ctx = std::make_unique<Distributed>();
  return ctx;
}
}  // namespace

Distributed& distributed() { return *global_context(); }

Distributed& init_distributed(const DistributedEnv& env, torch::Device device) {
  auto& ctx = global_context();
  ctx.reset();  // leave an earlier group before joining a new one
  ctx = std::make_unique<Distributed>(env, device);
  return *ctx;
}

torch::Device start_training_run(const RunOptions& run, const std::string& resolved_config_yaml, const std::string& log_name) {
  const DistributedEnv env = distributed_env_from_process();
  torch::Device device = parse_device(run.device);  // validate before anything is written or joined
  if (env.world_size <= 1) return start_run(run, resolved_config_yaml, log_name);

  RunOptions r = run;
  if (r.threads == 0 && env.local_world_size > 1)  // ranks on one machine share its threads (OMP_NUM_THREADS or cores)
    r.threads = std::max<int64_t>(1, default_threads() / env.local_world_size);
  // Every log line says which rank wrote it; only rank 0 logs below warnings.
  spdlog::default_logger()->set_pattern(fmt::format("[%H:%M:%S] [rank {}] [%^%l%$] %v", env.rank));
  if (env.rank != 0 && spdlog::default_logger()->level() < spdlog::level::warn) spdlog::set_level(spdlog::level::warn);
  init_distributed(env, device);
  if (env.rank == 0) return distributed().local_device(start_run(r, resolved_config_yaml, log_name));
  configure_threads(r.threads);
  seed_everything(static_cast<uint64_t>(r.seed));
  return distributed().local_device(device);
}

}  // namespace brainspade
