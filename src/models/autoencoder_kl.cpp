#include "brainspade/models/autoencoder_kl.h"

namespace brainspade {

void AutoencoderKLOptions::visit(ConfigVisitor& v) {
  v("in_channels", in_channels, "input/output channels (partial-volume maps)", Bounds::at_least(1));
  v("channels", channels, "width of each level; len-1 downsamplings by 2", Bounds::at_least(1));
  v("num_res_blocks", num_res_blocks, "residual blocks per level (encoder and decoder)", Bounds::at_least(1));
  v("latent_channels", latent_channels, "latent channels z", Bounds::at_least(1));
  v("mid_attention", mid_attention, "single-head self-attention in the mid blocks");
  v("norm_groups", norm_groups, "GroupNorm groups", Bounds::at_least(1));
  v("norm_eps", norm_eps, "GroupNorm epsilon", Bounds::positive());
  v("logvar_min", logvar_min, "lower clamp of the posterior log-variance");
  v("logvar_max", logvar_max, "upper clamp of the posterior log-variance");
  v.choice("output", output, {"raw", "softmax"},
           "what decoding returns: raw (trained as the PV map by L1; authors' default) or softmax over channels "
           "(needed by loss.reconstruction: dice)");
}

torch::Tensor Posterior::sample(std::optional<torch::Generator> generator) const {
  return mean + std() * nn::randn_like(mean, generator);
}

torch::Tensor Posterior::kl() const {
  // Kingma & Welling 2014, appendix B, for a diagonal Gaussian against N(0, I).
  auto per_item = 0.5 * (mean.pow(2) + torch::exp(logvar) - logvar - 1.0).sum({1, 2, 3});  // [B]
  return per_item.mean();
}

AutoencoderMidImpl::AutoencoderMidImpl(int64_t c, bool attention, int64_t groups, double eps) {
  auto rb = [&] { return nn::ResBlock(nn::ResBlockOptions(c, c).norm_groups(groups).norm_eps(eps)); };
  block_1 = register_module("block_1", rb());
  if (attention) attn_1 = register_module("attn_1", nn::AttnBlock(nn::AttnBlockOptions(c).norm_groups(groups).norm_eps(eps)));
  block_2 = register_module("block_2", rb());
}

torch::Tensor AutoencoderMidImpl::forward(const torch::Tensor& x) {
  auto h = block_1(x);
  if (attn_1) h = attn_1(h);
  return block_2(h);
}

namespace {
void check_options(const AutoencoderKLOptions& o) {
  TORCH_CHECK(!o.channels.empty(), "AutoencoderKL needs at least one level in channels");
  for (auto c : o.channels)
    TORCH_CHECK(c >= 1 && c % o.norm_groups == 0, "AutoencoderKL channels must be divisible by norm_groups (",
                o.norm_groups, "); got ", c);
  TORCH_CHECK(o.in_channels >= 1 && o.latent_channels >= 1 && o.num_res_blocks >= 1,
              "AutoencoderKL needs in_channels, latent_channels and num_res_blocks >= 1; got ", o.in_channels, ", ",
              o.latent_channels, ", ", o.num_res_blocks);
  TORCH_CHECK(o.logvar_min < o.logvar_max, "AutoencoderKL needs logvar_min < logvar_max; got ", o.logvar_min, " and ",
              o.logvar_max);
}
torch::nn::Conv2d conv3(int64_t in, int64_t out) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1));
}
torch::nn::Conv2d conv1x1(int64_t in, int64_t out) { return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1)); }
}  // namespace

VAEEncoderImpl::VAEEncoderImpl(const AutoencoderKLOptions& o) {
  check_options(o);
  const int64_t L = static_cast<int64_t>(o.channels.size());
  conv_in = register_module("conv_in", conv3(o.in_channels, o.channels[0]));
  down = register_module("down", torch::nn::ModuleList());
  int64_t ch = o.channels[0];
  for (int64_t i = 0; i < L; ++i) {
    auto level = AutoencoderLevel();
    level->block = level->register_module("block", torch::nn::ModuleList());
    for (int64_t j = 0; j < o.num_res_blocks; ++j) {
      level->block->push_back(nn::ResBlock(nn::ResBlockOptions(ch, o.channels[i]).norm_groups(o.norm_groups).norm_eps(o.norm_eps)));
      ch = o.channels[i];
    }
    if (i != L - 1) level->downsample = level->register_module("downsample", nn::Downsample(nn::DownsampleOptions(ch)));
    down->push_back(level);
  }
  mid = register_module("mid", AutoencoderMid(ch, o.mid_attention, o.norm_groups, o.norm_eps));
  norm_out = register_module("norm_out", nn::make_group_norm(ch, o.norm_groups, o.norm_eps));
  conv_out = register_module("conv_out", conv3(ch, o.latent_channels));
}

