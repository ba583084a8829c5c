# Bad input from clients: nothing a client sends may crash or stall pgnear,
# and other clients keep working.  Malformed startup packets, random bytes,
# a bad message length after login, half-open connections and the login
# timeout, max_client_conn.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IO::Select;
use IO::Socket::IP;
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';    # writes to a connection pgnear closed must not kill us

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $p  = PgNearTest::Proxy->new(regions => [$us],
                                settings => { auth => 'passthrough', server_tls => 'disable',
                                              client_login_timeout => '2s' });

is psql($p->conninfo, 'SELECT 1'), '1', 'pgnear works before the abuse';

# ------------------------------------------------------------------ helpers

sub wire { PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 5, @_) }

# What the connection does next, within the Wire timeout:
# {kind => 'msg', type =>, fields =>} | {kind => 'eof'} | {kind => 'reset', why =>}
# | {kind => 'timeout'}
sub next_event {
    my ($w) = @_;
    my @m = eval { $w->read_msg };
    if ($@) {
        return { kind => 'timeout' } if $@ =~ /timed out/;
        return { kind => 'reset', why => $@ };
    }
    return { kind => 'eof' } unless @m;
    return { kind => 'msg', type => $m[0],
             fields => $m[0] =~ /^[EN]$/ ? PgNearTest::Wire::parse_fields($m[1]) : {} };
}

