#!/bin/sh
# Builds the Debian package and uses it as an admin would, on this machine
# (CI: in check-minimal.sh's chroot, after the suite).  As root:
#   1. configure.ac's version is debian/changelog's;
#   2. a clean copy of the checkout (its tracked and unignored files, as
#      they are now) is built with `dpkg-buildpackage -b -uc -us`, the
#      tests left to scripts/test.sh (nocheck), after dpkg-checkbuilddeps
#      says install-deps.sh installed every Build-Depends;
#   3. lintian finds nothing that debian/pgnear.lintian-overrides does not
#      justify, at every level up to pedantic;
#   4. `apt-get install ./pgnear_*.deb`: the files, the conffile, the user
#      pgnear, /etc/pgnear for root and the group pgnear only, the service
#      enabled and the template not;
#   5. the unit's ExecStart, read from the installed unit with its User,
#      Group, LimitNOFILE and directories (no systemd here), before any
#      server is up: the service runs, and a client gets a clear error;
#   6. a PostgreSQL 15 on 127.0.0.1:5432, the packaged configuration's
#      region: a client logs in through pgnear, a wrong password is refused;
#   7. `systemctl reload`: the unit's ExecReload lines, which refuse a
#      broken file and apply a changed one (SHOW REGIONS on the console);
#   8. the unit's KillSignal stops it; `apt-get remove` keeps
#      /etc/pgnear/pgnear.ini, `apt-get purge` removes it (the user stays).
# It needs 127.0.0.1:5432 and :6432 free and no package pgnear installed,
# and leaves the machine as it found it (the user pgnear too, where it
# made it).  scripts/check-package.sh [--keep]: --keep leaves the build
# and the logs in /var/tmp.
set -eu
cd "$(dirname "$0")/.."

say() { echo "check-package: $*"; }
die() {
    echo "check-package: $*" >&2
    exit 1
}

keep=no
for arg in "$@"; do
    case $arg in
    --keep) keep=yes ;;
    -h | --help)
        sed -n '2,25s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown argument '$arg' (usage: scripts/check-package.sh [--keep])" ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "needs root (it installs and purges the package)"
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
for t in git dpkg-buildpackage dpkg-checkbuilddeps dpkg-parsechangelog lintian apt-get \
    setpriv runuser ss "$PG_BINDIR/initdb" "$PG_BINDIR/pg_ctl" "$PG_BINDIR/psql"; do
    command -v "$t" >/dev/null 2>&1 || die "needs $t (scripts/install-deps.sh installs it)"
done
psql=$PG_BINDIR/psql
! dpkg-query -W -f '${Status}' pgnear 2>/dev/null | grep -q installed ||
    die "the package pgnear is installed here already; this check installs and purges it"
[ ! -e /etc/pgnear ] || die "/etc/pgnear exists: not this check's to replace"
for port in 5432 6432; do
    [ -z "$(ss -Hltn "sport = :$port")" ] || die "port $port is taken; the packaged configuration uses it"
done
user_was_there=no
getent passwd pgnear >/dev/null && user_was_there=yes

