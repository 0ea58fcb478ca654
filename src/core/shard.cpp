#include "brainspade/core/shard.h"

#include <cstdlib>
#include <exception>

#include "brainspade/core/error.h"

namespace brainspade {

std::string Shard::str() const { return std::to_string(index) + "/" + std::to_string(count); }

Shard parse_shard(const std::string& spec) {
  Shard s;
  std::string text = spec;
  if (text.empty()) {
    const char* id = std::getenv("SLURM_ARRAY_TASK_ID");
    const char* count = std::getenv("SLURM_ARRAY_TASK_COUNT");
    if (id && count) text = std::string(id) + "/" + count;
    else return s;
  }
  auto slash = text.find('/');
  try {
    BRAINSPADE_CHECK_INPUT(slash != std::string::npos, "");
    s.index = std::stoll(text.substr(0, slash));
    s.count = std::stoll(text.substr(slash + 1));
  } catch (const std::exception&) {
    throw input_error("--shard ", text, ": expected i/n, e.g. 0/4");
  }
  BRAINSPADE_CHECK_INPUT(s.count >= 1 && s.index >= 0 && s.index < s.count, "--shard ", text,
                         ": expected 0 <= i < n");
  return s;
}

}  // namespace brainspade
