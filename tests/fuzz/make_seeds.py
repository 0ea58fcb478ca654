#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/seed_*): the repo's configs and small
NIfTI-1 and PNG files built byte by byte, so that no imaging library is needed. Re-run after changing a seed."""
import gzip, os, shutil, struct, zlib
from pathlib import Path

root = Path(__file__).resolve().parents[2]
corpus = root / "tests/fuzz/corpus"

def nifti(dims, datatype, bitpix, payload, spacing=(1.0, 1.0, 2.0), qform=1):
    """A NIfTI-1 single file (.nii): 348-byte header, 4 extension bytes, payload at 352."""
    h = bytearray(348)
    struct.pack_into("<i", h, 0, 348)
    dim = [len(dims)] + list(dims) + [1] * (7 - len(dims))
    struct.pack_into("<8h", h, 40, *dim)
    struct.pack_into("<hh", h, 70, datatype, bitpix)
    struct.pack_into("<8f", h, 76, 1.0, *spacing, *([1.0] * (7 - len(spacing))))
    struct.pack_into("<f", h, 108, 352.0)
    struct.pack_into("<ff", h, 112, 1.0, 0.0)   # scl_slope, scl_inter
    struct.pack_into("<hh", h, 252, qform, 0)   # qform_code, sform_code
    struct.pack_into("<4s", h, 344, b"n+1\0")
    return bytes(h) + b"\0\0\0\0" + payload

def png(width, height, colour_type, bit_depth, rows, palette=None):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    raw = b"".join(b"\0" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    if palette:
        out += chunk(b"PLTE", palette)
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")

def write(target, name, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)

for sub in ("tiny", "paper"):
    for f in sorted((root / "configs" / sub).glob("*.yaml")):
        write("config", f"seed_{sub}_{f.stem}.yaml", f.read_bytes())
write("config", "seed_overrides.yaml", b"run: {seed: 3, out_dir: 'x y'}\ntrain: {steps: 1e3, batch_size: 2}\n")

f32 = struct.pack("<24f", *[float(i) for i in range(24)])
write("nifti", "seed_float_4x3x2.nii", nifti((4, 3, 2), 16, 32, f32))
write("nifti", "seed_uint8_4x3x2.nii", nifti((4, 3, 2), 2, 8, bytes(range(24))))
write("nifti", "seed_int16_4x3x2.nii", nifti((4, 3, 2), 4, 16, struct.pack("<24h", *range(-12, 12))))
write("nifti", "seed_double_2x2x2.nii", nifti((2, 2, 2), 64, 64, struct.pack("<8d", *range(8))))
write("nifti", "seed_pv_2x2x2x3.nii", nifti((2, 2, 2, 3), 16, 32, struct.pack("<24f", *([1.0] * 8 + [0.0] * 16))))
write("nifti", "seed_float_gz.nii.gz", gzip.compress(nifti((4, 3, 2), 16, 32, f32), mtime=0))

write("png", "seed_grey8.png", png(4, 3, 0, 8, [bytes([0, 64, 128, 255])] * 3))
write("png", "seed_grey16.png", png(2, 2, 0, 16, [struct.pack(">2H", 0, 65535)] * 2))
write("png", "seed_rgb8.png", png(2, 2, 2, 8, [bytes([255, 0, 0, 0, 255, 0])] * 2))
write("png", "seed_palette.png", png(2, 2, 3, 8, [bytes([0, 1])] * 2, palette=bytes([0, 0, 0, 255, 255, 255])))

# Checkpoints: torch.save of a dict like brainspade's (Python's writer, so the C++ reader meets a foreign archive), a
# truncated and a bit-flipped copy. Needs Debian's python3-torch; skipped without it.
try:
    import io
    import torch
except ImportError:
    torch = None
if torch is not None:
    buf = io.BytesIO()
    torch.save({"stage": "vae", "step": 3, "lr": 1e-4, "vae.w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, buf)
    ckpt = buf.getvalue()
    write("checkpoint", "seed_torch_save.ckpt", ckpt)
    write("checkpoint", "seed_truncated.ckpt", ckpt[: len(ckpt) // 2])
    flipped = bytearray(ckpt)
    flipped[ckpt.find(struct.pack("<f", 4.0)) + 3] ^= 0x01
    write("checkpoint", "seed_bitflip.ckpt", bytes(flipped))
