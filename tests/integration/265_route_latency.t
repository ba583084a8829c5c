# Nearest by measurement (route_by, doc/pgnear.md "Nearest by measurement")
# against three real regions: eu-west (Dublin) behind bench/delay_relay.pl,
# whose delay this test changes while pgnear runs (the kernel has no netem;
# the relay keeps its connections, so the health check's kept connection
# goes on measuring), eu-central (Frankfurt) direct, and us-east (Ashburn)
# behind a second relay, 30 ms away.
#
# (a) A caller in Dublin lands in eu-west; eu-west made 80 ms slow (40 ms
#     each way), new sessions go to eu-central within what the estimator
#     and the hold-down imply, the session already in eu-west stays there,
#     and the log says why; eu-west recovered, new sessions come back, no
#     sooner than route_hold_down after the first change.
# (b) route_by = distance (a second pgnear on the same regions) keeps the
#     Dublin caller in eu-west through the slowdown.
# (c) A caller in Ashburn, far from pgnear (which sits next to eu-west and
#     eu-central here), lands in us-east under hybrid although eu-west
#     measures 30 ms faster: the caller's own distance counts.
#
# The intervals are short so that this takes seconds: health_check_interval
# 200 ms and route_hold_down 2 s, where the defaults (2 s and 60 s) are
# slower by design (an estimate of the last nine checks, 18 s, and at most
# one change a minute per group of callers).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use POSIX ();
use Time::Local qw(timegm);
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';

my $srcdir = $ENV{PGNEAR_SRCDIR} // die "PGNEAR_SRCDIR is not set (make check sets it)\n";

# The estimator's constants from the source, so that the bounds follow them.
my $rtt_h = slurp_file("$srcdir/routing/rtt.h");
my %RTT = map { my ($v) = $rtt_h =~ /#define\s+RTT_$_\s+([\d.]+)/ or die "RTT_$_ not in rtt.h\n"; ($_ => $v) }
  qw(MIN_SAMPLES OUTLIER_RUN PRIOR_MS_PER_KM PRIOR_BASE_MS);

my $INTERVAL = 0.2;    # health_check_interval, s
my $HOLD     = 2;      # route_hold_down, s
# A slowdown is a level after RTT_OUTLIER_RUN slow checks; the check in flight when the delay
# changes may be a fast one, and the group's preference follows at the next tick: that many
# intervals, and slack for a loaded machine (two ASan tests on two cores).
my $SLACK = 3;
my $SWITCH_BOUND = ($RTT{OUTLIER_RUN} + 2) * $INTERVAL + $SLACK;

my %LOC = (
    'eu-west'    => [53.35, -6.26],     # Dublin
    'eu-central' => [50.11, 8.68],      # Frankfurt, 1,090 km from Dublin
    'us-east'    => [39.04, -77.49],    # Ashburn, 5,470 km from Dublin
);
my $DUBLIN  = join ',', @{ $LOC{'eu-west'} };    # pgnear.location of the callers
my $ASHBURN = join ',', @{ $LOC{'us-east'} };

# ---- the regions: eu-west and us-east behind delay relays

my @clusters = map { PgNearTest::Cluster->new(name => $_, location => join(', ', @{ $LOC{$_} })) }
  qw(eu-west eu-central us-east);
my %cluster = map { $_->name => $_ } @clusters;
my $dir = tmpdir(name => 'rtt');
my @relay_pids;
END { kill 'TERM', $_ for @relay_pids }

# A delay relay in front of $target, its one-way delay read from $delay_file: (port, pid).
sub start_relay {
    my ($target, $delay_file, $name) = @_;
    my ($port, $log) = (free_port(), "$dir/$name.log");
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        no warnings 'exec';
        exec { $^X } $^X, "$srcdir/bench/delay_relay.pl", '--listen', "127.0.0.1:$port",
          '--target', $target->hostport, '--delay-file', $delay_file, '--log', $log;
        POSIX::_exit(127);
    }
    push @relay_pids, $pid;
    wait_until(sub { -e $log && slurp_file($log) =~ /^listening/m }, timeout => 10)
      or BAIL_OUT("the delay relay in front of $name did not start");
    return ($port, $pid, $log);
}

write_file("$dir/eu-west.delay", "0\n");
write_file("$dir/us-east.delay", "15\n");
my ($eu_port, $eu_pid, $eu_log) = start_relay($cluster{'eu-west'}, "$dir/eu-west.delay", 'eu-west');
my ($us_port) = start_relay($cluster{'us-east'}, "$dir/us-east.delay", 'us-east');

