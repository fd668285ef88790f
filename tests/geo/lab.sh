#!/usr/bin/env bash
# shellcheck disable=SC2016  # single-quoted scripts run inside a site, with arguments
# lab.sh — live single-node Pacemaker sites (two by default: A and B) and
# booth arbitrators (one by default: arb) on one machine, each in its own
# namespaces, for the geo end-to-end tests and the walkthroughs in
# examples/geo/.
#
#   lab.sh up                 build the topology, start corosync + pacemaker
#                             at every site and boothd everywhere
#   lab.sh down [LOGDIR]      stop everything, remove namespaces, links and
#                             state (idempotent); logs are copied to LOGDIR
#                             (default $GEO_BASE/logs) first
#   lab.sh exec SITE CMD...   run CMD inside SITE (a site or an arbitrator)
#   lab.sh install SITE       install cib-replicator into SITE like an admin
#                             would: binaries in /usr/sbin, OCF agents in
#                             /usr/lib/ocf/resource.d/cib-replicator, the
#                             site's files in /etc/cib-replicator
#   lab.sh replicator         certificates, `install` at every site, the
#                             subscriber resource at every site, the
#                             publisher resource bound to the ticket at
#                             $GEO_PUBLISHER_AT (default A)
#   lab.sh kill-site SITE     SIGKILL every process of SITE and remove the
#                             addresses its resources added (power lost)
#   lab.sh start-site SITE    boot a killed site again: empty /run, its CIB
#                             and files persist
#   lab.sh start-pacemaker SITE    start pacemakerd at SITE again after
#                             it stopped (corosync runs on), wait for a DC
#   lab.sh partition SITE | heal SITE    cut / restore SITE's link
#   lab.sh stop-booth SITE | start-booth SITE    SIGKILL / start SITE's
#                             boothd alone (the rest of the site runs on)
#   lab.sh status             crm_mon and booth list at every site
#   lab.sh ip SITE            the site's address
#   lab.sh sites              the sites (arbitrators not included)
#
# Must run as root. Needs iproute2, util-linux (unshare, nsenter), corosync,
# pacemaker, pacemaker-cli-utils, booth, and gcc when the kernel is 6.9 or
# newer (see booth-nlfix.c).
#
# Topology: a bridge in namespace "$GEO_NS-hub", one veth per site into
# namespaces "$GEO_NS-A", "-B", "-arb", … Addresses: $GEO_SUBNET.1 for A,
# .2 for B, .3 for arb, then .4 for C, .5 for D and so on; arbitrator
# arbN has .(100+N). `up` records the sites, so the other commands (and
# `down`) need no GEO_SITES.
# The host's network is not touched. Each site runs under a holder process,
# PID 1 of its own pid namespace, with private mounts: /run, /dev/shm,
# /var/lib/pacemaker, /var/lib/corosync, /var/log/pacemaker, and overlays on
# /etc, /usr/sbin, /usr/lib/ocf/resource.d, /var/lib and /var/log (so
# installing there changes only that site). Killing the holder kills everything in the site.
#
# Environment:
#   GEO_BASE        state directory (default /tmp/cib-replicator-geo)
#   GEO_NS          namespace prefix (default crgeo)
#   GEO_SUBNET      first three octets (default 10.213.0)
#   GEO_BOOTH_CONF  booth.conf to use at every site instead of the one made
#                   from the variables below (it must match GEO_SUBNET)
#   GEO_SITES       the sites, letters (default "A B"; "A B C" for three)
#   GEO_ARBS        the arbitrators (default "arb"; e.g. "arb arb2")
#   GEO_TICKET      the booth ticket, or several separated by spaces
#                   (default geo)
#   GEO_EXPIRE      booth expire seconds (default 5; booth's own is 600)
#   GEO_RENEWAL_FREQ  booth renewal-freq seconds (default 2; empty: none,
#                   booth renews at half of expire)
#   GEO_HANDLER     before-acquire-handler for the ticket (default none;
#                   booth allows at most 64 characters)
#   GEO_ATTR_PREREQ attr-prereq for the ticket (default none)
#   GEO_LOGS        where `down` (also after a failed `up`) copies the logs
#   GEO_BIN         directory with cib-publisher and cib-subscriber
#                   (default <repo>/target/debug)
#   GEO_DEB         a cib-replicator .deb: `install` takes the binaries and
#                   the agents from it (their installed paths) instead
#   GEO_ETC_A, GEO_ETC_B, …   directories copied to /etc/cib-replicator of
#                   each site by `install` (default examples/geo/site-a, …)
#   GEO_PUBLISHER_AT  where `replicator` creates the publisher resource
#                   (examples/geo/publisher.xml) bound to GEO_TICKET
#                   (default A; empty: nowhere)
#   GEO_CPUS        CPUs of each site, as sites on machines of their own
#                   would have them: e.g. "A=0 B=1" runs every process of
#                   A on CPU 0 and of B on CPU 1 (`taskset -c`); a site
#                   not named runs on any CPU (default: all of them)
set -uo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
HERE=$(dirname "$SELF")
REPO=$(cd "$HERE/../.." && pwd)
BASE=${GEO_BASE:-/tmp/cib-replicator-geo}
[ "${1:-}" != _init ] || BASE=$3
ST=$BASE/state
NSP=${GEO_NS:-crgeo}
SUBNET=${GEO_SUBNET:-10.213.0}
TICKET=${GEO_TICKET:-geo}
EXPIRE=${GEO_EXPIRE:-5}
RENEWAL=${GEO_RENEWAL_FREQ-2}
HANDLER=${GEO_HANDLER:-}
ATTR_PREREQ=${GEO_ATTR_PREREQ:-}
BOOTH_CONF=${GEO_BOOTH_CONF:-}
BIN=${GEO_BIN:-$REPO/target/debug}

