# A database cutover through a fleet: two pgnear instances (peer_id 1 and
# 2, the same peers) behind HAProxy, both serving the MovR database's
# clients, while MOVE DATABASE movr CUTOVER runs on instance 1 only:
#   - instance 2 follows the record, holds its own sessions of movr, tells
#     the cutover their server processes (which it then does not end), and
#     moves them to eu-west once the record says 'moved': a client held on
#     instance 2 keeps its connection, gets a new backend in eu-west;
#   - pgbench through HAProxy (its sessions on both instances) loses no
#     transaction;
#   - REVERT run on instance 2 moves instance 1's sessions back the same way;
#   - with instance 2 stopped (SIGSTOP), a cutover cannot hear from it and
#     gives up within move_timeout with 55P03, nothing changed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IPC::Run ();
use PgNearTest;
use PgNearDbMove qw(logical_pair write_users admin_rows);
use PgNearHAProxy;

require_tool('psql');
require_tool('pgbench');
require_tool('pg_dump');
require_tool('haproxy');

my ($us, $eu, $app_secret) = logical_pair(rides => 10000);

my $dir = tmpdir(name => 'fleet-cutover', mode => 0755);
write_users($dir, $app_secret);
my @port = map { PgNearTest::free_port() } 1 .. 2;
my $peers = join ', ', map { ($_ + 1) . "\@127.0.0.1:$port[$_]" } 0 .. 1;
my @p = map {
    PgNearTest::Proxy->new(port => $port[$_], regions => [$us, $eu],
        settings => { auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                      server_tls => 'disable', workers => $ENV{PGNEAR_TEST_WORKERS} // 2,
                      health_check_interval => '1s', health_check_timeout => '5s',
                      peer_id => $_ + 1, peers => $peers, move_timeout => '5s' },
        extra_ini => "[database movr]\nregions = us-east\n")
} 0 .. 1;
my $ha = PgNearHAProxy->new(servers => [map { ['p' . ($_ + 1), $port[$_]] } 0 .. 1],
                            check => 'inter 300ms rise 1 fall 1', retries => 2, redispatch => 1);
END { $ha->stop if $ha && $$ == $PgNearTest::OWNER_PID }
ok $ha->wait_status({ p1 => 'UP', p2 => 'UP' }), 'HAProxy sees both pgnear UP';
my $ha_ci = PgNearTest::conninfo_string(host => '127.0.0.1', port => $ha->port, dbname => 'movr',
                                        user => 'app', password => 'app-secret');

