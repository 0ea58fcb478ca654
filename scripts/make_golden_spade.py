#!/usr/bin/python3
"""Golden tensors for the SPADE image-generator blocks (tests/test_spade_nets.cpp).

Run with Debian's /usr/bin/python3 (torch 1.13, the same libtorch as the C++ build):
    /usr/bin/python3 scripts/make_golden_spade.py
Writes tests/data/golden/spade_*.pt: dicts of tensors with the inputs, every weight and buffer under
"w.<state dict name>" (the names the C++ modules use) and the reference outputs.

The reference modules below are written from the published descriptions (Park et al. 2019, section 3 and
appendix; brainSPADE paper section 2.2 and the architecture notes in docs/image-generator.md). Spectral
normalisation is PyTorch's own torch.nn.utils.spectral_norm, which the C++ layer must reproduce.
"""
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "golden")


class RefSPADE(nn.Module):
    """out = norm(x) * (1 + gamma(seg)) + beta(seg); seg resized to x's size."""

    def __init__(self, norm_nc, label_nc, hidden, norm, interp):
        super().__init__()
        if norm == "batch":
            self.param_free_norm = nn.BatchNorm2d(norm_nc, affine=False)
        else:
            self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, 3, padding=1)
        self.interp = interp

    def forward(self, x, seg):
        if self.interp == "nearest":
            seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        else:
            seg = F.interpolate(seg, size=x.shape[2:], mode="bilinear", align_corners=False)
        a = self.mlp_shared(seg)
        return self.param_free_norm(x) * (1 + self.mlp_gamma(a)) + self.mlp_beta(a)


class RefSPADEResBlock(nn.Module):
    """Two SPADE -> LeakyReLU(0.2) -> spectral conv3x3 steps plus a (learned if fin != fout) shortcut."""

    def __init__(self, fin, fout, label_nc, hidden, norm, interp):
        super().__init__()
        fmid = min(fin, fout)
        self.learned = fin != fout
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmid, 3, padding=1))
        self.conv_1 = spectral_norm(nn.Conv2d(fmid, fout, 3, padding=1))
        if self.learned:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))
        self.norm_0 = RefSPADE(fin, label_nc, hidden, norm, interp)
        self.norm_1 = RefSPADE(fmid, label_nc, hidden, norm, interp)
        if self.learned:
            self.norm_s = RefSPADE(fin, label_nc, hidden, norm, interp)

    def forward(self, x, seg):
        xs = self.conv_s(self.norm_s(x, seg)) if self.learned else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return xs + dx


def conv_in(cin, cout, k, s, p):
    """Spectral conv without bias followed by InstanceNorm(affine False), as nn.Sequential (keys '0.*')."""
    conv = nn.Conv2d(cin, cout, k, stride=s, padding=p, bias=False)
    return nn.Sequential(spectral_norm(conv), nn.InstanceNorm2d(cout, affine=False))


class RefEncoder(nn.Module):
    def __init__(self, ndf, z_dim, layers, h, w):
        super().__init__()
        cin = 1
        for i in range(layers):
            cout = ndf * min(2 ** i, 8)
            self.add_module("layer%d" % (i + 1), conv_in(cin, cout, 3, 2, 1))
            cin = cout
            h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        self.n = layers
        self.fc_mu = nn.Linear(cin * h * w, z_dim)
        self.fc_var = nn.Linear(cin * h * w, z_dim)

    def forward(self, x):
        for i in range(self.n):
            x = F.leaky_relu(getattr(self, "layer%d" % (i + 1))(x), 0.2)
        x = x.flatten(1)
        return self.fc_mu(x), self.fc_var(x)


class RefNLayerD(nn.Module):
    def __init__(self, cin, ndf, n_layers):
        super().__init__()
        nf = ndf
        seq = [[nn.Conv2d(cin, nf, 4, stride=2, padding=2), nn.LeakyReLU(0.2)]]
        for n in range(1, n_layers):
            prev, nf = nf, min(nf * 2, 512)
            seq.append([conv_in(prev, nf, 4, 1 if n == n_layers - 1 else 2, 2), nn.LeakyReLU(0.2)])
        seq.append([nn.Conv2d(nf, 1, 4, stride=1, padding=2)])
        self.n = len(seq)
        for i, s in enumerate(seq):
            self.add_module("model%d" % i, nn.Sequential(*s))

    def forward(self, x):
        outs = []
        for i in range(self.n):
            x = getattr(self, "model%d" % i)(x)
            outs.append(x)
        return outs


