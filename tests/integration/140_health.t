# Health checks and failover between regions (DESIGN.md "Routing"): four
# real clusters; a region whose server stops is found down by the health
# check within two intervals and skipped, callers going to the next nearest
# region by great-circle distance without seeing the failed node; a caller
# that arrives before the check noticed fails over inside its login; the
# region comes back after HEALTH_RISE good checks; a dead first host of a
# region costs no delay; with every region down a login gets 08001 at once;
# sessions established elsewhere are not disturbed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';

my $srcdir = $ENV{PGNEAR_SRCDIR};
die "PGNEAR_SRCDIR is not set: point it at the source tree (make check sets it)\n"
  unless defined $srcdir && length $srcdir;
my $cities_file = "$srcdir/conf/cities.csv";
die "no city table at $cities_file\n" unless -r $cities_file;

my $INTERVAL = 1;    # seconds: health_check_interval below

# HEALTH_RISE from the source, so that the test follows the constant.
my ($HEALTH_RISE) = slurp_file("$srcdir/routing/health.h") =~ /#define\s+HEALTH_RISE\s+(\d+)/
  or die "HEALTH_RISE not found in routing/health.h\n";

my %LOC = (
    'us-east'      => [39.04, -77.49],
    'us-west'      => [45.60, -121.18],
    'eu-west'      => [53.35, -6.26],
    'ap-northeast' => [35.68, 139.69],
);
my @NAMES = ('us-east', 'us-west', 'eu-west', 'ap-northeast');

# ---- where Dublin callers should go, computed here, independently of pgnear

# (haversine_km: PgNearTest's own geography.)

# The first "Dublin" line of the city table (the file has no populations).
my ($dub_lat, $dub_lon);
{
    open my $fh, '<', $cities_file or die "$cities_file: $!";
    while (<$fh>) {
        if (/^Dublin,([A-Z]{2}),([-\d.]+),([-\d.]+)/) { ($dub_lat, $dub_lon) = ($2, $3); last }
    }
    die "Dublin is not in $cities_file\n" unless defined $dub_lat;
}
my %dub_km = map { $_ => haversine_km($dub_lat, $dub_lon, @{ $LOC{$_} }) } @NAMES;
my @by_distance = sort { $dub_km{$a} <=> $dub_km{$b} } @NAMES;
note sprintf('from Dublin (%s, %s): %s', $dub_lat, $dub_lon,
             join(', ', map { sprintf '%s %.0f km', $_, $dub_km{$_} } @by_distance));
is $by_distance[0], 'eu-west', 'Perl: the nearest region to Dublin is eu-west';
my $FALLBACK = $by_distance[1];
is $FALLBACK, 'us-east', 'Perl: the next nearest region to Dublin is us-east';

# ---- four regions

my %cl;
for my $n (@NAMES) {
    $cl{$n} = PgNearTest::Cluster->new(name => $n, location => join(', ', @{ $LOC{$n} }));
}
my $eu = $cl{'eu-west'};

sub region_def {
    my ($n, @hosts) = @_;
    return { name => $n, location => join(', ', @{ $LOC{$n} }), hosts => @hosts ? \@hosts : [$cl{$n}] };
}

my %settings = (
    auth                  => 'passthrough',
    server_tls            => 'disable',
    cities_file           => $cities_file,
    health_check_interval => "${INTERVAL}s",
    health_check_timeout  => '1s',
    server_conninfo       => 'user=pgnear password=pgnear-secret',
);
my $p = PgNearTest::Proxy->new(regions => [map { region_def($_) } @NAMES], settings => {%settings});
my $t_p_started = time;
# The same regions with checks so rare that only clients find a dead node:
# the "before the health check noticed" case, without a race against the timer.
my $slow = PgNearTest::Proxy->new(regions  => [map { region_def($_) } @NAMES],
                                  settings => { %settings, health_check_interval => '1h' });

my $DUBLIN = '-c pgnear.city=Dublin';

# (rc, cluster_name, stderr, seconds) of one psql session from Dublin.
sub dublin {
    my ($proxy) = @_;
    my $t0 = time;
    my ($rc, $out, $err) = psql($proxy->conninfo(options => $DUBLIN), 'SHOW cluster_name', timeout => 30);
    return ($rc, $out, $err, time - $t0);
}

# Log lines of pgnear since a byte offset.
sub log_since {
    my ($proxy, $off) = @_;
    my $all = $proxy->log_contents;
    return substr($all, $off // 0);
}

sub host_re {
    my ($c, $state) = @_;
    my $hp = quotemeta($c->hostport);
    my $r  = quotemeta($c->name);
    return qr/host $hp of region $r is $state/;
}

# While all is well, Dublin callers land in eu-west.
for my $proxy ($p, $slow) {
    my ($rc, $out, $err) = dublin($proxy);
    is $rc, 0, 'Dublin caller logs in';
    is $out, 'eu-west', 'a Dublin caller lands in eu-west';
}
like $p->log_contents, qr/route: region eu-west, \d+ km away \(city: /, 'routed by the city hint';

# Sessions established in the other regions, kept open through everything below.
my %held;
for my $n (grep { $_ ne 'eu-west' } @NAMES) {
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 10);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => [options => "-c pgnear.region=$n"]);
    ok $r->{ok}, "session held open in $n";
    my $q = $w->query('SELECT current_setting(\'cluster_name\'), pg_backend_pid()');
    is $q->{rows}[0][0], $n, "held session is on $n";
    $held{$n} = { w => $w, pid => $r->{pid} };
}

