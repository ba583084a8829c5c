#!/usr/bin/perl
# Transaction pooling beside PgBouncer, measured the way a user would:
# pgbench -n -S as a SCRAM user through pgnear (auth = scram, pool_mode =
# transaction, pool_size 20) with workers = 1 and with workers = 2, and
# through PgBouncer (pool_mode = transaction, default_pool_size = 20,
# auth_type = scram-sha-256), interleaved round by round, for the loads
# -M simple -c 8, -M simple -c 64 and -M extended -c 64 (-j 2).  It prints
# the median TPS of each target, pgnear's TPS over PgBouncer's, and the
# proxy's CPU per 1,000 transactions: utime + stime of the proxy process
# (all its threads, /proc/PID/stat) over each run, divided by the
# transactions pgbench reports — what the proxy costs, which the TPS on a
# machine whose cores PostgreSQL and pgbench share with it hides.
#
#   bench/txn_pool.pl [--seconds 10] [--rounds 3] [--scale 10] [--workers 1,2]
#                     [--only simple-8,extended-64,...: any mode-clients]
#                     [--baseline path/to/older/pgnear]
#                     [--backends auto,epoll] [--floor] [--pool_mode session]
#                     [--machine] [--tails [--keep-logs DIR]] [--rate TPS]
#                     [--proxy-cpu N]
#
# --tails: a busy crowd's latency, from pgbench's log of every transaction
# (-l): p50, p99 and the longest of each target over its rounds, p99/p50
# beside PgBouncer's, and the longest over the median (a client starved
# waits many medians); p99/p50 from each client's third transaction
# on ("later": without the first burst of a crowd into a cold pool, which
# a short run's tail is mostly made of); and p99/p50 of the rounds after
# the first, from STEADY_AFTER_S into each ("steady": a warm pool, and
# pgbench on its schedule, which under --rate it falls behind while its
# crowd logs in).  For a crowd, --only simple-1000,simple-5000: the
# proxies take max_client_conn for the largest load, and `ulimit -n` must
# allow the clients twice over (pgbench's ends and the proxy's).
# --rate runs pgbench at that many transactions a second (-R), all
# clients together, for tails at the same load through every target: a
# rate below each one's capacity leaves no proxy's queue full, so that its
# median is not set by its throughput (a closed loop of 1,000 clients
# waits 1,000 transactions' time, less through the faster proxy) and its
# p99 says how long its stalls are; pgbench measures each latency from the
# transaction's scheduled start.
# --proxy-cpu gives each proxy CPU N alone (taskset, every thread) and
# PostgreSQL and pgbench the others: what each proxy's own scheduling
# adds to the tails, apart from waiting for a core that the server
# processes and pgbench hold (on a machine of two cores they outnumber
# the cores many times over).
# --keep-logs moves pgbench's logs to DIR (one a thread, named by target,
# numbered in run order) for a closer look: which clients and which moments the
# tail holds.
#
# --baseline runs a second pgnear binary with the same settings beside the
# first (each worker count), interleaved, and prints its figures too: what
# a change saved, on the same machine in the same minutes.  --backends
# runs pgnear once per io_backend named (io_uring's batched sends beside
# epoll's own writes), each a target of its own.
#
# --floor runs bench/floor_relay beside them three times: one thread that
# moves each readable socket's bytes to its peer with one recv and one send
# on epoll ("floor"), the same waiting in io_uring_enter alone, with
# multishot receives into provided buffers sent on from where they lie
# ("floor-uring"), and that ring waited for in epoll_wait, as pgnear's
# workers wait for theirs beside their other descriptors ("floor-ue");
# each parses and pools nothing (clients log in to
# PostgreSQL through it).  Their CPU per transaction is the kernel's cost
# of moving the same bytes between the same sockets, which every proxy
# pays, with the least of each design's system calls: the floors beneath
# both proxies' figures.  It needs `make bench/floor_relay` in the build
# directory (or $FLOOR_RELAY).
#
# --pool_mode session runs pgnear and PgBouncer in session mode instead
# (pgnear a relay once a session has logged in): the session relay's
# figures, for its own rows (-M simple -c 1, -M simple -c 8, -M prepared
# -c 64), with the same floor beside them when --floor is given.
#
# --machine prints a second table: where the machine's time went around
# each proxy, for the tps side of the figures, which on a machine whose
# cores the proxy shares with PostgreSQL and pgbench depends on more than
# the proxy's own CPU: the cores' idle time over the run (/proc/stat),
# PostgreSQL's CPU per 1,000 transactions (every postgres process's utime
# + stime), and how the proxy was scheduled: the times a transaction it
# was preempted (nonvoluntary context switches) and went to sleep
# (voluntary ones), and the microseconds a transaction it waited runnable
# for a core (run_delay in /proc/PID/task/*/schedstat).
#
# Needs a built build/pgnear (or $PGNEAR), pgbouncer and pgbench
# (scripts/install-deps.sh installs them).  The CPU figures are in
# milliseconds of the proxy's own CPU; on a shared machine quote the
# ratios of medians, and use bench/callgrind_relay.pl --pool_mode
# transaction for instruction counts that do not move.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../tests/lib";
use Getopt::Long;
use IO::Socket::IP;
use POSIX qw(sysconf _SC_CLK_TCK);
use PgNearTest;
use PgNearBouncer;

