# PostgreSQL over WebSocket (issue 10), the framing: the PostgreSQL byte
# stream travels in binary frames whose boundaries have nothing to do with
# the messages' (a message over many frames, one byte each; fragmented
# messages with continuation frames; many messages in one frame; one frame
# over many TCP writes, many frames in one write); a result of several MB
# read back and checked; ping -> pong with the same payload, also between
# the fragments of a message; a reader that stalls does not make pgnear
# buffer; the close handshake; the protocol errors
# (text frame 1003, unmasked frame 1002, RSV bit 1002, a frame over
# websocket_max_frame 1009, close codes no peer may send); a failed session
# ends with its ErrorResponse and then close 1000; websocket_ping_interval
# pings a quiet connection (not a busy one) that the pongs keep alive, and
# closes one whose client stops answering; authentication under auth =
# scram (cleartext by default, SCRAM with websocket_auth = scram, a
# pipelined password refused with a hint); TLS inside the WebSocket (SSLRequest, as the Neon driver
# with forceDisablePgSSL = false); the basic exchange with workers = 2.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Digest::MD5 qw(md5_hex);
use PgNearTest;
use PgNearWs qw(ws_frame);

$SIG{PIPE} = 'IGNORE';    # a peer that closed first must not kill the test
require_tool('psql');
die "PGNEAR is not set; point it at the pgnear binary\n" unless $ENV{PGNEAR} && -x $ENV{PGNEAR};

my $t0 = time;
my $us = PgNearTest::Cluster->new(name => 'us-east');
my $MAX_FRAME = 65536;
my $wsport = free_port();
my $p = PgNearTest::Proxy->new(regions => [$us],
    settings => { auth => 'passthrough', websocket_port => $wsport, websocket_max_frame => '64kB' });

