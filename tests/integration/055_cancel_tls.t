# A CancelRequest sent inside TLS (SSLRequest first, as libpq 17 does)
# reaches the right server just like a plain one; and pgnear forwards it to
# the server inside TLS whenever the session's own server connection is,
# so the server's secret key never crosses the network in the clear.
# Under pooling a cancel reaches only its sender's query: two clients on
# one pooled server connection, A cancelling near the end of its query, B
# (which cancels nothing) running its own next on the same backend, in
# both pool modes, with and without server TLS, and through a peer; a
# cancel over server TLS takes effect well before its query would end, and
# its socket has TCP_NODELAY (read off pgnear's descriptor while a relay
# holds the connection), so it never waits for the server's delayed ACK;
# how many milliseconds it took is printed, not judged.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use Socket qw(AF_INET IPPROTO_TCP TCP_NODELAY sockaddr_family unpack_sockaddr_in);
use PgNearTest;

my $openssl = require_tool('openssl');
my $ca = PgNearTest::CA->new;
my $cert = $ca->issue(name => 'pgnear', cn => 'localhost',
                      san => ['DNS:localhost', 'IP:127.0.0.1'], owner => undef);
my $us = PgNearTest::Cluster->new(name => 'us-east');
my $p  = PgNearTest::Proxy->new(regions => [$us],
    settings => { auth => 'passthrough', server_tls => 'disable', client_tls => 'allow',
                  client_tls_cert_file => $cert->{cert}, client_tls_key_file => $cert->{key} });

# A session running a long query, from a raw client that knows its key.
my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
my $login = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
ok $login->{ok}, 'victim session logged in';
my $start = time;
$w->send_msg('Q', "SELECT pg_sleep(20)\0");
sleep 0.5;

# openssl s_client speaks PostgreSQL's SSLRequest preamble itself.
my $packet = pack('NNN', 16, 80877102, $login->{pid}) . $login->{key};
my ($rc, $out, $err) = run_cmd([$openssl, 's_client', '-starttls', 'postgres', '-quiet',
    '-connect', '127.0.0.1:' . $p->port, '-CAfile', $ca->cert, '-verify_return_error'],
    stdin => $packet, timeout => 10);
like $err, qr/verify return:1|depth=0/i, 'cancel went over TLS, certificate verified';

