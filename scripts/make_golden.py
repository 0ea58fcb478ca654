#!/usr/bin/python3
"""Writes golden tensors for the C++ parity tests (tests/test_label_nets.cpp, tests/test_schedulers.cpp).

Run with Debian's /usr/bin/python3 (torch 1.13, the same libtorch as the C++ build):
    /usr/bin/python3 scripts/make_golden.py [--out tests/data/golden]

The reference functions below are written from the published descriptions (taming/CompVis ResnetBlock and
AttnBlock, CompVis timestep_embedding and SpatialTransformer, Ho et al. 2020 eq. 7, Song et al. 2021
eq. 12/16) in plain torch.nn.functional, independent of the C++ code's arrangement. Each file is a dict of
tensors: "w.<C++ parameter name>" for weights, other keys for inputs and outputs.
"""
import argparse
import math
import os

import torch
import torch.nn.functional as F

G = torch.Generator().manual_seed(20240611)


def rnd(*shape, scale=1.0):
    return torch.randn(*shape, generator=G) * scale


def norm_params(prefix, c, d):
    d[f"w.{prefix}.weight"] = 1.0 + rnd(c, scale=0.1)
    d[f"w.{prefix}.bias"] = rnd(c, scale=0.1)


def conv_params(prefix, cin, cout, k, d, bias=True):
    d[f"w.{prefix}.weight"] = rnd(cout, cin, k, k, scale=1.0 / math.sqrt(cin * k * k))
    if bias:
        d[f"w.{prefix}.bias"] = rnd(cout, scale=0.1)


def linear_params(prefix, cin, cout, d, bias=True):
    d[f"w.{prefix}.weight"] = rnd(cout, cin, scale=1.0 / math.sqrt(cin))
    if bias:
        d[f"w.{prefix}.bias"] = rnd(cout, scale=0.1)


def gn(x, d, prefix, groups=32):
    return F.group_norm(x, groups, d[f"w.{prefix}.weight"], d[f"w.{prefix}.bias"], 1e-6)


def conv(x, d, prefix, padding=0):
    return F.conv2d(x, d[f"w.{prefix}.weight"], d.get(f"w.{prefix}.bias"), padding=padding)


def lin(x, d, prefix):
    return F.linear(x, d[f"w.{prefix}.weight"], d.get(f"w.{prefix}.bias"))


def golden_resblock():
    d = {}
    cin, cout, tc = 16, 24, 16  # 8 groups keep the file small
    norm_params("norm1", cin, d)
    conv_params("conv1", cin, cout, 3, d)
    linear_params("temb_proj", tc, cout, d)
    norm_params("norm2", cout, d)
    conv_params("conv2", cout, cout, 3, d)
    conv_params("nin_shortcut", cin, cout, 1, d)
    x, temb = rnd(2, cin, 8, 10), rnd(2, tc)
    h = conv(F.silu(gn(x, d, "norm1", 8)), d, "conv1", padding=1)
    h = h + lin(F.silu(temb), d, "temb_proj")[:, :, None, None]
    h = conv(F.silu(gn(h, d, "norm2", 8)), d, "conv2", padding=1)
    d.update({"x": x, "temb": temb, "out": conv(x, d, "nin_shortcut") + h})
    return d


def golden_attnblock():
    d = {}
    c = 32
    norm_params("norm", c, d)
    for name in ("q", "k", "v", "proj_out"):
        conv_params(name, c, c, 1, d)
    x = rnd(2, c, 6, 8)
    h = gn(x, d, "norm")
    q, k, v = conv(h, d, "q"), conv(h, d, "k"), conv(h, d, "v")
    b, _, hh, ww = q.shape
    q = q.reshape(b, c, hh * ww).permute(0, 2, 1)  # b, hw, c
    k = k.reshape(b, c, hh * ww)  # b, c, hw
    w = torch.softmax(torch.bmm(q, k) * (c ** -0.5), dim=2)  # b, hw(query), hw(key)
    v = v.reshape(b, c, hh * ww)
    o = torch.bmm(v, w.permute(0, 2, 1)).reshape(b, c, hh, ww)
    d.update({"x": x, "out": x + conv(o, d, "proj_out")})
    return d


