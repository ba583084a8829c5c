# pgbench through pgnear: initialisation, the simple, extended and prepared
# query protocols under concurrency, a new connection per transaction (-C,
# over TCP and the Unix socket), every server session closed once the
# clients are gone, and a client's Terminate ending the session cleanly.
# The shipped io_backend (auto) sends through io_uring on this kernel, and
# (6.1 or later) receives through it while the load makes that pay: eight
# clients move the sockets there (on a busy machine their load may move
# them back and forth; it runs until it leaves them on the ring), one alone
# (each answer two milliseconds later) back to their readiness; the three protocols and -C run again
# with io_backend = epoll, and with io_uring (receiving through the ring
# whatever the load).  Where the
# kernel gives no io_uring (tests/unit/no_io_uring: a seccomp filter
# refuses io_uring_setup, or io_uring_register, which the probe of its
# operations needs), auto falls back to epoll and says why, and
# io_backend = io_uring refuses to start.
use strict;
use File::Basename qw(dirname);
use File::Spec;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time);
use POSIX ();
use PgNearTest;

require_tool($_) for qw(psql pgbench);

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $p  = PgNearTest::Proxy->new(regions => [$us],
                                settings => { auth => 'passthrough', server_tls => 'disable' });

# Sessions of the app role on the server, seen directly (not through pgnear).
sub app_sessions {
    return $us->psql_admin("SELECT count(*) FROM pg_stat_activity "
                         . "WHERE usename = 'app' AND backend_type = 'client backend'");
}

sub wait_back_to {
    my ($baseline, $what) = @_;
    my $last;
    my $ok = wait_until(sub { $last = app_sessions(); $last <= $baseline }, timeout => 10, interval => 0.2);
    ok $ok, "$what: app sessions on the server back to baseline $baseline (last count $last)";
}

my $baseline = app_sessions();
is $baseline, 0, 'no app sessions on the server before the test';

my $ci = $p->conninfo;

# ---- initialisation through pgnear
my ($rc, $out, $err) = pgbench(['-i', '-s', '2', '-q'], $ci, timeout => 60);
is $rc, 0, 'pgbench -i -s 2 through pgnear succeeds' or diag "stdout:\n$out\nstderr:\n$err";
is $us->psql_admin('SELECT count(*) FROM pgbench_accounts', dbname => 'movr'), '200000',
    'pgbench_accounts has 200000 rows on the server';
is $us->psql_admin('SELECT count(*) FROM pgbench_branches', dbname => 'movr'), '2',
    'pgbench_branches has 2 rows (scale 2)';

