# Query cancel through pgnear: libpq's cancel (DBD::Pg pg_cancel) over TCP
# and over the Unix socket ends a pg_sleep(20) with 57014 well before it
# would end (within 5 s: how fast is the machine's, and a sanitizer build
# on a busy one takes its time; a cancel lost or held for the sleep's end
# still fails);
# raw CancelRequests with the right key work under protocol 3.0 and 3.2;
# a wrong key, a wrong pid, a truncated key, another session's key, or the
# key of a session that has ended cancel nothing; pgnear logs every one.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use DBI;
use DBD::Pg qw(:async);
use PgNearTest;

require_tool('psql');

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $p  = PgNearTest::Proxy->new(regions => [$us],
                                settings => { auth => 'passthrough', server_tls => 'disable' });

sub count_matches {
    my ($text, $re) = @_;
    my $n = () = $text =~ /$re/g;
    return $n;
}

sub new_log { substr($p->log_contents, $_[0]) }

sub wire_login {
    my (%o) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret', %o);
    die 'Wire login through pgnear failed: ' . ($r->{error} ? $r->{error}{M} : 'eof') . "\n" unless $r->{ok};
    return ($w, $r);
}

# Reads the result of a simple query sent earlier: {error, tag, status}.
sub wire_result {
    my ($w) = @_;
    my %r;
    for (1 .. 10_000) {
        my ($t, $m) = $w->read_msg;
        if (!defined $t) { $r{eof} = 1; return \%r }
        if    ($t eq 'E') { $r{error} = PgNearTest::Wire::parse_fields($m) }
        elsif ($t eq 'C') { ($r{tag} = $m) =~ s/\0\z// }
        elsif ($t eq 'D') { $r{rows}++ }
        elsif ($t eq 'Z') { $r{status} = $m; return \%r }
    }
    die "wire_result: no ReadyForQuery\n";
}

my $cancel_ok_re = qr/c\d+: cancel request for c\d+ \(server process (\d+)\)/;
my $forwarded_re = qr/c\d+: cancel request forwarded to server/;
my $ignored_re   = qr/c\d+: cancel request for process (\d+) matches no session; ignored/;

# ====================================================== libpq cancel, TCP and Unix socket
for my $case (['TCP', $p->conninfo(application_name => 'cancel-tcp')],
              ['Unix socket', $p->conninfo(host => $p->socket_dir, application_name => 'cancel-unix')]) {
    my ($how, $ci) = @$case;
    my $dbh = dbi_connect($ci);
    ok $dbh, "$how: DBD::Pg connects through pgnear" or diag $DBI::errstr;
    next unless $dbh;
    my $pid = $dbh->{pg_pid};
    is $dbh->selectrow_array('SELECT pg_backend_pid()'), $pid, "$how: pg_pid is the real backend pid";
    my $off = $p->log_size;

    my $t_start = time;
    ok $dbh->do('SELECT pg_sleep(20)', { pg_async => PG_ASYNC }), "$how: async SELECT pg_sleep(20) sent";
    ok $us->wait_sleeping($pid), "$how: the server is running pg_sleep in process $pid";

    my $t0 = time;
    my $cancelled = $dbh->pg_cancel;
    my $dt = time - $t0;
    ok $cancelled, "$how: pg_cancel reports success" or diag $dbh->errstr;
    cmp_ok $dt, '<', 5, sprintf('%s: the query ended %.3fs after the cancel', $how, $dt);
    cmp_ok time - $t_start, '<', 10, "$how: well before pg_sleep(20) would have ended";
    is $dbh->state, '57014', "$how: SQLSTATE 57014" or diag $dbh->errstr;
    # (DBD::Pg's pg_cancel sets state but leaves errstr empty, straight to the server too.)
    is $dbh->selectrow_array('SELECT 42'), 42, "$how: the session is usable after the cancel";

    my $log = new_log($off);
    my ($logged_pid) = $log =~ $cancel_ok_re;
    is $logged_pid, $pid, "$how: pgnear logged the cancel request for server process $pid";
    ok wait_until(sub { new_log($off) =~ $forwarded_re }, timeout => 5), "$how: pgnear logged it forwarded";
    is count_matches(new_log($off), $ignored_re), 0, "$how: nothing ignored";
    $dbh->disconnect;
}

# ====================================================== raw CancelRequest, protocol 3.0 and 3.2
for my $proto ([3, 0], [3, 2]) {
    my $v = "$proto->[0].$proto->[1]";
    my ($w, $r) = wire_login(protocol => $proto);
    is length($r->{key}), ($proto->[1] >= 2 ? 32 : 4), "protocol $v: key length " . length($r->{key});
    my $off = $p->log_size;
    $w->send_msg('Q', "SELECT pg_sleep(20)\0");
    ok $us->wait_sleeping($r->{pid}), "protocol $v: pg_sleep(20) running";
    my $t0 = time;
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $r->{pid}, key => $r->{key});
    my $res = wire_result($w);
    my $dt = time - $t0;
    is sqlstate($res->{error}), '57014', "protocol $v: the query is cancelled (57014)";
    is $res->{error}{M}, 'canceling statement due to user request', "protocol $v: the server's message";
    cmp_ok $dt, '<', 5, sprintf('protocol %s: result %.3fs after the CancelRequest', $v, $dt);
    is $res->{status}, 'I', "protocol $v: ReadyForQuery, idle";
    is $w->query('SELECT 1')->{rows}[0][0], 1, "protocol $v: session usable";
    ok wait_until(sub { new_log($off) =~ $forwarded_re }, timeout => 5), "protocol $v: logged as forwarded";
    $w->terminate;
}

