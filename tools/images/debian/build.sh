#!/usr/bin/env bash
# The debian:12.12-slim stand-in: Debian bookworm from Debian's own packages with
# debootstrap (--variant=minbase: essential and required packages, apt), trimmed the
# way the official slim variant is (no documentation, manual pages or translations,
# dpkg told to keep leaving them out), as one layer of an image of that architecture.
#
#   [DEBIAN_ARCH=arm64] tools/images/debian/build.sh TAG RECIPE_HASH [MIRROR]
#
# DEBIAN_ARCH defaults to this machine's; a foreign one needs QEMU's binfmt handler
# (Debian's qemu-user-static), which runs debootstrap's second stage.
set -euo pipefail
tag=$1 hash=$2 mirror=${3:-http://deb.debian.org/debian}
arch=${DEBIAN_ARCH:-$(dpkg --print-architecture)}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --arch="$arch" --variant=minbase bookworm "$root/rootfs" "$mirror" >"$root/debootstrap.log" 2>&1 \
  || { tail -n 20 "$root/debootstrap.log" >&2; echo "debootstrap failed" >&2; exit 1; }
r="$root/rootfs"
# What the official slim images leave out, for packages installed later too.
cat >"$r/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
CFG
cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
echo 'Acquire::Languages "none";' >"$r/etc/apt/apt.conf.d/docker-no-languages"
find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$r"/usr/share/{man,groff,info,locale,lintian,linda}/* "$r"/var/lib/apt/lists/* \
  "$r"/var/cache/apt/* "$r"/var/cache/debconf/*-old "$r"/var/log/* "$r"/tmp/* \
  "$r"/etc/hostname "$r"/etc/resolv.conf "$r/etc/machine-id"
: >"$r/etc/machine-id"
# Built rather than imported: the image's configuration then names its architecture.
mkdir "$root/context"
tar --numeric-owner --xattrs -C "$r" -cf "$root/context/rootfs.tar" .
cat >"$root/context/Dockerfile" <<'EOF'
FROM scratch
ADD rootfs.tar /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["bash"]
EOF
docker build --platform "linux/$arch" --label "platform.recipe=$hash" -t "$tag" "$root/context" >/dev/null
