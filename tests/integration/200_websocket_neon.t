# PostgreSQL over WebSocket (websocket_port) driven by the Neon serverless
# driver (@neondatabase/serverless 0.10.4 from tests/node, through
# tests/node/neon_client.js), against three real regions under auth = scram.
#   - every combination of useSecureWebSocket (websocket_tls off/on),
#     pipelineConnect ("password", false) and forceDisablePgSSL (true, false:
#     TLS inside the WebSocket): the region's cluster_name, a parameterized
#     query with UTF-8, two statements in one query, 96 kB each way (12 kB
#     from the client with TLS inside: the driver's limit); the
#     wss proxy runs two workers;
#   - coalesceWrites = false (a frame per write of the driver), with and
#     without TLS inside;
#   - websocket_path: a custom path, the driver's string wsProxy (a query
#     string after the path), an unknown path (404);
#   - websocket_auth = scram: pipelineConnect false logs in, "password" gets
#     08P01 with a hint naming pipelineConnect; a wrong password is 28P01;
#     auth = passthrough: pipelineConnect false logs in, "password" gets
#     08P01 with that hint; client_tls = require: wss and TLS inside the
#     WebSocket count as encrypted, plain ws is 28000;
#   - locality from the headers of CDNs and load balancers, from a trusted
#     peer: each lands in the region nearest to the city or coordinates the
#     header names, computed here by haversine from coordinates the test
#     knows (checked against conf/cities.csv); São Paulo in Cloudflare's,
#     CloudFront's and Vercel's, Akamai's and plain UTF-8 spellings; the
#     log's route line names the header and gives the same distance;
#     precedence (region, then coordinates, then city); X-Forwarded-For
#     placed by the test GeoIP database;
#   - SHOW CLIENTS while a Neon session is held: transport websocket,
#     locality_via naming the header;
#   - an untrusted peer: headers ignored (default region) with a warning;
#     websocket_untrusted = refuse: HTTP 403, and no headers still works.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Digest::MD5 qw(md5_hex);
use IPC::Run ();
use JSON::PP ();
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
my $SRCDIR = $ENV{PGNEAR_SRCDIR} // "$FindBin::RealBin/../..";

# ---------------------------------------------------------------- node and the driver: fail, never skip

my $NODE = require_tool('node');    # dies loudly when missing
my $NODE_DIR = "$SRCDIR/tests/node";
my $CLIENT = "$NODE_DIR/neon_client.js";
for my $m (qw(@neondatabase/serverless ws subtls)) {
    die "200_websocket_neon: $NODE_DIR/node_modules/$m is missing: scripts/install-deps.sh installs it "
      . "(npm ci in tests/node)\n" unless -d "$NODE_DIR/node_modules/$m";
}
{
    my ($rc, $out) = run_cmd([$NODE, '--version']);
    die "200_websocket_neon: node --version failed\n" if $rc != 0;
    my ($major) = $out =~ /^v(\d+)\./;
    die "200_websocket_neon: node $out is too old: the Neon driver needs Node.js 18 or later\n"
      unless defined $major && $major >= 18;
    note "node $out";
}
require_tool($_) for qw(psql openssl);

# ---------------------------------------------------------------- geography (independent of pgnear)

# haversine_km (PgNearTest) computes distances without pgnear.

my @REGIONS = ('us-east', 'eu-west', 'sa-east');
my %REGION_AT = map { $_ => [split /\s*,\s*/, $PgNearTest::Cluster::LOCATION{$_}] } @REGIONS;
my $DEFAULT = 'us-east';

# (region, km) nearest to a point; dies when two regions are too close to call.
sub nearest {
    my ($lat, $lon) = @_;
    my @by = sort { $a->[1] <=> $b->[1] } map { [$_, haversine_km($lat, $lon, @{ $REGION_AT{$_} })] } @REGIONS;
    die "nearest: $lat, $lon is about as far from $by[0][0] as from $by[1][0]\n"
      if $by[1][1] - $by[0][1] < 100;
    return @{ $by[0] };
}

