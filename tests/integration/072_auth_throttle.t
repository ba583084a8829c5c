# The auth throttle: failed logins are counted per (client address, user
# name); after auth_failure_threshold (3) in a row, the pair's next
# attempts wait before their authentication starts, auth_failure_delay
# doubling per failure up to auth_failure_max_delay.  The client sees the
# same 28P01 as without the throttle, only later; the log says how long
# each attempt was held.  Other addresses and other users are not slowed;
# the right password after failures waits its turn, succeeds, and resets
# the pair.  Many connections at once gain nothing: they are spaced, and
# those booked too far ahead get 53300 at once; a flood is logged at most
# 10 lines a second per worker.  With workers = 2 the count is shared.
# Under auth = passthrough the server's 28P01 counts.  Sources are
# loopback addresses (127.0.0.2 ...) the client binds to.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IO::Select;
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';

my @DELAYS = (0.2, 0.4, 0.8, 1.6, 1.6);    # auth_failure_delay 200ms doubling, auth_failure_max_delay 1600ms
my %THROTTLE = (auth_failure_delay => '200ms', auth_failure_max_delay => '1600ms');
my $SLACK = 0.05;                          # the failure reply's way to the client, measured from there
my $FAST  = 1.0;                           # "not slowed": well under the 1.6 s the guesser now waits

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin(q{CREATE ROLE bob LOGIN PASSWORD 'bob-secret'});
my $users = tmpdir(name => 'auth') . '/users.txt';
write_file($users, join('', map { qq{"$_" "} . $us->scram_verifier($_) . qq{"\n} } qw(app bob)));

my $p = PgNearTest::Proxy->new(regions => [$us],
                               settings => { auth => 'scram', auth_file => $users, server_tls => 'disable', %THROTTLE });

# One login from a source address: (result, seconds from connect to the end).
sub login {
    my ($proxy, $src, $user, $password) = @_;
    my $t0 = time;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $proxy->port, local_addr => $src, timeout => 20);
    my $r = $w->startup(user => $user, database => 'movr', password => $password);
    my $t1 = time;
    $w->terminate;
    return ($r, $t1 - $t0, $t1);
}

# The "held" lines of the pair since a log offset: ([ms, failures], ...).
sub held_lines {
    my ($proxy, $off, $src, $user) = @_;
    my $log = substr($proxy->log_contents, $off);
    my @m = $log =~ /login of user "\Q$user\E" from \Q$src\E:\d+ held for (\d+) ms: (\d+) failed logins in a row/g;
    return map { [@m[2 * $_, 2 * $_ + 1]] } 0 .. @m / 2 - 1;
}

sub wrong_ok {
    my ($r, $user, $what) = @_;
    ok !$r->{ok}, "$what: refused";
    is $r->{error} && $r->{error}{C}, '28P01', '... with 28P01, as without the throttle';
    is $r->{error} && $r->{error}{M}, qq{password authentication failed for user "$user"}, '... and the same message';
}

# ---- the guesser: 127.0.0.2 tries app's password

my $GUESSER = '127.0.0.2';
{
    my ($r, $took) = login($p, $GUESSER, 'app', 'app-secret');
    ok $r->{ok}, "right password from $GUESSER: logs in";
}

my $off = $p->log_size;
my $t_last;
for my $i (1 .. 3) {
    my ($r, $took, $t_end) = login($p, $GUESSER, 'app', "guess-$i");
    wrong_ok($r, 'app', "wrong password $i of 3");
    $t_last = $t_end;
}
is scalar(held_lines($p, $off, $GUESSER, 'app')), 0, 'the first 3 failures were not held';
like substr($p->log_contents, $off), qr/3 failed logins in a row for user "app" from \Q$GUESSER\E:\d+: its next attempts wait, from 200 ms/,
  'the log says the pair is throttled from now on';

