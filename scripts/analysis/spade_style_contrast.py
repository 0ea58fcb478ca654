#!/usr/bin/python3
"""Does a SPADE draw the contrast of its style? Compares the images `sample images` made from the same label maps
with two styles (e.g. T1 and PD), map by map, inside the brain (label > 0 of the maps' hard labels).

  /usr/bin/python3 scripts/analysis/spade_style_contrast.py A_DIR B_DIR LABEL_DIR [--csf 1 --wm 3 --tumour 6]

A_DIR, B_DIR: output folders of `brainspade sample images` (images/<map>_image.nii.gz) for the same --labels and
--seed, or of two `brainspade sample` runs with the same seed and label generator and other styles
(images/pair_<i>.nii.gz); LABEL_DIR: the maps' hard labels (<map without _pv>_seg.nii.gz, as `sample` writes them in
labels/; for two `sample` runs, either run's labels/).
Prints the median (min, max) Pearson correlation of the two images of a map, how many maps draw CSF brighter than
WM in each, and the mean tumour - WM difference in brain z-scores. Needs numpy (Debian: python3-numpy).
"""
import argparse
import gzip
import os
import struct

import numpy as np


def read_nifti(path):
    raw = open(path, "rb").read()
    b = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    dim = struct.unpack("<8h", b[40:56])
    dtype = {2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 64: np.float64, 512: np.uint16}[
        struct.unpack("<h", b[70:72])[0]]
    offset = int(struct.unpack("<f", b[108:112])[0])
    shape = tuple(dim[1:dim[0] + 1])
    n = int(np.prod(shape))
    return np.frombuffer(b[offset:offset + n * np.dtype(dtype).itemsize], dtype=dtype).reshape(shape, order="F")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("labels")
    ap.add_argument("--csf", type=int, default=1)
    ap.add_argument("--wm", type=int, default=3)
    ap.add_argument("--tumour", type=int, default=6)
    args = ap.parse_args()
    files = os.listdir(os.path.join(args.a, "images"))
    # `sample images` writes <map>_image.nii.gz; `sample` (pairs) writes pair_<i>.nii.gz.
    suffix = "_image.nii.gz" if any(f.endswith("_image.nii.gz") for f in files) else ".nii.gz"
    names = sorted(f for f in files if f.endswith(suffix))
    if not names:
        raise SystemExit(f"{args.a}/images holds no *_image.nii.gz (sample images) or pair_*.nii.gz (sample)")
    missing = [f for f in names if not os.path.exists(os.path.join(args.b, "images", f))]
    if missing:
        raise SystemExit(f"{args.b}/images lacks {len(missing)} of A's images, e.g. {missing[0]}: "
                         "were both folders made from the same maps?")
    corr, csf_brighter, tumour = [], [0, 0], [[], []]
    for f in names:
        stem = f[: -len(suffix)]
        seg_name = (stem[: -len("_pv")] if stem.endswith("_pv") else stem) + "_seg.nii.gz"
        seg = read_nifti(os.path.join(args.labels, seg_name)).squeeze()
        imgs = [read_nifti(os.path.join(d, "images", f)).astype(np.float64).squeeze() for d in (args.a, args.b)]
        brain = seg > 0
        corr.append(np.corrcoef(imgs[0][brain], imgs[1][brain])[0, 1])
        for k, im in enumerate(imgs):
            z = (im - im[brain].mean()) / im[brain].std()
            if (seg == args.csf).sum() > 20 and (seg == args.wm).sum() > 20:
                csf_brighter[k] += z[seg == args.csf].mean() > z[seg == args.wm].mean()
            if (seg == args.tumour).sum() > 20:
                tumour[k].append(z[seg == args.tumour].mean() - z[seg == args.wm].mean())
    print(f"{len(names)} maps; correlation of the two images inside the brain: median {np.median(corr):.3f} "
          f"(min {min(corr):.3f}, max {max(corr):.3f})")
    print(f"CSF brighter than WM: A {csf_brighter[0]}, B {csf_brighter[1]}")
    print("tumour - WM (brain z): A {:.2f}, B {:.2f}".format(*(np.mean(t) if t else float('nan') for t in tumour)))


if __name__ == "__main__":
    main()