# Cities the test places, with the coordinates conf/cities.csv must give them.
my %CITY = (
    'São Paulo'         => ['BR', -23.5475, -46.6361],
    'Dublin'            => ['IE', 53.3331,  -6.2489],
    'Montréal'          => ['CA', 45.5088,  -73.5878],
    'Frankfurt am Main' => ['DE', 50.1155,  8.6842],
);
{
    open my $fh, '<:encoding(UTF-8)', "$SRCDIR/conf/cities.csv" or die "conf/cities.csv: $!\n";
    my %want = map { my $n = $_; utf8::decode($n); ($n => $_) } keys %CITY;
    my %seen;
    while (my $line = <$fh>) {
        my ($name, $cc, $lat, $lon) = split /,/, $line;
        next unless defined $lon && $want{$name};
        my $c = $CITY{ $want{$name} };
        next unless $cc eq $c->[0];
        $seen{$name} = 1;
        ok abs($lat - $c->[1]) < 1e-3 && abs($lon - $c->[2]) < 1e-3,
           "conf/cities.csv places $want{$name}, $cc where this test does";
    }
    is scalar(keys %seen), scalar(keys %CITY), 'conf/cities.csv has every city of the test';
}

# ---------------------------------------------------------------- servers

my $ca = PgNearTest::CA->new;
my %cluster = map { $_ => PgNearTest::Cluster->new(name => $_, ca => $ca) } @REGIONS;
# One SCRAM secret for app everywhere: pgnear logs into whichever region with it.
my $verifier = $cluster{'us-east'}->scram_verifier('app');
$cluster{$_}->psql_admin("ALTER ROLE app PASSWORD '$verifier'") for grep { $_ ne 'us-east' } @REGIONS;

