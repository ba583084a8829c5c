#!/usr/bin/perl
# A crowd of idle clients beside PgBouncer: the project's crowd client
# (bench/crowd, crowd.c) logs N clients in with SCRAM-SHA-256 from many
# loopback source addresses, runs `SELECT 1` on each and holds them idle,
# through pgnear and through PgBouncer configured alike (transaction
# pooling over pool_size server connections, SCRAM from an auth_file, no
# TLS), and prints what each proxy paid side by side:
#
#   bench/crowd.pl [--clients 2000] [--hold 5] [--rounds 1] [--pool_size 20]
#                  [--workers 1] [--window 100] [--per-source 10000] [--procs K]
#                  [--only pgnear,pgbouncer] [--baseline path/to/older/pgnear]
#                  [--json FILE] [--smoke] [--cold]
#
# For each round and target a fresh proxy (freed memory stays in a
# process, so a second crowd in the same one would show less), one crowd:
#   login rate      clients logged in and answered, a second, from the first
#                   connect() to the last answer (--window logins in flight)
#   CPU             the proxy's utime + stime (/proc/PID/stat, all threads)
#                   a login and its `SELECT 1`, and over the whole hold
#   Rss, Pss        the proxy's growth over the crowd, KiB a client
#                   (/proc/PID/smaps_rollup before the crowd and after --hold)
#   slabs           the kernel's TCP socket slabs (TCP, sock_inode_cache),
#                   KiB a client, kernel-wide: both ends of each connection
#                   and the proxy's side alike for both targets
#   probe           a new client's login and `SELECT 1` every 100 ms, while
#                   the crowd builds and while it holds: p50 / p99 / max ms
#   left / before   the proxy's Rss once the crowd has gone (its open files
#                   back to where they were, its pool's aside) over its Rss
#                   before the crowd: what it gave back (rss_kib_left)
# Before each crowd, twice pool_size clients of the crowd client each run
# `SELECT pg_sleep(1)` through the proxy at once, so that its pool holds
# pool_size server connections, as a running service's does, for both
# proxies alike.
# --cold leaves the pool as the proxy starts it (one connection): the
# crowd's first transactions then wait while PostgreSQL starts the
# pool's backends, a few hundred milliseconds on two cores for either
# proxy, and the probe that comes with them waits as long.
# Medians of the rounds.  --json FILE writes every crowd's JSON object
# ({target => [runs]}).  --procs K: the crowd client in K processes at
# least.  --smoke: 2,000 clients, --hold 2, one round, in two processes
# from four source addresses, PgBouncer only where it is installed
# (tests/integration/311_crowd_smoke.t).
#
# Needs build/pgnear (or $PGNEAR), the crowd client next to it
# (build/bench/crowd: `make bench/crowd` in the build directory, or
# $CROWD), PgBouncer (scripts/install-deps.sh), and an open-file limit
# (ulimit -n) above the clients for the proxies; the crowd client splits
# itself over processes by its own limit.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../tests/lib";
use File::Basename qw(dirname);
use Getopt::Long;
use JSON::PP ();
use Time::HiRes ();
use PgNearTest;
use PgNearBouncer;

$| = 1;
my %opt = (clients => 2000, hold => 5, rounds => 1, pool_size => 20, workers => 1, window => 100,
           'per-source' => 10000, only => 'pgnear,pgbouncer');
GetOptions(\%opt, 'clients=i', 'hold=f', 'rounds=i', 'pool_size=i', 'workers=i', 'window=i',
           'per-source=i', 'procs=i', 'only=s', 'baseline=s', 'json=s', 'smoke', 'cold')
  or die "bad options\n";
$ENV{PGNEAR} //= "$FindBin::RealBin/../build/pgnear";
die "no pgnear binary at $ENV{PGNEAR}: build first\n" unless -x $ENV{PGNEAR};
my $crowd = $ENV{CROWD} // dirname($ENV{PGNEAR}) . '/bench/crowd';
die "no crowd client at $crowd: make bench/crowd in the build directory\n" unless -x $crowd;
die "no pgnear binary at $opt{baseline}\n" if defined $opt{baseline} && !-x $opt{baseline};
my $have_bouncer = eval { PgNearTest::require_tool('pgbouncer') } ? 1 : 0;
# The smoke run also takes the crowd client's less trodden paths: two processes, four sources.
if ($opt{smoke}) {
    %opt = (%opt, clients => 2000, hold => 2, rounds => 1, procs => 2, 'per-source' => 500);
    $opt{only} = join ',', grep { $_ ne 'pgbouncer' || $have_bouncer } split /,/, $opt{only};
}
my @targets = split /,/, $opt{only};
push @targets, 'baseline' if defined $opt{baseline};
for (@targets) { die "--only: pgnear or pgbouncer, not $_\n" unless /^(pgnear|pgbouncer|baseline)$/ }
die "pgbouncer is not installed (scripts/install-deps.sh)\n" if grep({ $_ eq 'pgbouncer' } @targets) && !$have_bouncer;

