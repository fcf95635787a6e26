#!/usr/bin/env bash
# Build the project's OS base image from Debian packages only (no Docker Hub):
#   debootstrap (minbase + python3, python3-venv, ca-certificates) -> strip docs -> docker import.
#
#   scripts/build-base-image.sh IMAGE_TAG
#
# Environment: DEBIAN_SUITE (bookworm), DEBIAN_MIRROR (http://deb.debian.org/debian),
# ML_PLATFORM_ROOTFS_TMP (/var/tmp). Needs root, debootstrap and a running Docker engine.
# The Python venv with the serving requirements is layered on top by
# ml_platform.images.base.ensure_base_image, which also calls this script when the OS image is
# missing; run that (python -m ml_platform.images.base) to get the complete base image.
set -euo pipefail

tag=${1:?usage: $0 IMAGE_TAG}
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
started=$(date +%s)
say() { printf '[base-image %4ss] %s\n' "$(( $(date +%s) - started ))" "$*" >&2; }

for tool in debootstrap docker tar; do
  command -v "$tool" >/dev/null || { echo "error: '$tool' is not installed (apt-get install debootstrap docker.io)" >&2; exit 2; }
done
[[ $(id -u) == 0 ]] || { echo "error: debootstrap needs root (run as root or set ML_PLATFORM_BASE_IMAGE to a prebuilt image)" >&2; exit 2; }

work=$(mktemp -d "${ML_PLATFORM_ROOTFS_TMP:-/var/tmp}/ml-platform-rootfs.XXXXXX")
rootfs="$work/rootfs"
cleanup() {
  # debootstrap mounts /proc and /sys in the target; an interrupted run must not leave them
  for m in proc sys; do mountpoint -q "$rootfs/$m" 2>/dev/null && umount -l "$rootfs/$m"; done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

say "debootstrap $suite (minbase + python3, python3-venv, ca-certificates) from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -30 "$work/debootstrap.log" >&2; exit 1; }

say "stripping docs, man pages, locales and apt caches"
rm -rf "$rootfs"/usr/share/{doc,man,info,lintian,linda}/* "$rootfs"/usr/share/locale/* \
  "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/debconf/*-old \
  "$rootfs"/var/log/* "$rootfs"/tmp/*
# keep them out of anything installed later with apt too
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/01-ml-platform-nodoc" <<'CFG'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
printf 'deb %s %s main\n' "$mirror" "$suite" >"$rootfs/etc/apt/sources.list"

say "docker import as $tag ($(du -sh --one-file-system "$rootfs" | cut -f1) on disk)"
tar --numeric-owner --one-file-system -C "$rootfs" \
    --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . \
  | docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["/bin/bash"]' \
      --change "LABEL org.opencontainers.image.title=ml-platform-debian-python" \
      --change "LABEL org.opencontainers.image.base.name=\"debian:$suite debootstrap minbase\"" \
      --message "debootstrap --variant=minbase $suite + python3" \
      - "$tag" >/dev/null
say "built $tag"