sub ws_pg {
    my (%o) = @_;
    return PgNearWs::Pg->connect(port => $o{port} // $wsport, timeout => 10, %o);
}

sub login {
    my ($pg, %o) = @_;
    return $pg->startup(user => 'app', database => 'movr', password => $o{password} // 'app-secret');
}

# A binary frame of raw PostgreSQL bytes.
sub pg_frame { { opcode => PgNearWs::OP_BINARY, payload => $_[0], %{ $_[1] // {} } } }

# ---------------------------------------------------------------- the basic exchange

{
    my $pg = ws_pg();
    is $pg->response->{status}, 101, 'the upgrade is answered 101';
    ok $pg->response->{accept_ok}, '... with the right Sec-WebSocket-Accept';
    my $r = login($pg);
    ok $r->{ok}, 'a login through the WebSocket' or diag explain $r;
    my $q = $pg->query("SELECT 'hello', current_user, current_database()");
    is_deeply $q->{rows}, [['hello', 'app', 'movr']], 'a query through the WebSocket';
    is $q->{status}, 'I', '... ends in ReadyForQuery idle';
}

# ---------------------------------------------------------------- one message, many frames

{
    my $pg = ws_pg(frame_size => 1);
    my $r = login($pg);
    ok $r->{ok}, 'startup and SCRAM sent one byte per frame' or diag explain $r;
    my $q = $pg->query("SELECT repeat('x', 300) || 'y'");
    is $q->{rows}[0][0], ('x' x 300) . 'y', 'a Query sent one byte per frame';
    $pg->frame_size(7);
    $q = $pg->query('SELECT 42, 43');
    is_deeply $q->{rows}, [[42, 43]], 'a Query in 7-byte frames';
}

# A fragmented WebSocket message (binary FIN=0, continuations, FIN=1)
# holding a Query, a ping between two fragments.
{
    my $pg = ws_pg();
    ok login($pg)->{ok}, 'login for the fragmented messages';
    my $ws = $pg->ws;
    my $msg = "Q" . pack('N', 4 + length("SELECT 'frag', 1\0")) . "SELECT 'frag', 1\0";
    my @parts = (substr($msg, 0, 3), substr($msg, 3, 5), substr($msg, 8, 6), substr($msg, 14));
    $ws->send_frames([
        { opcode => PgNearWs::OP_BINARY, fin => 0, payload => $parts[0] },
        { opcode => PgNearWs::OP_CONT,   fin => 0, payload => $parts[1] },
        { opcode => PgNearWs::OP_PING,   fin => 1, payload => 'between fragments' },
        { opcode => PgNearWs::OP_CONT,   fin => 0, payload => $parts[2] },
        { opcode => PgNearWs::OP_CONT,   fin => 1, payload => $parts[3] },
    ]);
    my $q = $pg->read_result;
    is_deeply $q->{rows}, [['frag', 1]], 'a Query in a fragmented message (4 fragments) is answered';
    is_deeply $ws->{pongs}, ['between fragments'], 'the ping between the fragments got its pong';

    # A message that ends in the middle of a PostgreSQL message, the rest
    # in a second fragmented message, each fragment its own TCP write.
    my $m2 = "Q" . pack('N', 4 + length("SELECT 2\0")) . "SELECT 2\0";
    $ws->send_frame(opcode => PgNearWs::OP_BINARY, fin => 0, payload => substr($m2, 0, 2));
    sleep 0.05;
    $ws->send_frame(opcode => PgNearWs::OP_CONT, fin => 1, payload => substr($m2, 2, 4));
    sleep 0.05;
    $ws->send_frame(opcode => PgNearWs::OP_BINARY, fin => 0, payload => substr($m2, 6, 3));
    sleep 0.05;
    $ws->send_frame(opcode => PgNearWs::OP_CONT, fin => 1, payload => substr($m2, 9));
    is_deeply $pg->read_result->{rows}, [[2]], 'a Query over two fragmented messages, each fragment its own write';
}

# One frame over many TCP writes; many frames in one TCP write.
{
    my $pg = ws_pg();
    ok login($pg)->{ok}, 'login for the TCP-split frames';
    my $ws = $pg->ws;
    my $sql = "SELECT 'split-' || 7\0";
    $ws->send_frame(opcode => PgNearWs::OP_BINARY, payload => 'Q' . pack('N', 4 + length $sql) . $sql,
                    chunk => 1, pause => 0.003);
    is $pg->read_result->{rows}[0][0], 'split-7', 'one frame sent one byte per TCP write';

    my $big = "SELECT '" . ('z' x 70000) . "'\0";
    $ws->send_frame(opcode => PgNearWs::OP_BINARY, payload => 'Q' . pack('N', 4 + length $big) . substr($big, 0, 30000),
                    chunk => 1000, pause => 0.001);
    $ws->send_frame(opcode => PgNearWs::OP_BINARY, payload => substr($big, 30000), chunk => 4096, pause => 0.001);
    is $pg->read_result->{rows}[0][0], 'z' x 70000, 'a 70 kB Query over two frames, each in many writes';

    my @frames;
    my $expect = '';
    for my $i (1 .. 20) {
        my $s = "SELECT $i\0";
        my $bytes = 'Q' . pack('N', 4 + length $s) . $s;
        push @frames, pg_frame(substr($bytes, 0, 4)), pg_frame(substr($bytes, 4));
    }
    $ws->send_frames(\@frames);
    my @got = map { $pg->read_result->{rows}[0][0] } 1 .. 20;
    is_deeply \@got, [1 .. 20], '40 frames (20 Queries, each split across two frames) in one TCP write';
}

# ---------------------------------------------------------------- many messages, one frame

{
    my $pg = ws_pg();
    ok login($pg)->{ok}, 'login for the packed frame';
    my $bytes = join '', map { my $s = "SELECT $_ * 10\0"; 'Q' . pack('N', 4 + length $s) . $s } 1 .. 50;
    $pg->ws->send_frame(opcode => PgNearWs::OP_BINARY, payload => $bytes);
    my @got = map { $pg->read_result->{rows}[0][0] } 1 .. 50;
    is_deeply \@got, [map { $_ * 10 } 1 .. 50], '50 Queries in one frame: 50 answers, in order';

    # Extended protocol, Parse/Bind/Describe/Execute/Sync in one frame.
    my $parse = "P" . pack('N', 4 + length("\0SELECT \$1::int + 1\0") + 2) . "\0SELECT \$1::int + 1\0" . pack('n', 0);
    my $bindb = "\0\0" . pack('n', 0) . pack('n', 1) . pack('N', 2) . '41' . pack('n', 0);
    my $bind = 'B' . pack('N', 4 + length $bindb) . $bindb;
    my $exec = 'E' . pack('N', 4 + 5) . "\0" . pack('N', 0);
    my $sync = 'S' . pack('N', 4);
    $pg->ws->send_frame(opcode => PgNearWs::OP_BINARY, payload => $parse . $bind . $exec . $sync);
    my @types;
    my $val;
    while (my ($t, $m) = $pg->read_msg) {
        push @types, $t;
        $val = substr($m, 6) if $t eq 'D';
        last if $t eq 'Z';
    }
    is_deeply \@types, [qw(1 2 D C Z)], 'Parse/Bind/Execute/Sync in one frame: the usual answers';
    is $val, '42', '... and the value';
}

# ---------------------------------------------------------------- large results

{
    my $pg = ws_pg();
    ok login($pg)->{ok}, 'login for the large result';
    my $n = 10_000;
    my $t = time;
    my $q = $pg->query("SELECT i, repeat(md5(i::text), 20) FROM generate_series(1, $n) i");
    my $elapsed = time - $t;
    is scalar @{ $q->{rows} }, $n, "a result of $n rows (about 6.5 MB) read back";
    my $bad = grep { $q->{rows}[$_][0] != $_ + 1 || $q->{rows}[$_][1] ne md5_hex($_ + 1) x 20 } 0 .. $n - 1;
    is $bad, 0, '... every row as expected';
    is $q->{tag}, "SELECT $n", '... with its command tag';
    note sprintf 'large result: %.2f s', $elapsed;

    # A large request too: 3 MB in one Query, in 64 kB - 1 frames (under the limit).
    $pg->frame_size($MAX_FRAME - 1);
    my $payload = join '', map { md5_hex($_) } 1 .. 100_000;    # 3.2 MB
    $q = $pg->query("SELECT md5('$payload'), length('$payload')");
    is_deeply $q->{rows}, [[md5_hex($payload), length $payload]], 'a 3.2 MB Query in frames just under websocket_max_frame';
    $pg->frame_size(0);
}

# A WebSocket client that does not read: pgnear holds back instead of
# buffering the server's answer, and the stream arrives whole afterwards.
{
    my $pg = ws_pg(timeout => 60);
    ok login($pg)->{ok}, 'login for the stalled reader';
    my ($rows, $width) = (60_000, 1000);
    my $rss = sub { (slurp_file('/proc/' . $p->pid . '/status') =~ /^VmRSS:\s+(\d+)\s+kB/m)[0] };
    my $before = $rss->();
    $pg->send_msg('Q', "COPY (SELECT repeat('x', $width) FROM generate_series(1, $rows)) TO STDOUT\0");
    sleep 3;    # the server has produced everything by now; the client read nothing
    my $grown = $rss->() - $before;
    cmp_ok $grown, '<', 16 * 1024, "a stalled WebSocket reader: pgnear holds back ~57 MB (RSS grew by $grown kB)";
    is psql($p->conninfo, 'SELECT 1'), '1', '... other sessions keep working meanwhile';
    my ($bytes, $count, $status) = (0, 0, '');
    for (1 .. $rows + 100) {
        my ($type, $payload) = $pg->read_msg;
        last unless defined $type;
        if ($type eq 'd') { $bytes += length $payload; $count++ }
        if ($type eq 'Z') { $status = $payload; last }
    }
    is $count, $rows, '... then every row arrives';
    is $bytes, $rows * ($width + 1), '... every byte';
    is $status, 'I', '... and ReadyForQuery';
    $pg->terminate;
}

# ---------------------------------------------------------------- ping, close

{
    my $pg = ws_pg();
    ok login($pg)->{ok}, 'login for ping/pong';
    my $ws = $pg->ws;
    $ws->send_frame(opcode => PgNearWs::OP_PING, payload => "ping \x00\xff payload");
    my $f = $ws->read_frame;
    is $f->{opcode}, PgNearWs::OP_PONG, 'ping -> pong';
    is $f->{payload}, "ping \x00\xff payload", '... with the same payload';
    ok !$f->{masked}, '... unmasked';
    $ws->send_frame(opcode => PgNearWs::OP_PING, payload => '');
    $f = $ws->read_frame;
    is_deeply [$f->{opcode}, $f->{payload}], [PgNearWs::OP_PONG, ''], 'an empty ping -> an empty pong';
    $ws->send_frame(opcode => PgNearWs::OP_PONG, payload => 'unsolicited');
    is $pg->query('SELECT 5')->{rows}[0][0], 5, 'an unsolicited pong is ignored; the session goes on';

    my $c = $ws->close(code => 1000, reason => 'bye');
    is $c->{code}, 1000, 'client close 1000 -> pgnear answers close 1000' or diag explain $c;
    ok $c->{eof}, '... and closes the connection';
    ok !$c->{no_close}, '... after its close frame';
}

# Close codes a peer may not send (RFC 6455 7.4.1: 1005, 1006 and 1015 never
# travel in a close frame; 0-999 and the unassigned 1016-2999 are not
# valid): pgnear must not echo them; it fails the connection (1002, or
# drops it), as the RFC's "invalid data" rule and the Autobahn suite have it.
for my $code (1005, 1006, 1015, 999, 2999) {
    my $pg = ws_pg();
    ok login($pg)->{ok}, "login before a close with code $code";
    my $c = $pg->ws->close(code => $code, timeout => 10);
    ok(($c->{code} // 0) == 1002 || $c->{no_close}, "a close with code $code -> 1002 or a drop, not an echo")
      or diag 'answered ' . ($c->{code} // 'no code');
}
for my $code (1001, 3000, 4999) {
    my $pg = ws_pg();
    ok login($pg)->{ok}, "login before a close with code $code";
    my $c = $pg->ws->close(code => $code, timeout => 10);
    is $c->{code}, $code, "a close with the valid code $code is answered with it";
}

# The session behind a closed WebSocket is gone (its backend too).
{
    my $pg = ws_pg();
    ok login($pg)->{ok}, 'login for the session end';
    my $bpid = $pg->query('SELECT pg_backend_pid()')->{rows}[0][0];
    $pg->query("SET application_name = 'ws-close-check'");
    $pg->ws->close(code => 1001);
    ok wait_until(sub {
        $us->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE pid = $bpid") eq '0'
    }, timeout => 10), 'after the close handshake the server session ends';
}

# ---------------------------------------------------------------- protocol errors

sub expect_close_code {
    my ($code, $what, $send) = @_;
    my $pg = ws_pg();
    ok login($pg)->{ok}, "login before: $what";
    $send->($pg->ws);
    my $c = $pg->ws->expect_close(timeout => 10);
    is $c->{code}, $code, "$what -> close $code" or diag explain $c;
    ok $c->{eof}, "... and the connection is closed";
}

expect_close_code(1003, 'a text frame', sub {
    $_[0]->send_frame(opcode => PgNearWs::OP_TEXT, payload => "Q\0\0\0\x0dSELECT 1\0");
});
expect_close_code(1002, 'an unmasked client frame', sub {
    my $s = "SELECT 1\0";
    $_[0]->send_frame(opcode => PgNearWs::OP_BINARY, mask => 0, payload => 'Q' . pack('N', 4 + length $s) . $s);
});
expect_close_code(1002, 'an unmasked ping', sub {
    $_[0]->send_frame(opcode => PgNearWs::OP_PING, mask => 0, payload => 'x');
});
for my $rsv (4, 2, 1) {
    expect_close_code(1002, "a binary frame with RSV bits $rsv", sub {
        my $s = "SELECT 1\0";
        $_[0]->send_frame(opcode => PgNearWs::OP_BINARY, rsv => $rsv, payload => 'Q' . pack('N', 4 + length $s) . $s);
    });
}
expect_close_code(1009, 'a frame one byte over websocket_max_frame (64 kB)', sub {
    $_[0]->send_frame(opcode => PgNearWs::OP_BINARY, payload => 'Q' . ('x' x $MAX_FRAME));
});
expect_close_code(1009, 'a frame announcing 10 GB (the first kB of it sent)', sub {
    $_[0]->send_raw(ws_frame(opcode => PgNearWs::OP_BINARY, payload => '', length => 10 * 2**30,
                             mask_key => "\0\0\0\0") . ('Q' x 1024));
});
# RFC 6455 5.5: control frames carry at most 125 bytes and are not fragmented.
expect_close_code(1002, 'a ping of 126 bytes', sub {
    $_[0]->send_frame(opcode => PgNearWs::OP_PING, payload => 'p' x 126);
});
expect_close_code(1002, 'a close frame of 200 bytes', sub {
    $_[0]->send_frame(opcode => PgNearWs::OP_CLOSE, close_code => 1000, close_reason => 'r' x 198);
});
expect_close_code(1002, 'a fragmented ping', sub {
    $_[0]->send_frame(opcode => PgNearWs::OP_PING, fin => 0, payload => 'a');
});
expect_close_code(1002, 'a continuation frame outside a message', sub {
    $_[0]->send_frame(opcode => PgNearWs::OP_CONT, payload => 'a');
});
expect_close_code(1002, 'a binary frame inside a fragmented message', sub {
    $_[0]->send_frames([{ opcode => PgNearWs::OP_BINARY, fin => 0, payload => 'Q' },
                        { opcode => PgNearWs::OP_BINARY, fin => 1, payload => 'Q' }]);
});
expect_close_code(1002, 'an unknown opcode (3)', sub {
    $_[0]->send_frame(opcode => 3, payload => 'a');
});
{
    # Exactly websocket_max_frame is allowed.
    my $pg = ws_pg();
    ok login($pg)->{ok}, 'login for the frame of exactly websocket_max_frame';
    my $k = $MAX_FRAME - 6 - length("SELECT length('')");    # 'Q', the length, the NUL
    my $s = "SELECT length('" . ('y' x $k) . "')\0";
    my $bytes = 'Q' . pack('N', 4 + length $s) . $s;
    is length $bytes, $MAX_FRAME, '(the frame is exactly 64 kB)';
    $pg->ws->send_frame(opcode => PgNearWs::OP_BINARY, payload => $bytes);
    is $pg->read_result->{rows}[0][0], $k, 'a frame of exactly websocket_max_frame is accepted';
}

# A session that fails: its ErrorResponse, then close 1000.
{
    my $pg = ws_pg();
    my $r = $pg->startup(user => 'app', database => 'no_such_db', password => 'app-secret');
    is $r->{error}{C}, '3D000', 'a login to a missing database gets its ErrorResponse through the WebSocket'
      or diag explain $r;
    ok !defined $pg->read_bytes(1), '... then the stream ends';
    is $pg->ws->close_received && $pg->ws->close_received->{code}, 1000, '... with close 1000 after the error';
    ok $pg->ws->eof_within(5), '... and the connection is closed';
}
{
    my $pg = ws_pg();
    ok login($pg)->{ok}, 'login for a session killed by the server';
    my $bpid = $pg->query('SELECT pg_backend_pid()')->{rows}[0][0];
    $us->psql_admin("SELECT pg_terminate_backend($bpid)");
    my $q = $pg->query('SELECT 1');
    is $q->{error}{C} // '', '57P01', 'a terminated backend: its FATAL arrives through the WebSocket' or diag explain $q;
    my $c = $pg->ws->expect_close(timeout => 10);
    is $c->{code}, 1000, '... then close 1000' or diag explain $c;
}

# ---------------------------------------------------------------- server pings

{
    my $pport = free_port();
    my $pp = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'passthrough', websocket_port => $pport, websocket_ping_interval => '1s' });
    my $pg = ws_pg(port => $pport);
    ok login($pg)->{ok}, 'login with websocket_ping_interval = 1s';
    my $ws = $pg->ws;
    my $t = time;
    my $data = $ws->pump(4.5);    # answers every ping with a pong
    my $pings = @{ $ws->{pings} };
    ok $pings >= 3 && $pings <= 6, "a quiet connection gets a ping about every second ($pings in 4.5 s)";
    is $data, '', '... and no data';
    ok !$ws->{ended}, '... and stays open while the pings are answered';
    is $pg->query('SELECT 7')->{rows}[0][0], 7, 'the session still works after the pings';

    # A connection that is not quiet is not pinged (the pings are for quiet ones).
    $ws->{pings} = [];
    my $end = time + 3.5;
    my $n = 0;
    while (time < $end) { $n++ if $pg->query('SELECT 1')->{rows}[0][0] == 1; sleep 0.2 }
    ok $n >= 10, "a busy connection keeps working ($n queries in 3.5 s)";
    my $busy_pings = @{ $ws->{pings} };
    ok $busy_pings <= 1, "... and is not pinged ($busy_pings pings)";

    $pg->terminate;    # no one would answer its pings from here on

    # A quiet client that does not answer the pings is gone: closed.
    my $mute = ws_pg(port => $pport);
    ok login($mute)->{ok}, 'login for a client that does not answer pings';
    my $off = $pp->log_size;
    $mute->ws->{auto_pong} = 0;
    $t = time;
    $mute->ws->pump(6);
    my $gone = time - $t;
    ok $mute->ws->{ended}, sprintf('a quiet client leaving the pings unanswered is closed (after %.1f s)', $gone);
    ok $gone <= 4, '... within about two intervals of its first ping';
    ok $pp->wait_for_log(qr/did not answer a ping/, offset => $off), '... and the log says why';
    $pp->stop;
}

# ---------------------------------------------------------------- authentication

{
    my $dir = tmpdir(name => 'auth');
    my $ulist = write_file("$dir/users.txt", qq{"app" "} . $us->scram_verifier('app') . qq{"\n});
    my $aport = free_port();
    my $ap = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'scram', auth_file => $ulist, websocket_port => $aport });
    my $pg = ws_pg(port => $aport);
    my $r = login($pg);
    ok $r->{ok}, 'auth = scram, websocket_auth = cleartext (default): a WebSocket login' or diag explain $r;
    is_deeply $r->{auth}, ['password', 'ok'], '... asked for a cleartext password';
    is $pg->query('SELECT current_user')->{rows}[0][0], 'app', '... and the session works';

    $pg = ws_pg(port => $aport);
    $r = login($pg, password => 'wrong');
    is $r->{error}{C}, '28P01', 'a wrong cleartext password gets 28P01' or diag explain $r;
    is $pg->ws->expect_close(timeout => 5)->{code}, 1000, '... then close 1000';

    # The Neon driver's pipelineConnect "password": startup and password in one write.
    $pg = ws_pg(port => $aport);
    my $body = pack('N', 0x30000) . "user\0app\0database\0movr\0\0";
    $pg->send_raw(pack('N', 4 + length $body) . $body . "p" . pack('N', 4 + 11) . "app-secret\0");
    my @t;
    while (my ($t) = $pg->read_msg) { push @t, $t; last if $t eq 'Z' || $t eq 'E' }
    is_deeply [@t[0, 1], $t[-1]], ['R', 'R', 'Z'], 'a pipelined startup + password logs in (cleartext)';

    my $tcp = PgNearTest::Wire->connect(port => $ap->port);
    $r = $tcp->startup(user => 'app', database => 'movr', password => 'app-secret');
    like $r->{auth}[0] // '', qr/^sasl:/, 'TCP clients of the same pgnear still get SCRAM';
    # Its clients leave first: SIGTERM waits for open sessions (up to shutdown_timeout).
    $pg->terminate;
    $tcp->terminate;
    $ap->stop;

    my $sport = free_port();
    my $sp = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'scram', auth_file => $ulist, websocket_port => $sport, websocket_auth => 'scram' });
    $pg = ws_pg(port => $sport);
    $r = login($pg);
    ok $r->{ok}, 'websocket_auth = scram: a SCRAM login through the WebSocket' or diag explain $r;
    like $r->{auth}[0] // '', qr/^sasl:.*SCRAM-SHA-256/, '... offered SCRAM-SHA-256';
    ok $r->{server_signature_ok}, '... with a valid server signature';

    $pg = ws_pg(port => $sport);
    $pg->send_raw(pack('N', 4 + length $body) . $body . "p" . pack('N', 4 + 11) . "app-secret\0");
    my $err;
    while (my ($t, $m) = $pg->read_msg) {
        if ($t eq 'E') { $err = PgNearTest::Wire::parse_fields($m); last }
        last if $t eq 'Z';
    }
    is $err && $err->{C}, '08P01', 'websocket_auth = scram: a pipelined password gets 08P01' or diag explain $err;
    like $err && $err->{H} // '', qr/neonConfig\.pipelineConnect = false/, '... whose hint names pipelineConnect';
    $sp->stop;
}

# ---------------------------------------------------------------- TLS inside the WebSocket

{
    PgNearWs::require_ssl();
    my $ca = PgNearTest::CA->new;
    my $cert = $ca->issue(name => 'pgnear', cn => 'localhost', san => ['DNS:localhost', 'IP:127.0.0.1'], owner => undef);
    my $tport = free_port();
    my $tp = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'passthrough', websocket_port => $tport, client_tls => 'allow',
                      client_tls_cert_file => $cert->{cert}, client_tls_key_file => $cert->{key} });
    my $pg = ws_pg(port => $tport);
    is $pg->start_tls(ca => $ca->cert), 'S', 'SSLRequest inside the WebSocket: S';
    ok $pg->{tls_sock}, '... and a TLS handshake verifying pgnear\'s certificate (localhost)';
    my $r = login($pg);
    ok $r->{ok}, 'a login over TLS inside the WebSocket' or diag explain $r;
    my $q = $pg->query("SELECT i, md5(i::text) FROM generate_series(1, 20000) i");
    is scalar(grep { $q->{rows}[$_][1] eq md5_hex($_ + 1) } 0 .. 19_999), 20_000,
      '... and a 20000-row result through it';
    $pg->terminate;

    $tp->stop;

    # client_tls = disable: the SSLRequest is declined, the session goes on in the clear.
    # (The first pgnear is such a one: client_tls is left at its default, disable.)
    unlike $p->config_text, qr/^client_tls\b/m, '(the first pgnear has client_tls at its default)';
    $pg = ws_pg();
    is $pg->start_tls(ca => $ca->cert), 'N', 'client_tls = disable: SSLRequest inside the WebSocket: N';
    ok login($pg)->{ok}, '... and the login goes on without TLS';
    $pg->terminate;
}

# ---------------------------------------------------------------- workers = 2

{
    my $wport = free_port();
    my $wp = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'passthrough', websocket_port => $wport, workers => 2 });
    my @s = map { ws_pg(port => $wport, frame_size => 3) } 1 .. 6;
    my $ok = grep { login($_)->{ok} } @s;
    is $ok, 6, 'workers = 2: six WebSocket sessions log in';
    $_->send_query("SELECT $_->{ws}{port}, pg_backend_pid()") for @s;
    my @r = map { $_->read_result } @s;
    is scalar(grep { $_->{rows}[0][0] == $wport } @r), 6, '... and all six answer, their queries in flight together';
    my %pids = map { $_->{rows}[0][1] => 1 } @r;
    is scalar keys %pids, 6, '... each on its own server session';
    my $c = 0;
    $c++ for grep { $_->ws->close->{code} == 1000 } @s;
    is $c, 6, '... and each close is answered';
    $wp->stop;
}

is $p->stop(signal => 'TERM'), 0, 'pgnear exits 0';
unlike $p->log_contents, qr/\b(?:PANIC|assertion|double free)\b/i, 'nothing alarming in the log';
note sprintf 'elapsed %.1f s', time - $t0;
done_testing;