# eu-west's one-way delay, ms, changed live; returns once the relay says it took it.
sub set_eu_delay {
    my ($ms) = @_;
    my $n = () = slurp_file($eu_log) =~ /^delay /mg;
    write_file("$dir/eu-west.delay", "$ms\n");
    kill 'HUP', $eu_pid;
    wait_until(sub { (() = slurp_file($eu_log) =~ /^delay /mg) > $n }, timeout => 5, interval => 0.02)
      or BAIL_OUT("the relay did not take the delay $ms ms");
    return time;
}

my @regions = (
    { name => 'eu-west',    location => join(', ', @{ $LOC{'eu-west'} }),    hosts => ["127.0.0.1:$eu_port"] },
    { name => 'eu-central', location => join(', ', @{ $LOC{'eu-central'} }), hosts => [$cluster{'eu-central'}] },
    { name => 'us-east',    location => join(', ', @{ $LOC{'us-east'} }),    hosts => ["127.0.0.1:$us_port"] },
);
my %BASE = (auth => 'passthrough', server_tls => 'disable', health_check_interval => '200ms',
            route_hold_down => "${HOLD}s");
my $started = time;
# hybrid by default: route_by is left unset
my $hybrid   = PgNearTest::Proxy->new(regions => \@regions, settings => {%BASE});
my $distance = PgNearTest::Proxy->new(regions => \@regions, settings => { %BASE, route_by => 'distance' });
my $listening = time;
$_->wait_healthy($started, @clusters) for $hybrid, $distance;
# Every host's estimate replaces its prior after RTT_MIN_SAMPLES checks on the kept connection
# (the first check logs in: not a sample), and a group's first preference, taken from the priors
# at the first check, holds for the hold-down: past both, what is measured orders the regions.
my $ready = $listening + $HOLD + ($RTT{MIN_SAMPLES} + 3) * $INTERVAL;
sleep $ready - time if $ready > time;

# ---- sessions

# A new session from $loc: (its region, the open connection, its backend pid).
sub session_from {
    my ($p, $loc) = @_;
    my $w = PgNearTest::Wire->connect(port => $p->port, timeout => 10);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => [options => "-c pgnear.location=$loc"]);
    die 'login failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n" unless $r->{ok};
    my $row = $w->query("SELECT current_setting('cluster_name'), pg_backend_pid()")->{rows}[0];
    return ($row->[0], $w, $row->[1]);
}

sub region_from {
    my ($p, $loc) = @_;
    my ($region, $w) = session_from($p, $loc);
    $w->terminate;
    return $region;
}

# Opens new sessions from $loc until one lands in $want: the seconds it took, undef if not within $limit.
sub lands_within {
    my ($p, $loc, $want, $since, $limit) = @_;
    while (time - $since < $limit + 5) {    # past the limit, to say by how much
        return time - $since if region_from($p, $loc) eq $want;
        sleep 0.05;
    }
    return undef;
}

# The "route:" lines of a pgnear's log: [seconds since the epoch, home, to, to's score, from, from's score].
sub route_changes {
    my ($p) = @_;
    my @lines;
    for ($p->log_contents =~ /^(.*route: region .*)$/mg) {
        my ($y, $mo, $d, $h, $mi, $s, $ms, $home, $to, $to_ms, $from, $from_ms, $held, $slow) = m{^(\d+)-(\d+)-(\d+)\ (\d+):(\d+):(\d+)\.(\d+)\ UTC\ .*
            route:\ region\ (\S+):\ callers\ nearest\ it\ now\ try\ region\ (\S+)\ first\ \(score\ ([\d.]+)\ ms\)
            \ instead\ of\ (\S+)\ \(([\d.]+)\ ms\),\ preferred\ for\ ([\d.]+)\ s
            (\ \(no\ hold-down:\ it\ was\ just\ judged\ slow\))?}x or next;
        push @lines, [timegm($s, $mi, $h, $d, $mo - 1, $y) + $ms / 1000, $home, $to, $to_ms, $from, $from_ms, $held,
                      $slow ? 1 : 0];
    }
    return @lines;
}

# ---- (c) a caller far from pgnear lands near itself; and the start of (a)

is region_from($hybrid, $ASHBURN), 'us-east',
  'hybrid: a caller in Ashburn lands in us-east, 30 ms away, not in eu-west, measured faster';
