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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "golden"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, fn in (("resblock", golden_resblock), ("attnblock", golden_attnblock),
                     ("timestep_embedding", golden_timestep_embedding), ("transformer", golden_transformer),
                     ("ddpm_step", golden_ddpm_step), ("ddim_step", golden_ddim_step)):
        d = {k: v.contiguous() for k, v in fn().items()}
        path = os.path.join(args.out, name + ".pt")
        torch.save(d, path)
        print(f"{path}: {len(d)} tensors, {os.path.getsize(path) / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
