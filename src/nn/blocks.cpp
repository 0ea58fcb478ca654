#include "brainspade/nn/blocks.h"

#include <cmath>

#include <ATen/CPUGeneratorImpl.h>

namespace brainspade::nn {

namespace F = torch::nn::functional;

torch::nn::GroupNorm make_group_norm(int64_t channels, int64_t groups, double eps) {
  TORCH_CHECK(groups >= 1 && channels % groups == 0, "GroupNorm needs the channel count to be divisible by the ",
              "number of groups; got ", channels, " channels and ", groups, " groups");
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(eps).affine(true));
}

torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim, double max_period) {
  TORCH_CHECK(t.dim() == 1, "timestep_embedding expects timesteps of shape [B]; got ", t.sizes());
  TORCH_CHECK(dim >= 2, "timestep_embedding needs dim >= 2; got ", dim);
  const int64_t half = dim / 2;
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(t.device());
  auto freqs = torch::exp(-std::log(max_period) * torch::arange(0, half, opts) / static_cast<double>(half));  // [half]
  auto args = t.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);                                     // [B, half]
  auto emb = torch::cat({torch::cos(args), torch::sin(args)}, 1);                                           // [B, 2·half]
  if (dim % 2 == 1) emb = torch::cat({emb, torch::zeros({emb.size(0), 1}, opts)}, 1);                       // [B, dim]
  return emb;
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale) {
  auto in_dtype = q.scalar_type();
  auto w = torch::matmul(q, k.transpose(1, 2)) * scale;  // [N, Lq, Lk]
  w = torch::softmax(w.to(torch::kFloat32), -1).to(in_dtype);
  return torch::matmul(w, v);  // [N, Lq, Dv]
}

torch::Tensor randn_like(const torch::Tensor& ref, const std::optional<torch::Generator>& generator) {
  if (!generator) return torch::randn(ref.sizes(), ref.options());
  auto gen_device = generator->device();
  auto t = torch::randn(ref.sizes(), c10::optional<torch::Generator>(*generator),
                        torch::TensorOptions().dtype(torch::kFloat32).device(gen_device));
  return t.to(ref.device(), ref.scalar_type());
}


void zero_parameters(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters()) p.zero_();
}

// ---------------------------------------------------------------------------------------------------------
ResBlockImpl::ResBlockImpl(const ResBlockOptions& o) : options(o) {
  TORCH_CHECK(o.in_channels() >= 1 && o.out_channels() >= 1, "ResBlock needs positive channel counts; got ",
              o.in_channels(), " -> ", o.out_channels());
  TORCH_CHECK(o.resample() == "none" || o.resample() == "up" || o.resample() == "down",
              "ResBlock resample must be none, up or down; got '", o.resample(), "'");
  TORCH_CHECK(o.dropout() >= 0.0 && o.dropout() < 1.0, "ResBlock dropout must be in [0, 1); got ", o.dropout());
  norm1 = register_module("norm1", make_group_norm(o.in_channels(), o.norm_groups(), o.norm_eps()));
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(o.in_channels(), o.out_channels(), 3).padding(1)));
  if (o.temb_channels() > 0) temb_proj = register_module("temb_proj", torch::nn::Linear(o.temb_channels(), o.out_channels()));
  norm2 = register_module("norm2", make_group_norm(o.out_channels(), o.norm_groups(), o.norm_eps()));
  dropout = register_module("dropout", torch::nn::Dropout(o.dropout()));
  conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(o.out_channels(), o.out_channels(), 3).padding(1)));
  if (o.zero_init_out()) zero_parameters(*conv2);
  if (o.in_channels() != o.out_channels())
    nin_shortcut = register_module("nin_shortcut", torch::nn::Conv2d(torch::nn::Conv2dOptions(o.in_channels(), o.out_channels(), 1)));
}

