# Idle clients hold no buffers (proxy/runtime/buffer_pool.h,
# endpoint_park): under transaction pooling a client between
# transactions gives its two buffers back to its worker until its next
# bytes, and nothing it sees changes; a WebSocket client's frame state
# (wslay's, some 4 KiB) goes too (protocol/ws.h, ws_rest).  With one worker
# and with two, 20 plain clients, 3 over TLS and 2 over a WebSocket log in
# and run a query: SHOW LISTS then counts all 25 as clients_quiet, with
# buffers_spare within its bound.  Each then sends a 900 kB query (its input lent again)
# and reads a 300,000-byte answer in 2,000 rows, checked byte for byte,
# and goes quiet again; a quiet client's pipelined batch (100 queries in
# one write) is answered in order.  A quiet listener gets a NOTIFY made
# by another client, with its payload, as a direct listener in the same
# script does.  Ending quiet clients still tells them why: KILL gives
# 57P01, client_idle_timeout 57P05, and SIGINT's stop 57P01, each read by
# the client before the end of its stream; the pooled server connections
# are unaffected (the rest of the crowd answers after each).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Digest::MD5 qw(md5_hex);
use Time::HiRes qw(time sleep);
use PgNearTest;
use PgNearWs;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql openssl);

my $ca = PgNearTest::CA->new;
my $cert = $ca->issue(name => 'pgnear', cn => 'localhost', san => ['DNS:localhost', 'IP:127.0.0.1'],
                      owner => undef);
