#!/bin/sh
# Installs what pgnear needs to build, test, benchmark and run its demo on
# Debian 12, from a minimal system up (debootstrap --variant=minbase: only
# Essential and required packages).  Services that the packages would start
# (PgBouncer, HAProxy, Pgpool-II, etcd, Patroni, a default PostgreSQL
# cluster) are kept from starting: pgnear's scripts start their own, on
# ports of their own.
# Then the Node.js modules of tests/node (the Neon serverless driver, which the
# WebSocket tests drive, node-postgres and postgres.js) are installed from its package-lock.json with
# `npm ci`, when tests/node/node_modules is missing or older than the lock
# file: the tests themselves run without network.
# Then PostgreSQL's own regression suite of the installed server's version
# (src/test/regress of Debian's source package of postgresql-15, fetched
# with a private apt state: no system file changes) is unpacked into
# tests/regress/cache/VERSION and its regress.so built with PGXS, for
# tests/integration/290_pg_regress.t; skipped when already there.
#   scripts/install-deps.sh          install what is missing
#   scripts/install-deps.sh --list   print the package list and exit
#   scripts/install-deps.sh --npm    the same as no argument (npm is always
#                                    installed now; kept for old scripts)
# Every program that the tests, scripts, bench/ and the Makefile run must
# come from a package listed here or from an Essential/required one:
# scripts/check-tools.sh checks that, and CI runs it.
set -eu

# build: compilers, autotools, libraries
BUILD="build-essential make autoconf automake libtool pkg-config clang
 libevent-dev libssl-dev libpq-dev libmaxminddb-dev libiniparser-dev libcmocka-dev libwslay-dev
 liburing-dev"
# tests, demo and benchmarks: servers and clients (pg_auto_failover's
# pg_autoctl: a real failover under pgnear, 216_auto_failover.t; Pgpool-II:
# the read/write-splitting proxy bench/nearest.pl compares with)
SERVERS="postgresql-15 postgresql-client-15 postgresql-contrib pgbouncer haproxy openssl
 postgresql-15-auto-failover pg-auto-failover-cli pgpool2"
# Patroni, pgnear's source of truth for who leads (tests/lib/PgNearPatroni.pm,
# 270_patroni.t): patroni and patronictl, etcd 3.4 as its store (run with
# --enable-v2), and python3-etcd, the client of Patroni's etcd (v2) driver
PATRONI="patroni etcd-server python3-etcd"
# perl and the modules of the test harness (IO::Socket::SSL: the wss
# tests of tests/lib/PgNearWs.pm; YAML::XS: tests/doc/kubernetes.t reads
# the manifests of conf/kubernetes/); mmdb-bin's mmdblookup checks
# downloaded GeoIP files
PERL="perl libipc-run-perl libdbd-pg-perl libmaxmind-db-writer-perl libio-socket-ssl-perl
 libyaml-libyaml-perl mmdb-bin"
