# A CancelRequest sent inside TLS (SSLRequest first, as libpq 17 does)
# reaches the right server just like a plain one; and pgnear forwards it to
# the server inside TLS whenever the session's own server connection is,
# so the server's secret key never crosses the network in the clear.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
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

done_testing;
