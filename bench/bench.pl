#!/usr/bin/perl
# Runs the same pgbench load against one PostgreSQL 15 server directly,
# through pgnear, through PgBouncer (session mode) and through HAProxy
# (TCP mode), interleaved round by round, and prints medians and ratios.
#
#   bench/bench.pl [--seconds 5] [--rounds 3] [--scale 10] [--only 'S-prepared-8,storm'] [--no-geo]
#                  [--workers 2] [--verifiers file|query] [--baseline path/to/older/pgnear]
#                  [--pool_mode session|none|transaction] [--pool_size N] [--pgnear_auth scram]
#
# pgnear runs with --pool_mode (default session) and pool_size 100, as
# PgBouncer's default_pool_size here; the storm (a new session per
# transaction) is then compared with PgBouncer as well as with HAProxy.
#
# --pool_mode transaction runs pgnear and PgBouncer both in transaction
# mode over --pool_size (default 20) server connections, and adds loads
# of 200 clients: more clients than connections.  PgBouncer 1.18 (Debian
# 12) cannot carry prepared statements in that mode, so the -M prepared
# loads show no figure for it, and pgnear is compared with HAProxy there.
#
# --baseline runs a second pgnear binary (an older build, say) with the same
# settings as a fifth target, interleaved with the others, and adds the
# ratio pgnear/baseline: what a change cost the relay, in tps.
#
# --verifiers query makes pgnear look SCRAM secrets up with auth_query on
# the server instead of reading them from auth_file.
# pgnear runs with --workers event-loop threads (default 2, like HAProxy's
# default of one thread per core on this 2-core machine); PgBouncer has one.
#
# --geo (the default) also runs the connection storm through a second pgnear
# that routes every session by GeoIP (a 4000-network database) over 30
# regions, interleaved with the first, and prints the ratio.
#
# Under each load's line it prints each proxy's CPU per 1,000 transactions
# (utime + stime of its process from /proc over each run, over the
# transactions pgbench reports; medians): on this 2-core machine the
# proxy, PostgreSQL and pgbench share the cores, and a proxy that spends
# more CPU per transaction can still match another's tps, so the tps alone
# flatter the costlier one.  bench/txn_pool.pl runs transaction pooling
# beside PgBouncer with workers 1 and 2, the way the issue's table does.
#
# Needs a built build/pgnear (or $PGNEAR), pgbouncer, haproxy and pgbench
# (scripts/install-deps.sh installs them).  Quote the ratios, not the tps:
# the machines are shared and noisy.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../tests/lib";
use Getopt::Long;
use List::Util qw(max min);
use POSIX qw(sysconf _SC_CLK_TCK);
use PgNearTest;
use PgNearBouncer;

$| = 1;

my %opt = (seconds => 5, rounds => 3, scale => 10, only => '', pgnear_auth => 'scram', geo => 1,
           workers => 2, verifiers => 'file', pool_mode => 'session');
GetOptions(\%opt, 'seconds=i', 'rounds=i', 'scale=i', 'only=s', 'pgnear_auth=s', 'geo!', 'workers=i',
           'verifiers=s', 'baseline=s', 'pool_mode=s', 'pool_size=i')
    or die "bad options\n";
my $txn = $opt{pool_mode} eq 'transaction';
$opt{pool_size} //= $txn ? 20 : 100;
$ENV{PGNEAR} //= -x "$FindBin::RealBin/../build/pgnear" ? "$FindBin::RealBin/../build/pgnear" : "$FindBin::RealBin/../pgnear";
die "no pgnear binary at $ENV{PGNEAR}: build first\n" unless -x $ENV{PGNEAR};
my $pgbench = require_tool('pgbench');
my $haproxy_bin = require_tool('haproxy');

# One server for every target; enough connections for 64 clients via every path.
my $pg = PgNearTest::Cluster->new(name => 'bench', location => '39.04, -77.49', conf => { max_connections => 300,
    shared_buffers => '256MB' });
$pg->psql_admin("CREATE DATABASE bench OWNER app");
my $verifier = $pg->scram_verifier('app');
my $dir = tmpdir(name => 'bench', mode => 0755);
write_file("$dir/userlist.txt", qq{"app" "$verifier"\n}, mode => 0644);

my ($rc, $out, $err) = pgbench(['-i', '-q', '-s', $opt{scale}],
    $pg->conninfo(dbname => 'bench'), timeout => 600);
die "pgbench -i failed: $err\n" if $rc;

my %pgnear_settings = (auth => $opt{pgnear_auth}, server_tls => 'disable',
    ($opt{verifiers} eq 'query'
       ? (auth_query => 'SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1')
       : (auth_file => "$dir/userlist.txt")),
    max_client_conn => 1000, workers => $opt{workers},
    # As PgBouncer's default_pool_size below: the same server connections each way.
    pool_mode => $opt{pool_mode}, pool_size => $opt{pool_size});
