#!/usr/bin/env bash
# Installs the system packages tsbuild's tests use: independent OCI readers (skopeo, umoci,
# oci-image-tool), the CNCF distribution registry, htpasswd, busybox-static for base images,
# runc for the runtime benchmark, a C compiler for the bundled runtime helper, strace (the
# durability test watches the order of fsync and rename).
set -euo pipefail
pkgs=(attr strace skopeo umoci oci-image-tool docker-registry apache2-utils busybox-static runc zstd gcc libc6-dev make python3 ca-certificates openssl)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
