#include "brainspade/models/official_names.h"

#include <array>
#include <utility>

namespace brainspade {

std::string official_unet_name(const std::string& key) {
  static const std::array<std::pair<const char*, const char*>, 6> kResBlock{{{".in_layers.0.", ".norm1."},
                                                                              {".in_layers.2.", ".conv1."},
                                                                              {".emb_layers.1.", ".temb_proj."},
                                                                              {".out_layers.0.", ".norm2."},
                                                                              {".out_layers.3.", ".conv2."},
                                                                              {".skip_connection.", ".nin_shortcut."}}};
  for (const auto& [theirs, ours] : kResBlock) {
    const auto at = key.find(theirs);
    if (at != std::string::npos) return key.substr(0, at) + ours + key.substr(at + std::string(theirs).size());
  }
  return key;
}

}  // namespace brainspade
