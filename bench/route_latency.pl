#!/usr/bin/perl
# What a new session of a caller in Dublin waits for its first row when
# the region nearest it is slowed: route_by = distance against hybrid
# (doc/pgnear.md "Nearest by measurement").  Two PostgreSQL 15 regions,
# each behind bench/delay_relay.pl: eu-west (Dublin, the caller's nearest)
# 1 ms each way, then slowed to 40 ms each way (an 80 ms round trip) while
# everything runs, and eu-central (Frankfurt, 1,090 km on) 7.5 ms each way
# (15 ms).  A pgnear per route_by and pool_mode, next to the client
# (auth = scram), all checking the same relays.  After eu-west is slowed
# the script waits until every hybrid pgnear has logged that Dublin's
# callers now try eu-central first, then times connect() to the first row
# of SELECT 1 (DBD::Pg, pgnear.location in the startup options) for
# --sessions new sessions per pgnear, taking turns; the same before the
# slowdown, for reference.  Each pgnear's first session of a phase is
# left out (under pool_mode = session it opens the connection the later
# ones are handed).
#
#   bench/route_latency.pl [--sessions 40] [--pool-modes none,session]
#                          [--near-ms 1] [--slow-ms 40] [--next-ms 7.5]
#                          [--interval 1s] [--hold-down 5s]
#
# --interval and --hold-down are the pgnears' health_check_interval and
# route_hold_down: the defaults (2 s, 60 s) would only make the script wait
# longer for the switch; they do not change the sessions' times after it.
# Prints p50 and p99 (nearest rank) per phase, pool_mode and route_by, and
# where the sessions landed.  Needs a built pgnear (build/pgnear or
# $PGNEAR) and DBD::Pg (scripts/install-deps.sh).  The figures come from a
# shared machine: compare rows of the same run.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../tests/lib";
use Getopt::Long;
use POSIX ();
use Time::HiRes qw(time sleep);
use DBI;
use PgNearTest;

$| = 1;
my %opt = (sessions => 40, 'pool-modes' => 'none,session', 'near-ms' => 1, 'slow-ms' => 40, 'next-ms' => 7.5,
           interval => '1s', 'hold-down' => '5s');
GetOptions(\%opt, 'sessions=i', 'pool-modes=s', 'near-ms=f', 'slow-ms=f', 'next-ms=f', 'interval=s',
           'hold-down=s')
    or die "usage: see the head of $0\n";
$ENV{PGNEAR} //= -x "$FindBin::RealBin/../build/pgnear" ? "$FindBin::RealBin/../build/pgnear" : './pgnear';
die "no pgnear binary at $ENV{PGNEAR}: build first\n" unless -x $ENV{PGNEAR};

my $DUBLIN = '53.35,-6.26';
my %LOC = ('eu-west' => '53.35, -6.26', 'eu-central' => '50.11, 8.68');
my $dir = tmpdir(name => 'route-latency', mode => 0755);
my @relay_pids;
END { kill 'TERM', $_ for grep { $_ } @relay_pids }

# A delay relay in front of $pg whose one-way delay is in $delay_file: (port, pid, log).
sub start_relay {
    my ($pg, $ms) = @_;
    my ($port, $name) = (free_port(), $pg->name);
    my ($file, $log) = ("$dir/$name.delay", "$dir/$name.log");
    write_file($file, "$ms\n");
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        no warnings 'exec';
        exec { $^X } $^X, "$FindBin::RealBin/delay_relay.pl", '--listen', "127.0.0.1:$port",
            '--target', $pg->hostport, '--delay-file', $file, '--log', $log;
        POSIX::_exit(127);
    }
    push @relay_pids, $pid;
    wait_until(sub { -e $log && slurp_file($log) =~ /^listening/m }, timeout => 10)
        or die "the delay relay in front of $name did not start\n";
    return { port => $port, pid => $pid, file => $file, log => $log };
}

# Changes a relay's one-way delay, its connections kept; returns once it took it.
sub set_delay {
    my ($relay, $ms) = @_;
    my $seen = () = slurp_file($relay->{log}) =~ /^delay /mg;
    write_file($relay->{file}, "$ms\n");
    kill 'HUP', $relay->{pid};
    wait_until(sub { (() = slurp_file($relay->{log}) =~ /^delay /mg) > $seen }, timeout => 5, interval => 0.02)
        or die "the relay did not take its new delay\n";
}

sub percentile {
    my ($p, @v) = @_;
    my @s = sort { $a <=> $b } @v;
    my $rank = int($p / 100 * @s + 0.999999);
    return $s[($rank < 1 ? 1 : $rank) - 1];
}

