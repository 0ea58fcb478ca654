#include "brainspade/training/official_config.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "brainspade/core/config.h"
#include "brainspade/core/error.h"

namespace brainspade {

std::string yaml_flow(const YAML::Node& node) {
  YAML::Emitter e;
  e << YAML::Flow << node;
  return e.c_str();
}

namespace {

// One map of their YAML. Every key read is remembered, so that check_all_read() can name a key nobody translated.
class YamlMap {
 public:
  YamlMap(YAML::Node node, std::string path, std::string file)
      : node_(std::move(node)), path_(std::move(path)), file_(std::move(file)) {}

  std::string full(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  const std::string& file() const { return file_; }
  bool has(const std::string& key) const {
    const YAML::Node n = get(key);
    return n.IsDefined() && !n.IsNull();
  }
  YAML::Node node(const std::string& key) {
    read_.insert(key);
    return get(key);
  }
  template <class T>
  T value(const std::string& key, const char* expected) {
    const YAML::Node n = node(key);
    BRAINSPADE_CHECK_INPUT(n.IsDefined() && !n.IsNull(), file_, ": '", full(key), "' is missing");
    try {
      return n.as<T>();
    } catch (const YAML::Exception&) {
      throw input_error(file_, ": '", full(key), "' is ", yaml_flow(n), "; expected ", expected);
    }
  }
  template <class T>
  T value(const std::string& key, const char* expected, T fallback) {
    return has(key) ? value<T>(key, expected) : (read_.insert(key), fallback);
  }
  YamlMap child(const std::string& key) {
    const YAML::Node n = node(key);
    BRAINSPADE_CHECK_INPUT(n.IsDefined() && !n.IsNull(), file_, ": section '", full(key), "' is missing");
    BRAINSPADE_CHECK_INPUT(n.IsMap(), file_, ": '", full(key), "' is ", yaml_flow(n), "; expected a map of keys");
    return YamlMap(n, full(key), file_);
  }
  /// Their key with a value brainspade cannot build: exit 2 naming both.
  [[noreturn]] void refuse(const std::string& key, const std::string& why) const {
    throw input_error(file_, ": their '", full(key), ": ", has(key) ? yaml_flow(get(key)) : "(absent)",
                      "' cannot be built by brainspade: ", why);
  }
  /// A key that no reader asked for: an option brainspade does not know what to do with.
  void check_all_read() const {
    for (const auto& kv : node_) {
      const std::string k = kv.first.as<std::string>();
      BRAINSPADE_CHECK_INPUT(read_.count(k) || kv.second.IsNull(), file_, ": their '", full(k), ": ", yaml_flow(kv.second),
                             "' is not an option brainspade knows how to translate (docs/import-official.md lists ",
                             "them)");
    }
  }
  /// Their code passes these maps on with **kwargs and ignores what it does not use: so does the translation.
  void warn_unread(const char* why) const {
    for (const auto& kv : node_) {
      const std::string k = kv.first.as<std::string>();
      if (!read_.count(k)) spdlog::warn("import-official: {}: '{}' is not used ({})", file_, full(k), why);
    }
  }

 private:
  YAML::Node get(const std::string& key) const {
    const YAML::Node& c = node_;
    return c[key];
  }
  YAML::Node node_;
  std::string path_, file_;
  std::set<std::string> read_;
};

// True when all of `s` is one integer (std::stoll would accept "12abc" and throw on "").
bool whole_integer(const std::string& s, int64_t* value) {
  size_t used = 0;
  try {
    *value = std::stoll(s, &used);
  } catch (const std::exception&) {
    return false;
  }
  return !s.empty() && used == s.size();
}

YamlMap read_their_yaml(const std::string& path) {
  // The same reader (and the same checks: plain keys, no alias loops) as brainspade's own configs.
  return YamlMap(read_config_tree(ConfigSource{path, {}, {}}), "", path);
}

template <class T>
void add(std::vector<OfficialEntry>& to, const std::string& key, const T& value, const std::string& from) {
  to.push_back({key, YAML::Node(value), from});
}
// A number as they would write it (shortest form that reads back the same: 0.0003, not 0.00029999999999999997).
void add(std::vector<OfficialEntry>& to, const std::string& key, double value, const std::string& from) {
  to.push_back({key, YAML::Node(fmt::format("{}", value)), from});
}

}  // namespace

OfficialConfig read_official_vae_config(const std::string& path) {
  OfficialConfig out;
  out.file = path;
  YamlMap top = read_their_yaml(path);
  YamlMap stage1 = top.child("stage1");
  YamlMap params = stage1.child("params");
  YamlMap hp = params.child("hparams");
  const std::string p = "stage1.params.";
  const auto embed_dim = params.value<int64_t>("embed_dim", "an integer");
  const auto z_channels = hp.value<int64_t>("z_channels", "an integer");
  if (z_channels != embed_dim)
    hp.refuse("z_channels", "brainspade's encoder ends in the latent channels themselves (z_channels must equal "
                            "embed_dim, " + std::to_string(embed_dim) + ")");
  const auto in_channels = hp.value<int64_t>("in_channels", "an integer");
  const auto out_channels = hp.value<int64_t>("out_channels", "an integer");
  if (out_channels != in_channels)
    hp.refuse("out_channels", "brainspade's VAE reconstructs its input (out_channels must equal in_channels, " +
                                  std::to_string(in_channels) + ")");
  const auto n_channels = hp.value<int64_t>("n_channels", "an integer");
  const auto ch_mult = hp.value<std::vector<int64_t>>("ch_mult", "a list of integers");
  if (ch_mult.empty()) hp.refuse("ch_mult", "at least one level is needed");
  std::vector<int64_t> channels;
  for (int64_t m : ch_mult) channels.push_back(n_channels * m);
  const auto num_res_blocks = hp.value<int64_t>("num_res_blocks", "an integer");
  // Their per-level attention sits after the res blocks of a level whose larger side is in attn_resolutions, the
  // input being `resolution`; brainspade builds attention in the mid block only.
  const auto resolution = hp.value<std::vector<int64_t>>("resolution", "a list of integers (height, width)");
  if (resolution.empty()) hp.refuse("resolution", "a list of sizes is needed");
  const auto attn = hp.value<std::vector<int64_t>>("attn_resolutions", "a list of integers");
  std::vector<int64_t> cur = resolution;
  for (size_t level = 0; level < ch_mult.size(); ++level) {
    const int64_t side = *std::max_element(cur.begin(), cur.end());
    if (std::find(attn.begin(), attn.end(), side) != attn.end())
      hp.refuse("attn_resolutions", "their VAE has attention at level " + std::to_string(level) + " (size " +
                                        std::to_string(side) + "); brainspade's has it in the mid block only");
    for (auto& c : cur) c /= 2;
  }
  hp.warn_unread("their Encoder and Decoder ignore keys they do not take");
  params.check_all_read();
  const std::string h = p + "hparams.";
  add(out.fixed, "vae.in_channels", in_channels, h + "in_channels");
  add(out.fixed, "vae.channels", channels, h + "n_channels × " + h + "ch_mult");
  add(out.fixed, "vae.num_res_blocks", num_res_blocks, h + "num_res_blocks");
  add(out.fixed, "vae.latent_channels", embed_dim, p + "embed_dim");
  // What their ae_kl_v1.py hard-codes: mid-block attention, GroupNorm(32, eps 1e-6), log-variance clamp, raw output.
  add(out.fixed, "vae.mid_attention", true, "code");
  add(out.fixed, "vae.norm_groups", int64_t{32}, "code");
  add(out.fixed, "vae.norm_eps", 1e-6, "code");
  add(out.fixed, "vae.logvar_min", -30.0, "code");
  add(out.fixed, "vae.logvar_max", 20.0, "code");
  add(out.fixed, "vae.output", std::string("raw"), "code");

  const std::vector<std::pair<std::string, std::string>> training = {
      {"base_lr", "optim.lr"},          {"disc_lr", "optim.lr_d"},         {"lr_decay", "optim.lr_decay"},
      {"kl_weight", "loss.kl_weight"},  {"gan_weight", "loss.adv_weight"}, {"perceptual_weight", "loss.perceptual_weight"}};
  for (const auto& [theirs, ours] : training)
    if (stage1.has(theirs)) add(out.defaults, ours, stage1.value<double>(theirs, "a number"), "stage1." + theirs);
  stage1.check_all_read();

  if (top.has("discriminator")) {
    YamlMap d = top.child("discriminator").child("params");
    const std::string dp = "discriminator.params.";
    if (d.has("input_nc")) add(out.defaults, "discriminator.in_channels", d.value<int64_t>("input_nc", "an integer"), dp + "input_nc");
    if (d.has("ndf")) add(out.defaults, "discriminator.ndf", d.value<int64_t>("ndf", "an integer"), dp + "ndf");
    add(out.defaults, "discriminator.num_layers", d.value<int64_t>("n_layers", "an integer", 3), dp + "n_layers");
    add(out.defaults, "discriminator.norm", std::string("batch"), "code");
    d.check_all_read();
  }
  if (top.has("perceptual_network")) {
    YamlMap pn = top.child("perceptual_network").child("params");
    const auto net = pn.value<std::string>("net", "a name", "alex");  // lpips.LPIPS's default
    const std::map<std::string, std::string> nets = {{"squeeze", "squeeze"}, {"vgg", "vgg16"}};
    if (!nets.count(net)) pn.refuse("net", "brainspade's perceptual networks are squeeze and vgg (vgg16)");
    add(out.defaults, "loss.perceptual_network", nets.at(net), "perceptual_network.params.net");
    pn.check_all_read();
  }
  top.check_all_read();
  return out;
}

OfficialConfig read_official_ldm_config(const std::string& path) {
  OfficialConfig out;
  out.file = path;
  YamlMap top = read_their_yaml(path);
  YamlMap ldm = top.child("ldm");
  if (ldm.has("base_lr")) add(out.defaults, "optim.lr", ldm.value<double>("base_lr", "a number"), "ldm.base_lr");
  YamlMap p = ldm.child("params");
  const std::string pp = "ldm.params.";
  // Their DDPM (ddpm_v2_conditioned.py) and its defaults.
  const auto timesteps = p.value<int64_t>("timesteps", "an integer", 1000);
  const auto schedule = p.value<std::string>("beta_schedule", "a name", "linear");
  // CompVis "linear" is linear in √β (diffusers' and brainspade's scaled_linear); their "sqrt_linear" is linear in β.
  const std::map<std::string, std::string> schedules = {
      {"linear", "scaled_linear"}, {"sqrt_linear", "linear"}, {"cosine", "cosine"}};
  if (!schedules.count(schedule))
    p.refuse("beta_schedule", "brainspade's schedules are their linear (scaled_linear), sqrt_linear (linear) and cosine");
  const auto linear_start = p.value<double>("linear_start", "a number", 1e-4);
  const auto linear_end = p.value<double>("linear_end", "a number", 2e-2);
  if (p.value<double>("cosine_s", "a number", 8e-3) != 8e-3)
    p.refuse("cosine_s", "brainspade's cosine schedule has the offset 0.008");
  const auto param = p.value<std::string>("parameterization", "a name", "eps");
  const std::map<std::string, std::string> params = {{"eps", "epsilon"}, {"x0", "sample"}};
  if (!params.count(param)) p.refuse("parameterization", "brainspade predicts eps (epsilon) or x0 (sample)");
  const auto v_posterior = p.value<double>("v_posterior", "a number", 0.0);
  if (v_posterior != 0.0 && v_posterior != 1.0)
    p.refuse("v_posterior", "brainspade's reverse-step variance is the posterior's (0: fixed_small) or β (1: fixed_large)");
  const auto clip = p.value<bool>("clip_denoised", "True or False", false);
  const auto loss_type = p.value<std::string>("loss_type", "a name", "l2");
  if (loss_type != "l1" && loss_type != "l2") p.refuse("loss_type", "brainspade's diffusion losses are l1 and l2");
  if (p.value<double>("original_elbo_weight", "a number", 0.0) != 0.0)
    p.refuse("original_elbo_weight", "brainspade trains the simple loss only (no variational bound term)");
  if (p.value<double>("l_simple_weight", "a number", 1.0) != 1.0)
    p.refuse("l_simple_weight", "brainspade's diffusion loss has no weight");
  if (p.value<bool>("learn_logvar", "True or False", false))
    p.refuse("learn_logvar", "brainspade learns no per-timestep loss log-variance");
  if (p.value<double>("logvar_init", "a number", 0.0) != 0.0)
    p.refuse("logvar_init", "their loss is divided by exp(logvar_init); brainspade's is not");
  p.node("log_every_t");  // their logging
  std::string key = p.value<std::string>("conditioning_key", "a name", "none");  // their None: unconditioned
  if (key == "unconditioned") key = "none";
  if (key != "none" && key != "concat" && key != "crossattn" && key != "hybrid")
    p.refuse("conditioning_key", "brainspade conditions by concat, crossattn or hybrid (or none)");

  YamlMap uc = p.child("unet_config");
  YamlMap u = uc.child("params");
  uc.check_all_read();
  const std::string up = pp + "unet_config.params.";
  u.value<int64_t>("image_size", "an integer");  // their U-Net does not use it; the size comes from --image-size
  const auto in_channels = u.value<int64_t>("in_channels", "an integer");
  const auto out_channels = u.value<int64_t>("out_channels", "an integer");
  const auto model_channels = u.value<int64_t>("model_channels", "an integer");
  const auto num_res_blocks = u.value<int64_t>("num_res_blocks", "an integer");
  const auto attn_res = u.value<std::vector<int64_t>>("attention_resolutions", "a list of integers");
  const auto dropout = u.value<double>("dropout", "a number", 0.0);
  const auto channel_mult = u.value<std::vector<int64_t>>("channel_mult", "a list of integers", {1, 2, 4, 8});
  if (channel_mult.empty()) u.refuse("channel_mult", "at least one level is needed");
  const auto num_heads = u.value<int64_t>("num_heads", "an integer", 1);
  if (num_heads < 1) u.refuse("num_heads", "brainspade sets the number of heads, not their width");
  if (u.value<int64_t>("num_head_channels", "an integer", -1) != -1)
    u.refuse("num_head_channels", "brainspade sets the number of heads (num_heads), not their width");
  const auto heads_up = u.value<int64_t>("num_heads_upsample", "an integer", -1);
  if (heads_up != -1 && heads_up != num_heads)
    u.refuse("num_heads_upsample", "brainspade's decoder has as many heads as its encoder (num_heads)");
  if (u.value<bool>("use_scale_shift_norm", "True or False", false))
    u.refuse("use_scale_shift_norm", "brainspade's ResBlocks add the time embedding (no scale-shift norm)");
  const auto updown = u.value<bool>("resblock_updown", "True or False", false);
  if (!u.value<bool>("conv_resample", "True or False", true) && !updown)
    u.refuse("conv_resample", "brainspade resamples with convolutions or with ResBlocks (resblock_updown)");
  if (u.has("num_classes")) u.refuse("num_classes", "brainspade's U-Net has no class embedding");
  u.node("num_classes");
  if (u.has("n_embed")) u.refuse("n_embed", "brainspade's U-Net predicts no codebook ids");
  u.node("n_embed");
  const bool transformer = u.value<bool>("use_spatial_transformer", "True or False", false);
  const auto depth = u.value<int64_t>("transformer_depth", "an integer", 1);
  const bool cross = key == "crossattn" || key == "hybrid";
  if (transformer != cross)
    u.refuse("use_spatial_transformer", std::string("brainspade's attention is a SpatialTransformer exactly when it ") +
                                            "conditions by cross-attention (conditioning_key " + key + ")");
  int64_t cond_dim = 0;
  std::string cond_from = pp + "conditioning_key";
  if (cross) {
    cond_dim = u.value<int64_t>("context_dim", "an integer");
    cond_from = up + "context_dim";
  } else {
    if (u.has("context_dim")) u.refuse("context_dim", "a context is used only with crossattn or hybrid conditioning");
    u.node("context_dim");
    if (key == "concat") {
      cond_dim = in_channels - out_channels;
      cond_from = up + "in_channels − out_channels";
      if (cond_dim < 1)
        u.refuse("in_channels", "with concat conditioning their input holds the latent (out_channels, " +
                                    std::to_string(out_channels) + ") and the conditioning channels");
    }
  }
  const int64_t latent_in = (key == "concat" || key == "hybrid") ? in_channels - cond_dim : in_channels;
  if (latent_in != out_channels)
    u.refuse("in_channels", "brainspade's U-Net takes the latent (out_channels, " + std::to_string(out_channels) +
                                ") plus " + std::to_string(key == "hybrid" ? cond_dim : 0) + " conditioning channels");
  // Their attention_resolutions are downsampling factors: level l (factor 2^l) has attention when 2^l is listed.
  std::vector<int64_t> levels;
  for (size_t l = 0; l < channel_mult.size(); ++l)
    if (std::find(attn_res.begin(), attn_res.end(), int64_t{1} << l) != attn_res.end())
      levels.push_back(static_cast<int64_t>(l));
  u.check_all_read();
  p.check_all_read();
  ldm.check_all_read();
  top.check_all_read();

  add(out.fixed, "unet.in_channels", latent_in, up + "in_channels");
  add(out.fixed, "unet.out_channels", out_channels, up + "out_channels");
  add(out.fixed, "unet.model_channels", model_channels, up + "model_channels");
  add(out.fixed, "unet.channel_mult", channel_mult, up + "channel_mult");
  add(out.fixed, "unet.num_res_blocks", num_res_blocks, up + "num_res_blocks");
  add(out.fixed, "unet.attention_levels", levels, up + "attention_resolutions");
  add(out.fixed, "unet.mid_attention", true, "code");
  add(out.fixed, "unet.num_heads", num_heads, up + "num_heads");
  if (transformer) add(out.fixed, "unet.transformer_depth", depth, up + "transformer_depth");
  add(out.fixed, "unet.conditioning", key, pp + "conditioning_key");
  add(out.fixed, "unet.cond_dim", cond_dim, cond_from);
  add(out.fixed, "unet.resblock_updown", updown, up + "resblock_updown");
  add(out.fixed, "unet.dropout", dropout, up + "dropout");
  add(out.fixed, "unet.norm_groups", int64_t{32}, "code");
  add(out.fixed, "unet.norm_eps", 1e-6, "code");
  add(out.fixed, "scheduler.num_train_timesteps", timesteps, pp + "timesteps");
  add(out.fixed, "scheduler.beta_schedule", schedules.at(schedule), pp + "beta_schedule");
  add(out.fixed, "scheduler.beta_start", linear_start, pp + "linear_start");
  add(out.fixed, "scheduler.beta_end", linear_end, pp + "linear_end");
  add(out.fixed, "scheduler.prediction_type", params.at(param), pp + "parameterization");
  add(out.fixed, "scheduler.variance_type", std::string(v_posterior == 0.0 ? "fixed_small" : "fixed_large"),
      pp + "v_posterior");
  add(out.fixed, "scheduler.clip_sample", clip, pp + "clip_denoised");
  add(out.fixed, "scheduler.clip_sample_range", 1.0, "code");
  add(out.fixed, "latent.scale_factor", 1.0, "code (latents as the VAE gives them)");
  add(out.fixed, "latent.estimate_scale", false, "code");
  add(out.defaults, "optim.loss", loss_type, pp + "loss_type");
  // Which values their conditioning vector holds is a flag of their train script (--lesions), not in this file: one
  // value is the slice position, none is none; more need conditioning.lesions from --config.
  if (cond_dim <= 1) {
    add(out.defaults, "conditioning.lesions", std::vector<std::string>{}, cond_from);
    add(out.defaults, "conditioning.slice_position", cond_dim == 1, cond_from);
  }
  return out;
}

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

// Their opt.txt: key → value as Python's str() wrote it.
class OptFile {
 public:
  explicit OptFile(const std::string& path) : file_(path) {
    std::ifstream in(path, std::ios::binary);
    BRAINSPADE_CHECK_INPUT(in.good(), path, ": option file not found or unreadable");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    BRAINSPADE_CHECK_INPUT(text.empty() || static_cast<unsigned char>(text[0]) != 0x80, path,
                           ": a pickle (their opt.pkl, a Python argparse Namespace), which brainspade does not read; ",
                           "give the opt.txt saved beside it");
    size_t start = 0, line_no = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      const std::string line = text.substr(start, end - start);
      start = end + 1;
      ++line_no;
      const std::string t = trim(line);
      if (t.empty() || t.rfind("---", 0) == 0) continue;  // print_options' header and footer lines
      // '{:>25}: {:<30}{}': the key right-aligned, ": ", the value, then "\t[default: x]" when changed.
      const auto colon = t.find(':');
      const std::string key = colon == std::string::npos ? "" : trim(t.substr(0, colon));
      const bool name = !key.empty() && std::all_of(key.begin(), key.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '_';
      });
      BRAINSPADE_CHECK_INPUT(name, path, ": line ", line_no,
                             " is not an option line 'name: value' (is this the opt.txt their train script writes?)");
      std::string value = t.substr(colon + 1);
      const auto dflt = value.rfind("\t[default: ");
      if (dflt != std::string::npos) value = value.substr(0, dflt);
      BRAINSPADE_CHECK_INPUT(!values_.count(key), path, ": option '", key, "' appears twice (line ", line_no, ")");
      values_[key] = trim(value);
    }
    BRAINSPADE_CHECK_INPUT(!values_.empty(), path, ": no option lines (is this the opt.txt their train script writes?)");
  }
  bool has(const std::string& key) const { return values_.count(key) > 0; }
  const std::string& text(const std::string& key) const {
    BRAINSPADE_CHECK_INPUT(has(key), file_, ": option '", key, "' is missing (their train script writes every option)");
    return values_.at(key);
  }
  std::string text(const std::string& key, const std::string& fallback) const {
    return has(key) ? values_.at(key) : fallback;
  }
  [[noreturn]] void refuse(const std::string& key, const std::string& why) const {
    throw input_error(file_, ": their '", key, ": ", has(key) ? values_.at(key) : "(absent)",
                      "' cannot be built by brainspade: ", why);
  }
  int64_t integer(const std::string& key) const {
    const std::string& s = text(key);
    int64_t v = 0;
    BRAINSPADE_CHECK_INPUT(whole_integer(s, &v), file_, ": option '", key, ": ", s, "' is not an integer");
    return v;
  }
  bool flag(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    const std::string& s = values_.at(key);
    BRAINSPADE_CHECK_INPUT(s == "True" || s == "False", file_, ": option '", key, ": ", s, "' is not True or False");
    return s == "True";
  }
  /// A Python list as str() writes it: [256, 256] or ['T1', 'FLAIR'].
  std::vector<std::string> list(const std::string& key) const {
    const std::string& s = text(key);
    BRAINSPADE_CHECK_INPUT(s.size() >= 2 && s.front() == '[' && s.back() == ']', file_, ": option '", key, ": ", s,
                           "' is not a list");
    std::vector<std::string> items;
    const std::string inner = s.substr(1, s.size() - 2);
    size_t b = 0;
    while (!trim(inner).empty() && b <= inner.size()) {
      size_t e = inner.find(',', b);
      if (e == std::string::npos) e = inner.size();
      std::string item = trim(inner.substr(b, e - b));
      if (item.size() >= 2 && (item.front() == '\'' || item.front() == '"') && item.back() == item.front())
        item = item.substr(1, item.size() - 2);
      items.push_back(item);
      b = e + 1;
    }
    return items;
  }
  std::vector<int64_t> integers(const std::string& key) const {
    std::vector<int64_t> out;
    for (const auto& item : list(key)) {
      int64_t v = 0;
      BRAINSPADE_CHECK_INPUT(whole_integer(item, &v), file_, ": option '", key, ": ", text(key),
                             "' is not a list of integers");
      out.push_back(v);
    }
    return out;
  }