namespace {
torch::Tensor resample(const torch::Tensor& x, const std::string& mode) {
  if (mode == "down") return F::avg_pool2d(x, F::AvgPool2dFuncOptions(2).stride(2));  // [B, C, H/2, W/2]
  if (mode == "up")
    return F::interpolate(x, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest));
  return x;
}
}  // namespace

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& temb) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options.in_channels(), "ResBlock expects [B, ", options.in_channels(),
              ", H, W]; got ", x.sizes());
  auto h = torch::silu(norm1(x));
  h = resample(h, options.resample());
  auto skip = resample(x, options.resample());
  h = conv1(h);  // [B, Cout, H', W']
  if (temb_proj) {
    TORCH_CHECK(temb.defined() && temb.dim() == 2 && temb.size(1) == options.temb_channels(),
                "ResBlock with a time embedding expects temb [B, ", options.temb_channels(), "]; got ",
                temb.defined() ? temb.sizes() : c10::IntArrayRef{});
    h = h + temb_proj(torch::silu(temb)).unsqueeze(-1).unsqueeze(-1);  // + [B, Cout, 1, 1]
  }
  h = conv2(dropout(torch::silu(norm2(h))));
  if (nin_shortcut) skip = nin_shortcut(skip);
  return skip + h;
}

// ---------------------------------------------------------------------------------------------------------
AttnBlockImpl::AttnBlockImpl(const AttnBlockOptions& o) : options(o) {
  TORCH_CHECK(o.num_heads() >= 1 && o.channels() % o.num_heads() == 0,
              "AttnBlock needs channels divisible by num_heads; got ", o.channels(), " channels and ", o.num_heads(), " heads");
  norm = register_module("norm", make_group_norm(o.channels(), o.norm_groups(), o.norm_eps()));
  auto c1 = [&] { return torch::nn::Conv2d(torch::nn::Conv2dOptions(o.channels(), o.channels(), 1)); };
  q = register_module("q", c1());
  k = register_module("k", c1());
  v = register_module("v", c1());
  proj_out = register_module("proj_out", c1());
  if (o.zero_init_out()) zero_parameters(*proj_out);
}

torch::Tensor AttnBlockImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options.channels(), "AttnBlock expects [B, ", options.channels(),
              ", H, W]; got ", x.sizes());
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t nh = options.num_heads(), d = C / nh;
  auto h = norm(x);
  // [B, C, H, W] → [B·heads, H·W, d]
  auto tokens = [&](const torch::Tensor& t) { return t.reshape({B * nh, d, H * W}).transpose(1, 2); };
  auto out = attention(tokens(q(h)), tokens(k(h)), tokens(v(h)), 1.0 / std::sqrt(static_cast<double>(d)));  // [B·nh, HW, d]
  out = out.transpose(1, 2).reshape({B, C, H, W});
  return x + proj_out(out);
}

// ---------------------------------------------------------------------------------------------------------
CrossAttentionImpl::CrossAttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads_, int64_t dim_head_,
                                       double dropout)
    : heads(heads_), dim_head(dim_head_) {
  TORCH_CHECK(heads >= 1 && dim_head >= 1, "CrossAttention needs heads >= 1 and dim_head >= 1; got ", heads, ", ", dim_head);
  const int64_t inner = heads * dim_head, ctx = context_dim > 0 ? context_dim : query_dim;
  to_q = register_module("to_q", torch::nn::Linear(torch::nn::LinearOptions(query_dim, inner).bias(false)));
  to_k = register_module("to_k", torch::nn::Linear(torch::nn::LinearOptions(ctx, inner).bias(false)));
  to_v = register_module("to_v", torch::nn::Linear(torch::nn::LinearOptions(ctx, inner).bias(false)));
  to_out = register_module("to_out", torch::nn::Sequential(torch::nn::Linear(inner, query_dim), torch::nn::Dropout(dropout)));
}

torch::Tensor CrossAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  const auto& ctx = context.defined() ? context : x;
  const int64_t B = x.size(0), N = x.size(1), M = ctx.size(1);
  // [B, L, heads·d] → [B·heads, L, d]
  auto split = [&](const torch::Tensor& t, int64_t L) {
    return t.reshape({B, L, heads, dim_head}).permute({0, 2, 1, 3}).reshape({B * heads, L, dim_head});
  };
  auto out = attention(split(to_q(x), N), split(to_k(ctx), M), split(to_v(ctx), M),
                       1.0 / std::sqrt(static_cast<double>(dim_head)));  // [B·heads, N, d]
  out = out.reshape({B, heads, N, dim_head}).permute({0, 2, 1, 3}).reshape({B, N, heads * dim_head});
  return to_out->forward(out);
}

GEGLUImpl::GEGLUImpl(int64_t dim_in, int64_t dim_out) {
  proj = register_module("proj", torch::nn::Linear(dim_in, dim_out * 2));
}

torch::Tensor GEGLUImpl::forward(const torch::Tensor& x) {
  auto parts = proj(x).chunk(2, -1);
  return parts[0] * torch::gelu(parts[1]);
}