def ref_timestep_embedding(t, dim, max_period=10000.0):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def golden_timestep_embedding():
    t = torch.tensor([0, 1, 10, 250, 500, 999], dtype=torch.int64)
    return {"t": t, "emb32": ref_timestep_embedding(t, 32), "emb33": ref_timestep_embedding(t, 33)}


def ref_mha(x, ctx, d, prefix, heads):
    q, k, v = lin(x, d, f"{prefix}.to_q"), lin(ctx, d, f"{prefix}.to_k"), lin(ctx, d, f"{prefix}.to_v")
    b, n, inner = q.shape
    dh = inner // heads
    split = lambda t: t.reshape(b, t.shape[1], heads, dh).transpose(1, 2)  # b, heads, len, dh
    q, k, v = split(q), split(k), split(v)
    w = torch.einsum("bhid,bhjd->bhij", q, k) * dh ** -0.5
    o = torch.einsum("bhij,bhjd->bhid", w.softmax(dim=-1), v)
    o = o.transpose(1, 2).reshape(b, n, inner)
    return lin(o, d, f"{prefix}.to_out.0")


def golden_transformer():
    d = {}
    c, heads, ctx_dim = 32, 2, 3
    norm_params("norm", c, d)
    conv_params("proj_in", c, c, 1, d)
    p = "transformer_blocks.0"
    for a, kv_in in (("attn1", c), ("attn2", ctx_dim)):
        linear_params(f"{p}.{a}.to_q", c, c, d, bias=False)
        linear_params(f"{p}.{a}.to_k", kv_in, c, d, bias=False)
        linear_params(f"{p}.{a}.to_v", kv_in, c, d, bias=False)
        linear_params(f"{p}.{a}.to_out.0", c, c, d)
    linear_params(f"{p}.ff.net.0.proj", c, 8 * c, d)
    linear_params(f"{p}.ff.net.2", 4 * c, c, d)
    for n in ("norm1", "norm2", "norm3"):
        norm_params(f"{p}.{n}", c, d)
    conv_params("proj_out", c, c, 1, d)  # random here; the C++ constructor zero-initialises it
    x, context = rnd(2, c, 4, 6), rnd(2, 1, ctx_dim)
    ln = lambda t, n: F.layer_norm(t, (c,), d[f"w.{p}.{n}.weight"], d[f"w.{p}.{n}.bias"], 1e-5)
    b, _, hh, ww = x.shape
    h = conv(gn(x, d, "norm"), d, "proj_in")
    h = h.permute(0, 2, 3, 1).reshape(b, hh * ww, c)
    h = ref_mha(ln(h, "norm1"), ln(h, "norm1"), d, f"{p}.attn1", heads) + h
    h = ref_mha(ln(h, "norm2"), context, d, f"{p}.attn2", heads) + h
    a, gate = lin(ln(h, "norm3"), d, f"{p}.ff.net.0.proj").chunk(2, dim=-1)
    h = lin(a * F.gelu(gate), d, f"{p}.ff.net.2") + h
    h = h.reshape(b, hh, ww, c).permute(0, 3, 1, 2)
    d.update({"x": x, "context": context, "out": x + conv(h, d, "proj_out")})
    return d


def scaled_linear_alphas_cumprod(T=1000, b0=0.0015, b1=0.0195):
    betas = torch.linspace(b0 ** 0.5, b1 ** 0.5, T, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0)


