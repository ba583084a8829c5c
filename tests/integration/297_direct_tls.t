# Direct TLS from clients (PostgreSQL 17's sslnegotiation=direct): a TLS
# ClientHello as the connection's first bytes, no SSLRequest, beside the
# SSLRequest and plain startups on the same port.  With Python's ssl module
# (tests/clients/direct_tls_client.py: a real StartupMessage, SCRAM and a
# query) and openssl s_client -alpn: ALPN "postgresql" is chosen; a
# ClientHello without ALPN is closed without an answer as PostgreSQL 17
# closes it (and let in with client_tls_direct_without_alpn = on); one
# offering only another protocol fails its handshake (no_application_protocol)
# on both the direct and the SSLRequest path, where no ALPN stays fine; the
# TLS server name still routes (SNI); a PROXY v1 or v2 header before the
# ClientHello; hostssl / hostnossl lines count direct TLS as TLS;
# client_tls = disable and the Unix socket close a direct ClientHello
# cleanly; inside a WebSocket on websocket_port, and under wss, whose own
# TLS keeps a browser's ALPN (http/1.1).  Servers: one with TLS, one
# without.  libpq's own sslnegotiation=direct where the installed libpq has
# it (17+).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use JSON::PP ();
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql openssl);
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : require_tool('python3');
my $root = "$FindBin::RealBin/../..";
my $client = "$root/tests/clients/direct_tls_client.py";

my $ca = PgNearTest::CA->new;
my $us = PgNearTest::Cluster->new(name => 'us-east', ca => $ca);    # TLS
my $eu = PgNearTest::Cluster->new(name => 'eu-west');               # no TLS
my $pc = $ca->issue(name => 'pgnear', cn => 'localhost',
                    san => ['DNS:localhost', 'IP:127.0.0.1'], owner => undef);

# One SCRAM secret for app on both servers, so that pgnear's key fits either.
$eu->psql_admin(q{ALTER ROLE app PASSWORD '} . $us->scram_verifier('app') . q{'});

my $dir = tmpdir(name => 'direct');
my $userlist = "$dir/userlist.txt";
write_file($userlist, '"app" "' . $us->scram_verifier('app') . "\"\n");
my $hba = "$dir/pg_hba.conf";
write_file($hba, join("\n", 'hostssl   movr app 127.0.0.1/32 scram-sha-256',
                             'hostnossl movr app 127.0.0.1/32 reject', ''));

my %tls = (client_tls => 'allow', client_tls_cert_file => $pc->{cert}, client_tls_key_file => $pc->{key});
my %common = (auth_file => $userlist, default_region => 'us-east', %tls);
my $wsport = free_port();
my $p = PgNearTest::Proxy->new(regions => [$us, $eu],
    settings => { %common, auth => 'scram', proxy_protocol => 'optional',
                  trusted_proxies => '127.0.0.1/32', websocket_port => $wsport });

my $SSL_ON = q{SELECT current_setting('cluster_name') || ' ' || ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()};

