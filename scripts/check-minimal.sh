#!/bin/sh
# Runs the README's quick start on a minimal Debian 12, as CI does: a
# `debootstrap --variant=minbase` tree (Essential and required packages
# only, nothing else), with the checkout's HEAD cloned to /root/project in
# it (/root is drwx------ there, as everywhere).  In it, as root:
#   scripts/demo.sh; a query through pgnear; the demo's console, MIGRATE UP,
#   WebSocket client and metrics; scripts/demo-city.sh (a city's rows moved
#   under writers), twice, then for a second city into the same region; the
#   database move; scripts/demo-failover.sh (eu-west promoted while us-east
#   runs on: fenced); scripts/demo.sh again (it must
#   restart cleanly); scripts/demo.sh stop, after which nothing may run;
#   scripts/test.sh, the whole suite (on the sanitizer build, two worker
#   threads per pgnear); scripts/check-tools.sh; scripts/check-package.sh
#   (the Debian package: built, installed, run as its unit runs it, purged).
# Whatever install-deps.sh forgets, this fails on.  It runs in mount, PID
# and (after the packages are in) network namespaces of its own, so that its
# mounts, processes and ports end with it and meet nobody else's.
#   scripts/check-minimal.sh [--keep]     --keep: leave the tree in /var/tmp
# Needs root and Debian's archive; installs debootstrap on this machine if
# it is missing.  MIRROR=URL picks another Debian mirror.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

say() { echo "check-minimal: $*"; }
die() {
    echo "check-minimal: $*" >&2
    exit 1
}

keep=no
for arg in "$@"; do
    case $arg in
    --keep) keep=yes ;;
    -h | --help)
        sed -n '2,18s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown argument '$arg' (usage: scripts/check-minimal.sh [--keep])" ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, namespaces)"
for t in unshare ip git; do
    command -v "$t" >/dev/null 2>&1 || die "needs $t on this machine (scripts/install-deps.sh installs ip, in iproute2)"
done
git -C "$top" rev-parse --verify -q HEAD >/dev/null || die "$top is not a git checkout with a commit"