work=$(mktemp -d /var/tmp/pgnear-package.XXXXXX)
chmod 0755 "$work" # PostgreSQL runs as postgres in it
pid=""
cleanup() {
    status=$?
    [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
    [ ! -f "$work/pg/data/postmaster.pid" ] ||
        runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
    if dpkg-query -W -f '${Status}' pgnear 2>/dev/null | grep -q 'ok \(installed\|config-files\)'; then
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -q pgnear >/dev/null 2>&1 || true
    fi
    [ -z "${rundir:-}" ] || rm -rf "/run/$rundir"
    if [ "$user_was_there" = no ] && getent passwd pgnear >/dev/null; then
        deluser --system --quiet pgnear >/dev/null 2>&1 || true
        delgroup --system --quiet pgnear >/dev/null 2>&1 || true
    fi
    if [ "$keep" = yes ]; then
        say "the build and the logs stay in $work"
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
start=$(date +%s)

# ---- 1. one version ----
version=$(sed -n 's/^AC_INIT(\[pgnear\], \[\([^]]*\)\].*/\1/p' configure.ac)
debian_version=$(dpkg-parsechangelog -S Version)
[ -n "$version" ] || die "no version in configure.ac's AC_INIT"
[ "${debian_version%%-*}" = "$version" ] ||
    die "debian/changelog says $debian_version, configure.ac '$version': add a changelog entry (dch -v)"
say "version $version, in configure.ac and debian/changelog"

# ---- 2. the build, from a clean copy ----
mkdir "$work/src"
git ls-files -z --cached --others --exclude-standard |
    tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$work/src"
(cd "$work/src" && dpkg-checkbuilddeps) || die "Build-Depends missing: scripts/install-deps.sh must install them"
say "dpkg-buildpackage -b -uc -us (nocheck) in a copy of the tree"
if ! (cd "$work/src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
    dpkg-buildpackage -b -uc -us >"$work/build.log" 2>&1); then
    tail -n 40 "$work/build.log" >&2
    die "dpkg-buildpackage failed"
fi
deb=$(ls "$work"/pgnear_"$version"_*.deb)
[ -f "$deb" ] || die "no pgnear_${version}_*.deb"
say "built $(basename "$deb") in $(($(date +%s) - start)) s"

# ---- 3. lintian ----
# Every tag that is left has its reason in debian/pgnear.lintian-overrides.
if ! lintian --fail-on error,warning,info,pedantic -I --pedantic "$work"/pgnear_"$version"_*.changes \
    >"$work/lintian.log" 2>&1; then
    grep -v 'root privileges' "$work/lintian.log" >&2
    die "lintian: tags above (fix them, or justify them in debian/pgnear.lintian-overrides)"
fi
say "lintian: no tag left unjustified"

# ---- 4. install ----
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$deb" >"$work/install.log" 2>&1 ||
    {
        cat "$work/install.log" >&2
        die "apt-get install ./$(basename "$deb") failed"
    }
for f in /usr/bin/pgnear /usr/share/man/man1/pgnear.1.gz /usr/share/pgnear/cities.csv \
    /usr/share/pgnear/cities.README.md /usr/share/doc/pgnear/copyright \
    /usr/share/doc/pgnear/examples/userlist.example.txt /usr/share/doc/pgnear/examples/pgpass.example \
    /lib/systemd/system/pgnear.service /lib/systemd/system/pgnear@.service; do
    [ -f "$f" ] || die "$f is not installed"
done
got=$(/usr/bin/pgnear --version)
case $got in *" $version"*) ;; *) die "pgnear --version says '$got', the package is $version" ;; esac
dpkg-query -W -f '${Conffiles}' pgnear | grep -q '^ /etc/pgnear/pgnear.ini ' ||
    die "/etc/pgnear/pgnear.ini is not a conffile"
[ "$(getent passwd pgnear | cut -d: -f6-7)" = /nonexistent:/usr/sbin/nologin ] ||
    die "the user pgnear: $(getent passwd pgnear)"
[ "$(stat -c '%U:%G %a' /etc/pgnear /etc/pgnear/pgnear.ini | tr '\n' ' ')" = "root:pgnear 750 root:pgnear 640 " ] ||
    die "/etc/pgnear must be root:pgnear 0750, pgnear.ini 0640: $(ls -ld /etc/pgnear /etc/pgnear/pgnear.ini)"
wants=/etc/systemd/system/multi-user.target.wants
[ "$(readlink "$wants/pgnear.service")" = /lib/systemd/system/pgnear.service ] ||
    die "pgnear.service is not enabled (no $wants/pgnear.service)"
! ls "$wants"/pgnear@* >/dev/null 2>&1 || die "the template pgnear@.service is enabled"
say "installed: files, conffile, user pgnear, /etc/pgnear 0750 root:pgnear, pgnear.service enabled"

# ---- 5. the unit's ExecStart, as systemd runs it ----
unit=/lib/systemd/system/pgnear.service
unit_value() { sed -n "s/^$1=//p" "$unit"; }
for key in Environment EnvironmentFile WorkingDirectory ExecStartPre; do
    [ -z "$(unit_value $key)" ] || die "the unit sets $key=, which this script does not do as systemd would: teach it"
