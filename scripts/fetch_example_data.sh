#!/usr/bin/env bash
# Fetches the real example MRI (Colin27 T1, AAL atlas, BrainWeb slices, nipype tissue maps) from Debian's
# archive into data/example/. Idempotent: files already present are kept; .deb files are cached.
# Works as root without sudo; needs only Debian's archive (apt-get download), no other network.
#   usage: scripts/fetch_example_data.sh [DEST]   (default: <repo>/data/example)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/data/example}"
CACHE="${BRAINSPADE_DEB_CACHE:-$ROOT/data/.deb-cache}"
mkdir -p "$DEST" "$CACHE"

# package  version-pinned file name  sha256 (Debian 12 bookworm)
PACKAGES=(
  "mricron-data mricron-data_1.2.20211006+dfsg-4_all.deb d40aa0ed66cf89bf6cafa049ad3884703c9d975c2ee2737525b7196528df9d6f"
  "insighttoolkit5-examples insighttoolkit5-examples_5.2.1-5+deb12u1_all.deb 6ca1f323eac0b3cba50e786bbf0f2c76ed44b52ecb9e7aeea808ccc42bf09f69"
  "python3-nipype python3-nipype_1.8.5-3_all.deb 00dd5b3652eb575984d3f74d1610c66f4b87dd68b1330d8144e02be323b091c2"
)
# destination name  <- path inside the extracted packages
FILES=(
  "ch2bet.nii.gz usr/share/mricron/templates/ch2bet.nii.gz"
  "ch2.nii.gz usr/share/mricron/templates/ch2.nii.gz"
  "aal.nii.gz usr/share/mricron/templates/aal.nii.gz"
  "BrainT1Slice.png usr/share/doc/insighttoolkit5-examples/examples/Data/BrainT1Slice.png"
  "BrainProtonDensitySlice.png usr/share/doc/insighttoolkit5-examples/examples/Data/BrainProtonDensitySlice.png"
  "tpm_csf.nii.gz usr/lib/python3/dist-packages/nipype/testing/data/tpm_00.nii.gz"
  "tpm_wm.nii.gz usr/lib/python3/dist-packages/nipype/testing/data/tpm_01.nii.gz"
  "tpm_gm.nii.gz usr/lib/python3/dist-packages/nipype/testing/data/tpm_02.nii.gz"
)

all_present() {
  for f in "${FILES[@]}"; do [ -s "$DEST/${f%% *}" ] || return 1; done
}
if all_present; then
  echo "example data already present in $DEST"
  exit 0
fi

EXTRACT="$(mktemp -d)"
trap 'rm -rf "$EXTRACT"' EXIT
for entry in "${PACKAGES[@]}"; do
  read -r pkg deb sha <<<"$entry"
  got="$(ls "$CACHE"/"${pkg}"_*_all.deb 2>/dev/null | head -n1 || true)"
  if [ -z "$got" ]; then
    echo "downloading $pkg from Debian's archive"
    # apt-get download writes into the current folder; as root it warns about running unsandboxed (harmless).
    (cd "$CACHE" && apt-get download -q "$pkg" 2>&1 | grep -v -i "unsandboxed" || true)
    got="$(ls "$CACHE"/"${pkg}"_*_all.deb 2>/dev/null | head -n1 || true)"
    if [ -z "$got" ]; then
      echo "error: could not download $pkg (run 'apt-get update' first?)" >&2
      exit 1
    fi
  fi
  actual="$(sha256sum "$got" | cut -d' ' -f1)"
  if [ "$(basename "$got")" != "$deb" ] || [ "$actual" != "$sha" ]; then
    echo "WARNING: $(basename "$got") (sha256 $actual) is not the checked $deb (sha256 $sha);" >&2
    echo "WARNING: Debian probably updated the package. Continuing; the files are checked below." >&2
  fi
  dpkg -x "$got" "$EXTRACT"
done

for f in "${FILES[@]}"; do
  read -r name src <<<"$f"
  if [ ! -s "$EXTRACT/$src" ]; then
    echo "error: $src is missing from the downloaded packages" >&2
    exit 1
  fi
  [ -s "$DEST/$name" ] || cp "$EXTRACT/$src" "$DEST/$name"
done
echo "example data in $DEST:"
ls -l "$DEST"
