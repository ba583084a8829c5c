# health_check_fall: a health check that times out does not take a host
# down by itself; health_check_fall (default 3) timeouts in a row do.  A
# userspace relay in front of us-east stalls chosen health checks (it
# knows them by their application_name) past health_check_timeout:
# one or two stalled checks leave the host up and sessions keep going
# there; a passing check, or a session that logs in through the host,
# starts the count again; three in a row take it down, sessions go to
# the next region, and a login through the host brings it back at once.
# A session whose server does not answer in time counts like a check.
# A reload changes the fall.  A refused connection (the relay gone) and a
# reset one still take the host down at the first check.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

my $INTERVAL = 1;      # seconds: health_check_interval
my $TIMEOUT  = 0.6;    # seconds: health_check_timeout
my $CHECK    = 'pgnear health check';    # the checks' application_name, as the relay sees it

my $us    = PgNearTest::Cluster->new(name => 'us-east');
my $eu    = PgNearTest::Cluster->new(name => 'eu-west');
my $relay = PgNearTest::Relay->new(to => $us->port);
my $p = PgNearTest::Proxy->new(
    regions  => [{ name => 'us-east', location => $us->location, hosts => [$relay->hostport] }, $eu],
    settings => { auth => 'passthrough', server_tls => 'disable',
                  health_check_interval => "${INTERVAL}s", health_check_timeout => ($TIMEOUT * 1000) . 'ms',
                  server_connect_timeout => '1s' });

my $HOST = quotemeta($relay->hostport) . ' of region us-east';
my $NEAR_US = '-c pgnear.location=38.9,-77.0';    # Washington: us-east is nearest, eu-west next