FeedForwardImpl::FeedForwardImpl(int64_t dim, double dropout) {
  net = register_module("net", torch::nn::Sequential(GEGLU(dim, 4 * dim), torch::nn::Dropout(dropout),
                                                     torch::nn::Linear(4 * dim, dim)));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) { return net->forward(x); }

BasicTransformerBlockImpl::BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t dim_head, int64_t context_dim,
                                                     double dropout) {
  attn1 = register_module("attn1", CrossAttention(dim, 0, heads, dim_head, dropout));
  ff = register_module("ff", FeedForward(dim, dropout));
  if (context_dim > 0) attn2 = register_module("attn2", CrossAttention(dim, context_dim, heads, dim_head, dropout));
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
  if (context_dim > 0) norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
  norm3 = register_module("norm3", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
}

torch::Tensor BasicTransformerBlockImpl::forward(const torch::Tensor& x_in, const torch::Tensor& context) {
  auto x = attn1(norm1(x_in)) + x_in;
  if (attn2) {
    TORCH_CHECK(context.defined() && context.dim() == 3, "the cross-attention block needs a context [B, M, D]");
    x = attn2(norm2(x), context) + x;
  }
  return ff(norm3(x)) + x;
}

// ---------------------------------------------------------------------------------------------------------
SpatialTransformerImpl::SpatialTransformerImpl(const SpatialTransformerOptions& o) : options(o) {
  TORCH_CHECK(o.num_heads() >= 1, "SpatialTransformer needs num_heads >= 1; got ", o.num_heads());
  int64_t dim_head = o.dim_head() > 0 ? o.dim_head() : o.channels() / o.num_heads();
  TORCH_CHECK(o.dim_head() > 0 || o.channels() % o.num_heads() == 0,
              "SpatialTransformer needs channels divisible by num_heads; got ", o.channels(), " and ", o.num_heads());
  options.dim_head(dim_head);
  const int64_t inner = o.num_heads() * dim_head;
  norm = register_module("norm", make_group_norm(o.channels(), o.norm_groups(), o.norm_eps()));
  proj_in = register_module("proj_in", torch::nn::Conv2d(torch::nn::Conv2dOptions(o.channels(), inner, 1)));
  transformer_blocks = register_module("transformer_blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.depth(); ++i)
    transformer_blocks->push_back(BasicTransformerBlock(inner, o.num_heads(), dim_head, o.context_dim(), o.dropout()));
  proj_out = register_module("proj_out", torch::nn::Conv2d(torch::nn::Conv2dOptions(inner, o.channels(), 1)));
  zero_parameters(*proj_out);
}

torch::Tensor SpatialTransformerImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options.channels(), "SpatialTransformer expects [B, ", options.channels(),
              ", H, W]; got ", x.sizes());
  const int64_t B = x.size(0), H = x.size(2), W = x.size(3);
  auto h = proj_in(norm(x));                            // [B, inner, H, W]
  const int64_t inner = h.size(1);
  h = h.reshape({B, inner, H * W}).transpose(1, 2);    // [B, H·W, inner]
  for (const auto& blk : *transformer_blocks) h = blk->as<BasicTransformerBlock>()->forward(h, context);
  h = h.transpose(1, 2).reshape({B, inner, H, W});     // [B, inner, H, W]
  return x + proj_out(h);
}

// ---------------------------------------------------------------------------------------------------------
DownsampleImpl::DownsampleImpl(const DownsampleOptions& o) : options(o) {
  if (o.with_conv())
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(o.channels(), o.channels(), 3)
                                                         .stride(2)
                                                         .padding(o.asymmetric_pad() ? 0 : 1)));
}

torch::Tensor DownsampleImpl::forward(const torch::Tensor& x) {
  if (!conv) return F::avg_pool2d(x, F::AvgPool2dFuncOptions(2).stride(2));
  if (options.asymmetric_pad()) return conv(F::pad(x, F::PadFuncOptions({0, 1, 0, 1})));  // [B, C, H+1, W+1] → [B, C, H/2, W/2]
  return conv(x);
}

UpsampleImpl::UpsampleImpl(int64_t channels, bool with_conv) {
  if (with_conv) conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, channels, 3).padding(1)));
}

torch::Tensor UpsampleImpl::forward(const torch::Tensor& x) {
  auto h = resample(x, "up");  // [B, C, 2H, 2W]
  return conv ? conv(h) : h;
}

}  // namespace brainspade::nn