# ====================================================== a CancelRequest split across segments
{
    my ($w, $r) = wire_login();
    my $off = $p->log_size;
    $w->send_msg('Q', "SELECT pg_sleep(20)\0");
    ok $us->wait_sleeping($r->{pid}), 'split CancelRequest: pg_sleep(20) running';
    my $body = pack('NN', 80877102, $r->{pid}) . $r->{key};
    my $pkt  = pack('N', 4 + length $body) . $body;
    my $c = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    my $t0 = time;
    for my $piece (substr($pkt, 0, 3), substr($pkt, 3, 6), substr($pkt, 9)) {
        $c->send_raw($piece);
        sleep 0.15;
    }
    my $res = wire_result($w);
    my $dt = time - $t0;
    is sqlstate($res->{error}), '57014', 'a CancelRequest sent in three pieces is reassembled and honoured';
    cmp_ok $dt, '<', 5, sprintf('well before pg_sleep(20) would end (%.2fs from the first piece)', $dt);
    my $eof = eval { !defined $c->read_bytes(1) };
    ok $eof, 'pgnear closes the cancel connection without answering';
    close $c->socket;
    $w->terminate;
}

# ====================================================== wrong keys cancel nothing
{
    my ($w, $r) = wire_login();
    my ($other_w, $other) = wire_login();    # a live, idle session
    my $key = $r->{key};
    my $flip = sub { my ($k, $i) = @_; substr($k, $i, 1) = chr(ord(substr($k, $i, 1)) ^ 0x01); $k };
    my @bad = (
        ['right pid, wrong key (last byte)',  $r->{pid},     $flip->($key, 3)],
        ['right pid, wrong key (first byte)', $r->{pid},     $flip->($key, 0)],
        ['right key, wrong pid',              $r->{pid} + 1, $key],
        ['right pid, key of another session', $r->{pid},     $other->{key}],
        ['right pid, 32-byte key padded',     $r->{pid},     $key . ("\0" x 28)],
        ['another session pid and key mixed', $other->{pid}, $key],
    );
    my $off = $p->log_size;
    my $t0 = time;
    $w->send_msg('Q', "SELECT pg_sleep(3)\0");
    ok $us->wait_sleeping($r->{pid}), 'pg_sleep(3) running';
    for my $b (@bad) {
        PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $b->[1], key => $b->[2]);
    }
    ok wait_until(sub { count_matches(new_log($off), $ignored_re) >= @bad }, timeout => 10),
        'pgnear logged every bad cancel request as matching no session'
        or diag new_log($off);
    my $res = wire_result($w);
    my $dt = time - $t0;
    ok !$res->{error}, 'pg_sleep(3) was not cancelled by any of: ' . join('; ', map { $_->[0] } @bad)
        or diag explain $res->{error};
    is $res->{tag}, 'SELECT 1', 'pg_sleep(3) completed normally';
    cmp_ok $dt, '>=', 2.9, sprintf('it ran its full 3 s (%.2fs)', $dt);
    my $log = new_log($off);
    is count_matches($log, $cancel_ok_re), 0, 'no bad cancel request was matched to a session';
    is count_matches($log, $forwarded_re), 0, 'none was forwarded to the server';
    is count_matches($log, $ignored_re), scalar(@bad), scalar(@bad) . ' logged as ignored';
    my $q = $other_w->query('SELECT 1');
    ok !$q->{error}, 'the other session is unaffected';
    $w->terminate;
    $other_w->terminate;
}

