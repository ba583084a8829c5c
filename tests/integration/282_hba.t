# auth = hba with auth_hba_file, and client certificates (auth = cert, the
# hba method cert, client_tls_ca_file).
#   The first line that matches decides, by database, user, the caller's
#   real address (a trusted PROXY header's) and transport: hostssl and
#   hostnossl by TLS, local by the Unix socket.  scram-sha-256 lines are
#   pgnear's SCRAM; cert and trust lines leave the server's authentication
#   relayed (the server here trusts pgnear's address, so a wrong password
#   gets in: pgnear asked none).  reject and no line: 28000 in PostgreSQL's
#   words, the file and line in pgnear's log.  cert: the certificate's CN
#   must be the user.  A reload reads the file again; a malformed one is
#   refused with FILE:LINE at start (pgnear --check) and at a reload, which
#   keeps the file it had.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;
use PgNearWs;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql openssl);
die "PGNEAR is not set; point it at the pgnear binary\n" unless $ENV{PGNEAR} && -x $ENV{PGNEAR};

my $ca = PgNearTest::CA->new;
# The server trusts pgnear's address: what a relayed login needs is the server's word alone.
my $us = PgNearTest::Cluster->new(name => 'us-east', ca => $ca,
    hba => ['local all all trust', 'host all all 127.0.0.1/32 trust', 'host all all ::1/128 trust']);
my $pc = $ca->issue(name => 'pgnear', cn => 'localhost', san => ['DNS:localhost', 'IP:127.0.0.1'],
                    owner => undef);
my $app_cert = $ca->issue(name => 'client-app', cn => 'app', owner => undef);
my $other_cert = $ca->issue(name => 'client-mallory', cn => 'mallory', owner => undef);
# A certificate of another CA, with the right CN: the handshake itself refuses it.
my $ca2 = PgNearTest::CA->new(cn => 'Another CA');
my $foreign_cert = $ca2->issue(name => 'client-foreign', cn => 'app', owner => undef);

my $dir = tmpdir(name => 'hba');
write_file("$dir/users", "app\n");
my $auth_file = "$dir/userlist.txt";
write_file($auth_file, qq{"app" "} . $us->scram_verifier('app') . qq{"\n});
my $hba = "$dir/pg_hba.conf";

sub hba_lines {
    my (@lines) = @_;
    write_file($hba, join("\n", '# TYPE DATABASE USER ADDRESS METHOD', @lines) . "\n");
}

hba_lines('local     all  all             reject',                      # line 2
          'hostssl   movr @users 127.0.0.1/32 cert',                     # line 3
          'hostnossl movr app 127.0.0.1/32 scram-sha-256',               # line 4
          'host      movr all 10.1.2.0 255.255.255.0 reject',            # line 5
          'host      movr all 10.9.0.0/16 trust',                        # line 6
          'hostssl   movr all ::1/128 scram-sha-256 clientcert=verify-full');    # line 7

my %tls = (client_tls => 'allow', client_tls_cert_file => $pc->{cert},
           client_tls_key_file => $pc->{key}, client_tls_ca_file => $ca->cert);
my $wsport = free_port();
my $p = PgNearTest::Proxy->new(regions => [$us],
    settings => { auth => 'hba', auth_hba_file => $hba, auth_file => $auth_file, %tls,
                  proxy_protocol => 'optional', trusted_proxies => '127.0.0.1/32',
                  websocket_port => $wsport, websocket_tls => 'on' });

# psql through pgnear: ('ok', current_user) or ('error', psql's stderr and pgnear's log line
# of the error, "FATAL 28000: ...": libpq does not show a login error's SQLSTATE).
sub login {
    my (%o) = @_;
    my $off = $p->log_size;
    my ($rc, $out, $err) = psql($p->conninfo(%o), 'SELECT current_user');
    return ('ok', $out) if $rc == 0;
    my $logged = $p->wait_for_log(qr/(FATAL \w{5}: [^\n]*)/, offset => $off, timeout => 5) // '';
    return ('error', "$err$logged");
}

sub with_cert { my ($c) = @_; (sslmode => 'require', sslcert => $c->{cert}, sslkey => $c->{key}) }

