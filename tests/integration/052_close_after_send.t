# A client that writes a complete message and closes at once: the end of
# the stream (FIN) arrives with the bytes or right behind them, often in
# the read after the one that took them, while they wait for the reader of
# the next phase.  Whatever came before the end is handled before the end
# is, in every phase where a client may send a whole message and leave:
#  - a CancelRequest, then close: the query it names is canceled (57014),
#    over TCP, TLS, WebSocket (ws and wss), with and without a PROXY header
#    (v1 and v2; the WebSocket port takes none), each tried several times,
#    since the end of stream may fall in the same read or the next;
#  - a StartupMessage and Terminate, then half-close: the client reads what
#    PostgreSQL itself answers that (the SASL request, then 08P01), over
#    TCP, TLS and WebSocket, with and without a PROXY header; under
#    auth = passthrough the Terminate reaches the server (its log says so);
#  - an SSLRequest or GSSENCRequest, then half-close: the answer ('S' or
#    'N') comes before the end, with and without a PROXY header, and inside
#    a WebSocket;
# and pgnear goes on serving others meanwhile.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::IP;
use IO::Socket::SSL;
use Socket qw(IPPROTO_TCP TCP_NODELAY SHUT_WR);
use PgNearTest;
use PgNearWs qw(ws_frame);

$SIG{PIPE} = 'IGNORE';
require_tool('psql');
PgNearWs::require_ssl();

my $ca = PgNearTest::CA->new;
my $cert = $ca->issue(name => 'pgnear', cn => 'localhost',
                      san => ['DNS:localhost', 'IP:127.0.0.1'], owner => undef);
my $us = PgNearTest::Cluster->new(name => 'us-east');
my $auth_dir = tmpdir(name => 'close-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist, qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

my %TLS = (client_tls => 'allow', client_tls_cert_file => $cert->{cert},
           client_tls_key_file => $cert->{key});
# As the demo runs it: pgnear verifies clients, a PROXY header is optional, TLS allowed.
my $wsport = free_port();
my $p = PgNearTest::Proxy->new(regions => [$us], settings => {
    auth => 'scram', auth_file => $userlist, server_tls => 'disable',
    proxy_protocol => 'optional', trusted_proxies => '127.0.0.1/32, ::1/128',
    websocket_port => $wsport, websocket_tls => 'off', %TLS });
# Another wss port needs another pgnear: websocket_tls is per process.
my $wssport = free_port();
my $pwss = PgNearTest::Proxy->new(regions => [$us], settings => {
    auth => 'passthrough', server_tls => 'disable', websocket_port => $wssport,
    websocket_tls => 'on', %TLS });
# The server authenticates; no client TLS; a PROXY header must come first.
my $ppass = PgNearTest::Proxy->new(regions => [$us], settings => {
    auth => 'passthrough', server_tls => 'disable', client_tls => 'disable',
    proxy_protocol => 'required', trusted_proxies => '127.0.0.1/32, ::1/128' });

my $CANCEL_CODE = 80877102;
my $SSL_CODE    = 80877103;
my $GSS_CODE    = 80877104;
my $TRIES       = 5;

# ---------------------------------------------------------------- bytes

sub pp_v1 { "PROXY TCP4 198.51.100.7 127.0.0.1 50000 5432\r\n" }

sub pp_v2 {
    my $body = pack('C4 C4 n n', 198, 51, 100, 7, 127, 0, 0, 1, 50000, 5432);
    return "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A" . pack('C C n', 0x21, 0x11, length $body) . $body;
}

sub header_bytes {
    my ($kind) = @_;
    return $kind eq 'v1' ? pp_v1() : $kind eq 'v2' ? pp_v2() : '';
}

sub cancel_packet { my ($pid, $key) = @_; pack('N N N', 16, $CANCEL_CODE, $pid) . $key }
sub code_packet   { pack('N N', 8, $_[0]) }

sub startup_packet {
    my $body = pack('N', 196608) . "user\0app\0database\0movr\0\0";
    return pack('N', 4 + length $body) . $body;
}
my $TERMINATE = "X\0\0\0\4";

sub tcp_connect {
    my ($port) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 10)
      or die "connect 127.0.0.1:$port: $@\n";
    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    binmode $s;
    return $s;
}