my $pgnear = PgNearTest::Proxy->new(regions => [$pg], args => ['-q'], settings => {%pgnear_settings});
my $baseline;
if (defined $opt{baseline}) {
    die "no pgnear binary at $opt{baseline}\n" unless -x $opt{baseline};
    $baseline = PgNearTest::Proxy->new(regions => [$pg], args => ['-q'], binary => $opt{baseline},
        settings => {%pgnear_settings});
}

my $bouncer = PgNearBouncer->new(
    pool_mode => $txn ? 'transaction' : 'session',
    databases => { bench => 'host=127.0.0.1 port=' . $pg->port . ' dbname=bench' },
    users => { app => $verifier },
    settings => { max_client_conn => 1000, default_pool_size => $opt{pool_size},
                  server_tls_sslmode => 'disable' });
my $bouncer_port = $bouncer->port;

my $haproxy_port = free_port();
write_file("$dir/haproxy.cfg", <<"CFG");
global
    maxconn 2000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen pg
    bind 127.0.0.1:$haproxy_port
    server pg1 127.0.0.1:@{[$pg->port]}
CFG
system($haproxy_bin, '-D', '-f', "$dir/haproxy.cfg", '-p', "$dir/haproxy.pid") == 0
    or die "haproxy failed to start\n";

END {
    for my $pidfile (grep { defined && -f } ($dir && "$dir/haproxy.pid")) {
        chomp(my $pid = PgNearTest::slurp_file($pidfile));
        kill 'TERM', $pid if $pid;
    }
}

my %targets = (
    direct    => $pg->port,
    pgnear    => $pgnear->port,
    pgbouncer => $bouncer_port,
    haproxy   => $haproxy_port,
);
my @order = qw(direct pgnear pgbouncer haproxy);
if ($baseline) {
    $targets{baseline} = $baseline->port;
    splice @order, 2, 0, 'baseline';
}
PgNearTest::wait_until(sub {
    my ($c) = psql(conninfo_string(host => '127.0.0.1', port => $bouncer_port, dbname => 'bench',
                                   user => 'app', password => 'app-secret'), 'SELECT 1');
    $c == 0 }, timeout => 10) or die "pgbouncer does not answer\n";

my @configs;
for my $mode (qw(simple prepared)) {
    push @configs, { name => "S-$mode-$_", args => ['-S', '-M', $mode, '-c', $_, '-j', min($_, 2)] }
        for ($txn ? (8, 64, 200) : (1, 8, 64));
}
push @configs, { name => 'storm', args => ['-S', '-C', '-c', 8, '-j', 2] };
if ($opt{only} ne '') {
    my %want = map { $_ => 1 } split /,/, $opt{only};
    @configs = grep { $want{$_->{name}} } @configs;
}

# The processes whose CPU a run charges to each proxy (none for direct).
my %pids = (pgnear => $pgnear->pid, pgbouncer => $bouncer->pid,
            $baseline ? (baseline => $baseline->pid) : ());
for (['haproxy', "$dir/haproxy.pid"]) {
    my ($name, $file) = @$_;
    ($pids{$name}) = PgNearTest::slurp_file($file) =~ /(\d+)/ if -s $file;
}
my $ticks = sysconf(_SC_CLK_TCK) || 100;

# utime + stime of a process, all its threads, in clock ticks.
sub cpu_ticks {
    my ($pid) = @_;
    my ($user, $sys) = $pid ? PgNearTest::proc_cpu_ticks($pid) : ();
    return defined $user ? $user + $sys : undef;
}

# One run: its tps, and the proxy's CPU milliseconds per 1,000 transactions (undef: not known).
sub run_one {
    my ($cfg, $port, $pid) = @_;
    # PgBouncer 1.18 in transaction mode loses named statements between connections.
    return ('nan', undef) if $txn && $port == $bouncer_port && $cfg->{name} =~ /prepared/;
    my $before = cpu_ticks($pid);
    my ($c, $o, $e) = pgbench([@{ $cfg->{args} }, '-n', '-T', $opt{seconds}],
        conninfo_string(host => '127.0.0.1', port => $port, dbname => 'bench', user => 'app',
                        password => 'app-secret', sslmode => 'disable'),
        timeout => $opt{seconds} * 4 + 60);
    my $after = cpu_ticks($pid);
    my $r = parse_pgbench($o);
    die "pgbench failed on port $port (exit $c): $e\n$o\n" if $c || !$r->{tps} || $r->{failed};
    my $cpu = defined $before && defined $after && $r->{processed}
        ? ($after - $before) * 1000 / $ticks * 1000 / $r->{processed} : undef;
    return ($r->{tps}, $cpu);
}

