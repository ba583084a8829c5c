# PostgreSQL over WebSocket (issue 10), the HTTP side of websocket_port:
# /healthz (200 while a region is up, 503 once every region is down, 200
# again after they return); the upgrade on each websocket_path (a query
# string ignored), Sec-WebSocket-Accept (RFC 6455's example), a request
# sent byte by byte; the error answers (404 wrong path, 400 not an upgrade
# or a bad key, 426 + Sec-WebSocket-Version: 13, 405 not GET, 431 a head
# too large), each closing the connection; slowloris: 500 connections
# trickling a request neither keep TCP nor WebSocket clients from working
# and are closed (408) after websocket_handshake_timeout; max_client_conn
# shared by TCP and WebSocket clients; wss (websocket_tls = on), and a plain
# request to it failing; a custom websocket_path list, counted in the
# upgrade and refusal metrics; locality headers from a peer outside
# trusted_proxies: 403 under websocket_untrusted = refuse, ignored with a
# warning under ignore, used from a trusted peer.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IO::Select;
use IO::Socket::IP;
use Time::HiRes qw(time sleep);
use PgNearTest;
use PgNearWs qw(ws_accept);

$SIG{PIPE} = 'IGNORE';    # a peer that closed first must not kill the test
require_tool($_) for qw(psql openssl curl);
PgNearWs::require_ssl();
die "PGNEAR is not set; point it at the pgnear binary\n" unless $ENV{PGNEAR} && -x $ENV{PGNEAR};

my $t0 = time;
my $HANDSHAKE_TIMEOUT = 3;    # seconds: websocket_handshake_timeout below
my $us = PgNearTest::Cluster->new(name => 'us-east');
my $eu = PgNearTest::Cluster->new(name => 'eu-west');
my $wsport = free_port();
my $started = time;
my $p = PgNearTest::Proxy->new(regions => [$us, $eu],
    settings => { auth => 'passthrough', websocket_port => $wsport, health_check_interval => '1s',
                  websocket_handshake_timeout => "${HANDSHAKE_TIMEOUT}s" });
$p->wait_healthy($started, $us, $eu);

