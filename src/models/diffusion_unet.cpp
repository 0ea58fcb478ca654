#include "brainspade/models/diffusion_unet.h"

#include <algorithm>

namespace brainspade {

void DiffusionUNetOptions::visit(ConfigVisitor& v) {
  v("in_channels", in_channels, "latent channels in (without conditioning channels)", Bounds::at_least(1));
  v("out_channels", out_channels, "channels out", Bounds::at_least(1));
  v("model_channels", model_channels, "width of level 0", Bounds::at_least(1));
  v("channel_mult", channel_mult, "width multiplier per level; len-1 downsamplings", Bounds::at_least(1));
  v("num_res_blocks", num_res_blocks, "ResBlocks per level (decoder has one more)", Bounds::at_least(1));
  v("attention_levels", attention_levels, "levels (0 = full resolution) with attention", Bounds::at_least(0));
  v("mid_attention", mid_attention, "attention in the middle block");
  v("num_heads", num_heads, "attention heads", Bounds::at_least(1));
  v("transformer_depth", transformer_depth, "transformer blocks per SpatialTransformer", Bounds::at_least(1));
  v.choice("conditioning", conditioning, {"none", "concat", "crossattn", "hybrid"},
           "how the conditioning vector enters the network");
  v("cond_dim", cond_dim, "length of the conditioning vector", Bounds::at_least(0));
  v("null_cond_value", null_cond_value, "fill value of the unconditional input (classifier-free guidance)");
  v("cond_embedding", cond_embedding,
    "also add an MLP of the condition vector to the timestep embedding, so that it reaches every ResBlock (not in "
    "the authors' models)");
  v("resblock_updown", resblock_updown, "resample with ResBlocks (avg-pool/nearest) instead of convs");
  v("dropout", dropout, "dropout in ResBlocks and transformers", Bounds::range(0.0, 0.99));
  v("norm_groups", norm_groups, "GroupNorm groups", Bounds::at_least(1));
  v("norm_eps", norm_eps, "GroupNorm epsilon", Bounds::positive());
}

int64_t DiffusionUNetOptions::concat_channels() const {
  return (conditioning == "concat" || conditioning == "hybrid") ? cond_dim : 0;
}
int64_t DiffusionUNetOptions::context_dim() const {
  return (conditioning == "crossattn" || conditioning == "hybrid") ? cond_dim : 0;
}

void EmbedSequentialImpl::append(std::shared_ptr<torch::nn::Module> m) {
  register_module(std::to_string(layers.size()), m);
  layers.push_back(std::move(m));
}

torch::Tensor EmbedSequentialImpl::forward(torch::Tensor h, const torch::Tensor& emb, const torch::Tensor& context) {
  for (auto& m : layers) {
    if (auto* rb = m->as<nn::ResBlock>()) {
      h = rb->forward(h, emb);
    } else if (auto* st = m->as<nn::SpatialTransformer>()) {
      h = st->forward(h, context);
    } else if (auto* ab = m->as<nn::AttnBlock>()) {
      h = ab->forward(h);
    } else if (auto* c = m->as<torch::nn::Conv2d>()) {
      h = c->forward(h);
    } else if (auto* d = m->as<nn::Downsample>()) {
      h = d->forward(h);
    } else if (auto* u = m->as<nn::Upsample>()) {
      h = u->forward(h);
    } else {
      TORCH_CHECK(false, "EmbedSequential holds a module it cannot call: ", m->name());
    }
  }
  return h;
}

DiffusionUNetImpl::DiffusionUNetImpl(const DiffusionUNetOptions& o) : options(o) {
  const int64_t L = static_cast<int64_t>(o.channel_mult.size());
  TORCH_CHECK(L >= 1, "DiffusionUNet needs at least one level in channel_mult");
  TORCH_CHECK(o.conditioning == "none" || o.cond_dim >= 1, "DiffusionUNet conditioning '", o.conditioning,
              "' needs cond_dim >= 1; got ", o.cond_dim);
  TORCH_CHECK(o.conditioning == "none" || o.conditioning == "concat" || o.conditioning == "crossattn" ||
                  o.conditioning == "hybrid",
              "DiffusionUNet conditioning must be none, concat, crossattn or hybrid; got '", o.conditioning, "'");
  for (auto m : o.channel_mult) {
    TORCH_CHECK(m >= 1 && (o.model_channels * m) % o.norm_groups == 0,
                "DiffusionUNet level widths model_channels·mult must be divisible by norm_groups (", o.norm_groups,
                "); got ", o.model_channels, "·", m);
    TORCH_CHECK((o.model_channels * m) % o.num_heads == 0, "DiffusionUNet level widths must be divisible by num_heads (",
                o.num_heads, "); got ", o.model_channels * m);
  }
  for (auto l : o.attention_levels)
    TORCH_CHECK(l >= 0 && l < L, "DiffusionUNet attention_levels must name levels 0..", L - 1, "; got ", l);

  const int64_t mc = o.model_channels, temb = 4 * mc, ctx = o.context_dim();
  auto res = [&](int64_t in, int64_t out, const std::string& resample) {
    return nn::ResBlock(nn::ResBlockOptions(in, out)
                            .temb_channels(temb)
                            .dropout(o.dropout)
                            .norm_groups(o.norm_groups)
                            .norm_eps(o.norm_eps)
                            .zero_init_out(true)
                            .resample(resample));
  };
  auto attn = [&](int64_t ch) -> std::shared_ptr<torch::nn::Module> {
    if (ctx > 0)
      return nn::SpatialTransformer(nn::SpatialTransformerOptions(ch, o.num_heads)
                                        .depth(o.transformer_depth)
                                        .context_dim(ctx)
                                        .dropout(o.dropout)
                                        .norm_groups(o.norm_groups)
                                        .norm_eps(o.norm_eps))
          .ptr();
    return nn::AttnBlock(nn::AttnBlockOptions(ch).num_heads(o.num_heads).norm_groups(o.norm_groups).norm_eps(o.norm_eps).zero_init_out(true))
        .ptr();
  };
  auto has_attn = [&](int64_t level) {
    return std::find(o.attention_levels.begin(), o.attention_levels.end(), level) != o.attention_levels.end();
  };

  time_embed = register_module("time_embed", torch::nn::Sequential(torch::nn::Linear(mc, temb), torch::nn::SiLU(),
                                                                   torch::nn::Linear(temb, temb)));
  TORCH_CHECK(!o.cond_embedding || o.conditioning != "none",
              "DiffusionUNet cond_embedding needs a conditioning other than none");
  if (o.cond_embedding)
    label_emb = register_module("label_emb", torch::nn::Sequential(torch::nn::Linear(o.cond_dim, temb), torch::nn::SiLU(),
                                                                   torch::nn::Linear(temb, temb)));
  input_blocks = register_module("input_blocks", torch::nn::ModuleList());
  {
    EmbedSequential first;
    first->append(torch::nn::Conv2d(torch::nn::Conv2dOptions(o.in_channels + o.concat_channels(), mc, 3).padding(1)).ptr());
    input_blocks->push_back(first);
  }
  std::vector<int64_t> skip_channels{mc};
  int64_t ch = mc;
  for (int64_t level = 0; level < L; ++level) {
    for (int64_t j = 0; j < o.num_res_blocks; ++j) {
      EmbedSequential blk;
      blk->append(res(ch, mc * o.channel_mult[level], "none").ptr());
      ch = mc * o.channel_mult[level];
      if (has_attn(level)) blk->append(attn(ch));
      input_blocks->push_back(blk);
      skip_channels.push_back(ch);
    }
    if (level != L - 1) {
      EmbedSequential blk;
      if (o.resblock_updown)
        blk->append(res(ch, ch, "down").ptr());
      else
        blk->append(nn::Downsample(nn::DownsampleOptions(ch).asymmetric_pad(false)).ptr());
      input_blocks->push_back(blk);
      skip_channels.push_back(ch);
    }
  }
  middle_block = register_module("middle_block", EmbedSequential());
  middle_block->append(res(ch, ch, "none").ptr());
  if (o.mid_attention) middle_block->append(attn(ch));
  middle_block->append(res(ch, ch, "none").ptr());

  output_blocks = register_module("output_blocks", torch::nn::ModuleList());
  for (int64_t level = L - 1; level >= 0; --level) {
    for (int64_t i = 0; i <= o.num_res_blocks; ++i) {
      const int64_t skip = skip_channels.back();
      skip_channels.pop_back();
      EmbedSequential blk;
      blk->append(res(ch + skip, mc * o.channel_mult[level], "none").ptr());
      ch = mc * o.channel_mult[level];
      if (has_attn(level)) blk->append(attn(ch));
      if (level > 0 && i == o.num_res_blocks) {
        if (o.resblock_updown)
          blk->append(res(ch, ch, "up").ptr());
        else
          blk->append(nn::Upsample(ch, true).ptr());
      }
      output_blocks->push_back(blk);
    }
  }
  auto final_conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(ch, o.out_channels, 3).padding(1));
  nn::zero_parameters(*final_conv);
  out = register_module("out", torch::nn::Sequential(nn::make_group_norm(ch, o.norm_groups, o.norm_eps),
                                                     torch::nn::SiLU(), final_conv));
}

