# The list-append workload (tests/lib/PgNearWorkload.pm) through two pgnear
# on one port (SO_REUSEPORT: the kernel spreads the clients' connections
# over them), the shipped pool_mode (session), in front of a primary in
# us-east and a streaming standby in eu-west; clients in Dublin and Boston
# that need nearest, read-write, and read-only with a fence, each logging
# in again when its connection fails.  One nemesis per segment, while the
# workload runs:
#   - a pgnear restarted: a successor started on the same port, then
#     SIGUSR2 to the old one, which takes no new connection and serves its
#     sessions on until they end (it exits by itself once the workload is
#     over, status 0);
#   - a pgnear killed (-9) while its peer on the port serves: its clients'
#     connections end under them (what ran then is unknown to them), and
#     they log in again through the port, to the peer.
# The history, checked by tests/lib/PgNearHistory.pm against what each need
# promises (doc/concepts/consistency.md's table): 0 lost, 0 duplicated, 0
# aborted reads, no read-your-writes, monotonic-read, monotonic-write or
# writes-follow-reads violation where promised (a session logged in again
# is a new session: what pgnear kept of the old one died with it), every
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
my $SECONDS = $ENV{PGNEAR_HISTORY_SECONDS} // 6;
my $WORKERS = $ENV{PGNEAR_TEST_WORKERS} // 2;

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $w = PgNearWorkload->new(seed => $seed);
$w->setup($us);
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
$eu->wait_streaming;

my $auth_dir = tmpdir(name => 'history-restarts-auth');
write_file("$auth_dir/userlist.txt", qq{"app" "} . $us->scram_verifier('app') . qq{"\n});
my %settings = (auth => 'scram', auth_file => "$auth_dir/userlist.txt", server_tls => 'disable',
                health_check_interval => '100ms', health_check_timeout => '1s', workers => $WORKERS);

# A pgnear on $port (a free one for the first), as each of the port's others.
sub proxy {
    my ($port) = @_;
    my $p = PgNearTest::Proxy->new(($port ? (port => $port) : ()), regions => [$us, $eu], settings => \%settings);
    ok wait_until(sub { $p->log_contents =~ /region eu-west is up: it is a standby/ }, timeout => 30),
      'pgnear on port ' . $p->port . ' (pid ' . $p->pid . ') sees the eu-west standby';
    return $p;
}

# The restart begins with one pgnear on the port, so that the workload's
# clients are all its own; its successor comes as the nemesis.
my $first = proxy();
my $PORT = $first->port;
my @live = ($first);

my $DUBLIN = '53.35,-6.26';
my $BOSTON = '42.36,-71.06';
my @clients = (
    { need => 'nearest', port => $PORT, location => $DUBLIN, appends => 0.3, think => 0.02 },
    { need => 'nearest', port => $PORT, location => $DUBLIN, appends => 0.3, think => 0.02 },
    { need => 'nearest', port => $PORT, location => $BOSTON, appends => 0.3 },
    { need => 'read-write', port => $PORT, location => $DUBLIN, appends => 0.7, think => 0.02 },
    { need => 'read-write', port => $PORT, location => $BOSTON, appends => 0.7 },
    { need => 'read-only-fenced', port => $PORT, location => $DUBLIN, appends => 0.3 },
);

# How many of the workload's sessions each pgnear holds (its log's "session
# established" less "closing session"), by pid.
sub sessions_of {
    my ($p) = @_;
    my $log = $p->log_contents;
    my $opened = () = $log =~ /session established: user=app/g;
    my $closed = () = $log =~ /closing session of .*\(\d+ bytes from client/g;
    return $opened - $closed;
}

# One segment: the table made again, the workload for $SECONDS with the
# nemesis at a third, the verdict.
sub segment {
    my ($name, $nemesis) = @_;
    $w->setup($us);
    $eu->wait_replay($us->current_lsn);
    $w->start(seconds => $SECONDS, clients => \@clients);
    sleep $SECONDS / 3;
    $nemesis->();
    my $h = $w->finish;
    $eu->wait_replay($us->current_lsn);
    $w->verdict($name, $h, $w->final_state($us), max_gap => 10, min_ops => 100);
    return $h;
}

# A restart: a successor on the port, then SIGUSR2 to the old one, whose
# sessions go on there.
my $old = $live[0];
my $h = segment('pgnear restarted (SIGUSR2)', sub {
    cmp_ok sessions_of($old), '>', 0, 'restart: the old pgnear serves sessions of the workload';
    push @live, proxy($PORT);
    $old->signal('USR2');
    ok $old->wait_for_log(qr/SIGUSR2/, timeout => 10), 'restart: the old pgnear took SIGUSR2';
});
my @served = grep { $_->{outcome} eq 'ok' && $_->{complete} > $h->[0]{invoke} + $SECONDS / 3 + 1 } @$h;
ok scalar(@served), 'restart: operations answered after the SIGUSR2 (' . scalar(@served) . ')';
my @again = sort { $a cmp $b } keys %{ { map { $_->{session} => 1 } grep { $_->{session} =~ /\./ } @$h } };
is "@again", '', 'restart: no client had to log in again (the old pgnear served its sessions on)';
is $old->wait_for_exit(timeout => 30), 0, 'restart: the old pgnear exited by itself, status 0, once its sessions ended';
@live = grep { $_ != $old } @live;

# A pgnear killed while its peer on the port serves: a second on the port
# first, and the one of the two holding more of the workload's sessions
# killed (the kernel spreads six clients over two; one may get none).
push @live, proxy($PORT);
my $victim;
$h = segment('pgnear killed (-9)', sub {
    ($victim) = sort { sessions_of($b) <=> sessions_of($a) } @live;
    cmp_ok sessions_of($victim), '>', 0, 'kill: the pgnear to kill serves sessions of the workload';
    $victim->signal('KILL');
    is $victim->wait_for_exit(timeout => 10), 128 + 9, 'kill: it is gone (SIGKILL)';
});
@live = grep { $_ != $victim } @live;
@again = grep { $_->{session} =~ /\./ } @$h;
ok scalar(@again), 'kill: clients of the killed pgnear logged in again and went on (' . scalar(@again) . ' operations)';
ok kill(0, $_->pid), 'the pgnear left on the port (pid ' . $_->pid . ') runs' for @live;
is psql($live[0]->conninfo, 'SELECT 1'), '1', 'a login through the port works';

done_testing;