suite=bookworm
mirror=${MIRROR:-http://deb.debian.org/debian}
security=${SECURITY_MIRROR:-$(echo "$mirror" | sed 's|/debian/*$|/debian-security|')}

if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap on this machine"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
fi

work=$(mktemp -d /var/tmp/pgnear-minimal.XXXXXX)
root=$work/root
cleanup() {
    status=$?
    if [ "$keep" = yes ]; then
        say "the tree stays in $root"
    elif grep -q " $work/" /proc/self/mountinfo; then
        # Never rm -rf through a mounted /dev.
        echo "check-minimal: something is still mounted under $work; not removing it" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

start=$(date +%s)
say "debootstrap --variant=minbase $suite into $root"
if ! debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    die "debootstrap failed"
fi
# What every Debian machine has besides its packages: the archive's
# sources (updates and security too), name service, a hosts file, and the
# site's own CA certificates (a TLS proxy on the way to the npm registry):
# ca-certificates adds them to the system bundle when install-deps.sh
# installs it.
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
EOF
cp /etc/resolv.conf "$root/etc/resolv.conf"
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
echo pgnear-minimal >"$root/etc/hostname"
say "minbase has $(chroot "$root" dpkg-query -W | wc -l) packages; $(ls -ld "$root/root" | cut -d' ' -f1) /root"

git clone -q "$top" "$root/root/project"
say "cloned $(git -C "$top" rev-parse --short HEAD) to /root/project"

# The steps, run by the chroot's own sh.
cat >"$root/root/steps.sh" <<'STEPS'
set -eu
cd /root/project
# Each step says when it starts, in seconds since this run of the steps began: what CI
# spends its 30 minutes on.
t0=$(date +%s)
step() { echo; echo "==== check-minimal: $* (at $(($(date +%s) - t0)) s)"; }
if [ "$1" = install ]; then
    step "scripts/install-deps.sh (from $(dpkg-query -W | wc -l) packages)"
    scripts/install-deps.sh
    exit 0
fi
step "scripts/demo.sh"
scripts/demo.sh
step "a query through pgnear, routed by city"
got=$(PGPASSWORD=app-secret /usr/lib/postgresql/15/bin/psql -X -At \
    "host=127.0.0.1 port=6432 dbname=movr user=app options='-c pgnear.city=Dublin'" -c 'SHOW cluster_name')
[ "$got" = eu-west ] || { echo "expected eu-west, got '$got'" >&2; exit 1; }
echo "Dublin -> $got"
got=$(PGPASSWORD=app-secret /usr/lib/postgresql/15/bin/psql -X -At \
    "host=127.0.0.1 port=6432 dbname=movr user=app options='-c pgnear.city=Dublin -c pgnear.target_session_attrs=read-write'" \
    -c 'SHOW cluster_name')
[ "$got" = us-east ] || { echo "read-write from Dublin: expected us-east (the primary), got '$got'" >&2; exit 1; }
echo "Dublin, read-write -> $got"
step "the demo's console, migrations, WebSocket client and metrics"
admin="host=127.0.0.1 port=6432 dbname=pgnear user=admin password=admin-secret"
psql=/usr/lib/postgresql/15/bin/psql
got=$($psql -X -At "$admin" -c "SHOW ROUTE FOR CITY 'Tokyo'" | head -n 1 | cut -d'|' -f2)
[ "$got" = us-west ] || { echo "SHOW ROUTE FOR CITY 'Tokyo': expected us-west first, got '$got'" >&2; exit 1; }
$psql -X -q "$admin" -c 'MIGRATE UP' 2>/dev/null
# The standbys of us-west and eu-west replay the steps (and their history) soon after.
i=0
while :; do
    got=$($psql -X -At "$admin" -c 'SHOW MIGRATIONS' | cut -d'|' -f4 | sort | uniq -c | tr -s ' ')
    [ "$got" = " 12 applied" ] && break
    i=$((i + 1))
    [ "$i" -lt 50 ] || { echo "after MIGRATE UP, SHOW MIGRATIONS says:$got" >&2; exit 1; }
    sleep 0.2
done
echo "MIGRATE UP: 4 steps applied in us-east, replayed in us-west and eu-west"
got=$(node tests/node/neon_client.js --port 6480 --wss --ca demo-run/ca.crt --header 'X-City: Tokyo' \
    --sql 'SHOW cluster_name' | tail -n 1)
case $got in *'"rows":[["us-west"]]'*) ;; *) echo "WebSocket client, X-City Tokyo: $got" >&2; exit 1 ;; esac
echo "WebSocket, X-City Tokyo -> us-west"
got=$(curl -sf http://127.0.0.1:9187/metrics | grep -c '^pgnear_host_up{.*} 1$')
[ "$got" = 4 ] || { echo "metrics: $got hosts up, expected 4" >&2; exit 1; }
echo "metrics: 4 hosts up"
step "the demo's city move: scripts/demo-city.sh, amsterdam's rows of movr_cities to eu-central under writers"
scripts/demo-city.sh
# Run again, it finds amsterdam in eu-central and shows where the rows live.
scripts/demo-city.sh | grep 'amsterdam lives in eu-central already' ||
    { echo "scripts/demo-city.sh, run again, did not find amsterdam in eu-central" >&2; exit 1; }
# City by city: paris joins amsterdam in eu-central.
scripts/demo-city.sh paris | grep "cities living there: 'paris', 'amsterdam'" ||
    { echo "scripts/demo-city.sh paris did not home paris in eu-central beside amsterdam" >&2; exit 1; }
step "the tour's database move: movr to eu-central and back"
app="host=127.0.0.1 port=6432 dbname=movr user=app password=app-secret"
$psql -X -q "$admin" -c 'MOVE DATABASE movr TO REGION eu-central'
i=0
while :; do
    # The column named state (SHOW MOVES gained a city column before it: not by position).
    got=$($psql -X -A "$admin" -c 'SHOW MOVES' |
        awk -F'|' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "state") c = i; next } c { print $c; exit }')
    [ "$got" = streaming ] && break
    i=$((i + 1))
    [ "$i" -lt 300 ] || { echo "after MOVE DATABASE, SHOW MOVES says: $got" >&2; exit 1; }
    sleep 0.2
