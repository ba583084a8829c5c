#!/usr/bin/perl
# A client's connect-time settings under transaction pooling: the proxy's
# CPU per transaction when nothing is set, and when each transaction has a
# setting applied on its server connection, pgnear (its settings follow
# the client: txn_settings.h) beside PgBouncer configured alike.
#
#   bench/txn_settings.pl [--seconds 5] [--rounds 3] [--clients 8]
#                         [--pool_size 2] [--workers 1]
#                         [--only none,timezone,search_path]
#                         [--baseline path/to/older/pgnear]
#
# Each client is a process of its own (DBD::Pg, simple Query protocol) that
# logs in, runs its connect-time setting as Django runs SET TIME ZONE, then
# `SELECT 1` as fast as it can for --seconds; the proxy's CPU (utime +
# stime of its process, all threads, /proc/PID/stat) is read once every
# client is in and set, and again when all have stopped, and divided by
# the transactions they ran.  The loads:
#   none         nothing set
#   timezone     SET TIME ZONE: half the clients 'UTC', half 'Asia/Kolkata'
#                (a setting the server reports: ParameterStatus)
#   search_path  SET search_path: half 'public', half 'pg_catalog, public'
# pool_size 2 (one worker): every transaction of a client that set something
# runs on a connection another client had.  pgnear resets a connection given
# back with a client's settings (server_reset_query) and replays the next
# client's in the same write as its query; PgBouncer 1.18 sends SET for the
# parameters it tracks (TimeZone among them) where the server's value
# differs, and nothing for search_path (its track_extra_parameters came in
# 1.20): a PgBouncer client's search_path is whatever its server connection
# last had.  After the run each client checks its setting: "kept" is the
# count of clients that still see their own.
#
# Targets interleaved within each round, medians of the rounds; the
# ratio column is each target's CPU over its own `none` figure.  Needs
# build/pgnear (or $PGNEAR), pgbouncer and DBD::Pg (scripts/install-deps.sh).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../tests/lib";
use Getopt::Long;
use IO::Handle;
use POSIX qw(sysconf _SC_CLK_TCK);
use Time::HiRes qw(time);
use DBI;
use PgNearTest;
use PgNearBouncer;

$| = 1;
my %opt = (seconds => 5, rounds => 3, clients => 8, pool_size => 2, workers => 1,
           only => 'none,timezone,search_path');
GetOptions(\%opt, 'seconds=i', 'rounds=i', 'clients=i', 'pool_size=i', 'workers=i', 'only=s',
           'baseline=s') or die "bad options\n";
$ENV{PGNEAR} //= "$FindBin::RealBin/../build/pgnear";
die "no pgnear binary at $ENV{PGNEAR}: build first\n" unless -x $ENV{PGNEAR};
die "no pgnear binary at $opt{baseline}\n" if defined $opt{baseline} && !-x $opt{baseline};
my $ticks = sysconf(_SC_CLK_TCK) || 100;

my %loads = (
    none        => sub { () },
    timezone    => sub { $_[0] % 2 ? q{SET TIME ZONE 'Asia/Kolkata'} : q{SET TIME ZONE 'UTC'} },
    search_path => sub { $_[0] % 2 ? 'SET search_path TO pg_catalog, public' : 'SET search_path TO public' },
);
my %check = (timezone => ['SHOW TimeZone', sub { $_[0] % 2 ? 'Asia/Kolkata' : 'UTC' }],
             search_path => ['SHOW search_path', sub { $_[0] % 2 ? 'pg_catalog, public' : 'public' }]);
my @loads = split /,/, $opt{only};
$loads{$_} or die "--only: no load $_\n" for @loads;

my $pg = PgNearTest::Cluster->new(name => 'txnset', location => '39.04, -77.49',
    conf => { max_connections => 100 });
my $verifier = $pg->scram_verifier('app');
my $dir = tmpdir(name => 'txnset', mode => 0755);
write_file("$dir/userlist.txt", qq{"app" "$verifier"\n}, mode => 0644);

my (@order, %targets);
my %bins = (pgnear => $ENV{PGNEAR}, defined $opt{baseline} ? (baseline => $opt{baseline}) : ());
for my $what (sort keys %bins) {
    my $p = PgNearTest::Proxy->new(regions => [$pg], args => ['-q'], binary => $bins{$what},
        settings => { auth => 'scram', auth_file => "$dir/userlist.txt", server_tls => 'disable',
                      workers => $opt{workers}, pool_mode => 'transaction',
                      pool_size => $opt{pool_size} });
    push @order, $what;
    $targets{$what} = [$p->port, $p->pid, $p];
}
my $bouncer = PgNearBouncer->new(
    pool_mode => 'transaction',
    databases => { $PgNearTest::APP_DB => 'host=127.0.0.1 port=' . $pg->port . " dbname=$PgNearTest::APP_DB" },
    users => { app => $verifier },
    settings => { default_pool_size => $opt{pool_size}, server_tls_sslmode => 'disable' });