$| = 1;

my %opt = (seconds => 10, rounds => 3, scale => 10, workers => '1,2', only => '', backends => 'auto',
           pool_mode => 'transaction');
GetOptions(\%opt, 'seconds=i', 'rounds=i', 'scale=i', 'workers=s', 'only=s', 'baseline=s',
    'backends=s', 'floor', 'pool_mode=s', 'machine', 'tails', 'keep-logs=s', 'rate=i', 'proxy-cpu=i')
    or die "bad options\n";
$ENV{PGNEAR} //= "$FindBin::RealBin/../build/pgnear";
die "no pgnear binary at $ENV{PGNEAR}: build first\n" unless -x $ENV{PGNEAR};
die "no pgnear binary at $opt{baseline}\n" if defined $opt{baseline} && !-x $opt{baseline};
if (defined $opt{'keep-logs'} && !-d $opt{'keep-logs'}) {
    mkdir $opt{'keep-logs'} or die "--keep-logs $opt{'keep-logs'}: $!\n";
}
die "--pool_mode is transaction or session\n" unless $opt{pool_mode} =~ /^(transaction|session)$/;
# Session mode holds a server connection a client: enough for every client of the loads.
my $pool_size = $opt{pool_mode} eq 'session' ? 100 : 20;
# Room for the largest load's clients (--only), 1,000 at least.
my ($most_clients) = sort { $b <=> $a } 1000, map { /-([0-9]+)$/ ? $1 + 10 : () } split /,/, $opt{only};
require_tool('pgbench');
my $ticks = sysconf(_SC_CLK_TCK) || 100;
my $floor_relay = $ENV{FLOOR_RELAY} // "$FindBin::RealBin/../build/bench/floor_relay";
die "no floor relay at $floor_relay: run `make bench/floor_relay` in the build directory\n"
    if $opt{floor} && !-x $floor_relay;

# --proxy-cpu: this script, and so PostgreSQL and pgbench, on the other CPUs; each proxy on its own.
sub pin {
    my ($cpus, $pid, $threads) = @_;
    my $out = qx{taskset @{[ $threads ? '-a' : '' ]} -p -c $cpus $pid 2>&1};
    die "taskset -p -c $cpus $pid failed: $out" if $?;
}
my $cpus = () = PgNearTest::slurp_file('/proc/cpuinfo') =~ /^processor/mg;
if (defined $opt{'proxy-cpu'}) {
    require_tool('taskset');
    my $n = $opt{'proxy-cpu'};
    die "--proxy-cpu $n: this machine has CPUs 0 to " . ($cpus - 1) . "\n" if $n < 0 || $n >= $cpus || $cpus < 2;
    pin(join(',', grep { $_ != $n } 0 .. $cpus - 1), $$, 0);
}