sub ws { PgNearWs->connect(port => $_[0] // $wsport, timeout => 10) }

# One raw request (bytes) -> the response; ->{closed}: the connection then ended.
sub raw_request {
    my ($bytes, %o) = @_;
    my $ws = ws($o{port});
    $ws->send_raw($bytes, chunk => $o{chunk}, pause => $o{pause});
    my $r = $ws->read_http_response;
    $r->{closed} = $r->{eof} || $ws->eof_within(5);
    return $r;
}

sub healthz {
    my ($port) = @_;
    return raw_request("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", port => $port);
}

sub ws_login {
    my (%o) = @_;
    my $pg = PgNearWs::Pg->connect(port => $wsport, timeout => 10, %o);
    my $r = $pg->startup(user => 'app', database => 'movr', password => 'app-secret');
    return ($pg, $r);
}

# ---------------------------------------------------------------- /healthz

{
    my $r = healthz();
    is $r->{status}, 200, '/healthz: 200 while the regions are up';
    like $r->{body}, qr/\Aok\r?\n?\z/, '... body ok';
    ok $r->{closed}, '... and the connection is closed after the answer';
}

# ---------------------------------------------------------------- upgrades

for my $path ('/', '/v2', '/v2?address=foo:5432', '/?x=1') {
    my $ws = ws();
    my $r = $ws->upgrade(path => $path);
    is $r->{status}, 101, "upgrade on $path: 101";
    ok $r->{accept_ok}, '... Sec-WebSocket-Accept right';
    like $r->{headers}{upgrade} // '', qr/^websocket$/i, '... Upgrade: websocket';
    like $r->{headers}{connection} // '', qr/\bupgrade\b/i, '... Connection: Upgrade';
}
{
    my $ws = ws();
    my $r = $ws->upgrade(path => '/v2', key => 'dGhlIHNhbXBsZSBub25jZQ==');
    is $r->{headers}{'sec-websocket-accept'}, 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=',
      'RFC 6455\'s example key gets its Sec-WebSocket-Accept';
    is ws_accept('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', '(and so does the client\'s own)';

    $ws = ws();
    $r = $ws->upgrade(path => '/', headers => ['Sec-WebSocket-Protocol' => 'pg, chat']);
    is $r->{status}, 101, 'an upgrade offering subprotocols: 101';
    ok !exists $r->{headers}{'sec-websocket-protocol'}, '... none of them echoed';

    # A browser fails an upgrade that ignores its offer, so pgnear echoes a
    # byte-stream subprotocol when one is offered (ws branch, 7adeff0; the
    # contract said none).  Whatever comes back must be one of the offered
    # values, spelled as offered (RFC 6455 4.1; browsers compare exactly).
    for my $offer (['binary', 'binary'], ['chat, postgresql', 'postgresql'], ['x, postgres, binary', 'postgres'],
                   ['Binary', undef]) {
        $ws = ws();
        $r = $ws->upgrade(path => '/', headers => ['Sec-WebSocket-Protocol' => $offer->[0]]);
        my $got = $r->{headers}{'sec-websocket-protocol'};
        my %offered = map { $_ => 1 } split /\s*,\s*/, $offer->[0];
        ok !defined $got || $offered{$got}, "offering '$offer->[0]': the answer is one of the offered values"
          . ' (' . ($got // 'none') . ')';
        is $got, $offer->[1], "... '" . ($offer->[1] // 'none') . "' echoed" if defined $offer->[1];
    }
}
{
    my ($pg, $r) = ws_login(path => '/v2?address=foo:5432');
    ok $r->{ok}, '/v2?address=foo:5432 (the Neon driver\'s URL): a login' or diag explain $r;
    is $pg->query('SELECT 1 + 1')->{rows}[0][0], 2, '... and a query';
}
{
    # The request one byte per TCP write, then PostgreSQL.
    my $ws = ws();
    my $r = $ws->upgrade(path => '/v2', chunk => 1, pause => 0.002);
    is $r->{status}, 101, 'a request sent one byte per write: 101';
    ok $r->{accept_ok}, '... Sec-WebSocket-Accept right';
    my $pg = PgNearWs::Pg->over($ws);
    ok $pg->startup(user => 'app', database => 'movr', password => 'app-secret')->{ok}, '... then a login';

    # The request and a first frame in one write: RFC 6455 4.1 has the
    # client wait for the answer; pgnear refuses bytes sent before it.
    $ws = ws();
    my $body = pack('N', 0x30000) . "user\0app\0database\0movr\0\0";
    my $frame = PgNearWs::ws_frame(opcode => PgNearWs::OP_BINARY, payload => pack('N', 4 + length $body) . $body);
    $ws->send_raw($ws->request_head(path => '/') . $frame);
    $r = $ws->read_http_response;
    is $r->{status}, 400, 'a frame sent with the request, before the answer: 400';
    ok $r->{eof} || $ws->eof_within(5), '... and the connection is closed';
}

# ---------------------------------------------------------------- errors

sub error_case {
    my ($what, $status, $bytes, %o) = @_;
    my $r = raw_request($bytes, %o);
    is $r->{status}, $status, "$what: $status" or diag "sent:\n$bytes\ngot:\n" . ($r->{raw} // '') . ($r->{body} // '');
    ok $r->{closed}, '... and the connection is closed';
    return $r;
}

my $key = PgNearWs::ws_random_key();
my $std = "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        . "Sec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 13\r\n";
error_case('a wrong path', 404, "GET /nope HTTP/1.1\r\n$std\r\n");
error_case('no Host', 400, "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           . "Sec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 13\r\n\r\n");
error_case('a path that only starts like one', 404, "GET /v2x HTTP/1.1\r\n$std\r\n");
error_case('GET / without Upgrade/Connection', 400, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
error_case('Upgrade: websocket without Connection: Upgrade', 400,
           "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nSec-WebSocket-Key: $key\r\n"
           . "Sec-WebSocket-Version: 13\r\n\r\n");
error_case('a Sec-WebSocket-Key that is not 16 bytes in base64', 400,
           "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           . "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n");
error_case('no Sec-WebSocket-Key', 400,
           "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           . "Sec-WebSocket-Version: 13\r\n\r\n");
{
    my $r = error_case('Sec-WebSocket-Version: 8', 426,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        . "Sec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 8\r\n\r\n");
    is $r->{headers}{'sec-websocket-version'}, '13', '... with Sec-WebSocket-Version: 13';
}
error_case('POST', 405, "POST / HTTP/1.1\r\n$std" . "Content-Length: 0\r\n\r\n");
error_case('PUT /healthz', 405, "PUT /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");

# A head too large: sent in 1 kB writes until pgnear answers (it may stop
# reading at its limit; sending on would reset the connection and lose the answer).
sub too_large {
    my ($what, $bytes) = @_;
    my $ws = ws();
    my $sel = IO::Select->new($ws->socket);
    my $sent = 0;
    while ($sent < length $bytes && !$sel->can_read(0)) {
        $ws->send_raw(substr($bytes, $sent, 1024));
        $sent += 1024;
        sleep 0.005;
    }
    my $r = $ws->read_http_response;
    is $r->{status}, 431, "$what: 431" or diag "got: " . ($r->{raw} // '');
    ok $r->{eof} || $ws->eof_within(5), '... and the connection is closed';
    note "431 after $sent bytes";
}
too_large('a 17 kB header line', "GET / HTTP/1.1\r\n$std" . 'X-Big: ' . ('a' x 17000) . "\r\n\r\n");
too_large('a 17 kB head of 80 short headers',
          "GET / HTTP/1.1\r\n$std" . join('', map { "X-H$_: " . ('b' x 200) . "\r\n" } 1 .. 80) . "\r\n");

is healthz()->{status}, 200, 'after the error answers /healthz still answers 200';

# ---------------------------------------------------------------- slowloris

{
    my $N = 500;
    my @slow;
    my $ct = time;
    for my $i (1 .. $N) {
        my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $wsport, Proto => 'tcp', Timeout => 5)
          or die "slowloris connection $i: $@\n";
        $s->blocking(0);
        syswrite($s, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        push @slow, { s => $s, t => time, got => '', closed => undef };
    }
    my $silent = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $wsport, Proto => 'tcp') or die;
    my $silent_t = time;
    note sprintf '%d slow connections opened in %.2f s', $N, time - $ct;

    my $trickle_next = 0;
    my $trickle = sub {
        return if time < $trickle_next;
        $trickle_next = time + 0.5;
        syswrite($_->{s}, 'X') for grep { !defined $_->{closed} } @slow;    # never a whole line
    };
    $trickle->();

    # Normal clients while they are open.
    my $t = time;
    my ($rc, $out, $err) = psql($p->conninfo, 'SELECT 11', timeout => 10);
    my $psql_s = time - $t;
    is $out, '11', "psql over TCP works while $N slow handshakes are open" or diag $err;
    ok $psql_s < 2, sprintf('... promptly (%.2f s)', $psql_s);
    $trickle->();
    $t = time;
    my ($pg, $r) = eval { ws_login() };
    my $q = $pg && $r->{ok} ? $pg->query('SELECT 12') : {};
    my $ws_s = time - $t;
    is $q->{rows} && $q->{rows}[0][0], 12, "a WebSocket client logs in and queries while they are open"
      or diag $@;
    ok $ws_s < 2, sprintf('... promptly (%.2f s)', $ws_s);
    is healthz()->{status}, 200, '/healthz answers meanwhile';

    # Every slow one is closed after websocket_handshake_timeout, trickling or not.
    my $sel = IO::Select->new(map { $_->{s} } @slow);
    my %by_fd = map { fileno($_->{s}) => $_ } @slow;
    my $deadline = time + $HANDSHAKE_TIMEOUT + 6;
    while ($sel->count && time < $deadline) {
        $trickle->();
        for my $s ($sel->can_read(0.1)) {
            my $c = $by_fd{ fileno $s };
            my $n = sysread($s, my $buf, 4096);
            next if !defined $n && $!{EAGAIN};
            if ($n) { $c->{got} .= $buf; next }
            $c->{closed} = time - $c->{t};
            $sel->remove($s);
        }
    }
    my @closed = grep { defined $_->{closed} } @slow;
    is scalar @closed, $N, "all $N slow handshakes were closed";
    my @lives = sort { $a <=> $b } map { $_->{closed} } @closed;
    ok @lives && $lives[0] >= $HANDSHAKE_TIMEOUT - 0.5, sprintf('... none before websocket_handshake_timeout (first after %.2f s)', $lives[0] // -1);
    ok @lives && $lives[-1] <= $HANDSHAKE_TIMEOUT + 3, sprintf('... all soon after it (last after %.2f s)', $lives[-1] // -1);
    my $n408 = grep { $_->{got} =~ m{^HTTP/1\.1 408 } } @slow;
    is $n408, $N, '... each answered 408 (something had arrived)';
    my $silent_closed = IO::Select->new($silent)->can_read(3) && !sysread($silent, my $b, 100);
    ok $silent_closed, 'a connection that sent nothing is closed too, without an answer';
    close $_->{s} for @slow;
    my ($rc2, $out2) = psql($p->conninfo, 'SELECT 13');
    is $out2, '13', 'psql still works after the slowloris';
}

# ---------------------------------------------------------------- /healthz follows the regions

{
    $us->stop;
    ok $p->wait_for_log(qr/region us-east is down/, timeout => 15), 'us-east stopped: pgnear finds it down';
    is healthz()->{status}, 200, '/healthz: still 200 with one region up';
    $eu->stop;
    my $r;
    ok wait_until(sub { $r = healthz(); $r->{status} == 503 }, timeout => 15, interval => 0.5),
      '/healthz: 503 once every region is down' or diag explain $r;
    ok $r->{closed}, '... and the connection is closed after the answer';
    $us->start;
    $eu->start;
    ok wait_until(sub { healthz()->{status} == 200 }, timeout => 20, interval => 0.5),
      '/healthz: 200 again after the regions are back';
    $p->wait_healthy(time - 10, $us, $eu);
}

# ---------------------------------------------------------------- max_client_conn

{
    my $mport = free_port();
    my $mp = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'passthrough', websocket_port => $mport, max_client_conn => 3,
                      client_login_timeout => '5s' });
    my @tcp;
    for my $i (1 .. 3) {
        my $w = PgNearTest::Wire->connect(port => $mp->port);
        ok $w->startup(user => 'app', database => 'movr', password => 'app-secret')->{ok}, "max_client_conn = 3: TCP session $i";
        push @tcp, $w;
    }
    # pgnear may answer before reading the request: read first, to not lose it to a reset.
    my $full = PgNearWs->connect(port => $mport);
    my $r = IO::Select->new($full->socket)->can_read(0.3)
      ? $full->read_http_response : $full->upgrade(path => '/');
    is $r->{status}, 503, 'TCP sessions fill max_client_conn: a WebSocket upgrade gets 503' or diag explain $r;
    ok $r->{eof} || $full->eof_within(5), '... and is closed';

    (shift @tcp)->terminate;
    my ($pg, $lr);
    ok wait_until(sub {
        ($pg, $lr) = eval { ws_login(port => $mport) };
        $lr && $lr->{ok};
    }, timeout => 5, interval => 0.2), 'after one TCP session ends a WebSocket session gets in';
    my @ws = ($pg);
    $_->terminate for @tcp;
    sleep 0.5;
    for (1 .. 2) {
        my ($x, $xr) = ws_login(port => $mport);
        ok $xr->{ok}, 'another WebSocket session';
        push @ws, $x;
    }
    my $w = PgNearTest::Wire->connect(port => $mp->port);
    my $tr = eval { $w->startup(user => 'app', database => 'movr', password => 'app-secret') };
    is $tr && $tr->{error} && $tr->{error}{C}, '53300', 'WebSocket sessions fill max_client_conn: a TCP login gets 53300'
      or diag explain $tr;
    is $ws[0]->query('SELECT 3')->{rows}[0][0], 3, 'the WebSocket sessions still work';
    $_->terminate for @ws;
    $mp->stop(signal => 'INT'); # its sessions are still open: SIGTERM would wait for them
}

# ---------------------------------------------------------------- wss

{
    my $ca = PgNearTest::CA->new;
    my $cert = $ca->issue(name => 'pgnear', cn => 'localhost', san => ['DNS:localhost', 'IP:127.0.0.1'], owner => undef);
    my $tport = free_port();
    my $tp = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'passthrough', websocket_port => $tport, websocket_tls => 'on',
                      client_tls => 'allow', client_tls_cert_file => $cert->{cert},
                      client_tls_key_file => $cert->{key} });
    my $pg = PgNearWs::Pg->connect(port => $tport, tls => 1, ca => $ca->cert, timeout => 10);
    my $r = $pg->startup(user => 'app', database => 'movr', password => 'app-secret');
    ok $r->{ok}, 'wss: a login over TLS' or diag explain $r;
    is $pg->query('SELECT 21')->{rows}[0][0], 21, '... and a query';
    is $pg->socket->get_sslversion =~ /TLSv1_[23]/ ? 1 : 0, 1, '... TLS 1.2 or 1.3 (' . $pg->socket->get_sslversion . ')';
    $pg->terminate;

    my $ws = PgNearWs->connect(port => $tport, tls => 1, ca => $ca->cert);
    my $pr = $ws->upgrade(path => '/v2');
    is $pr->{status}, 101, 'wss: upgrade on /v2';

    my $plain = ws($tport);
    $plain->send_raw("GET / HTTP/1.1\r\n$std\r\n");
    my $got = '';
    my $closed = 0;
    my $sel = IO::Select->new($plain->socket);
    my $end = time + 8;
    while (time < $end && $sel->can_read($end - time)) {
        my $n = sysread($plain->socket, my $buf, 4096);
        if (!$n) { $closed = 1; last }
        $got .= $buf;
    }
    unlike $got, qr{^HTTP/1\.1 101}, 'wss: a plain HTTP upgrade request is not answered 101';
    ok $closed, '... and the connection is closed';
    $tp->stop(signal => 'INT');
}

# ---------------------------------------------------------------- websocket_path

{
    my $pport = free_port();
    my $mport = free_port();
    my $pp = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'passthrough', websocket_port => $pport, websocket_path => '/db, /a/b',
                      metrics_addr => "127.0.0.1:$mport" });
    my @keep;
    for my $case (['/db', 101], ['/a/b?address=x:5432', 101], ['/', 404], ['/v2', 404], ['/a', 404]) {
        my $ws = ws($pport);
        my $r = $ws->upgrade(path => $case->[0]);
        is $r->{status}, $case->[1], "websocket_path = /db, /a/b: $case->[0] -> $case->[1]";
        push @keep, $ws;
    }
    is healthz($pport)->{status}, 200, '... /healthz whatever the paths';

    # The metrics count them: 2 upgrades, 3 refusals (/healthz is neither).
    my ($rc, $out, $err) = run_cmd([require_tool('curl'), '-s', '-S', "http://127.0.0.1:$mport/metrics"], timeout => 10);
    is $rc, 0, 'metrics scraped' or diag $err;
    my %m = map { /^(pgnear_websocket_\w+?)(?:\{[^}]*\})? (\S+)$/ ? ($1 => $2) : () } split /\n/, $out;
    is $m{pgnear_websocket_upgrades_total}, 2, 'pgnear_websocket_upgrades_total counts the 2 upgrades';
    is $m{pgnear_websocket_refused_total}, 3, 'pgnear_websocket_refused_total counts the 3 refusals';
    $pp->stop(signal => 'INT'); # its sessions are still open: SIGTERM would wait for them
}

# ---------------------------------------------------------------- untrusted locality headers

{
    my $rport = free_port();
    my $rp = PgNearTest::Proxy->new(regions => [$us, $eu],
        settings => { auth => 'passthrough', websocket_port => $rport, websocket_untrusted => 'refuse' });
    for my $h (['X-Region' => 'eu-west'], ['cf-ipcity' => 'Dublin'], ['X-Forwarded-For' => '203.0.113.7']) {
        my $ws = ws($rport);
        my $r = $ws->upgrade(path => '/', headers => $h);
        is $r->{status}, 403, "websocket_untrusted = refuse: $h->[0] from an untrusted peer: 403";
        ok $r->{eof} || $ws->eof_within(5), '... and the connection is closed';
    }
    my ($pg, $lr) = ws_login(port => $rport);
    ok $lr->{ok}, '... while a request without locality headers is accepted';
    $rp->stop(signal => 'INT'); # its sessions are still open: SIGTERM would wait for them

    my $iport = free_port();
    my $ip = PgNearTest::Proxy->new(regions => [$us, $eu],
        settings => { auth => 'passthrough', websocket_port => $iport, websocket_untrusted => 'ignore' });
    my $off = $ip->log_size;
    ($pg, $lr) = ws_login(port => $iport, headers => ['X-Region' => 'eu-west']);
    ok $lr->{ok}, 'websocket_untrusted = ignore: X-Region from an untrusted peer is accepted' or diag explain $lr;
    is $pg->query('SHOW cluster_name')->{rows}[0][0], 'us-east', '... and ignored (the default region)';
    ok $ip->wait_for_log(qr/locality headers from 127\.0\.0\.1\S* ignored: not in trusted_proxies/, offset => $off),
      '... with a warning in the log';
    $ip->stop(signal => 'INT'); # its sessions are still open: SIGTERM would wait for them

    my $tport = free_port();
    my $tp = PgNearTest::Proxy->new(regions => [$us, $eu],
        settings => { auth => 'passthrough', websocket_port => $tport, websocket_untrusted => 'refuse',
                      trusted_proxies => '127.0.0.1/32' });
    ($pg, $lr) = ws_login(port => $tport, headers => ['X-Region' => 'eu-west']);
    ok $lr->{ok}, 'X-Region from a trusted peer: accepted' or diag explain $lr;
    is $pg->query('SHOW cluster_name')->{rows}[0][0], 'eu-west', '... and used';
    $tp->stop(signal => 'INT');
}

is $p->stop(signal => 'TERM'), 0, 'pgnear exits 0';
note sprintf 'elapsed %.1f s', time - $t0;
done_testing;
