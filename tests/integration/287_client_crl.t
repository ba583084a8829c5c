# client_tls_crl_file and client_tls_crl_dir: revoked client certificates.
#   Two certificates of one CA, both CN=app; a revocation list (made here
#   with openssl ca) revokes one.  Without a list both log in (auth =
#   cert); a reload that adds client_tls_crl_file refuses the revoked one at
#   the TLS handshake, on the TCP port's TLS and on wss alike, as PostgreSQL
#   with ssl_crl_file refuses it (the same server, directly: libpq's
#   "certificate revoked" both ways), and pgnear's log says why in
#   PostgreSQL's words; the other still logs in.  The same under auth = hba
#   with a clientcert= line, with client_tls_crl_dir (a hashed
#   directory), and with a list inside client_tls_ca_file (checked only
#   once a CRL setting is given, as PostgreSQL).  An unreadable list, or a file that holds none, fails
#   --check and a reload (which keeps the list it had); a list without
#   client_tls_ca_file is refused.
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
my $pc = $ca->issue(name => 'pgnear', cn => 'localhost', san => ['DNS:localhost', 'IP:127.0.0.1'],
                    owner => undef);
my $good = $ca->issue(name => 'client-good', cn => 'app', owner => undef);
my $revoked = $ca->issue(name => 'client-revoked', cn => 'app', owner => undef);
my $crl = $ca->crl(revoked => [$revoked]);
my $empty_crl = $ca->crl(revoked => []);

# The server: certificate logins checked against the same list (directly), trust for pgnear's
# plain connections.
my $us = PgNearTest::Cluster->new(name => 'us-east', ca => $ca, conf => { ssl_crl_file => $crl },
    hba => ['local all all trust', 'hostssl all all 127.0.0.1/32 cert',
            'hostnossl all all 127.0.0.1/32 trust']);

my $wsport = free_port();
my $p = PgNearTest::Proxy->new(regions => [$us],
    settings => { auth => 'cert', server_tls => 'disable', client_tls => 'allow',
                  client_tls_cert_file => $pc->{cert}, client_tls_key_file => $pc->{key},
                  client_tls_ca_file => $ca->cert, websocket_port => $wsport,
                  websocket_tls => 'on' });

sub with_cert { my ($c) = @_; (sslmode => 'require', sslcert => $c->{cert}, sslkey => $c->{key}) }

# psql through pgnear (or directly with direct => 1): ('ok', current_user) or ('error', stderr).
sub login {
    my ($c, %o) = @_;
    my $ci = $o{direct} ? $us->conninfo(with_cert($c), password => 'wrong')
                        : $p->conninfo(with_cert($c), password => 'wrong');
    my ($rc, $out, $err) = psql($ci, 'SELECT current_user');
    return $rc == 0 ? ('ok', $out) : ('error', $err);
}

# A wss login with the certificate: 'ok', or why not.
sub wss_login {
    my ($c) = @_;
    my $r = eval {
        my $w = PgNearWs::Pg->connect(port => $wsport, tls => 1, ca => $ca->cert, timeout => 10,
                                      cert => $c->{cert}, key => $c->{key});
        my $r = $w->startup(user => 'app', database => 'movr', password => 'wrong');
        $w->terminate if $r->{ok};
        $r->{ok} ? 'ok' : "error $r->{error}{C} $r->{error}{M}";
    };
    return $r // "failed: $@";
}

sub reload {
    my $off = $p->log_size;
    $p->signal('HUP');
    return $p->wait_for_log(qr/(configuration reloaded|reload failed[^\n]*)/, offset => $off, timeout => 10);
}

my $have_wss = eval { PgNearWs::require_ssl(); 1 };
my $direct_error = '';

# ---------------------------------------------------------------- without a list

{
    my ($st, $out) = login($good);
    is "$st $out", 'ok app', 'no list: the first certificate logs in';
    ($st, $out) = login($revoked);
    is "$st $out", 'ok app', 'no list: so does the one revoked later';
    ($st, $out) = login($revoked, direct => 1);
    is $st, 'error', 'directly, PostgreSQL with ssl_crl_file refuses the revoked certificate';
    like $out, qr/certificate revoked/, '... libpq says "certificate revoked"';
    note "directly, libpq: $out";
    ($direct_error = $out) =~ s/port \d+/port N/;
}

# ---------------------------------------------------------------- a reload adds the list

{
    $p->update_config(settings => { client_tls_crl_file => $crl });
    is reload(), 'configuration reloaded', 'reload with client_tls_crl_file';
    my ($rc, $o, $e) = run_cmd([$ENV{PGNEAR}, '--check', $p->config_path]);
    like $o, qr/^client certificates: revoked ones refused at the TLS handshake \(\Q$crl\E\)$/m,
        '... which pgnear --check names';
    my ($st, $out) = login($good);
    is "$st $out", 'ok app', '... the certificate not revoked still logs in';
    my $off = $p->log_size;
    ($st, $out) = login($revoked);
    is $st, 'error', '... the revoked one is refused';
    like $out, qr/certificate revoked/, '... and libpq says "certificate revoked", as directly';
    note "through pgnear, libpq: $out";
    (my $through = $out) =~ s/port \d+/port N/;
    is $through, $direct_error, '... word for word (the port aside)';
    ok $p->wait_for_log(qr/client certificate verification failed: certificate revoked/,
                        offset => $off, timeout => 5),
        '... pgnear\'s log says why, in PostgreSQL\'s words';
  SKIP: {
        skip 'wss needs IO::Socket::SSL', 3 unless $have_wss;
        is wss_login($good), 'ok', 'wss: the certificate not revoked logs in';
        $off = $p->log_size;
        isnt wss_login($revoked), 'ok', 'wss: the revoked one is refused';
        ok $p->wait_for_log(qr/client certificate verification failed: certificate revoked/,
                            offset => $off, timeout => 5),
            '... at the TLS handshake (the log says so)';
    }
}