sub write_all {
    my ($s, $bytes) = @_;
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($s, $bytes, length($bytes) - $off, $off);
        die "write: $!\n" unless defined $n;
        $off += $n;
    }
}

# Everything the peer sends until it closes (bounded), from a plain or TLS socket.
sub read_to_eof {
    my ($s, $timeout) = @_;
    my ($buf, $deadline) = ('', time + ($timeout // 10));
    while (time < $deadline) {
        my $n = sysread($s, my $chunk, 65536);
        if (!defined $n) {
            if ($s->isa('IO::Socket::SSL') && $SSL_ERROR == SSL_WANT_READ) {
                IO::Select->new($s)->can_read(0.2);
                next;
            }
            last if $buf ne '' || $!{ECONNRESET};
            IO::Select->new($s)->can_read(0.2);
            next;
        }
        return ($buf, 1) if $n == 0;
        $buf .= $chunk;
    }
    return ($buf, 0);
}

# [type, fields] of each message in a byte string of server messages.
sub messages {
    my ($bytes) = @_;
    my @m;
    while (length $bytes >= 5) {
        my ($t, $len) = unpack('a N', $bytes);
        last if length $bytes < 1 + $len;
        my $body = substr($bytes, 5, $len - 4);
        substr($bytes, 0, 1 + $len, '');
        push @m, [$t, $t eq 'E' ? PgNearTest::Wire::parse_fields($body)
                    : $t eq 'R' ? unpack('N', $body) : $body];
    }
    return @m;
}

sub summary { join ' ', map { $_->[0] eq 'E' ? "E:$_->[1]{C}" : $_->[0] eq 'R' ? "R:$_->[1]" : $_->[0] } @_ }

# TLS over a TCP socket already past the SSLRequest's 'S'.
sub start_tls {
    my ($s) = @_;
    IO::Socket::SSL->start_SSL($s, SSL_ca_file => $ca->cert, SSL_verify_mode => SSL_VERIFY_PEER,
                               SSL_hostname => 'localhost', SSL_verifycn_name => 'localhost',
                               SSL_verifycn_scheme => 'http', Timeout => 10)
      or die 'TLS handshake with pgnear failed: ' . IO::Socket::SSL::errstr() . "\n";
    return $s;
}

# ---------------------------------------------------------------- cancel, then close

# A session whose pg_sleep the cancels are aimed at.
my $victim = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
my $login = $victim->startup(user => 'app', database => 'movr', password => 'app-secret');
ok $login->{ok}, 'the target session logs in through pgnear' or BAIL_OUT('no target session');

# Starts a pg_sleep on session $w and waits until the server runs it.
# PostgreSQL signals a canceled backend twice (the process and its group),
# so the second signal of the last cancel may end the next query at once:
# that query is read back and sent again (bounded).
sub start_sleep {
    my ($w, $pid) = @_;
    for (1 .. 5) {
        $w->send_query('SELECT pg_sleep(30)');
        return 1 if $us->wait_sleeping($pid);
        my $stray = eval { $w->read_result } // {};
        return 0 unless $stray->{status};
    }
    return 0;
}

# Each way of sending a CancelRequest and leaving at once, with its PROXY header.
my %SEND_CANCEL = (
    tcp => sub {
        my ($hdr, $packet) = @_;
        my $s = tcp_connect($p->port);
        write_all($s, $hdr . $packet);
        close $s;
    },
    tls => sub {
        my ($hdr, $packet, %o) = @_;
        my $s = tcp_connect($p->port);
        write_all($s, $hdr . code_packet($SSL_CODE));
        my $answer = '';
        sysread($s, $answer, 1);
        die "SSLRequest answered '$answer'\n" unless $answer eq 'S';
        start_tls($s);
        $s->syswrite($packet) == length $packet or die "TLS write failed\n";
        # With close_notify, or the TCP connection just closed under the TLS session.
        $o{abrupt} ? $s->close(SSL_no_shutdown => 1) : $s->close;
    },
    ws => sub {
        my ($hdr, $packet, %o) = @_;
        my $ws = PgNearWs->connect(port => $o{tls} ? $wssport : $wsport, timeout => 10,
                                   tls => $o{tls}, ca => $ca->cert);
        my $r = $ws->upgrade(path => '/');
        die "upgrade answered $r->{status}\n" unless $r->{status} == 101;
        my @frames = ({ opcode => PgNearWs::OP_BINARY, payload => $packet });
        push @frames, { opcode => PgNearWs::OP_CLOSE, close_code => 1000 } if $o{close_frame};
        $ws->send_frames(\@frames);
        close $ws->socket;
    },
);

my @CANCEL_CASES = (
    ['TCP', 'tcp', ''], ['TCP, PROXY v1', 'tcp', 'v1'], ['TCP, PROXY v2', 'tcp', 'v2'],
    ['TLS', 'tls', ''], ['TLS, PROXY v2', 'tls', 'v2'], ['TLS closed without close_notify', 'tls', '', abrupt => 1],
    ['WebSocket', 'ws', ''], ['WebSocket, close frame too', 'ws', '', close_frame => 1],
);

for my $case (@CANCEL_CASES) {
    my ($name, $how, $hdr, %o) = @$case;
    my $target = $p;
    my ($reached, $tries) = (0, 0);
    for (1 .. $TRIES) {
        $tries++;
        unless (start_sleep($victim, $login->{pid})) { diag "$name: the target never ran pg_sleep"; last }
        my $t = time;
        eval { $SEND_CANCEL{$how}->(header_bytes($hdr), cancel_packet($login->{pid}, $login->{key}), %o); 1 }
          or diag "$name: $@";
        my $res = eval { $victim->read_result } // {};
        my $dt = time - $t;
        $reached++ if $res->{error} && $res->{error}{C} eq '57014' && $dt < 10;
        if (!$res->{status}) { diag "$name: the target session broke"; last }
    }
    is $reached, $TRIES, "$name: a CancelRequest written and closed at once cancels the query ($reached of $tries)";
}

{
    my $pg = PgNearWs::Pg->connect(port => $wssport, timeout => 15, tls => 1, ca => $ca->cert);
    my $r = $pg->startup(user => 'app', database => 'movr', password => 'app-secret');
    ok $r->{ok}, 'wss: a target session logs in';
    my $reached = 0;
    for (1 .. $TRIES) {
        last unless start_sleep($pg, $r->{pid});
        eval { $SEND_CANCEL{ws}->('', cancel_packet($r->{pid}, $r->{key}), tls => 1); 1 } or diag "wss: $@";
        my $res = eval { $pg->read_result } // {};
        $reached++ if $res->{error} && $res->{error}{C} eq '57014';
    }
    is $reached, $TRIES, "wss: a CancelRequest in a frame, then close, cancels the query ($reached of $TRIES)";
}

like $p->log_contents, qr/cancel request handled/, 'pgnear logs the cancels as handled';
unlike $p->log_contents, qr/during login: client closed the connection/,
    'no cancel was taken for a client that just closed';

# ---------------------------------------------------------------- StartupMessage + Terminate, then half-close

# What PostgreSQL itself answers a login that terminates at once: the SASL request, then 08P01.
my $direct;
{
    my $s = tcp_connect($us->port);
    write_all($s, startup_packet() . $TERMINATE);
    shutdown($s, SHUT_WR);
    my ($bytes, $eof) = read_to_eof($s);
    $direct = summary(messages($bytes));
    like $direct, qr/^R:10 E:08P01$/, "directly, PostgreSQL answers startup + Terminate with $direct";
}

for my $hdr ('', 'v2') {
    my $what = $hdr ? ", PROXY $hdr" : '';
    {
        my $s = tcp_connect($p->port);
        write_all($s, header_bytes($hdr) . startup_packet() . $TERMINATE);
        shutdown($s, SHUT_WR);
        my ($bytes, $eof) = read_to_eof($s);
        is summary(messages($bytes)), $direct, "TCP$what: startup + Terminate + FIN: the answer a server gives";
        ok $eof, "TCP$what: ... then the end";
    }
    {
        my $s = tcp_connect($p->port);
        write_all($s, header_bytes($hdr) . code_packet($SSL_CODE));
        sysread($s, my $answer, 1);
        start_tls($s);
        $s->syswrite(startup_packet() . $TERMINATE);
        shutdown($s, SHUT_WR);    # the TCP end, under the TLS session
        my ($bytes, $eof) = read_to_eof($s);
        is summary(messages($bytes)), $direct, "TLS$what: startup + Terminate + FIN: the answer a server gives";
    }
}
{
    my $ws = PgNearWs->connect(port => $wsport, timeout => 10);
    $ws->upgrade(path => '/');
    $ws->send_frame(opcode => PgNearWs::OP_BINARY, payload => startup_packet() . $TERMINATE);
    shutdown($ws->socket, SHUT_WR);
    my $bytes = '';
    while (my $f = eval { $ws->read_frame(timeout => 10) }) {
        last if $f->{opcode} == PgNearWs::OP_CLOSE;
        $bytes .= $f->{payload};
    }
    # websocket_auth = cleartext asks a WebSocket client for its password (R:3) where a server asks SASL.
    (my $ws_direct = $direct) =~ s/^R:10/R:3/;
    is summary(messages($bytes)), $ws_direct,
       'WebSocket: startup + Terminate + FIN: the password request, then 08P01 as a server answers';
}
{
    # passthrough: the server authenticates, and sees the Terminate.
    my $off = length $us->log_contents;
    my $s = tcp_connect($ppass->port);
    write_all($s, pp_v2() . startup_packet() . $TERMINATE);
    close $s;
    ok wait_until(sub { substr($us->log_contents, $off) =~ /expected SASL response, got message type 88/ },
                  timeout => 5, interval => 0.05),
       'passthrough, PROXY v2: the Terminate sent before the close reaches the server';
}

# ---------------------------------------------------------------- SSLRequest / GSSENCRequest, then half-close

for my $case (['SSLRequest', $SSL_CODE, $p, 'S'], ['GSSENCRequest', $GSS_CODE, $p, 'N'],
              ['SSLRequest, client_tls = disable', $SSL_CODE, $ppass, 'N']) {
    my ($name, $code, $proxy, $want) = @$case;
    for my $hdr ($proxy == $ppass ? ('v1', 'v2') : ('', 'v1', 'v2')) {
        my $s = tcp_connect($proxy->port);
        write_all($s, header_bytes($hdr) . code_packet($code));
        shutdown($s, SHUT_WR);
        my ($bytes, $eof) = read_to_eof($s, 5);
        # After 'S' the TLS handshake meets the end: what it sends then (an alert) does not matter.
        is substr($bytes, 0, 1), $want, "$name" . ($hdr ? ", PROXY $hdr" : '') . ": answered '$want' before the end";
        ok $eof, '... then the end';
    }
}
{
    my $ws = PgNearWs->connect(port => $wsport, timeout => 10);
    $ws->upgrade(path => '/');
    $ws->send_frame(opcode => PgNearWs::OP_BINARY, payload => code_packet($SSL_CODE));
    shutdown($ws->socket, SHUT_WR);
    my $f = eval { $ws->read_frame(timeout => 5) };
    is $f && $f->{payload}, 'S', "WebSocket: an SSLRequest in a frame, then FIN: answered 'S'";
}

# ---------------------------------------------------------------- others are served meanwhile

is scalar(psql($p->conninfo, 'SELECT 41 + 1')), '42',
   'pgnear goes on serving';
$victim->terminate;

done_testing;
