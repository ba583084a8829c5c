# On websocket_port, forwarded-address headers (X-Forwarded-For,
# Forwarded, CloudFront-Viewer-Address, cf-connecting-ip) from a peer in
# trusted_proxies place the caller (GeoIP) but decide no access: the
# auth_hba_file line is the connection's address's, so a client behind a
# layer-4 balancer that forges "X-Forwarded-For: 10.9.9.9" does not pass a
# reject line for 127.0.0.1 nor reach a trust line for 10.9.0.0/16.  Only
# a peer in trusted_http_proxies (off by default) has its forwarded address
# decide the line, read passing over only trusted_http_proxies' hops (a
# hop that is only in trusted_proxies is the caller then).  The failed-login
# throttle, too, counts by the connection's address.  In every case
# the session is still placed by the header's address: GeoIP puts
# 10.9.9.9 in Paris, so it lands in eu-west.  Real WebSocket clients: the
# Neon serverless driver (tests/node/neon_client.js), and the raw protocol
# over PgNearWs.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use JSON::PP;
use Test::More;
use PgNearTest;
use PgNearWs;

$SIG{PIPE} = 'IGNORE';
my $SRCDIR = $ENV{PGNEAR_SRCDIR} // "$FindBin::RealBin/../..";
die "PGNEAR is not set; point it at the pgnear binary\n" unless $ENV{PGNEAR} && -x $ENV{PGNEAR};

my $NODE = require_tool('node');    # dies loudly when missing
my $NODE_DIR = "$SRCDIR/tests/node";
for my $m (qw(@neondatabase/serverless ws)) {
    die "286_websocket_forwarded_hba: $NODE_DIR/node_modules/$m is missing: scripts/install-deps.sh "
      . "installs it (npm ci in tests/node)\n" unless -d "$NODE_DIR/node_modules/$m";
}
require_tool('psql');

# The servers trust pgnear's address: a trust line's login is the hba file's word alone.
my @HBA = ('local all all trust', 'host all all 127.0.0.1/32 trust');
my %cluster = map { $_ => PgNearTest::Cluster->new(name => $_, hba => \@HBA) } qw(us-east eu-west);
$_->psql_admin('CREATE ROLE mallory LOGIN') for values %cluster;
my $verifier = $cluster{'us-east'}->scram_verifier('app');
$cluster{'eu-west'}->psql_admin("ALTER ROLE app PASSWORD '$verifier'");

my $dir = tmpdir(name => 'ws-hba');
write_file("$dir/userlist.txt", qq{"app" "$verifier"\n});
my $hba = "$dir/pg_hba.conf";
write_file($hba, join("\n", 'host movr mallory 127.0.0.1/32 reject',    # line 1
                            'host movr mallory 10.9.0.0/16 trust',      # line 2
                            'host movr app 10.9.0.0/16 reject',         # line 3
                            'host movr app 127.0.0.1/32 scram-sha-256') # line 4
                 . "\n");
my $mmdb = "$dir/callers.mmdb";
{
    my ($rc, $out, $err) = run_cmd([$^X, "$SRCDIR/tests/lib/make_mmdb.pl", '--layout', 'maxmind',
                                    '--ip-version', 6, '--out', $mmdb,
                                    '10.9.9.0/24=Paris,FR,48.8566,2.3522'], timeout => 60);
    is $rc, 0, 'test GeoIP database written (10.9.9.0/24 in Paris)' or BAIL_OUT("make_mmdb.pl: $err");
}

my $p = PgNearTest::Proxy->new(regions => [map { $cluster{$_} } qw(us-east eu-west)],
    settings => { auth => 'hba', auth_hba_file => $hba, auth_file => "$dir/userlist.txt",
                  server_tls => 'disable', geoip_db => $mmdb, default_region => 'us-east',
                  trusted_proxies => '127.0.0.1/32, 192.0.2.0/24', websocket_port => free_port() });
my $wsport = $p->{settings}{websocket_port};

my $JSON = JSON::PP->new->utf8;

