# Plain sessions through pgnear: TCP (IPv4, IPv6), the Unix socket, the
# real backend process ID, protocol 3.2 and version negotiation.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $p  = PgNearTest::Proxy->new(regions => [$us],
                                settings => { auth => 'passthrough', server_tls => 'disable' });

is psql($p->conninfo, 'SHOW cluster_name'), 'us-east', 'IPv4 session lands on the region';
is psql($p->conninfo, 'SELECT 6 * 7'), '42', 'a query returns its result';

SKIP: {
    skip 'no ::1 on this machine', 1 unless have_ipv6();
    is psql($p->conninfo(host => '::1'), 'SHOW cluster_name'), 'us-east', 'IPv6 session';
}

is psql($p->conninfo(host => $p->socket_dir), 'SELECT current_user'), 'app',
    'Unix-socket session';

# Several statements, errors inside a session, and the session going on.
my ($rc, $out, $err) = psql($p->conninfo, ['SELECT 1', 'SELECT * FROM no_such_table'], verbose => 1);
isnt $rc, 0, 'a failing statement fails';
is sqlstate($err), '42P01', 'the server error reaches the client with its SQLSTATE';
my @lines = split /\n/, psql($p->conninfo,
    "BEGIN; CREATE TEMP TABLE t(x int); INSERT INTO t VALUES (1),(2); SELECT sum(x) FROM t; COMMIT");
is $lines[-2], '3', 'transaction through pgnear';

# The client sees the server's real process ID (for pg_terminate_backend, NOTIFY senders).
my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
ok $r->{ok}, 'raw protocol 3.0 login';
my $q = $w->query('SELECT pg_backend_pid()');
is $q->{rows}[0][0], $r->{pid}, 'BackendKeyData carries the real backend pid';
is length($r->{key}), 4, 'protocol 3.0 cancel key is 4 bytes';
$w->terminate;

# Protocol 3.2: longer cancel keys, no NegotiateProtocolVersion.
$w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
$r = $w->startup(user => 'app', database => 'movr', password => 'app-secret', protocol => [3, 2]);
ok $r->{ok}, 'protocol 3.2 login';
ok !$r->{negotiate}, 'no NegotiateProtocolVersion for 3.2';
is length($r->{key}), 32, 'protocol 3.2 gets a 32-byte cancel key';
is $w->query('SHOW cluster_name')->{rows}[0][0], 'us-east', 'query over 3.2';
$w->terminate;

# Higher minor versions and unknown _pq_ options get NegotiateProtocolVersion.
$w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
$r = $w->startup(user => 'app', database => 'movr', password => 'app-secret', protocol => [3, 7],
                 params => ['_pq_.frobnicate' => 'on']);
ok $r->{ok}, 'protocol 3.7 login goes on after negotiation';
ok $r->{negotiate}, 'NegotiateProtocolVersion received';
is $r->{negotiate}{minor}, 2, 'pgnear offers 3.2';
is_deeply $r->{negotiate}{unrecognized}, ['_pq_.frobnicate'], 'unknown _pq_ option reported';
is $w->query('SELECT 1')->{rows}[0][0], 1, 'session works after negotiation';
$w->terminate;

like $p->log_contents, qr/c\d+: session established: user=app database=movr region=us-east/,
    'log line per event, with the client id';

done_testing;