torch::Tensor DiffusionUNetImpl::forward(const torch::Tensor& x, const torch::Tensor& t_in, const torch::Tensor& cond) {
  const auto& o = options;
  const int64_t f = int64_t{1} << (o.channel_mult.size() - 1);
  TORCH_CHECK(x.dim() == 4 && x.size(1) == o.in_channels, "DiffusionUNet expects x [B, ", o.in_channels,
              ", H, W]; got ", x.sizes());
  TORCH_CHECK(x.size(2) % f == 0 && x.size(3) % f == 0, "DiffusionUNet needs H and W divisible by ", f, "; got ",
              x.sizes());
  const int64_t B = x.size(0), H = x.size(2), W = x.size(3);
  auto t = t_in.dim() == 0 ? t_in.reshape({1}).expand({B}) : t_in;
  TORCH_CHECK(t.dim() == 1 && t.size(0) == B, "DiffusionUNet expects timesteps [B] or a scalar; got ", t_in.sizes());
  if (o.conditioning == "none") {
    TORCH_CHECK(!cond.defined(), "DiffusionUNet was built without conditioning but received cond ", cond.sizes());
  } else {
    TORCH_CHECK(cond.defined() && cond.dim() == 2 && cond.size(0) == B && cond.size(1) == o.cond_dim,
                "DiffusionUNet with conditioning '", o.conditioning, "' expects cond [", B, ", ", o.cond_dim,
                "] (use null_cond() for the unconditional input); got ",
                cond.defined() ? cond.sizes() : c10::IntArrayRef{});
  }

  auto emb = time_embed->forward(nn::timestep_embedding(t.to(x.device()), o.model_channels).to(x.scalar_type()));  // [B, 4mc]
  if (label_emb) emb = emb + label_emb->forward(cond.to(x.device(), x.scalar_type()));                          // [B, 4mc]
  auto h = x;
  if (o.concat_channels() > 0) {
    auto planes = cond.to(x.device(), x.scalar_type()).reshape({B, o.cond_dim, 1, 1}).expand({B, o.cond_dim, H, W});
    h = torch::cat({x, planes}, 1);  // [B, in + K, H, W]
  }
  torch::Tensor context;
  if (o.context_dim() > 0) context = cond.to(x.device(), x.scalar_type()).unsqueeze(1);  // [B, 1, K]

  std::vector<torch::Tensor> skips;
  for (const auto& m : *input_blocks) {
    h = m->as<EmbedSequential>()->forward(h, emb, context);
    skips.push_back(h);
  }
  h = middle_block->forward(h, emb, context);  // [B, mc·mult[-1], H/f, W/f]
  for (const auto& m : *output_blocks) {
    h = torch::cat({h, skips.back()}, 1);  // [B, ch + skip, h, w]
    skips.pop_back();
    h = m->as<EmbedSequential>()->forward(h, emb, context);
  }
  return out->forward(h);  // [B, out_channels, H, W]
}

torch::Tensor DiffusionUNetImpl::null_cond(int64_t batch, torch::Device device) const {
  return torch::full({batch, options.cond_dim}, options.null_cond_value, torch::TensorOptions().device(device));
}

torch::Tensor DiffusionUNetImpl::forward_guided(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond,
                                                double scale, const torch::Tensor& uncond) {
  TORCH_CHECK(options.conditioning != "none", "classifier-free guidance needs a conditioned DiffusionUNet");
  const int64_t B = x.size(0);
  auto tt = t.dim() == 0 ? t.reshape({1}).expand({B}) : t;
  auto u = uncond.defined() ? uncond.to(cond.device(), cond.scalar_type()) : null_cond(B, cond.device()).to(cond.scalar_type());
  TORCH_CHECK(u.sizes() == cond.sizes(), "forward_guided: uncond ", u.sizes(), " must have the shape of cond ", cond.sizes());
  auto both = forward(torch::cat({x, x}, 0), torch::cat({tt, tt}, 0), torch::cat({u, cond}, 0));  // [2B, out, H, W]
  auto out_u = both.slice(0, 0, B), out_c = both.slice(0, B, 2 * B);
  return out_u + scale * (out_c - out_u);
}

}  // namespace brainspade