SITES=${GEO_SITES:-A B}
ARBS=${GEO_ARBS:-arb}
PUBLISHER_AT=${GEO_PUBLISHER_AT-A}
CPUS=${GEO_CPUS:-}
# A running lab's own topology wins over the environment.
if [ "${1:-}" != up ] && [ -r "$ST/topology" ]; then
    # shellcheck disable=SC1091  # written by `up`
    . "$ST/topology"
fi
ALL="$SITES $ARBS"
declare -A IP NODE ETC
for s in $SITES; do
    case "$s" in [A-Z]) ;; *) echo "lab.sh: GEO_SITES: '$s' is not a capital letter" >&2; exit 2 ;; esac
    n=$(($(printf '%d' "'$s") - 64))
    IP[$s]=$SUBNET.$((n <= 2 ? n : n + 1))
    NODE[$s]=node-${s,,}
    etc_var=GEO_ETC_$s
    ETC[$s]=${!etc_var:-$REPO/examples/geo/site-${s,,}}
done
for s in $ARBS; do
    case "$s" in
        arb) IP[$s]=$SUBNET.3 NODE[$s]=arbitrator ;;
        arb[2-9]) IP[$s]=$SUBNET.$((100 + ${s#arb})) NODE[$s]=arbitrator-${s#arb} ;;
        *) echo "lab.sh: GEO_ARBS: '$s' is not arb, arb2 … arb9" >&2; exit 2 ;;
    esac
done
unset s n etc_var
is_arb() { case " $ARBS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# shellcheck source=tests/geo/poll.sh
. "$HERE/poll.sh"
log() { printf '[lab %(%T)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
check_site() { case " $ALL " in *" $1 "*) ;; *) die "unknown site '$1' (one of: $ALL)" ;; esac; }

# ------------------------------------------------------------------ holders

# Host PID of SITE's holder, if it runs (and is ours).
holder_pid() {
    local f=$ST/$1/holder.pid p
    [ -r "$f" ] || return 1
    p=$(cat "$f")
    [ -n "$p" ] && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "_init $1 $BASE " || return 1
    echo "$p"
}

# The command prefix that keeps a process of SITE on its GEO_CPUS (none
# when the site is not named there).
on_cpus() {
    local pair
    for pair in $CPUS; do
        [ "${pair%%=*}" != "$1" ] || { echo "taskset -c ${pair#*=}"; return; }
    done
}

# Runs a command inside SITE, in the caller's directory when it exists there.
sx() {
    local site=$1 hp
    shift
    hp=$(holder_pid "$site") || { log "site $site is not running"; return 125; }
    # shellcheck disable=SC2046  # the prefix is words, or nothing
    $(on_cpus "$site") nsenter -t "$hp" -m -u -i -p -n -- /bin/sh -c 'cd "$1" 2>/dev/null; shift; exec "$@"' _ "$PWD" "$@"
}

# PID 1 of SITE's pid namespace: private mounts, then reap orphans forever.
ns_init() {
    local site=$1 d=$ST/$1 dir name
    hostname "${NODE[$site]}"
    # /run first, and `mount -n`: nothing may land in the host's /run.
    mount -n --bind "$d/run" /run
    mount -n -t tmpfs -o mode=1777,size=1g tmpfs /dev/shm
    for dir in /etc /usr/sbin /usr/lib/ocf/resource.d /var/lib /var/log; do
        name=${dir//\//_}
        mkdir -p "$d/overlay/$name/upper" "$d/overlay/$name/work"
        mount -n -t overlay overlay \
            -o "lowerdir=$dir,upperdir=$d/overlay/$name/upper,workdir=$d/overlay/$name/work" "$dir"
    done
    if ! is_arb "$site"; then
        mount -n --bind "$d/lib-pacemaker" /var/lib/pacemaker
        mount -n --bind "$d/lib-corosync" /var/lib/corosync
        mount -n --bind "$d/log" /var/log/pacemaker
    fi
    if [ -x "$ST/boothd-wrapper" ]; then
        touch /run/.boothd-real
        mount -n --bind /usr/sbin/boothd /run/.boothd-real
        mount -n --bind "$ST/boothd-wrapper" /usr/sbin/boothd
    fi
    # PID files of an earlier incarnation mean nothing in this pid namespace.
    rm -f /run/lab-*.pid /run/corosync.pid /run/booth/*.pid
    mkdir -p /run/crm /run/booth /run/lock /run/resource-agents
    chown hacluster:haclient /run/crm /run/booth
    chmod 750 /run/crm
    chmod 1777 /run/lock
    touch /run/.ready
    trap 'exit 0' TERM INT
    while :; do
        sleep 3600 &
        wait $!
    done
}

start_holder() {
    local site=$1 d=$ST/$1 upid hp=""
    # A (re)started site has booted: /run is empty, as on a real node.
    find "$d/run" -mindepth 1 -delete 2>/dev/null
    # shellcheck disable=SC2046  # the prefix is words, or nothing
    setsid $(on_cpus "$site") nsenter --net="/run/netns/$NSP-$site" -- \
        unshare --mount --uts --ipc --pid --fork --mount-proc --propagation private -- \
        /bin/bash "$SELF" _init "$site" "$BASE" </dev/null >>"$d/holder.log" 2>&1 &
    upid=$!
    for _ in $(seq 1 200); do
        hp=$(awk '{print $1}' "/proc/$upid/task/$upid/children" 2>/dev/null)
        [ -n "$hp" ] && [ -e "$d/run/.ready" ] && break
        sleep 0.05
    done
    { [ -n "$hp" ] && [ -e "$d/run/.ready" ]; } || die "site $site did not come up (see $d/holder.log)"
    echo "$hp" >"$d/holder.pid"
}

# The site loses power: every process dies and the addresses its resources
# had added to eth0 go away (only the site's own address stays).
kill_site() {
    kill_holder "$1"
    ip -n "$NSP-$1" -o -4 addr show dev eth0 2>/dev/null | awk '{print $4}' | while read -r cidr; do
        # Deleting the first address of a subnet deletes the others of that
        # subnet with it (secondaries): those are gone already.
        [ "$cidr" = "${IP[$1]}/24" ] || ip -n "$NSP-$1" addr del "$cidr" dev eth0 2>/dev/null || true
    done
    return 0
}

kill_holder() {
    local hp
    hp=$(holder_pid "$1") || return 0
    # When PID 1 of a pid namespace exits, the kernel kills everything in it.
    kill -TERM "$hp" 2>/dev/null
    for _ in $(seq 1 50); do
        [ -d "/proc/$hp" ] || break
        sleep 0.1
    done
    [ -d "/proc/$hp" ] && kill -KILL "$hp" 2>/dev/null
    rm -f "$ST/$1/holder.pid"
}

# ------------------------------------------------------------------ network

net_up() (
    set -e
    ip netns add "$NSP-hub"
    ip -n "$NSP-hub" link add br0 type bridge
    ip -n "$NSP-hub" link set br0 up
    local s
    for s in $ALL; do
        ip netns add "$NSP-$s"
        ip -n "$NSP-hub" link add "h-$s" type veth peer name eth0 netns "$NSP-$s"
        ip -n "$NSP-hub" link set "h-$s" master br0 up
        ip -n "$NSP-$s" link set lo up
        ip -n "$NSP-$s" addr add "${IP[$s]}/24" dev eth0
        ip -n "$NSP-$s" link set eth0 up
    done
)

net_down() {
    local n
    for n in $ALL hub; do
        ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$NSP-$n" && ip netns del "$NSP-$n"
    done
    # `ip netns add` made /run/netns a mount point; undo it when it is empty.
    if [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
        mountpoint -q /run/netns && umount -n /run/netns 2>/dev/null
        rmdir /run/netns 2>/dev/null
    fi
    return 0
}

# ------------------------------------------------------------------ booth shim

# Debian 12's booth (1.0-283) hangs on kernels >= 6.9; booth-nlfix.c says why.
need_nlfix() {
    local maj min
    IFS=. read -r maj min _ <<<"$(uname -r)"
    min=${min%%[!0-9]*}
    [ "$maj" -gt 6 ] || { [ "$maj" -eq 6 ] && [ "$min" -ge 9 ]; }
}

build_nlfix() {
    command -v gcc >/dev/null || die "kernel $(uname -r) needs the booth netlink shim, and gcc is missing"
    gcc -shared -fPIC -O2 -o "$ST/booth-nlfix.so" "$HERE/booth-nlfix.c" -ldl || die "building the booth shim failed"
    chmod 755 "$ST" "$ST/booth-nlfix.so"
    # booth, boothd and geostore are one program that acts on its name: keep it.
    printf '#!/bin/bash\nLD_PRELOAD=%s exec -a "$0" /run/.boothd-real "$@"\n' "$ST/booth-nlfix.so" >"$ST/boothd-wrapper"
    chmod 755 "$ST/boothd-wrapper"
}

# ------------------------------------------------------------------ files

write_booth_conf() {
    local s t
    printf 'transport = UDP\nport = 9929\n'
    for s in $ARBS; do printf 'arbitrator = %s\n' "${IP[$s]}"; done
    for s in $SITES; do printf 'site = %s\n' "${IP[$s]}"; done
    printf 'authfile = /etc/booth/authkey\n'
    for t in $TICKET; do
        cat <<EOF
ticket = "$t"
    expire = $EXPIRE
    timeout = 400ms
    retries = 3
    acquire-after = 0
EOF
        [ -z "$RENEWAL" ] || printf '    renewal-freq = %s\n' "$RENEWAL"
        [ -z "$HANDLER" ] || printf '    before-acquire-handler = %s\n' "$HANDLER"
        [ -z "$ATTR_PREREQ" ] || printf '    attr-prereq = %s\n' "$ATTR_PREREQ"
    done
}

write_files() {
    local s d etc
    mkdir -p "$ST"
    printf 'SITES="%s"\nARBS="%s"\nCPUS="%s"\n' "$SITES" "$ARBS" "$CPUS" >"$ST/topology"
    if need_nlfix; then build_nlfix; fi
    head -c 32 /dev/urandom >"$ST/booth-authkey"
    for s in $ALL; do
        d=$ST/$s
        etc=$d/overlay/_etc/upper
        mkdir -p "$d/run" "$etc/booth"
        if [ -n "$BOOTH_CONF" ]; then
            cp "$BOOTH_CONF" "$etc/booth/booth.conf"
        else
            write_booth_conf >"$etc/booth/booth.conf"
        fi
        install -o hacluster -g haclient -m 600 "$ST/booth-authkey" "$etc/booth/authkey"
        is_arb "$s" && continue
        mkdir -p "$etc/corosync" "$d/lib-corosync" "$d/log" "$d"/lib-pacemaker/{cib,pengine,blackbox,cores,bundles}
        chown -R hacluster:haclient "$d/lib-pacemaker" "$d/log"
        chmod 750 "$d"/lib-pacemaker/{cib,pengine,blackbox,cores}
        chmod 770 "$d/log"
        cat >"$etc/corosync/corosync.conf" <<EOF
totem {
    version: 2
    cluster_name: site-${s,,}
    transport: knet
    crypto_cipher: none
    crypto_hash: none
    token: 1000
}
nodelist {
    node {
        ring0_addr: 127.0.0.1
        name: ${NODE[$s]}
        nodeid: 1
    }
}
quorum {
    provider: corosync_votequorum
}
logging {
    to_stderr: yes
    to_syslog: no
    timestamp: on
}
EOF
        # The seed CIB: no fencing in a lab, and a short dc-deadtime (the
        # controller waits that long before electing itself: 20 s by default).
        cibadmin --empty >"$d/seed.xml"
        CIB_file=$d/seed.xml crm_attribute -t crm_config -n stonith-enabled -v false >/dev/null
        CIB_file=$d/seed.xml crm_attribute -t crm_config -n dc-deadtime -v 1s >/dev/null
        CIB_file=$d/seed.xml crm_attribute -t crm_config -n cluster-recheck-interval -v 1min >/dev/null
        install -o hacluster -g haclient -m 600 "$d/seed.xml" "$d/lib-pacemaker/cib/cib.xml"
    done
}

# ------------------------------------------------------------------ daemons

# Starts a daemon inside SITE, detached; its PID there goes to /run/lab-NAME.pid.
sx_daemon() {
    local site=$1 name=$2 logf=$3
    shift 3
    sx "$site" /bin/bash -c 'name=$1 logf=$2; shift 2
        setsid "$@" </dev/null >>"$logf" 2>&1 &
        echo $! >/run/lab-$name.pid' _ "$name" "$logf" "$@"
}

# PID (inside SITE) of a daemon started here, if it still runs.
sx_pid() {
    local f=$ST/$1/run/lab-$2.pid p
    [ -r "$f" ] || return 1
    p=$(cat "$f")
    sx "$1" /bin/sh -c "grep -q '$2' /proc/$p/comm 2>/dev/null" || return 1
    echo "$p"
}

# wait_until SECONDS WHAT CMD...: poll, and say what timed out.
wait_until() {
    local limit=$1 what=$2
    shift 2
    poll "$limit" "$@" || { log "timed out after ${limit}s waiting for $what"; return 1; }
}

quorate() { sx "$1" corosync-quorumtool -s 2>/dev/null | grep -q 'Quorate:.*Yes'; }
idle() {
    sx "$1" crmadmin -S "${NODE[$1]}" 2>/dev/null | grep -q S_IDLE &&
        sx "$1" crm_mon -1 2>/dev/null | grep -q "Current DC: ${NODE[$1]}.*partition with quorum"
}
booth_up() { sx "$1" timeout 5 booth status; }

start_booth() {
    local logf=/var/log/pacemaker/booth.log
    is_arb "$1" && logf=/run/booth.log
    sx_daemon "$1" boothd "$logf" boothd daemon -S -c /etc/booth/booth.conf
    wait_until 15 "boothd at $1" booth_up "$1"
}

stop_site_daemons() {
    local site=$1 p
    if p=$(sx_pid "$site" boothd); then
        sx "$site" kill -TERM "$p"
    fi
    is_arb "$site" && return 0
    if p=$(sx_pid "$site" pacemakerd); then
        sx "$site" kill -TERM "$p"
        for _ in $(seq 1 600); do
            sx_pid "$site" pacemakerd >/dev/null || break
            sleep 0.1
        done
    fi
    sx "$site" corosync-cfgtool -H >/dev/null 2>&1
    return 0
}

start_cluster() {
    local site=$1
    sx_daemon "$site" corosync /var/log/pacemaker/corosync.log corosync -f
    wait_until 30 "corosync quorum at $site" quorate "$site" || return 1
    sx_daemon "$site" pacemakerd /var/log/pacemaker/pacemakerd.log pacemakerd -f
}

# ------------------------------------------------------------------ commands

cmd_up() {
    [ "$(id -u)" = 0 ] || die "must run as root (namespaces, mounts)"
    local t0 s
    t0=$(now)
    cmd_down "$BASE/logs" quiet
    trap 'log "up failed: tearing down"; cmd_down "${GEO_LOGS:-$BASE/logs}"' EXIT
    write_files
    net_up || die "network set-up failed (needs root, network namespaces, veth and bridge)"
    for s in $ALL; do start_holder "$s"; done
    for s in $SITES; do start_cluster "$s" || die "corosync at $s"; done
    for s in $SITES; do wait_until 120 "a DC at $s" idle "$s" || die "pacemaker at $s"; done
    log "every site ($SITES) has a DC with quorum after $(since "$t0")s"
    for s in $ALL; do start_booth "$s" || die "boothd at $s"; done
    trap - EXIT
    log "up in $(since "$t0")s"
}

cmd_down() {
    local logs=${1:-$BASE/logs} s t0
    t0=$(now)
    for s in $ALL; do
        holder_pid "$s" >/dev/null || continue
        (stop_site_daemons "$s"; kill_holder "$s") &
    done
    wait
    for s in $ALL; do kill_holder "$s"; done
    net_down
    if [ -d "$ST" ]; then
        rm -rf "$logs"
        for s in $ALL; do
            [ -d "$ST/$s" ] || continue
            mkdir -p "$logs/$s"
            cp -a "$ST/$s/log/." "$ST/$s/holder.log" "$ST/$s/run/booth.log" "$logs/$s/" 2>/dev/null
            cp -a "$ST/$s/overlay/_var_log/upper/cib-replicator/." "$logs/$s/" 2>/dev/null
            # The daemons' logs when the agents have no logfile and the
            # site no journal (next to their pid files).
            cp -a "$ST/$s/run/resource-agents/." "$logs/$s/" 2>/dev/null
            [ -d "$ST/$s/lib-pacemaker/cib" ] && cp "$ST/$s/lib-pacemaker/cib/cib.xml" "$logs/$s/cib.xml" 2>/dev/null
        done
        rm -rf "$ST"
    fi
    [ "${2:-}" = quiet ] || log "down in $(since "$t0")s (logs in $logs)"
    return 0
}

cmd_install() {
    local site=$1 root
    if [ -n "${GEO_DEB:-}" ]; then
        # The files of the package, from their installed paths (/usr/sbin,
        # /usr/lib/ocf/resource.d/cib-replicator): what a site gets from
        # `apt install ./cib-replicator_*.deb` where the lab has overlays
        # (the rest of /usr, man pages and completion, is shared with the
        # host and left alone).
        [ -r "$GEO_DEB" ] || die "GEO_DEB: no package $GEO_DEB"
        root=$ST/deb-root
        rm -rf "$root"
        mkdir -p "$root"
        dpkg-deb -x "$GEO_DEB" "$root" || die "unpacking $GEO_DEB"
        sx "$site" install -m 0755 "$root/usr/sbin/cib-publisher" "$root/usr/sbin/cib-subscriber" /usr/sbin/ &&
            sx "$site" install -d /usr/lib/ocf/resource.d/cib-replicator &&
            sx "$site" install -m 0755 "$root/usr/lib/ocf/resource.d/cib-replicator/publisher" \
                "$root/usr/lib/ocf/resource.d/cib-replicator/subscriber" /usr/lib/ocf/resource.d/cib-replicator/ &&
            sx "$site" install -d -m 0750 -g haclient /etc/cib-replicator /var/lib/cib-replicator &&
            sx "$site" cp -r "${ETC[$site]}/." /etc/cib-replicator/
        return
    fi
    { [ -x "$BIN/cib-publisher" ] && [ -x "$BIN/cib-subscriber" ]; } ||
        die "no cib-publisher/cib-subscriber in $BIN (cargo build --workspace --bins, or set GEO_BIN)"
    sx "$site" install -m 0755 "$BIN/cib-publisher" "$BIN/cib-subscriber" /usr/sbin/ &&
        sx "$site" install -d /usr/lib/ocf/resource.d/cib-replicator &&
        sx "$site" install -m 0755 "$REPO/ocf/publisher" "$REPO/ocf/subscriber" /usr/lib/ocf/resource.d/cib-replicator/ &&
        sx "$site" install -d -m 0755 /etc/cib-replicator &&
        sx "$site" install -d -m 0750 -g haclient /var/lib/cib-replicator &&
        sx "$site" cp -r "${ETC[$site]}/." /etc/cib-replicator/
}

# Certificates for every site, cib-replicator installed at each, the
# application's directory, the subscriber resource at every site and the
# publisher resource, bound to the ticket, at $PUBLISHER_AT (as
# examples/geo/README.md).
cmd_replicator() {
    local s l certs=$ST/certs names=()
    rm -rf "$certs"
    for s in $SITES; do names+=("site-${s,,}.example,IP:${IP[$s]}"); done
    "$REPO/examples/make-certs.sh" -d "$certs" "${names[@]}" >/dev/null ||
        die "making certificates failed"
    for s in $SITES; do
        l=${s,,}
        cmd_install "$s" || die "installing at $s failed"
        sx "$s" install -d -m 0750 /etc/cib-replicator/certs
        sx "$s" install -m 0600 "$certs/site-$l.example.pem" /etc/cib-replicator/certs/site.pem
        sx "$s" install -m 0600 "$certs/site-$l.example.key" /etc/cib-replicator/certs/site.key
        sx "$s" install -m 0644 "$certs/ca.pem" /etc/cib-replicator/certs/ca.pem
        sx "$s" mkdir -p "/run/app-site-$l"
        sx "$s" cibadmin -C -o resources -x "$REPO/examples/geo/subscriber.xml" || die "creating the subscriber at $s"
    done
    [ -n "$PUBLISHER_AT" ] || return 0
    s=$PUBLISHER_AT
    sx "$s" cibadmin -C -o resources -x "$REPO/examples/geo/publisher.xml" || die "creating the publisher at $s"
    sx "$s" cibadmin -C -o constraints -X "<rsc_ticket id=\"publisher-needs-$TICKET\" rsc=\"publisher\" ticket=\"$TICKET\" loss-policy=\"stop\"/>" ||
        die "binding the publisher to $TICKET at $s"
}

cmd_start_site() {
    local site=$1
    holder_pid "$site" >/dev/null && die "site $site runs already"
    start_holder "$site"
    if ! is_arb "$site"; then
        start_cluster "$site" || return 1
        wait_until 120 "a DC at $site" idle "$site" || return 1
    fi
    start_booth "$site"
}

cmd_start_pacemaker() {
    local site=$1
    sx_pid "$site" pacemakerd >/dev/null && die "pacemakerd runs at $site already"
    sx_daemon "$site" pacemakerd /var/log/pacemaker/pacemakerd.log pacemakerd -f
    wait_until 120 "a DC at $site" idle "$site"
}

cmd_status() {
    local s
    for s in $ALL; do
        holder_pid "$s" >/dev/null || { echo "== $s: not running"; continue; }
        echo "== $s (${IP[$s]})"
        is_arb "$s" || sx "$s" crm_mon -1 --include=tickets 2>&1 | sed 's/^/   /'
        sx "$s" timeout 5 booth list 2>&1 | sed 's/^/   booth: /'
    done
}

case "${1:-}" in
    _init) BASE=$3 ST=$3/state ns_init "$2" ;;
    up) cmd_up ;;
    down) cmd_down "${2:-${GEO_LOGS:-$BASE/logs}}" ;;
    exec)
        [ $# -ge 3 ] || die "usage: lab.sh exec SITE CMD..."
        check_site "$2"
        s=$2
        shift 2
        sx "$s" "$@"
        ;;
    install) check_site "$2"; cmd_install "$2" ;;
    replicator) cmd_replicator ;;
    kill-site) check_site "$2"; kill_site "$2" ;;
    start-site) check_site "$2"; cmd_start_site "$2" ;;
    start-pacemaker) check_site "$2"; is_arb "$2" && die "$2 is an arbitrator"; cmd_start_pacemaker "$2" ;;
    stop-booth)
        check_site "$2"
        if p=$(sx_pid "$2" boothd); then sx "$2" kill -KILL "$p"; fi
        ;;
    start-booth) check_site "$2"; start_booth "$2" ;;
    partition) check_site "$2"; ip -n "$NSP-hub" link set "h-$2" down ;;
    heal) check_site "$2"; ip -n "$NSP-hub" link set "h-$2" up ;;
    status) cmd_status ;;
    ip) check_site "$2"; echo "${IP[$2]}" ;;
    sites) echo "$SITES" ;;
    *) sed -n '3,33p' "$SELF" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