done
user=$(unit_value User)
group=$(unit_value Group)
nofile=$(unit_value LimitNOFILE)
exec_start=$(unit_value ExecStart)
for v in "$user" "$group" "$nofile" "$exec_start"; do
    [ -n "$v" ] || die "the unit lacks one of User, Group, LimitNOFILE, ExecStart"
done
case $exec_start in /*) ;; *) die "ExecStart with a prefix or a relative path: $exec_start" ;; esac
run_name=$(unit_value RuntimeDirectory)
logsdir=$(unit_value LogsDirectory)
case "$run_name/$logsdir" in
[a-z]*/[a-z]*) ;;
*) die "the unit's RuntimeDirectory '$run_name' and LogsDirectory '$logsdir': one name each expected" ;;
esac
rundir=$run_name # cleanup removes /run/$rundir
install -d -o "$user" -g "$group" -m 0755 "/run/$rundir" "/var/log/$logsdir"
# As user and group, with the limit, from /, in systemd's environment (run
# it in a subshell: it execs).
# A container may cap the descriptors below LimitNOFILE, even for root:
# then pgnear runs with the cap, and that is said.
# shellcheck disable=SC3045 # ulimit -n: dash and bash have it
if (ulimit -n "$nofile" 2>/dev/null); then
    limit=$nofile
else
    limit=$(ulimit -Hn)
    say "this machine caps open files at $limit, below LimitNOFILE=$nofile: pgnear runs with $limit"
fi
# shellcheck disable=SC3045
as_unit() {
    cd / && ulimit -n "$limit" && exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 HOME=/nonexistent USER="$user" LOGNAME="$user" SHELL=/usr/sbin/nologin \
        setpriv --reuid="$user" --regid="$group" --init-groups -- "$@"
}
# Standard error is the journal.
# shellcheck disable=SC2086 # ExecStart's words, as systemd splits them
(as_unit $exec_start </dev/null >>"$work/journal" 2>&1) &
pid=$!
i=0
until [ -n "$(ss -Hltn 'sport = :6432')" ]; do
    kill -0 "$pid" 2>/dev/null || {
        cat "$work/journal" >&2
        die "pgnear exited: $exec_start"
    }
    i=$((i + 1))
    [ "$i" -lt 100 ] || die "pgnear does not listen on 6432 after 10 s"
    sleep 0.1
done
[ "$(awk '/^Max open files/ {print $4}' "/proc/$pid/limits")" = "$limit" ] ||
    die "pgnear does not run with $limit open files (LimitNOFILE=$nofile)"
[ "$(stat -c %U "/proc/$pid")" = "$user" ] || die "pgnear does not run as $user"
say "ExecStart=$exec_start runs (pid $pid, user $user, $limit open files)"
app="host=127.0.0.1 port=6432 dbname=postgres user=app"
got=$(PGPASSWORD=app-secret "$psql" -X -At "$app" -c 'SELECT 1' 2>&1) &&
    die "a login with no server behind pgnear succeeded: $got"
case $got in *'could not connect to any server of region "local"'*) ;; *) die "with no server on 127.0.0.1:5432, the client was told: $got" ;; esac
say "no server yet: the client is told '$(echo "$got" | head -n 1)'"

# ---- 6. a server, and a login through pgnear ----
mkdir -p "$work/pg"
chown postgres: "$work/pg"
runuser -u postgres -- "$PG_BINDIR/initdb" -D "$work/pg/data" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$work/initdb.log" 2>&1 ||
    die "initdb failed: $(cat "$work/initdb.log")"
runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=5432 -c unix_socket_directories=$work/pg" start >/dev/null ||
    die "PostgreSQL did not start: $(tail -n 5 "$work/pg/log")"
runuser -u postgres -- "$psql" -X -q -h "$work/pg" -p 5432 -d postgres \
    -c "CREATE ROLE app LOGIN PASSWORD 'app-secret'"
