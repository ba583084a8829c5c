# pgnear in front of a real Patroni cluster (Debian 12's Patroni 3.0.2,
# etcd 3.4 through Patroni's etcd v2 driver, PostgreSQL 15), started by
# tests/lib/PgNearPatroni.pm: three members of one cluster, m1 tagged
# pgnear_region us-east, m2 us-west, m3 eu-west.  This first version checks
# the harness and the cluster it runs, with pgnear configured by hand:
#   (a) one leader (m1, which bootstrapped the cluster) and two replicas
#       that stream from it; GET /cluster, read here with JSON::PP, names
#       each member with its role, state, PostgreSQL port, timeline, lag
#       and region tag (its body is printed in the log; the C reader,
#       protocol/patroni_cluster.c, is tested on captured bodies by
#       tests/unit/test_patroni_cluster);
#   (b) pgnear with the three members' ports as the hosts of three regions
#       (us-east, us-west, eu-west) sends a read-write session
#       (-c pgnear.target_session_attrs=read-write in PGOPTIONS) to the
#       leader;
#   (c) a switchover to the eu-west member (patronictl switchover --force)
#       makes it the leader; pgnear then sends read-write sessions there,
#       and an INSERT through pgnear lands on it (read on m3 directly, then
#       on the other two once they follow);
#   (d) a kill -9 of the leader's Patroni and postmaster gives a new leader
#       within the lock's ttl, and pgnear follows it; the killed member's
#       Patroni started again rejoins as a replica of the new leader
#       (pg_rewind), the INSERT still there;
#   (e) the harness's stop leaves no process of the cluster behind.
# Later steps come with the lead's integration of Patroni into pgnear: the
# `patroni =` setting (pgnear reading GET /cluster itself, regions from the
# pgnear_region tags, nofailover/noloadbalance honoured) and the SIGSTOP
# case (a leader whose Patroni is stopped while its PostgreSQL runs on as
# a second primary: stop_leader_patroni/resume in the harness; Patroni's
# leader breaks the tie).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time);
use JSON::PP ();
use PgNearTest;
use PgNearPatroni;

require_tool('psql');

my $T0 = time;
my $INTERVAL = 1;    # pgnear's health_check_interval, in seconds

# ------------------------------------------------------------------ the cluster

my $pc = PgNearPatroni->new;
my %m = map { $_->{name} => $_ } $pc->members;
note sprintf 'Patroni cluster up after %.1f s: %s', time - $T0, $pc->cluster_line;

my $leader = $pc->wait_streaming(timeout => 60);
is $leader->{name}, 'm1', 'm1 leads: it bootstrapped the cluster';
is $pc->psql('m1', 'SELECT pg_is_in_recovery()'), 'f', '... and its PostgreSQL takes writes';
for my $r (qw(m2 m3)) {
    is $pc->psql($r, 'SELECT pg_is_in_recovery() || \'|\' || status FROM pg_stat_wal_receiver'), 'true|streaming',
      "$r is a standby that streams";
}
is $pc->psql('m1', "SELECT string_agg(application_name || ':' || state, ',' ORDER BY application_name) "
                 . 'FROM pg_stat_replication'), 'm2:streaming,m3:streaming',
  'the leader has both replicas streaming from it';

# ------------------------------------------------------------------ GET /cluster

