#pragma once
/// Errors that a user can fix (bad file, bad config key, mismatched checkpoint).
/// The program turns them into exit code 2 and a one-line message; nothing else is thrown for bad input.
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace brainspade {

class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
inline void stream_all(std::ostringstream&) {}
template <class T, class... Rest>
void stream_all(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  stream_all(os, rest...);
}
}  // namespace detail

/// Builds a message from its pieces: input_error("file ", path, ": not 3D").
template <class... Parts>
InputError input_error(const Parts&... parts) {
  std::ostringstream os;
  detail::stream_all(os, parts...);
  return InputError(os.str());
}

/// Throws InputError with the message when cond is false.
#define BRAINSPADE_CHECK_INPUT(cond, ...) \
  do {                                    \
    if (!(cond)) throw ::brainspade::input_error(__VA_ARGS__); \
  } while (0)

/// A config range [lo, hi]: exactly two values with lo <= hi, else InputError naming the key and what was given.
inline void check_lo_hi(const std::vector<double>& r, const std::string& key) {
  std::ostringstream got;
  for (size_t i = 0; i < r.size(); ++i) got << (i ? ", " : "") << r[i];
  BRAINSPADE_CHECK_INPUT(r.size() == 2 && r[0] <= r[1], "config key '", key, "': expected [lo, hi] with lo <= hi, got [",
                         got.str(), "]");
}

}  // namespace brainspade
