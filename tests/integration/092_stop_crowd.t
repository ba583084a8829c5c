# A pgnear that has served a crowd stops promptly: 2,000 sessions log in
# at once, each answers a query, and all leave at once, while 50 others
# stay logged in and idle; then SIGINT.  Under io_backend = epoll, and
# under io_backend = io_uring (receiving through the ring at any load)
# with one worker and with two:
#   - every session that left is noticed: pgnear's descriptors come back
#     to what it held before the crowd (within 60 s).  Through the ring,
#     2,000 receives share 128 buffers, and a receive the kernel ended out
#     of buffers while a buffer was coming back waited for the next one,
#     which never came: its client's end was never read, the session and
#     its server connection kept for ever (tens to hundreds of them);
#   - SIGINT ends pgnear within 10 s (it takes a fraction of a second; the
#     bound is for a loaded two-core machine), with status 0, and the
#     sessions still open are told why (57P01) and closed.
# A pgnear that does not stop is killed, and PgNearTest says what each of
# its threads waited on, and whether SIGKILL reaped it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use PgNearTest;
use PgNearCrowd;

$SIG{PIPE} = 'IGNORE';
my $prlimit = require_tool('prlimit');

my $CROWD     = 2000;
my $STAYING   = 50;
my $STOP_SECS = 10;

# The crowd and the sessions that stay hold a descriptor each here.
my ($soft, $hard) = PgNearTest::slurp_file("/proc/$$/limits") =~ /^Max open files\s+(\S+)\s+(\S+)/m;
my $need = $CROWD + $STAYING + 200;
$_ = $_ eq 'unlimited' ? 1 << 30 : $_ for $soft, $hard;
cmp_ok $hard, '>=', $need, "the hard open-files limit ($hard) allows $need descriptors"
  or BAIL_OUT("raise the hard open-files limit (ulimit -Hn) to at least $need to run this test");
if ($soft < $need) {
    my ($rc, undef, $err) = run_cmd([$prlimit, '--pid', $$, "--nofile=$need:"], timeout => 10);
    die "prlimit --nofile=$need: failed: $err" if $rc != 0;
}

# Receives through the ring need the kernel's deferred task work (Linux 6.1).
my $ring_receives = do {
    my ($major, $minor) = (POSIX::uname())[2] =~ /^(\d+)\.(\d+)/;
    $major > 6 || ($major == 6 && $minor >= 1);
};
note 'this kernel has no receives through io_uring (before 6.1): the io_uring rounds send through it only'
  unless $ring_receives;

my $us = PgNearTest::Cluster->new(name => 'us-east',
    conf => { max_connections => $CROWD + $STAYING + 50, shared_buffers => '64MB' });

sub descriptors {
    my ($pid) = @_;
    opendir my $dh, "/proc/$pid/fd" or return -1;
    return scalar grep { /^\d+$/ } readdir $dh;
}

sub crowd {
    my ($p, $n) = @_;
    return PgNearCrowd->new(port => $p->port, user => $PgNearTest::APP_USER, database => $PgNearTest::APP_DB,
                            password => $PgNearTest::APP_PASSWORD, count => $n);
}

# The server's processes (its backends, the postmaster's children).
sub server_processes {
    my $pid = PgNearTest::_postmaster_pid($us->{datadir}) or return -1;
    my $n = 0;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next; # gone meanwhile
        my $line = <$fh> // '';
        $n++ if $line =~ /^\d+ \(.*\) \S (\d+)/ && $1 == $pid;
    }
    return $n;
}
my $server_base = server_processes();

sub round {
    my ($backend, $workers) = @_;
    my $what = "io_backend = $backend, workers = $workers";
    # The last round's 2,000 backends end after it: on two cores that takes
    # the server tens of seconds of CPU, during which a login waits for it
    # (through pgnear past server_connect_timeout: 08001).  Each round starts
    # on a quiet server.
    my $left;
    ok wait_until(sub { ($left = server_processes()) <= $server_base }, timeout => 120, interval => 0.5),
      "$what: the server's backends of the last round have ended ($left processes)";
    my $p = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'passthrough', server_tls => 'disable', io_backend => $backend,
                      workers => $workers, max_client_conn => $CROWD + $STAYING + 50,
                      client_login_timeout => '60s' });
    my $staying = crowd($p, $STAYING);
    my $sr = $staying->login(deadline => 60);
    is $sr->{ok}, $STAYING, "$what: $STAYING sessions log in and stay"
      or diag explain { %$sr, errors => $sr->{errors} };
    my $before = descriptors($p->pid);

    my $c = crowd($p, $CROWD);
    my $r = $c->login(deadline => 120);
    is $r->{ok}, $CROWD, "$what: $CROWD more log in at once"
      or diag explain { %$r, errors => $r->{errors} };
    my $q = $c->query('SELECT 1', deadline => 60);
    is $q->{answered}, $CROWD, "$what: each answers a query";
    $c->finish;
    my $now;
    ok wait_until(sub { ($now = descriptors($p->pid)) <= $before }, timeout => 60, interval => 0.5),
       "$what: all $CROWD leave at once, and pgnear's descriptors come back to $before"
      or do {
        my %by;
        $by{$1}++ for map { /^(\S+)/ } grep { /pid=${\ $p->pid},/ } `ss -tanp 2>/dev/null`;
        diag "$now descriptors 60 s after they left; pgnear's TCP sockets: "
            . join(', ', map { "$by{$_} $_" } sort keys %by);
    };

    my ($pid, $t0, $off) = ($p->pid, time, $p->log_size);
    $p->signal('INT');
    # pgnear's stop ends with its last log line; a sanitizer's leak check runs after that, as
    # the process exits, and takes seconds over a heap that held a crowd (2-6 s under ASan on
    # a busy machine), which no production build does.
    my $stopped = $p->wait_for_log(qr/pgnear stopped/, offset => $off, timeout => $STOP_SECS);
    my $took = time - $t0;
    ok $stopped, sprintf("$what: SIGINT stops pgnear within %d s (%.2f s)", $STOP_SECS, $took);
    my $exit_secs = sanitizer_of() ? 30 : 5; # (the kernel ends an io_uring as the process exits)
    my $st = $p->wait_for_exit(timeout => $exit_secs);
    ok defined $st, sprintf("$what: ... and its process exits within %d s more (%.2f s in all)",
                            $exit_secs, time - $t0)
      or $st = $p->stop(signal => 'KILL');
    is $st, 0, "$what: with status 0";
    # What each staying session was sent, up to its end (undef: still open).
    my ($eof, $err) = (0, 0);
    for my $s ($staying->sessions) {
        my ($buf, $n) = ('', 0);
        while ($n = sysread($s->{sock}, $buf, 65536, length $buf)) { }
        next unless defined $n;
        $eof++;
        $err++ if $buf =~ /C57P01\0/;
    }
    is $eof, $STAYING, "$what: the $STAYING sessions left open are closed ($err told 57P01)";
    $staying->finish;
}

round('epoll', 1);
round('io_uring', 1);
round('io_uring', 2);

done_testing;