class RefMultiscaleD(nn.Module):
    def __init__(self, cin, ndf, n_layers, num_d, k):
        super().__init__()
        for i in range(num_d):
            self.add_module("discriminator_%d" % i, RefNLayerD(cin, ndf, n_layers))
        self.num_d, self.k = num_d, k

    def forward(self, x):
        res = []
        for i in range(self.num_d):
            res.append(getattr(self, "discriminator_%d" % i)(x))
            if i + 1 < self.num_d:
                x = F.avg_pool2d(x, self.k, stride=2, padding=1, count_include_pad=False)
        return res


class RefGenerator(nn.Module):
    """z -> fc -> 16ngf x sh x sw -> head_0, up, G_middle_0, (up if more), G_middle_1, up+up_0 ... up+up_3 -> conv_img."""

    def __init__(self, label_nc, ngf, z_dim, n_up, h, w, hidden, norm, interp, act):
        super().__init__()
        self.sh, self.sw, self.nf, self.n_up, self.act = h // 2 ** n_up, w // 2 ** n_up, ngf, n_up, act
        nf = ngf
        self.fc = nn.Linear(z_dim, 16 * nf * self.sh * self.sw)
        blk = lambda a, b: RefSPADEResBlock(a, b, label_nc, hidden, norm, interp)
        self.head_0 = blk(16 * nf, 16 * nf)
        self.G_middle_0 = blk(16 * nf, 16 * nf)
        self.G_middle_1 = blk(16 * nf, 16 * nf)
        self.up_0 = blk(16 * nf, 8 * nf)
        self.up_1 = blk(8 * nf, 4 * nf)
        self.up_2 = blk(4 * nf, 2 * nf)
        self.up_3 = blk(2 * nf, nf)
        self.conv_img = nn.Conv2d(nf, 1, 3, padding=1)

    def forward(self, seg, z):
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")
        x = self.fc(z).view(-1, 16 * self.nf, self.sh, self.sw)
        x = up(self.head_0(x, seg))
        x = self.G_middle_0(x, seg)
        if self.n_up >= 6:
            x = up(x)
        x = self.G_middle_1(x, seg)
        for b in (self.up_0, self.up_1, self.up_2, self.up_3):
            x = b(up(x), seg)
        x = self.conv_img(F.leaky_relu(x, 0.2))
        return torch.tanh(x) if self.act == "tanh" else F.leaky_relu(x, 0.2)


def fill_deterministic(module):
    """Seeded weights the C++ test reproduces bit for bit (same libtorch RNG): state-dict entries in sorted
    name order, skipping integer and running-statistics buffers."""
    torch.manual_seed(1234)
    sd = module.state_dict()
    with torch.no_grad():
        for name in sorted(sd):
            t = sd[name]
            if not t.is_floating_point() or "running" in name:
                continue
            if name.endswith("weight_u") or name.endswith("weight_v"):
                t.copy_(F.normalize(torch.randn(t.shape), dim=0))
            elif t.dim() >= 2:
                t.copy_(torch.randn(t.shape) / math.sqrt(t[0].numel()))
            else:
                t.copy_(torch.randn(t.shape) * 0.1)


def generator_inputs(b, label_nc, h, w, z_dim):
    torch.manual_seed(7)
    seg = torch.softmax(3 * torch.randn(b, label_nc, h, w), dim=1)
    z = torch.randn(b, z_dim)
    return seg, z


def weights(module):
    return {"w." + k: v.detach().clone() for k, v in module.state_dict().items()}


def save(name, d):
    path = os.path.join(OUT, name + ".pt")
    torch.save(d, path)
    print(path, os.path.getsize(path), "bytes")