my $us = PgNearTest::Cluster->new(name => 'us-east');
my $auth_dir = tmpdir(name => 'quiet-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist,
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

my ($PLAIN, $TLS, $WS) = (20, 3, 2);
my %wsport;

sub proxy {
    my ($workers, %o) = @_;
    my $wsport = free_port();
    my $p = PgNearTest::Proxy->new(regions => [$us], settings => {
        auth => 'scram', auth_file => $userlist, admin_users => 'admin', server_tls => 'disable',
        pool_mode => 'transaction', pool_size => 4, workers => $workers, client_tls => 'allow',
        client_tls_cert_file => $cert->{cert}, client_tls_key_file => $cert->{key},
        websocket_port => $wsport, websocket_tls => 'off', websocket_auth => 'scram', %o });
    $wsport{$p} = $wsport;
    return $p;
}

# The i-th client (from 1) of a crowd: plain, then TLS, then WebSocket.
sub kind_of { my ($i) = @_; $i <= $PLAIN ? 'plain' : $i <= $PLAIN + $TLS ? 'tls' : 'ws' }

sub lists { my ($p) = @_; return { map { ($_->{list} => $_->{items}) } $p->admin_rows('SHOW LISTS') } }

sub login {
    my ($p, $kind, $app) = @_;
    my $w = $kind eq 'tls'
      ? PgNearTest::TlsWire->connect(host => '127.0.0.1', port => $p->port, ca => $ca->cert, timeout => 30)
      : $kind eq 'ws' ? PgNearWs::Pg->connect(port => $wsport{$p}, timeout => 30)
      : PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => [application_name => $app // 'quiet']);
    die 'login failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n" unless $r->{ok};
    return $w;
}

sub one {
    my ($w, $sql) = @_;
    my $q = $w->query($sql);
    return $q->{error} ? "ERROR $q->{error}{C} $q->{error}{M}" : $q->{rows}[0][0];
}

# SHOW LISTS until clients_quiet is $n (the last answers' sends complete after they are read).
sub quiet_is {
    my ($p, $n, $name) = @_;
    my $l;
    wait_until(sub { $l = lists($p); ($l->{clients_quiet} // -1) == $n }, timeout => 10);
    is $l->{clients_quiet}, $n, $name;
    return $l;
}

# The SQLSTATE of the ErrorResponse a quiet client reads, then whether its stream ended.
sub told_then_ended {
    my ($w) = @_;
    my @codes = $w->errors_until_eof;
    return join ',', @codes;
}

for my $workers (1, 2) {
    my $p = proxy($workers);
    my @c = map { login($p, kind_of($_)) } 1 .. $PLAIN + $TLS + $WS;
    my $n = @c;
    my @got = map { one($c[$_], "SELECT $_ + 1000") } 0 .. $#c;
    is_deeply \@got, [map { $_ + 1000 } 0 .. $#c],
        "workers = $workers: $n clients ($TLS over TLS, $WS over a WebSocket) ran a query";
    my $l = quiet_is($p, $n, "workers = $workers: SHOW LISTS: all $n idle clients quiet (no buffers held)");
    is $l->{clients_active}, $n, '... of as many active';
    cmp_ok $l->{buffers_spare}, '<=', 256 * $workers, "... buffers_spare within its bound ($l->{buffers_spare})";

    # Woken by their own bytes: a 900 kB query in, 300,000 bytes of rows out, byte for byte.
    my $big = 'q' x 900_000;    # under TXN_SCAN_MAX: a longer one pins its session
    my ($ok_in, $ok_out) = (0, 0);
    for my $w (@c) {
        $ok_in++ if one($w, "SELECT md5('$big')") eq md5_hex($big);
        my $q = $w->query(q{SELECT i, repeat(md5(i::text), 4) || 'xxxxxxxxxxxxxxxxxxxxxx' FROM generate_series(1, 2000) i});
        $ok_out++ if !$q->{error} && @{ $q->{rows} } == 2000
          && join('', map { $_->[1] } @{ $q->{rows} })
             eq join('', map { md5_hex($_) x 4 . 'x' x 22 } 1 .. 2000);
    }
    is $ok_in, $n, "workers = $workers: each quiet client's 900 kB query answered right";
    is $ok_out, $n, '... and its 2,000 rows (300,000 bytes) arrived whole and in order';
    quiet_is($p, $n, '... and all went quiet again');

    # A pipelined batch in one write from a quiet client: answered in order.
    my $w0 = $c[0];
    $w0->send_raw(join '', map { my $s = "SELECT $_\0"; pack('a N', 'Q', 4 + length $s) . $s } 1 .. 100);
    my @answers = map { my $r = $w0->read_result; $r->{error} ? 'E' : $r->{rows}[0][0] } 1 .. 100;
    is_deeply \@answers, [1 .. 100], "workers = $workers: 100 pipelined queries from a quiet client answered in order";
    my $ws0 = $c[-1];
    $ws0->send_raw(join '', map { my $s = "SELECT $_\0"; pack('a N', 'Q', 4 + length $s) . $s } 1 .. 100);
    @answers = map { my $r = $ws0->read_result; $r->{error} ? 'E' : $r->{rows}[0][0] } 1 .. 100;
    is_deeply \@answers, [1 .. 100], '... and from a quiet WebSocket client, in one frame';

    # A quiet listener, beside a direct one.
    my $lsn = $c[1];
    is $lsn->query('LISTEN quiet_jobs')->{tag}, 'LISTEN', "workers = $workers: a client LISTENs";
    my $direct = PgNearTest::Wire->connect(host => '127.0.0.1', port => $us->port, timeout => 30);
    ok $direct->startup(user => 'app', database => 'movr', password => 'app-secret')->{ok}, '... and a direct one';
    is $direct->query('LISTEN quiet_jobs')->{tag}, 'LISTEN', '... LISTENs too';
    quiet_is($p, $n, '... the listener is quiet too');
    ok !$c[2]->query(q{SELECT pg_notify('quiet_jobs', 'for the quiet')})->{error}, '... another client NOTIFYs';
    for ([$lsn, 'through pgnear'], [$direct, 'directly']) {
        my ($w, $how) = @$_;
        my $got;
        my $deadline = time + 10;
        while (!$got && time < $deadline) {
            my $r = $w->query('SELECT 1');    # what came before the answer is read with it
            ($got) = grep { $_->{channel} eq 'quiet_jobs' } @{ $r->{notifications} // [] };
            sleep 0.1 unless $got;
        }
        is $got && $got->{payload}, 'for the quiet', "workers = $workers: the listener $how gets the notification";
    }
    $direct->terminate;

    # Ending a quiet client tells it why.
    my $victim = login($p, 'plain', 'victim');
    is one($victim, 'SELECT 1'), 1, "workers = $workers: one more client runs a query";
    quiet_is($p, $n + 1, '... and is quiet');
    my ($vid) = map { $_->{id} } grep { ($_->{application_name} // '') eq 'victim' } $p->admin_rows('SHOW CLIENTS');
    ok defined $vid, '... SHOW CLIENTS shows it';
    $p->admin_rows("KILL $vid");
    is told_then_ended($victim), '57P01', '... KILLed quiet, it reads 57P01, then the end';
    my @told = map { one($_, 'SELECT 7') } @c;
    is scalar(grep { $_ eq '7' } @told), $n, '... and the others still answer';

    # client_idle_timeout: a quiet client is ended with 57P05 and told so.
    {
        my $q = proxy($workers, client_idle_timeout => '1s');
        my $w = login($q, 'plain');
        is one($w, 'SELECT 1'), 1, "workers = $workers: client_idle_timeout = 1s: a client runs a query";
        is told_then_ended($w), '57P05', '... and, quiet past the timeout, reads 57P05, then the end';
        my $t = login($q, 'tls');
        is one($t, 'SELECT 1'), 1, '... a TLS client too';
        is told_then_ended($t), '57P05', '... reads 57P05, then the end';
        my $ws = login($q, 'ws');
        is one($ws, 'SELECT 1'), 1, '... a WebSocket client too';
        is told_then_ended($ws), '57P05', '... reads 57P05 (its frame state made again), then the end';
        $q->stop;
    }

    # SIGINT: every quiet client is told 57P01 before its stream ends.
    my @last = @c[0 .. 4, -2, -1];
    quiet_is($p, $n, "workers = $workers: all quiet before SIGINT");
    $p->stop(signal => 'INT');
    is_deeply [map { told_then_ended($_) } @last], [('57P01') x 7],
      "workers = $workers: SIGINT: quiet clients (two over a WebSocket) read 57P01, then the end";
}

done_testing;