# One run of the Python client: its JSON answer.
sub py {
    my ($px, @args) = @_;
    my ($rc, $out, $err) = run_cmd([$python, $client, '--port', $px->port, '--ca', $ca->cert, @args],
                                   timeout => 30);
    my $r = eval { JSON::PP::decode_json((split /\n/, $out)[-1] // '') };
    return $r // { stage => 'crashed', error => "rc $rc: $out$err" };
}

# The handshake of openssl s_client straight to the port (no -starttls): its output.
sub s_client {
    my ($px, @args) = @_;
    my ($rc, $out, $err) = run_cmd([require_tool('openssl'), 's_client', '-connect', '127.0.0.1:' . $px->port,
        '-CAfile', $ca->cert, '-verify_hostname', 'localhost', @args], stdin => '', timeout => 20);
    return "$out$err";
}

# ---------------------------------------------------------------- direct TLS with ALPN

{
    my $off = $p->log_size;
    my $r = py($p, '--alpn', 'postgresql', '--query', $SSL_ON);
    is $r->{stage}, 'done', 'Python ssl, direct TLS with ALPN postgresql: SCRAM login and a query'
        or diag explain $r;
    is $r->{alpn}, 'postgresql', '... pgnear chose ALPN "postgresql"';
    like $r->{tls} // '', qr/^TLSv1\.[23]$/, '... over TLS 1.2 or 1.3';
    is $r->{rows} && $r->{rows}[0][0], 'us-east true', '... on us-east, whose server side is TLS';
    ok $p->wait_for_log(qr/login from \S+: user=app database=movr application_name=direct_tls_client tls\n/,
                        offset => $off, timeout => 5), '... logged as a tls login';

    $r = py($p, '--alpn', 'http/1.1', '--alpn', 'postgresql', '--query', 'SELECT 2');
    is $r->{alpn}, 'postgresql', 'offering http/1.1 and postgresql: postgresql is chosen';
    is $r->{rows} && $r->{rows}[0][0], '2', '... and the session works';

    my $out = s_client($p, '-alpn', 'postgresql');
    like $out, qr/ALPN protocol: postgresql/, 'openssl s_client -alpn postgresql: ALPN postgresql negotiated';
    like $out, qr/Verify return code: 0 \(ok\)/, '... and pgnear\'s certificate verifies';
}

# ---------------------------------------------------------------- ALPN refused

{
    my $off = $p->log_size;
    my $r = py($p);
    ok $r->{closed}, 'direct TLS without ALPN: closed without an answer, as PostgreSQL 17 does'
        or diag explain $r;
    ok !$r->{error}, '... no ErrorResponse' or diag explain $r;
    ok $p->wait_for_log(qr/received direct SSL connection request without ALPN protocol negotiation extension/,
                        offset => $off, timeout => 5), '... logged in PostgreSQL\'s words';

    $off = $p->log_size;
    $r = py($p, '--alpn', 'http/1.1');
    is $r->{stage}, 'handshake', 'direct TLS offering only ALPN http/1.1: the handshake fails' or diag explain $r;
    like $r->{error} // '', qr/NO_APPLICATION_PROTOCOL|no application protocol/i,
        '... with the no_application_protocol alert (RFC 7301)';
    ok $p->wait_for_log(qr/no application protocol/, offset => $off, timeout => 5), '... and pgnear logs why';

    my $out = s_client($p, '-alpn', 'http/1.1');
    like $out, qr/no application protocol|alert number 120/i, 'openssl s_client -alpn http/1.1 is refused too';

    # The SSLRequest path: ALPN postgresql is taken, another protocol refused, none is fine.
    $r = py($p, '--sslrequest', '--alpn', 'postgresql');
    is $r->{stage} . ' ' . ($r->{alpn} // ''), 'done postgresql', 'SSLRequest with ALPN postgresql: chosen, session works'
        or diag explain $r;
    $r = py($p, '--sslrequest', '--alpn', 'http/1.1');
    is $r->{stage}, 'handshake', 'SSLRequest offering only ALPN http/1.1: the handshake fails, as PostgreSQL 17';
    $r = py($p, '--sslrequest');
    is $r->{stage}, 'done', 'SSLRequest without ALPN: works as before' or diag explain $r;

    # The usual clients on the same port.
    is psql($p->conninfo(sslmode => 'require'), 'SELECT 1'), '1', 'libpq sslmode=require (SSLRequest) still works';
    is psql($p->conninfo(sslmode => 'disable'), 'SELECT 1'), '1', 'libpq plain still works';
}

# ---------------------------------------------------------------- SNI and PROXY v2

{
    my $off = $p->log_size;
    my $r = py($p, '--alpn', 'postgresql', '--sni', 'eu-west.db.example', '--query', $SSL_ON);
    is $r->{rows} && $r->{rows}[0][0], 'eu-west false',
        'direct TLS with server name eu-west.db.example: routed to eu-west (a server without TLS)'
        or diag explain $r;
    ok $p->wait_for_log(qr/route: region eu-west[^\n]*named by TLS SNI/, offset => $off, timeout => 5),
        '... by TLS SNI';

    $off = $p->log_size;
    $r = py($p, '--proxy-v2', '203.0.113.7', '--alpn', 'postgresql', '--query', 'SELECT 7');
    is $r->{rows} && $r->{rows}[0][0], '7', 'a PROXY v2 header, then the direct ClientHello: the session works'
        or diag explain $r;
    ok $p->wait_for_log(qr/PROXY v2 header from \S+: caller 203\.0\.113\.7/, offset => $off, timeout => 5),
        '... the caller is the header\'s';
    ok $p->wait_for_log(qr/login from 203\.0\.113\.7:\d+: user=app[^\n]* tls\n/, offset => $off, timeout => 5),
        '... and the login is TLS';

    $off = $p->log_size;
    $r = py($p, '--proxy-v1', '198.51.100.9', '--alpn', 'postgresql', '--query', 'SELECT 11');
    is $r->{rows} && $r->{rows}[0][0], '11', 'a PROXY v1 header, then the direct ClientHello: the session works'
        or diag explain $r;
    ok $p->wait_for_log(qr/login from 198\.51\.100\.9:\d+: user=app[^\n]* tls\n/, offset => $off, timeout => 5),
        '... as the header\'s caller, over TLS';
}

# ---------------------------------------------------------------- inside a WebSocket

{
    my $off = $p->log_size;
    my $r = py($p, '--websocket', '--port', $wsport, '--alpn', 'postgresql', '--query', 'SELECT 8');
    is $r->{stage} . ' ' . ($r->{alpn} // ''), 'done postgresql',
        'on websocket_port: direct TLS inside the WebSocket, ALPN postgresql, login and query' or diag explain $r;
    is $r->{rows} && $r->{rows}[0][0], '8', '... the query\'s answer';
    ok $p->wait_for_log(qr/login from \S+: user=app[^\n]* tls\n/, offset => $off, timeout => 5),
        '... logged as a tls login';
    $off = $p->log_size;
    $r = py($p, '--websocket', '--port', $wsport);
    isnt $r->{stage}, 'done', '... and without ALPN it is closed there too' or diag explain $r;
    ok $p->wait_for_log(qr/without ALPN protocol negotiation extension/, offset => $off, timeout => 5),
        '... logged';
}

# wss (websocket_tls): the WebSocket's own TLS is HTTP's, and a browser's
# ALPN (http/1.1) is no reason to refuse it.
{
    my $wssport = free_port();
    my $pw = PgNearTest::Proxy->new(regions => [$us, $eu],
        settings => { %common, auth => 'scram', websocket_port => $wssport, websocket_tls => 'on' });
    my $r = py($pw, '--wss', '--port', $wssport, '--no-tls', '--query', 'SELECT 9');
    is $r->{rows} && $r->{rows}[0][0], '9', 'wss with ALPN http/1.1 on its TLS: the session works' or diag explain $r;
    $r = py($pw, '--wss', '--port', $wssport, '--alpn', 'postgresql', '--query', 'SELECT 10');
    is $r->{stage} . ' ' . ($r->{alpn} // ''), 'done postgresql',
        '... and direct TLS inside wss takes ALPN postgresql' or diag explain $r;
    $pw->stop;
}

# ---------------------------------------------------------------- the Unix socket

{
    my $r = py($p, '--unix', $p->socket_dir . '/.s.PGSQL.' . $p->port, '--alpn', 'postgresql');
    is $r->{stage}, 'handshake', 'direct TLS on the Unix socket is refused, as PostgreSQL refuses it there'
        or diag explain $r;
}

$p->stop;

# ---------------------------------------------------------------- client_tls_direct_without_alpn = on
# (under pool_mode = transaction: the login is the same in both pool modes;
# client_tls = require, which a direct handshake meets)

{
    my $pn = PgNearTest::Proxy->new(regions => [$us, $eu],
        settings => { %common, auth => 'scram', client_tls_direct_without_alpn => 'on',
                      pool_mode => 'transaction', client_tls => 'require' });
    my $off = $pn->log_size;
    my $r = py($pn, '--query', 'SELECT 3');
    is $r->{rows} && $r->{rows}[0][0], '3', 'client_tls_direct_without_alpn = on: direct TLS without ALPN works'
        or diag explain $r;
    ok !defined $r->{alpn}, '... and no ALPN was chosen';
    $r = py($pn, '--alpn', 'postgresql', '--query', 'SELECT 12');
    is $r->{rows} && $r->{rows}[0][0], '12', 'client_tls = require: a direct TLS login meets it' or diag explain $r;
    my ($prc) = psql($pn->conninfo(sslmode => 'disable'), 'SELECT 1');
    isnt $prc, 0, '... where a plain one is refused';
    ok $pn->wait_for_log(qr/direct TLS handshake without ALPN let in/, offset => $off, timeout => 5),
        '... pgnear logs that it let it in';
    $r = py($pn, '--alpn', 'http/1.1');
    is $r->{stage}, 'handshake', '... a foreign ALPN is still refused';
    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $pn->config_path]);
    like $out, qr/direct handshakes without ALPN "postgresql" let in/, '... and pgnear --check says so'
        or diag "$out$err";
    $pn->stop;
}

# ---------------------------------------------------------------- hostssl / hostnossl

{
    my $ph = PgNearTest::Proxy->new(regions => [$us, $eu],
        settings => { %common, auth => 'hba', auth_hba_file => $hba });
    my $r = py($ph, '--alpn', 'postgresql', '--query', 'SELECT 4');
    is $r->{rows} && $r->{rows}[0][0], '4', 'auth = hba: direct TLS takes the hostssl line' or diag explain $r;
    my ($rc, undef, $err) = psql($ph->conninfo(sslmode => 'disable'), 'SELECT 1');
    isnt $rc, 0, '... and a plain login takes the hostnossl reject line';
    $ph->stop;
}

# ---------------------------------------------------------------- client_tls = disable

{
    my $pd = PgNearTest::Proxy->new(regions => [$us, $eu],
        settings => { auth_file => $userlist, default_region => 'us-east', auth => 'scram' });
    my $off = $pd->log_size;
    my $r = py($pd, '--alpn', 'postgresql');
    is $r->{stage}, 'handshake', 'client_tls = disable: a direct ClientHello is closed' or diag explain $r;
    ok $pd->wait_for_log(qr/direct TLS handshake refused: client_tls = disable/, offset => $off, timeout => 5),
        '... and pgnear logs why';
    is psql($pd->conninfo(sslmode => 'prefer'), 'SELECT 5'), '5', '... while libpq sslmode=prefer goes on in plain';
    $pd->stop;
}

# ---------------------------------------------------------------- libpq's own direct TLS

{
    my $p2 = PgNearTest::Proxy->new(regions => [$us], settings => { %common, auth => 'scram' });
    my ($rc, $out, $err) = psql($p2->conninfo(sslmode => 'require', sslnegotiation => 'direct'), 'SELECT 6');
  SKIP: {
        skip 'the installed libpq has no sslnegotiation=direct (PostgreSQL 17+): ' . ((split /\n/, $err)[0] // ''), 1
          if $rc != 0 && $err =~ /invalid connection option "sslnegotiation"/;
        is $out, '6', 'libpq sslnegotiation=direct through pgnear' or diag $err;
    }
    $p2->stop;
}

done_testing;
