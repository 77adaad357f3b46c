#!/usr/bin/env bash
# Podman for the containers family's integration tests (tests/integration/test_containers_real.py), idempotent.
#
# - installs podman and runc (and catatonit, podman's --init) with apt-get when missing (root only);
# - writes <checkout>/.cache/podman/containers.conf (runc, cgroupfs, file events, ulimits that work here) and
#   storage.conf (vfs storage under .cache/podman), so the tests never touch the machine's own podman state:
#   the tests point CONTAINERS_CONF and CONTAINERS_STORAGE_CONF at them;
# - builds the image localhost/agentops-test:1 when missing: a root filesystem of the static busybox from
#   Debian's busybox-static package (apt-get download, never installed on the host), imported with
#   `podman import` - seconds, offline, no registry. It has sh, sleep, tail, dd and an /etc/passwd with an
#   unprivileged user "agent" (uid 1000).
#
# Prints the two variables to export. PODMAN_SETUP_ROOT overrides the cache directory.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="${PODMAN_SETUP_ROOT:-$here/.cache/podman}"
image="localhost/agentops-test:1"

missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
[ -x /usr/libexec/podman/catatonit ] || [ -x /usr/bin/catatonit ] || missing+=(catatonit)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing system packages: ${missing[*]}; install them (apt-get install ${missing[*]}) and re-run." >&2
    exit 1
  fi
  echo "Installing system packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -qq -o DPkg::Lock::Timeout=300
    apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
  }
fi

mkdir -p "$root/storage" "$root/run" "$root/tmp" "$root/cni" "$root/volumes"
chmod 0700 "$root"
init_path=/usr/libexec/podman/catatonit
[ -x "$init_path" ] || init_path=/usr/bin/catatonit
cat >"$root/containers.conf.new" <<EOF
# Written by scripts/podman_setup.sh for the tests; crun fails on setrlimit and hybrid cgroups here, so runc.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
init_path = "$init_path"

[network]
network_config_dir = "$root/cni"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$root/events.log"
tmp_dir = "$root/tmp"
volume_path = "$root/volumes"
EOF
mv "$root/containers.conf.new" "$root/containers.conf"
cat >"$root/storage.conf.new" <<EOF
# Written by scripts/podman_setup.sh: the tests' own image and container store.
[storage]
driver = "vfs"
graphroot = "$root/storage"
runroot = "$root/run"
EOF
mv "$root/storage.conf.new" "$root/storage.conf"

export CONTAINERS_CONF="$root/containers.conf" CONTAINERS_STORAGE_CONF="$root/storage.conf"
if ! podman image exists "$image" 2>/dev/null; then
  work="$(mktemp -d "$root/build.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download -q busybox-static >/dev/null 2>&1)
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/deb"
  rootfs="$work/rootfs"
  mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/home/agent" "$rootfs/data" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
  cp "$work/deb/bin/busybox" "$rootfs/bin/busybox"
  for tool in sh sleep tail dd cat echo ls id touch mkdir head true false kill ps env rm wc grep printf; do
    ln -s busybox "$rootfs/bin/$tool"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000:agent:/home/agent:/bin/sh\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nagent:x:1000:\n' >"$rootfs/etc/group"
  chmod 1777 "$rootfs/tmp"
  chown 1000:1000 "$rootfs/home/agent"
  tar -C "$rootfs" --numeric-owner -cf "$work/rootfs.tar" .
  podman import -q --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' "$work/rootfs.tar" "$image" >/dev/null
fi
echo "CONTAINERS_CONF=$CONTAINERS_CONF"
echo "CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF"