# programs that a minimal Debian lacks: ss (015_keepalive.t) from iproute2;
# ps and pgrep from procps (the scripts read /proc instead, but whoever
# looks after a running pgnear reaches for them); groff and man render the
# man page made from doc/pgnear.md (tests/doc/manpage.t); curl scrapes
# /metrics; systemd's systemd-analyze verifies the unit conf/pgnear.service
# as make install puts it (tests/doc/install.t): the package only, nothing
# is started with it
# dnsmasq (dnsmasq-base: the program alone, no service) is the DNS server on
# loopback whose record 310_dns_follow.t moves under pgnear
TOOLS="iproute2 procps groff-base man-db curl systemd dnsmasq-base"
# a real browser on the status page (307_status_page.t): Debian's Chromium,
# driven headless over WebDriver by chromedriver (chromium-driver)
BROWSER="chromium chromium-driver"
# psycopg 3 is one of the drivers whose sessions are moved between servers
# (232_move_drivers.t), node-postgres (tests/node) the other; Django (over
# psycopg2) and pgjdbc run their connect paths under transaction pooling
# (300_driver_settings.t), pgjdbc's client by java's source launcher: the
# JRE's runtime image holds the jdk.compiler module it needs, no JDK
# (openjdk-17-jre-headless: what Debian 12's default-jre-headless is; the
# package that has /usr/bin/java, as check-tools.sh asks)
PYTHON="python3 python3-minimal python3-psycopg python3-psycopg2 python3-django"
JAVA="openjdk-17-jre-headless libpostgresql-jdbc-java"
# node runs the Neon serverless driver (tests/node) for the WebSocket tests,
# and node-postgres for the cancel tests, postgres.js and node-postgres for
# the transaction pooling tests
# and the maintainer targets `make cities` and `make geoip-db`; npm installs
# tests/node's modules (over https: ca-certificates)
NODE="nodejs ca-certificates"
# valgrind's callgrind counts the relay's instructions (README, Performance)
PROFILE="valgrind"
# the Debian package (debian/, scripts/check-package.sh): dpkg-buildpackage, the Build-Depends
# beyond BUILD, lintian, adduser (its postinst makes the user pgnear), and git
# (the check builds from a copy of the checkout's files)
PACKAGING="dpkg-dev debhelper dh-autoreconf lintian adduser git"
# PostgreSQL's regression suite (290_pg_regress.t): pg_regress and PGXS come with
# postgresql-server-dev-15, installed at the server's own version (below); apt-get
# source and dpkg-source come with dpkg-dev, the archive's key with debian-archive-keyring;
# the source tarball is bzip2
REGRESS="postgresql-server-dev-15 debian-archive-keyring bzip2"
PACKAGES="$BUILD $SERVERS $PATRONI $PERL $TOOLS $BROWSER $PYTHON $JAVA $NODE $PROFILE $PACKAGING $REGRESS"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# npm may come from elsewhere than Debian's package npm (NodeSource's
# nodejs has npm in it): Debian's is installed only when there is no npm,
# and listed when it is the one there is.
if ! command -v npm >/dev/null 2>&1 || installed npm; then
    PACKAGES="$PACKAGES npm"
fi

list=no
for arg in "$@"; do
    case $arg in
    --list) list=yes ;;
    --npm) ;;
    -h | --help)
        sed -n '2,22s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *)
        echo "install-deps: unknown argument '$arg' (usage: scripts/install-deps.sh [--list])" >&2
        exit 2
        ;;
    esac
done
if [ "$list" = yes ]; then
    printf '%s\n' $PACKAGES
    exit 0
fi

# tests/node's modules, exactly as package-lock.json pins them; npm's own
# copy of the lock in node_modules says when they were installed.
node_modules() {
    dir=$(dirname "$0")/../tests/node
    stamp=$dir/node_modules/.package-lock.json
    if [ -e "$stamp" ] && [ ! "$dir/package-lock.json" -nt "$stamp" ]; then
        echo "install-deps: tests/node/node_modules is up to date"
        return 0
    fi
    echo "install-deps: npm ci in tests/node"
    # Node trusts its own CA list, not the system's: a site whose traffic
    # passes a TLS proxy has that proxy's CA only in the system's bundle.
    bundle=/etc/ssl/certs/ca-certificates.crt
    if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -r "$bundle" ]; then
        NODE_EXTRA_CA_CERTS=$bundle
        export NODE_EXTRA_CA_CERTS
    fi
    (cd "$dir" && npm ci --no-audit --no-fund) || {
        echo "install-deps: npm ci in tests/node failed" >&2
        exit 1
    }
}

# Debian's source of postgresql-15 into $cache/.work/src: the server's own
# version when the archive serves it, else the newest 15.x it does serve.
# (A mirror may carry bookworm-security's binaries but not its sources: then the
# server is 15.N from security and its source is 404.)  290_pg_regress.t runs
# the one suite directly and through pgnear and compares the two, so a suite a
# minor release older still measures pgnear; SOURCE_VERSION in the suite says
# which it is, and 290 says so when it is not the server's.
fetch_source() {
    want=$1
    shift
    versions=$(apt-cache "$@" showsrc postgresql-15 | sed -n 's/^Version: //p' |
        sort -u | sort -r -V)
    for v in $want $versions; do
        case $v in 15.*) ;; *) continue ;; esac
        [ "$v" != "$want" ] || [ "${tried:-}" != yes ] || continue
        tried=yes
        rm -f "$cache/.work/src"/postgresql-15_*
        if (cd "$cache/.work/src" && apt-get "$@" source --download-only "postgresql-15=$v" >/dev/null 2>&1); then
            [ "$v" = "$want" ] || echo "install-deps: postgresql-15=$want's source is not served;" \
                "the regression suite is $v's" >&2
            echo "$v"
            return 0
        fi
    done
    echo "install-deps: apt-get source postgresql-15 failed (wanted $want; listed:" $versions")" >&2
    return 1
}

