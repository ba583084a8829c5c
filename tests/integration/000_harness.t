#!/usr/bin/perl
# Tests the integration-test harness itself against real PostgreSQL servers.
# Does not need pgnear: the Proxy class is exercised with a stand-in daemon.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time);
use MIME::Base64 qw(decode_base64);
use PgNearTest;

my $t0 = time;

# Missing tools must fail loudly, never skip.
require_tool($_) for qw(psql pgbench initdb pg_ctl postgres openssl);
require_tool('setpriv') if $> == 0;
ok(!eval { require_tool('no-such-tool-pgnear'); 1 }, 'require_tool dies on a missing tool');
like($@, qr/no-such-tool-pgnear/, '... naming the tool');

# ---- small helpers
{
    my $p1 = free_port();
    my $p2 = free_port(ipv6 => 1);
    isnt($p1, $p2, 'free_port hands out distinct ports');
    ok($p1 >= 20000 && $p1 < 32000 && $p2 >= 20000 && $p2 < 32000, 'ports below the ephemeral range');
    my $d = tmpdir(name => 'scratch');
    ok(-d $d, 'tmpdir exists');
    my $n = 0;
    my $t = time;
    is(wait_until(sub { ++$n >= 3 && 'done' }, timeout => 5, interval => 0.01), 'done', 'wait_until returns the value');
    is(wait_until(sub { 0 }, timeout => 0.3, interval => 0.05), 0, 'wait_until gives up');
    ok(time - $t < 2, 'wait_until is bounded');
    is(conninfo_string(host => 'h', options => "-c a=b", password => "it's", x => undef),
       q{host=h options='-c a=b' password='it\'s'}, 'conninfo_string quotes');
    my %r = %{ parse_pgbench("number of transactions actually processed: 12\n"
                            . "number of failed transactions: 0 (0.000%)\ntps = 6.5 (without initial connection time)\n") };
    is_deeply([@r{qw(processed failed tps)}], [12, 0, 6.5], 'parse_pgbench');
    my ($rc, $out, $err) = run_cmd(['sleep', '5'], timeout => 0.5);
    is($rc, -1, 'run_cmd times out');
    like($err, qr/timed out/, '... and says so');
}

# ---- CA and two TLS clusters
my $ca = PgNearTest::CA->new;
ok(-s $ca->cert, 'CA certificate created');
my %c;
for my $name (qw(us-east eu-west)) {
    $c{$name} = PgNearTest::Cluster->new(name => $name, ca => $ca);
    ok($c{$name}->is_running, "cluster $name running on port " . $c{$name}->port);
}
isnt($c{'us-east'}->port, $c{'eu-west'}->port, 'clusters on different ports');
is($c{'us-east'}->location, '39.04, -77.49', 'default location for us-east');