sub check_held {
    my ($when) = @_;
    for my $n (sort keys %held) {
        my $q = eval { $held{$n}{w}->query('SELECT current_setting(\'cluster_name\'), pg_backend_pid()') };
        ok $q && !$q->{error} && !$q->{eof} && ($q->{status} // '') eq 'I',
          "held session in $n still answers $when" or diag($@ || explain($q));
        is $q && $q->{rows}[0][1], $held{$n}{pid}, "held session in $n is the same backend $when";
    }
}

# Hosts count as up from the start (health.h: "true until a check or a
# client says otherwise"): with every server reachable, no host changes
# state, so after HEALTH_RISE + 1 intervals the log has no up/down line.
{
    my $settle = ($HEALTH_RISE + 0.5) * $INTERVAL - (time - $t_p_started);
    sleep $settle if $settle > 0;
    my @changes = $p->log_contents =~ /^.*\bhost \S+ of region \S+ is (?:up|down)\b.*$/mg;
    is scalar(@changes), 0, 'no host changes state while every server is reachable'
      or diag join("\n", @changes);
}

# ---- eu-west goes away

my $off_p    = $p->log_size;
my $off_slow = $slow->log_size;
$eu->stop(mode => 'immediate');
my $t_stop = time;

# A caller that arrives before any check noticed: pgnear tries eu-west,
# is refused, and fails over inside the same login.
{
    my ($rc, $out, $err, $took) = dublin($slow);
    is $rc, 0, 'right after eu-west stopped, a Dublin caller still logs in';
    is $out, $FALLBACK, "... in $FALLBACK, the next nearest region";
    is $err, '', '... and psql reports nothing about the failed attempt';
    cmp_ok $took, '<', 3, sprintf('... without delay (%.2fs)', $took);
    my $log = log_since($slow, $off_slow);
    my $euhp = quotemeta($eu->hostport);
    like $log, qr/c\d+: server $euhp of region eu-west failed/, 'pgnear logs the failed attempt on eu-west';
    like $log, qr/c\d+: failing over to region \Q$FALLBACK\E/, "pgnear logs failing over to region $FALLBACK";
    like $log, host_re($eu, 'down'), 'the failed attempt marks the host down at once';
    unlike $log, qr/host \S+ of region (?!eu-west)\S+ is down/, 'no other host is marked down';
    ($rc, $out, $err) = dublin($slow);
    is $out, $FALLBACK, "the next Dublin caller goes straight to $FALLBACK";
    is $err, '', '... with nothing on stderr';
    my $n = () = log_since($slow, $off_slow) =~ /failing over to region/g;
    is $n, 1, '... without another failover';
}

# The 1-second checker finds it down within two intervals, with no client's help.
{
    my $m = $p->wait_for_log(host_re($eu, 'down'), offset => $off_p, timeout => 2 * $INTERVAL + 5);
    my $took = time - $t_stop;
    ok $m, 'the health check logs that eu-west is down';
    cmp_ok $took, '<=', 2 * $INTERVAL, sprintf('... within 2 x health_check_interval (%.2fs)', $took);
    unlike log_since($p, $off_p), qr/c\d+: (?:server|failing over)/, '... found by the check, no client involved';
}

# Dublin callers now go to the next nearest region, never trying eu-west.
for my $i (1 .. 3) {
    my $off = $p->log_size;
    my ($rc, $out, $err, $took) = dublin($p);
    is $rc, 0, "Dublin caller $i logs in while eu-west is down";
    is $out, $FALLBACK, "... and lands in $FALLBACK";
    is $err, '', '... psql reports nothing';
    cmp_ok $took, '<', 2, sprintf('... promptly (%.2fs)', $took);
    my $log = log_since($p, $off);
    unlike $log, qr/region eu-west failed|failing over/, '... eu-west was not even tried';
    like $log, qr/route: region \Q$FALLBACK\E, \d+ km away/, "... the plan starts with $FALLBACK";
}
check_held('after eu-west went down');

# ---- eu-west comes back

$off_p = $p->log_size;
my $t_starting = time;    # no check can have passed before this
$eu->start;
my $t_start = time;       # pg_ctl start -w returned: the server takes connections
{
    # Until HEALTH_RISE checks in a row passed, eu-west stays down for routing.
    my $was_up = log_since($p, $off_p) =~ host_re($eu, 'up');
    my ($rc, $out) = dublin($p);
    my $now_up = log_since($p, $off_p) =~ host_re($eu, 'up');
    ok !$was_up, 'eu-west is not up again the moment its server is back';
    ok $out eq $FALLBACK || $now_up,
      "a Dublin caller still goes to $FALLBACK until the checks pass ($out)";

    my $m = $p->wait_for_log(host_re($eu, 'up'), offset => $off_p, timeout => ($HEALTH_RISE + 1) * $INTERVAL + 5);
    my $now = time;
    my $took = $now - $t_start;
    ok $m, 'the health check logs that eu-west is up';
    cmp_ok $took, '<=', ($HEALTH_RISE + 1) * $INTERVAL + 0.5,
      sprintf('... within (HEALTH_RISE + 1) x health_check_interval of the server being ready (%.2fs)', $took);
    cmp_ok $now - $t_starting, '>=', ($HEALTH_RISE - 1) * $INTERVAL - 0.1,
      sprintf('... and not before HEALTH_RISE = %d checks passed (%.2fs after pg_ctl start began)',
              $HEALTH_RISE, $now - $t_starting);
    like log_since($p, $off_p), qr/is up: health checks pass again/, '... saying why';
}
for my $i (1 .. 2) {
    my ($rc, $out, $err) = dublin($p);
    is $rc, 0, "Dublin caller $i logs in after eu-west is back";
    is $out, 'eu-west', '... and returns to eu-west';
}
check_held('after eu-west came back');

# ---- a region whose first host is a dead port

{
    my $dead = free_port();    # reserved for us, nobody listens on it
    my $p2 = PgNearTest::Proxy->new(
        regions  => [region_def('eu-west', "127.0.0.1:$dead", $eu), region_def('us-east')],
        settings => { %settings, server_connect_timeout => '5s' });
    my $max = 0;
    for my $i (1 .. 5) {
        my ($rc, $out, $err, $took) = dublin($p2);
        is $rc, 0, "two-host region: session $i logs in";
        is $out, 'eu-west', '... on the second host of eu-west, not another region';
        is $err, '', '... with nothing on stderr';
        $max = $took if $took > $max;
    }
    cmp_ok $max, '<', 1, sprintf('no session waited for the dead host (slowest %.2fs)', $max);
    ok $p2->wait_for_log(qr/host 127\.0\.0\.1:$dead of region eu-west is down/, timeout => 2 * $INTERVAL),
      'the dead host is logged down (by its first check or the first session)';
    my $off = $p2->log_size;
    for my $i (1 .. 3) {
        my ($rc, $out) = dublin($p2);
        is $out, 'eu-west', "two-host region, dead host known: session $i on eu-west";
    }
    unlike log_since($p2, $off), qr/server 127\.0\.0\.1:$dead of region eu-west failed/,
      '... and the dead host is not tried any more';
    unlike $p2->log_contents, qr/failing over to region/, 'no session left the region';
    $p2->stop;
}

# ---- every region down

$off_p    = $p->log_size;
$off_slow = $slow->log_size;
$cl{$_}->stop(mode => 'immediate') for @NAMES;
my $t_all = time;

sub login_error {
    my ($proxy) = @_;
    my $t0 = time;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $proxy->port, timeout => 20);
    my $r = eval { $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                               params => [options => $DUBLIN]) };
    my $e = $@;
    my $took = time - $t0;
    eval { $w->terminate };
    return ($r, $e, $took);
}