def golden_ddpm_step():
    ab = scaled_linear_alphas_cumprod()
    t = 600
    x_t, eps = rnd(2, 3, 6, 8), rnd(2, 3, 6, 8)
    noise = torch.randn(2, 3, 6, 8, generator=torch.Generator().manual_seed(1234))
    a_t, a_prev = ab[t].item(), ab[t - 1].item()
    beta_t = 1.0 - a_t / a_prev
    x0 = (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    mean = (math.sqrt(a_prev) * beta_t / (1 - a_t)) * x0 + (math.sqrt(1 - beta_t) * (1 - a_prev) / (1 - a_t)) * x_t
    var = beta_t * (1 - a_prev) / (1 - a_t)
    return {"t": torch.tensor(t), "sample": x_t, "model_output": eps, "noise_seed1234": noise,
            "pred_x0": x0, "prev_sample": mean + math.sqrt(var) * noise, "alphas_cumprod": ab}


def golden_ddim_step():
    ab = scaled_linear_alphas_cumprod()
    S, T = 50, 1000
    c = T // S
    steps = [s + 1 for s in range(0, T, c)]  # CompVis uniform grid
    alphas_prev = [ab[0].item()] + [ab[s].item() for s in steps[:-1]]
    out = {"alphas_cumprod": ab}
    for name, idx, eta in (("t21_eta1", 1, 1.0), ("t1_eta1", 0, 1.0), ("t981_eta0", S - 1, 0.0)):
        t = steps[idx]
        a_t, a_prev = ab[t].item(), alphas_prev[idx]
        x_t, eps = rnd(2, 3, 6, 8), rnd(2, 3, 6, 8)
        noise = torch.randn(2, 3, 6, 8, generator=torch.Generator().manual_seed(99))
        sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t)) * math.sqrt(1 - a_t / a_prev)
        x0 = (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        prev = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev - sigma ** 2) * eps + sigma * noise
        out.update({f"{name}.t": torch.tensor(t), f"{name}.sample": x_t, f"{name}.model_output": eps,
                    f"{name}.prev_sample": prev, f"{name}.pred_x0": x0})
    return out


# ---------------------------------------------------------------------------------------------------------
# Whole tiny networks. Weights are not stored: both sides fill every parameter, in sorted-name order, from
# torch.Generator().manual_seed(seed) (the C++ CPU generator draws the same numbers): ".weight"/".bias"
# vectors get 1 + 0.1·z / 0.1·z, matrices and kernels z/√fan_in. Parameters are requested by name through
# P(name, shape); a first pass with zeros collects names and shapes.
class Params:
    def __init__(self):
        self.shapes, self.values = {}, None

    def __call__(self, name, shape):
        shape = tuple(shape)
        if self.values is None:
            self.shapes[name] = shape
            return torch.zeros(shape)
        assert self.values[name].shape == shape, name
        return self.values[name]

    def fill(self, seed):
        g = torch.Generator().manual_seed(seed)
        self.values = {}
        for name in sorted(self.shapes):
            shape = self.shapes[name]
            z = torch.randn(shape, generator=g)
            if len(shape) == 1:
                z = 1.0 + 0.1 * z if name.endswith(".weight") else 0.1 * z
            else:
                z = z / math.sqrt(math.prod(shape[1:]))
            self.values[name] = z


def p_gn(P, x, pre, groups):
    c = x.shape[1]
    return F.group_norm(x, groups, P(pre + ".weight", (c,)), P(pre + ".bias", (c,)), 1e-6)


def p_conv(P, x, pre, cout, k, stride=1, padding=0):
    w = P(pre + ".weight", (cout, x.shape[1], k, k))
    return F.conv2d(x, w, P(pre + ".bias", (cout,)), stride=stride, padding=padding)


def p_lin(P, x, pre, cout, bias=True):
    w = P(pre + ".weight", (cout, x.shape[-1]))
    return F.linear(x, w, P(pre + ".bias", (cout,)) if bias else None)


