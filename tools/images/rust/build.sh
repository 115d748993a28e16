#!/usr/bin/env bash
# Builds the rust:1.95.0-bookworm stand-in (see the Dockerfile) from this machine's
# rustup toolchain 1.95.0.
#
#   tools/images/rust/build.sh TAG RECIPE_HASH
set -euo pipefail
tag=$1 hash=$2
version=${tag#*:}; version=${version%%-*}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
triple="$(uname -m)-unknown-linux-gnu"
rustc_version=$(rustup run "$version" rustc --version 2>/dev/null) \
  || { echo "rustup has no toolchain $version on this machine: rustup toolchain install $version" >&2; exit 1; }
toolchain=$(cd "$rustup_home/toolchains/$version-$triple" && pwd -P)
rustup_bin=$(command -v rustup) || { echo "rustup not found" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/"
mkdir -p "$ctx/ca-certificates" "$ctx/rustup/toolchains" "$ctx/cargo/bin"
find /usr/local/share/ca-certificates -maxdepth 1 -name '*.crt' -exec cp {} "$ctx/ca-certificates/" \;
# The toolchain under the name the official image gives it, hard-linked (it is large),
# without the HTML documentation (800 MB), which a build never reads.
cp -al "$toolchain" "$ctx/rustup/toolchains/$version-$triple"
rm -rf "$ctx/rustup/toolchains/$version-$triple/share/doc"
printf 'version = "12"\ndefault_toolchain = "%s-%s"\nprofile = "minimal"\n' "$version" "$triple" \
  >"$ctx/rustup/settings.toml"
cp "$rustup_bin" "$ctx/cargo/bin/rustup"
for proxy in cargo rustc rustdoc rust-gdb rust-lldb rustfmt cargo-fmt cargo-clippy clippy-driver; do
  ln "$ctx/cargo/bin/rustup" "$ctx/cargo/bin/$proxy"
done
echo "building $tag from $rustc_version" >&2
docker build --label "platform.recipe=$hash" -t "$tag" "$ctx"