# The regression suite of the installed server, its own version where Debian's
# archive serves that source (fetch_source).
regress_suite() {
    version=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null) || version=""
    [ -n "$version" ] || {
        echo "install-deps: postgresql-15 is not installed: no regression suite" >&2
        exit 1
    }
    dev=$(dpkg-query -W -f='${Version}' postgresql-server-dev-15 2>/dev/null) || dev=""
    [ "$dev" = "$version" ] || {
        echo "install-deps: postgresql-server-dev-15 is at '$dev', the server at $version;" \
            "install postgresql-server-dev-15=$version" >&2
        exit 1
    }
    cache=$(cd "$(dirname "$0")/.." && pwd)/tests/regress/cache
    dest=$cache/$version
    if [ -e "$dest/regress/regress.so" ] && [ -e "$dest/regress/parallel_schedule" ]; then
        echo "install-deps: PostgreSQL $version's regression suite is in $dest"
        return 0
    fi
    echo "install-deps: PostgreSQL $version's regression suite into $dest"
    rm -rf "$cache/.work"
    apt=$cache/.work/apt
    mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/etc/sources.list.d" \
        "$apt/etc/preferences.d" "$apt/etc/apt.conf.d" "$cache/.work/src"
    : >"$apt/status"
    mirror=${MIRROR:-http://deb.debian.org/debian}
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    {
        echo "deb-src [signed-by=$keyring] $mirror bookworm main"
        echo "deb-src [signed-by=$keyring] $mirror bookworm-updates main"
        echo "deb-src [signed-by=$keyring] ${SECURITY_MIRROR:-${mirror%/debian}/debian-security} bookworm-security main"
    } >"$apt/etc/sources.list"
    set -- -q -o Dir::Etc="$apt/etc" -o Dir::Etc::sourcelist="$apt/etc/sources.list" \
        -o Dir::Etc::sourceparts="$apt/etc/sources.list.d" -o Dir::State="$apt" \
        -o Dir::State::status="$apt/status" -o Dir::Cache="$apt" -o APT::Sandbox::User=root
    apt-get "$@" update >/dev/null || {
        echo "install-deps: apt-get update of Debian's source lists failed" >&2
        exit 1
    }
    source=$(fetch_source "$version" "$@") || exit 1
    # Only the suite; Debian's patches touch none of it.
    upstream=${source%-*}
    upstream=${upstream#*:}
    tar -C "$cache/.work/src" -xjf "$cache/.work/src/postgresql-15_$upstream.orig.tar.bz2" \
        "postgresql-$upstream/src/test/regress" || exit 1
    suite=$cache/.work/src/postgresql-$upstream/src/test/regress
    printf '%s\n' 'MODULES = regress' 'PG_CONFIG = /usr/lib/postgresql/15/bin/pg_config' \
        'PGXS := $(shell $(PG_CONFIG) --pgxs)' 'include $(PGXS)' >"$suite/Makefile.pgxs"
    make -s -C "$suite" -f Makefile.pgxs >/dev/null || {
        echo "install-deps: building the regression suite's regress.so failed" >&2
        exit 1
    }
    echo "$source" >"$suite/SOURCE_VERSION"
    rm -rf "$dest"
    mkdir -p "$dest"
    mv "$suite" "$dest/regress"
    rm -rf "$cache/.work"
}

# postgresql-server-dev-15 at the server's version, or apt would upgrade the server with it.
pinned() {
    case $1 in
    postgresql-server-dev-15)
        v=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null) || v=""
        [ -n "$v" ] && installed postgresql-15 && echo "$1=$v" || echo "$1"
        ;;
    *) echo "$1" ;;
    esac
}

missing=""
for p in $PACKAGES; do
    installed "$p" || missing="$missing $(pinned "$p")"
done
if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    node_modules
    regress_suite
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "install-deps: missing packages:$missing; run this as root (or install sudo)" >&2
        exit 1
    }
    SUDO=sudo
fi
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    # Keeps the packages' services from starting; removed again on exit.
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
    trap 'exit 1' HUP INT TERM
fi
echo "install-deps: installing$missing"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
# Should a package have started its service anyway, stop it: tests pick their own ports.
for svc in pgbouncer haproxy pgpool2 etcd patroni postgresql; do
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
node_modules
regress_suite