# ---------------------------------------------------------------- auth = hba, clientcert=

{
    my $dir = tmpdir(name => 'crl');
    my $hba = "$dir/pg_hba.conf";
    write_file($hba, "hostssl all all all trust clientcert=verify-ca\n");
    $p->update_config(settings => { auth => 'hba', auth_hba_file => $hba });
    is reload(), 'configuration reloaded', 'auth = hba with a clientcert=verify-ca line';
    my ($st, $out) = login($good);
    is "$st $out", 'ok app', '... the certificate not revoked logs in';
    ($st, $out) = login($revoked);
    like "$st $out", qr/^error .*certificate revoked/s, '... the revoked one is refused';
}

# ---------------------------------------------------------------- client_tls_crl_dir

{
    my $dir = tmpdir(name => 'crl-dir', mode => 0755);
    write_file("$dir/list.pem", PgNearTest::slurp_file($crl));
    my ($rc, $o, $err) = run_cmd([require_tool('openssl'), 'rehash', $dir]);
    is $rc, 0, 'openssl rehash names the list by its issuer\'s hash' or diag $err;
    $p->update_config(settings => { client_tls_crl_file => undef, client_tls_crl_dir => $dir });
    is reload(), 'configuration reloaded', 'reload with client_tls_crl_dir in place of the file';
    my ($st, $out) = login($good);
    is "$st $out", 'ok app', '... the certificate not revoked logs in';
    ($st, $out) = login($revoked);
    like "$st $out", qr/^error .*certificate revoked/s, '... the revoked one is refused';
}

# ---------------------------------------------------------------- a list inside client_tls_ca_file

{
    my $dir = tmpdir(name => 'crl-in-ca', mode => 0755);
    write_file("$dir/ca-and-list.pem", PgNearTest::slurp_file($ca->cert) . PgNearTest::slurp_file($crl));
    my $empty_dir = tmpdir(name => 'crl-empty-dir', mode => 0755);
    $p->update_config(settings => { client_tls_crl_dir => undef, client_tls_crl_file => undef,
                                    client_tls_ca_file => "$dir/ca-and-list.pem" });
    is reload(), 'configuration reloaded', 'a list inside client_tls_ca_file, no CRL setting';
    my ($st, $out) = login($revoked);
    is "$st $out", 'ok app', '... is not checked (as PostgreSQL ignores it without ssl_crl_file)';
    $p->update_config(settings => { client_tls_crl_dir => $empty_dir });
    is reload(), 'configuration reloaded', 'with client_tls_crl_dir set (an empty directory)';
    ($st, $out) = login($revoked);
    like "$st $out", qr/^error .*certificate revoked/s, '... the list inside the CA file refuses the revoked one';
    ($st, $out) = login($good);
    is "$st $out", 'ok app', '... and admits the other';
    $p->update_config(settings => { client_tls_ca_file => $ca->cert });
}

# ---------------------------------------------------------------- an empty list, bad lists

{
    $p->update_config(settings => { client_tls_crl_dir => undef, client_tls_crl_file => $empty_crl });
    is reload(), 'configuration reloaded', 'a list that revokes nothing';
    my ($st, $out) = login($revoked);
    is "$st $out", 'ok app', '... admits both again';

    my $missing = tmpdir(name => 'crl-missing') . '/none.pem';
    $p->update_config(settings => { client_tls_crl_file => $missing });
    like reload(), qr/reload failed.*could not load client_tls_crl_file/,
        'a list that cannot be read fails the reload, saying which';
    ($st, $out) = login($revoked);
    is "$st $out", 'ok app', '... and the list read before still decides';

    my ($rc, $o, $err) = run_cmd([$ENV{PGNEAR}, '--check', $p->config_path]);
    isnt $rc, 0, 'pgnear --check refuses it too';
    like "$o$err", qr/could not load client_tls_crl_file "\Q$missing\E"/, '... naming the file';

    # A certificate where a list belongs: refused, never taken as a CA.
    $p->update_config(settings => { client_tls_crl_file => $ca->cert });
    like reload(), qr/reload failed.*could not load client_tls_crl_file "\Q${\ $ca->cert }\E"/,
        'a file without a list (the CA certificate) fails the reload';

    $p->update_config(settings => { client_tls_crl_file => $crl, client_tls_ca_file => undef,
                                    auth => 'scram', auth_hba_file => undef });
    ($rc, $o, $err) = run_cmd([$ENV{PGNEAR}, '--check', $p->config_path]);
    like "$o$err", qr/client_tls_crl_file needs client_tls_ca_file/,
        'a list without client_tls_ca_file is refused (nothing would be checked against it)';
}

$p->stop;
done_testing;
