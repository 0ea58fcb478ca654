#!/usr/bin/python3
"""Golden tensors from the authors' own modules (tests: "*MatchesTheAuthorsModule" in test_spade_nets.cpp,
test_label_nets.cpp and test_modality_classifier.cpp).

    /usr/bin/python3 scripts/parity/make_golden_official.py AUTHORS_CHECKOUT

AUTHORS_CHECKOUT is a local checkout (or `git archive` of image_generator/models/networks,
image_generator/models/modality_discrimination and conditioned_ldm/src/python/training_and_testing/condldm_models) of
the authors' repository, virginiafdez/brainSPADE_RELEASE. This script runs their style encoder (encoder.py
ConvEncoder), multiscale discriminator (discriminator.py) and SPADE generator (generator.py), their label VAE
(ae_kl_v1.py AutoencoderKL) and LDM U-Net (unet_v2_conditioned.py UNetModel), and their modality/dataset classifier
(modisc_v2.py Modisc) on seeded weights and inputs, and writes
tests/data/golden/official_{encoder,discriminator,generator,vae,unet,classifier}.pt: the inputs, the outputs and
either every weight under "w.<their state-dict name>" (encoder, discriminator) or, for the larger networks, only the
names and shapes of a seeded fill in sorted name order (seeded_fill) that the C++ tests repeat with the same libtorch
RNG. Only these tensors are committed; the authors' code (which carries no licence) is imported from the checkout at
run time and never copied into this repository. It also writes official_vae_final_model.pth, the state dict of their
VAE (as a plain dict: `dict(state_dict)`, the form `brainspade import-official` reads), with its inputs and outputs
(official_vae_final_model_io.pt), and a tiny state dict in their OrderedDict form (ordered_dict_state.pth), for the
tests of `brainspade import-official`.

Their modules import a few things Debian lacks or that the tested modules never use; stand-ins are put in
sys.modules: scipy.special (their von Mises-Fisher prior), util.util (the discriminator's option parser), monai's
SubpixelUpsample (an upsampling mode not tested), torchvision (the VGG19 beside the blocks), and the four einops
patterns on the U-Net's path, written out with torch ops; an empty models/__init__ bypasses the package's trainer
imports.

Their classifier is built on `monai.networks.nets.densenet121`, and MONAI is not installed: the stand-in below
(MonaiDenseNet121) is written here from MONAI's monai/networks/nets/densenet.py at tag 0.9.1 (the version their
requirements.txt pins; the file is unchanged from January to August 2022) and its layer factories. It covers what
their Modisc calls: spatial_dims 2, the default ReLU (inplace) and batch norm, block config (6, 12, 24, 16), growth
32, 64 initial features, bn_size 4, dropout_prob (MONAI's 2-D dropout factory gives nn.Dropout2d, i.e. whole
channels), no pretrained weights; module names, bias-free convolutions, pools and the kaiming/constant initialisation
as MONAI's. Anything else is refused.
"""
import argparse
import math
import os
import shutil
import sys
import tempfile
import types
from collections import OrderedDict

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from make_golden_spade import fill_deterministic  # noqa: E402  (this project's seeded weights)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "golden")
NETWORKS = "image_generator/models/networks"
LDM_MODELS = "conditioned_ldm/src/python/training_and_testing/condldm_models"
CLASSIFIER = "image_generator/models/modality_discrimination"
MODULES = ["base_network.py", "normalization.py", "encoder.py", "distributions.py", "ive_function.py",
           "discriminator.py", "architecture.py", "generator.py"]