def p_resblock(P, pre, x, emb, cout, groups, resample="none"):
    cin = x.shape[1]
    h = F.silu(p_gn(P, x, pre + ".norm1", groups))
    if resample == "down":
        h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
    elif resample == "up":
        h, x = F.interpolate(h, scale_factor=2.0, mode="nearest"), F.interpolate(x, scale_factor=2.0, mode="nearest")
    h = p_conv(P, h, pre + ".conv1", cout, 3, padding=1)
    if emb is not None:
        h = h + p_lin(P, F.silu(emb), pre + ".temb_proj", cout)[:, :, None, None]
    h = p_conv(P, F.silu(p_gn(P, h, pre + ".norm2", groups)), pre + ".conv2", cout, 3, padding=1)
    if cin != cout:
        x = p_conv(P, x, pre + ".nin_shortcut", cout, 1)
    return x + h


def p_vae_attn(P, pre, x, groups):
    b, c, hh, ww = x.shape
    h = p_gn(P, x, pre + ".norm", groups)
    q, k, v = (p_conv(P, h, f"{pre}.{n}", c, 1).reshape(b, c, hh * ww) for n in ("q", "k", "v"))
    w = torch.softmax(torch.einsum("bci,bcj->bij", q, k) * c ** -0.5, dim=-1)
    o = torch.einsum("bij,bcj->bci", w, v).reshape(b, c, hh, ww)
    return x + p_conv(P, o, pre + ".proj_out", c, 1)


def p_mha(P, pre, x, ctx, heads):
    inner = x.shape[-1]
    q, k, v = p_lin(P, x, pre + ".to_q", inner, False), p_lin(P, ctx, pre + ".to_k", inner, False), p_lin(P, ctx, pre + ".to_v", inner, False)
    b, n, _ = q.shape
    dh = inner // heads
    split = lambda t: t.reshape(b, t.shape[1], heads, dh).transpose(1, 2)
    w = torch.einsum("bhid,bhjd->bhij", split(q), split(k)) * dh ** -0.5
    o = torch.einsum("bhij,bhjd->bhid", w.softmax(-1), split(v)).transpose(1, 2).reshape(b, n, inner)
    return p_lin(P, o, pre + ".to_out.0", inner)


def p_transformer(P, pre, x, ctx, heads, groups):
    b, c, hh, ww = x.shape
    h = p_conv(P, p_gn(P, x, pre + ".norm", groups), pre + ".proj_in", c, 1)
    h = h.permute(0, 2, 3, 1).reshape(b, hh * ww, c)
    t = pre + ".transformer_blocks.0"
    ln = lambda u, n: F.layer_norm(u, (c,), P(f"{t}.{n}.weight", (c,)), P(f"{t}.{n}.bias", (c,)), 1e-5)
    u = ln(h, "norm1")
    h = p_mha(P, t + ".attn1", u, u, heads) + h
    h = p_mha(P, t + ".attn2", ln(h, "norm2"), ctx, heads) + h
    a, gate = p_lin(P, ln(h, "norm3"), t + ".ff.net.0.proj", 8 * c).chunk(2, dim=-1)
    h = p_lin(P, a * F.gelu(gate), t + ".ff.net.2", c) + h
    return x + p_conv(P, h.reshape(b, hh, ww, c).permute(0, 3, 1, 2), pre + ".proj_out", c, 1)