my $pg = PgNearTest::Cluster->new(name => 'crowd', location => '39.04, -77.49',
    conf => { max_connections => 2 * $opt{pool_size} + 30 });
my $verifier = $pg->scram_verifier($PgNearTest::APP_USER);
my $dir = tmpdir(name => 'crowd', mode => 0755);
write_file("$dir/userlist.txt", qq{"$PgNearTest::APP_USER" "$verifier"\n}, mode => 0644);
my $max_client_conn = $opt{clients} + 100;

# A fresh proxy: [port, pid, stop].
sub start_target {
    my ($name) = @_;
    if ($name eq 'pgbouncer') {
        my $b = PgNearBouncer->new(
            pool_mode => 'transaction',
            databases => { $PgNearTest::APP_DB => 'host=127.0.0.1 port=' . $pg->port . " dbname=$PgNearTest::APP_DB" },
            users => { $PgNearTest::APP_USER => $verifier },
            settings => { default_pool_size => $opt{pool_size}, max_client_conn => $max_client_conn,
                          server_tls_sslmode => 'disable' });
        return [$b->port, $b->pid, sub { $b->stop }];
    }
    my $p = PgNearTest::Proxy->new(regions => [$pg], args => ['-q'],
        binary => $name eq 'baseline' ? $opt{baseline} : $ENV{PGNEAR},
        settings => { auth => 'scram', auth_file => "$dir/userlist.txt", server_tls => 'disable',
                      workers => $opt{workers}, pool_mode => 'transaction',
                      pool_size => $opt{pool_size}, max_client_conn => $max_client_conn });
    return [$p->port, $p->pid, sub { $p->stop }];
}

# The app's backends on the server now.
sub app_backends {
    $pg->psql_admin(qq{SELECT count(*) FROM pg_stat_activity WHERE usename = '$PgNearTest::APP_USER'
                       AND backend_type = 'client backend'});
}

# Twice pool_size clients at once, each logged in as the crowd's are (the same startup
# parameters: pgnear's pool serves a client only from connections that logged in with its own)
# and running `SELECT pg_sleep(1)` through the proxy on port: its pool fills, each worker's
# slice too where pgnear's workers split it.  Dies unless each answered; says so when the
# server has fewer of the app's backends than pool_size.
sub warm_pool {
    my ($name, $port) = @_;
    my @cmd = ($crowd, '--port', $port, '--user', $PgNearTest::APP_USER,
               '--database', $PgNearTest::APP_DB, '--password', $PgNearTest::APP_PASSWORD,
               '--clients', 2 * $opt{pool_size}, '--window', 2 * $opt{pool_size}, '--hold', 0,
               '--query', 'SELECT pg_sleep(1)', '--label', "$name warm-up");
    my ($rc, $out, $err) = PgNearTest::run_cmd(\@cmd, timeout => 60);
    die "crowd: warming ${name}'s pool failed (exit $rc):\n$err" if $rc != 0;
    my $backends = app_backends();
    print STDERR "# ${name}'s pool holds $backends server connections before the crowd, "
      . "not $opt{pool_size}\n" if $backends < $opt{pool_size};
}

