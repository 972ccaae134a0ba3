# shellcheck shell=bash disable=SC2034  # the package arrays are used by the sourcing scripts
# Shared by scripts/run-embedded and scripts/test: install the Debian 12 packages gridd needs
# and build the tree with CMake + Ninja. Source it; every function is safe to call again.

# Everything needed to configure and build gridd, gridctl and the test binaries.
GRIDD_BUILD_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libboost1.81-dev libboost-url1.81-dev
  nlohmann-json3-dev libtomlplusplus-dev libcli11-dev
  libvirt-dev libvirt0 libvirt-clients
  libspdlog-dev libfmt-dev libssl-dev
  libsqlite3-dev sqlite3 libsystemd-dev
  libgtest-dev libgmock-dev googletest
  libcrypt-dev
)

# What gridd runs at run time: the HAProxy it starts and supervises for load balancers; QEMU
# with libvirt's QEMU driver (loaded inside gridd for qemu:///embed; libvirtd for
# qemu:///system; libvirt-daemon-system provides the libvirt-qemu user the driver requires);
# qemu-img for server disks on qemu:///embed; xorriso for the servers' NoCloud seeds.
GRIDD_RUNTIME_PACKAGES=(
  haproxy
  qemu-system-x86 qemu-utils
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-system
  xorriso
)

# What the test suite runs besides the built binaries: the end-to-end tests drive the daemon
# with Debian's libcloud GoGrid drivers under /usr/bin/python3; docs/api.md's curl examples
# run as written, and so do the customer examples in scripts/examples/ (curl and openssl's
# md5) and the TLS tests (s_client); promtool (in Debian's prometheus package) checks
# /metrics; systemd-analyze (systemd) verifies the unit. scripts/build-test-image assembles the guest image (the kernel
# and busybox-static packages are downloaded and unpacked into the image, never installed);
# iproute2 and procps for the network namespace libvirtd runs in and for finding guest
# processes.
GRIDD_TEST_PACKAGES=(
  python3 python3-libcloud curl openssl
  prometheus systemd
  syslinux mtools dosfstools cpio
  iproute2 procps
)

# What scripts/test's checking stages use: clang 14 with its sanitizer and libFuzzer runtimes
# (build-asan, build-tsan), clang-tidy and cppcheck (scripts/static-checks).
GRIDD_CHECK_PACKAGES=(
  clang-14 clang clang-tidy-14 libclang-rt-14-dev cppcheck
)

# What bench/run uses besides the build: wrk for the load (its Lua script signs the requests),
# nginx serving gridd's answers as static files for the reference, python3 for the
# provisioning client and the report, curl and openssl for single signed calls.
GRIDD_BENCH_PACKAGES=(
  wrk nginx-light python3 curl openssl
)

_gridd_apt_updated=0

gridd_log() { printf '==> %s\n' "$*" >&2; }

# True when the Debian package PKG is installed (not merely known or half-configured).
gridd_package_installed() {
  local status
  status=$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) || return 1
  [[ $status == installed ]]
}

# gridd_install_missing_packages PKG... — installs those of PKG that are not installed yet.
# Runs `apt-get update` at most once per shell, and only when something is missing.
gridd_install_missing_packages() {
  local missing=() pkg
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "error: dpkg-query not found; these scripts expect Debian 12 (bookworm)." >&2
    exit 1
  fi
  for pkg in "$@"; do
    gridd_package_installed "$pkg" || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0

  if [[ $(id -u) -ne 0 ]]; then
    echo "error: missing Debian packages: ${missing[*]}" >&2
    echo "       run this script as root, or install them first:" >&2
    echo "       sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi

  export DEBIAN_FRONTEND=noninteractive
  if ((_gridd_apt_updated == 0)); then
    gridd_log "apt-get update"
    apt-get update -q
    _gridd_apt_updated=1
  fi
  gridd_log "installing ${missing[*]}"
  # gridd starts the daemons it needs (HAProxy) itself; keep the packages' own services from
  # starting on install, unless the machine already has a policy of its own.
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  local status=0
  apt-get install -y -q --no-install-recommends "${missing[@]}" || status=$?
  ((own_policy)) && rm -f "$policy"
  return "$status"
}

# Prints the value of KEY from BUILD_DIR/CMakeCache.txt (empty when absent).
_gridd_cache_value() {
  local cache=$1/CMakeCache.txt key=$2
  [[ -f $cache ]] || return 0
  sed -n "s/^${key}:[A-Z]*=//p" "$cache" | head -n 1
}

# GRIDD_CCACHE=1 compiles through ccache (CMAKE_CXX_COMPILER_LAUNCHER) in every build dir these
# scripts configure; unset, a build dir keeps whatever launcher it was configured with.
# Sets _gridd_launcher to the CMake arguments for that.
_gridd_set_launcher() {
  _gridd_launcher=()
  [[ ${GRIDD_CCACHE:-0} == 1 ]] || return 0
  if ! command -v ccache >/dev/null; then
    echo "error: GRIDD_CCACHE=1 but ccache is not installed" >&2
    exit 1
  fi
  _gridd_launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
}

