#include "brainspade/models/official_names.h"

#include <array>
#include <utility>
#include <vector>

#include "brainspade/core/error.h"

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

std::string official_classifier_name(const std::string& key) {
  static const std::string kTrunk = "base_model.", kDatasetHead = "ds_layer_2.";
  if (key.rfind(kTrunk, 0) == 0) return key.substr(kTrunk.size());
  if (key.rfind(kDatasetHead, 0) == 0) return "dataset_layers.out." + key.substr(kDatasetHead.size());
  return key;
}

namespace {

// brainspade's module prefixes of the authors' flat encoder/decoder `blocks`, in their order.
std::vector<std::string> vae_blocks(const AutoencoderKLOptions& o, bool encoder) {
  const int64_t levels = static_cast<int64_t>(o.channels.size());
  std::vector<std::string> b{"conv_in"};
  auto mid = [&] {
    b.push_back("mid.block_1");
    if (o.mid_attention) b.push_back("mid.attn_1");
    b.push_back("mid.block_2");
  };
  if (encoder) {
    for (int64_t i = 0; i < levels; ++i) {
      for (int64_t r = 0; r < o.num_res_blocks; ++r) b.push_back("down." + std::to_string(i) + ".block." + std::to_string(r));
      if (i != levels - 1) b.push_back("down." + std::to_string(i) + ".downsample");
    }
    mid();
  } else {
    mid();
    for (int64_t i = levels - 1; i >= 0; --i) {
      for (int64_t r = 0; r < o.num_res_blocks; ++r) b.push_back("up." + std::to_string(i) + ".block." + std::to_string(r));
      if (i != 0) b.push_back("up." + std::to_string(i) + ".upsample");
    }
  }
  b.push_back("norm_out");
  b.push_back("conv_out");
  return b;
}

}  // namespace

std::string official_vae_name(const std::string& key, const AutoencoderKLOptions& options) {
  for (const bool encoder : {true, false}) {
    const std::string part = encoder ? "encoder." : "decoder.";
    const std::string prefix = part + "blocks.";
    if (key.rfind(prefix, 0) != 0) continue;
    const auto dot = key.find('.', prefix.size());
    int64_t n = -1;
    try {
      n = std::stoll(key.substr(prefix.size(), dot - prefix.size()));
    } catch (const std::exception&) {
      n = -1;
    }
    const auto blocks = vae_blocks(options, encoder);
    BRAINSPADE_CHECK_INPUT(n >= 0 && n < static_cast<int64_t>(blocks.size()) && dot != std::string::npos,
                           "weight '", key, "' has no counterpart in a VAE of ", options.channels.size(), " levels and ",
                           options.num_res_blocks, " res blocks per level (", blocks.size(), " ", part, "blocks)");
    return part + blocks[n] + key.substr(dot);
  }
  return key;
}

}  // namespace brainspade