got=$(PGPASSWORD=app-secret "$psql" -X -At "$app" -c 'SELECT current_user, inet_server_port()') ||
    die "no login through the packaged pgnear"
[ "$got" = "app|5432" ] || die "through pgnear: '$got', expected app|5432"
say "psql through pgnear on 6432: logged in as app, served by 127.0.0.1:5432"
got=$(PGPASSWORD=wrong "$psql" -X -At "$app" -c 'SELECT 1' 2>&1) && die "a wrong password logged in"
case $got in *'password authentication failed for user "app"'*) ;; *) die "a wrong password: $got" ;; esac
say "a wrong password: '$(echo "$got" | head -n 1)'"

# ---- 7. systemctl reload: the unit's ExecReload lines ----
reload() {
    unit_value ExecReload | while IFS= read -r line; do
        # shellcheck disable=SC2046 # the line's words, $MAINPID as systemd fills it in
        (as_unit $(echo "$line" | sed "s/\$MAINPID/$pid/g")) </dev/null || exit 1
    done
}
conf=/etc/pgnear/pgnear.ini
# The console's regions, by the first column of each row (rows end in NUL:
# a host's last error may hold a newline).
regions() {
    runuser -u pgnear -- "$psql" -X -At -0 -h /tmp -p 6432 -d pgnear -c 'SHOW REGIONS' |
        tr '\n\0' ' \n' | cut -d'|' -f1 | sort -u | tr '\n' ' '
}
[ "$(regions)" = "local " ] || die "SHOW REGIONS on the console, before the reload: $(regions)"
cp "$conf" "$work/pgnear.ini.orig"
echo 'no_such_setting = 1' >>"$conf"
reload >"$work/reload.log" 2>&1 && die "systemctl reload of a file with an unknown setting succeeded"
cp "$work/pgnear.ini.orig" "$conf"
printf '\n[region second]\nhosts = 127.0.0.1:5432\n' >>"$conf"
reload >"$work/reload.log" 2>&1 || die "systemctl reload failed: $(cat "$work/reload.log")"
i=0
until [ "$(regions)" = "local second " ]; do
    i=$((i + 1))
    [ "$i" -lt 50 ] || die "after the reload, SHOW REGIONS lists: $(regions)"
    sleep 0.1
done
kill -0 "$pid" || die "pgnear did not survive the reload"
PGPASSWORD=app-secret "$psql" -X -At "$app" -c 'SELECT 1' >/dev/null || die "no login after the reload"
say "reload: a broken file refused by ExecReload's check, a new region applied by SIGHUP"

# ---- 8. stop, remove, purge ----
kill "-$(unit_value KillSignal | sed 's/^SIG//')" "$pid"
i=0
while kill -0 "$pid" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -lt 100 ] || die "pgnear still runs 10 s after its KillSignal"
    sleep 0.1
done
wait "$pid" || die "pgnear exited with status $? on its KillSignal"
pid=""
rm -rf "/run/$rundir" # as systemd does at the stop
DEBIAN_FRONTEND=noninteractive apt-get remove -y -q pgnear >"$work/remove.log" 2>&1 ||
    die "apt-get remove pgnear: $(cat "$work/remove.log")"
[ ! -e /usr/bin/pgnear ] || die "apt-get remove left /usr/bin/pgnear"
grep -q '^\[region second\]' "$conf" || die "apt-get remove did not keep the changed $conf"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q pgnear >"$work/purge.log" 2>&1 ||
    die "apt-get purge pgnear: $(cat "$work/purge.log")"
[ ! -e /etc/pgnear ] || die "apt-get purge left $(find /etc/pgnear)"
[ ! -e /var/log/pgnear ] || die "apt-get purge left /var/log/pgnear"
[ ! -e "$wants/pgnear.service" ] || die "apt-get purge left $wants/pgnear.service"
getent passwd pgnear >/dev/null || die "apt-get purge removed the user pgnear (Debian keeps system users)"
say "stopped by KillSignal; remove kept $conf, purge removed it and /etc/pgnear (the user pgnear stays)"
say "passed in $(($(date +%s) - start)) s"