my $pg = PgNearTest::Cluster->new(name => 'txnbench', location => '39.04, -77.49',
    conf => { max_connections => 300, shared_buffers => '256MB' });
$pg->psql_admin("CREATE DATABASE bench OWNER app");
my $verifier = $pg->scram_verifier('app');
my ($rc, $out, $err) = pgbench(['-i', '-q', '-s', $opt{scale}], $pg->conninfo(dbname => 'bench'),
    timeout => 600);
die "pgbench -i failed: $err\n" if $rc;

# The targets, in the order each round runs them: name => [port, pid of the proxy].
my (@order, %targets);
my $dir = tmpdir(name => 'txnbench', mode => 0755);
write_file("$dir/userlist.txt", qq{"app" "$verifier"\n}, mode => 0644);
for my $workers (split /,/, $opt{workers}) {
    my %bins = (pgnear => $ENV{PGNEAR}, defined $opt{baseline} ? (baseline => $opt{baseline}) : ());
    my @backends = split /,/, $opt{backends};
    for my $what (sort keys %bins) {
        for my $backend (@backends) {
            my $name = @backends > 1 && $what eq 'pgnear' ? "$backend-w$workers" : "$what-w$workers";
            next if $targets{$name};
            my $p = PgNearTest::Proxy->new(regions => [$pg], args => ['-q'], binary => $bins{$what},
                settings => { auth => 'scram', auth_file => "$dir/userlist.txt",
                              server_tls => 'disable', max_client_conn => $most_clients,
                              workers => $workers, pool_mode => $opt{pool_mode}, pool_size => $pool_size,
                              # an older binary (--baseline) knows no io_backend
                              $what eq 'pgnear' ? (io_backend => $backend) : () });
            push @order, $name;
            $targets{$name} = [$p->port, $p->pid, $p];
        }
    }
}

my $bouncer = PgNearBouncer->new(
    pool_mode => $opt{pool_mode}, databases => { bench => 'host=127.0.0.1 port=' . $pg->port . ' dbname=bench' },
    users => { app => $verifier },
    settings => { max_client_conn => $most_clients, default_pool_size => $pool_size, server_tls_sslmode => 'disable' });
my ($bouncer_port, $bouncer_pid) = ($bouncer->port, $bouncer->pid);
push @order, 'pgbouncer';
$targets{pgbouncer} = [$bouncer_port, $bouncer_pid];
if (defined $opt{'proxy-cpu'}) {
    pin($opt{'proxy-cpu'}, $targets{$_}[1], 1) for @order;
}

# The floors: bench/floor_relay straight to PostgreSQL, on epoll, on io_uring, and on both.
my @floor_pids;
if ($opt{floor}) {
    for my $floor (['floor-uring', '--io_uring'], ['floor-ue', '--io_uring-epoll'], ['floor']) {
        my ($name, @flags) = @$floor;
        my $port = free_port();
        my $pid = fork // die "fork: $!\n";
        if ($pid == 0) {
            no warnings 'exec';
            exec $floor_relay, @flags, $port, $pg->port;
            POSIX::_exit(127);
        }
        push @floor_pids, $pid;
        wait_until(sub { IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port) },
                   timeout => 10) or die "the floor relay ($name) did not start\n";
        unshift @order, $name;
        $targets{$name} = [$port, $pid];
    }
}
END { kill 'TERM', @floor_pids if @floor_pids }