is region_from($hybrid, $DUBLIN), 'eu-west', 'hybrid: a caller in Dublin lands in eu-west';
is region_from($distance, $DUBLIN), 'eu-west', 'distance: a caller in Dublin lands in eu-west';
my ($old_region, $old, $old_pid) = session_from($hybrid, $DUBLIN);
is $old_region, 'eu-west', 'a session that stays open is in eu-west';
is_deeply [route_changes($hybrid)], [], 'no group changed its preferred region while nothing changed';

# ---- (a) eu-west made 80 ms slow: new sessions go to eu-central, old ones stay

my $slowed = set_eu_delay(40);
my $took = lands_within($hybrid, $DUBLIN, 'eu-central', $slowed, $SWITCH_BOUND);
ok defined $took && $took <= $SWITCH_BOUND,
  sprintf('eu-west 80 ms slow: new sessions from Dublin land in eu-central within %.1f s', $SWITCH_BOUND)
  or diag(defined $took ? sprintf('after %.1f s', $took) : 'never');
note sprintf('eu-central took over %.2f s after the slowdown', $took // -1);
my @changes = route_changes($hybrid);
is scalar(@changes), 1, 'one change of preference logged';
my ($when, $home, $to, $to_ms, $from, $from_ms) = @{ $changes[0] // [] };
is "$home $to $from", 'eu-west eu-central eu-west',
  'the log: callers nearest eu-west now try eu-central first, instead of eu-west';
# eu-west scores its 80 ms and Dublin's prior (the level is the median of RTT_OUTLIER_RUN slow
# checks: the first may have been slowed on its way back only, or held up on a loaded machine,
# the others were slowed both ways); eu-central its round trip and 1,090 km.
my $eu_central_prior = $RTT{PRIOR_BASE_MS} + $RTT{PRIOR_MS_PER_KM} * haversine_km(@{ $LOC{'eu-west'} }, @{ $LOC{'eu-central'} });
cmp_ok $from_ms // 0, '>=', 60, 'the log: eu-west scores its 80 ms round trip';
cmp_ok $to_ms // 1e9, '<', $eu_central_prior + 20, 'the log: eu-central scores its distance and a local round trip';
is region_from($hybrid, $ASHBURN), 'us-east', 'a caller in Ashburn still lands in us-east';

my $row = $old->query("SELECT current_setting('cluster_name'), pg_backend_pid()")->{rows}[0] // [];
is "@$row", "eu-west $old_pid", 'the session that was open stays on its eu-west backend';
is region_from($distance, $DUBLIN), 'eu-west', 'route_by = distance: Dublin still lands in eu-west, slow as it is';

# ---- eu-west recovered: new sessions come back, not before the hold-down

my $recovered = set_eu_delay(0);
my $back_bound = $HOLD + $SWITCH_BOUND;
$took = lands_within($hybrid, $DUBLIN, 'eu-west', $recovered, $back_bound);
ok defined $took && $took <= $back_bound,
  sprintf('eu-west recovered: new sessions from Dublin land there again within %.1f s', $back_bound)
  or diag(defined $took ? sprintf('after %.1f s', $took) : 'never');
note sprintf('eu-west took back over %.2f s after it recovered', $took // -1);
@changes = route_changes($hybrid);
is scalar(@changes), 2, 'two changes of preference logged';
is "@{ $changes[1] // [] }[1, 2, 4]", 'eu-west eu-west eu-central', 'the log: callers nearest eu-west now try eu-west first again';
# The hold by pgnear's own monotonic clock, as its log line says; the lines' wall-clock stamps
# (milliseconds, taken as each line is written) agree with it to within a few.
# Sooner only when the line says eu-central had just been judged slow (its checks slowed by a loaded
# machine): a slow region keeps its callers through no hold-down.
ok +($changes[1][6] // 0) >= $HOLD || $changes[1][7],
  "the second change came no sooner than route_hold_down ($HOLD s) after the first, or said why"
  or diag explain $changes[1]
  if @changes == 2;
cmp_ok abs(($changes[1][6] // 0) - ($changes[1][0] - $when)), '<', 0.05,
  'the hold the log line gives is the time between the two lines'
  if @changes == 2;
is_deeply [route_changes($distance)], [], 'route_by = distance logged no change of preference';
$row = $old->query('SELECT pg_backend_pid()')->{rows}[0] // [];
is $row->[0], $old_pid, 'the old session is still on its backend';
$old->terminate;

is $_->stop, 0, 'pgnear on port ' . $_->port . ' stops cleanly' for $hybrid, $distance;
done_testing;