sub open_files { my ($pid) = @_; opendir(my $d, "/proc/$pid/fd") or return undef; scalar(grep { /^\d/ } readdir $d) }
sub rss_kib { my ($pid) = @_; (eval { PgNearTest::slurp_file("/proc/$pid/smaps_rollup") } // '') =~ /^Rss:\s+(\d+) kB/m ? $1 : undef }

# Once the crowd has gone (the proxy's open files back to where they were, its pool's server
# connections aside, within 30 s), and a second more: the proxy's Rss, KiB; undef when it did not
# get there.
sub rss_after_leaving {
    my ($pid, $files0) = @_;
    return undef unless defined $files0;
    my $deadline = Time::HiRes::time() + 30;
    while (Time::HiRes::time() < $deadline) {
        my $n = open_files($pid) // return undef;
        if ($n <= $files0 + $opt{pool_size} + 10) { Time::HiRes::sleep(1); return rss_kib($pid) }
        Time::HiRes::sleep(0.2);
    }
    return undef;
}

# One crowd against a fresh proxy: the crowd client's JSON object, decoded, with the proxy's Rss
# once the crowd left (rss_kib_left).
sub one_crowd {
    my ($name) = @_;
    my ($port, $pid, $stop) = @{ start_target($name) };
    Time::HiRes::sleep(0.5);    # its health checks' and pools' first files
    warm_pool($name, $port) unless $opt{cold};
    my $files0 = open_files($pid);
    my @cmd = ($crowd, '--port', $port, '--user', $PgNearTest::APP_USER,
               '--database', $PgNearTest::APP_DB, '--password', $PgNearTest::APP_PASSWORD,
               '--clients', $opt{clients}, '--hold', $opt{hold}, '--pid', $pid,
               '--window', $opt{window}, '--per-source', $opt{'per-source'}, '--label', $name,
               ($opt{procs} ? ('--procs', $opt{procs}) : ()));
    open(my $out, '-|', @cmd) or die "crowd: $!\n";    # its stderr goes to ours
    my $json = do { local $/; <$out> };
    close $out;
    my $status = $? >> 8;
    my $left = rss_after_leaving($pid, $files0);
    $stop->();
    die "crowd against $name printed no report (exit $status)\n" if $status > 1 || !length $json;
    my $r = JSON::PP::decode_json($json);
    $r->{rss_kib_left} = $left;
    return $r;
}

sub median {
    my @s = sort { $a <=> $b } grep { defined } @_;
    return undef unless @s;
    return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

my %runs;
for my $round (1 .. $opt{rounds}) {
    for my $name (@targets) {
        print STDERR "# round $round: $name\n";
        push @{ $runs{$name} }, one_crowd($name);
    }
}
if (defined $opt{json}) {
    open(my $fh, '>', $opt{json}) or die "$opt{json}: $!\n";
    print $fh JSON::PP->new->canonical->encode(\%runs), "\n";
    close $fh;
}

my @rows = (
    ['logged in (least)',       sub { $_[0]{logged_in} }, 'least'],
    ['login rate, a second',    sub { $_[0]{login_rate} }, '%.0f'],
    ['CPU ms a login',          sub { $_[0]{cpu_ms_per_login} }, '%.3f'],
    ['CPU ms while holding',    sub { $_[0]{cpu_ms_holding} }, '%.0f'],
    ['Rss KiB a client',        sub { $_[0]{rss_kib_per_client} }, '%.2f'],
    ['Pss KiB a client',        sub { $_[0]{pss_kib_per_client} }, '%.2f'],
    ['TCP slabs KiB a client',  sub { $_[0]{slab_kib_per_client} }, '%.2f'],
    ['Rss left / before',       sub { $_[0]{rss_kib_left} && $_[0]{rss_kib_before}
                                      ? $_[0]{rss_kib_left} / $_[0]{rss_kib_before} : undef }, '%.2f'],
    ['probe building p50 ms',   sub { $_[0]{probe_build}{p50_ms} }, '%.1f'],
    ['probe building p99 ms',   sub { $_[0]{probe_build}{p99_ms} }, '%.1f'],
    ['probe building max ms',   sub { $_[0]{probe_build}{max_ms} }, '%.1f'],
    ['probe holding p50 ms',    sub { $_[0]{probe_hold}{p50_ms} }, '%.1f'],
    ['probe holding p99 ms',    sub { $_[0]{probe_hold}{p99_ms} }, '%.1f'],
    ['probe holding max ms',    sub { $_[0]{probe_hold}{max_ms} }, '%.1f'],
);
my $cpus = () = PgNearTest::slurp_file('/proc/cpuinfo') =~ /^processor/mg;
printf "%d clients (SCRAM, SELECT 1, then idle for %g s), %d round(s); transaction pooling over %d "
     . "(%s); pgnear workers %d; %d CPUs\n", $opt{clients}, $opt{hold}, $opt{rounds}, $opt{pool_size},
     $opt{cold} ? 'cold: one connection as the crowd comes' : 'filled before the crowd',
     $opt{workers}, $cpus;
printf "%-24s" . (" %12s" x @targets) . "\n", '', @targets;
for my $row (@rows) {
    my ($label, $get, $fmt) = @$row;
    my @cells = map {
        my @v = map { $get->($_) } @{ $runs{$_} };
        $fmt eq 'least' ? (sort { $a <=> $b } @v)[0] . "/$opt{clients}"
          : defined(median(@v)) ? sprintf($fmt, median(@v)) : '-';
    } @targets;
    printf "%-24s" . (" %12s" x @cells) . "\n", $label, @cells;
}
for my $name (@targets) {
    for my $r (grep { defined $_->{limit} } @{ $runs{$name} }) {
        print "$name stopped by $r->{limit}\n";
    }
}
print "medians of the rounds; slabs: kernel-wide, both ends of every connection\n";
