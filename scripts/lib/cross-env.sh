# shellcheck shell=bash
# Environment for cross-compiling the workspace to another Linux architecture with
# Debian's cross toolchain (gcc-<triplet>, g++-<triplet>) and multi-arch -dev
# packages (libssl-dev:<arch>, zlib1g-dev:<arch>). Sourced by the Dockerfile's
# builder stage and by scripts/cross-arm64.sh, so both build the same way.
#
#   . scripts/lib/cross-env.sh <rust-target>     e.g. aarch64-unknown-linux-gnu
#   export CARGO_BUILD_TARGET=<rust-target>; . scripts/lib/cross-env.sh
#                    (the Dockerfile's form: POSIX sh's `.` takes no arguments)
#
# Exports CARGO_BUILD_TARGET and, when <rust-target> differs from the build
# machine's, everything the native parts of the build need:
#   rustc's linker        CARGO_TARGET_<TRIPLE>_LINKER
#   cc-rs (sqlite, openssl-sys's probe, ...)
#                         CC_/CXX_/AR_<triple>; the build machine's own triple
#                         keeps gcc/g++/ar, so build scripts and proc-macros
#                         still compile natively
#   librdkafka            rdkafka-sys runs librdkafka's own ./configure + make
#                         (mklove, not cmake), which read the plain CC, CXX, AR,
#                         RANLIB, ... and PKG_CONFIG_LIBDIR
#   pkg-config            the target's .pc files (openssl, zlib) for openssl-sys,
#                         libz-sys and librdkafka's configure
# For the build machine's own triple it only sets CARGO_BUILD_TARGET.

cross_env_target=${1:-${CARGO_BUILD_TARGET:-}}
if [ -z "$cross_env_target" ]; then
  echo "usage: . scripts/lib/cross-env.sh <rust-target> (or set CARGO_BUILD_TARGET)" >&2
  return 2
fi
cross_env_host=$(rustc -vV | sed -n 's/^host: //p')

# Rust triple -> Debian multi-arch triplet.
cross_env_debian_triplet() {
  case $1 in
    aarch64-unknown-linux-gnu) echo aarch64-linux-gnu ;;
    x86_64-unknown-linux-gnu) echo x86_64-linux-gnu ;;
    *) echo "cross-env: unsupported target $1" >&2; return 1 ;;
  esac
}

export CARGO_BUILD_TARGET="$cross_env_target"

if [ "$cross_env_target" != "$cross_env_host" ]; then
  cross_env_tc=$(cross_env_debian_triplet "$cross_env_target")
  cross_env_host_tc=$(cross_env_debian_triplet "$cross_env_host")
  cross_env_u=${cross_env_target//-/_}
  cross_env_host_u=${cross_env_host//-/_}
  cross_env_up=$(printf '%s' "$cross_env_u" | tr '[:lower:]' '[:upper:]')

  export "CARGO_TARGET_${cross_env_up}_LINKER=${cross_env_tc}-gcc"
  export "CC_${cross_env_u}=${cross_env_tc}-gcc" \
         "CXX_${cross_env_u}=${cross_env_tc}-g++" \
         "AR_${cross_env_u}=${cross_env_tc}-ar"
  export "CC_${cross_env_host_u}=gcc" \
         "CXX_${cross_env_host_u}=g++" \
         "AR_${cross_env_host_u}=ar"
  export CC="${cross_env_tc}-gcc" CXX="${cross_env_tc}-g++" AR="${cross_env_tc}-ar" \
         RANLIB="${cross_env_tc}-ranlib" LD="${cross_env_tc}-ld" NM="${cross_env_tc}-nm" \
         STRIP="${cross_env_tc}-strip" OBJDUMP="${cross_env_tc}-objdump"
  export PKG_CONFIG_ALLOW_CROSS=1 \
         PKG_CONFIG_LIBDIR="/usr/lib/${cross_env_tc}/pkgconfig:/usr/share/pkgconfig" \
         "PKG_CONFIG_LIBDIR_${cross_env_host_u}=/usr/lib/${cross_env_host_tc}/pkgconfig:/usr/share/pkgconfig"
  unset cross_env_tc cross_env_host_tc cross_env_u cross_env_host_u cross_env_up
fi
unset cross_env_target cross_env_host
unset -f cross_env_debian_triplet