push @order, 'pgbouncer';
$targets{pgbouncer} = [$bouncer->port, $bouncer->pid];

# One client: logs in, sets, says "ready", waits for "go", runs, says its count, and after
# "check" its setting as it sees it; exits at "end".
sub client {
    my ($port, $i, $load, $from, $to) = @_;
    my $dbh = DBI->connect("dbi:Pg:host=127.0.0.1;port=$port;dbname=$PgNearTest::APP_DB;sslmode=disable",
                           'app', 'app-secret', { RaiseError => 1, PrintError => 0, AutoCommit => 1 });
    $dbh->do($_) for $loads{$load}->($i);
    print $to "ready\n";
    <$from>;
    my ($n, $until) = (0, time + $opt{seconds});
    while (time < $until) {
        $dbh->do('SELECT 1') for 1 .. 20;
        $n += 20;
    }
    print $to "$n\n";
    <$from>;
    my $seen = $check{$load} ? ($dbh->selectrow_array($check{$load}[0]))[0] : '';
    print $to(($check{$load} && $seen ne $check{$load}[1]->($i) ? 'lost' : 'kept') . "\n");
    <$from>;
    $dbh->disconnect;
    POSIX::_exit(0);
}

sub run_one {
    my ($load, $name) = @_;
    my ($port, $pid) = @{ $targets{$name} };
    my @c;
    for my $i (0 .. $opt{clients} - 1) {
        pipe(my $down_r, my $down_w) or die "pipe: $!\n";
        pipe(my $up_r, my $up_w) or die "pipe: $!\n";
        $_->autoflush(1) for $down_w, $up_w;
        my $child = fork // die "fork: $!\n";
        if ($child == 0) {
            close $_ for $down_w, $up_r;
            client($port, $i, $load, $down_r, $up_w);
        }
        close $_ for $down_r, $up_w;
        push @c, { pid => $child, to => $down_w, from => $up_r };
    }
    my $say = sub { my ($w) = @_; for (@c) { print { $_->{to} } "$w\n" } };
    my $hear = sub { map { my $fh = $_->{from}; my $l = <$fh> // die "a client of $name died\n"; chomp $l; $l } @c };
    $hear->();
    my ($u0, $s0) = PgNearTest::proc_cpu_ticks($pid);
    $say->('go');
    my @n = $hear->();
    my ($u1, $s1) = PgNearTest::proc_cpu_ticks($pid);
    $say->('check');
    my $kept = grep { $_ eq 'kept' } $hear->();
    $say->('end');
    waitpid $_->{pid}, 0 for @c;
    my $tx = 0;
    $tx += $_ for @n;
    return ($tx / $opt{seconds}, ($u1 - $u0 + $s1 - $s0) / $ticks * 1e6 / $tx, $kept);
}

sub median {
    my @s = sort { $a <=> $b } @_;
    return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

my $cpus = () = PgNearTest::slurp_file('/proc/cpuinfo') =~ /^processor/mg;
printf "%d clients, SELECT 1 for %d s, %d rounds interleaved (%s); transaction pooling over %d; %d CPUs\n",
    $opt{clients}, $opt{seconds}, $opt{rounds}, join(' ', @order), $opt{pool_size}, $cpus;
printf "%-12s %-10s %9s %14s %10s %6s\n", 'load', 'proxy', 'tps', 'us CPU/tx', 'over none', 'kept';
my %none;
for my $load (@loads) {
    my (%tps, %cpu, %kept);
    for my $round (1 .. $opt{rounds}) {
        for my $name (@order) {
            my ($t, $c, $k) = run_one($load, $name);
            push @{ $tps{$name} }, $t;
            push @{ $cpu{$name} }, $c;
            $kept{$name} = $k;
        }
    }
    for my $name (@order) {
        my $c = median(@{ $cpu{$name} });
        $none{$name} = $c if $load eq 'none';
        printf "%-12s %-10s %9.0f %14.2f %10s %6s\n", $load, $name, median(@{ $tps{$name} }), $c,
            $none{$name} ? sprintf('%.2f', $c / $none{$name}) : '-', "$kept{$name}/$opt{clients}";
    }
}
print "medians of the rounds; CPU: the proxy process's utime + stime per transaction, in microseconds;\n",
      "kept: the clients that saw their own setting after the last round\n";
