# The list-append workload (tests/lib/PgNearWorkload.pm) through pgnear in
# front of a Patroni cluster (tests/lib/PgNearPatroni.pm: m1 in us-east
# leading, m2 in us-west, m3 in eu-west; synchronous_mode on), pgnear
# learning the leader from Patroni's REST API: two pgnear, one under
# pool_mode = transaction and one under session, clients in Dublin and
# Boston that need nearest and read-write.  One nemesis per segment, while
# the workload runs: a switchover to the synchronous standby; a failover
# (the leader's Patroni and postmaster killed -9); the leader's Patroni
# stopped (SIGSTOP) while its PostgreSQL runs on as a primary.  The history, checked by
# tests/lib/PgNearHistory.pm against what each need promises
# (doc/concepts/consistency.md's table): 0 lost, 0 duplicated, 0 aborted
# reads, no read-your-writes, monotonic-read, monotonic-write or
# writes-follow-reads violation where promised, every client answered
# within a bound.  PGNEAR_HISTORY_SEED replays a run.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;
use PgNearPatroni;
use PgNearWorkload;

$SIG{PIPE} = 'IGNORE';
require_tool('psql');
my $seed = $ENV{PGNEAR_HISTORY_SEED} // int(rand(2**31));
diag("seed $seed (PGNEAR_HISTORY_SEED=$seed replays it)");
my $SECONDS = $ENV{PGNEAR_HISTORY_SECONDS} // 6;
my $WORKERS = $ENV{PGNEAR_TEST_WORKERS} // 2;

my $pc = PgNearPatroni->new(synchronous_mode => 1);
my $leader = $pc->leader(60);
$pc->wait_streaming(timeout => 60);
my $on_leader = sub { $pc->psql($pc->leader(60), $_[0], dbname => 'movr') };
my $w = PgNearWorkload->new(seed => $seed);
$w->setup($on_leader);

my $verifier = $pc->psql($leader, qq{SELECT rolpassword FROM pg_authid WHERE rolname = '$PgNearTest::APP_USER'});
my $auth_dir = tmpdir(name => 'history-patroni');
write_file("$auth_dir/userlist.txt", qq{"$PgNearTest::APP_USER" "$verifier"\n});
my %m = map { $_->{region} => $_ } $pc->members;
my $urls = join ', ', map { "http://127.0.0.1:$_->{rest_port}" } $pc->members;
my @proxies = map {
    PgNearTest::Proxy->new(
        regions  => [{ name => 'us-east', location => '39.04, -77.49', hosts => ["127.0.0.1:$m{'us-east'}{port}"] },
                     { name => 'us-west', location => '45.60, -121.18', hosts => ["127.0.0.1:$m{'us-west'}{port}"] },
                     { name => 'eu-west', location => '53.35, -6.26', hosts => ["127.0.0.1:$m{'eu-west'}{port}"] }],
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", server_tls => 'disable',
                      health_check_interval => '250ms', health_check_timeout => '1s', workers => $WORKERS,
                      failover_wait => '20s', patroni => $urls, pool_mode => $_ })
} qw(transaction session);
for my $p (@proxies) {
    ok wait_until(sub { $p->log_contents =~ /region eu-west is up: it is a standby/ }, timeout => 30),
      'pgnear sees the eu-west standby';
}

my $DUBLIN = '53.35,-6.26';
my $BOSTON = '42.36,-71.06';
my @clients = map {
    my $port = $_->port;
    ({ need => 'nearest', port => $port, location => $DUBLIN, appends => 0.3, think => 0.05 },
     { need => 'nearest', port => $port, location => $BOSTON, appends => 0.3 },
     { need => 'read-write', port => $port, location => $BOSTON, appends => 0.7 },
     { need => 'read-write', port => $port, location => $DUBLIN, appends => 0.7, think => 0.05 })
} @proxies;

# One segment: the table made again on the leader, the workload, the
# nemesis half way in (it returns the new leader once that takes writes;
# the workload runs on for the other half of its seconds), the verdict,
# and appends seen on the new leader (by port).
sub segment {
    my ($name, $nemesis) = @_;
    $pc->wait_streaming(timeout => 90);
    ok wait_until(sub { my $c = $pc->cluster; $c && grep { $_->{role} eq 'sync_standby' } @{ $c->{members} } },
                  timeout => 60, interval => 0.2), "$name: a synchronous standby follows the leader"
      or diag $pc->cluster_line;
    $w->setup($on_leader);
    $w->start(seconds => 180, clients => \@clients);
    sleep $SECONDS / 2;
    my $new = $nemesis->();
    sleep $SECONDS / 2;
    $w->stop;
    my $h = $w->finish;
    my @on = grep { $_->{outcome} eq 'ok' && $_->{append} } @$h;
    my %where;
    $where{ (split /:/, $_->{server} // '?:?')[1] }++ for @on;
    ok $where{ $new->{port} },
      "$name: appends ran on the new leader (by port: " . join(', ', map { "$_ $where{$_}" } sort keys %where) . ')';
    $w->verdict($name, $h, $w->final_state($on_leader), max_gap => 20, min_ops => 200);
    return $new;
}

# A switchover, to the synchronous standby (the one candidate
# synchronous_mode allows).
segment('switchover', sub {
    my ($sync) = map { $_->{name} } grep { $_->{role} eq 'sync_standby' } @{ ($pc->cluster // {})->{members} // [] };
    ok $sync, "switchover: the synchronous standby: $sync";
    my $new = $pc->switchover($sync);
    is $new->{name}, $sync, "Patroni switched over to $sync ($new->{region}) while the workload ran";
    return $new;
});

# The leader lost by $lose (a PgNearPatroni method that returns its
# member): the new leader once another member takes writes.
my $lost;
sub leader_lost {
    my ($lose) = @_;
    return sub {
        $lost = $pc->$lose;
        return $pc->wait_leader(not => $lost->{name}, timeout => 60);
    };
}

# A failover: the leader's Patroni and postmaster killed (-9); its lock
# expires (ttl 10 s) and the synchronous standby is promoted.  The killed
# member comes back afterwards and rejoins (pg_rewind).
segment('leader killed', leader_lost('kill_leader'));
$pc->start_member($lost);

# The leader's Patroni stopped (SIGSTOP) while its PostgreSQL runs on as a
# primary: another member is promoted when the lock expires, and pgnear
# must take no write to the old one (its appends would be lost when it
# rejoins).  It is resumed at the end and rejoins.
segment('leader\'s Patroni stopped', leader_lost('stop_leader_patroni'));
$pc->resume($lost);

done_testing;
