#!/usr/bin/env python3
"""Writes the two reference archives of tests/test_zip_check.cpp with Python's own zipfile module (an independent
writer): stored.zip (two stored entries, as PyTorch writes them) and deflated.zip (a compressed entry, refused)."""
import zipfile

with zipfile.ZipFile("stored.zip", "w", compression=zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", b"hello brainspade" * 4)
    z.writestr("archive/version", b"3\n")
with zipfile.ZipFile("deflated.zip", "w", compression=zipfile.ZIP_DEFLATED) as z:
    z.writestr("archive/data.pkl", b"hello brainspade" * 4)

# oversized_tensor.pt: torch.save of {"stage": "vae", "w": a 2x3 float tensor} whose pickled sizes are changed to
# 256x3 (BININT1 2 -> BININT2 256), the CRC rewritten by zipfile: a well-formed archive and pickle whose tensor claims
# 768 elements of a 6-element storage. LibTorch 1.13 builds such a tensor without checking; reading it reads past the
# storage. Needs Debian's python3-torch (/usr/bin/python3).
import io  # noqa: E402

import torch  # noqa: E402

buf = io.BytesIO()
torch.save({"stage": "vae", "w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, buf)
src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
with zipfile.ZipFile("oversized_tensor.pt", "w", compression=zipfile.ZIP_STORED) as z:
    for name in src.namelist():
        data = src.read(name)
        if name.endswith("data.pkl"):
            assert b"K\x02K\x03\x86" in data
            data = data.replace(b"K\x02K\x03\x86", b"M\x00\x01K\x03\x86")
        z.writestr(zipfile.ZipInfo(name), data)
