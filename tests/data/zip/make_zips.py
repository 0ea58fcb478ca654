#!/usr/bin/env python3
"""Writes the two reference archives of tests/test_zip_check.cpp with Python's own zipfile module (an independent
writer): stored.zip (two stored entries, as PyTorch writes them) and deflated.zip (a compressed entry, refused)."""
import zipfile

with zipfile.ZipFile("stored.zip", "w", compression=zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", b"hello brainspade" * 4)
    z.writestr("archive/version", b"3\n")
with zipfile.ZipFile("deflated.zip", "w", compression=zipfile.ZIP_DEFLATED) as z:
    z.writestr("archive/data.pkl", b"hello brainspade" * 4)