# Where a caller near us-east lands (cluster_name), or the error.
sub us_caller {
    my ($options) = @_;
    my ($rc, $out, $err) = psql($p->conninfo(options => $options // $NEAR_US), 'SHOW cluster_name', timeout => 20);
    return $rc == 0 ? $out : "error: $err";
}

sub log_since { substr($p->log_contents, $_[0]) }
sub count_of  { my ($word) = @_; scalar grep { $_ eq $word } $relay->intercepted }

# Waits until the relay has let $n more checks through than $before.
sub wait_passes {
    my ($before, $n) = @_;
    return wait_until(sub { count_of('pass') >= $before + $n }, timeout => ($n + 3) * $INTERVAL + 5, interval => 0.05);
}

# The timeout lines "(k of N)" since an offset, as a list of k.
sub timeout_counts {
    my ($off, $fall) = @_;
    return log_since($off) =~ /health check of host $HOST timed out \((\d+) of $fall\); it stays up/g;
}

# ---- all is well: checks pass through the relay, callers land in us-east

$relay->intercept(match => $CHECK, count => 0);
ok wait_passes(0, 2), 'health checks pass through the relay';
is us_caller(), 'us-east', 'a caller near us-east lands there';
unlike $p->config_text, qr/health_check_fall/, 'health_check_fall is not set: its default applies';

# ---- one stalled check: counted, the host stays up

{
    my $off = $p->log_size;
    my $passes = count_of('pass');
    $relay->intercept(match => $CHECK, count => 1);
    ok $p->wait_for_log(qr/health check of host $HOST timed out \(1 of 3\); it stays up for now/,
                        offset => $off, timeout => 3 * $INTERVAL + 5),
      'a stalled check is logged as timeout 1 of 3 (the default health_check_fall)';
    is count_of('stall'), 1, '... the relay stalled exactly one check';
    is us_caller(), 'us-east', '... and callers still land in us-east';
    ok wait_passes($passes, 1), 'the next check passes';
    unlike log_since($off), qr/host $HOST is (?:down|up)/, 'one timeout takes nothing down (no up/down line)';
}

# ---- two in a row: still up; a passing check then starts the count again

{
    my $off = $p->log_size;
    my $passes = count_of('pass');
    $relay->intercept(match => $CHECK, count => 2);
    ok $p->wait_for_log(qr/timed out \(2 of 3\)/, offset => $off, timeout => 4 * $INTERVAL + 5),
      'two stalled checks in a row: timeout 2 of 3';
    is_deeply [timeout_counts($off, 3)], [1, 2], '... counted 1, then 2';
    is us_caller(), 'us-east', '... callers still land in us-east';
    ok wait_passes($passes, 1), 'then a check passes';

    $off = $p->log_size;
    $passes = count_of('pass');
    $relay->intercept(match => $CHECK, count => 2);
    ok $p->wait_for_log(qr/timed out \(2 of 3\)/, offset => $off, timeout => 4 * $INTERVAL + 5),
      'two more stalled checks';
    is_deeply [timeout_counts($off, 3)], [1, 2], '... counted from 1 again: the passing check reset the count';
    ok wait_passes($passes, 1), '... and a check passes';
    unlike log_since(0), qr/host $HOST is down/, 'four timeouts, never three in a row: never down';
}

# ---- a session's own timeout counts with the checks

{
    my $off = $p->log_size;
    my $passes = count_of('pass');
    my $stalls = count_of('stall');
    $relay->intercept(match => 'stalled-app', count => 1);
    my $t0 = time;
    my ($rc, $out, $err) = psql($p->conninfo(options => $NEAR_US, application_name => 'stalled-app'),
                                'SHOW cluster_name', timeout => 20);
    my $took = time - $t0;
    is count_of('stall'), $stalls + 1, 'the relay stalled the session\'s server connection';
    is $out, 'eu-west', '... the session fails over to eu-west after server_connect_timeout';
    cmp_ok $took, '<', 10, sprintf('... promptly (%.1fs)', $took);
    like log_since($off), qr/c\d+: host $HOST timed out \(1 of 3\); it stays up for now/,
      '... and its timeout is counted (1 of 3), not a down';
    unlike log_since($off), qr/host $HOST is down/, '... the host stays up';
    $relay->intercept(match => $CHECK, count => 0);
    ok wait_passes($passes, 1), 'checks go on passing';
}

# ---- logins through the host reset the count between stalled checks

{
    my $off = $p->log_size;
    $relay->intercept(match => $CHECK, count => 1000);
    my @landed;
    for my $k (1 .. 4) {
        wait_until(sub { my @c = timeout_counts($off, 3); @c >= $k }, timeout => 3 * $INTERVAL + 5, interval => 0.05)
          or last;
        push @landed, us_caller();
    }
    my @counts = timeout_counts($off, 3);
    cmp_ok scalar(@counts), '>=', 4, 'four stalled checks in a row, each followed by a login through the host';
    is_deeply \@landed, [('us-east') x 4], '... every caller landed in us-east';
    unlike log_since($off), qr/host $HOST is down/, '... and the host never went down';
    cmp_ok scalar(grep { $_ == 1 } @counts), '>=', 2, '... the count started again at 1 after a login'
      or diag "counts: @counts";

    # ---- without logins, three in a row take it down
    $off = $p->log_size;
    my $t0 = time;
    ok $p->wait_for_log(qr/host $HOST is down: health check timed out \(3 in a row, health_check_fall = 3\)/,
                        offset => $off, timeout => 5 * $INTERVAL + 5),
      'no logins: the third timeout in a row takes the host down';
    my $took = time - $t0;
    cmp_ok $took, '<=', 3 * $INTERVAL + 2, sprintf('... within three intervals (%.1fs)', $took);
    my @before_down = timeout_counts($off, 3);
    is_deeply [@before_down[-2, -1]], [1, 2], '... after timeouts 1 and 2 of 3' or diag "@before_down";
    is us_caller(), 'eu-west', 'callers near us-east now go to eu-west';

    # ---- a login through the down host brings it up at once
    $off = $p->log_size;
    is us_caller('-c pgnear.region=us-east'), 'us-east', 'a caller that names us-east still reaches it';
    like log_since($off), qr/c\d+: host $HOST is up: a session logged in through it/,
      '... and that login brings the host up';
    is us_caller(), 'us-east', 'callers near us-east land there again';
    ok $p->wait_for_log(qr/timed out \(1 of 3\)/, offset => $off, timeout => 3 * $INTERVAL + 5),
      'the checks, still stalled, count from 1 again';

    $relay->intercept(match => $CHECK, count => 0);
    my $passes = count_of('pass');
    ok wait_passes($passes, 3), 'the stall ends: checks pass';
}

# ---- a reload changes the fall

{
    my $off = $p->log_size;
    $p->update_config(settings => { health_check_fall => 1 });
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded/, offset => $off), 'reload with health_check_fall = 1';
    $relay->intercept(match => $CHECK, count => 1);
    ok $p->wait_for_log(qr/host $HOST is down: health check timed out \(1 in a row, health_check_fall = 1\)/,
                        offset => $off, timeout => 3 * $INTERVAL + 5),
      '... one stalled check takes the host down';
    unlike log_since($off), qr/timed out \(\d+ of/, '... with no "stays up" line';
    ok $p->wait_for_log(qr/host $HOST is up: health checks pass again/, offset => $off, timeout => 4 * $INTERVAL + 5),
      'it comes back after the checks pass';
    $p->update_config(settings => { health_check_fall => undef });
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded.*\n(?s:.*)configuration reloaded/, offset => $off),
      'reload back to the default';
}

# ---- hard errors take the host down at the first check

{
    my $off = $p->log_size;
    $relay->intercept(match => $CHECK, count => 1, action => 'reset');
    ok $p->wait_for_log(qr/host $HOST is down/, offset => $off, timeout => 3 * $INTERVAL + 5),
      'a reset check takes the host down at once';
    is count_of('reset'), 1, '... after one reset';
    unlike log_since($off), qr/timed out/, '... it is not a timeout';
    ok $p->wait_for_log(qr/host $HOST is up: health checks pass again/, offset => $off, timeout => 4 * $INTERVAL + 5),
      '... and it comes back';

    $off = $p->log_size;
    $relay->stop;
    my $t0 = time;
    ok $p->wait_for_log(qr/host $HOST is down: .*refused/, offset => $off, timeout => 2 * $INTERVAL + 5),
      'the relay gone: the refused check takes the host down';
    cmp_ok time - $t0, '<=', $INTERVAL + 1, '... at the first check';
    unlike log_since($off), qr/timed out/, '... no timeout counted';
    is us_caller(), 'eu-west', 'callers near us-east go to eu-west';
}

ok $p->is_running, 'pgnear is still running';
done_testing;
