# health_check_fall: a health check that times out does not take a host
# down by itself; health_check_fall (default 3) timeouts in a row do.  A
# userspace relay in front of us-east stalls chosen health checks (it
# knows them by their application_name) past health_check_timeout:
# one or two stalled checks leave the host up and sessions keep going
# there; a passing check, or a session that logs in through the host,
# starts the count again; three in a row take it down, sessions go to
# the next region, and a login through the host brings it back at once.
# A session whose server does not answer in time counts like a check.
# A reload changes the fall.  A reset connection and a refused one (the
# relay gone) still take the host down at the first check.  Here every
# check logs in (health_check_login_interval = 0), so that the relay can
# pick checks by their connection.  Last, on a connection kept between
# checks (the default): a kept connection that is lost is replaced by a
# fresh login without taking the host down, and a frozen server (SIGSTOP)
# goes down at the same fall-th timeout, a login meanwhile never told the
# host answers other connections (its kept check's timeout is no answer).
#
# On a busy machine a check the relay let through may time out by itself
# — the very thing health_check_fall is for — and spoil a phase's exact
# counts; such a phase is run again from a settled state (at most 3 times).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

my $INTERVAL = 1;      # seconds: health_check_interval
my $TIMEOUT  = 0.8;    # seconds: health_check_timeout
my $CHECK    = 'pgnear health check';    # the checks' application_name, as the relay sees it

my $us    = PgNearTest::Cluster->new(name => 'us-east');
my $eu    = PgNearTest::Cluster->new(name => 'eu-west');
my $relay = PgNearTest::Relay->new(to => $us->port);
my $p = PgNearTest::Proxy->new(
    regions  => [{ name => 'us-east', location => $us->location, hosts => [$relay->hostport] }, $eu],
    settings => { auth => 'passthrough', server_tls => 'disable',
                  health_check_interval => "${INTERVAL}s", health_check_timeout => ($TIMEOUT * 1000) . 'ms',
                  health_check_login_interval => 0, server_connect_timeout => '1s' });

my $HOST = quotemeta($relay->hostport) . ' of region us-east';
my $NEAR_US = '-c pgnear.location=38.9,-77.0';    # Washington: us-east is nearest, eu-west next

