#!/bin/sh
# Installs what pgnear needs to build, test, benchmark and run its demo on
# Debian 12.  Services that the packages would start (PgBouncer, HAProxy,
# a default PostgreSQL cluster) are kept from starting: pgnear's scripts
# start their own, on ports of their own.
set -eu

PACKAGES="build-essential autoconf automake libtool pkg-config clang
 libevent-dev libssl-dev libpq-dev libmaxminddb-dev libiniparser-dev libcmocka-dev
 postgresql-15 postgresql-client-15 postgresql-contrib pgbouncer haproxy openssl
 perl libipc-run-perl libdbd-pg-perl libmaxmind-db-writer-perl mmdb-bin valgrind"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
policy=/usr/sbin/policy-rc.d
added_policy=no
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    added_policy=yes
fi
echo "install-deps: installing$missing"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
[ "$added_policy" = yes ] && $SUDO rm -f "$policy"
# Should a package have started its service anyway, stop it: tests pick their own ports.
for svc in pgbouncer haproxy postgresql; do
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
exit 0
