#!/bin/sh
# Boots one sandbox machine: systemd as PID 1 on a volatile overlay of the host's root.
#
#   boot.sh outer LAUNCHER_CGROUP MACHINE_CGROUP NETNS MACHINE_DIR DISK_DIR HOSTNAME INSTALL...
#       (host side) joins LAUNCHER_CGROUP (a host path), enters the machine's network
#       namespace and re-runs this script as "inner" in new PID, mount and UTS namespaces.
#   boot.sh inner MACHINE_CGROUP ...
#       (PID 1 of the new PID namespace) moves into MACHINE_CGROUP (relative to the
#       cgroup2 root) and re-runs itself as "root" in a new cgroup namespace, so that
#       systemd alone owns the machine's cgroup (the launcher stays outside it).
#   boot.sh root MACHINE_DIR DISK_DIR HOSTNAME INSTALL...
#       builds the root and execs systemd.
#
# MACHINE_DIR holds `root/` (the mount point) and `seed/` (files copied over the
# root on every boot: machine-id, hostname, masks, fleet config).  DISK_DIR holds
# the overlay's `upper/` and `work/`, which survive a poweroff.  INSTALL items
# `bind SOURCE TARGET` show fleetd's install where the overlay and the fresh
# /tmp and /run do not (install.py decides): the host directory SOURCE is bound
# read-only at TARGET.  TARGET has no symlinks in it, so nothing here follows a
# link out of the machine's root.
set -eu

mode=$1
shift

if [ "$mode" = outer ]; then
    launcher_cgroup=$1
    netns=$3
    echo $$ >"$launcher_cgroup/cgroup.procs"
    machine_cgroup=$2
    shift 3
    exec ip netns exec "$netns" unshare --pid --fork --kill-child --mount --uts \
        --propagation private /bin/sh "$0" inner "$machine_cgroup" "$@"
fi

if [ "$mode" = inner ]; then
    machine_cgroup=$1
    shift
    hierarchy=$1/cgroup
    mkdir -p "$hierarchy"
    mount -t cgroup2 cgroup2 "$hierarchy"
    echo $$ >"$hierarchy/$machine_cgroup/cgroup.procs"
    umount "$hierarchy"
    exec unshare --cgroup /bin/sh "$0" root "$@"
fi

[ "$mode" = root ] || { echo "boot.sh: unknown mode $mode" >&2; exit 2; }

machine_dir=$1
disk=$2
name=$3
shift 3
root=$machine_dir/root

mkdir -p "$disk/upper" "$disk/work" "$root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$disk/upper,workdir=$disk/work" "$root"

mount -t proc proc "$root/proc"
# Kernel tunables are global: the machine sees them read-only, as under nspawn.
mount --bind "$root/proc/sys" "$root/proc/sys"
mount -o remount,bind,ro "$root/proc/sys"
if [ -e "$root/proc/sysrq-trigger" ]; then
    mount --bind "$root/proc/sysrq-trigger" "$root/proc/sysrq-trigger"
    mount -o remount,bind,ro "$root/proc/sysrq-trigger"
fi
# A read-only /sys keeps udev and friends inside from touching the host's devices.
mount --rbind /sys "$root/sys"
mount -o remount,bind,ro "$root/sys"
mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"
mount --rbind /dev "$root/dev"
# systemd writes its status to /dev/console: keep it in the machine's boot log.
mount --bind /proc/self/fd/1 "$root/dev/console" 2>/dev/null || true
# The kernel log is the host's: journald inside neither reads nor writes it.
mount --bind /dev/null "$root/dev/kmsg"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$root/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"

# After the tmpfs mounts, which would hide them; before systemd, which keeps
# /tmp as it finds it mounted.
while [ $# -gt 0 ]; do
    [ "$1" = bind ] && [ $# -ge 3 ] || { echo "boot.sh: bad install item $1" >&2; exit 2; }
    mkdir -p "$root$3"
    mount --bind "$2" "$root$3"
    mount -o remount,bind,ro "$root$3"
    shift 3
done

cp -a "$machine_dir/seed/." "$root/"
hostname "$name"

cd "$root"
pivot_root . .
umount -l .
cd /
exec env -i container=fleetd-sandbox PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --show-status=false