my ($error, $elapsed);
for (1 .. 50) {
    my ($type, $payload) = $w->read_msg;
    last unless defined $type;
    if ($type eq 'E') { ($error) = $payload =~ /C(\d{2}\w{3})\0/ }
    if ($type eq 'Z') { $elapsed = time - $start; last }
}
is $error, '57014', 'the query was canceled (57014)';
ok defined $elapsed && $elapsed < 3, sprintf('within seconds (%.2f s)', $elapsed // -1);
like $p->log_contents, qr/cancel request forwarded to server/, 'pgnear forwarded it';
is $w->query('SELECT 1')->{rows}[0][0], 1, 'the canceled session goes on';
$w->terminate;

# ------------------------------------------------------------ pgnear -> server

# A relay between pgnear and a TLS server records the first 8 bytes pgnear
# sends on each connection: an SSLRequest is 00000008 04d2162f, a plain
# CancelRequest 00000010 04d2162e.
my $SSLREQ = '0000000804d2162f';
my $PLAIN_CANCEL = '0000001004d2162e';
my $eu = PgNearTest::Cluster->new(name => 'eu-west', ca => $ca);

sub cancel_through {
    my ($px) = @_;
    my $v = PgNearTest::Wire->connect(host => '127.0.0.1', port => $px->port, timeout => 30);
    my $l = $v->startup(user => 'app', database => 'movr', password => 'app-secret');
    return { error => 'login failed' } unless $l->{ok};
    my $t0 = time;
    $v->send_msg('Q', "SELECT pg_sleep(20)\0");
    sleep 0.5;
    my $c = PgNearTest::Wire->connect(host => '127.0.0.1', port => $px->port, timeout => 10);
    $c->send_raw(pack('NNN', 16, 80877102, $l->{pid}) . $l->{key});
    eval { $c->read_msg };    # pgnear answers nothing and closes
    my %r;
    for (1 .. 50) {
        my ($type, $payload) = $v->read_msg;
        last unless defined $type;
        if ($type eq 'E') { ($r{code}) = $payload =~ /C(\d{2}\w{3})\0/ }
        if ($type eq 'Z') { $r{elapsed} = time - $t0; last }
    }
    $r{cluster} = $v->query('SHOW cluster_name')->{rows}[0][0];
    $v->terminate;
    return \%r;
}

for my $mode (qw(verify-full require disable)) {
    my $relay = PgNearTest::Relay->new(to => $eu->port, first_bytes => 8);
    my $px = PgNearTest::Proxy->new(
        regions => [{ name => 'eu-west', location => $eu->location, hosts => [$relay->hostport] }],
        settings => { auth => 'passthrough', server_tls => $mode, server_tls_ca_file => $ca->cert,
                      health_check_interval => 0 });
    my $r = cancel_through($px);
    is $r->{code}, '57014', "server_tls = $mode: the query on the server was canceled";
    ok defined $r->{elapsed} && $r->{elapsed} < 3, sprintf('... within seconds (%.2f s)', $r->{elapsed} // -1);
    is $r->{cluster}, 'eu-west', '... and the session goes on';
    ok PgNearTest::wait_until(sub { my @r = $relay->recorded; @r >= 2 }, timeout => 5),
      '... the relay saw the session\'s connection and the cancel\'s';
    my @seen = $relay->recorded;
    if ($mode eq 'disable') {
        ok scalar(grep { $_ eq $PLAIN_CANCEL } @seen), '... without TLS the cancel goes in plain TCP, like the session';
        like $px->log_contents, qr/cancel request forwarded to server\n/, '... and the log says so';
    } else {
        is_deeply \@seen, [$SSLREQ, $SSLREQ], '... both began with an SSLRequest: the cancel key went inside TLS';
        like $px->log_contents, qr/cancel request forwarded to server over TLS/, '... and the log says so';
    }
    $px->stop;
    $relay->stop;
}

# ------------------------------------------------------------ pooled: a cancel hits its sender's query only

my $auth_dir = tmpdir(name => 'cancel-pool');
write_file("$auth_dir/userlist.txt", qq{"app" "} . $eu->scram_verifier('app') . qq{"\n});
write_file("$auth_dir/peer_secret", unpack('H*', join '', map { chr int rand 256 } 1 .. 32) . "\n", mode => 0600);

sub pooled_proxy {
    my (%s) = @_;
    my $port = delete $s{port};
    my $regions = delete $s{regions} // [$eu];
    return PgNearTest::Proxy->new(($port ? (port => $port) : ()), regions => $regions, settings => {
        auth => 'scram', auth_file => "$auth_dir/userlist.txt", server_tls_ca_file => $ca->cert,
        # two workers: the cancel often lands on another worker than A's session
        health_check_interval => 0, workers => $ENV{PGNEAR_TEST_WORKERS} // 2, %s });
}

sub pooled_login {
    my ($px) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $px->port, timeout => 10);
    my $l = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    die 'login through pgnear failed: ' . ($l->{error} ? $l->{error}{M} : 'eof') . "\n" unless $l->{ok};
    return ($w, $l);
}

sub backend_of { $_[0]->query('SELECT pg_backend_pid()')->{rows}[0][0] }

# A sends pg_sleep(0.05) and, $at seconds in, a cancel to $cancel_port (as
# libpq does: it waits for the close; with $nowait it does not, and A goes
# on at once); reads its result.  The code: 57014 when it was canceled.
sub a_cancels_late {
    my ($a, $l, $at, $cancel_port, $nowait) = @_;
    $a->send_query('SELECT pg_sleep(0.05)');
    sleep $at;
    my @cancel = (host => '127.0.0.1', port => $cancel_port, pid => $l->{pid}, key => $l->{key});
    my $c;
    if ($nowait) {
        $c = PgNearTest::Wire->connect(@cancel);
        $c->send_raw(pack('NNN', 16, 80877102, $l->{pid}) . $l->{key});
    } else {
        PgNearTest::Wire->cancel(@cancel);
    }
    my $r = $a->read_result;
    $c->hangup if $c;
    return $r->{error} ? $r->{error}{C} : 'ok';
}

# B, which sends no cancel: its backend (told before it sleeps, so a
# canceled query tells it too), and 57014 when its query was canceled.
sub b_runs {
    my ($b) = @_;
    my $r = $b->query(q{DO $$BEGIN RAISE NOTICE '%', pg_backend_pid(); PERFORM pg_sleep(0.1); END$$});
    return ($r->{notices}[0]{M} // 0, $r->{error} ? $r->{error}{C} : 'ok');
}

my @AT = map { 0.040 + 0.0015 * $_ } 0 .. 7;    # 40 to 50.5 ms into A's 50 ms query

# Transaction pooling, pool_size 1: A and B take turns on one backend (a
# worker's; B is a client on A's worker).  $cancel_port: where A's cancel goes.
sub txn_rounds {
    my ($px, $cancel_port) = @_;
    my ($a, $l) = pooled_login($px);
    my $a_pid = backend_of($a);
    my $b;
    for (1 .. 30) {
        my ($c) = pooled_login($px);
        if (backend_of($c) == $a_pid) { $b = $c; last }
        $c->terminate;
    }
    return { error => 'no client on A\'s backend' } unless $b;
    my %n = (rounds => 0, a => 0, b => 0, shared => 0);
    for my $at (@AT) {
        $n{a}++ if a_cancels_late($a, $l, $at, $cancel_port) eq '57014';
        my ($pid, $code) = b_runs($b);
        $n{rounds}++;
        $n{shared}++ if $pid == $a_pid;
        $n{b}++ if $code eq '57014';
    }
    $_->terminate for $a, $b;
    return \%n;
}

# Session pooling, pool_size 1: A leaves after its result (every other
# round without waiting for its cancel's close: the session ends with its
# cancel on the way); B logs in and gets A's kept connection when it lands
# on A's worker (the rounds that count), once no cancel holds it back.
sub session_rounds {
    my ($px) = @_;
    my %n = (rounds => 0, a => 0, b => 0, shared => 0);
    my $tries = 0;
    while ($n{shared} < @AT && $tries++ < 5 * @AT) {
        my ($a, $l) = pooled_login($px);
        my $a_pid = backend_of($a);
        $n{a}++ if a_cancels_late($a, $l, $AT[$n{shared}], $px->port, $tries % 2) eq '57014';
        $a->terminate;
        my ($b) = pooled_login($px);
        my ($pid, $code) = b_runs($b);
        $b->terminate;
        $n{rounds}++;
        next unless $pid == $a_pid;
        $n{shared}++;
        $n{b}++ if $code eq '57014';
    }
    return \%n;
}

for my $tls (qw(disable require)) {
    for my $mode (qw(transaction session)) {
        my $px = pooled_proxy(pool_mode => $mode, server_tls => $tls, pool_size => 1);
        my $n = $mode eq 'transaction' ? txn_rounds($px, $px->port) : session_rounds($px);
        my $what = "pool_mode = $mode, server_tls = $tls";
        note "$what: ", explain($n);
        cmp_ok $n->{shared}, '>=', @AT / 2, "$what: B ran on A's backend $n->{shared} times (of $n->{rounds})";
        is $n->{b}, 0, "$what: B's query was never canceled by A's cancel ($n->{a} of A's were)";
        unlike $px->log_contents, qr/admin console session/, "$what: no session taken for the console";
        $px->stop;
    }
}

# A cancel over server TLS must not wait for the server's delayed ACK
# (40 ms): without TCP_NODELAY on its socket, Nagle held the request, sent
# just after the handshake, until that ACK came.  How long a cancel takes
# is the machine's (a loaded machine under the sanitizers takes 60-190 ms,
# the delayed ACK or not), so it is printed, not judged: what is checked
# is the socket itself.  A relay stalls the next cancel's connection after
# its SSLRequest, and the test reads TCP_NODELAY off pgnear's socket
# (pidfd_getfd: the test runs pgnear, and may take its descriptors).
sub pgnear_sockets_to {
    my ($pid, $port) = @_;
    my $pidfd = syscall(434, $pid + 0, 0);    # pidfd_open (434, 438: every architecture's number)
    die "pidfd_open($pid): $!\n" if $pidfd < 0;
    my %nodelay;
    opendir my $dir, "/proc/$pid/fd" or die "/proc/$pid/fd: $!\n";
    for my $n (grep { /^\d+$/ } readdir $dir) {
        next unless (readlink("/proc/$pid/fd/$n") // '') =~ /^socket:/;
        my $fd = syscall(438, $pidfd, $n + 0, 0);    # pidfd_getfd
        next if $fd < 0;
        open my $fh, '+<&=', $fd or do { POSIX::close($fd); next };
        my $peer = getpeername($fh);
        if ($peer && sockaddr_family($peer) == AF_INET && (unpack_sockaddr_in($peer))[0] == $port) {
            $nodelay{$n} = unpack('i', getsockopt($fh, IPPROTO_TCP, TCP_NODELAY));
        }
        close $fh;
    }
    POSIX::close($pidfd);
    return \%nodelay;
}

{
    my $px = pooled_proxy(pool_mode => 'transaction', server_tls => 'require', pool_size => 1);
    my ($v, $l) = pooled_login($px);
    my $pid = backend_of($v);
    my @ms;
    for (1 .. 7) {
        $v->send_query('SELECT pg_sleep(10)');
        $eu->wait_sleeping($pid);
        my $t0 = time;
        PgNearTest::Wire->cancel(host => '127.0.0.1', port => $px->port, pid => $l->{pid}, key => $l->{key});
        my $r = $v->read_result;
        push @ms, 1000 * (time - $t0) if ($r->{error}{C} // '') eq '57014';
    }
    @ms = sort { $a <=> $b } @ms;
    is scalar(@ms), 7, 'server TLS: 7 cancels, 7 queries canceled';
    cmp_ok $ms[-1] // 1e9, '<', 5000, '... each well before its pg_sleep(10) would have ended';
    note sprintf('server TLS: from the cancel to the error, median %.1f ms (all: %s)',
                 $ms[3] // -1, join(' ', map { sprintf '%.1f', $_ } @ms));
    $v->terminate;
    $px->stop;
}
{
    my $relay = PgNearTest::Relay->new(to => $eu->port);
    my $px = pooled_proxy(pool_mode => 'transaction', server_tls => 'require', pool_size => 1,
                          regions => [{ name => 'eu-west', location => $eu->location, hosts => [$relay->hostport] }]);
    my ($v, $l) = pooled_login($px);
    my $pid = backend_of($v);
    my $before = pgnear_sockets_to($px->pid, $relay->port);
    ok %$before && !grep({ !$_ } values %$before), "the session's server connection has TCP_NODELAY"
      or diag explain $before;
    # The relay weighs a connection's first 4 kB: the session's began with an SSLRequest too.
    is $v->query("SELECT length('" . ('x' x 5000) . "')")->{rows}[0][0], 5000, 'the session sends 5 kB';
    $relay->intercept(match => pack('NN', 8, 80877103), count => 1, action => 'stall');    # SSLRequest
    $v->send_query('SELECT pg_sleep(10)');
    $eu->wait_sleeping($pid);
    my $c = PgNearTest::Wire->connect(host => '127.0.0.1', port => $px->port, timeout => 10);
    $c->send_raw(pack('NNN', 16, 80877102, $l->{pid}) . $l->{key});
    my $cancel_fd;
    ok PgNearTest::wait_until(sub {
        my $now = pgnear_sockets_to($px->pid, $relay->port);
        ($cancel_fd) = grep { !exists $before->{$_} } keys %$now;
        return defined $cancel_fd && ($relay->intercepted)[0];
    }, timeout => 10), 'the cancel\'s connection to the server, held by the relay after its SSLRequest';
    is pgnear_sockets_to($px->pid, $relay->port)->{$cancel_fd // -1}, 1,
      '... has TCP_NODELAY: the request goes out as soon as the handshake ends';
    $c->hangup;
    $v->hangup;
    $px->stop;
    $relay->stop;
}

# Peers: A's cancel goes to the other instance of a fleet, which forwards it.
{
    my @port = map { free_port() } 1 .. 2;
    my $peers = "1\@127.0.0.1:$port[0], 2\@127.0.0.1:$port[1]";
    my @fleet = map {
        pooled_proxy(port => $port[$_], pool_mode => 'transaction', pool_size => 1, server_tls => 'require',
                     peer_id => $_ + 1, peers => $peers, peer_secret_file => "$auth_dir/peer_secret")
    } 0 .. 1;
    my $n = txn_rounds($fleet[0], $port[1]);
    note 'peers: ', explain($n);
    is $n->{b}, 0, "peers: B's query was never canceled by A's cancel through the other instance ($n->{a} of A's were)";
    like $fleet[1]->log_contents, qr/cancel request forwarded to peer 1/, '... forwarded by instance 2';
    like $fleet[0]->log_contents, qr/cancel request for c\d+ \(server process \d+\)/, '... to instance 1, which holds A';
    $_->stop for @fleet;
}

done_testing;
