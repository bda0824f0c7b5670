#!/bin/sh
# Boots one sandbox machine: systemd as PID 1 on a volatile overlay of the host's root.
#
#   boot.sh outer LAUNCHER_CGROUP MACHINE_CGROUP_DIR MACHINE_CGROUP NETNS MACHINE_DIR ...
#       (host side, the machine's supervisor) joins LAUNCHER_CGROUP (a host path) and
#       boots the machine: it enters the machine's network namespace and runs this
#       script as "inner" in new PID, mount and UTS namespaces.  When the machine's
#       PID 1 ends because of a reboot (reboot(2) in a PID namespace kills its init
#       with SIGHUP, and unshare dies of the same signal), it empties the machine's
#       cgroup MACHINE_CGROUP_DIR (a host path) and boots it again; any other end
#       (power-off: SIGINT, a kill) ends the supervisor too.  Each boot adds one to
#       the count in MACHINE_DIR/boots.
#   boot.sh inner MACHINE_CGROUP ...
#       (PID 1 of the new PID namespace) moves into MACHINE_CGROUP (relative to the
#       cgroup2 root) and re-runs itself as "root" in a new cgroup namespace, so that
#       systemd alone owns the machine's cgroup (the launcher stays outside it).
#   boot.sh root MACHINE_DIR DISK_DIR HOSTNAME INSTALL...
#       builds the root and execs systemd.
#
# MACHINE_DIR holds `root/` (the mount point) and `seed/` (files copied over the
# root on every boot: machine-id, hostname, masks, fleet config).  DISK_DIR holds
# the overlay's `upper/` and `work/`, which survive a reboot and a poweroff.  INSTALL
# items `bind SOURCE TARGET` show fleetd's install where the overlay and the fresh
# /tmp and /run do not (install.py decides): the host directory SOURCE is bound
# read-only at TARGET.  TARGET has no symlinks in it, so nothing here follows a
# link out of the machine's root.  Every boot gets a fresh /run and /tmp and its own
# boot id (/proc/sys/kernel/random/boot_id, as systemd-nspawn does).
set -eu

mode=$1
shift

if [ "$mode" = outer ]; then
    launcher_cgroup=$1
    cgroup_dir=$2
    machine_cgroup=$3
    netns=$4
    machine_dir=$5
    shift 4
    echo $$ >"$launcher_cgroup/cgroup.procs"
    boots=$(cat "$machine_dir/boots" 2>/dev/null || echo 0)
    while :; do
        boots=$((boots + 1))
        echo "$boots" >"$machine_dir/boots.new"
        mv "$machine_dir/boots.new" "$machine_dir/boots"
        status=0
        ip netns exec "$netns" unshare --pid --fork --kill-child --mount --uts \
            --propagation private /bin/sh "$0" inner "$machine_cgroup" "$@" || status=$?
        # 129: killed by SIGHUP, the machine asked for a reboot.
        [ "$status" -eq 129 ] || exit "$status"
        echo "boot.sh: the machine rebooted; booting it again" >&2
        # The cgroups systemd made are left empty: remove them (a cgroup stays busy for
        # a moment after its last process is reaped), so the next boot starts clean.
        tries=0
        while ! find "$cgroup_dir" -depth -type d -exec rmdir {} + 2>/dev/null; do
            tries=$((tries + 1))
            [ "$tries" -lt 100 ] || { echo "boot.sh: cannot empty $cgroup_dir" >&2; exit 1; }
            sleep 0.05
        done
        mkdir "$cgroup_dir"
    done
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
# This boot's own id (the host's would be the same across the machine's reboots).
cat /proc/sys/kernel/random/uuid >"$root/run/.boot_id"
mount --bind "$root/run/.boot_id" "$root/proc/sys/kernel/random/boot_id"
mount -o remount,bind,ro "$root/proc/sys/kernel/random/boot_id"
rm "$root/run/.boot_id"

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
