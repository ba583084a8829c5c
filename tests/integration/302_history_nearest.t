# The list-append workload (tests/lib/PgNearWorkload.pm) through pgnear,
# its history checked by tests/lib/PgNearHistory.pm against what each need
# promises (doc/concepts/consistency.md's table): a primary in us-east and
# two streaming standbys, eu-west (Dublin, the nearest to the Dublin
# clients) and eu-central (Frankfurt, replaying 300 ms late); two pgnear,
# one under pool_mode = transaction and one under session, each with
# clients in Dublin and Boston that need nearest, read-write, and
# read-only with a fence.  One nemesis per segment: the nearest standby
# killed (immediate stop) and started again; the nearest standby stalled
# (its replay paused, then resumed); the nearest region drained (DRAIN),
# then enabled and its sessions moved home (MOVE CLIENTS HOME); two at
# once: the next standby stalled, and the nearest killed while it is; the
# nearest region blackholed (the relay in front of it stopped), then
# released.  Each segment: 0 lost, 0 duplicated,
# 0 aborted reads, and no read-your-writes, monotonic-read, monotonic-write
# or writes-follow-reads violation where the need promises it; every
# client answered within a bound.  PGNEAR_HISTORY_SEED replays a run.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;
use PgNearWorkload;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pg_basebackup);
my $seed = $ENV{PGNEAR_HISTORY_SEED} // int(rand(2**31));
diag("seed $seed (PGNEAR_HISTORY_SEED=$seed replays it)");
my $SECONDS = $ENV{PGNEAR_HISTORY_SECONDS} // 8;

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $w = PgNearWorkload->new(seed => $seed);
$w->setup($us);
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
my $fra = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-central', apply_delay => '300ms');
$_->wait_streaming for $eu, $fra;

my $auth_dir = tmpdir(name => 'history-auth');
write_file("$auth_dir/userlist.txt", qq{"app" "} . $us->scram_verifier('app') . qq{"\n}
  . qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
my $WORKERS = $ENV{PGNEAR_TEST_WORKERS} // 2;
# eu-west is reached through a relay, which a segment stops (a blackhole).
my $eu_relay = PgNearTest::Relay->new(to => $eu->port, lifetime => 1800);
my @proxies = map {
    PgNearTest::Proxy->new(
        regions  => [$us, { name => 'eu-west', location => $eu->location, hosts => [$eu_relay->hostport] }, $fra],
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", admin_users => 'admin', server_tls => 'disable',
                      health_check_interval => '100ms', workers => $WORKERS, pool_mode => $_,
                      failover_wait => '2s', query_timeout => '2s',
                      health_check_timeout => '1s' })
} qw(transaction session);
for my $p (@proxies) {
    ok wait_until(sub { my $l = $p->log_contents; $l =~ /region eu-west is up: it is a standby/
                                                  && $l =~ /region eu-central is up: it is a standby/ },
                  timeout => 30), 'pgnear sees both standbys';
}

my $DUBLIN = '53.35,-6.26';
my $BOSTON = '42.36,-71.06';
my @clients = map {
    my $port = $_->port;
    ({ need => 'nearest', port => $port, location => $DUBLIN, appends => 0, think => 0.05 },
     { need => 'nearest', port => $port, location => $DUBLIN, appends => 0.3, think => 0.05 },
     { need => 'nearest', port => $port, location => $BOSTON, appends => 0.3 },
     { need => 'read-write', port => $port, location => $DUBLIN, appends => 0.8 },
     { need => 'read-only-fenced', port => $port, location => $DUBLIN, appends => 0.3 })
} @proxies;

# One segment: the workload for $SECONDS with the nemesis run in between, then the verdict.
sub segment {
    my ($name, $nemesis) = @_;
    $w->setup($us);
    my $lsn = $us->current_lsn;
    $_->wait_replay($lsn) for $eu, $fra;
    $w->start(seconds => $SECONDS, clients => \@clients);
    $nemesis->();
    my $h = $w->finish;
    my $end = $us->current_lsn;
    $_->wait_replay($end) for $eu, $fra;
    return $w->verdict($name, $h, $w->final_state($us), max_gap => 10, min_ops => 50);
}

# The nearest standby killed a third of the way in, started again at two thirds.
segment('nearest standby killed', sub {
    sleep $SECONDS / 3;
    $eu->stop(mode => 'immediate');
    sleep $SECONDS / 3;
    $eu->start;
});

# The nearest standby stalled: replay paused (lag grows while it answers), then resumed.
segment('nearest standby stalled', sub {
    sleep $SECONDS / 4;
    $eu->pause_replay;
    sleep $SECONDS / 2;
    $eu->resume_replay;
});

# The nearest region drained (its sessions moved to the next region of
# their route, eu-central), then enabled again and the sessions moved home.
segment('nearest region drained and moved home', sub {
    sleep $SECONDS / 3;
    $_->admin_rows('DRAIN eu-west') for @proxies;
    sleep $SECONDS / 3;
    $_->admin_rows('ENABLE eu-west') for @proxies;
    $_->admin_rows('MOVE CLIENTS HOME') for @proxies;
});

# Two faults at once: the next standby (eu-central) stalls, then the
# nearest (eu-west) dies while it is stalled: the sessions' reads have
# nowhere near to go that has what they saw but the primary; eu-west comes
# back, then eu-central resumes.
segment('nearest standby killed while the next is stalled', sub {
    sleep $SECONDS / 6;
    $fra->pause_replay;
    sleep $SECONDS / 6;
    $eu->stop(mode => 'immediate');
    sleep $SECONDS / 3;
    $eu->start;
    sleep $SECONDS / 6;
    $fra->resume_replay;
});

# The nearest region blackholed: its relay stopped, so its host takes connections and bytes and
# answers nothing, then released.  A request waiting there ends with 08006 once query_timeout's cancel
# goes unanswered too (no wait past twice query_timeout); the health checks take the host down, and
# sessions logging in meanwhile go to the next region.
segment('nearest region blackholed', sub {
    sleep $SECONDS / 8;
    kill 'STOP', $eu_relay->{pid};
    sleep 12; # past the workload's end and the 10 s bound: a client left waiting there fails it
    kill 'CONT', $eu_relay->{pid};
});

done_testing;