# Unity builds (CMAKE_UNITY_BUILD) for the build dirs these scripts configure: CMake compiles
# the sources of each target in batches of GRIDD_UNITY_BATCH files, one compiler run per batch,
# so the headers every file includes (nlohmann::json, GoogleTest, spdlog, Asio) are parsed and
# instantiated once per batch instead of once per file; that is most of a from-scratch build.
# Measured on 2 CPUs from a fresh clone, no ccache (docs/operations.md has the details): the
# build-asan build took 1,269 CPU-s without, 704 CPU-s in batches of 8. Batches of 16 differ
# only in the virt layer and the integration tests, which 8 splits into more batches that run
# side by side. GRIDD_UNITY=0 turns it off (an edited file then recompiles alone, not with its
# batch, which suits incremental work). Sets _gridd_unity to the CMake arguments for that.
_gridd_set_unity() {
  if [[ ${GRIDD_UNITY:-1} == 0 ]]; then
    _gridd_unity=(-DCMAKE_UNITY_BUILD=OFF)
  else
    _gridd_unity=(-DCMAKE_UNITY_BUILD=ON "-DCMAKE_UNITY_BUILD_BATCH_SIZE=${GRIDD_UNITY_BATCH:-8}")
  fi
}

# gridd_build BUILD_DIR TYPE [TARGET...] — configures the source tree this file belongs to in
# BUILD_DIR (Ninja, CMAKE_BUILD_TYPE=TYPE) and builds TARGETs (default: everything) with
# nproc parallel jobs. A build dir configured for another generator or another source tree
# is reconfigured from scratch.
gridd_build() {
  local build_dir=$1 type=$2
  shift 2
  local source_dir
  source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)

  mkdir -p "$build_dir"
  build_dir=$(cd "$build_dir" && pwd -P)
  if [[ -f $build_dir/CMakeCache.txt ]]; then
    local generator home
    generator=$(_gridd_cache_value "$build_dir" CMAKE_GENERATOR)
    home=$(_gridd_cache_value "$build_dir" CMAKE_HOME_DIRECTORY)
    if [[ $generator != Ninja ]] ||
       [[ $(cd "$home" 2>/dev/null && pwd -P) != "$source_dir" ]]; then
      gridd_log "$build_dir was configured differently; configuring it again"
      rm -rf "$build_dir/CMakeCache.txt" "$build_dir/CMakeFiles"
    fi
  fi

  gridd_log "configuring $type build in $build_dir"
  _gridd_set_launcher
  _gridd_set_unity
  cmake -S "$source_dir" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" "${_gridd_launcher[@]}" \
    "${_gridd_unity[@]}"

  local targets=()
  (($# > 0)) && targets=(--target "$@")
  gridd_log "building${*:+ $*} ($(nproc) jobs)"
  cmake --build "$build_dir" --parallel "$(nproc)" "${targets[@]}"
}

# gridd_configure_sanitized BUILD_DIR SANITIZERS [CMAKE_ARG...] — configures a clang build of
# the tree in BUILD_DIR with -DGRIDD_SANITIZERS=SANITIZERS: -O1 (fast to compile, still quick
# to run) with line tables only, which is what the sanitizers' stack traces need. A build dir
# configured with another compiler or generator is configured from scratch.
gridd_configure_sanitized() {
  local build_dir=$1 sanitizers=$2
  shift 2
  local source_dir
  source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
  mkdir -p "$build_dir"
  if [[ -f $build_dir/CMakeCache.txt ]] &&
     { [[ $(_gridd_cache_value "$build_dir" CMAKE_CXX_COMPILER) != *clang++* ]] ||
       [[ $(_gridd_cache_value "$build_dir" CMAKE_GENERATOR) != Ninja ]]; }; then
    gridd_log "$build_dir was configured differently; configuring it again"
    rm -rf "$build_dir/CMakeCache.txt" "$build_dir/CMakeFiles"
  fi
  _gridd_set_launcher
  _gridd_set_unity
  CC=clang CXX=clang++ cmake -S "$source_dir" -B "$build_dir" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
    -DGRIDD_SANITIZERS="$sanitizers" -DGRIDD_BUILD_BENCH=OFF "${_gridd_launcher[@]}" \
    "${_gridd_unity[@]}" "$@" >/dev/null
}

# gridd_configure_asan BUILD_DIR — the ASan+UBSan build that scripts/test runs the suite on and
# that also holds the libFuzzer targets (scripts/fuzz, bench/fuzz): one clang build for both.
gridd_configure_asan() {
  gridd_configure_sanitized "$1" "address;undefined" -DGRIDD_BUILD_FUZZERS=ON
}