my $auth_dir = tmpdir(name => 'ws-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist, qq{"app" "$verifier"\n"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});

my $pc = $ca->issue(name => 'pgnear', cn => 'localhost', san => ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1'],
                    owner => undef);

# A test GeoIP database: 203.0.113.9 is in Paris (for X-Forwarded-For).
my $mmdb = "$auth_dir/callers.mmdb";
{
    my ($rc, $out, $err) = run_cmd([$^X, "$SRCDIR/tests/lib/make_mmdb.pl", '--layout', 'maxmind',
                                    '--ip-version', 6, '--out', $mmdb,
                                    '203.0.113.9/32=Paris,FR,48.8566,2.3522'], timeout => 60);
    is $rc, 0, 'test GeoIP database written' or BAIL_OUT("make_mmdb.pl: $err");
}

my %BASE = (
    auth                  => 'scram',
    auth_file             => $userlist,
    admin_users           => 'admin',
    server_tls            => 'disable',
    client_tls            => 'allow',
    client_tls_cert_file  => $pc->{cert},
    client_tls_key_file   => $pc->{key},
    cities_file           => "$SRCDIR/conf/cities.csv",
    geoip_db              => $mmdb,
    default_region        => $DEFAULT,
    trusted_proxies       => '127.0.0.1, ::1',
    health_check_interval => '1s',
);

# Starts a pgnear per hash of settings, all before waiting for their health
# checks: wait_healthy takes 2.5 s at least, so they settle together.
sub proxies {
    my (@s) = @_;
    my $since = time;
    my @p;
    for my $s (@s) {
        my $p = PgNearTest::Proxy->new(regions => [map { $cluster{$_} } @REGIONS],
                                       settings => { %BASE, websocket_port => free_port(), %$s });
        $p->{ws_port} = $p->{settings}{websocket_port};
        push @p, $p;
    }
    $_->wait_healthy($since, values %cluster) for @p;
    return @p;
}

# ---------------------------------------------------------------- the client

my $JSON = JSON::PP->new->utf8;

sub client_argv {
    my ($p, %o) = @_;
    my @a = ($NODE, $CLIENT, '--port', $p->{ws_port}, '--timeout', $o{timeout} // 15);
    push @a, '--wss', '--ca', $ca->cert if $o{wss};
    push @a, '--pg-ssl', '--ca', $ca->cert if $o{pg_ssl};
    push @a, '--pipeline', $o{pipeline} // 'password';
    push @a, '--path', $o{path} if defined $o{path};
    push @a, '--ws-proxy-string' if $o{proxy_string};
    push @a, '--no-coalesce' if $o{no_coalesce};
    push @a, '--password', $o{password} if defined $o{password};
    push @a, '--header', $_ for @{ $o{headers} // [] };
    for my $st (@{ $o{sql} // [] }) {
        if (ref $st) { push @a, '--sql', $st->[0], '--params', $JSON->encode($st->[1]) }
        else         { push @a, '--sql', $st }
    }
    push @a, '--hold' if $o{hold};
    return @a;
}

sub parse_lines {
    my ($out) = @_;
    my @lines;
    for (split /\n/, $out) {
        my $j = eval { $JSON->decode($_) };
        push @lines, $j // { unparsed => $_ };
    }
    return @lines;
}

# Runs the client to its end: { rc, lines, stderr, results => [per --sql], error }.
sub neon {
    my ($p, %o) = @_;
    my ($rc, $out, $err) = run_cmd([client_argv($p, %o)], timeout => 60);
    my @lines = parse_lines($out);
    my ($error) = map { $_->{error} } grep { $_->{error} } @lines;
    return { rc => $rc, lines => \@lines, stderr => $err, error => $error,
             results => [map { $_->{results} } grep { $_->{results} } @lines] };
}

sub explain_run { my ($r) = @_; explain { rc => $r->{rc}, lines => $r->{lines}, stderr => $r->{stderr} } }

# The rows of the first result of the n-th statement.
sub rows_of { my ($r, $n) = @_; $r->{results}[$n // 0][0]{rows} }

my $Q_REGION = "SELECT current_setting('cluster_name')";

# ---------------------------------------------------------------- the matrix

my $big = join '', map { md5_hex($_) } 1 .. 3000;    # 96,000 bytes
# The driver's TLS inside the WebSocket (subtls 0.3.1) corrupts a write of
# more than one TLS record (16 kB): PostgreSQL itself answers it with "SSL
# error: decryption failed or bad record mac".  So what the client sends in
# one write stays under 16 kB there; what pgnear sends back does not.
my $big_tls = substr($big, 0, 12000);
my $utf8_word = "São";
utf8::decode($utf8_word);

# Every pgnear of the test, started at once; each section below uses its own.  Those
# that wait for their section check health less often (a query per region and
# check): nothing here is about health checks.
my %later = (health_check_interval => '3s');
my ($p_ws, $p_wss, $p_scram, $p_passthrough, $p_require_wss, $p_require_ws, $p_untrusted, $p_refuse) = proxies(
    { websocket_tls => 'off', websocket_path => '/v2, /pgnear/ws' },
    { websocket_tls => 'on', workers => 2 },
    { %later, websocket_auth => 'scram' },
    { %later, auth => 'passthrough', auth_file => undef, admin_users => undef },
    { %later, client_tls => 'require', websocket_tls => 'on' },
    { %later, client_tls => 'require', websocket_tls => 'off' },
    { %later, trusted_proxies => '192.0.2.1' },
    { %later, trusted_proxies => '192.0.2.1', websocket_untrusted => 'refuse' },
);

for my $wss (0, 1) {
    for my $pipeline ('password', 'false') {
        for my $pg_ssl (0, 1) {
            my $what = sprintf 'useSecureWebSocket=%s pipelineConnect=%s forceDisablePgSSL=%s',
                $wss ? 'true' : 'false', $pipeline eq 'false' ? 'false' : '"password"', $pg_ssl ? 'false' : 'true';
            my $p = $wss ? $p_wss : $p_ws;
            my $param = $pg_ssl ? $big_tls : $big;
            my $r = neon($p, wss => $wss, pipeline => $pipeline, pg_ssl => $pg_ssl, sql => [
                $Q_REGION,
                ['SELECT $1::int * $2::int AS product, $3::text AS word', [6, 7, $utf8_word]],
                "SELECT 1 AS a; SELECT 'two' AS b",
                "SELECT string_agg(md5(i::text), '' ORDER BY i) FROM generate_series(1, 3000) i",
                ['SELECT md5($1::text), length($1::text)', [$param]],
            ]);
            is $r->{rc}, 0, "$what: the client ran every statement" or diag explain_run($r);
            is_deeply rows_of($r, 0), [[$DEFAULT]], "$what: lands in the default region";
            is_deeply rows_of($r, 1), [[42, $utf8_word]], "$what: parameterized query, UTF-8 both ways";
            is_deeply [map { $_->{rows} } @{ $r->{results}[2] // [] }], [[[1]], [['two']]],
                "$what: two statements in one query, two results";
            ok defined rows_of($r, 3) && rows_of($r, 3)->[0][0] eq $big, "$what: 96 kB result";
            is_deeply rows_of($r, 4), [[md5_hex($param), length $param]],
                sprintf('%s: %d kB parameter', $what, length($param) / 1000);
        }
    }
}

# Without coalesceWrites each write of the driver is a WebSocket message of
# its own: a query is several small frames (with TLS inside, a record each).
for my $pg_ssl (0, 1) {
    my $what = 'coalesceWrites=false forceDisablePgSSL=' . ($pg_ssl ? 'false' : 'true');
    my $r = neon($p_ws, pipeline => 'false', no_coalesce => 1, pg_ssl => $pg_ssl, sql => [
        $Q_REGION, ['SELECT $1::int * $2::int AS product, $3::text AS word', [6, 7, $utf8_word]],
        ['SELECT md5($1::text), length($1::text)', [$pg_ssl ? $big_tls : $big]]]);
    is $r->{rc}, 0, "$what: the client ran every statement" or diag explain_run($r);
    is_deeply rows_of($r, 1), [[42, $utf8_word]], "$what: parameterized query";
    is_deeply rows_of($r, 2), [[md5_hex($pg_ssl ? $big_tls : $big), $pg_ssl ? 12000 : 96000]],
        "$what: a large parameter";
}

# ---------------------------------------------------------------- paths

{
    my $r = neon($p_ws, pipeline => 'false', path => '/pgnear/ws', sql => [$Q_REGION]);
    is_deeply rows_of($r), [[$DEFAULT]], 'websocket_path: a custom path works' or diag explain_run($r);
    $r = neon($p_ws, proxy_string => 1, path => '/v2', sql => [$Q_REGION]);
    is_deeply rows_of($r), [[$DEFAULT]], 'the driver\'s string wsProxy (/v2?address=localhost:5432) works'
      or diag explain_run($r);
    $r = neon($p_ws, path => '/nope', sql => [$Q_REGION]);
    is $r->{rc}, 3, 'an unknown path fails the connection' or diag explain_run($r);
    is $r->{error}{http_status}, 404, '... with HTTP 404' or diag explain_run($r);
    $r = neon($p_wss, wss => 1, path => '/pgnear/ws', sql => [$Q_REGION]);
    is $r->{error}{http_status}, 404, 'a path configured on another pgnear only is 404' or diag explain_run($r);
}

# ---------------------------------------------------------------- authentication

for my $pipeline ('password', 'false') {
    my $r = neon($p_ws, pipeline => $pipeline, password => 'wrong', sql => [$Q_REGION]);
    is $r->{rc}, 2, "websocket_auth = cleartext, pipelineConnect=$pipeline: a wrong password fails"
      or diag explain_run($r);
    is $r->{error}{code}, '28P01', '... with 28P01' or diag explain_run($r);
}
{
    my $p = $p_scram;
    my $r = neon($p, pipeline => 'false', sql => [$Q_REGION]);
    is $r->{rc}, 0, 'websocket_auth = scram: pipelineConnect false logs in with SCRAM' or diag explain_run($r);
    is_deeply rows_of($r), [[$DEFAULT]], '... and runs a query';
    $r = neon($p, pipeline => 'password', sql => [$Q_REGION]);
    is $r->{rc}, 2, 'websocket_auth = scram: pipelineConnect "password" fails' or diag explain_run($r);
    is $r->{error}{code}, '08P01', '... with 08P01' or diag explain_run($r);
    like $r->{error}{hint} // '', qr/pipelineConnect/, '... and a hint naming pipelineConnect'
      or diag explain_run($r);
    $r = neon($p, pipeline => 'false', password => 'wrong', sql => [$Q_REGION]);
    is $r->{error}{code}, '28P01', 'websocket_auth = scram: a wrong password is 28P01' or diag explain_run($r);
    $p->stop;
}

{
    my $p = $p_passthrough;
    my $r = neon($p, pipeline => 'false', sql => [$Q_REGION]);
    is $r->{rc}, 0, 'auth = passthrough: pipelineConnect false logs in (SCRAM with the server)'
      or diag explain_run($r);
    is_deeply rows_of($r), [[$DEFAULT]], '... and runs a query';
    $r = neon($p, pipeline => 'password', sql => [$Q_REGION]);
    is $r->{rc}, 2, 'auth = passthrough: pipelineConnect "password" against a SCRAM server fails'
      or diag explain_run($r);
    is $r->{error}{code}, '08P01', '... with 08P01' or diag explain_run($r);
    like $r->{error}{hint} // '', qr/pipelineConnect/, '... and a hint naming pipelineConnect'
      or diag explain_run($r);
    $p->stop;
}

# client_tls = require: wss, or TLS inside the WebSocket, is encrypted; plain ws is not.
{
    my $p = $p_require_wss;
    my $r = neon($p, wss => 1, pipeline => 'false', sql => [$Q_REGION]);
    is_deeply rows_of($r), [[$DEFAULT]], 'client_tls = require: wss counts as encrypted' or diag explain_run($r);
    $p->stop;
    $p = $p_require_ws;
    $r = neon($p, pipeline => 'false', sql => [$Q_REGION]);
    is $r->{error}{code}, '28000', 'client_tls = require: plain ws without TLS inside is refused with 28000'
      or diag explain_run($r);
    $r = neon($p, pipeline => 'false', pg_ssl => 1, sql => [$Q_REGION]);
    is_deeply rows_of($r), [[$DEFAULT]], 'client_tls = require: plain ws with TLS inside works'
      or diag explain_run($r);
    $p->stop;
}

# ---------------------------------------------------------------- locality headers

# The route line logged since $off: (region, km or undef, source, reason).
sub route_line {
    my ($p, $off) = @_;
    my $re = qr/route: region (\S+?)(?:, (\d+) km away)? \((\w+): ([^\n]*)\)\n/;
    $p->wait_for_log($re, offset => $off, timeout => 5);
    my @m = substr($p->log_contents, $off) =~ $re;
    return @m;
}

my $sp = 'São Paulo';
utf8::decode($sp);
my @sp = @{ $CITY{'São Paulo'} }[1, 2];
my @dublin = @{ $CITY{'Dublin'} }[1, 2];
my @frankfurt = @{ $CITY{'Frankfurt am Main'} }[1, 2];
my @montreal = @{ $CITY{'Montréal'} }[1, 2];
my @rio = (-22.9064, -43.1822);

# name, headers, the header the route must name, where the caller is (or a region).
my @CASES = (
    ['Cloudflare cf-ipcity, \u00XX escapes', ['cf-ipcity: S\u00c3\u00a3o Paulo', 'cf-ipcountry: BR'],
     'cf-ipcity', \@sp],
    ['CloudFront-Viewer-City, percent-encoded', ['CloudFront-Viewer-City: S%C3%A3o%20Paulo',
     'CloudFront-Viewer-Country: BR'], 'CloudFront-Viewer-City', \@sp],
    ['x-vercel-ip-city, percent-encoded', ['x-vercel-ip-city: S%C3%A3o%20Paulo', 'x-vercel-ip-country: BR'],
     'x-vercel-ip-city', \@sp],
    ['x-vercel-ip-city Montr%C3%A9al', ['x-vercel-ip-city: Montr%C3%A9al', 'x-vercel-ip-country: CA'],
     'x-vercel-ip-city', \@montreal],
    ['X-City in plain UTF-8 with X-Country', ["X-City: S\xc3\xa3o Paulo", 'X-Country: BR'], 'X-City', \@sp],
    ['X-Akamai-Edgescape city=SAOPAULO', ['X-Akamai-Edgescape: georegion=39,country_code=BR,region_code=SP,'
     . 'city=SAOPAULO,continent=SA,timezone=GMT-3,network=example'], 'X-Akamai-Edgescape', \@sp],
    ['X-Akamai-Edgescape lat= long=', ['X-Akamai-Edgescape: country_code=IE,city=DUBLIN,'
     . "lat=$dublin[0],long=$dublin[1]"], 'X-Akamai-Edgescape', \@dublin],
    ['X-Client-Geo-Location (GCP) region,city', ['X-Client-Geo-Location: IE,Dublin'],
     'X-Client-Geo-Location', \@dublin],
    ['cf-iplatitude / cf-iplongitude', ["cf-iplatitude: $frankfurt[0]", "cf-iplongitude: $frankfurt[1]"],
     'cf-iplatitude', \@frankfurt],
    ['CloudFront-Viewer-Latitude / -Longitude', ["CloudFront-Viewer-Latitude: $rio[0]",
     "CloudFront-Viewer-Longitude: $rio[1]"], 'CloudFront-Viewer-Latitude', \@rio],
    ['X-Appengine-CityLatLong', ["X-Appengine-CityLatLong: $dublin[0],$dublin[1]"],
     'X-Appengine-CityLatLong', \@dublin],
    ['X-Region', ['X-Region: sa-east'], 'X-Region', 'sa-east'],
    ['X-Region before coordinates and city', ['X-Region: eu-west', "cf-iplatitude: $sp[0]",
     "cf-iplongitude: $sp[1]", 'cf-ipcity: S\u00c3\u00a3o Paulo'], 'X-Region', 'eu-west'],
    ['coordinates before a city', ["CloudFront-Viewer-Latitude: $dublin[0]",
     "CloudFront-Viewer-Longitude: $dublin[1]", 'CloudFront-Viewer-City: S%C3%A3o%20Paulo'],
     'CloudFront-Viewer-Latitude', \@dublin],
    ['X-Forwarded-For placed by GeoIP', ['X-Forwarded-For: 203.0.113.9'], undef, [48.8566, 2.3522]],
);
{
    my %expected = map { ref $_->[3] ? ((nearest(@{ $_->[3] }))[0] => 1) : ($_->[3] => 1) } @CASES;
    is_deeply [sort keys %expected], [sort @REGIONS], 'the header cases spread over all three regions';
}

for my $c (@CASES) {
    my ($name, $headers, $header, $where) = @$c;
    my ($want, $km) = ref $where ? nearest(@$where) : ($where, undef);
    my $off = $p_ws->log_size;
    my $r = neon($p_ws, pipeline => 'false', headers => $headers, sql => [$Q_REGION]);
    is_deeply rows_of($r), [[$want]], "$name: lands in $want" or diag explain_run($r);
    my ($region, $logged_km, $source, $reason) = route_line($p_ws, $off);
    is $region, $want, "$name: the route line says $want";
    if (defined $header) {
        like $reason // '', qr/\Q$header\E/i, "$name: the route line names $header" or diag "reason: $reason";
    } else {
        is $source, 'geoip', "$name: the route line's source is geoip";
    }
    if (defined $km) {
        ok defined $logged_km && abs($logged_km - $km) <= 2 + 0.005 * $km,
           sprintf('%s: %s km logged, %.0f km by haversine', $name, $logged_km // 'no distance', $km);
    }
}

# ---------------------------------------------------------------- SHOW CLIENTS while a Neon session is held

{
    my ($in, $out, $err) = ('', '', '');
    my $h = IPC::Run::start([client_argv($p_wss, wss => 1, pipeline => 'false', hold => 1,
                                         headers => ['cf-ipcity: S\u00c3\u00a3o Paulo', 'cf-ipcountry: BR'],
                                         sql => [$Q_REGION])],
                            '<', \$in, '>', \$out, '2>', \$err, IPC::Run::timeout(60));
    my $held = wait_until(sub { eval { $h->pump_nb }; $out =~ /"held":true/ }, timeout => 20);
    ok $held, 'a Neon client holds its session' or diag "out: $out\nerr: $err";
    my @ws = grep { ($_->{transport} // '') eq 'websocket' } $p_wss->admin_rows('SHOW CLIENTS');
    is scalar(@ws), 1, 'SHOW CLIENTS: one client with transport websocket'
      or diag explain [$p_wss->admin_rows('SHOW CLIENTS')];
    my $row = $ws[0] // {};
    is $row->{locality_via}, 'header cf-ipcity', 'SHOW CLIENTS: locality_via names the header';
    is $row->{region}, 'sa-east', 'SHOW CLIENTS: the region the header placed it in';
    is $row->{locality_source}, 'city', 'SHOW CLIENTS: locality_source city';
    is $row->{user}, 'app', 'SHOW CLIENTS: the user';
    my $ended = eval { $h->finish; 1 };
    ok $ended && $h->result(0) == 0, 'the held client ends cleanly when told to' or diag "out: $out\nerr: $err";
    eval { $h->kill_kill(grace => 1) } unless $ended;
    is_deeply [map { $_->{results} ? $_->{results}[0]{rows} : () } parse_lines($out)], [[['sa-east']]],
        'the held client was in sa-east';
}

# ---------------------------------------------------------------- untrusted peers

{
    my $p = $p_untrusted;
    my $off = $p->log_size;
    my $r = neon($p, pipeline => 'false', sql => [$Q_REGION],
                 headers => ['cf-ipcity: S\u00c3\u00a3o Paulo', 'cf-ipcountry: BR', 'X-Forwarded-For: 203.0.113.9']);
    is_deeply rows_of($r), [[$DEFAULT]], 'untrusted peer: its locality headers are ignored (default region)'
      or diag explain_run($r);
    ok $p->wait_for_log(qr/locality headers from 127\.0\.0\.1(?::\d+)? ignored: not in trusted_proxies/, offset => $off),
       'untrusted peer: a warning in the log';
    my ($region, undef, $source) = route_line($p, $off);
    is $source, 'default', 'untrusted peer: routed by default';
    $p->stop;
}
{
    my $p = $p_refuse;
    my $r = neon($p, pipeline => 'false', sql => [$Q_REGION], headers => ['X-Region: sa-east']);
    is $r->{rc}, 3, 'websocket_untrusted = refuse: an untrusted peer with a locality header is refused'
      or diag explain_run($r);
    is $r->{error}{http_status}, 403, '... with HTTP 403' or diag explain_run($r);
    $r = neon($p, pipeline => 'false', sql => [$Q_REGION]);
    is_deeply rows_of($r), [[$DEFAULT]], 'websocket_untrusted = refuse: the same peer without such headers works'
      or diag explain_run($r);
    $p->stop;
}

done_testing;