sub admin {
    my ($i, $sql) = @_;
    return admin_rows($p[$i]->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret'), $sql);
}
sub move_state { PgNearDbMove::move_state($p[0]->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret'), 'movr') }

# A client on instance $i: its connection is checked across the cutovers.
sub client {
    my ($i) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port[$i], timeout => 15);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => [application_name => "fleet-client-$i"]);
    die "login to instance $i failed\n" unless $r->{ok};
    return $w;
}
sub one { my ($w, $sql) = @_; my $q = $w->query($sql); $q->{error} ? "ERROR: $q->{error}{M}" : $q->{rows}[0][0] }

for my $i (0 .. 1) {
    ok wait_until(sub { my ($r) = admin($i, 'SHOW REGIONS'); 2 == grep { $_->{role} eq 'primary' } @$r },
                  timeout => 20), 'instance ' . ($i + 1) . ': both primaries known';
}
my (undef, $merr) = admin(0, 'MOVE DATABASE movr TO REGION eu-west');
is $merr, undef, 'MOVE DATABASE movr TO REGION eu-west on instance 1';
ok wait_until(sub { move_state() eq 'streaming' }, timeout => 120), 'streaming';

my @w = map { client($_) } 0 .. 1;
my @pid0 = map { one($w[$_], 'SELECT pg_backend_pid()') } 0 .. 1;
is one($w[1], 'SELECT inet_server_port()'), $us->port, 'a client of instance 2 is on us-east';

sub load {
    my ($seconds) = @_;
    my $h = IPC::Run::start([require_tool('pgbench'), '-n', '-c', '6', '-j', '2', '-T', $seconds, '-f', "$dir/ride.sql",
                             $ha_ci], '>', \my $o, '2>', \my $e);
    return sub { $h->finish; return (parse_pgbench($o . $e), $o . $e) };
}
write_file("$dir/ride.sql", "INSERT INTO rides (city, revenue) VALUES ('dublin', random() * 100);\n");

# ------------------------------------------------------------------ CUTOVER on instance 1

my $end = load(8);
sleep 2;
my ($rows, $cerr, $cn) = admin(0, 'MOVE DATABASE movr CUTOVER');
is $cerr, undef, 'CUTOVER on instance 1 while pgbench writes through both' or diag $cn;
like $cn, qr/every instance of the fleet holds its sessions of database "movr"/, '... after the fleet held its sessions';
unlike $cn, qr/that pgnear does not hold were ended/, '... no session of the fleet was ended';
ok $p[1]->wait_for_log(qr/database "movr" was cut over to region eu-west by another pgnear: \d+ of this one's sessions moved there, 0 ended/,
                       timeout => 10), 'instance 2 moved its own sessions to eu-west';
my ($res, $text) = $end->();
is $res->{failed} // 0, 0, 'pgbench through HAProxy: 0 failed (' . ($res->{processed} // 0) . ' done)' or diag $text;
unlike $text, qr/terminating connection|read-only/, '... no session cut, no read-only error' or diag $text;
is one($w[1], 'SELECT inet_server_port()'), $eu->port, 'the client of instance 2 is on eu-west';
isnt one($w[1], 'SELECT pg_backend_pid()'), $pid0[1], '... with a new backend, on the same connection';
is one($w[0], 'SELECT inet_server_port()'), $eu->port, 'the client of instance 1 too';
for my $i (0 .. 1) {
    my ($rc, $out) = psql($p[$i]->conninfo(dbname => 'movr'), 'SELECT inet_server_port()');
    is $out, $eu->port, 'a new session through instance ' . ($i + 1) . ' lands in eu-west';
}

# ------------------------------------------------------------------ REVERT on instance 2

$end = load(8);
sleep 2;
($rows, $cerr, $cn) = admin(1, 'MOVE DATABASE movr REVERT');
is $cerr, undef, 'REVERT on instance 2' or diag $cn;
ok $p[0]->wait_for_log(qr/database "movr" was cut over to region us-east by another pgnear: \d+ of this one's sessions moved there, 0 ended/,
                       timeout => 10), 'instance 1 moved its own sessions back to us-east';
($res, $text) = $end->();
is $res->{failed} // 0, 0, 'pgbench: 0 failed (' . ($res->{processed} // 0) . ' done)' or diag $text;
is one($w[0], 'SELECT inet_server_port()'), $us->port, 'the client of instance 1 is back on us-east';
is one($w[1], 'SELECT inet_server_port()'), $us->port, 'the client of instance 2 too';

# ------------------------------------------------------------------ a peer that does not answer

kill 'STOP', $p[1]->pid;
my $t0 = time;
(undef, $cerr) = admin(0, 'MOVE DATABASE movr CUTOVER');
my $took = time - $t0;
kill 'CONT', $p[1]->pid;
is sqlstate($cerr), '55P03', 'with instance 2 stopped, CUTOVER gives up: 55P03';
like $cerr // '', qr/did not hold their sessions.*nothing was changed.*No word from peer_id 2/s, '... naming the silent peer';
cmp_ok $took, '<', 30, sprintf('... within move_timeout and the undo (%.1f s)', $took);
is move_state(), 'streaming', 'the move still streams';
my ($rc, $out, $ierr) = psql($p[0]->conninfo(dbname => 'movr'), q{INSERT INTO rides (city) VALUES ('after')});
is $rc, 0, 'and movr takes writes again' or diag $ierr;
($rc, $out) = psql($p[0]->conninfo(dbname => 'movr'), 'SELECT inet_server_port()');
is $out, $us->port, '... in us-east';
is one($w[1], 'SELECT 1'), 1, 'the client of instance 2 goes on';

done_testing;