my $body = $pc->cluster_body(prefer => 'm2');
note "GET /cluster (m2's REST API): $body";
my $c = eval { JSON::PP::decode_json($body) };
ok $c && ref $c->{members} eq 'ARRAY', 'GET /cluster answers JSON with a members array' or diag $body;
my %cm = map { $_->{name} => $_ } @{ $c->{members} // [] };
is_deeply [map { $_->{name} } @{ $c->{members} // [] }], [qw(m1 m2 m3)], '... the three members, by name';
is_deeply { map { $_ => $cm{$_}{role} } keys %cm }, { m1 => 'leader', m2 => 'replica', m3 => 'replica' },
  '... m1 the leader, m2 and m3 replicas';
is_deeply { map { $_ => $cm{$_}{tags}{pgnear_region} } keys %cm },
  { m1 => 'us-east', m2 => 'us-west', m3 => 'eu-west' }, '... each tagged with its region';
is_deeply { map { $_ => "$cm{$_}{host}:$cm{$_}{port}" } keys %cm },
  { map { $_ => "127.0.0.1:$m{$_}{port}" } keys %m }, '... and where its PostgreSQL listens';
is_deeply { map { $_ => $cm{$_}{api_url} } keys %cm },
  { map { $_ => "http://127.0.0.1:$m{$_}{rest_port}/patroni" } keys %m }, '... and its REST API';
ok !exists $cm{m1}{lag} && (grep { ($cm{$_}{lag} // '') =~ /^\d+$/ } qw(m2 m3)) == 2,
  '... a lag in bytes for the replicas, none for the leader';
ok((grep { $cm{$_}{state} eq 'running' && $cm{$_}{timeline} == $cm{m1}{timeline} } keys %cm) == 3,
   '... all running, on one timeline');

# ------------------------------------------------------------------ pgnear

$pc->psql('m1', 'CREATE TABLE patroni_writes (id serial PRIMARY KEY, note text NOT NULL, '
              . "written_on int NOT NULL DEFAULT inet_server_port())", dbname => 'movr');
my $p = PgNearTest::Proxy->new(
    regions  => [map { { name => $_->{region}, hosts => ["127.0.0.1:$_->{port}"] } } @m{qw(m1 m2 m3)}],
    settings => { auth => 'passthrough', server_tls => 'disable', health_check_interval => "${INTERVAL}s",
                  failover_wait => '15s' });
for my $r (qw(m2 m3)) {
    ok $p->wait_for_log(qr/host 127\.0\.0\.1:$m{$r}{port} of region $m{$r}{region} is up: it is a standby/,
                        timeout => 20), "pgnear's health check sees $r ($m{$r}{region}) as a standby";
}

# Where a read-write session lands: "port|in recovery", or the error.
my $RW = { PGOPTIONS => '-c pgnear.target_session_attrs=read-write' };
sub lands_rw {
    my ($rc, $out, $err) = psql($p->conninfo(connect_timeout => 30),
                                "SELECT inet_server_port() || '|' || pg_is_in_recovery()", env => $RW,
                                timeout => 40);
    return $rc == 0 ? $out : "error: $err";
}
# Waits (bounded) until read-write sessions land on member $m; returns the seconds it took or undef.
sub rw_follows {
    my ($m, $timeout) = @_;
    my $t = time;
    return wait_until(sub { lands_rw() eq "$m->{port}|false" }, timeout => $timeout, interval => 0.2)
      ? time - $t : undef;
}
is lands_rw(), "$m{m1}{port}|false", 'a read-write session through pgnear lands on the leader, m1 (us-east)';

# ------------------------------------------------------------------ switchover

my $t = time;
my $new = $pc->switchover('m3');
is $new->{name}, 'm3', 'patronictl switchover: m3 (eu-west) leads';
note sprintf 'switchover to m3 done in %.1f s: %s', time - $t, $pc->cluster_line;
is $pc->leader_name, 'm3', '... as GET /cluster says';
my $took = rw_follows($m{m3}, 20);
ok defined $took, 'pgnear sends read-write sessions to m3 after the switchover'
  or diag 'lands: ' . lands_rw() . "\n" . PgNearTest::_tail($p->log_contents, 20);
note sprintf 'pgnear followed the switchover in %.1f s', $took // -1;
my ($rc, $out, $err) = psql($p->conninfo, "INSERT INTO patroni_writes (note) VALUES ('after switchover') "
                                        . 'RETURNING written_on', env => $RW, quiet => 1);
is "$rc|$out", "0|$m{m3}{port}", 'an INSERT through pgnear after the switchover runs on m3' or diag $err;
is $pc->psql('m3', "SELECT count(*) FROM patroni_writes WHERE note = 'after switchover'", dbname => 'movr'), 1,
  '... and its row is on m3';
$pc->wait_streaming(timeout => 60);
for my $r (qw(m1 m2)) {
    my $lsn = $pc->psql('m3', 'SELECT pg_current_wal_lsn()');
    ok wait_until(sub { $pc->psql($r, "SELECT pg_last_wal_replay_lsn() >= '$lsn'") eq 't' }, timeout => 20),
      "$r follows m3 and replays the INSERT";
    is $pc->psql($r, 'SELECT count(*) FROM patroni_writes', dbname => 'movr'), 1, "... its row is on $r";
}

# ------------------------------------------------------------------ kill -9 of the leader

$t = time;
my $killed = $pc->kill_leader;
is $killed->{name}, 'm3', 'kill -9 of the leader (m3): its Patroni and postmaster';
my $after = $pc->wait_leader(not => 'm3', timeout => 60);
my $failover = time - $t;
ok $after->{name} =~ /^m[12]$/, "a new leader takes writes: $after->{name}";
note sprintf 'new leader %s %.1f s after the kill: %s', $after->{name}, $failover, $pc->cluster_line;
$took = rw_follows($after, 20);
ok defined $took, "pgnear sends read-write sessions to $after->{name}"
  or diag 'lands: ' . lands_rw() . "\n" . PgNearTest::_tail($p->log_contents, 20);
($rc, $out, $err) = psql($p->conninfo, "INSERT INTO patroni_writes (note) VALUES ('after failover') "
                                     . 'RETURNING written_on', env => $RW, quiet => 1);
is "$rc|$out", "0|$after->{port}", "an INSERT through pgnear runs on $after->{name}" or diag $err;

$pc->start_member($killed);
$pc->wait_streaming(timeout => 90);
is $pc->leader_name, $after->{name}, "m3's Patroni started again: $after->{name} still leads";
is $pc->psql('m3', 'SELECT pg_is_in_recovery()'), 't', '... m3 rejoined as a replica';
my $lsn = $pc->psql($after, 'SELECT pg_current_wal_lsn()');
ok wait_until(sub { $pc->psql('m3', "SELECT pg_last_wal_replay_lsn() >= '$lsn'") eq 't' }, timeout => 20),
  '... and replays the new leader\'s WAL';
is $pc->psql('m3', "SELECT string_agg(note, ',' ORDER BY id) FROM patroni_writes", dbname => 'movr'),
  'after switchover,after failover', '... both INSERTs are on m3';
like $pc->psql($after, "SELECT string_agg(application_name, ',' ORDER BY application_name) "
                     . "FROM pg_stat_replication WHERE state = 'streaming'"), qr/m3/,
  "... streaming from $after->{name}";
note 'm3 rejoined: ' . (join(' | ', grep { /pg_rewind|rewind/ } split /\n/, slurp_file($killed->{log})) || 'no pg_rewind');

# ------------------------------------------------------------------ stop

is $p->stop, 0, 'pgnear stops (exit 0)';
my $dir = $pc->dir;
$pc->stop;
# A process of the cluster: its command line or working directory in the cluster's directory.
sub leftovers {
    my @left;
    opendir my $dh, '/proc' or return ();
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my $cwd = readlink("/proc/$pid/cwd") // '';
        my $cmd = do { open my $fh, '<', "/proc/$pid/cmdline" or next; local $/; <$fh> } // '';
        push @left, "$pid ($cwd) " . ($cmd =~ s/\0/ /gr) if index($cwd, $dir) == 0 || index($cmd, $dir) >= 0;
    }
    return @left;
}
ok wait_until(sub { !leftovers() }, timeout => 10), 'the harness\'s stop leaves no process behind'
  or diag join "\n", leftovers();
note sprintf 'the test took %.0f s', time - $T0;

done_testing;
