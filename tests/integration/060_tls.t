# TLS on both sides of pgnear: client_tls = allow | require | disable with
# pgnear's own certificate, server_tls = verify-full | require | prefer
# against servers with good, foreign, misnamed or no certificates, and the
# SSLRequest / GSSENCRequest corner cases of the protocol.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time);
use PgNearTest;
use DBI;
use Socket ();

my $t0 = time;
$SIG{PIPE} = 'IGNORE';    # a peer that closed first must not kill the test
require_tool($_) for qw(psql openssl);

# ---------------------------------------------------------------- helpers


# First log line after $off that matches $re (bounded wait).
sub log_after {
    my ($p, $off, $re) = @_;
    return $p->wait_for_log($re, offset => $off, timeout => 5);
}

# Error of a plain-text login through pgnear (Wire), as {C, M, D, ...}.
sub wire_login {
    my ($p, %o) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    my $r = $w->startup(user => $o{user} // 'app', database => 'movr', password => $o{password} // 'app-secret');
    my $q = $r->{ok} ? $w->query($o{sql} // 'SELECT 1') : undef;
    $w->terminate;
    return ($r, $q);
}

my $SSL_ON = 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()';

# ---------------------------------------------------------------- servers

my $ca    = PgNearTest::CA->new;
my $other = PgNearTest::CA->new(cn => 'Some Other CA');
my $us    = PgNearTest::Cluster->new(name => 'us-east', ca => $ca);
# A server whose certificate comes from a CA pgnear does not trust.
my $foreign = PgNearTest::Cluster->new(name => 'eu-west', ca => $other);
# A server with a certificate from the right CA, but only for db.example.
my $dbex_cert = $ca->issue(name => 'db-example', cn => 'db.example', san => ['DNS:db.example']);
my $misnamed  = PgNearTest::Cluster->new(name => 'us-west', ca => $ca,
    conf => { ssl_cert_file => $dbex_cert->{cert}, ssl_key_file => $dbex_cert->{key} });
# A server without TLS.
my $plain = PgNearTest::Cluster->new(name => 'ap-south');

# pgnear's certificate for its clients (pgnear runs as root: owner undef).
my $pc = $ca->issue(name => 'pgnear', cn => 'localhost',
                    san => ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1'], owner => undef);

# Sanity of the test set-up itself, straight to the servers.
is psql($misnamed->conninfo(sslmode => 'verify-ca', sslrootcert => $ca->cert), $SSL_ON), 't',
    'set-up: the db.example server speaks TLS with a certificate from our CA';
{
    my ($rc, undef, $err) = psql($misnamed->conninfo(sslmode => 'verify-full', sslrootcert => $ca->cert), 'SELECT 1');
    isnt $rc, 0, 'set-up: ... which does not match 127.0.0.1 for libpq either';
}

# auth = scram, so that libpq's defaults (channel_binding=prefer) work over TLS.
my $userlist = tmpdir(name => 'auth') . '/userlist.txt';
write_file($userlist, '"app" "' . $us->scram_verifier('app') . "\"\n");

my %tls_client = (client_tls_cert_file => $pc->{cert}, client_tls_key_file => $pc->{key});
my %verify_full = (server_tls => 'verify-full', server_tls_ca_file => $ca->cert);

# ---------------------------------------------------------------- client_tls = allow

my $p = PgNearTest::Proxy->new(regions => [$us],
    settings => { auth => 'scram', auth_file => $userlist, client_tls => 'allow', %tls_client, %verify_full });

{
    my $off = $p->log_size;
    my $ci = $p->conninfo(host => 'localhost', sslmode => 'verify-full', sslrootcert => $ca->cert);
    my ($rc, $out, $err) = psql($ci, ['\conninfo', $SSL_ON]);
    is $rc, 0, 'sslmode=verify-full host=localhost through pgnear works' or diag $err;
    like $out, qr/SSL connection \(protocol: TLSv1\.[23]/, 'client side is TLS (psql \conninfo)';
    like $out, qr/\nt$/, 'server side is TLS (pg_stat_ssl.ssl = t on the server)';
    ok log_after($p, $off, qr/c\d+: login from \S+: user=app database=movr application_name=psql tls\n/),
        'pgnear logs the login as tls';
    ok log_after($p, $off, qr/c\d+: server TLS established/), 'pgnear logs the server TLS session';

    $ci = $p->conninfo(sslmode => 'verify-full', sslrootcert => $ca->cert);
    is psql($ci, $SSL_ON), 't', 'verify-full against 127.0.0.1 (IP SAN in pgnear\'s certificate)';

    ($rc, undef, $err) = psql($p->conninfo(host => 'localhost', sslmode => 'verify-full',
                                           sslrootcert => $other->cert), 'SELECT 1');
    isnt $rc, 0, 'verify-full with a CA that did not sign pgnear\'s certificate fails';
    like $err, qr/certificate verify failed/, '... on the certificate';

    my $dbh = dbi_connect($p->conninfo(host => 'localhost', sslmode => 'verify-full', sslrootcert => $ca->cert));
    ok $dbh, 'DBD::Pg verify-full through pgnear' or diag($DBI::errstr // '');

    is $dbh && $dbh->selectrow_array($SSL_ON), 1, 'DBD::Pg: server side TLS';
    $dbh->disconnect if $dbh;

    # openssl checks pgnear's chain and name on its own.
    my ($orc, $oout, $oerr) = run_cmd([require_tool('openssl'), 's_client', '-connect', '127.0.0.1:' . $p->port,
        '-starttls', 'postgres', '-CAfile', $ca->cert, '-verify_hostname', 'localhost', '-verify_return_error'],
        stdin => '', timeout => 20);
    like $oout, qr/Verify return code: 0 \(ok\)/, 'openssl s_client -starttls postgres verifies pgnear\'s certificate'
        or diag "$oout$oerr";

    # Plain clients are welcome under allow; the server side stays TLS.
    $off = $p->log_size;
    is psql($p->conninfo(sslmode => 'disable'), $SSL_ON), 't', 'sslmode=disable works with client_tls = allow';
    my $line = log_after($p, $off, qr/(c\d+: login from \S+: user=app database=movr[^\n]*)\n/);
    ok defined $line && $line !~ /\btls$/, 'its login is not logged as tls' or diag $line;

    # The raw client, plain and over TLS.
    my ($r, $q) = wire_login($p, sql => $SSL_ON);
    ok $r->{ok}, 'plain raw login under allow';
    is $q && $q->{rows}[0][0], 't', '... server side TLS';

    my $tw = PgNearTest::TlsWire->connect(host => '127.0.0.1', port => $p->port, ca => $ca->cert);
    $r = eval { $tw->startup(user => 'app', database => 'movr', password => 'app-secret') };
    ok $r && $r->{ok}, 'raw login over TLS (openssl s_client)' or diag($@ || explain($r), $tw->stderr);
    ok $r && grep({ $_ eq 'SCRAM-SHA-256-PLUS' } @{ $r->{sasl_mechanisms} // [] }),
        'over TLS pgnear offers SCRAM-SHA-256-PLUS';
    is $r && $r->{ok} && $tw->query('SELECT 1 + 1')->{rows}[0][0], 2, 'query over the TLS raw client';
    $tw->terminate;
}

# GSSENCRequest: 'N', then the login goes on on the same connection.
{
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    $w->send_raw(pack('NN', 8, 80877104));
    is $w->read_bytes(1), 'N', 'GSSENCRequest is answered N';
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    ok $r->{ok}, '... and the login continues in plain text' or diag explain $r;
    $w->terminate;

    # GSSENCRequest, then SSLRequest, then TLS: what libpq does with gssencmode=prefer.
    my $ci = $p->conninfo(sslmode => 'require', gssencmode => 'prefer');
    is psql($ci, 'SELECT 1'), '1', 'gssencmode=prefer sslmode=require through pgnear';
}

# Bytes right after the SSLRequest in the same packet (CVE-2021-23214):
# must not be taken as the start of a TLS handshake.
{
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    my $body = pack('N', 0x30000) . "user\0app\0database\0movr\0\0";
    $w->send_raw(pack('NN', 8, 80877103) . pack('N', 4 + length $body) . $body);
    my $first = eval { $w->read_bytes(1) };
    isnt $first, 'S', 'SSLRequest followed by plain bytes is not answered S';
    if (defined $first && $first eq 'E') {
        my $len = unpack('N', $w->read_bytes(4) // pack('N', 4));
        my $m = $len > 4 ? $w->read_bytes($len - 4) : '';
        my $e = PgNearTest::Wire::parse_fields($m // '');
        is $e->{C}, '08P01', '... but with ErrorResponse 08P01';
        like $e->{M}, qr/unencrypted data after SSL request/, '... "received unencrypted data after SSL request"';
        my $eof = eval { !defined $w->read_bytes(1) };
        ok $eof, '... and the connection is closed';
    } else {
        ok !defined $first, '... the connection is closed without an answer' or diag "got '$first'";
        pass 'no ErrorResponse to check';
        pass 'closed';
    }
    close $w->socket;

    # A second SSLRequest inside TLS is a protocol violation as well.
    my $tw = PgNearTest::TlsWire->connect(host => '127.0.0.1', port => $p->port, ca => $ca->cert);
    $tw->send_raw(pack('NN', 8, 80877103));
    my ($t, $m) = eval { $tw->read_msg };
    is $t, 'E', 'SSLRequest inside TLS gets an ErrorResponse';
    is PgNearTest::Wire::parse_fields($m // '')->{C}, '08P01', '... 08P01';
    $tw->terminate;

    # pgnear still serves after all this.
    is psql($p->conninfo(sslmode => 'require'), 'SELECT 42'), '42', 'pgnear still serves TLS clients';
}

# The Unix socket is never TLS: SSLRequest gets N there.
{
    my $w = PgNearTest::Wire->connect(socket_dir => $p->socket_dir, port => $p->port);
    is $w->ssl_request, 'N', 'SSLRequest on the Unix socket is answered N';
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    ok $r->{ok}, '... and the login continues';
    $w->terminate;
}

# ---------------------------------------------------------------- client_tls = require

my $preq = PgNearTest::Proxy->new(regions => [$us],
    settings => { auth => 'scram', auth_file => $userlist, client_tls => 'require', %tls_client, %verify_full });
{
    my ($rc, $out, $err) = psql($preq->conninfo(sslmode => 'require'), ['\conninfo', $SSL_ON]);
    is $rc, 0, 'sslmode=require works with client_tls = require' or diag $err;
    like $out, qr/SSL connection/, '... over TLS';
    like $out, qr/\nt$/, '... and TLS to the server';
    is psql($preq->conninfo(sslmode => 'prefer'), 'SELECT 1'), '1', 'sslmode=prefer works too';

    ($rc, $out, $err) = psql($preq->conninfo(sslmode => 'disable'), 'SELECT 1');
    isnt $rc, 0, 'sslmode=disable is refused with client_tls = require';
    like $err, qr/pgnear requires TLS connections/, '... with pgnear\'s message';

    my ($r) = wire_login($preq);
    ok !$r->{ok}, 'plain raw login refused';
    is $r->{error}{C}, '28000', '... with SQLSTATE 28000';
    ok !@{ $r->{auth} }, '... before any authentication exchange';
}

# ---------------------------------------------------------------- server certificate problems

# A server certificate from another CA.
my $pfor = PgNearTest::Proxy->new(regions => [$foreign],
    settings => { auth => 'passthrough', %verify_full });
{
    my $off = $pfor->log_size;
    my ($r) = wire_login($pfor);
    ok !$r->{ok}, 'verify-full: server certificate from a foreign CA fails the login';
    is $r->{error}{C}, '08001', '... with 08001';
    like "$r->{error}{M} $r->{error}{D}", qr/certificate verify failed/, '... the client is told why'
        or diag explain $r->{error};
    ok log_after($pfor, $off, qr/server 127\.0\.0\.1:\d+ of region eu-west failed: TLS handshake failed: certificate verify failed: (unable to get local issuer certificate|self-signed|certificate signature failure)/),
        'the log names the certificate problem';

    my ($rc, undef, $err) = psql($pfor->conninfo, 'SELECT 1');
    isnt $rc, 0, 'psql fails too';
    like $err, qr/could not connect to any server of region "eu-west"/, '... with pgnear\'s message';
}

# A server certificate from the right CA, for another name.
my $pname = PgNearTest::Proxy->new(regions => [$misnamed],
    settings => { auth => 'passthrough', %verify_full });
{
    my $off = $pname->log_size;
    my ($r) = wire_login($pname);
    ok !$r->{ok}, 'verify-full: server certificate only for db.example, reached as 127.0.0.1, fails';
    is $r->{error}{C}, '08001', '... with 08001';
    ok log_after($pname, $off, qr/failed: TLS handshake failed: certificate verify failed: (IP address|hostname) mismatch/),
        'the log says the name does not match' or diag $pname->log_contents;

    # The same server under verify-ca: chain fine, name not checked.
    $pname->update_config(settings => { server_tls => 'verify-ca' });
    $pname->stop;
    $pname->start;
    my $q;
    ($r, $q) = wire_login($pname, sql => $SSL_ON);
    ok $r->{ok}, 'the same server under verify-ca works (only the name was wrong)' or diag explain $r->{error};
    is $q && $q->{rows}[0][0], 't', '... over TLS';
}

# The same by DNS name: the region host is "localhost" (pgnear takes the
# first address it resolves to, so ::1 must be usable if that comes first).
SKIP: {
    my ($gerr, @ai) = Socket::getaddrinfo('localhost', 0, { socktype => Socket::SOCK_STREAM() });
    my $first_v6 = !$gerr && @ai && $ai[0]{family} == Socket::AF_INET6();
    skip 'localhost resolves to ::1 first, and there is no ::1 here', 4 if $first_v6 && !have_ipv6();
    my $pdns = PgNearTest::Proxy->new(
        regions => [{ name => 'us-west', location => $misnamed->location, hosts => ['localhost:' . $misnamed->port] },
                    { name => 'us-east', location => $us->location, hosts => ['localhost:' . $us->port] }],
        # No health checks: they would find us-west's certificate wrong first, and sessions
        # placed by default_region would not try it (route.c); this is about a session's own TLS.
        settings => { auth => 'passthrough', %verify_full, default_region => 'us-west',
                      health_check_interval => 0 });
    my $off = $pdns->log_size;
    my ($r, $q) = wire_login($pdns, sql => 'SHOW cluster_name');
    # The misnamed region is refused; the session fails over to the next region.
    ok $r->{ok}, 'verify-full by DNS name: "localhost" against a db.example certificate is refused, and the session fails over';
    is $q && $q->{rows}[0][0], 'us-east', '... to the next nearest region';
    ok log_after($pdns, $off, qr/failed: TLS handshake failed: certificate verify failed: hostname mismatch/),
        '... and the log says hostname mismatch' or diag $pdns->log_contents;
    $pdns->update_config(settings => { default_region => 'us-east' });
    $pdns->stop;
    $pdns->start;
    ($r, $q) = wire_login($pdns, sql => $SSL_ON);
    ok $r->{ok} && $q->{rows}[0][0] eq 't', 'verify-full by DNS name "localhost" against a localhost certificate works'
        or diag explain $r->{error};
    $pdns->stop;
}

# A server without TLS.
my $pplain_req = PgNearTest::Proxy->new(regions => [$plain], settings => { auth => 'passthrough', server_tls => 'require' });
{
    my $off = $pplain_req->log_size;
    my ($r) = wire_login($pplain_req);
    ok !$r->{ok}, 'server_tls = require against a server with ssl = off fails';
    is $r->{error}{C}, '08001', '... with 08001';
    ok log_after($pplain_req, $off, qr/server does not support TLS, and server_tls requires it/),
        'the log says the server does not support TLS';
}
{
    my $pv = PgNearTest::Proxy->new(regions => [$plain], settings => { auth => 'passthrough', %verify_full });
    my ($r) = wire_login($pv);
    is $r->{error}{C}, '08001', 'server_tls = verify-full against a server with ssl = off: 08001';
    $pv->stop;
}

# server_tls = prefer (the default) against ssl = off: plain text; and a
# pgnear without client TLS.
my $pprefer = PgNearTest::Proxy->new(regions => [$plain], settings => { auth => 'passthrough', server_tls => 'prefer' });
{
    my ($r, $q) = wire_login($pprefer, sql => $SSL_ON);
    ok $r->{ok}, 'server_tls = prefer against ssl = off works';
    is $q && $q->{rows}[0][0], 'f', '... in plain text';
    is psql($pprefer->conninfo(sslmode => 'disable'), 'SHOW cluster_name'), 'ap-south', 'psql through it';

    # client_tls = disable (default): SSLRequest gets N.
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $pprefer->port);
    is $w->ssl_request, 'N', 'client_tls = disable: SSLRequest is answered N';
    $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    ok $r->{ok}, '... and the login continues in plain text';
    $w->terminate;

    my ($rc, undef, $err) = psql($pprefer->conninfo(sslmode => 'require'), 'SELECT 1');
    isnt $rc, 0, 'sslmode=require against a pgnear without client TLS fails';
    like $err, qr/server does not support SSL, but SSL was required/, '... the client says the server does not support SSL';
    is psql($pprefer->conninfo(sslmode => 'prefer'), 'SELECT 1'), '1', 'sslmode=prefer falls back to plain text';
}

my $elapsed = time - $t0;
note sprintf('060_tls took %.1f s', $elapsed);
ok $elapsed < 90, 'test file runs in under 90 s';

done_testing;