# Where a caller near us-east lands (cluster_name), or the error.
sub us_caller {
    my ($options, %conn) = @_;
    my ($rc, $out, $err) = psql($p->conninfo(options => $options // $NEAR_US, %conn), 'SHOW cluster_name', timeout => 20);
    return $rc == 0 ? $out : "error: $err";
}

sub log_since { substr($p->log_contents, $_[0]) }
sub count_of  { my ($word) = @_; scalar grep { $_ eq $word } $relay->intercepted }

# Waits until the relay has let $n more checks through than $before.
sub wait_passes {
    my ($before, $n) = @_;
    return wait_until(sub { count_of('pass') >= $before + $n }, timeout => ($n + 3) * $INTERVAL + 5, interval => 0.05);
}

# The health checks' "(k of N)" timeout lines since an offset, as a list of k.
sub timeout_counts {
    my ($off, $fall) = @_;
    return log_since($off) =~ /health check of host $HOST timed out \((\d+) of $fall\); it stays up/g;
}

# Health-check timeouts logged since an offset (counted, or one that took a host down), of
# every host: eu-west's checks never meet the relay, so a timeout of theirs says the machine
# was too slow for health_check_timeout, and so may us-east's unstalled ones have been.
sub logged_timeouts {
    my ($off) = @_;
    my $log = log_since($off);
    my $n = () = $log =~ /health check of host \S+ of region \S+ timed out \(\d+ of \d+\)|host \S+ of region \S+ is down: health check timed out/g;
    return $n;
}

sub host_is_up_by_log {
    my @said = $p->log_contents =~ /host $HOST is (up|down)/g;
    return !@said || $said[-1] eq 'up';
}

# ---- the phase runner: assertions are collected, and given once the phase ran clean

my @checks;
sub check    { my ($ok, $name, $diag) = @_; push @checks, [$ok ? 1 : 0, $name, $diag]; return $ok }
sub check_is { my ($got, $want, $name) = @_; check(defined $got && $got eq $want, $name, "got '" . ($got // 'undef') . "', expected '$want'") }

# The host up, its count at 0 (a check passed since it was last stalled), no intercept armed.
# A pass at the relay is a check's start, and the check that starts after it proves that it
# ended (one check of a host at a time): only a check that ended in time set the count back
# to 0.  Settled is two such passes with no timeout or down of us-east logged since before the
# first; a machine too busy for health_check_timeout makes the pair again (bounded).
sub settle {
    $relay->intercept(match => $CHECK, count => 0);
    for my $try (1 .. 5) {
        wait_until(\&host_is_up_by_log, timeout => 5 * $INTERVAL + 5, interval => 0.05)
          or BAIL_OUT('us-east never came back up');
        my $off = $p->log_size;
        wait_passes(count_of('pass'), 2) or BAIL_OUT('no health check passes through the relay');
        return if log_since($off) !~ /check of host $HOST timed out \(|host $HOST is down/;
        note "settle: a check of us-east timed out or took it down by itself; again";
    }
}

# $code->($offset) runs the phase and returns how many of the relay's stalls
# in it were not health checks.
sub phase {
    my ($name, $code) = @_;
    for my $try (1 .. 3) {
        settle();
        @checks = ();
        my ($off, $stalls) = ($p->log_size, count_of('stall'));
        my $other = $code->($off) // 0;
        my $spurious = logged_timeouts($off) - (count_of('stall') - $stalls - $other);
        if ($spurious <= 0 || $try == 3) {
            note "$name: $spurious check(s) timed out by themselves on the last try" if $spurious > 0;
            ok($_->[0], $_->[1]) or diag($_->[2] // '') for @checks;
            return;
        }
        note "$name: $spurious check(s) the relay let through timed out by themselves; again";
    }
}

# ---- all is well: checks pass through the relay, callers land in us-east

$relay->intercept(match => $CHECK, count => 0);
ok wait_passes(0, 2), 'health checks pass through the relay';
is us_caller(), 'us-east', 'a caller near us-east lands there';
unlike $p->config_text, qr/health_check_fall/, 'health_check_fall is not set: its default applies';

phase('one stalled check', sub {
    my ($off) = @_;
    my ($passes, $stalls) = (count_of('pass'), count_of('stall'));
    $relay->intercept(match => $CHECK, count => 1);
    check $p->wait_for_log(qr/health check of host $HOST timed out \(1 of 3\); it stays up for now/,
                           offset => $off, timeout => 3 * $INTERVAL + 5),
      'a stalled check is logged as timeout 1 of 3 (the default health_check_fall)';
    check_is count_of('stall') - $stalls, 1, '... the relay stalled exactly one check';
    check_is us_caller(), 'us-east', '... and callers still land in us-east';
    check wait_passes($passes, 1), 'the next check passes';
    check log_since($off) !~ /host $HOST is (?:down|up)/, 'one timeout takes nothing down (no up/down line)';
    return 0;
});

phase('two in a row, twice', sub {
    my ($off) = @_;
    my $passes = count_of('pass');
    $relay->intercept(match => $CHECK, count => 2);
    check $p->wait_for_log(qr/timed out \(2 of 3\)/, offset => $off, timeout => 4 * $INTERVAL + 5),
      'two stalled checks in a row: timeout 2 of 3';
    check_is join(',', timeout_counts($off, 3)), '1,2', '... counted 1, then 2';
    check_is us_caller(), 'us-east', '... callers still land in us-east';
    check wait_passes($passes, 1), 'then a check passes';

    my $off2 = $p->log_size;
    $passes = count_of('pass');
    $relay->intercept(match => $CHECK, count => 2);
    check $p->wait_for_log(qr/timed out \(2 of 3\)/, offset => $off2, timeout => 4 * $INTERVAL + 5),
      'two more stalled checks';
    check_is join(',', timeout_counts($off2, 3)), '1,2', '... counted from 1 again: the passing check reset the count';
    check wait_passes($passes, 1), '... and a check passes';
    check log_since($off) !~ /host $HOST is down/, 'four timeouts, never three in a row: never down';
    return 0;
});

phase('a session times out', sub {
    my ($off) = @_;
    my $stalls = count_of('stall');
    $relay->intercept(match => 'stalled-app', count => 1);
    my $t0 = time;
    my $out = us_caller(undef, application_name => 'stalled-app');
    my $took = time - $t0;
    my $stalled = count_of('stall') - $stalls;
    check_is $stalled, 1, 'the relay stalled the session\'s server connection';
    check_is $out, 'eu-west', '... the session fails over to eu-west after server_connect_timeout';
    check $took < 10, sprintf('... promptly (%.1fs)', $took);
    check log_since($off) =~ /c\d+: host $HOST timed out \(1 of 3\); it stays up for now/,
      '... and its timeout is counted (1 of 3), not a down';
    check log_since($off) !~ /host $HOST is down/, '... the host stays up';
    return $stalled;
});

phase('logins between stalled checks, then none', sub {
    my ($off) = @_;
    $relay->intercept(match => $CHECK, count => 1000);    # every check stalls: none can time out by itself
    my @landed;
    for my $k (1 .. 4) {
        wait_until(sub { my @c = timeout_counts($off, 3); @c >= $k }, timeout => 3 * $INTERVAL + 5, interval => 0.05)
          or last;
        push @landed, us_caller();
    }
    my @counts = timeout_counts($off, 3);
    check @counts >= 4, 'four stalled checks in a row, each followed by a login through the host';
    check_is join(',', @landed), join(',', ('us-east') x 4), '... every caller landed in us-east';
    check log_since($off) !~ /host $HOST is down/, '... and the host never went down';
    check scalar(grep { $_ == 1 } @counts) >= 2, '... the count started again at 1 after a login', "counts: @counts";

    # Without logins, three in a row take it down.
    my $off2 = $p->log_size;
    my $t0 = time;
    check $p->wait_for_log(qr/host $HOST is down: health check timed out \(3 in a row, health_check_fall = 3\)/,
                           offset => $off2, timeout => 5 * $INTERVAL + 5),
      'no logins: the third timeout in a row takes the host down';
    my $took = time - $t0;
    check $took <= 3 * $INTERVAL + 2, sprintf('... within three intervals (%.1fs)', $took);
    my @before_down = timeout_counts($off2, 3);
    check_is join(',', @before_down[-2, -1]), '1,2', '... after timeouts 1 and 2 of 3';
    check_is us_caller(), 'eu-west', 'callers near us-east now go to eu-west';

    # A login through the down host brings it up at once.
    my $off3 = $p->log_size;
    check_is us_caller('-c pgnear.region=us-east'), 'us-east', 'a caller that names us-east still reaches it';
    check log_since($off3) =~ /c\d+: host $HOST is up: a session logged in through it/,
      '... and that login brings the host up';
    check_is us_caller(), 'us-east', 'callers near us-east land there again';
    check $p->wait_for_log(qr/timed out \(1 of 3\)/, offset => $off3, timeout => 3 * $INTERVAL + 5),
      'the checks, still stalled, count from 1 again';
    $relay->intercept(match => $CHECK, count => 0);
    return 0;
});

phase('health_check_fall = 1 by reload', sub {
    my ($off) = @_;
    $p->update_config(settings => { health_check_fall => 1 });
    $p->signal('HUP');
    check $p->wait_for_log(qr/configuration reloaded/, offset => $off), 'reload with health_check_fall = 1';
    # A check passes under the new configuration first: the count of timeouts starts at 0,
    # whatever a busy machine made of the checks before the reload.
    wait_passes(count_of('pass'), 1);
    $relay->intercept(match => $CHECK, count => 1);
    check $p->wait_for_log(qr/host $HOST is down: health check timed out \(1 in a row, health_check_fall = 1\)/,
                           offset => $off, timeout => 3 * $INTERVAL + 5),
      '... one stalled check takes the host down';
    check log_since($off) !~ /timed out \(\d+ of/, '... with no "stays up" line';
    check $p->wait_for_log(qr/host $HOST is up: health checks pass again/, offset => $off, timeout => 4 * $INTERVAL + 5),
      'it comes back after the checks pass';
    return 0;
});
{
    my $off = $p->log_size;
    $p->update_config(settings => { health_check_fall => undef });
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded/, offset => $off), 'reload back to the default';
}

phase('a reset check', sub {
    my ($off) = @_;
    my $resets = count_of('reset');
    $relay->intercept(match => $CHECK, count => 1, action => 'reset');
    check $p->wait_for_log(qr/host $HOST is down/, offset => $off, timeout => 3 * $INTERVAL + 5),
      'a reset check takes the host down at once';
    check_is count_of('reset') - $resets, 1, '... after one reset';
    check log_since($off) !~ /timed out/, '... it is not a timeout';
    check $p->wait_for_log(qr/host $HOST is up: health checks pass again/, offset => $off, timeout => 4 * $INTERVAL + 5),
      '... and it comes back';
    return 0;
});

# ---- a refused connection: the relay gone (last: it cannot be undone)

{
    settle();
    # A check the relay let through is still in flight for a moment, and stopping the relay
    # then cuts it ("server closed the connection"): stop between two checks instead, so
    # that the next one is refused.
    wait_passes(count_of('pass'), 1) or BAIL_OUT('no health check passes through the relay');
    sleep 0.4 * $INTERVAL;
    my $off = $p->log_size;
    $relay->stop;
    my $t0 = time;
    ok $p->wait_for_log(qr/host $HOST is down: .*refused/, offset => $off, timeout => 2 * $INTERVAL + 5),
      'the relay gone: the refused check takes the host down';
    cmp_ok time - $t0, '<=', $INTERVAL + 1, '... at the first check';
    unlike log_since($off), qr/host $HOST timed out|health check of host $HOST timed out/, '... no timeout counted';
    is us_caller(), 'eu-west', 'callers near us-east go to eu-west';
}

ok $p->is_running, 'pgnear is still running';
$p->stop;

# ---- checks on a kept connection (health_check_login_interval's default)

my $relay2 = PgNearTest::Relay->new(to => $us->port);
my $k = PgNearTest::Proxy->new(
    regions  => [{ name => 'us-east', location => $us->location, hosts => [$relay2->hostport] }],
    settings => { auth => 'passthrough', server_tls => 'disable', health_check_interval => "${INTERVAL}s",
                  health_check_timeout => ($TIMEOUT * 1000) . 'ms', server_connect_timeout => '2s' });
my $KHOST = quotemeta($relay2->hostport) . ' of region us-east';
my $check_pid = sub {
    $us->psql_admin("SELECT pid FROM pg_stat_activity WHERE application_name = '$CHECK' AND state = 'idle'");
};
my $kept;
ok wait_until(sub { ($kept = $check_pid->()) ne '' }, timeout => 10), 'kept: the checks keep a connection';
# From the sever on (a first login slowed past the timeout by a loaded machine is not this case).
my $koff = $k->log_size;
$relay2->sever;
ok wait_until(sub { my $now = $check_pid->(); $now ne '' && $now != $kept }, timeout => 3 * $INTERVAL + 5),
   'kept: a kept connection lost on the way is replaced by a fresh login';
unlike substr($k->log_contents, $koff), qr/host $KHOST is down|timed out/,
  '... and the host was never down, no timeout counted';

# A frozen server: the postmaster and its processes stopped.
sub parent_of {
    my $stat = eval { slurp_file("/proc/$_[0]/stat") } // return 0;
    return (split ' ', $stat =~ s/^.*\) //sr)[1];    # after "pid (comm) state"
}
my $pm = $us->pid;
my @frozen = ($pm, grep { parent_of($_) == $pm } map { m{/proc/(\d+)$} ? $1 : () } glob '/proc/[0-9]*');
my $off = $k->log_size;
kill 'STOP', @frozen;
my $t0 = time;
# A login meanwhile: nothing answers, so nothing may make the host look busy to it (the kept
# connection's timed-out check once counted as an answer: its password was asked at its login).
my $login = IPC::Run::start([require_tool('psql'), '-X', '-c', 'SELECT 1', $k->conninfo(connect_timeout => 20)],
                            '>', \my $login_out, '2>', \my $login_err);
# (The login's own timeout counts too, and may be the third.)
my $down = $k->wait_for_log(qr/host $KHOST is down: (?:health check timed out \(3 in a row|timeout$)/m, offset => $off,
                            timeout => 3 * $INTERVAL + 5);
my $took = time - $t0;
sleep 2.5 - (time - $t0) if time - $t0 < 2.5; # the login's server_connect_timeout passed while frozen
my $frozen_log = substr($k->log_contents, $off);
kill 'CONT', @frozen;
$login->finish;
unlike $frozen_log, qr/answers other connections/, 'kept: while frozen, no login is told the host answers others'
  or diag $frozen_log;
ok $down, 'kept: a frozen server goes down at the third timeout in a row';
cmp_ok $took, '<=', 3 * $INTERVAL + $TIMEOUT + 1, sprintf('... within 3 intervals and a timeout (%.1f s)', $took);
like substr($k->log_contents, $off), qr/host $KHOST timed out \(1 of 3\)/, '... the first on the kept connection';
ok $k->wait_for_log(qr/host $KHOST is up: health checks pass again/, offset => $off, timeout => 4 * $INTERVAL + 5),
   '... and it comes back once it runs again';

done_testing;