def ref_tiny_unet(P, x, t, cond, mc=16, mult=(1, 2), nrb=1, attn=(1,), heads=2, groups=8, cond_emb=False):
    """CompVis openaimodel UNet, resblock_updown, hybrid conditioning, attention also in the middle; with cond_emb
    the condition also passes through an MLP added to the timestep embedding (CompVis num_classes="sequential")."""
    emb = p_lin(P, F.silu(p_lin(P, ref_timestep_embedding(t, mc), "time_embed.0", 4 * mc)), "time_embed.2", 4 * mc)
    if cond_emb:
        emb = emb + p_lin(P, F.silu(p_lin(P, cond, "label_emb.0", 4 * mc)), "label_emb.2", 4 * mc)
    b, _, hh, ww = x.shape
    ctx = cond[:, None, :]
    h = torch.cat([x, cond[:, :, None, None].expand(b, cond.shape[1], hh, ww)], dim=1)
    h = p_conv(P, h, "input_blocks.0.0", mc, 3, padding=1)
    hs, idx = [h], 1
    for level, m in enumerate(mult):
        for _ in range(nrb):
            h = p_resblock(P, f"input_blocks.{idx}.0", h, emb, mc * m, groups)
            if level in attn:
                h = p_transformer(P, f"input_blocks.{idx}.1", h, ctx, heads, groups)
            hs.append(h)
            idx += 1
        if level != len(mult) - 1:
            h = p_resblock(P, f"input_blocks.{idx}.0", h, emb, h.shape[1], groups, "down")
            hs.append(h)
            idx += 1
    h = p_resblock(P, "middle_block.0", h, emb, h.shape[1], groups)
    h = p_transformer(P, "middle_block.1", h, ctx, heads, groups)
    h = p_resblock(P, "middle_block.2", h, emb, h.shape[1], groups)
    idx = 0
    for level in reversed(range(len(mult))):
        for i in range(nrb + 1):
            h = torch.cat([h, hs.pop()], dim=1)
            h = p_resblock(P, f"output_blocks.{idx}.0", h, emb, mc * mult[level], groups)
            k = 1
            if level in attn:
                h = p_transformer(P, f"output_blocks.{idx}.1", h, ctx, heads, groups)
                k = 2
            if level > 0 and i == nrb:
                h = p_resblock(P, f"output_blocks.{idx}.{k}", h, emb, h.shape[1], groups, "up")
            idx += 1
    return p_conv(P, F.silu(p_gn(P, h, "out.0", groups)), "out.2", x.shape[1], 3, padding=1)


def ref_tiny_vae(P, x, channels=(16, 32), nrb=1, z=3, groups=8):
    """taming/brainSPADE AutoencoderKL: returns mean, logvar and decode(mean)."""
    h = p_conv(P, x, "encoder.conv_in", channels[0], 3, padding=1)
    for i, c in enumerate(channels):
        for j in range(nrb):
            h = p_resblock(P, f"encoder.down.{i}.block.{j}", h, None, c, groups)
        if i != len(channels) - 1:
            h = p_conv(P, F.pad(h, (0, 1, 0, 1)), f"encoder.down.{i}.downsample.conv", c, 3, stride=2)

    def mid(pre, h):
        h = p_resblock(P, pre + ".block_1", h, None, h.shape[1], groups)
        h = p_vae_attn(P, pre + ".attn_1", h, groups)
        return p_resblock(P, pre + ".block_2", h, None, h.shape[1], groups)

    h = mid("encoder.mid", h)
    h = p_conv(P, p_gn(P, h, "encoder.norm_out", groups), "encoder.conv_out", z, 3, padding=1)
    mean = p_conv(P, h, "quant_conv_mu", z, 1)
    logvar = torch.clamp(p_conv(P, h, "quant_conv_log_sigma", z, 1), -30.0, 20.0)
    h = p_conv(P, p_conv(P, mean, "post_quant_conv", z, 1), "decoder.conv_in", channels[-1], 3, padding=1)
    h = mid("decoder.mid", h)
    for i in reversed(range(len(channels))):
        for j in range(nrb):
            h = p_resblock(P, f"decoder.up.{i}.block.{j}", h, None, channels[i], groups)
        if i != 0:
            h = p_conv(P, F.interpolate(h, scale_factor=2.0, mode="nearest"), f"decoder.up.{i}.upsample.conv", h.shape[1], 3, padding=1)
    rec = p_conv(P, p_gn(P, h, "decoder.norm_out", groups), "decoder.conv_out", x.shape[1], 3, padding=1)
    return mean, logvar, rec


def run_twice(fn, seed, *inputs):
    P = Params()
    fn(P, *inputs)
    P.fill(seed)
    with torch.no_grad():
        out = fn(P, *inputs)
    return P, out


