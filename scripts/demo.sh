#!/bin/sh
# The demo: three local PostgreSQL 15 clusters as the regions us-east,
# us-west and eu-west, pgnear in front of them, and psql lines to try.
#   scripts/demo.sh          install, build, start (everything under demo-run/)
#   scripts/demo.sh stop     stop it all
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
run="$top/demo-run"
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
as_postgres="setpriv --reuid=postgres --regid=postgres --init-groups"
regions="us-east:39.04,-77.49:25501 us-west:45.60,-121.18:25502 eu-west:53.35,-6.26:25503"
port=${PGNEAR_PORT:-6432}

stop_all() {
    [ -f "$run/pgnear.pid" ] && kill "$(cat "$run/pgnear.pid")" 2>/dev/null || true
    for r in $regions; do
        name=${r%%:*}
        [ -d "$run/$name" ] && $as_postgres "$PG_BINDIR/pg_ctl" -D "$run/$name" -m fast stop >/dev/null 2>&1 || true
    done
    rm -f "$run/pgnear.pid"
}

if [ "${1:-}" = "stop" ]; then
    stop_all
    echo "demo stopped"
    exit 0
fi

scripts/install-deps.sh
bin=$(scripts/build.sh)/pgnear
stop_all
rm -rf "$run"
mkdir -p "$run"
chown postgres "$run"

# A throwaway CA and certificates, for TLS on both sides.
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=pgnear demo CA" \
    -keyout "$run/ca.key" -out "$run/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$run/server.key" \
    -out "$run/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n' > "$run/san.ext"
openssl x509 -req -in "$run/server.csr" -CA "$run/ca.crt" -CAkey "$run/ca.key" \
    -CAcreateserial -days 30 -extfile "$run/san.ext" -out "$run/server.crt" 2>/dev/null
chown postgres "$run/server.key" "$run/server.crt" "$run/ca.crt"
chmod 600 "$run/server.key"

verifier=""
for r in $regions; do
    name=${r%%:*}; rest=${r#*:}; loc=${rest%:*}; pgport=${rest##*:}
    $as_postgres "$PG_BINDIR/initdb" -D "$run/$name" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 >/dev/null
    cat >> "$run/$name/postgresql.conf" <<CONF
port = $pgport
listen_addresses = '127.0.0.1'
unix_socket_directories = '$run'
cluster_name = '$name'
ssl = on
ssl_cert_file = '$run/server.crt'
ssl_key_file = '$run/server.key'
CONF
    $as_postgres "$PG_BINDIR/pg_ctl" -D "$run/$name" -l "$run/$name.log" -w start >/dev/null
    psql="psql -X -q -h $run -p $pgport -U postgres -d postgres"
    if [ -z "$verifier" ]; then
        $psql -c "CREATE ROLE app LOGIN PASSWORD 'app-secret'"
        verifier=$($psql -At -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'")
    else
        # The same SCRAM secret in every region, so that pgnear can log in anywhere.
        $psql -c "CREATE ROLE app LOGIN PASSWORD '$verifier'"
    fi
    $psql -c "CREATE DATABASE movr OWNER app"
    hosts_lines="${hosts_lines:-}
[region $name]
location = $loc
hosts = 127.0.0.1:$pgport
"
done

printf '"app" "%s"\n' "$verifier" > "$run/userlist.txt"
geoip=""
if ls "$top"/conf/geoip/*.mmdb >/dev/null 2>&1; then
    geoip="geoip_db = $(ls "$top"/conf/geoip/*.mmdb | paste -sd, -)"
fi
cat > "$run/pgnear.ini" <<CONF
[pgnear]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir = $run
auth = scram
auth_file = $run/userlist.txt
client_tls = allow
client_tls_cert_file = $run/server.crt
client_tls_key_file = $run/server.key
server_tls = verify-full
server_tls_ca_file = $run/ca.crt
default_region = us-east
cities_file = $top/conf/cities.csv
$geoip
proxy_protocol = optional
trusted_proxies = 127.0.0.1/32
health_check_interval = 2s
server_conninfo = user=app password=app-secret
logfile = $run/pgnear.log
$hosts_lines
CONF

"$bin" --check "$run/pgnear.ini"
"$bin" -d "$run/pgnear.ini"
sleep 0.5
pgrep -f "pgnear -d $run/pgnear.ini" | head -n 1 > "$run/pgnear.pid"

cat <<MSG

pgnear is running on 127.0.0.1:$port in front of three regions (log: $run/pgnear.log).
Try (password: app-secret):

  psql "host=127.0.0.1 port=$port dbname=movr user=app" -c 'SHOW cluster_name'
  psql "host=127.0.0.1 port=$port dbname=movr user=app options='-c pgnear.city=Seattle'" -c 'SHOW cluster_name'
  psql "host=127.0.0.1 port=$port dbname=movr user=app options='-c pgnear.city=Dublin'" -c 'SHOW cluster_name'
  build/pgnear --explain $run/pgnear.ini city=Tokyo
  psql "host=localhost port=$port dbname=movr user=app sslmode=verify-full sslrootcert=$run/ca.crt channel_binding=require" -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'
  PGPASSWORD=app-secret pgbench -i "host=127.0.0.1 port=$port dbname=movr user=app" && PGPASSWORD=app-secret pgbench -S -T 5 "host=127.0.0.1 port=$port dbname=movr user=app"

Stop it with: scripts/demo.sh stop
MSG