for my $name (sort keys %c) {
    my $cl = $c{$name};
    is(psql($cl->conninfo, 'SHOW cluster_name'), $name, "$name: SHOW cluster_name over TCP with SCRAM");
    is(psql($cl->conninfo(sslmode => 'require'), 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'),
       't', "$name: sslmode=require uses TLS");
    is($cl->psql_admin("SELECT rolsuper FROM pg_roles WHERE rolname = 'pgnear'"), 't', "$name: pgnear is superuser");
    is(psql($cl->conninfo(user => 'pgnear', password => 'pgnear-secret', dbname => 'postgres'),
            "SELECT count(*) FROM pg_authid WHERE rolname = 'app'"), '1', "$name: pgnear can read pg_authid");
    is(psql($cl->conninfo, 'SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()'),
       'app', "$name: movr owned by app");
}

my $us = $c{'us-east'};
{
    my $ci = $us->conninfo(host => 'localhost', sslmode => 'verify-full', sslrootcert => $ca->cert);
    is(psql($ci, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'), 't', 'verify-full against the test CA');
    my $other = PgNearTest::CA->new(cn => 'Some Other CA');
    my ($rc, $out, $err) = psql($us->conninfo(host => 'localhost', sslmode => 'verify-full',
                                              sslrootcert => $other->cert), 'SELECT 1');
    isnt($rc, 0, 'verify-full with a foreign CA fails');
    like($err, qr/certificate verify failed/, '... with a certificate error');
    my $client = $ca->issue(name => 'client-app', cn => 'app', owner => undef);
    ok(-s $client->{cert} && ((stat $client->{key})[2] & 07777) == 0600, 'issue() makes a cert and a 0600 key');
}

SKIP: {
    skip 'no IPv6 loopback', 1 unless have_ipv6();
    is(psql($us->conninfo(host => '::1'), 'SHOW cluster_name'), 'us-east', 'cluster listens on ::1');
}

# ---- authentication failures and SQLSTATEs
{
    my ($rc, $out, $err) = psql($us->conninfo(password => 'wrong'), 'SELECT 1');
    is($rc, 2, 'wrong password: psql exits 2');
    like($err, qr/password authentication failed/, '... password authentication failed');

    my $w = PgNearTest::Wire->connect(port => $us->port);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'wrong');
    ok(!$r->{ok}, 'wire login with a wrong password fails');
    is(sqlstate($r->{error}), '28P01', '... with SQLSTATE 28P01');

    $w = PgNearTest::Wire->connect(port => $us->port);
    $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                     params => [application_name => 'harness']);
    ok($r->{ok}, 'wire SCRAM login works');
    ok($r->{server_signature_ok}, '... and the server signature verifies');
    ok($r->{pid} && length($r->{key}) == 4, '... BackendKeyData received');
    my $q = $w->query('SHOW cluster_name; SELECT 1/0');
    is_deeply($q->{rows}, [['us-east']], 'wire query rows');
    is(sqlstate($q->{error}), '22012', 'wire query error SQLSTATE');
    $w->terminate;

    # cancel through the wire client
    $w = PgNearTest::Wire->connect(port => $us->port, timeout => 20);
    $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    $w->send_msg('Q', "SELECT pg_sleep(20)\0");
    ok(wait_until(sub { psql($us->conninfo, "SELECT count(*) FROM pg_stat_activity WHERE pid = $r->{pid} AND state = 'active'") eq '1' },
                  timeout => 10), 'long query running');
    PgNearTest::Wire->cancel(port => $us->port, pid => $r->{pid}, key => $r->{key});
    my $t = time;
    my %seen;
    for (1 .. 20) {
        my ($type, $payload) = $w->read_msg or last;
        $seen{sqlstate} = PgNearTest::Wire::parse_fields($payload)->{C} if $type eq 'E';
        last if $type eq 'Z';
    }
    is($seen{sqlstate}, '57014', 'CancelRequest cancels the query (57014)');
    ok(time - $t < 10, '... promptly');
    $w->terminate;

    $w = PgNearTest::Wire->connect(port => $us->port);
    is($w->ssl_request, 'S', 'SSLRequest answered S by a TLS server');
    $w->terminate;

    ($rc, $out, $err) = psql($us->conninfo, 'SELECT 1/0', verbose => 1);
    is(sqlstate($err), '22012', 'psql verbose gives the SQLSTATE');
    ok(!eval { psql($us->conninfo, 'SELECT 1/0'); 1 }, 'psql in scalar context dies on error');

    my $dbh = dbi_connect($us->conninfo);
    ok($dbh, 'DBD::Pg connects') or diag(DBI->errstr);
    is(($dbh->selectrow_array('SHOW cluster_name'))[0], 'us-east', 'DBD::Pg query');
    $dbh->disconnect;
    ok(!dbi_connect($us->conninfo(password => 'nope')), 'DBD::Pg refuses a wrong password');

    ($rc, $out, $err) = psql($us->conninfo, 'SELECT pg_sleep(10)', timeout => 1);
    is($rc, -1, 'psql timeout is enforced');
}

# ---- SCRAM verifiers
{
    my $v = $us->scram_verifier('app');
    like($v, qr/^SCRAM-SHA-256\$4096:/, 'scram_verifier returns a SCRAM-SHA-256 verifier');
    my ($salt) = $v =~ /^SCRAM-SHA-256\$\d+:([^\$]+)\$/;
    is(make_scram_verifier('app-secret', salt => decode_base64($salt)), $v,
       'make_scram_verifier agrees with PostgreSQL');
}

# ---- pgbench
{
    my ($rc, $out, $err) = pgbench(['-i', '-s', '1', '-q'], $us->conninfo);
    is($rc, 0, 'pgbench -i') or diag($err);
    ($rc, $out, $err) = pgbench(['-S', '-T', '2', '-c', '4', '-j', '2'], $us->conninfo(sslmode => 'require'));
    is($rc, 0, 'pgbench -S -T 2') or diag($err);
    my $r = parse_pgbench($out);
    is($r->{failed}, 0, 'no failed transactions');
    ok($r->{processed} > 0 && $r->{tps} > 0, "pgbench processed $r->{processed} transactions");
}

# ---- stop / start / restart
{
    my $eu = $c{'eu-west'};
    $eu->stop;
    ok(!$eu->is_running, 'stopped');
    my ($rc) = psql($eu->conninfo, 'SELECT 1');
    is($rc, 2, 'connection refused while stopped');
    $eu->start;
    is(psql($eu->conninfo, 'SHOW cluster_name'), 'eu-west', 'started again on the same port');
    my $pid = $eu->pid;
    $eu->restart(mode => 'immediate');
    isnt($eu->pid, $pid, 'restart gives a new postmaster');
    is(psql($eu->conninfo, 'SELECT 1'), '1', 'works after restart');
}

# ---- Proxy machinery, with a stand-in daemon instead of pgnear
{
    local $ENV{PGNEAR};
    ok(!eval { PgNearTest::Proxy->new(regions => [$us]); 1 }, 'Proxy dies when PGNEAR is unset');
    like($@, qr/PGNEAR/, '... saying so');

    my $p = PgNearTest::Proxy->new(
        regions  => [$us, $c{'eu-west'}, { name => 'us-west', hosts => ['127.0.0.1:1'] }],
        settings => { health_check_interval => '1s', trusted_proxies => ['127.0.0.1/32', '::1/128'] },
        extra_ini => "[cities]\nseattle = us-west\n",
        start => 0);
    my $ini = $p->config_text;
    like($ini, qr/^\[pgnear\]$/m, 'INI has [pgnear]');
    like($ini, qr/^listen_port = ${\ $p->port}$/m, 'listen_port');
    like($ini, qr/^default_region = us-east$/m, 'default_region is the first region');
    like($ini, qr/^trusted_proxies = 127\.0\.0\.1\/32, ::1\/128$/m, 'list settings');
    like($ini, qr/^\[region eu-west\]\nlocation = 53\.35, -6\.26\nhosts = 127\.0\.0\.1:${\ $c{'eu-west'}->port}$/m,
         'region section');
    like($ini, qr/^\[region us-west\]\nlocation = 45\.60, -121\.18\nhosts = 127\.0\.0\.1:1$/m, 'hashref region');
    like($ini, qr/^seattle = us-west$/m, 'extra_ini');

    my $dir = tmpdir(name => 'fake');
    my $fake = write_file("$dir/fake-pgnear", <<"EOF", mode => 0755);
#!$^X
use strict; use warnings; use IO::Socket::IP;
\$| = 1;
my (\$ini) = grep { /\\.ini\$/ } \@ARGV;
open my \$fh, '<', \$ini or die "no config \$ini";
my (\$port) = do { local \$/; <\$fh> } =~ /^listen_port = (\\d+)/m;
exit 3 if \$ENV{FAKE_FAIL};
my \$l = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => \$port, Listen => 5, ReuseAddr => 1)
  or die "cannot listen on \$port: \$@";
print STDERR "fake pgnear listening on \$port args=\@ARGV\\n";
\$SIG{HUP}  = sub { print STDERR "reloading\\n" };
\$SIG{TERM} = sub { print STDERR "SIGTERM, exiting\\n"; exit 0 };
while (1) { my \$c = \$l->accept; close \$c if \$c }
EOF
    $p = PgNearTest::Proxy->new(regions => [$us], binary => $fake);
    ok($p->is_running && $p->pid, 'stand-in daemon started');
    like($p->log_contents, qr/listening on ${\ $p->port} args=-v \S+pgnear\.ini/, 'started as PGNEAR -v CONFIG.ini');
    my $off = $p->log_size;
    $p->signal('HUP');
    ok($p->wait_for_log(qr/reloading/, offset => $off, timeout => 5), 'signal HUP reaches it');
    like($p->conninfo(options => '-c pgnear.city=seattle'),
         qr/^host=127\.0\.0\.1 port=\d+ dbname=movr user=app password=app-secret sslmode=disable connect_timeout=10 options='-c pgnear\.city=seattle'$/,
         'Proxy conninfo');
    is($p->stop, 0, 'stop returns the exit code');
    ok(!$p->is_running, 'stopped');

    local $ENV{FAKE_FAIL} = 1;
    ok(!eval { PgNearTest::Proxy->new(regions => [$us], binary => $fake); 1 }, 'early exit is detected');
    like($@, qr/exited during startup \(status 3\)/, '... with its status');
}

# Every integration test is run by make check: a file missing from Makefile.am's list would
# pass unseen by CI.
{
    my $src = $ENV{PGNEAR_SRCDIR} // "$FindBin::RealBin/../..";
    my $am = slurp_file("$src/Makefile.am");
    my @files = map { s{^.*/}{}r } glob("$src/tests/integration/*.t");
    my @unlisted = grep { $am !~ /tests\/integration\/\Q$_\E\b/ } @files;
    is_deeply \@unlisted, [], 'every tests/integration/*.t is in INTEGRATION_TESTS'
        or diag "not listed in Makefile.am: @unlisted";
}

diag(sprintf 'harness self-test took %.1f s', time - $t0);
done_testing;