def import_authors(checkout):
    """Their networks package laid out under a temporary `models/networks`, with stand-ins for what it imports."""
    src = os.path.join(checkout, NETWORKS)
    if not os.path.isdir(src):
        sys.exit("%s: no %s folder; pass a checkout of virginiafdez/brainSPADE_RELEASE" % (checkout, NETWORKS))
    root = tempfile.mkdtemp(prefix="brainspade-official-")
    net = os.path.join(root, "models", "networks")
    os.makedirs(net)
    open(os.path.join(root, "models", "__init__.py"), "w").close()
    open(os.path.join(net, "__init__.py"), "w").close()
    for name in MODULES:
        shutil.copy(os.path.join(src, name), net)
    shutil.copytree(os.path.join(src, "sync_batchnorm"), os.path.join(net, "sync_batchnorm"))
    # Stand-ins: only imported, never called by the two modules under test.
    scipy = types.ModuleType("scipy")
    scipy.special = types.ModuleType("scipy.special")
    util = types.ModuleType("util")
    util.util = types.ModuleType("util.util")
    util.util.find_class_in_module = lambda *a, **k: None
    monai = types.ModuleType("monai")
    monai.networks = types.ModuleType("monai.networks")
    monai.networks.blocks = types.ModuleType("monai.networks.blocks")
    monai.networks.blocks.SubpixelUpsample = None  # their generator's 'subpixel' upsampling; not the one tested
    torchvision = types.ModuleType("torchvision")
    torchvision.models = None  # their VGG19 perceptual network in architecture.py; not used by these modules
    sys.modules["torchvision"] = torchvision
    sys.modules.update({"scipy": scipy, "scipy.special": scipy.special, "util": util, "util.util": util.util,
                        "monai": monai, "monai.networks": monai.networks, "monai.networks.blocks": monai.networks.blocks})
    sys.path.insert(0, root)
    from models.networks import discriminator, encoder, generator  # noqa: E402  (the authors' modules)
    sys.path.remove(root)
    return root, encoder, discriminator, generator


