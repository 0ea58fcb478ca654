#!/usr/bin/python3
"""Exports the feature extractor of the perceptual loss to a file the C++ code reads.

Nothing can be downloaded on the project's machines, so bring the weights yourself:
  * a torchvision ImageNet state dict for SqueezeNet 1.1 (squeezenet1_1-b8a52dc0.pth) or VGG16
    (vgg16-397923af.pth) for the label VAE's LPIPS term, or VGG19 (vgg19-dcbb9e9d.pth) for SPADE's VGG loss
    (`loss.perceptual_network: vgg19`), e.g. copied from a machine with internet access
    (~/.cache/torch/hub/checkpoints);
  * optionally the LPIPS linear heads (lpips package, weights/v0.1/squeeze.pth or vgg.pth), whose
    "lin{k}.model.1.weight" tensors then weight the channels as in LPIPS proper.

    /usr/bin/python3 scripts/export_perceptual_weights.py --arch squeeze \
        --torchvision-weights squeezenet1_1-b8a52dc0.pth [--lpips-weights squeeze.pth] --out weights/squeeze.pt
    /usr/bin/python3 scripts/export_perceptual_weights.py --arch vgg19 \
        --torchvision-weights vgg19-dcbb9e9d.pth --out weights/vgg19.pt

--random writes randomly initialised weights instead, FOR TESTS ONLY: the file holds a "__random_init__"
entry and the C++ loss logs a warning when it loads it. The output is a torch.save dict of tensors named as
torchvision's state dict ("features.N.weight", ...), which brainspade::PerceptualLoss loads by name.
"""
import argparse
import os
import sys

import torch


def build(arch):
    import torchvision

    if arch == "squeeze":
        return torchvision.models.squeezenet1_1(weights=None)
    if arch == "vgg19":
        return torchvision.models.vgg19(weights=None)
    return torchvision.models.vgg16(weights=None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=["squeeze", "vgg16", "vgg19"], default="squeeze")
    ap.add_argument("--torchvision-weights", help="torchvision state dict (.pth) for the chosen architecture")
    ap.add_argument("--lpips-weights", help="optional LPIPS linear heads (.pth from the lpips package)")
    ap.add_argument("--random", action="store_true", help="random-init weights, for tests only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if not args.random and not args.torchvision_weights:
        sys.exit("error: give --torchvision-weights PATH (no download is possible here) or --random for test weights")

    torch.manual_seed(args.seed)
    model = build(args.arch)
    if args.torchvision_weights:
        if not os.path.isfile(args.torchvision_weights):
            sys.exit(f"error: {args.torchvision_weights} does not exist")
        model.load_state_dict(torch.load(args.torchvision_weights, map_location="cpu"))
    out = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if k.startswith("features.")}
    if args.lpips_weights:
        lin = torch.load(args.lpips_weights, map_location="cpu")
        for k, v in lin.items():
            if k.startswith("lin"):
                out[k] = v.detach().clone().contiguous()
    if args.random:
        out["__random_init__"] = torch.ones(1)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(out, args.out)
    kind = "RANDOM (tests only)" if args.random else "pretrained"
    print(f"{args.out}: {len(out)} tensors, {args.arch}, {kind}")


if __name__ == "__main__":
    main()