 private:
  std::string file_;
  std::map<std::string, std::string> values_;
};

// Their norm_E / norm_D: "spectral" + instance | batch | sync_batch | none (get_nonspade_norm_layer). brainspade's
// style encoder and discriminator use instance norm, with spectral norm or without.
bool spectral_instance(const OptFile& opt, const std::string& key) {
  const std::string& s = opt.text(key);
  if (s == "spectralinstance") return true;
  if (s == "instance") return false;
  opt.refuse(key, "brainspade's layers here are instance-normalised: spectralinstance or instance");
}

}  // namespace

OfficialConfig read_official_spade_options(const std::string& path) {
  OfficialConfig out;
  out.file = path;
  const OptFile opt(path);
  if (opt.text("netG", "spade") != "spade") opt.refuse("netG", "brainspade's generator is SPADE's");
  if (opt.text("netD", "multiscale") != "multiscale") opt.refuse("netD", "brainspade's discriminator is multiscale");
  if (opt.text("netD_subarch", "n_layer") != "n_layer")
    opt.refuse("netD_subarch", "brainspade's discriminators are n_layer PatchGANs");
  if (opt.text("upsampling_type", "upsample") != "upsample")
    opt.refuse("upsampling_type", "brainspade upsamples by nearest-neighbour doubling (their 'upsample')");
  if (opt.text("type_prior", "N") != "N")
    opt.refuse("type_prior", "brainspade's style code is Gaussian (their type_prior N)");
  if (opt.flag("D_modality_class", false))
    opt.refuse("D_modality_class", "brainspade's discriminator is not given the modality");
  if (opt.integer("output_nc") != 1) opt.refuse("output_nc", "their generator and brainspade's write one channel");
  const int64_t label_channels = opt.integer("label_nc") + (opt.flag("contain_dontcare_label", false) ? 1 : 0);
  const int64_t ngf = opt.integer("ngf"), z_dim = opt.integer("z_dim");
  const std::string up = opt.text("num_upsampling_layers");
  if (up != "normal" && up != "more" && up != "most")
    opt.refuse("num_upsampling_layers", "their choices are normal, more and most");
  const auto size = opt.integers("new_size");
  if (size.size() != 2) opt.refuse("new_size", "height and width are needed");
  // norm_G: [spectral]spade(instance|batch|syncbatch)KxK, SPADE's parameter-free norm and kernel (normalization.py).
  std::string norm_g = opt.text("norm_G");
  const bool spectral_g = norm_g.rfind("spectral", 0) == 0;
  if (spectral_g) norm_g = norm_g.substr(8);
  std::string norm;
  for (const auto& [theirs, ours] : std::vector<std::pair<std::string, std::string>>{
           {"spadeinstance", "instance"}, {"spadesyncbatch", "batch"}, {"spadebatch", "batch"}})
    if (norm_g.rfind(theirs, 0) == 0 && norm.empty()) {
      if (norm_g.substr(theirs.size()) != "3x3")
        opt.refuse("norm_G", "brainspade's SPADE convolutions are 3x3");
      norm = ours;
    }
  if (norm.empty()) opt.refuse("norm_G", "expected [spectral]spade(instance|batch|syncbatch)3x3");
  const bool spectral_e = spectral_instance(opt, "norm_E"), spectral_d = spectral_instance(opt, "norm_D");
  const int64_t ndf = opt.integer("ndf"), n_layers = opt.integer("n_layers_D"), num_d = opt.integer("num_D");

  add(out.fixed, "generator.label_channels", label_channels, "label_nc (+1 with contain_dontcare_label)");
  add(out.fixed, "generator.ngf", ngf, "ngf");
  add(out.fixed, "generator.z_dim", z_dim, "z_dim");
  add(out.fixed, "generator.num_upsampling_layers", up, "num_upsampling_layers");
  add(out.fixed, "generator.height", size[0], "new_size[0]");
  add(out.fixed, "generator.width", size[1], "new_size[1]");
  add(out.fixed, "generator.norm", norm, "norm_G");
  add(out.fixed, "generator.spectral", spectral_g, "norm_G");
  add(out.fixed, "generator.segmap_interpolation", std::string("nearest"), "code");
  add(out.fixed, "generator.output_activation",
      std::string(opt.flag("bound_normalization", false) ? "tanh" : "leaky_relu"), "bound_normalization");
  add(out.fixed, "generator.spade_hidden", int64_t{128}, "code");
  // Their style encoder is sized by ngf (not nef) and resizes every input to 256x256: six stride-2 layers to 4x4.
  add(out.fixed, "encoder.in_channels", int64_t{1}, "code");
  add(out.fixed, "encoder.ndf", ngf, "ngf (their encoder's width)");
  add(out.fixed, "encoder.z_dim", z_dim, "z_dim");
  add(out.fixed, "encoder.num_layers", int64_t{6}, "code");
  add(out.fixed, "encoder.height", int64_t{256}, "code (inputs resized to 256x256)");
  add(out.fixed, "encoder.width", int64_t{256}, "code (inputs resized to 256x256)");
  add(out.fixed, "encoder.spectral", spectral_e, "norm_E");
  add(out.fixed, "discriminator.label_channels", label_channels, "label_nc (+1 with contain_dontcare_label)");
  add(out.fixed, "discriminator.image_channels", int64_t{1}, "output_nc");
  add(out.fixed, "discriminator.ndf", ndf, "ndf");
  add(out.fixed, "discriminator.num_layers", n_layers, "n_layers_D");
  add(out.fixed, "discriminator.num_d", num_d, "num_D");
  add(out.fixed, "discriminator.downsample_kernel", int64_t{4}, "code");
  add(out.fixed, "discriminator.label_input", std::string("onehot"), "code (one-hot of the PV argmax)");
  add(out.fixed, "discriminator.spectral", spectral_d, "norm_D");
  out.modality_names = opt.has("sequences") ? opt.list("sequences") : std::vector<std::string>{"T1", "FLAIR"};
  return out;
}

}  // namespace brainspade