# The einops patterns the authors' U-Net and attention use on the tested path, each written out with torch ops.
def _rearrange(x, pattern, **n):
    p = " ".join(pattern.split())
    if p == "b c h w -> b (h w) c":
        return x.flatten(2).transpose(1, 2)
    if p == "b (h w) c -> b c h w":
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], n["h"], n["w"])
    if p == "b n (h d) -> (b h) n d":
        b, t, hd = x.shape
        return x.reshape(b, t, n["h"], hd // n["h"]).permute(0, 2, 1, 3).reshape(b * n["h"], t, hd // n["h"])
    if p == "(b h) n d -> b n (h d)":
        bh, t, d = x.shape
        return x.reshape(bh // n["h"], n["h"], t, d).permute(0, 2, 1, 3).reshape(bh // n["h"], t, n["h"] * d)
    raise NotImplementedError("einops stand-in: pattern %r" % pattern)


def _repeat(x, pattern, **n):
    if " ".join(pattern.split()) == "b -> b d":
        return x[:, None].expand(x.shape[0], n["d"])
    raise NotImplementedError("einops stand-in: pattern %r" % pattern)


def import_authors_ldm(checkout):
    """Their label-generator networks (condldm_models) as a temporary `models` package; einops stood in for."""
    src = os.path.join(checkout, LDM_MODELS)
    if not os.path.isdir(src):
        sys.exit("%s: no %s folder; pass a checkout of virginiafdez/brainSPADE_RELEASE" % (checkout, LDM_MODELS))
    root = tempfile.mkdtemp(prefix="brainspade-official-ldm-")
    shutil.copytree(src, os.path.join(root, "models"))
    einops = types.ModuleType("einops")
    einops.rearrange, einops.repeat = _rearrange, _repeat
    sys.modules["einops"] = einops
    for name in [m for m in sys.modules if m == "models" or m.startswith("models.")]:
        del sys.modules[name]  # the image-generator package imported above has the same name
    sys.path.insert(0, root)
    import models.ae_kl_v1 as vae  # noqa: E402  (the authors' modules)
    import models.unet_v2_conditioned as unet  # noqa: E402
    sys.path.remove(root)
    return root, unet, vae


class _MonaiDenseLayer(nn.Module):
    """MONAI _DenseLayer: BN-ReLU-conv1x1(bn_size * growth)-BN-ReLU-conv3x3(growth)[-Dropout2d], out cat([x, new])."""

    def __init__(self, in_channels, growth_rate, bn_size, dropout_prob):
        super().__init__()
        mid = bn_size * growth_rate
        self.layers = nn.Sequential()
        self.layers.add_module("norm1", nn.BatchNorm2d(in_channels))
        self.layers.add_module("relu1", nn.ReLU(inplace=True))
        self.layers.add_module("conv1", nn.Conv2d(in_channels, mid, kernel_size=1, bias=False))
        self.layers.add_module("norm2", nn.BatchNorm2d(mid))
        self.layers.add_module("relu2", nn.ReLU(inplace=True))
        self.layers.add_module("conv2", nn.Conv2d(mid, growth_rate, kernel_size=3, padding=1, bias=False))
        if dropout_prob > 0:
            self.layers.add_module("dropout", nn.Dropout2d(dropout_prob))

    def forward(self, x):
        return torch.cat([x, self.layers(x)], 1)


class MonaiDenseNet121(nn.Module):
    """Stand-in for monai.networks.nets.densenet121 (MONAI 0.9.1 DenseNet121 in 2-D; see the module docstring)."""

    def __init__(self, spatial_dims, in_channels, out_channels, dropout_prob=0.0, **unsupported):
        super().__init__()
        if spatial_dims != 2 or unsupported:
            raise NotImplementedError("MONAI DenseNet-121 stand-in: only spatial_dims 2 and dropout_prob (got %r, %r)"
                                      % (spatial_dims, unsupported))
        growth, bn_size, ch = 32, 4, 64
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(in_channels, ch, kernel_size=7, stride=2, padding=3, bias=False)),
            ("norm0", nn.BatchNorm2d(ch)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ]))
        blocks = (6, 12, 24, 16)
        for i, n in enumerate(blocks):
            block = nn.Sequential()
            for j in range(n):
                block.add_module("denselayer%d" % (j + 1), _MonaiDenseLayer(ch + j * growth, growth, bn_size,
                                                                            dropout_prob))
            self.features.add_module("denseblock%d" % (i + 1), block)
            ch += n * growth
            if i == len(blocks) - 1:
                self.features.add_module("norm5", nn.BatchNorm2d(ch))
            else:
                self.features.add_module("transition%d" % (i + 1), nn.Sequential(OrderedDict([
                    ("norm", nn.BatchNorm2d(ch)),
                    ("relu", nn.ReLU(inplace=True)),
                    ("conv", nn.Conv2d(ch, ch // 2, kernel_size=1, bias=False)),
                    ("pool", nn.AvgPool2d(kernel_size=2, stride=2)),
                ])))
                ch //= 2
        self.class_layers = nn.Sequential(OrderedDict([
            ("relu", nn.ReLU(inplace=True)),
            ("pool", nn.AdaptiveAvgPool2d(1)),
            ("flatten", nn.Flatten(1)),
            ("out", nn.Linear(ch, out_channels)),
        ]))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        return self.class_layers(self.features(x))


def import_authors_classifier(checkout):
    """Their Modisc (modisc_v2.py) from a temporary folder, monai.networks.nets.densenet121 stood in for."""
    src = os.path.join(checkout, CLASSIFIER)
    if not os.path.isdir(src):
        sys.exit("%s: no %s folder; pass a checkout of virginiafdez/brainSPADE_RELEASE" % (checkout, CLASSIFIER))
    root = tempfile.mkdtemp(prefix="brainspade-official-classifier-")
    shutil.copy(os.path.join(src, "modisc_v2.py"), root)
    monai = sys.modules.get("monai") or types.ModuleType("monai")
    monai.networks = getattr(monai, "networks", None) or types.ModuleType("monai.networks")
    monai.networks.nets = types.ModuleType("monai.networks.nets")
    monai.networks.nets.densenet121 = MonaiDenseNet121
    sys.modules.update({"monai": monai, "monai.networks": monai.networks, "monai.networks.nets": monai.networks.nets})
    sys.path.insert(0, root)
    import modisc_v2  # noqa: E402  (the authors' module)
    sys.path.remove(root)
    return root, modisc_v2


def seeded_fill(net):
    """Every state-dict entry in sorted name order: v = randn / sqrt(fan-in) (10 for vectors and scalars) from
    manual_seed 1234; in batch norms (the entries beside a running_var) the weight is 1 + v and the running variance
    |v| + 0.5, so that eval-mode statistics neither vanish the signal nor go negative. The C++ tests repeat it
    (testutil::official_seeded_weights). Returns the names and shapes to store ("shape.<name>")."""
    torch.manual_seed(1234)
    sd = net.state_dict()
    batch_norms = {k[:-len("running_var")] for k in sd if k.endswith(".running_var")}
    with torch.no_grad():
        for name in sorted(sd):
            t = sd[name]
            t.copy_(torch.randn(t.shape) / math.sqrt(t[0].numel() if t.dim() >= 2 else 10.0))
            prefix = name[:name.rfind(".") + 1]
            if prefix in batch_norms and name.endswith(".weight"):
                t.add_(1.0)
            elif prefix in batch_norms and name.endswith(".running_var"):
                t.abs_().add_(0.5)
    return {"shape." + k: torch.tensor(list(v.shape), dtype=torch.long) for k, v in sd.items()}


def weights(module):
    return {"w." + k: v.detach().clone() for k, v in module.state_dict().items()}


def save(name, d):
    path = os.path.join(OUT, name + ".pt")
    torch.save(d, path)
    print(path, os.path.getsize(path), "bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkout", help="local checkout of virginiafdez/brainSPADE_RELEASE")
    args = ap.parse_args()
    root, encoder, discriminator, generator = import_authors(os.path.abspath(args.checkout))
    try:
        # Style encoder: ndf (their ngf) 4, z 8, spectral instance norm, normal prior, at 256 x 256 (their forward
        # resizes anything else to 256 x 256 first; at 256 x 256 that resize is skipped, so the networks compare).
        torch.manual_seed(11)
        opt = argparse.Namespace(ngf=4, z_dim=8, norm_E="spectralinstance", type_prior="N")
        enc = encoder.ConvEncoder(opt).train()
        d = weights(enc)
        x = torch.randn(1, 1, 256, 256)
        d["x"] = x
        mu, logvar = enc(x)
        d["mu"], d["logvar"] = mu.detach().clone(), logvar.detach().clone()
        save("official_encoder", d)

        # Multiscale discriminator: 2 scales of 4-layer PatchGANs, ndf 8, spectral instance norm, on 3 label
        # channels + 1 image channel, returning every intermediate feature (their feature-matching setting).
        torch.manual_seed(12)
        opt = argparse.Namespace(ndf=8, n_layers_D=4, num_D=2, norm_D="spectralinstance", netD_subarch="n_layer",
                                 label_nc=3, output_nc=1, D_modality_class=False, no_ganFeat_loss=False)
        disc = discriminator.MultiscaleDiscriminator(opt).train()
        d = weights(disc)
        x = torch.randn(2, 4, 64, 48)
        d["x"] = x
        for s, feats in enumerate(disc(x)):
            for j, f in enumerate(feats):
                d["out.%d.%d" % (s, j)] = f.detach().clone()
        save("official_discriminator", d)

        # SPADE generator as the authors train it: VAE mode (fc from z), nearest upsampling, 5 upsamplings, spectral
        # SPADE residual blocks with batch norm (hidden 128, fixed in their SPADE), leaky-ReLU output; ngf 4 at
        # 64 x 96. Train mode (batch statistics, one power iteration), then eval mode (running statistics).
        torch.manual_seed(13)
        opt = argparse.Namespace(upsampling_type="upsample", ngf=4, use_vae=True, z_dim=8,
                                 num_upsampling_layers="normal", new_size=[64, 96], norm_G="spectralspadebatch3x3",
                                 semantic_nc=3, bound_normalization=False)
        gen = generator.SPADEGenerator(opt).train()
        # Weights from fill_deterministic (scripts/make_golden_spade.py), which the C++ test mirrors with the same
        # libtorch RNG: only the names (as empty entries) and the outputs are stored, not 2 M weights.
        fill_deterministic(gen)
        d = {"name." + k: torch.zeros(()) for k in gen.state_dict()}
        seg = torch.softmax(3 * torch.randn(2, 3, 64, 96), dim=1)
        z = torch.randn(2, 8)
        d["seg"], d["z"] = seg, z
        d["out_train"] = gen(seg, z).detach().clone()
        gen.eval()
        d["out_eval"] = gen(seg, z).detach().clone()
        save("official_generator", d)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    root, unet, vae = import_authors_ldm(os.path.abspath(args.checkout))
    try:
        # LDM U-Net as the authors condition it ("hybrid"): 3 condition planes concatenated to the 3-channel latent and
        # the same 3 values as a one-token context for the spatial transformer. model_channels 32 (their GroupNorm has
        # 32 groups), mult 1-2, one res block per level, attention at the second level (downsampling factor 2),
        # 2 heads, res-block up/down sampling; 8 x 8 latents.
        torch.manual_seed(14)
        net = unet.UNetModel(image_size=8, in_channels=6, out_channels=3, model_channels=32, attention_resolutions=[2],
                             num_res_blocks=1, channel_mult=[1, 2], dropout=0.0, conv_resample=True, num_heads=2,
                             use_scale_shift_norm=False, resblock_updown=True, use_spatial_transformer=True,
                             transformer_depth=1, context_dim=3).eval()
        # Weights from a seeded fill in sorted name order (their zero-initialised output convolutions would hide
        # errors), which the C++ test repeats with the same libtorch RNG: only names and shapes are stored.
        d = seeded_fill(net)
        x = torch.randn(2, 3, 8, 8)
        t = torch.tensor([7, 640])
        cond = torch.tensor([[1.0, 0.0, 0.3], [0.0, 1.0, 0.45]])
        d["x"], d["t"], d["cond"] = x, t, cond
        with torch.no_grad():
            h_in = torch.cat([x, cond[:, :, None, None].expand(2, 3, 8, 8)], 1)
            d["out"] = net(h_in, t, context=cond[:, None, :]).clone()
        save("official_unet", d)

        # Label VAE (ae_kl_v1.py AutoencoderKL): widths 32-64, one res block per level, 3 latent channels, attention
        # only in the mid blocks (attn_resolutions empty), 6 PV channels at 16 x 16. Their encoder and decoder keep
        # flat `blocks` lists; the C++ test maps them by position (official_vae_name).
        torch.manual_seed(15)
        hp = dict(in_channels=6, out_channels=6, n_channels=32, z_channels=3, ch_mult=[1, 2], num_res_blocks=1,
                  resolution=(16, 16), attn_resolutions=[])
        net = vae.AutoencoderKL(embed_dim=3, hparams=hp).eval()
        d = seeded_fill(net)
        x = torch.softmax(3 * torch.randn(2, 6, 16, 16), dim=1)
        d["x"] = x
        with torch.no_grad():
            mu, sigma = net.encode(x)
            d["mu"], d["sigma"], d["decoded"] = mu.clone(), sigma.clone(), net.decode(mu).clone()
        save("official_vae", d)

        # What their training writes (final_model.pth: the state dict as torch.save stores it), for a one-level VAE
        # (32 channels: small enough to commit), with its input and outputs: `brainspade import-official` must turn it
        # into a checkpoint that reproduces them (ImportOfficial.* tests).
        torch.manual_seed(16)
        hp = dict(in_channels=6, out_channels=6, n_channels=32, z_channels=3, ch_mult=[1], num_res_blocks=1,
                  resolution=(16, 16), attn_resolutions=[])
        net = vae.AutoencoderKL(embed_dim=3, hparams=hp).eval()
        with torch.no_grad():
            for t in net.state_dict().values():  # their zero/constant inits would hide mapping errors
                t.add_(0.05 * torch.randn(t.shape))
        # As their training saves it, Module.state_dict() is an OrderedDict, which LibTorch's C++ unpickler reads as
        # None: the import asks for the plain-dict form below (one line of Python), and names this case (a tiny
        # OrderedDict file stands for it).
        path = os.path.join(OUT, "official_vae_final_model.pth")
        torch.save(dict(net.state_dict()), path)
        print(path, os.path.getsize(path), "bytes")
        path = os.path.join(OUT, "ordered_dict_state.pth")
        torch.save(torch.nn.Conv2d(1, 1, 1).state_dict(), path)
        print(path, os.path.getsize(path), "bytes")
        x = torch.softmax(3 * torch.randn(2, 6, 16, 16), dim=1)
        with torch.no_grad():
            mu, sigma = net.encode(x)
            save("official_vae_final_model_io", {"x": x, "mu": mu.clone(), "sigma": sigma.clone(),
                                                 "decoded": net.decode(mu).clone()})
    finally:
        shutil.rmtree(root, ignore_errors=True)

    root, modisc = import_authors_classifier(os.path.abspath(args.checkout))
    try:
        # Modality/dataset classifier (modisc_v2.py Modisc) as their SPADE training builds it: DenseNet-121 on one
        # channel, dropout 0.2; 2 modalities, 3 datasets; 64 x 64 slices (2 x 2 after the trunk). The seeded fill
        # gives every batch norm non-trivial running statistics, so the eval-mode logits test them.
        torch.manual_seed(17)
        net = modisc.Modisc(n_mods=2, n_datasets=3, dropout=0.2, spatial_dims=2, in_channels=1).eval()
        d = seeded_fill(net)
        x = torch.randn(2, 1, 64, 64)
        d["x"] = x
        trunk = []
        # Their class_layers' ReLU is in place on the trunk output: the hook keeps a copy taken before it.
        net.base_model.features.register_forward_hook(lambda m, i, o: trunk.append(o.detach().clone()))
        with torch.no_grad():
            mod, dat = net(x)
            d["features"], d["modality"], d["dataset"] = trunk[-1], mod.clone(), dat.clone()
            # Train mode: batch statistics, channel dropout (Dropout2d) with masks drawn after manual_seed 99, and the
            # running statistics it leaves in the last batch norm.
            net.train()
            torch.manual_seed(99)
            mod, dat = net(x)
            d["modality_train"], d["dataset_train"] = mod.clone(), dat.clone()
            norm5 = net.base_model.features.norm5
            d["norm5_running_mean"], d["norm5_running_var"] = norm5.running_mean.clone(), norm5.running_var.clone()
        save("official_classifier", d)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