torch::Tensor VAEEncoderImpl::forward(const torch::Tensor& x) {
  auto h = conv_in(x);  // [B, ch0, H, W]
  for (const auto& m : *down) {
    auto level = m->as<AutoencoderLevel>();
    for (const auto& b : *level->block) h = b->as<nn::ResBlock>()->forward(h);
    if (level->downsample) h = level->downsample(h);  // [B, c, H/2, W/2]
  }
  h = mid(h);
  return conv_out(norm_out(h));  // [B, Z, h, w]
}

VAEDecoderImpl::VAEDecoderImpl(const AutoencoderKLOptions& o) {
  check_options(o);
  const int64_t L = static_cast<int64_t>(o.channels.size());
  int64_t ch = o.channels[L - 1];
  conv_in = register_module("conv_in", conv3(o.latent_channels, ch));
  mid = register_module("mid", AutoencoderMid(ch, o.mid_attention, o.norm_groups, o.norm_eps));
  std::vector<AutoencoderLevel> levels(L);
  for (int64_t i = L - 1; i >= 0; --i) {
    auto level = AutoencoderLevel();
    level->block = level->register_module("block", torch::nn::ModuleList());
    for (int64_t j = 0; j < o.num_res_blocks; ++j) {
      level->block->push_back(nn::ResBlock(nn::ResBlockOptions(ch, o.channels[i]).norm_groups(o.norm_groups).norm_eps(o.norm_eps)));
      ch = o.channels[i];
    }
    if (i != 0) level->upsample = level->register_module("upsample", nn::Upsample(ch, true));
    levels[i] = level;
  }
  up = register_module("up", torch::nn::ModuleList());
  for (auto& l : levels) up->push_back(l);
  norm_out = register_module("norm_out", nn::make_group_norm(ch, o.norm_groups, o.norm_eps));
  conv_out = register_module("conv_out", conv3(ch, o.in_channels));
}

torch::Tensor VAEDecoderImpl::forward(const torch::Tensor& z) {
  auto h = mid(conv_in(z));  // [B, c_last, h, w]
  for (int64_t i = static_cast<int64_t>(up->size()) - 1; i >= 0; --i) {
    auto level = up->ptr(i)->as<AutoencoderLevel>();
    for (const auto& b : *level->block) h = b->as<nn::ResBlock>()->forward(h);
    if (level->upsample) h = level->upsample(h);  // [B, c, 2h, 2w]
  }
  return conv_out(norm_out(h));  // [B, in, H, W]
}

AutoencoderKLImpl::AutoencoderKLImpl(const AutoencoderKLOptions& o) : options(o) {
  check_options(o);
  encoder = register_module("encoder", VAEEncoder(o));
  quant_conv_mu = register_module("quant_conv_mu", conv1x1(o.latent_channels, o.latent_channels));
  quant_conv_log_sigma = register_module("quant_conv_log_sigma", conv1x1(o.latent_channels, o.latent_channels));
  post_quant_conv = register_module("post_quant_conv", conv1x1(o.latent_channels, o.latent_channels));
  decoder = register_module("decoder", VAEDecoder(o));
}

int64_t AutoencoderKLImpl::downsampling_factor() const { return int64_t{1} << (options.channels.size() - 1); }

Posterior AutoencoderKLImpl::encode(const torch::Tensor& x) {
  const int64_t f = downsampling_factor();
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options.in_channels, "AutoencoderKL.encode expects [B, ",
              options.in_channels, ", H, W]; got ", x.sizes());
  TORCH_CHECK(x.size(2) % f == 0 && x.size(3) % f == 0, "AutoencoderKL.encode needs H and W divisible by ", f,
              "; got ", x.sizes());
  auto h = encoder(x);  // [B, Z, H/f, W/f]
  Posterior p;
  p.mean = quant_conv_mu(h);
  p.logvar = torch::clamp(quant_conv_log_sigma(h), options.logvar_min, options.logvar_max);
  return p;
}

torch::Tensor AutoencoderKLImpl::decode_raw(const torch::Tensor& z) {
  TORCH_CHECK(z.dim() == 4 && z.size(1) == options.latent_channels, "AutoencoderKL.decode expects [B, ",
              options.latent_channels, ", h, w]; got ", z.sizes());
  return decoder(post_quant_conv(z));
}

torch::Tensor AutoencoderKLImpl::decode(const torch::Tensor& z) {
  auto raw = decode_raw(z);
  return options.output == "softmax" ? torch::softmax(raw, 1) : raw;
}

AutoencoderOutput AutoencoderKLImpl::forward(const torch::Tensor& x, std::optional<torch::Generator> generator) {
  AutoencoderOutput out;
  out.posterior = encode(x);
  out.reconstruction = decode(out.posterior.sample(generator));
  return out;
}

}  // namespace brainspade