# A login behind a PROXY v1 header naming $src as the caller.
sub proxied_login {
    my ($src, %o) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    $w->send_raw("PROXY TCP4 $src 127.0.0.1 40000 " . $p->port . "\r\n");
    my $r = $w->startup(user => 'app', database => 'movr', password => $o{password} // 'app-secret');
    $w->terminate if $r->{ok};
    return $r;
}

my $hba_re = quotemeta $hba;

# ---------------------------------------------------------------- transport

{
    my ($st, $out) = login(sslmode => 'disable');
    is "$st $out", 'ok app', 'hostnossl scram-sha-256: plain login with the password';
    my $off = $p->log_size;
    ($st, $out) = login(sslmode => 'disable', password => 'wrong');
    is $st, 'error', '... a wrong password is refused';
    like $out, qr/FATAL 28P01: password authentication failed for user "app"/,
        '... by pgnear\'s SCRAM (28P01)';
}

{
    my ($st, $out) = login(with_cert($app_cert), password => 'wrong');
    is "$st $out", 'ok app', 'hostssl cert: a certificate with CN=app logs in, no password asked';
    ($st, $out) = login(with_cert($other_cert));
    is $st, 'error', 'hostssl cert: a certificate with another CN is refused';
    like $out, qr/FATAL 28000: certificate authentication failed for user "app"/,
        '... 28000 in PostgreSQL\'s words';
    ($st, $out) = login(sslmode => 'require');
    like $out, qr/FATAL 28000: connection requires a valid client certificate/,
        'hostssl cert: no certificate is refused';
    my ($rc, $o, $err) = psql($p->conninfo(with_cert($foreign_cert)), 'SELECT current_user');
    isnt $rc, 0, 'a certificate of another CA fails the TLS handshake';
    like $err, qr/certificate|SSL|tls/i, '... as a TLS error';
}

# wss counts as hostssl, its certificate the TLS's under the frames.
SKIP: {
    skip 'wss needs IO::Socket::SSL', 4 unless eval { PgNearWs::require_ssl(); 1 };
    my $wss_login = sub {
        my ($c) = @_;
        my $w = PgNearWs::Pg->connect(port => $wsport, tls => 1, ca => $ca->cert, timeout => 10,
                                      $c ? (cert => $c->{cert}, key => $c->{key}) : ());
        my $r = $w->startup(user => 'app', database => 'movr', password => 'wrong');
        $w->terminate if $r->{ok};
        return $r;
    };
    my $r = $wss_login->($app_cert);
    ok $r->{ok}, 'wss: the hostssl cert line takes a certificate with CN=app';
    $r = $wss_login->($other_cert);
    is $r->{error}{M}, 'certificate authentication failed for user "app"', 'wss: another CN is refused';
    $r = $wss_login->(undef);
    is $r->{error}{C}, '28000', 'wss: no certificate is refused';
    is $r->{error}{M}, 'connection requires a valid client certificate', '... as PostgreSQL words it';
}

# ---------------------------------------------------------------- address, through PROXY

{
    my $off = $p->log_size;
    my $r = proxied_login('10.1.2.3');
    is $r->{error}{C}, '28000', 'PROXY from 10.1.2.3: the reject line refuses';
    is $r->{error}{M},
        'pg_hba.conf rejects connection for host "10.1.2.3", user "app", database "movr", no encryption',
        '... in PostgreSQL\'s words, with the caller\'s real address';
    ok $p->wait_for_log(qr/$hba_re:5: pg_hba\.conf rejects connection for host "10\.1\.2\.3"/,
                        offset => $off, timeout => 5),
        '... and the log names the file and line';

    $r = proxied_login('10.9.4.5', password => 'wrong');
    ok $r->{ok}, 'PROXY from 10.9.4.5: trust, the server\'s authentication relayed (it trusts pgnear)';

    $off = $p->log_size;
    $r = proxied_login('192.0.2.7');
    is $r->{error}{C}, '28000', 'PROXY from 192.0.2.7: no line matches';
    is $r->{error}{M},
        'no pg_hba.conf entry for host "192.0.2.7", user "app", database "movr", no encryption',
        '... in PostgreSQL\'s words';
    ok $p->wait_for_log(qr/$hba_re: no line matches/, offset => $off, timeout => 5),
        '... and the log says so';
}

{
    my ($st, $out) = login(host => $p->dir);
    like $out, qr/FATAL 28000: pg_hba\.conf rejects connection for host "\[local\]", user "app", database "movr", no encryption/,
        'local: the Unix socket matches the local line (reject)';
}

SKIP: {
    skip 'no IPv6', 3 unless have_ipv6();
    my ($st, $out) = login(host => '::1', with_cert($app_cert));
    is "$st $out", 'ok app', 'clientcert=verify-full on a scram line: certificate and password';
    ($st, $out) = login(host => '::1', with_cert($other_cert));
    like $out, qr/FATAL 28000: certificate validation \(clientcert=verify-full\) failed for user "app"/,
        '... another CN is refused';
    ($st, $out) = login(host => '::1', sslmode => 'require');
    like $out, qr/FATAL 28000: connection requires a valid client certificate/,
        '... no certificate is refused';
}

# ---------------------------------------------------------------- reload

sub reload {
    my $off = $p->log_size;
    $p->signal('HUP');
    return $p->wait_for_log(qr/(configuration reloaded|reload failed[^\n]*)/, offset => $off, timeout => 10);
}

{
    hba_lines('hostnossl movr app 127.0.0.1/32 reject', 'host all all all scram-sha-256');
    is reload(), 'configuration reloaded', 'reload with a changed line';
    my ($st, $out) = login(sslmode => 'disable');
    like $out, qr/FATAL 28000: pg_hba\.conf rejects connection for host "127\.0\.0\.1", user "app", database "movr", no encryption/,
        '... the changed line decides now';
    ($st, $out) = login(sslmode => 'require');
    is "$st $out", 'ok app', '... and the next line serves TLS logins';

    hba_lines('host all all all trust', 'host all +admins all trust');
    my $why = reload();
    like $why, qr/reload failed.*$hba_re:3: group "\+admins" is not supported/,
        'a reload with a malformed file fails, naming FILE:LINE and why';
    ($st, $out) = login(sslmode => 'disable');
    like $out, qr/pg_hba\.conf rejects connection/, '... and the file read before still decides';
}

# ---------------------------------------------------------------- auth = cert

{
    $p->update_config(settings => { auth => 'cert', auth_hba_file => undef });
    is reload(), 'configuration reloaded', 'auth = cert';
    my ($st, $out) = login(with_cert($app_cert), password => 'wrong');
    is "$st $out", 'ok app', '... a certificate with CN=app logs in';
    ($st, $out) = login(with_cert($other_cert));
    like $out, qr/FATAL 28000: certificate authentication failed for user "app"/, '... another CN is refused';
    ($st, $out) = login(sslmode => 'disable');
    like $out, qr/FATAL 28000: connection requires a valid client certificate/, '... so is plain text';
}

# ---------------------------------------------------------------- defaults

{
    # No auth, no client_tls_ca_file: passthrough as before, and no certificate asked for, so
    # one no CA here vouches for is never even sent.
    my $d = PgNearTest::Proxy->new(regions => [$us],
        settings => { client_tls => 'allow', client_tls_cert_file => $pc->{cert},
                      client_tls_key_file => $pc->{key} });
    my ($rc, $out, $err) = psql($d->conninfo(with_cert($foreign_cert), password => 'wrong'),
                                'SELECT current_user');
    is "$rc $out", '0 app', 'defaults: no certificate is asked for, and the server authenticates';
    $d->stop;
}

# ---------------------------------------------------------------- start and --check

{
    hba_lines('host all all all trust', 'host all all all scram-sha-256 map=x');
    my $q = PgNearTest::Proxy->new(regions => [$us], start => 0,
        settings => { auth => 'hba', auth_hba_file => $hba, auth_file => $auth_file });
    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $q->config_path]);
    isnt $rc, 0, 'pgnear --check refuses a malformed auth_hba_file';
    like "$out$err", qr/$hba_re:3: authentication option "map" is not supported/, '... with FILE:LINE: why';
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, $q->config_path], timeout => 10);
    isnt $rc, 0, 'pgnear does not start with it';
    like "$out$err", qr/$hba_re:3:/, '... and says where';

    hba_lines('host all all all trust', 'hostssl all all ::1/128 md5');
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $q->config_path]);
    like $out, qr/auth: hba: 2 lines from $hba_re/, 'pgnear --check counts the lines of a good file';

    hba_lines('hostssl all all all cert');
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $q->config_path]);
    like "$out$err", qr/client certificates \(a cert or clientcert= line\) need client_tls_ca_file/,
        'a cert line without client_tls_ca_file is refused at load';
}

done_testing;