my @gaps;
for my $i (0 .. $#DELAYS) {
    my $before = $p->log_size;
    my ($r, $took, $t_end) = login($p, $GUESSER, 'app', "guess-more-$i");
    wrong_ok($r, 'app', sprintf('failure %d', 4 + $i));
    my $gap = $t_end - $t_last;
    push @gaps, $gap;
    cmp_ok $gap, '>=', $DELAYS[$i] - $SLACK,
      sprintf('... came %.2fs after the last failure: at least the delay of %.1fs', $gap, $DELAYS[$i]);
    my ($ms, $n) = @{ (held_lines($p, $before, $GUESSER, 'app'))[0] // [] };
    ok defined $ms && $ms <= $DELAYS[$i] * 1000 && $ms >= $DELAYS[$i] * 500,
      sprintf('... the log says it was held %s ms (delay %d ms)', $ms // 'no', $DELAYS[$i] * 1000);
    is $n, 3 + $i, "... after " . (3 + $i) . " failures in a row";
    $t_last = $t_end;
}
cmp_ok $gaps[3], '>', $gaps[0] * 3, sprintf('the wait grows (%s s)', join(', ', map { sprintf '%.2f', $_ } @gaps));

# ---- nobody else is slowed

{
    my $before = $p->log_size;
    my ($r, $took) = login($p, '127.0.0.3', 'app', 'app-secret');
    ok $r->{ok}, 'app from another address (127.0.0.3): logs in';
    cmp_ok $took, '<', $FAST, sprintf('... not slowed (%.2fs)', $took);
    ($r, $took) = login($p, $GUESSER, 'bob', 'bob-secret');
    ok $r->{ok}, "another user (bob) from $GUESSER: logs in";
    cmp_ok $took, '<', $FAST, sprintf('... not slowed (%.2fs)', $took);
    ($r, $took) = login($p, '127.0.0.3', 'app', 'wrong');
    wrong_ok($r, 'app', 'a wrong password from 127.0.0.3');
    cmp_ok $took, '<', $FAST, sprintf('... not slowed either: the pair has its own count (%.2fs)', $took);
    unlike substr($p->log_contents, $before), qr/held for/, '... none of them was held';
}

# ---- the right password after failures: waits its turn, succeeds, resets

{
    my $before = $p->log_size;
    my ($r, $took, $t_end) = login($p, $GUESSER, 'app', 'app-secret');
    ok $r->{ok}, "the right password from $GUESSER after 8 failures: logs in";
    cmp_ok $t_end - $t_last, '>=', $DELAYS[-1] - $SLACK, sprintf('... after its wait (%.2fs)', $t_end - $t_last);
    my ($ms, $n) = @{ (held_lines($p, $before, $GUESSER, 'app'))[0] // [] };
    is $n, 8, '... held as the 9th attempt';
    ($r, $took) = login($p, $GUESSER, 'app', 'app-secret');
    ok $r->{ok}, 'the next login';
    cmp_ok $took, '<', $FAST, sprintf('... is not slowed: the success reset the pair (%.2fs)', $took);
    for my $i (1 .. 3) {
        ($r, $took) = login($p, $GUESSER, 'app', "again-$i");
    }
    is scalar(held_lines($p, $before, $GUESSER, 'app')), 1, '... and 3 new failures are free again';
}

# ---- many connections at once: spaced, and refused past the longest delay

# A connection from $src that has not sent anything yet.
sub connect_from {
    my ($src) = @_;
    return PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, local_addr => $src, timeout => 20);
}

{
    my $src = '127.0.0.4';
    my $t_fail;
    (undef, undef, $t_fail) = login($p, $src, 'app', "burst-$_") for 1 .. 4;    # the next attempts wait 400 ms each
    my $before = $p->log_size;
    # Connected first, so that the startup packets leave within a moment of each other.
    my @w = map { connect_from($src) } 1 .. 25;
    my $body = pack('N', 0x30000) . "user\0app\0database\0movr\0\0";
    my $t0 = time;
    $_->send_raw(pack('N', 4 + length $body) . $body) for @w;
    my $spread = time - $t0;
    my (@offered, @refused);
    my %of = map { fileno($_->socket) => $_ } @w;
    my $sel = IO::Select->new(map { $_->socket } @w);
    while ($sel->count && time - $t0 < 15) {
        for my $sock ($sel->can_read(1)) {
            my $w = $of{ fileno($sock) };
            my ($t, $m) = $w->read_msg;
            if (defined $t && $t eq 'R' && unpack('N', $m) == 10) { push @offered, time - $t_fail }
            elsif (defined $t && $t eq 'E') { push @refused, [PgNearTest::Wire::parse_fields($m), time - $t0] }
            $sel->remove($sock);
            $w->terminate;
        }
    }
    # Turns are booked 0.4, 0.8, 1.2 s ... after the last failure, and taken up to 1.6 s ahead:
    # 4 for packets that arrive at once, one more for each 0.4 s they arrive later.
    my $extra = int(($t0 + $spread - $t_fail) / 0.4);
    ok @offered >= 4 && @offered <= 4 + $extra,
      sprintf('25 attempts at once (sent %.2f to %.2fs after the last failure): %d get a turn, 4 + at most %d',
              $t0 - $t_fail, $t0 + $spread - $t_fail, scalar @offered, $extra)
      or diag "offered at @offered";
    @offered = sort { $a <=> $b } @offered;
    ok !grep({ $offered[$_] < 0.4 * ($_ + 1) - 0.1 } 0 .. $#offered),
      sprintf('... one per 400 ms, none before its turn (at %s s)', join(', ', map { sprintf '%.2f', $_ } @offered));
    is scalar(@refused), 25 - @offered, '... the others are refused';
    is scalar(grep { $_->[0]{C} eq '53300' } @refused), scalar(@refused), '... with 53300';
    is $refused[0] && $refused[0][0]{M}, 'too many failed login attempts for user "app" from this address',
      '... saying why';
    is scalar(grep { $_->[1] < $FAST } @refused), scalar(@refused), '... at once, not after a wait';
    my $log = substr($p->log_contents, $before);
    my $lines = () = $log =~ /login of user "app" from \Q$src\E:\d+ (?:held for|refused)/g;
    cmp_ok $lines, '<=', 10, "... and at most 10 of the 25 are logged that second ($lines)";
    sleep 1.1;
    $before = $p->log_size;
    login($p, $src, 'app', 'burst-again') for 1 .. 2;    # the second is held, and logged
    like substr($p->log_contents, $before), qr/held for \d+ ms: \d+ failed logins in a row from this address \((\d+) similar lines left out\)/,
      'the next line counts those left out';
}

# ---- workers = 2: the count is shared

{
    my $p2 = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'scram', auth_file => $users, server_tls => 'disable', workers => 2, %THROTTLE });
    my $src = '127.0.0.5';
    my ($t_end, $t_prev);
    my $before = $p2->log_size;
    for my $i (1 .. 6) {
        (undef, undef, $t_end) = login($p2, $src, 'app', "w2-$i");
        if ($i > 3) {
            cmp_ok $t_end - $t_prev, '>=', $DELAYS[$i - 4] - $SLACK,
              sprintf('workers = 2: failure %d waited its %.1fs whichever worker took it', $i, $DELAYS[$i - 4]);
        }
        $t_prev = $t_end;
    }
    my @ids = substr($p2->log_contents, $before) =~ /c(\d+): login of user "app" from \Q$src\E:\d+ held for/g;
    is scalar(@ids), 3, '... 3 attempts held';
    note 'held on worker(s) ' . join(', ', map { ($_ - 1) % 2 } @ids);
    my ($r, $took) = login($p2, '127.0.0.6', 'app', 'app-secret');
    ok $r->{ok} && $took < $FAST, sprintf('... another address is not slowed (%.2fs)', $took);
    $p2->stop;
}

# ---- auth = passthrough: the server's 28P01 counts

{
    my $pp = PgNearTest::Proxy->new(regions => [$us], settings => { auth => 'passthrough', server_tls => 'disable', %THROTTLE });
    my $src = '127.0.0.7';
    my $t_prev;
    for my $i (1 .. 4) {
        my ($r, $took, $t_end) = login($pp, $src, 'app', "pt-$i");
        wrong_ok($r, 'app', "passthrough: wrong password $i");
        cmp_ok $t_end - $t_prev, '>=', $DELAYS[0] - $SLACK, '... the 4th waited' if $i == 4;
        $t_prev = $t_end;
    }
    my $before = $pp->log_size;
    my ($r, $took, $t_end) = login($pp, $src, 'app', 'app-secret');
    ok $r->{ok}, 'passthrough: the right password then logs in';
    cmp_ok $t_end - $t_prev, '>=', $DELAYS[1] - $SLACK, '... after its wait';
    ($r, $took) = login($pp, $src, 'app', 'app-secret');
    ok $r->{ok} && $took < $FAST, sprintf('... and the next login is not slowed (%.2fs)', $took);
    is scalar(held_lines($pp, $before, $src, 'app')), 1, '... only the first was held';
    $pp->stop;
}

ok $p->is_running, 'pgnear is still running';
done_testing;
