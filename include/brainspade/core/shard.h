#pragma once
/// Splitting one job over several processes (`--shard i/n`): `sample` makes the batches k with k mod n = i, `audit`
/// measures the samples and slices k with k mod n = i. Slurm arrays set i and n through their environment.
#include <cstdint>
#include <string>

namespace brainspade {

/// Shard i of n (0 <= i < n).
struct Shard {
  int64_t index = 0, count = 1;
  /// Whether item k belongs to this shard (k mod n = i).
  bool owns(int64_t k) const { return k % count == index; }
  /// "i/n".
  std::string str() const;
};
/// Parses "i/n" (or SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when `spec` is empty and they are set; else 0/1).
/// InputError naming --shard for anything else.
Shard parse_shard(const std::string& spec);

}  // namespace brainspade