# ====================================================== the key of an ended session
{
    my ($wa, $ra) = wire_login();
    my ($a_pid, $a_key) = ($ra->{pid}, $ra->{key});
    is $wa->query('SELECT pg_backend_pid()')->{rows}[0][0], $a_pid, "session A on server process $a_pid";
    $wa->terminate;
    ok wait_until(sub {
        $us->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE pid = $a_pid") eq '0'
    }, timeout => 5), "session A's server process $a_pid has gone";

    my ($wb, $rb) = wire_login();
    my $b_pid = $rb->{pid};
    note "session B on server process $b_pid" . ($b_pid == $a_pid ? ' (the same pid as A)' : '');
    my $off = $p->log_size;
    my $t0 = time;
    $wb->send_msg('Q', "SELECT pg_sleep(2)\0");
    ok $us->wait_sleeping($b_pid), 'session B runs pg_sleep(2)';
    # A's pid and key; and A's key with B's pid, as if the server had reused A's pid for B.
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $a_pid, key => $a_key);
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $b_pid, key => $a_key);
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $a_pid, key => $a_key,
                             socket_dir => $p->socket_dir);
    ok wait_until(sub { count_matches(new_log($off), $ignored_re) >= 3 }, timeout => 10),
        "CancelRequests with A's key (TCP and Unix socket) logged as matching no session"
        or diag new_log($off);
    my $res = wire_result($wb);
    my $dt = time - $t0;
    ok !$res->{error}, "B's pg_sleep(2) was not cancelled by A's old key" or diag explain $res->{error};
    is $res->{tag}, 'SELECT 1', "B's query succeeded";
    cmp_ok $dt, '>=', 1.9, sprintf('it ran its full 2 s (%.2fs)', $dt);
    is count_matches(new_log($off), $forwarded_re), 0, 'nothing forwarded to the server';

    # B's own key still works afterwards.
    $wb->send_msg('Q', "SELECT pg_sleep(20)\0");
    ok $us->wait_sleeping($b_pid), 'B runs pg_sleep(20)';
    $t0 = time;
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $b_pid, key => $rb->{key},
                             socket_dir => $p->socket_dir);
    $res = wire_result($wb);
    is sqlstate($res->{error}), '57014', "B's own key, over the Unix socket, cancels it";
    cmp_ok time - $t0, '<', 5, 'well before pg_sleep(20) would end';
    $wb->terminate;
}

# ====================================================== totals in the log
{
    my $log = $p->log_contents;
    my $ok  = count_matches($log, $cancel_ok_re);
    my $fwd = count_matches($log, $forwarded_re);
    my $ign = count_matches($log, $ignored_re);
    note "log: $ok matched, $fwd forwarded, $ign ignored";
    is $ok, 6, 'pgnear matched 6 cancel requests (2 libpq, 2 raw, 1 split, 1 by B)';
    is $fwd, 6, 'and forwarded 6';
    is $ign, 9, 'and ignored 9 (6 bad keys, 3 stale)';
}

ok $p->is_running, 'pgnear is still running';

done_testing;