# The issue's rows: transaction pooling's three by default, the session
# relay's three under --pool_mode session; --only names any others.
my @loads = (
    { name => 'simple-1',    args => ['-M', 'simple', '-c', 1, '-j', 1], session => 1 },
    { name => 'simple-8',    args => ['-M', 'simple', '-c', 8, '-j', 2], transaction => 1, session => 1 },
    { name => 'simple-64',   args => ['-M', 'simple', '-c', 64, '-j', 2], transaction => 1 },
    { name => 'extended-64', args => ['-M', 'extended', '-c', 64, '-j', 2], transaction => 1 },
    { name => 'prepared-64', args => ['-M', 'prepared', '-c', 64, '-j', 2], session => 1 },
);
if ($opt{only} ne '') {
    # Any -M and -c as "mode-clients", the rows above among them.
    @loads = map {
        /^(simple|extended|prepared)-([0-9]+)$/ or die "--only: $_ is not mode-clients\n";
        { name => $_, args => ['-M', $1, '-c', $2, '-j', $2 > 1 ? 2 : 1] }
    } split /,/, $opt{only};
} else {
    @loads = grep { $_->{ $opt{pool_mode} } } @loads;
}

# utime and stime of a process, all its threads, in clock ticks.
sub cpu_ticks {
    my ($pid) = @_;
    my @t = PgNearTest::proc_cpu_ticks($pid) or die "process $pid is gone\n";
    return @t;
}

