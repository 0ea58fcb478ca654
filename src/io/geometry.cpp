#include "brainspade/io/geometry.h"

#include <cmath>
#include <sstream>

namespace brainspade {

std::string orientation_code(const Volume& v) {
  // Column i of `direction` is the LPS direction of array axis i; its dominant component names the letter.
  static const char pos[3] = {'L', 'P', 'S'}, neg[3] = {'R', 'A', 'I'};
  std::string code;
  for (int i = 0; i < 3; ++i) {
    int best = 0;
    for (int r = 1; r < 3; ++r)
      if (std::abs(v.direction[r * 3 + i]) > std::abs(v.direction[best * 3 + i])) best = r;
    code += v.direction[best * 3 + i] >= 0 ? pos[best] : neg[best];
  }
  return code;
}

std::string geometry_string(const Volume& v) {
  std::ostringstream os;
  os << v.spacing[0] << "x" << v.spacing[1] << "x" << v.spacing[2] << " mm " << orientation_code(v);
  return os.str();
}

bool same_spacing(const std::array<double, 3>& a, const std::array<double, 3>& b, double tol) {
  for (int i = 0; i < 3; ++i)
    if (std::abs(a[i] - b[i]) > tol) return false;
  return true;
}

Volume resample_to_spacing(const Volume& v, const std::array<double, 3>& spacing, bool nearest) {
  const std::array<int64_t, 3> n{v.width(), v.height(), v.depth()};
  std::array<int64_t, 3> m{};
  for (int i = 0; i < 3; ++i) {
    TORCH_CHECK(spacing[i] > 0, "resample_to_spacing: spacing must be positive, got ", spacing[i]);
    m[i] = std::max<int64_t>(1, std::llround(static_cast<double>(n[i]) * v.spacing[i] / spacing[i]));
  }
  Volume target;
  target.spacing = spacing;
  target.origin = v.origin;
  target.direction = v.direction;
  target.data = torch::zeros({1, m[2], m[1], m[0]});
  return resample_like(v, target, nearest, 0.0);
}

}  // namespace brainspade