{
    # pgnear with rare checks still believes most regions are up: every one is tried.
    my ($r, $e, $took) = login_error($slow);
    is $e, '', 'all regions stopped, checks not run: the login ends (no timeout)';
    ok $r && !$r->{ok}, '... and fails';
    is $r && $r->{error} && $r->{error}{C}, '08001', '... with 08001';
    like $r && $r->{error} && $r->{error}{M}, qr/could not connect/, '... saying it could not connect';
    cmp_ok $took, '<', 3, sprintf('... quickly (%.2fs)', $took);
}
{
    my $ok = wait_until(sub {
        my $log = log_since($p, $off_p);
        !grep { $log !~ host_re($cl{$_}, 'down') } @NAMES;
    }, timeout => 2 * $INTERVAL + 5);
    my $took = time - $t_all;
    ok $ok, 'the health checks log every region down';
    cmp_ok $took, '<=', 2 * $INTERVAL + 1, sprintf('... within about two intervals (%.2fs)', $took);
    my ($r, $e, $t) = login_error($p);
    is $e, '', 'all regions down: the login ends (no timeout)';
    ok $r && !$r->{ok}, '... and fails';
    is $r && $r->{error} && $r->{error}{C}, '08001', '... with 08001';
    cmp_ok $t, '<', 3, sprintf('... quickly (%.2fs)', $t);
    my ($rc, $out, $err, $pt) = dublin($p);
    isnt $rc, 0, 'psql fails too';
    like $err, qr/could not connect to any server/, '... with pgnear\'s message';
    cmp_ok $pt, '<', 3, sprintf('... quickly (%.2fs)', $pt);
}
ok $p->is_running && $slow->is_running, 'pgnear is still running';

done_testing;