sub median {
    my @s = sort { $a <=> $b } grep { defined } @_;
    return 'NaN' unless @s; # a target that cannot run the load (PgBouncer 1.18, -M prepared)
    return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

printf "pgbench %s s per run, %d rounds, interleaved %s; scale %d; pgnear workers %d\n",
    $opt{seconds}, $opt{rounds}, join(' ', @order), $opt{scale}, $opt{workers};
printf "%-16s %10s %10s %10s %10s   %7s %7s %7s   %s\n", 'load', 'direct', 'pgnear', 'pgbouncer',
    'haproxy', 'pgnear', 'bouncer', 'haproxy', 'pgnear/best-other';
for my $cfg (@configs) {
    my (%tps, %cpu);
    for my $round (1 .. $opt{rounds}) {
        for my $name (@order) {
            my ($t, $c) = run_one($cfg, $targets{$name}, $pids{$name});
            push @{ $tps{$name} }, $t;
            push @{ $cpu{$name} }, $c if defined $c;
        }
    }
    my %m = map { $_ => median(@{ $tps{$_} }) } @order;
    my $bouncer_runs = $m{pgbouncer} == $m{pgbouncer}; # not NaN
    my $best_other = $cfg->{name} eq 'storm' || !$bouncer_runs ? $m{haproxy}
                                                               : max($m{pgbouncer}, $m{haproxy});
    printf "%-16s %10.0f %10.0f %10.0f %10.0f   %7.2f %7.2f %7.2f   %.2f%s\n", $cfg->{name},
        @m{qw(direct pgnear pgbouncer haproxy)}, $m{pgnear} / $m{direct},
        $m{pgbouncer} / $m{direct}, $m{haproxy} / $m{direct},
        $m{pgnear} / $best_other,
        $cfg->{name} eq 'storm' || !$bouncer_runs ? ' (vs haproxy)' : '';
    printf "%-16s pgnear/pgbouncer %.2f (pool_mode = %s; PgBouncer in %s mode)\n", '',
        $m{pgnear} / $m{pgbouncer}, $opt{pool_mode}, $txn ? 'transaction' : 'session'
        if $cfg->{name} eq 'storm';
    my %mc = map { $_ => median(@{ $cpu{$_} }) } grep { $cpu{$_} } @order;
    printf "%-16s proxy CPU ms per 1,000 tx: %s%s\n", '',
        join(', ', map { sprintf '%s %.1f', $_, $mc{$_} } grep { $mc{$_} } @order),
        $mc{pgbouncer} ? sprintf('; pgnear/pgbouncer %.2f', $mc{pgnear} / $mc{pgbouncer}) : '';
    printf "%-16s baseline %.0f tps; pgnear/baseline %.3f (per round: %s)\n", '', $m{baseline},
        $m{pgnear} / $m{baseline},
        join(' ', map { sprintf '%.3f', $tps{pgnear}[$_] / $tps{baseline}[$_] } 0 .. $#{ $tps{pgnear} })
        if $baseline;
}
print "ratios: median tps / direct median tps; the last column compares pgnear with the better of PgBouncer and HAProxy (HAProxy for the storm)\n";

# Routing cost on the connection storm: GeoIP + 30 regions versus routing off.
if ($opt{geo} && ($opt{only} eq '' || $opt{only} =~ /storm/)) {
    my @nets = map { sprintf('10.%d.%d.0/24=City%d,US,%.2f,%.2f', $_ >> 8, $_ & 255, $_,
                             -50 + ($_ % 100), -170 + ($_ % 340)) } 0 .. 3999;
    push @nets, '127.0.0.0/8=Tokyo,JP,35.6895,139.6917';
    my ($mrc, $mout, $merr) = run_cmd(['perl', "$FindBin::RealBin/../tests/lib/make_mmdb.pl",
        '--layout', 'maxmind', '--ip-version', 6, '--out', "$dir/bench.mmdb", @nets], timeout => 300);
    die "make_mmdb.pl failed: $merr\n" if $mrc;
    my @regions = map {
        { name => "r$_", location => sprintf('%.2f, %.2f', -60 + ($_ * 4), -180 + ($_ * 12)),
          hosts => ['127.0.0.1:' . $pg->port] }
    } 0 .. 29;
    my $geo = PgNearTest::Proxy->new(regions => \@regions, args => ['-q'],
        settings => { auth => $opt{pgnear_auth}, auth_file => "$dir/userlist.txt",
                      server_tls => 'disable', max_client_conn => 1000,
                      geoip_db => "$dir/bench.mmdb", default_region => 'r0',
                      health_check_interval => 0, workers => $opt{workers} });
    my ($storm) = grep { $_->{name} eq 'storm' } @configs;
    $storm //= { name => 'storm', args => ['-S', '-C', '-c', 8, '-j', 2] };
    my %tps;
    for my $round (1 .. $opt{rounds}) {
        push @{ $tps{plain} }, (run_one($storm, $pgnear->port))[0];
        push @{ $tps{geo} }, (run_one($storm, $geo->port))[0];
    }
    my ($plain, $g) = (median(@{ $tps{plain} }), median(@{ $tps{geo} }));
    printf "storm, routing off %.0f tps, GeoIP over 30 regions %.0f tps: ratio %.3f\n", $plain, $g,
        $g / $plain;
    my ($erc, $explain) = run_cmd([$ENV{PGNEAR}, '--explain', $geo->config_path, 'ip=127.0.0.1']);
    my ($why) = $explain =~ /^reason: (.*)$/m;
    print "a storm session's route: ", ($why // 'unknown'), "\n";
}