# Sends raw bytes (ignoring write errors: pgnear may have closed already),
# then expects an ErrorResponse with $code followed by the end of the connection.
sub expect_fatal {
    my ($name, $bytes, $code, $msg_re) = @_;
    my $w = wire();
    my $t0 = time;
    eval { $w->send_raw($bytes) };
    my $ev = next_event($w);
    is $ev->{kind} . ':' . ($ev->{type} // ''), 'msg:E', "$name: an ErrorResponse comes back"
      or diag explain $ev;
    is $ev->{fields}{C}, $code, "$name: SQLSTATE $code";
    is $ev->{fields}{S}, 'FATAL', "$name: severity FATAL";
    like $ev->{fields}{M} // '', $msg_re, "$name: message" if $msg_re;
    my $end = next_event($w);
    ok $end->{kind} eq 'eof' || $end->{kind} eq 'reset', "$name: then the connection closes"
      or diag explain $end;
    cmp_ok time - $t0, '<', 4, "$name: answered at once";
    close $w->socket;
}

# Bytes that do not start a startup packet (a length word outside 8..10000)
# get what PostgreSQL gives them: no answer, the connection closed at once,
# and a line in the log.
sub expect_silent_close {
    my ($name, $bytes) = @_;
    my $w = wire();
    my $t0 = time;
    eval { $w->send_raw($bytes) };
    my $ev = next_event($w);
    ok $ev->{kind} eq 'eof' || $ev->{kind} eq 'reset', "$name: closed without an answer"
      or diag explain $ev;
    cmp_ok time - $t0, '<', 4, "$name: closed at once";
    close $w->socket;
}

sub startup_packet {
    my ($version, $body) = @_;
    return pack('N', 8 + length $body) . pack('N', $version) . $body;
}

# ------------------------------------------------------------------ malformed startup packets

expect_silent_close('length 4', pack('N', 4));
expect_silent_close('length 3 (below the header)', pack('N', 3) . "\0" x 8);
expect_silent_close('length 100000 (oversized)', pack('N', 100_000) . pack('N', 0x30000) . "user\0app\0" x 10);
expect_silent_close('length 0xFFFFFFFF', pack('N', 0xFFFFFFFF) . "x" x 16);
# node-postgres's quick-disconnect: Terminate before any startup packet.
expect_silent_close('Terminate before the startup packet', pack('a N', 'X', 4));
expect_fatal('protocol 2.0', startup_packet(0x20000, "user\0app\0database\0movr\0\0"), '08P01',
             qr/unsupported frontend protocol/);
expect_fatal('protocol 4.0', startup_packet(0x40000, "user\0app\0\0"), '08P01',
             qr/unsupported frontend protocol/);
expect_fatal('protocol 3.0 without user', startup_packet(0x30000, "database\0movr\0\0"), '08P01',
             qr/no PostgreSQL user name/);
expect_fatal('protocol 3.0 with an empty user', startup_packet(0x30000, "user\0\0\0"), '08P01',
             qr/no PostgreSQL user name/);
expect_fatal('missing terminator', startup_packet(0x30000, "user\0app\0database\0movr\0"), '08P01',
             qr/terminator/);
expect_fatal('value without its NUL', startup_packet(0x30000, "user\0app"), '08P01',
             qr/terminator|layout/);
expect_fatal('bytes after the terminator', startup_packet(0x30000, "user\0app\0\0junk"), '08P01',
             qr/terminator|layout/);
expect_fatal('SSLRequest with a wrong length', pack('NNN', 12, 80877103, 0), '08P01', qr/length/);

is psql($p->conninfo, 'SELECT 2'), '2', 'a normal session works after malformed startups';

# ------------------------------------------------------------------ 1 MB of random bytes

{
    srand(80_080);
    my $junk = pack('C*', map { int(rand(256)) } 1 .. 1024 * 1024);
    my $w = wire();
    my $t0 = time;
    my $sent = eval { $w->send_raw($junk); 1 };
    my $why = $@;
    ok $sent || $why !~ /timed out/, 'random bytes: pgnear never stops reading with the socket open'
      or diag $why;
    my $ev = next_event($w);
    ok $ev->{kind} ne 'timeout', 'random bytes: error or close, never a hang' or diag explain $ev;
    if ($ev->{kind} eq 'msg') {
        is $ev->{type}, 'E', 'random bytes: the answer is an ErrorResponse';
        is $ev->{fields}{C}, '08P01', 'random bytes: SQLSTATE 08P01';
        my $end = next_event($w);
        ok $end->{kind} eq 'eof' || $end->{kind} eq 'reset', 'random bytes: then the connection closes'
          or diag explain $end;
    }
    cmp_ok time - $t0, '<', 8, 'random bytes: dealt with quickly';
    close $w->socket;
}

# Random bytes of every length up to a small size: each gets an error or a
# close (short ones may end at the login timeout), never a hang past it.
{
    srand(80_081);
    my @w;
    for my $len (1 .. 40) {
        my $w = wire();
        eval { $w->send_raw(pack('C*', map { int(rand(256)) } 1 .. $len)) };
        push @w, $w;
    }
    my $hung = 0;
    for my $w (@w) {
        my $ev = next_event($w);
        $ev = next_event($w) if $ev->{kind} eq 'msg';
        $hung++ if $ev->{kind} eq 'timeout';
        close $w->socket;
    }
    is $hung, 0, 'short random prefixes: every connection ends (error, close or login timeout)';
}

ok kill(0, $p->pid), 'pgnear is alive after random bytes';
is psql($p->conninfo, 'SELECT 3'), '3', 'a normal session works after random bytes';

# ------------------------------------------------------------------ bad message length after login

{
    my $w = wire();
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    ok $r->{ok}, 'valid login before the bad message';
    is $w->query('SELECT 41 + 1')->{rows}[0][0], 42, 'the session works';
    eval { $w->send_raw('Q' . pack('N', 2)) };
    my $ev = next_event($w);
    is $ev->{kind} . ':' . ($ev->{type} // ''), 'msg:E', 'length field < 4: ErrorResponse'
      or diag explain $ev;
    is $ev->{fields}{C}, '08P01', 'length field < 4: SQLSTATE 08P01';
    my $end = next_event($w);
    ok $end->{kind} eq 'eof' || $end->{kind} eq 'reset', 'length field < 4: connection closes'
      or diag explain $end;
    close $w->socket;
}
{
    # Same with length 0 in the middle of a pipelined batch.
    my $w = wire();
    ok $w->startup(user => 'app', database => 'movr', password => 'app-secret')->{ok}, 'second login';
    eval { $w->send_raw('Q' . pack('N', 9) . "SELECT\0" . 'S' . pack('N', 0)) };
    my ($err, $end);
    for (1 .. 20) {
        my $ev = next_event($w);
        if ($ev->{kind} eq 'msg') { $err = $ev->{fields} if $ev->{type} eq 'E' && $ev->{fields}{C} eq '08P01'; next }
        $end = $ev;
        last;
    }
    is $err && $err->{C}, '08P01', 'length 0 after a valid message: 08P01';
    ok $end && ($end->{kind} eq 'eof' || $end->{kind} eq 'reset'), 'length 0: connection closes'
      or diag explain $end;
    close $w->socket;
}
is psql($p->conninfo, 'SELECT 4'), '4', 'a normal session works after bad message lengths';

# ------------------------------------------------------------------ 100 half-open connections

{
    my $off = $p->log_size;
    my $t_open = time;
    my @held;
    for my $i (1 .. 100) {
        my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $p->port, Proto => 'tcp',
                                    Timeout => 5);
        unless ($s) { diag "half-open connection $i failed: $@"; last }
        binmode $s;
        syswrite($s, "\0\0\0") if $i % 2 == 0;    # half of them send 3 bytes of a length word
        push @held, $s;
    }
    is scalar(@held), 100, '100 half-open connections opened';

    my $t0 = time;
    my ($rc, $out, $err) = psql($p->conninfo(connect_timeout => 5), 'SHOW cluster_name', timeout => 10);
    my $took = time - $t0;
    is $rc, 0, 'psql works while 100 half-open connections are held' or diag $err;
    is $out, 'us-east', 'and lands on the region';
    cmp_ok $took, '<', 3, 'within a few seconds';
    cmp_ok time - $t_open, '<', 2, 'the half-open connections were still within their login time'
      or diag 'the psql check ran late; the timeout may already have closed them';

    # They must all be closed by client_login_timeout (2 s): 57014 then EOF.
    my $deadline = time + 10;
    my (%kinds, $err57014);
    my $sel = IO::Select->new(@held);
    my %done;
    my %buf;
    while (keys(%done) < @held && time < $deadline) {
        for my $s ($sel->can_read(0.5)) {
            my $n = sysread($s, my $chunk, 65536);
            if (!defined $n) { $done{ fileno $s } = 'reset'; $sel->remove($s); next }
            if ($n == 0)     { $done{ fileno $s } = 'eof';   $sel->remove($s); next }
            $buf{ fileno $s } .= $chunk;
        }
    }
    my $closed_at = time;
    is scalar(keys %done), 100, 'pgnear closed all 100 half-open connections';
    my $with_err = 0;
    for my $s (@held) {
        my $b = $buf{ fileno $s } // '';
        next unless length $b >= 5 && substr($b, 0, 1) eq 'E';
        my $f = PgNearTest::Wire::parse_fields(substr($b, 5, unpack('N', substr($b, 1, 4)) - 4));
        $with_err++ if ($f->{C} // '') eq '57014' && ($f->{M} // '') =~ /canceling authentication due to timeout/;
    }
    is $with_err, 100, 'each got ErrorResponse 57014 "canceling authentication due to timeout"';
    cmp_ok $closed_at - $t_open, '>=', 1.5, 'not before client_login_timeout';
    cmp_ok $closed_at - $t_open, '<', 6, 'soon after client_login_timeout';
    close $_ for @held;
    my $log = $p->log_contents;
    my $n = () = substr($log, $off) =~ /c\d+: FATAL 57014: canceling authentication due to timeout/g;
    is $n, 100, 'pgnear logged a FATAL 57014 line with the client id for each';
}
is psql($p->conninfo, 'SELECT 5'), '5', 'a normal session works after the half-open connections';

# A client that started a login and stalls half-way (startup sent, never
# answers the password request) also gets the timeout.
{
    my $w = wire();
    my $body = pack('N', 0x30000) . "user\0app\0database\0movr\0\0";
    $w->send_raw(pack('N', 4 + length $body) . $body);
    my $ev = next_event($w);
    is $ev->{type}, 'R', 'stalled login: the server asks for authentication';
    my $t0 = time;
    $ev = next_event($w);
    is $ev->{fields}{C}, '57014', 'stalled login: 57014 after the login timeout' or diag explain $ev;
    cmp_ok time - $t0, '<', 4, 'stalled login: within the login timeout';
    $ev = next_event($w);
    ok $ev->{kind} eq 'eof' || $ev->{kind} eq 'reset', 'stalled login: closed';
    close $w->socket;
}

# A client dripping its startup packet a byte at a time does not keep the
# login alive past the timeout.
{
    my $w = wire();
    my $pkt = startup_packet(0x30000, "user\0app\0database\0movr\0application_name\0" . ('x' x 150) . "\0\0");
    my $t0 = time;
    my $sel = IO::Select->new($w->socket);
    my $i = 0;
    while ($i < length($pkt) - 1 && time - $t0 < 8) {
        last if $sel->can_read(0.25);
        last unless eval { $w->send_raw(substr($pkt, $i++, 1)); 1 };
    }
    my $ev = next_event($w);
    is $ev->{fields} && $ev->{fields}{C}, '57014', 'slow drip: 57014 at the login timeout' or diag explain $ev;
    cmp_ok time - $t0, '<', 4, 'slow drip: the timeout is not extended by each byte';
    close $w->socket;
}

# ------------------------------------------------------------------ max_client_conn

{
    my $q = PgNearTest::Proxy->new(regions => [$us],
                                   settings => { auth => 'passthrough', server_tls => 'disable',
                                                 client_login_timeout => '2s', max_client_conn => 5 });
    my @s;
    for my $i (1 .. 5) {
        my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $q->port, timeout => 5);
        my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
        ok $r->{ok}, "max_client_conn=5: session $i logs in" or diag explain $r;
        push @s, $w;
    }
    my $w6 = PgNearTest::Wire->connect(host => '127.0.0.1', port => $q->port, timeout => 5);
    my $r6 = eval { $w6->startup(user => 'app', database => 'movr', password => 'app-secret') };
    ok $r6, 'the 6th login attempt ends without a hang' or diag $@;
    is $r6 && $r6->{error} && $r6->{error}{C}, '53300', 'the 6th session gets SQLSTATE 53300'
      or diag explain $r6;
    like $r6 && $r6->{error} ? $r6->{error}{M} : '', qr/too many clients/, 'with the usual message';
    ok !($r6 && $r6->{ok}), 'the 6th session is not logged in';
    close $w6->socket;

    # A raw client that sends nothing is refused too, without waiting for it.
    my $w7 = PgNearTest::Wire->connect(host => '127.0.0.1', port => $q->port, timeout => 5);
    my $ev = next_event($w7);
    is $ev->{fields} && $ev->{fields}{C}, '53300', 'a silent 6th connection gets 53300 at once'
      or diag explain $ev;
    close $w7->socket;

    is $_->query('SELECT 1')->{rows}[0][0], 1, 'the 5 sessions still work' for @s[0, 4];

    (shift @s)->terminate;
    my $r;
    my $ok = wait_until(sub {
        my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $q->port, timeout => 5);
        $r = eval { $w->startup(user => 'app', database => 'movr', password => 'app-secret') };
        if ($r && $r->{ok}) { push @s, $w; return 1 }
        close $w->socket;
        return 0;
    }, timeout => 5, interval => 0.2);
    ok $ok, 'after closing one session a new one logs in' or diag explain $r;
    is $s[-1]->query('SHOW cluster_name')->{rows}[0][0], 'us-east', 'and works' if $ok;
    $_->terminate for @s;
    like $q->log_contents, qr/refused connection: max_client_conn reached/, 'the refusal is logged';
    ok kill(0, $q->pid), 'the max_client_conn pgnear is alive';
    $q->stop;
}

# ------------------------------------------------------------------ afterwards

ok kill(0, $p->pid), 'pgnear is still running after all the abuse';
is psql($p->conninfo, 'SELECT 6 * 7'), '42', 'a final psql session works';
my $log = $p->log_contents;
like $log, qr/c\d+: closing connection from \S+ during login: invalid length of startup packet/,
     'log: invalid length of startup packet, with client id';
like $log, qr/c\d+: FATAL 08P01: unsupported frontend protocol/, 'log: FATAL 08P01 bad protocol, with client id';
like $log, qr/c\d+: FATAL 08P01: no PostgreSQL user name/, 'log: FATAL 08P01 no user, with client id';
like $log, qr/c\d+: FATAL 08P01: invalid startup packet layout/, 'log: FATAL 08P01 no terminator, with client id';
like $log, qr/c\d+: FATAL 08P01: invalid message length from client/, 'log: FATAL 08P01 bad message length, with client id';
like $log, qr/c\d+: FATAL 57014: canceling authentication due to timeout/, 'log: FATAL 57014, with client id';
unlike $log, qr/AddressSanitizer|runtime error|Segmentation|Assertion/, 'no sanitizer or crash report in the log';

done_testing;
