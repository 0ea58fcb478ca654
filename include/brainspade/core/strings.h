#pragma once
/// Small string helpers shared by the readers and the trainers.
#include <string>

namespace brainspade {

/// Whether `s` ends with `suffix`.
inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace brainspade