def main():
    os.makedirs(OUT, exist_ok=True)

    # Spectral norm: conv and linear, three training-mode forwards, then one eval forward.
    torch.manual_seed(1)
    conv = spectral_norm(nn.Conv2d(4, 6, 3, padding=1))
    lin = spectral_norm(nn.Linear(10, 5))
    d = {"conv." + k: v for k, v in weights(conv).items()}
    d.update({"lin." + k: v for k, v in weights(lin).items()})
    x = torch.randn(2, 4, 5, 7)
    xl = torch.randn(3, 10)
    d["x"], d["xl"] = x, xl
    conv.train(), lin.train()
    for i in range(3):
        y, yl = conv(x), lin(xl)
        d["y%d" % i] = y.detach().clone()
        d["yl%d" % i] = yl.detach().clone()
    # Gradient through W / sigma(W) (u, v constant) of the last forward.
    ((y ** 2).sum() + (yl ** 3).sum()).backward()
    d["grad_conv"] = conv.weight_orig.grad.clone()
    d["grad_lin"] = lin.weight_orig.grad.clone()
    d["u"], d["v"] = conv.weight_u.clone(), conv.weight_v.clone()
    d["ul"], d["vl"] = lin.weight_u.clone(), lin.weight_v.clone()
    conv.eval(), lin.eval()
    d["y_eval"] = conv(x).detach().clone()
    d["yl_eval"] = lin(xl).detach().clone()
    save("spade_spectral_norm", d)

    # SPADE norm: batch norm + nearest (training mode), instance norm + bilinear.
    torch.manual_seed(2)
    x = torch.randn(2, 8, 6, 8)
    seg = torch.softmax(torch.randn(2, 3, 24, 32) * 3, dim=1)
    d = {"x": x, "seg": seg}
    for tag, norm, interp in (("bn", "batch", "nearest"), ("in", "instance", "bilinear")):
        m = RefSPADE(8, 3, 16, norm, interp).train()
        with torch.no_grad():  # non-trivial gamma/beta
            m.mlp_gamma.weight.mul_(3.0)
            m.mlp_beta.bias.uniform_(-0.5, 0.5)
        d.update({tag + "." + k: v for k, v in weights(m).items()})
        d[tag + ".out"] = m(x, seg).detach().clone()
        d[tag + ".running_mean_after"] = (
            m.param_free_norm.running_mean.clone() if norm == "batch" else torch.zeros(1))
    save("spade_norm", d)

    # SPADE residual block with a learned shortcut, two training forwards then eval.
    torch.manual_seed(3)
    blk = RefSPADEResBlock(8, 4, 3, 16, "batch", "nearest").train()
    d = weights(blk)
    x = torch.randn(2, 8, 6, 8)
    seg = torch.softmax(torch.randn(2, 3, 12, 16) * 3, dim=1)
    d["x"], d["seg"] = x, seg
    d["out0"] = blk(x, seg).detach().clone()
    d["out1"] = blk(x, seg).detach().clone()
    d["conv_0_u_after"] = blk.conv_0.weight_u.clone()
    blk.eval()
    d["out_eval"] = blk(x, seg).detach().clone()
    # Same block shape without a learned shortcut, instance norm.
    blk2 = RefSPADEResBlock(4, 4, 3, 16, "instance", "nearest").train()
    d.update({"same." + k: v for k, v in weights(blk2).items()})
    x2 = torch.randn(2, 4, 6, 8)
    d["same.x"] = x2
    d["same.out"] = blk2(x2, seg).detach().clone()
    save("spade_resblock", d)

    # Style encoder (3 layers at 20x24) and multiscale discriminator (ndf 8, 3 layers, 2 scales, k4).
    torch.manual_seed(4)
    enc = RefEncoder(4, 8, 3, 20, 24).train()
    d = weights(enc)
    x = torch.randn(2, 1, 20, 24)
    d["x"] = x
    mu, logvar = enc(x)
    d["mu"], d["logvar"] = mu.detach().clone(), logvar.detach().clone()
    save("spade_encoder", d)

    torch.manual_seed(5)
    disc = RefMultiscaleD(4, 8, 3, 2, 4).train()
    d = weights(disc)
    x = torch.randn(2, 4, 32, 24)
    d["x"] = x
    outs = disc(x)
    for s, feats in enumerate(outs):
        for j, f in enumerate(feats):
            d["out.%d.%d" % (s, j)] = f.detach().clone()
    save("spade_discriminator", d)

    # Whole generator, weights and inputs from seeds (only outputs stored): two configurations.
    d = {}
    for tag, n_up, h, w, norm, interp, act in (("normal", 5, 64, 96, "batch", "nearest", "leaky_relu"),
                                               ("more", 6, 64, 128, "instance", "bilinear", "tanh")):
        gen = RefGenerator(3, 4, 8, n_up, h, w, 8, norm, interp, act).train()
        fill_deterministic(gen)
        seg, z = generator_inputs(1, 3, h, w, 8)
        d[tag + ".train"] = gen(seg, z).detach().clone()
        gen.eval()
        d[tag + ".eval"] = gen(seg, z).detach().clone()
    save("spade_generator", d)


if __name__ == "__main__":
    main()