def golden_tiny_unet():
    x, t = rnd(2, 3, 8, 8), torch.tensor([7, 640])
    cond = torch.tensor([[1.0, 0.0, 0.3], [0.0, 1.0, 0.45]])
    P, out = run_twice(ref_tiny_unet, 31, x, t, cond)
    return {"x": x, "t": t, "cond": cond, "out": out, "n_params": torch.tensor(len(P.shapes))}


def golden_tiny_unet_cond_emb():
    x, t = rnd(2, 3, 8, 8), torch.tensor([7, 640])
    cond = torch.tensor([[1.0, 0.0, 0.3], [-1.0, -1.0, 0.45]])
    P, out = run_twice(lambda P, *a: ref_tiny_unet(P, *a, cond_emb=True), 33, x, t, cond)
    return {"x": x, "t": t, "cond": cond, "out": out, "n_params": torch.tensor(len(P.shapes))}


def golden_tiny_vae():
    x = torch.softmax(rnd(1, 6, 16, 16) * 3, 1)
    P, (mean, logvar, rec) = run_twice(ref_tiny_vae, 32, x)
    return {"x": x, "mean": mean, "logvar": logvar, "rec": rec, "n_params": torch.tensor(len(P.shapes))}


# ---------------------------------------------------------------------------------------------------------
# DPM-Solver++ 2M (Lu et al. 2022b, Algorithm 2), written in λ = log(α/σ) from the paper, with a fixed smooth
# stand-in for the network so that whole trajectories can be compared step by step (float64).
def betas_for(schedule, T, b0, b1):
    if schedule == "linear":
        return torch.linspace(b0, b1, T, dtype=torch.float64)
    if schedule == "scaled_linear":
        return torch.linspace(b0 ** 0.5, b1 ** 0.5, T, dtype=torch.float64) ** 2
    f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2  # Nichol & Dhariwal eq. 17
    return torch.tensor([min(1 - f(i + 1) / f(i), 0.999) for i in range(T)], dtype=torch.float64)


def stand_in_model(x, t):
    return torch.tanh(0.5 * x) * (0.5 + t / 2000.0) + 0.1 * torch.cos(3.0 * x)