# ---- the three query protocols, 8 clients on 2 threads
my %total;
for my $mode (qw(simple extended prepared)) {
    my $t0 = time;
    ($rc, $out, $err) = pgbench(['-M', $mode, '-c', '8', '-j', '2', '-T', '3', '-n'], $ci, timeout => 40);
    my $dt = time - $t0;
    is $rc, 0, "pgbench -M $mode exits 0" or diag "stdout:\n$out\nstderr:\n$err";
    my $r = parse_pgbench($out);
    ok defined $r->{processed} && $r->{processed} > 0,
        "-M $mode: transactions processed (" . ($r->{processed} // 'none') . ')'
        or diag "stdout:\n$out\nstderr:\n$err";
    is $r->{failed} // 0, 0, "-M $mode: zero failed transactions";
    is $r->{clients}, 8, "-M $mode: 8 clients reported";
    unlike $err, qr/(?:error|abort|FATAL)/i, "-M $mode: no errors on stderr" or diag $err;
    note sprintf '-M %s: %s transactions, tps %s, %.1fs', $mode, $r->{processed} // '?', $r->{tps} // '?', $dt;
    $total{$mode} = $r->{processed} // 0;
}

# Each committed pgbench transaction inserts one history row.
my $history = $us->psql_admin('SELECT count(*) FROM pgbench_history', dbname => 'movr');
my $sum = 0;
$sum += $_ for values %total;
is $history, $sum, "pgbench_history rows on the server ($history) = transactions processed ($sum)";

wait_back_to($baseline, 'after -M simple/extended/prepared');

# ---- a fixed number of transactions per client, prepared
($rc, $out, $err) = pgbench(['-M', 'prepared', '-c', '4', '-j', '2', '-t', '500', '-n'], $ci, timeout => 60);
is $rc, 0, 'pgbench -M prepared -t 500 exits 0' or diag "stdout:\n$out\nstderr:\n$err";
my $r = parse_pgbench($out);
is $r->{processed}, 2000, '-t 500 x 4 clients: 2000 transactions processed';
is $r->{failed} // 0, 0, '-t 500: zero failed transactions';

# ---- a new connection for every transaction
my $log_before = $p->log_size;
($rc, $out, $err) = pgbench(['-C', '-M', 'extended', '-c', '4', '-j', '2', '-t', '100', '-n'], $ci, timeout => 60);
is $rc, 0, 'pgbench -C exits 0' or diag "stdout:\n$out\nstderr:\n$err";
$r = parse_pgbench($out);
is $r->{processed}, 400, '-C: 400 transactions processed, one connection each';
is $r->{failed} // 0, 0, '-C: zero failed transactions';
unlike $err, qr/(?:error|abort|FATAL)/i, '-C: no errors on stderr' or diag $err;
{
    my $log = substr($p->log_contents, $log_before);
    my $n = () = $log =~ /session established/g;
    cmp_ok $n, '>=', 400, "-C: pgnear logged >= 400 established sessions ($n)";
}

wait_back_to($baseline, 'after -C');

# ---- -C over the Unix socket
($rc, $out, $err) = pgbench(['-C', '-M', 'simple', '-c', '2', '-j', '1', '-t', '50', '-n'],
                            $p->conninfo(host => $p->socket_dir), timeout => 60);
is $rc, 0, 'pgbench -C over the Unix socket exits 0' or diag "stdout:\n$out\nstderr:\n$err";
$r = parse_pgbench($out);
is $r->{processed}, 100, '-C over the Unix socket: 100 transactions processed';
is $r->{failed} // 0, 0, '-C over the Unix socket: zero failed transactions';
wait_back_to($baseline, 'after -C over the Unix socket');

# ---- pgnear still serves new sessions
is psql($ci, 'SELECT count(*) FROM pgbench_branches'), '2', 'pgnear still answers after the runs';
wait_back_to($baseline, 'after the last psql');
ok $p->is_running, 'pgnear is still running';

# ---- Terminate, then wait for the close (as a client that reads to EOF does)
for my $case (['the server directly', $us->port], ['pgnear', $p->port]) {
    my ($what, $port) = @$case;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    ok $r->{ok}, "Terminate test: login to $what";
    $w->send_msg('X', '');
    my ($t, $m) = eval { $w->read_msg };
    ok !defined $t, "after Terminate, $what just closes the connection (clean EOF, no message)"
        or diag "got message '$t': " . join(' ', map { "$_->[0]=$_->[1]" }
                 map { [$_, PgNearTest::Wire::parse_fields($m // '')->{$_}] } qw(S C M));
}
wait_back_to($baseline, 'after Terminate');

{
    # Every pgbench and psql client ends with Terminate ('X'); the server then
    # closes its side.  That is a normal end of session, whichever EOF pgnear
    # sees first: no FATAL 08006 to the client, and a normal close log line.
    my $log = $p->log_contents;
    my %est    = map { $_ => 1 } $log =~ /(c\d+): session established/g;
    my %closed = map { $_ => 1 } $log =~ /(c\d+): closing session of /g;
    my @unclosed = grep { !$closed{$_} } sort keys %est;
    my @fatal = $log =~ /^(.*FATAL 08006: server closed the connection unexpectedly.*)$/mg;
    is scalar(@fatal), 0, 'no "server closed the connection unexpectedly" after clients sent Terminate'
        or diag scalar(@fatal) . " such lines, e.g.:\n" . join("\n", @fatal[0 .. ($#fatal < 2 ? $#fatal : 2)]);
    is scalar(@unclosed), 0, 'every one of the ' . scalar(keys %est) . ' established sessions is logged as a normal session close'
        or diag scalar(@unclosed) . " were not, e.g.:\n" . join('', map {
            my $id = $_; join("\n", $log =~ /^(.*\b$id: (?:FATAL|closing).*)$/mg) . "\n" } @unclosed[0 .. ($#unclosed < 1 ? $#unclosed : 1)]);
}

# Receives through the ring need the kernel's deferred task work (Linux 6.1).
my $ring_receives = do {
    my ($major, $minor) = (POSIX::uname())[2] =~ /^(\d+)\.(\d+)/;
    $major > 6 || ($major == 6 && $minor >= 1);
};

# ---- io_backend: the default takes the ring here; epoll serves as before
{
    if ($ring_receives) {
        like $p->log_contents,
            qr/started \(pid \d+\), \d+ workers? sending through io_uring, receiving through it under load/,
            'io_backend = auto: pgnear sends through io_uring, and receives through it under load, on this kernel (6.1 or later)';
    } else {
        like $p->log_contents, qr/started \(pid \d+\), \d+ workers? sending through io_uring/,
            'io_backend = auto: pgnear sends through io_uring on this kernel (before 6.1: receives with epoll)';
    }
}
{
    my $pe = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'passthrough', server_tls => 'disable', io_backend => 'epoll' });
    ok $pe->wait_for_log(qr/started \(pid \d+\), \d+ workers? sending through epoll/),
        'io_backend = epoll: pgnear says it sends through epoll';
    for my $mode (qw(simple extended prepared)) {
        ($rc, $out, $err) = pgbench(['-M', $mode, '-c', '8', '-j', '2', '-t', '200', '-n'],
                                    $pe->conninfo, timeout => 60);
        $r = parse_pgbench($out);
        is $rc, 0, "io_backend = epoll, -M $mode exits 0" or diag "stdout:\n$out\nstderr:\n$err";
        is $r->{processed}, 1600, "io_backend = epoll, -M $mode: 1600 transactions processed";
        is $r->{failed} // 0, 0, "io_backend = epoll, -M $mode: zero failed transactions";
    }
    ($rc, $out, $err) = pgbench(['-C', '-M', 'extended', '-c', '4', '-j', '2', '-t', '50', '-n'],
                                $pe->conninfo, timeout => 60);
    $r = parse_pgbench($out);
    is $rc, 0, 'io_backend = epoll, -C exits 0' or diag "stdout:\n$out\nstderr:\n$err";
    is $r->{processed}, 200, 'io_backend = epoll, -C: 200 transactions processed';
    $pe->stop;
    wait_back_to($baseline, 'after io_backend = epoll');
}

# ---- io_backend = auto, one worker: the sockets receive through the ring under load
if ($ring_receives) {
    my $pa = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'passthrough', server_tls => 'disable', workers => 1 });
    my $moves = sub { join("\n", $pa->log_contents =~ /^(.*sockets now receive.*)$/mg) };
    # One client whose answer comes two milliseconds after its query, and
    # who waits two before the next: each wake-up reads one socket, unless
    # the machine keeps the worker from its wait that long (a fast answer
    # could come before the worker waits, and count with the query).
    my $one_by_one = tmpdir(name => 'one-by-one') . '/one.sql';
    write_file($one_by_one, "SELECT pg_sleep(0.002);\n\\sleep 2 ms\n");
    # Where the sockets receive now, by the worker's last move: 'ring',
    # 'readiness', or '' before any move.
    my $where = sub {
        my @m = $pa->log_contents =~ /worker 0: sockets now receive (through its io_uring|on their readiness)/g;
        return !@m ? '' : $m[-1] =~ /io_uring/ ? 'ring' : 'readiness';
    };
    # Runs pgbench in rounds of $per transactions, at most $rounds of them,
    # until the log says $move and the sockets are $end (at once without a
    # move): the weighing counts windows of 1,024 wake-ups, which a busy
    # machine (a suite under the sanitizers beside it) may fill more slowly
    # or with steps merged; and there eight clients may read fewer than 1.6
    # a wake-up through the ring, so that their windows move the sockets
    # back and forth, and a round may end on readiness.
    my $step = sub {
        my ($clients, $per, $rounds, $move, $end, $what) = @_;
        my $before = $pa->log_size;
        my ($failed, $bad) = (0, '');
        for my $round (1 .. $rounds) {
            ($rc, $out, $err) = pgbench(['-M', 'simple', '-c', $clients, '-j', $clients > 1 ? 2 : 1,
                                         '-t', $per, '-n', $clients > 1 ? () : ('-f', $one_by_one)],
                                        $pa->conninfo, timeout => 60);
            $bad ||= "stdout:\n$out\nstderr:\n$err" if $rc;
            $failed += parse_pgbench($out)->{failed} // 0;
            last if !$move
                || (substr($pa->log_contents, $before) =~ /worker 0: sockets now receive $move/ && $where->() eq $end);
        }
        is $bad, '', "io_backend = auto, -c $clients: pgbench exits 0";
        is $failed, 0, "io_backend = auto, -c $clients: zero failed transactions";
        my $log = substr($pa->log_contents, $before);
        if ($move) {
            like $log, qr/worker 0: sockets now receive $move/, "io_backend = auto: $what" or diag $moves->();
            is $where->(), $end, "io_backend = auto, -c $clients: the sockets end on $end" or diag $moves->();
        } else {
            unlike $log, qr/sockets now receive/, "io_backend = auto: $what" or diag $moves->();
        }
    };
    # 600 transactions of the lone client make 1,200 wake-ups: one whole window.
    $step->(1, 600, 1, undef, undef, 'one client stays on readiness');
    # The lone client's step must start on the ring: rounds go on until one ends there.
    $step->(8, 1000, 8, qr/through its io_uring \((?:[2-9]|1\.[3-9])[\d.]* reads a wake-up\)/, 'ring',
            'eight clients move the sockets to the ring');
    # The first window may end on the load before; the next ones are the lone client's.
    $step->(1, 600, 8, qr/on their readiness \([01]\.\d\d reads a wake-up\)/, 'readiness',
            'one client alone moves them back to their readiness');
    note "the worker's moves:\n", $moves->();
    $pa->stop;
    wait_back_to($baseline, 'after io_backend = auto with one worker');
}

# ---- io_backend = io_uring: receives through the ring whatever the load
if ($ring_receives) {
    my $pu = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'passthrough', server_tls => 'disable', io_backend => 'io_uring' });
    ok $pu->wait_for_log(qr/started \(pid \d+\), \d+ workers? sending and receiving through io_uring/),
        'io_backend = io_uring: pgnear says it sends and receives through io_uring';
    for my $load (['simple', 8], ['extended', 8], ['prepared', 8], ['simple', 1]) {
        my ($mode, $clients) = @$load;
        ($rc, $out, $err) = pgbench(['-M', $mode, '-c', $clients, '-j', $clients > 1 ? 2 : 1,
                                     '-t', 1600 / $clients, '-n'], $pu->conninfo, timeout => 60);
        $r = parse_pgbench($out);
        is $rc, 0, "io_backend = io_uring, -M $mode -c $clients exits 0" or diag "stdout:\n$out\nstderr:\n$err";
        is $r->{processed}, 1600, "io_backend = io_uring, -M $mode -c $clients: 1600 transactions processed";
        is $r->{failed} // 0, 0, "io_backend = io_uring, -M $mode -c $clients: zero failed transactions";
    }
    unlike $pu->log_contents, qr/sockets now receive/,
        'io_backend = io_uring: the sockets never move to their readiness';
    $pu->stop;
    wait_back_to($baseline, 'after io_backend = io_uring');
}

# ---- io_backend without io_uring: auto falls back, io_uring refuses
{
    my $no_uring = dirname($ENV{PGNEAR}) . '/tests/unit/no_io_uring';
    die "$no_uring is missing: make check (or make tests/unit/no_io_uring) builds it\n"
        unless -x $no_uring;
    my $dir = tmpdir(name => 'no-uring', mode => 0755);
    for my $case (['setup', 'ENOSYS', qr/io_uring_setup: Function not implemented/],
                  ['setup', 'EPERM', qr/io_uring_setup: Operation not permitted/],
                  ['register', 'ENOSYS',
                   qr/could not probe the kernel's io_uring operations: Function not implemented/]) {
        my ($deny, $errno, $why) = @$case;
        my $wrapper = "$dir/pgnear-$deny-$errno";
        write_file($wrapper, "#!/bin/sh\nexec '$no_uring' --deny $deny --errno $errno '"
                             . File::Spec->rel2abs($ENV{PGNEAR}) . "' \"\$@\"\n", mode => 0755);
        my $pa = PgNearTest::Proxy->new(regions => [$us], binary => $wrapper,
            settings => { auth => 'passthrough', server_tls => 'disable', workers => 2 });
        my $log = $pa->log_contents;
        like $log, qr/io_backend = auto: no io_uring \($why\); sockets send through epoll/,
            "io_backend = auto, io_uring_$deny refused ($errno): the fallback and its reason are logged";
        # The line comes after the listeners open, which is all that new() waits for.
        ok $pa->wait_for_log(qr/started \(pid \d+\), 2 workers sending through epoll/, timeout => 10),
            "io_backend = auto, io_uring_$deny refused ($errno): pgnear starts, sending through epoll";
        ($rc, $out, $err) = pgbench(['-M', 'extended', '-c', '4', '-j', '2', '-t', '100', '-n'],
                                    $pa->conninfo, timeout => 60);
        $r = parse_pgbench($out);
        is $r->{processed}, 400, "io_backend = auto without io_uring_$deny: 400 transactions"
            or diag "stdout:\n$out\nstderr:\n$err";
        $pa->stop;

        my $pu = PgNearTest::Proxy->new(regions => [$us], start => 0,
            settings => { auth => 'passthrough', server_tls => 'disable', io_backend => 'io_uring' });
        ($rc, $out, $err) = run_cmd([$wrapper, $pu->config_path], timeout => 20);
        is $rc, 1, "io_backend = io_uring, io_uring_$deny refused ($errno): pgnear exits 1";
        like $err, qr/io_backend = io_uring: worker 0: $why/,
            '... saying why' or diag "stderr:\n$err";
    }
    wait_back_to($baseline, 'after io_backend without io_uring');
}

done_testing;
