#!/usr/bin/python3
"""Reference perceptual distances with torchvision, for the C++ perceptual-loss parity tests.

    /usr/bin/python3 scripts/perceptual_reference.py --weights W.pt --arch squeeze --out ref.pt

squeeze, vgg16 (the label VAE's): loads the exported feature weights into torchvision's network, scores two fixed
per-channel label batches (LPIPS "baseline": unit-normalised features, squared difference summed over channels,
spatial mean, summed over layers; ScalingLayer shift/scale as in the lpips package) and saves inputs, the last tap
and the loss. Written from the LPIPS paper's description (Zhang et al. 2018, eq. 1) with uniform channel weights.
vgg19 (SPADE's): two fixed grey image batches repeated to 3 channels without normalisation, L1 between the features
after relu1_1, relu2_1, relu3_1, relu4_1, relu5_1, weighted 1/32, 1/16, 1/8, 1/4, 1 and summed (the VGG loss of
pix2pixHD, Wang et al. 2018, section 3.3, that SPADE and the authors' image generator train with).
"""
import argparse

import torch
import torchvision

TAPS = {"squeeze": [1, 4, 7, 9, 10, 11, 12], "vgg16": [3, 8, 15, 22, 29], "vgg19": [1, 6, 11, 20, 29]}
VGG19_WEIGHTS = [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--arch", choices=list(TAPS), default="squeeze")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    net = {"squeeze": torchvision.models.squeezenet1_1, "vgg16": torchvision.models.vgg16,
           "vgg19": torchvision.models.vgg19}[a.arch]()
    w = {k: v for k, v in torch.load(a.weights).items() if k.startswith("features.")}
    net.load_state_dict(w, strict=False)
    feats = net.features.eval()
    g = torch.Generator().manual_seed(3)
    x = torch.softmax(torch.randn(2, 4, 40, 48, generator=g) * 3, 1)
    y = torch.softmax(torch.randn(2, 4, 40, 48, generator=g) * 3, 1)
    shift = torch.tensor([-.030, -.088, -.188]).view(1, 3, 1, 1)
    scale = torch.tensor([.458, .448, .450]).view(1, 3, 1, 1)

    def run(h):  # the network's layers in order, keeping the tapped outputs
        out = []
        for i, layer in enumerate(feats):
            h = layer(h)
            if i in TAPS[a.arch]:
                out.append(h)
            if i == TAPS[a.arch][-1]:
                break
        return out

    def taps(img):  # LPIPS: every channel a grey image, ScalingLayer
        return run((img.reshape(-1, 1, *img.shape[2:]).repeat(1, 3, 1, 1) - shift) / scale)

    if a.arch == "vgg19":
        x = torch.randn(2, 1, 40, 48, generator=g)
        y = torch.randn(2, 1, 40, 48, generator=g)
        with torch.no_grad():
            fx, fy = run(x.repeat(1, 3, 1, 1)), run(y.repeat(1, 3, 1, 1))
            total = sum(w * (p - q).abs().mean() for w, p, q in zip(VGG19_WEIGHTS, fx, fy))
        torch.save({"x": x, "y": y, "loss": total, "last_tap": fx[-1].contiguous()}, a.out)
        return
    total = 0
    with torch.no_grad():
        fx, fy = taps(x), taps(y)
        for p, q in zip(fx, fy):
            p = p / (p.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            q = q / (q.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + (p - q).pow(2).sum(1).mean((1, 2))
    torch.save({"x": x, "y": y, "loss": total.mean(), "last_tap": fx[-1].contiguous()}, a.out)


if __name__ == "__main__":
    main()
