# A CancelRequest sent inside TLS (SSLRequest first, as libpq 17 does)
# reaches the right server just like a plain one.
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

done_testing;