# The machine's counters (--machine): its cores' idle ticks and all their
# ticks, PostgreSQL's CPU ticks, and the proxy's context switches
# (voluntary, nonvoluntary) and nanoseconds waited runnable, all threads.
sub machine_counters {
    my ($pid) = @_;
    my @cpu = split ' ', (PgNearTest::slurp_file('/proc/stat') =~ /^cpu\s+(.*)$/m)[0];
    my %m = (idle => $cpu[3] + $cpu[4], all => 0, pg => 0, vcs => 0, nvcs => 0, delay => 0);
    $m{all} += $_ for @cpu[0 .. 7];
    for my $dir (glob '/proc/[0-9]*') {
        my $comm = eval { PgNearTest::slurp_file("$dir/comm") } // next;
        next unless $comm =~ /^postgres/;
        my ($u, $s) = PgNearTest::proc_cpu_ticks($dir =~ m{(\d+)$});
        $m{pg} += ($u // 0) + ($s // 0);
    }
    for my $task (glob "/proc/$pid/task/*") {
        my $status = eval { PgNearTest::slurp_file("$task/status") } // next;
        $m{vcs} += ($status =~ /^voluntary_ctxt_switches:\s+(\d+)/m)[0] // 0;
        $m{nvcs} += ($status =~ /^nonvoluntary_ctxt_switches:\s+(\d+)/m)[0] // 0;
    }
    $m{delay} = (PgNearTest::proc_schedstat($pid))[1];
    return \%m;
}

# The latencies, in microseconds, in pgbench's logs under $prefix (one a
# thread: "client transaction latency script epoch_s us [lag]"), the logs
# removed: every transaction's (all), and those from each client's third
# on (later): a crowd's first two wait for the pool to fill, its
# connections' first queries and pgbench's other thread's logins, and
# make much of a short run's tail.  In a round after the first ($warm),
# those that ended STEADY_AFTER_S or more after the round's first did
# (steady).
use constant STEADY_AFTER_S => 2;
my $kept = 0;
sub logged_latencies {
    my ($prefix, $warm) = @_;
    my %us = (all => [], later => [], steady => []);
    my @ended; # [end in s, latency]
    for my $file (glob "$prefix.*") {
        open my $in, '<', $file or die "$file: $!\n";
        while (<$in>) {
            my (undef, $nth, $latency, undef, $s, $frac) = split ' ';
            push @{ $us{all} }, $latency;
            push @{ $us{later} }, $latency if $nth > 2;
            push @ended, [$s + $frac / 1e6, $latency] if $warm;
        }
        close $in;
        if ($opt{'keep-logs'}) {
            (my $name = $file) =~ s{.*/}{};
            rename $file, "$opt{'keep-logs'}/$name-" . $kept++ or die "$file: $!\n";
        } else {
            unlink $file;
        }
    }
    if (@ended) {
        my $first = (sort { $a <=> $b } map { $_->[0] } @ended)[0];
        $us{steady} = [map { $_->[1] } grep { $_->[0] >= $first + STEADY_AFTER_S } @ended];
    }
    return \%us;
}

# One pgbench run: its tps and the proxy's CPU milliseconds per 1,000
# transactions (and with --machine the machine's figures, per transaction;
# with --tails the latency of each transaction, in microseconds).
sub run_one {
    my ($load, $name, $round) = @_;
    my ($port, $pid) = @{ $targets{$name} };
    my $m0 = $opt{machine} ? machine_counters($pid) : undef;
    my $prefix = "$dir/latency-$name";
    my @log = $opt{tails} ? ('-l', '--log-prefix', $prefix) : ();
    push @log, '-R', $opt{rate} if $opt{rate};
    my ($user0, $sys0) = cpu_ticks($pid);
    my ($c, $o, $e) = pgbench(['-n', '-S', @{ $load->{args} }, @log, '-T', $opt{seconds}],
        conninfo_string(host => '127.0.0.1', port => $port, dbname => 'bench', user => 'app',
                        password => 'app-secret', sslmode => 'disable'),
        timeout => $opt{seconds} * 4 + 60);
    my ($user1, $sys1) = cpu_ticks($pid);
    my $m1 = $opt{machine} ? machine_counters($pid) : undef;
    my $r = parse_pgbench($o);
    die "pgbench failed through $name (exit $c): $e\n$o\n"
        if $c || !$r->{tps} || !$r->{processed} || $r->{failed};
    my $per_1k = 1000 / $ticks * 1000 / $r->{processed};
    my %machine;
    if ($m1) {
        my %d = map { $_ => $m1->{$_} - $m0->{$_} } keys %$m1;
        %machine = (idle => 100 * $d{idle} / ($d{all} || 1), pg => $d{pg} * $per_1k,
                    nvcs => $d{nvcs} / $r->{processed}, vcs => $d{vcs} / $r->{processed},
                    delay => $d{delay} / 1000 / $r->{processed});
    }
    return ($r->{tps}, ($user1 - $user0 + $sys1 - $sys0) * $per_1k, ($user1 - $user0) * $per_1k,
            \%machine, $opt{tails} ? logged_latencies($prefix, $round > 1) : undef);
}

# The q-quantile of sorted numbers (nearest rank).
sub quantile {
    my ($sorted, $q) = @_;
    my $i = int($q * @$sorted + 0.999999) - 1;
    return $sorted->[$i < 0 ? 0 : $i];
}

# --tails' rows for one load: each target's quantiles over all its rounds,
# of every transaction and of the later ones (logged_latencies).
sub tail_rows {
    my ($load, $lat) = @_;
    my %q;
    for my $name (@order) {
        for my $which (qw(all later steady)) {
            my @s = sort { $a <=> $b } @{ $lat->{$name}{$which} // [] };
            $q{$name}{$which} = [map { quantile(\@s, $_) / 1000 } 0.5, 0.99, 1];
        }
    }
    my $ratio = sub { my $v = $q{ $_[0] }{ $_[1] }; ($v->[1] // 0) / ($v->[0] || 1) };
    my $beside = sub { $ratio->(@_) / ($ratio->('pgbouncer', $_[1]) || 1) };
    return map {
        my $v = $q{$_}{all};
        my $steady = $opt{rounds} > 1
          ? sprintf('%8.2f %8.2f %15.2f', $q{$_}{steady}[1] // 0, $ratio->($_, 'steady'), $beside->($_, 'steady'))
          : sprintf('%8s %8s %15s', '-', '-', '-');
        sprintf "%-12s %-12s %9.2f %9.2f %9.1f %8.2f %12.2f %9.1f %10.2f %12.2f %s", $load->{name}, $_, @$v,
            $ratio->($_, 'all'), $beside->($_, 'all'), $v->[2] / ($v->[0] || 1), $ratio->($_, 'later'),
            $beside->($_, 'later'), $steady
    } @order;
}

sub median {
    my @s = sort { $a <=> $b } @_;
    return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

printf "pgbench -n -S -T %d%s, %d rounds interleaved (%s); %s pooling over %d; scale %d; %d CPUs\n",
    $opt{seconds}, $opt{rate} ? " -R $opt{rate}" : '', $opt{rounds}, join(' ', @order), $opt{pool_mode},
    $pool_size, $opt{scale}, $cpus;
printf "%-12s %-12s %9s %11s %11s %9s %9s %9s\n", 'load', 'proxy', 'tps', 'tps/bouncer',
    'ms CPU/1k tx', 'CPU/bouncer', 'user ms', 'sys ms';
my (@machine_rows, @tail_rows);
for my $load (@loads) {
    my (%tps, %cpu, %user, %machine, %lat);
    for my $round (1 .. $opt{rounds}) {
        for my $name (@order) {
            my ($t, $c, $u, $m, $l) = run_one($load, $name, $round);
            push @{ $tps{$name} }, $t;
            push @{ $cpu{$name} }, $c;
            push @{ $user{$name} }, $u;
            push @{ $machine{$name}{$_} }, $m->{$_} for keys %$m;
            push @{ $lat{$name}{$_} }, @{ $l->{$_} } for $l ? keys %$l : ();
        }
    }
    push @tail_rows, tail_rows($load, \%lat) if $opt{tails};
    for my $name ($opt{machine} ? @order : ()) {
        push @machine_rows, sprintf "%-12s %-12s %7.1f %11.1f %12.2f %9.2f %12.1f", $load->{name},
            $name, map { median(@{ $machine{$name}{$_} }) } qw(idle pg nvcs vcs delay);
    }
    my %mt = map { $_ => median(@{ $tps{$_} }) } @order;
    my %mc = map { $_ => median(@{ $cpu{$_} }) } @order;
    my %mu = map { $_ => median(@{ $user{$_} }) } @order;
    for my $name (@order) {
        printf "%-12s %-12s %9.0f %11.2f %11.1f %9.2f %9.1f %9.1f\n", $load->{name}, $name,
            $mt{$name}, $mt{$name} / $mt{pgbouncer}, $mc{$name}, $mc{$name} / $mc{pgbouncer},
            $mu{$name}, $mc{$name} - $mu{$name};
    }
}
print "medians of the rounds; CPU: the proxy process's utime + stime per 1,000 transactions;\n",
    "user ms: utime alone (its median), sys ms: the CPU's median less it\n";
if (@tail_rows) {
    printf "\n%-12s %-12s %9s %9s %9s %8s %12s %9s %10s %12s %8s %8s %15s\n", 'load', 'proxy', 'p50 ms',
        'p99 ms', 'max ms', 'p99/p50', 'vs bouncer', 'max/p50', 'later', 'later/bouncer', 'steady99',
        'steady', 'steady/bouncer';
    print "$_\n" for @tail_rows;
    print "every transaction of the rounds (pgbench -l); vs bouncer: p99/p50 over PgBouncer's;\n",
        "max/p50: the longest wait in medians (a starved client's is many); later: p99/p50 of\n",
        "each client's third transaction on, without the crowd's first burst into a cold pool;\n",
        "steady: p99/p50 of the rounds after the first, from ", STEADY_AFTER_S, " s into each (steady99: its p99 ms)\n";
}
if (@machine_rows) {
    printf "\n%-12s %-12s %7s %11s %12s %9s %12s\n", 'load', 'proxy', 'idle %', 'PG ms/1k tx',
        'preempted/tx', 'sleeps/tx', 'waited us/tx';
    print "$_\n" for @machine_rows;
    print "medians; idle: the cores' over the run; PG: every postgres process's utime + stime;\n",
        "preempted and sleeps: the proxy's nonvoluntary and voluntary context switches;\n",
        "waited: the proxy's time runnable without a core (schedstat's run_delay)\n";
}