# The Neon driver, one query: { rows, error => {code, message}, region of its route line }.
sub neon {
    my (%o) = @_;
    my $off = $p->log_size;
    my @a = ($NODE, "$NODE_DIR/neon_client.js", '--port', $wsport, '--timeout', 15,
             '--pipeline', 'false', '--user', $o{user}, '--password', $o{password} // 'wrong',
             (map { ('--header', $_) } @{ $o{headers} // [] }),
             '--sql', "SELECT current_user, current_setting('cluster_name')");
    my ($rc, $out, $err) = run_cmd(\@a, timeout => 60);
    my %r = (stderr => $err);
    for (split /\n/, $out) {
        my $j = eval { $JSON->decode($_) } or next;
        $r{error} //= $j->{error} if $j->{error};
        $r{rows} = $j->{results}[0]{rows} if $j->{results};
    }
    $r{route} = $p->wait_for_log(qr/route: region (\S+?)(?:,| \()/, offset => $off, timeout => 5);
    $r{log} = substr($p->log_contents, $off);
    return \%r;
}

sub outcome {
    my ($r) = @_;
    return "ok @{ $r->{rows}[0] }" if $r->{rows};
    return 'error ' . ($r->{error}{code} // '-') . ' ' . ($r->{error}{message} // '');
}

sub reload {
    my $off = $p->log_size;
    $p->signal('HUP');
    return $p->wait_for_log(qr/(configuration reloaded|reload failed[^\n]*)/, offset => $off, timeout => 10);
}

my $REJECT_LOCAL = 'error 28000 pg_hba.conf rejects connection for host "127.0.0.1", user "mallory", '
                 . 'database "movr", no encryption';

{
    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $p->config_path]);
    like $out, qr/^websocket: a forwarded address only places the caller: access is the connection's address \(no trusted_http_proxies\)$/m,
        'pgnear --check says a forwarded address only places the caller';
}

# ---------------------------------------------------------------- default: headers place, never admit

for my $h ('X-Forwarded-For: 10.9.9.9', 'Forwarded: for=10.9.9.9', 'CloudFront-Viewer-Address: 10.9.9.9:46532',
           'cf-connecting-ip: 10.9.9.9') {
    my ($name) = $h =~ /^([^:]+)/;
    my $r = neon(user => 'mallory', headers => [$h]);
    is outcome($r), $REJECT_LOCAL,
        "$name claiming 10.9.9.9 from a trusted_proxies peer: the reject line for 127.0.0.1 still decides";
    is $r->{route}, 'eu-west', "$name: ... while the header's address still places the caller (GeoIP: Paris)";
}
{
    my $r = neon(user => 'mallory', headers => ['X-Forwarded-For: 10.9.9.9']);
    like $r->{log}, qr/WebSocket upgrade from 127\.0\.0\.1:\d+ \(path \/v2, caller 10\.9\.9\.9 per X-Forwarded-For for locality only: not in trusted_http_proxies\)/,
        'the log says the forwarded address was taken for locality only';
    $r = neon(user => 'app', password => 'app-secret', headers => ['X-Forwarded-For: 10.9.9.9']);
    is outcome($r), 'ok app eu-west',
        'app claiming 10.9.9.9: the line of its real address (scram) admits it, the reject line for 10.9/16 does not apply';
    $r = neon(user => 'app', password => 'wrong', headers => ['X-Forwarded-For: 10.9.9.9']);
    like outcome($r), qr/^error 28P01 password authentication failed for user "app"/, '... with its password only';

    # The failed-login throttle counts the connection's address too: a new forged address per
    # attempt does not start a new count.
    my $off = $p->log_size;
    neon(user => 'app', password => 'wrong', headers => ["X-Forwarded-For: 10.9.9.$_"]) for 21 .. 22;
    ok $p->wait_for_log(qr/3 failed logins in a row for user "app" from 127\.0\.0\.1:\d+: its next attempts wait/,
                        offset => $off, timeout => 5),
        'the failed-login throttle counts failures by the connection\'s address, whatever the header claims';
    $r = neon(user => 'app', password => 'app-secret', headers => ['X-Forwarded-For: 10.9.9.23']);
    is outcome($r), 'ok app eu-west', '... and the right password still logs in (clearing the count)';
}

# The raw protocol over a WebSocket, with the header sent twice (joined as one list).
{
    my $w = PgNearWs::Pg->connect(port => $wsport, path => '/',
                                  headers => ['X-Forwarded-For' => '10.9.9.9', 'X-Forwarded-For' => '10.9.9.8']);
    my $r = $w->startup(user => 'mallory', database => 'movr');
    is "$r->{error}{C} $r->{error}{M}", substr($REJECT_LOCAL, 6), 'PgNearWs: the same refusal';
}

# ---------------------------------------------------------------- trusted_http_proxies: headers decide

{
    $p->update_config(settings => { trusted_http_proxies => '127.0.0.1/32' });
    is reload(), 'configuration reloaded', 'reload with trusted_http_proxies = 127.0.0.1/32';
    my ($rc, $o, $e) = run_cmd([$ENV{PGNEAR}, '--check', $p->config_path]);
    like $o, qr/^websocket: a forwarded address decides access \(the hba line\) from trusted_http_proxies' 1 entries/m,
        '... which pgnear --check names';
    my $r = neon(user => 'mallory', headers => ['X-Forwarded-For: 10.9.9.9']);
    is outcome($r), 'ok mallory eu-west', 'now the header\'s 10.9.9.9 decides: the trust line admits mallory';
    like $r->{log}, qr/X-Forwarded-For from 127\.0\.0\.1:\d+ \(trusted_http_proxies\): caller 10\.9\.9\.9/,
        '... and the log says whose header made the caller';
    $r = neon(user => 'mallory', headers => ['Forwarded: for=10.9.9.9']);
    is outcome($r), 'ok mallory eu-west', '... Forwarded too';
    $r = neon(user => 'app', password => 'app-secret', headers => ['X-Forwarded-For: 10.9.9.9']);
    like outcome($r), qr/^error 28000 pg_hba\.conf rejects connection for host "10\.9\.9\.9", user "app"/,
        '... and the reject line for 10.9/16 refuses app, naming the forwarded address';
    $r = neon(user => 'mallory');
    is outcome($r), $REJECT_LOCAL, 'without a header, the connection\'s address decides';
    is $r->{route}, 'us-east', '... and places it by default';

    # 192.0.2.1 is in trusted_proxies only: passed over for locality, the caller for access.
    $r = neon(user => 'mallory', headers => ['X-Forwarded-For: 10.9.9.9, 192.0.2.1']);
    is outcome($r),
        'error 28000 no pg_hba.conf entry for host "192.0.2.1", user "mallory", database "movr", no encryption',
        'a hop only in trusted_proxies is the caller for access (it may pass headers through)';
    is $r->{route}, 'eu-west', '... while locality passes over it to 10.9.9.9';
}

{
    $p->update_config(settings => { trusted_http_proxies => 'not-an-address' });
    like reload(), qr/reload failed.*trusted_http_proxies: /, 'a malformed trusted_http_proxies fails the reload';
    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $p->config_path]);
    like "$out$err", qr/trusted_http_proxies: /, '... and --check';
}

$p->stop;
done_testing;