def dpm_grid(ab, S, spacing, karras):
    T = ab.numel()
    if karras:
        log_sig = 0.5 * torch.log((1 - ab) / ab)
        lo, hi = log_sig[0].exp().item(), log_sig[-1].exp().item()
        ts, abg = [], []
        for i in range(S):
            ramp = i / (S - 1) if S > 1 else 0.0
            sig = (hi ** (1 / 7) + ramp * (lo ** (1 / 7) - hi ** (1 / 7))) ** 7
            ls = math.log(sig)
            k = int(torch.searchsorted(log_sig, torch.tensor([ls], dtype=torch.float64)).item())
            tf = 0.0 if k == 0 else float(T - 1) if k == T else (k - 1) + (ls - log_sig[k - 1].item()) / (log_sig[k] - log_sig[k - 1]).item()
            ts.append(int(torch.round(torch.tensor(tf, dtype=torch.float64)).item()))
            abg.append(1.0 / (1.0 + sig * sig))
        return ts, abg + [1.0]
    if spacing == "linspace":
        ts = torch.linspace(0, T - 1, S + 1, dtype=torch.float64).round().long().tolist()[::-1][:-1]
    else:
        ts = [i * (T // S) for i in range(S)][::-1]
    return ts, [ab[t].item() for t in ts] + [1.0]


def dpmpp_2m(ts, abg, x, pred_type, order=2, noise=None):
    """The ODE solver (noise None) or, with one N(0, I) draw per step, the SDE solver of the same paper (section 5,
    written with e^{-h}: x_t = s_t/s_s e^{-h} x_s + a_t (1 - e^{-2h}) D + s_t sqrt(1 - e^{-2h}) z, the same D)."""
    lam = lambda a: 0.5 * math.log(a / (1 - a))
    traj, prev = [x], None
    for i, t in enumerate(ts):
        a_s, a_t = abg[i], abg[i + 1]
        out = stand_in_model(x, t)
        if pred_type == "epsilon":
            x0 = (x - math.sqrt(1 - a_s) * out) / math.sqrt(a_s)
        elif pred_type == "v_prediction":
            x0 = math.sqrt(a_s) * x - math.sqrt(1 - a_s) * out
        else:
            x0 = out
        if a_t == 1.0:  # last step, first order to sigma = 0: the data prediction itself
            x = x0
        else:
            h = lam(a_t) - lam(a_s)
            if prev is None or order == 1:
                D = x0
            else:
                r = (lam(a_s) - lam(abg[i - 1])) / h
                D = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * prev
            if noise is None:
                x = math.sqrt(1 - a_t) / math.sqrt(1 - a_s) * x - math.sqrt(a_t) * (math.exp(-h) - 1) * D
            else:
                x = (math.sqrt(1 - a_t) / math.sqrt(1 - a_s) * math.exp(-h) * x
                     + math.sqrt(a_t) * (1 - math.exp(-2 * h)) * D
                     + math.sqrt(1 - a_t) * math.sqrt(1 - math.exp(-2 * h)) * noise[i])
        prev = x0
        traj.append(x)
    return torch.stack(traj)


def golden_dpm_solver():
    out = {}
    cases = (("eps_scaled_linspace15", "scaled_linear", 0.0015, 0.0195, "epsilon", "linspace", False, 15, 2),
             ("v_cosine_leading10", "cosine", 0.0001, 0.02, "v_prediction", "leading", False, 10, 2),
             ("eps_karras10", "scaled_linear", 0.0015, 0.0195, "epsilon", "linspace", True, 10, 2),
             ("x0_linear_linspace12", "linear", 0.0001, 0.02, "sample", "linspace", False, 12, 2),
             ("eps_order1_linspace8", "scaled_linear", 0.0015, 0.0195, "epsilon", "linspace", False, 8, 1),
             ("sde_eps_scaled_linspace15", "scaled_linear", 0.0015, 0.0195, "epsilon", "linspace", False, 15, 2),
             ("sde_v_cosine_karras10", "cosine", 0.0001, 0.02, "v_prediction", "linspace", True, 10, 2),
             ("sde_eps_order1_leading8", "scaled_linear", 0.0015, 0.0195, "epsilon", "leading", False, 8, 1))
    for name, sched, b0, b1, pred, spacing, karras, S, order in cases:
        ab = torch.cumprod(1.0 - betas_for(sched, 1000, b0, b1), 0)
        ts, abg = dpm_grid(ab, S, spacing, karras)
        x = torch.randn(2, 3, 6, 8, generator=torch.Generator().manual_seed(S), dtype=torch.float64)
        noise = None
        if name.startswith("sde_"):
            noise = torch.randn(S, 2, 3, 6, 8, generator=torch.Generator().manual_seed(100 + S), dtype=torch.float64)
            out[f"{name}.noise"] = noise
        out[f"{name}.timesteps"] = torch.tensor(ts)
        out[f"{name}.alpha_bars"] = torch.tensor(abg, dtype=torch.float64)
        out[f"{name}.trajectory"] = dpmpp_2m(ts, abg, x, pred, order, noise)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "golden"))
    ap.add_argument("names", nargs="*", help="write only these goldens (default: all)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, fn in (("resblock", golden_resblock), ("attnblock", golden_attnblock),
                     ("timestep_embedding", golden_timestep_embedding), ("transformer", golden_transformer),
                     ("ddpm_step", golden_ddpm_step), ("ddim_step", golden_ddim_step),
                     ("tiny_unet", golden_tiny_unet),
                     ("tiny_unet_cond_emb", golden_tiny_unet_cond_emb), ("tiny_vae", golden_tiny_vae),
                     ("dpm_solver", golden_dpm_solver)):
        if args.names and name not in args.names:
            continue
        d = {k: v.contiguous() for k, v in fn().items()}
        path = os.path.join(args.out, name + ".pt")
        torch.save(d, path)
        print(f"{path}: {len(d)} tensors, {os.path.getsize(path) / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
