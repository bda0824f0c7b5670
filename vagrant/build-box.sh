#!/bin/sh
# build-box.sh — build a Debian 12 Vagrant box for the libvirt provider from
# Debian's packages alone (no box download), for hosts without internet access
# other than a Debian mirror.  Run as root:
#
#   sh vagrant/build-box.sh OUT.box
#
# What the box is: a minbase Debian 12 (mmdebstrap) with the kernel, systemd,
# systemd-networkd (DHCP on every interface that Vagrant did not configure),
# sshd, sudo, python3, python3-venv and rsync; the user vagrant with Vagrant's
# insecure key and password-less sudo.  Its disk is one ext4 file system
# without a partition table or boot loader: the box's own Vagrantfile boots the
# kernel and initrd it carries directly (libvirt's <kernel>/<initrd>), so no
# loop device, mount or GRUB is needed to build it.  About 2.5 minutes and
# 1.5 GB of temporary space (under $TMPDIR, default /var/tmp).
#
# Needs: mmdebstrap, e2fsprogs (mkfs.ext4 -d), qemu-utils, vagrant (its key).
set -eu

PROG=build-box.sh
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

[ $# -eq 1 ] || die "usage: sh $0 OUT.box"
OUT=$1
[ "$(id -u)" -eq 0 ] || die "run me as root (mmdebstrap's root mode, file ownership in the image)"
for tool in mmdebstrap mkfs.ext4 qemu-img tar; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done
VAGRANT_KEY=
for key in /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub \
    /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub; do
    [ -r "$key" ] && VAGRANT_KEY=$key
done
[ -n "$VAGRANT_KEY" ] || die "Vagrant's insecure public key (keys/vagrant.pub) not found: install vagrant"

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/fleetd-box.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT INT TERM
ROOT=$WORK/root
mkdir "$WORK/box"

# The customize hook runs on the host with the new root file system as $1.
cat >"$WORK/customize.sh" <<'HOOK'
#!/bin/sh
set -eu
root=$1
key=$2
chroot "$root" useradd --create-home --shell /bin/bash vagrant
install -d -m 700 -o 1000 -g 1000 "$root/home/vagrant/.ssh"
install -m 600 -o 1000 -g 1000 "$key" "$root/home/vagrant/.ssh/authorized_keys"
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/vagrant"
chmod 440 "$root/etc/sudoers.d/vagrant"
echo fleetd-box >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 fleetd-box\n' >"$root/etc/hosts"
echo '/dev/vda / ext4 errors=remount-ro 0 1' >"$root/etc/fstab"
# DHCP on any interface that has no other .network file.  Named to sort after
# Vagrant's 50-vagrant-*.network: systemd-networkd applies the first file (by
# name) that matches an interface, and this one matches every interface.
cat >"$root/etc/systemd/network/99-fleetd-box-dhcp.network" <<'EOF'
[Match]
Name=eth*

[Network]
DHCP=ipv4
EOF
# network-online.target once any interface is up: the private network's
# interface has no DHCP server and is configured by Vagrant only later.
mkdir -p "$root/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat >"$root/etc/systemd/system/systemd-networkd-wait-online.service.d/any.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=60
EOF
chroot "$root" systemctl enable --quiet systemd-networkd.service
# Less to do at boot, which is slow under QEMU's emulation.
chroot "$root" systemctl mask --quiet apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    fstrim.timer getty@tty1.service
# Each VM makes its own machine id on first boot (fleetd names machines by it).
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
mkdir -p "$root/usr/share/doc" # web@.service serves it
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
HOOK

echo "$PROG: mmdebstrap of Debian 12 into $ROOT"
mmdebstrap --quiet --variant=minbase \
    --include=linux-image-amd64,systemd,systemd-sysv,udev,dbus,openssh-server,sudo,python3,python3-venv,rsync,iproute2,procps \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --customize-hook="sh $WORK/customize.sh \"\$1\" $VAGRANT_KEY" \
    bookworm "$ROOT" http://deb.debian.org/debian
for file in "$ROOT"/boot/vmlinuz-*; do cp -- "$file" "$WORK/box/vmlinuz"; done
for file in "$ROOT"/boot/initrd.img-*; do cp -- "$file" "$WORK/box/initrd.img"; done
if ! { [ -s "$WORK/box/vmlinuz" ] && [ -s "$WORK/box/initrd.img" ]; }; then
    die "no kernel or initrd in the image"
fi

echo "$PROG: the disk (8 GiB ext4, sparse) and its qcow2"
mkfs.ext4 -q -L fleetd-root -d "$ROOT" "$WORK/disk.raw" 8G
rm -rf -- "$ROOT"
qemu-img convert -O qcow2 "$WORK/disk.raw" "$WORK/box/box.img"
rm -f -- "$WORK/disk.raw"
cat >"$WORK/box/metadata.json" <<'EOF'
{"provider": "libvirt", "format": "qcow2", "virtual_size": 8}
EOF
# Merged under the project's Vagrantfile: the box boots its own kernel.
cat >"$WORK/box/Vagrantfile" <<'EOF'
Vagrant.configure("2") do |config|
  config.vm.provider "libvirt" do |lv|
    lv.kernel = File.join(__dir__, "vmlinuz")
    lv.initrd = File.join(__dir__, "initrd.img")
    # The TSC as the clock: QEMU's emulation makes the kernel distrust it and
    # fall back to the HPET, whose every read is an emulated device access
    # (half the guests' CPU time went to the kernel reading the time).
    lv.cmd_line = "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet clocksource=tsc tsc=reliable"
  end
  # Each key swap costs SSH round trips to slow emulated VMs; the VMs are only
  # reachable inside test.sh's network namespace.
  config.ssh.insert_key = false
end
EOF
tar -C "$WORK/box" -cf "$OUT.tmp" metadata.json Vagrantfile vmlinuz initrd.img box.img
mv -f -- "$OUT.tmp" "$OUT"
echo "$PROG: $OUT ($(du -h -- "$OUT" | cut -f 1))"