# One new session from Dublin: (ms from connect() to the first row, the region it landed in).
sub one_session {
    my ($p) = @_;
    my $t0 = time;
    my $dbh = DBI->connect('dbi:Pg:host=127.0.0.1;port=' . $p->port . ";dbname=movr;sslmode=disable;"
                           . "options='-c pgnear.location=$DUBLIN'", 'app', $PgNearTest::APP_PASSWORD,
                           { RaiseError => 1, PrintError => 0, AutoCommit => 1 });
    my ($one) = $dbh->selectrow_array('SELECT 1');
    my $ms = (time - $t0) * 1000;
    die 'SELECT 1 returned ' . ($one // 'nothing') . "\n" unless defined $one && $one == 1;
    my ($region) = $dbh->selectrow_array("SELECT current_setting('cluster_name')");
    $dbh->disconnect;
    sleep 0.02;
    return ($ms, $region);
}

# --sessions sessions per pgnear, taking turns, after a first one each that is not counted.
sub measure {
    my ($phase, @targets) = @_;
    one_session($_->{proxy}) for @targets;
    my %res;
    for (1 .. $opt{sessions}) {
        for my $t (@targets) {
            my ($ms, $region) = one_session($t->{proxy});
            push @{ $res{ $t->{name} }{ms} }, $ms;
            $res{ $t->{name} }{at}{$region}++;
        }
    }
    for my $t (@targets) {
        my $r = $res{ $t->{name} };
        printf "%-28s %-10s %-9s %8d %8.1f %8.1f   %s\n", $phase, $t->{pool_mode}, $t->{route_by},
            scalar @{ $r->{ms} }, percentile(50, @{ $r->{ms} }), percentile(99, @{ $r->{ms} }),
            join(', ', map { "$_ $r->{at}{$_}" } sort keys %{ $r->{at} });
    }
}

# ---------------------------------------------------------------- setup

my %pg = map { $_ => PgNearTest::Cluster->new(name => $_, location => $LOC{$_}) } keys %LOC;
my $verifier = $pg{'eu-west'}->scram_verifier('app');
$pg{'eu-central'}->psql_admin("ALTER ROLE app PASSWORD '$verifier'");    # one secret in both regions
write_file("$dir/userlist.txt", qq{"app" "$verifier"\n}, mode => 0644);
my $near = start_relay($pg{'eu-west'}, $opt{'near-ms'});
my $next = start_relay($pg{'eu-central'}, $opt{'next-ms'});
my @regions = (map { { name => $_, location => $LOC{$_}, hosts => ["127.0.0.1:" . ($_ eq 'eu-west' ? $near : $next)->{port}] } }
               'eu-west', 'eu-central');

my $since = time;
my @targets;
for my $mode (split /,/, $opt{'pool-modes'}) {
    for my $by (qw(distance hybrid)) {
        # the default log level: the "route:" line that says the switch happened is an info
        my $p = PgNearTest::Proxy->new(regions => \@regions, args => [],
            settings => { auth => 'scram', auth_file => "$dir/userlist.txt", server_tls => 'disable',
                          pool_mode => $mode, route_by => $by, health_check_interval => $opt{interval},
                          route_hold_down => $opt{'hold-down'}, workers => 1 });
        push @targets, { name => "$mode/$by", pool_mode => $mode, route_by => $by, proxy => $p };
    }
}
# The estimates replace the priors after five checks on the kept connections (rtt.h): wait ten.
my ($interval_s) = $opt{interval} =~ /^([\d.]+)s$/ or die "--interval takes seconds: 1s\n";
my ($hold_s) = $opt{'hold-down'} =~ /^([\d.]+)s$/ or die "--hold-down takes seconds: 5s\n";
my $settled = $since + 10 * $interval_s;
sleep $settled - time if $settled > time;

printf "eu-west (Dublin, the caller's nearest) %.1f ms each way, then %.1f; eu-central (Frankfurt) %.1f ms each "
    . "way; health_check_interval %s, route_hold_down %s; %d sessions per pgnear and phase; pgnear %s\n\n",
    $opt{'near-ms'}, $opt{'slow-ms'}, $opt{'next-ms'}, $opt{interval}, $opt{'hold-down'}, $opt{sessions},
    $ENV{PGNEAR};
printf "%-28s %-10s %-9s %8s %8s %8s   %s\n", 'phase', 'pool_mode', 'route_by', 'sessions', 'p50 ms', 'p99 ms',
    'landed in';
measure(sprintf('eu-west at %.0f ms rtt', 2 * $opt{'near-ms'}), @targets);

# ---------------------------------------------------------------- slowed

# The hold-down runs from each group's first preference: the switch may wait for it.
my $slowed = time;
set_delay($near, $opt{'slow-ms'});
for my $t (grep { $_->{route_by} eq 'hybrid' } @targets) {
    my $p = $t->{proxy};
    wait_until(sub { -e $p->log_path && slurp_file($p->log_path) =~ /now try region eu-central first/ },
               timeout => 20 * $interval_s + $hold_s + 10)
        or die "$t->{name}: Dublin's callers never moved to eu-central\n";
}
my $switched = time - $slowed;
measure(sprintf('eu-west slowed to %.0f ms rtt', 2 * $opt{'slow-ms'}), @targets);
$_->{proxy}->stop for @targets;
printf "\np50 and p99 (nearest rank) of the time from connect() to the first row of SELECT 1 of a new "
    . "session; the hybrid pgnears had all moved Dublin's callers to eu-central %.1f s after the slowdown\n",
    $switched;