done
$psql -X -q "$admin" -c 'MOVE DATABASE movr CUTOVER' >/dev/null
got=$($psql -X -At "$app" -c 'SHOW cluster_name')
[ "$got" = eu-central ] || { echo "after CUTOVER, movr is served by '$got', not eu-central" >&2; exit 1; }
got=$($psql -X -At "$app" -c 'SELECT count(*) FROM pgnear_schema_history')
[ "$got" = 4 ] || { echo "after CUTOVER, eu-central's movr has $got migration steps, not 4" >&2; exit 1; }
echo "MOVE DATABASE movr TO REGION eu-central, CUTOVER: served by eu-central, with its 4 migration steps"
$psql -X -q "$admin" -c 'MOVE DATABASE movr REVERT' >/dev/null
got=$($psql -X -At "$app" -c 'SHOW cluster_name')
[ "$got" = us-east ] || { echo "after REVERT, movr is served by '$got', not us-east" >&2; exit 1; }
echo "REVERT: served by us-east again"
step "the demo's failover: scripts/demo-failover.sh, eu-west promoted while us-east runs on"
scripts/demo-failover.sh | grep 'lands on: eu-west, in recovery: false' ||
    { echo "scripts/demo-failover.sh did not fence us-east and send a Boston writer to eu-west" >&2; exit 1; }
step "scripts/demo.sh again, over the running demo"
scripts/demo.sh
step "scripts/demo.sh stop"
scripts/demo.sh stop
left=""
for s in /proc/[0-9]*/stat; do
    line=$(cat "$s" 2>/dev/null) || continue
    case $line in
    *"(pgnear) "[!Z]* | *"(postgres) "[!Z]*) left="$left ${s#/proc/}" ;;
    esac
done
[ -z "$left" ] || { echo "still running after demo.sh stop:$left" >&2; exit 1; }
echo "nothing left running"

step "scripts/test.sh"
scripts/test.sh
step "scripts/check-tools.sh"
scripts/check-tools.sh
step "scripts/check-package.sh: the Debian package, built, installed, run by its unit's lines, purged"
scripts/check-package.sh
step "the steps are done"
STEPS

# In namespaces of its own: mounts (private, so they vanish with it), PIDs
# (every process in it is killed when it ends) and, with --net first, the
# network (loopback only, brought up by this machine's ip).
inside() {
    net=""
    if [ "$1" = --net ]; then
        net=--net
        shift
    fi
    unshare --mount --pid --fork --kill-child $net sh -eu -c '
        root=$1
        net=$2
        shift 2
        mount -t proc proc "$root/proc"
        mount -t sysfs -o ro sysfs "$root/sys"
        mount --rbind /dev "$root/dev"
        mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
        [ -z "$net" ] || ip link set lo up
        exec "$@"
    ' inside "$root" "$net" "$@"
}
# The chroot's own programs only, with the environment of a root login.
clean="env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM=dumb"

# shellcheck disable=SC2086
inside $clean chroot "$root" sh /root/steps.sh install ||
    die "scripts/install-deps.sh failed on minimal Debian"
# The rest without the machine's network: loopback only.
# shellcheck disable=SC2086
inside --net $clean chroot "$root" sh /root/steps.sh run ||
    die "the README's quick start failed on minimal Debian (see above)"

say "passed: demo, suite, tool and package checks on minimal Debian $suite in $(($(date +%s) - start)) s"
