# Authentication through pgnear.
#   auth = scram: pgnear verifies clients against auth_file (plain, TLS,
#   channel binding to its own certificate), logs into the server with the
#   recovered ClientKey, and explains secrets that differ and servers that
#   ask for a password; one verifier shared by two regions.
#   auth = passthrough: the server authenticates; the TLS-on-both-sides
#   channel-binding case fails with an explanation; pgnear --check.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time);
use Digest::SHA qw(sha256 hmac_sha256);
use MIME::Base64 qw(encode_base64 decode_base64);
use PgNearTest;

my $t0 = time;
$SIG{PIPE} = 'IGNORE';    # a peer that closed first must not kill the test
require_tool($_) for qw(psql openssl);
die "PGNEAR is not set; point it at the pgnear binary\n" unless $ENV{PGNEAR} && -x $ENV{PGNEAR};

# ---------------------------------------------------------------- helpers


# tls-server-end-point channel binding data of a PEM certificate signed
# with SHA-256 (all certificates of PgNearTest::CA are).
sub cert_end_point {
    my ($pem_file) = @_;
    my ($b64) = slurp_file($pem_file) =~ /-----BEGIN CERTIFICATE-----\s*(.*?)-----END CERTIFICATE-----/s
      or die "no certificate in $pem_file\n";
    return sha256(decode_base64($b64));
}

# A SCRAM login written out by hand, so that the gs2 header and the channel
# binding data can be chosen: gs2 => 'n' | 'y' | 'p', cb => raw bytes.
# -> { mechs => [...], error => {...}, ok => 0|1, server_final_ok => 0|1 }
sub scram_login {
    my ($w, %o) = @_;
    my $body = pack('N', 0x30000) . "user\0" . ($o{user} // 'app') . "\0database\0movr\0\0";
    $w->send_raw(pack('N', 4 + length $body) . $body);
    my %r = (ok => 0, mechs => []);
    my ($t, $m) = $w->read_msg;
    return { %r, eof => 1 } unless defined $t;
    return { %r, error => PgNearTest::Wire::parse_fields($m) } if $t eq 'E';
    die "expected AuthenticationSASL, got '$t'\n" unless $t eq 'R' && unpack('N', $m) == 10;
    $r{mechs} = [grep { length } split /\0/, substr($m, 4)];

    my $gs2 = $o{gs2} eq 'p' ? 'p=tls-server-end-point,,' : "$o{gs2},,";
    my $mech = $o{gs2} eq 'p' ? 'SCRAM-SHA-256-PLUS' : 'SCRAM-SHA-256';
    my $nonce = encode_base64(join('', map { chr(int(rand(256))) } 1 .. 18), '');
    my $bare = "n=,r=$nonce";
    $w->send_msg('p', "$mech\0" . pack('N', length($gs2 . $bare)) . $gs2 . $bare);
    ($t, $m) = $w->read_msg;
    return { %r, eof => 1 } unless defined $t;
    return { %r, error => PgNearTest::Wire::parse_fields($m) } if $t eq 'E';
    die "expected AuthenticationSASLContinue, got '$t'\n" unless $t eq 'R' && unpack('N', $m) == 11;
    my $sf = substr($m, 4);
    my %a = map { /^(\w)=(.*)$/s ? ($1, $2) : () } split /,/, $sf;
    my $salted = PgNearTest::_pbkdf2_sha256($o{password} // 'app-secret', decode_base64($a{s}), $a{i});
    my $ck = hmac_sha256('Client Key', $salted);
    my $wo = 'c=' . encode_base64($gs2 . ($o{gs2} eq 'p' ? $o{cb} : ''), '') . ",r=$a{r}";
    my $am = "$bare,$sf,$wo";
    my $proof = $ck ^ hmac_sha256($am, sha256($ck));
    my $expect = encode_base64(hmac_sha256($am, hmac_sha256('Server Key', $salted)), '');
    $w->send_msg('p', "$wo,p=" . encode_base64($proof, ''));
    for (1 .. 100) {
        ($t, $m) = $w->read_msg;
        return { %r, eof => 1 } unless defined $t;
        return { %r, error => PgNearTest::Wire::parse_fields($m) } if $t eq 'E';
        if ($t eq 'R' && unpack('N', $m) == 12) {
            my ($v) = substr($m, 4) =~ /v=([^,]+)/;
            $r{server_final_ok} = (defined $v && $v eq $expect) ? 1 : 0;
        }
        return { %r, ok => 1 } if $t eq 'Z';
    }
    die "login did not finish\n";
}

sub wire_login {
    my ($p, %o) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port);
    my $r = $w->startup(user => $o{user} // 'app', database => 'movr', password => $o{password} // 'app-secret');
    $r->{rows} = $w->query($o{sql})->{rows} if $r->{ok} && $o{sql};
    $w->terminate;
    return $r;
}

sub log_after {
    my ($p, $off, $re) = @_;
    return $p->wait_for_log($re, offset => $off, timeout => 5);
}

# The log lines written since $off (waits a moment for the session to close).
sub log_since {
    my ($p, $off) = @_;
    $p->wait_for_log(qr/closing (session|connection)/, offset => $off, timeout => 5);
    my $all = $p->log_contents;
    return substr($all, $off);
}

my $SSL_ON = 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()';

# ---------------------------------------------------------------- set-up

my $ca = PgNearTest::CA->new;
my $us = PgNearTest::Cluster->new(name => 'us-east', ca => $ca);
my $eu = PgNearTest::Cluster->new(name => 'eu-west', ca => $ca);
# A server that asks for a password (cleartext, later md5) instead of SCRAM.
my $pwsrv = PgNearTest::Cluster->new(name => 'us-west',
    hba => ['local all all trust', 'host all all 127.0.0.1/32 password', 'host all all ::1/128 password']);

my $pc = $ca->issue(name => 'pgnear', cn => 'localhost',
                    san => ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1'], owner => undef);
my %tls_client = (client_tls => 'allow', client_tls_cert_file => $pc->{cert}, client_tls_key_file => $pc->{key});
my %verify_full = (server_tls => 'verify-full', server_tls_ca_file => $ca->cert);

my $auth_dir = tmpdir(name => 'auth');
my $us_verifier = $us->scram_verifier('app');
like $us_verifier, qr/^SCRAM-SHA-256\$4096:/, 'set-up: the server holds a SCRAM secret for app';
my $eu_verifier = $eu->scram_verifier('app');
isnt $eu_verifier, $us_verifier, 'set-up: the two regions have different secrets (different salts)';

sub userlist {
    my ($name, %users) = @_;
    my $f = "$auth_dir/$name.txt";
    write_file($f, join('', map { qq{"$_" "$users{$_}"\n} } sort keys %users));
    return $f;
}

# ================================================================ auth = scram

my $ps = PgNearTest::Proxy->new(regions => [$us],
    settings => { auth => 'scram', auth_file => userlist('us', app => $us_verifier), %tls_client, %verify_full });

{
    # Plain TCP.
    my $off = $ps->log_size;
    is psql($ps->conninfo(sslmode => 'disable'), 'SELECT current_user'), 'app', 'scram: plain TCP login with the right password';
    my $log = log_since($ps, $off);
    like $log, qr/c\d+: client authenticated by pgnear \(SCRAM\)\n/, '... authenticated by pgnear, without channel binding';
    like $log, qr/session established: user=app database=movr region=us-east/, '... and logged into the server';

    # The raw client: pgnear proves it knows the secret too.
    my $r = wire_login($ps, sql => 'SELECT current_user');
    ok $r->{ok}, 'scram: raw plain login';
    is_deeply $r->{sasl_mechanisms}, ['SCRAM-SHA-256'], '... offers only SCRAM-SHA-256 without TLS';
    is $r->{server_signature_ok}, 1, '... and pgnear\'s server signature is valid';
    is $r->{rows} && $r->{rows}[0][0], 'app', '... session as app';

    # TLS with libpq's default channel_binding=prefer.
    $off = $ps->log_size;
    my ($rc, $out, $err) = psql($ps->conninfo(sslmode => 'require'), ['\conninfo', $SSL_ON]);
    is $rc, 0, 'scram: TLS login with channel_binding=prefer (libpq default)' or diag $err;
    like $out, qr/SSL connection/, '... over TLS';
    like $out, qr/\nt$/, '... and TLS to the server';
    like log_since($ps, $off), qr/c\d+: client authenticated by pgnear \(SCRAM with channel binding\)/,
        '... channel binding was used';

    # sslmode defaults to prefer: TLS and channel binding again.
    $off = $ps->log_size;
    is psql($ps->conninfo(sslmode => undef), 'SELECT 1'), '1', 'scram: libpq defaults (sslmode=prefer, channel_binding=prefer)';
    like log_since($ps, $off), qr/client authenticated by pgnear \(SCRAM with channel binding\)/, '... with channel binding';

    # channel_binding=require over TLS.
    $off = $ps->log_size;
    ($rc, $out, $err) = psql($ps->conninfo(host => 'localhost', sslmode => 'verify-full', sslrootcert => $ca->cert,
                                           channel_binding => 'require'), 'SELECT current_user');
    is $rc, 0, 'scram: channel_binding=require over TLS works' or diag $err;
    is $out, 'app', '... as app';
    like log_since($ps, $off), qr/client authenticated by pgnear \(SCRAM with channel binding\)/, '... with channel binding';

    # channel_binding=require without TLS: libpq refuses.
    ($rc, $out, $err) = psql($ps->conninfo(sslmode => 'disable', channel_binding => 'require'), 'SELECT 1');
    isnt $rc, 0, 'scram: channel_binding=require without TLS fails';
    like $err, qr/channel binding required, but SSL not in use|channel binding is required/i,
        '... on the client side, for lack of channel binding';

    # Channel binding by hand: the right certificate hash, a wrong one, and a downgrade.
    my $tw = PgNearTest::TlsWire->connect(host => '127.0.0.1', port => $ps->port, ca => $ca->cert);
    $r = scram_login($tw, gs2 => 'p', cb => cert_end_point($pc->{cert}));
    ok $r->{ok}, 'scram: SCRAM-SHA-256-PLUS with the hash of pgnear\'s certificate works' or diag explain $r;
    is_deeply $r->{mechs}, ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'], '... PLUS offered over TLS';
    is $r->{server_final_ok}, 1, '... and pgnear\'s signature covers the binding';
    $tw->terminate;

    $tw = PgNearTest::TlsWire->connect(host => '127.0.0.1', port => $ps->port, ca => $ca->cert);
    # What a client would send if something in between had its own certificate.
    $r = scram_login($tw, gs2 => 'p', cb => cert_end_point($us->datadir . "/server.crt"));
    ok !$r->{ok}, 'scram: channel binding data of another certificate is refused';
    is $r->{error}{C}, '28000', '... with 28000' or diag explain $r;
    $tw->terminate;

    $tw = PgNearTest::TlsWire->connect(host => '127.0.0.1', port => $ps->port, ca => $ca->cert);
    $r = scram_login($tw, gs2 => 'y');
    ok !$r->{ok}, 'scram: a client claiming pgnear has no channel binding (gs2 "y") is refused';
    is $r->{error}{C}, '28000', '... with 28000' or diag explain $r;
    $tw->terminate;

    # Wrong password, unknown user.
    $r = wire_login($ps, password => 'wrong-secret');
    ok !$r->{ok}, 'scram: wrong password refused';
    is $r->{error}{C}, '28P01', '... with 28P01';
    is $r->{error}{M}, 'password authentication failed for user "app"', '... and the usual message';

    $r = wire_login($ps, user => 'nobody', password => 'whatever');
    ok !$r->{ok}, 'scram: unknown user refused';
    is $r->{error}{C}, '28P01', '... with 28P01 too';
    is $r->{error}{M}, 'password authentication failed for user "nobody"', '... and the same message as a wrong password';
    ok grep({ /^sasl:/ } @{ $r->{auth} }), '... after a full SCRAM exchange (no early tell)';

    ($rc, $out, $err) = psql($ps->conninfo(password => 'wrong-secret', sslmode => 'require'), 'SELECT 1');
    isnt $rc, 0, 'scram: wrong password over TLS refused';
    like $err, qr/password authentication failed for user "app"/, '... with the message';
}

# An auth_file secret that differs from the server's (same password, other salt).
{
    my $other = make_scram_verifier('app-secret', salt => 'another salt 16b');
    isnt $other, $us_verifier, 'set-up: a second verifier for the same password';
    my $pd = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'scram', auth_file => userlist('other', app => $other), server_tls => 'prefer' });
    my $r = wire_login($pd);
    ok !$r->{ok}, 'scram: auth_file secret differing from the server\'s fails';
    is $r->{error}{C}, '28000', '... with 28000';
    like "$r->{error}{M}", qr/SCRAM secret.*differs/, '... saying the server\'s SCRAM secret differs'
        or diag explain $r->{error};
    is scalar(grep { $_ eq 'ok' } @{ $r->{auth} }), 0, '... and the client was never told it was authenticated';
    $pd->stop;
}

# auth = scram against a server that asks for a password.
{
    my $pp = PgNearTest::Proxy->new(regions => [$pwsrv],
        settings => { auth => 'scram', auth_file => userlist('pw', app => $pwsrv->scram_verifier('app')),
                      server_tls => 'disable' });
    my $r = wire_login($pp);
    ok !$r->{ok}, 'scram: server with "password" in pg_hba fails';
    is $r->{error}{C}, '28000', '... with 28000';
    is $r->{error}{M}, 'server requested password authentication', '... "server requested password authentication"';
    like $r->{error}{H} // '', qr/scram-sha-256|passthrough/, '... with a hint';

    # Now md5 with an md5 secret on the server.
    write_file($pwsrv->datadir . '/pg_hba.conf',
               "local all postgres trust\nlocal all all trust\nhost all all 127.0.0.1/32 md5\nhost all all ::1/128 md5\n",
               mode => 0600, owner => 'postgres');
    $pwsrv->psql_admin(["SET password_encryption = 'md5'; ALTER ROLE app PASSWORD 'app-secret'",
                        'SELECT pg_reload_conf()']);
    my $md5 = wait_until(sub {
        my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $pwsrv->port);
        my $d = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
        $w->terminate;
        $d->{ok} && $d->{auth}[0] eq 'md5';
    }, timeout => 10, interval => 0.2);
    ok $md5, 'set-up: the server now asks for md5';
    $r = wire_login($pp);
    is $r->{error}{C}, '28000', 'scram: server with md5 in pg_hba fails with 28000';
    is $r->{error}{M}, 'server requested password authentication', '... "server requested password authentication"';
    $pp->stop;
}

# Two regions, one verifier: the second region's role gets the first one's secret.
{
    my $p2 = PgNearTest::Proxy->new(regions => [$us, $eu],
        settings => { auth => 'scram', auth_file => userlist('shared', app => $us_verifier), %tls_client, %verify_full,
                      default_region => 'eu-west' });
    my $r = wire_login($p2);
    is $r->{error}{C}, '28000', 'set-up: before the secret is shared, eu-west refuses pgnear';

    $eu->psql_admin("ALTER ROLE app PASSWORD '$us_verifier'");
    is $eu->scram_verifier('app'), $us_verifier, 'eu-west now holds us-east\'s verifier';
    is psql($eu->conninfo, 'SELECT 1'), '1', '... and app-secret still logs in there directly';

    is psql($p2->conninfo(sslmode => 'disable'), 'SHOW cluster_name'), 'eu-west',
        'scram: shared verifier, default_region eu-west: plain login lands in eu-west';
    my ($rc, $out, $err) = psql($p2->conninfo(sslmode => 'require', channel_binding => 'require'),
                                ['SHOW cluster_name', $SSL_ON]);
    is $rc, 0, '... and with TLS and channel_binding=require' or diag $err;
    is $out, "eu-west\nt", '... in eu-west, over TLS to the server';
    $p2->stop;
}

# ================================================================ auth = passthrough

{
    my $pp = PgNearTest::Proxy->new(regions => [$us], settings => { auth => 'passthrough', server_tls => 'disable' });
    is psql($pp->conninfo(sslmode => 'disable'), 'SELECT current_user'), 'app',
        'passthrough: plain on both sides, SCRAM by the server';
    my $r = wire_login($pp);
    ok $r->{ok}, 'passthrough: raw login';
    is $r->{server_signature_ok}, 1, '... the server\'s own SCRAM signature reaches the client';

    $r = wire_login($pp, password => 'wrong-secret');
    ok !$r->{ok}, 'passthrough: wrong password refused';
    is $r->{error}{C}, '28P01', '... with 28P01 from the server';
    is $r->{error}{M}, 'password authentication failed for user "app"', '... with the server\'s message';

    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $pp->config_path]);
    is $rc, 0, 'pgnear --check: passthrough without TLS is fine';
    unlike $err, qr/WARNING/, '... without a warning';
    $pp->stop;
}

my $ptls = PgNearTest::Proxy->new(regions => [$us],
    settings => { auth => 'passthrough', %tls_client, %verify_full });
{
    # libpq's defaults over TLS on both sides: channel binding cannot work.
    my $off = $ptls->log_size;
    my ($rc, $out, $err) = psql($ptls->conninfo(sslmode => 'require'), 'SELECT 1');
    isnt $rc, 0, 'passthrough + TLS both sides, sslmode=require channel_binding=prefer: login fails';
    like $err, qr/channel binding/i, '... the error mentions channel binding';
    like $err, qr/pgnear/, '... and pgnear';
    ok log_after($ptls, $off, qr/c\d+: FATAL 28000: SCRAM channel binding cannot pass through pgnear/),
        '... SQLSTATE 28000 (pgnear log)';

    # sslmode=prefer: the TLS attempt fails the same way, and libpq then
    # retries in plain text (its own fallback), where passthrough works.
    $off = $ptls->log_size;
    ($rc, $out, $err) = psql($ptls->conninfo(sslmode => 'prefer'), ['\conninfo', 'SELECT 1']);
    my $log = log_since($ptls, $off);
    like $log, qr/login from \S+: user=app database=movr application_name=psql tls\n.*FATAL 28000: SCRAM channel binding cannot pass through pgnear/s,
        'passthrough + TLS both sides, sslmode=prefer: the TLS attempt is refused with 28000';
    is $rc, 0, '... then libpq retries without TLS, which works' or diag $err;
    unlike $out, qr/SSL connection/, '... so the session is in plain text';
    # The same exchange by hand, for the SQLSTATE on the wire.
    my $tw = PgNearTest::TlsWire->connect(host => '127.0.0.1', port => $ptls->port, ca => $ca->cert);
    my $r = scram_login($tw, gs2 => 'y');
    ok !grep({ /-PLUS$/ } @{ $r->{mechs} }), 'passthrough: SCRAM-SHA-256-PLUS removed from the server\'s offer';
    is $r->{error}{C}, '28000', 'passthrough: a TLS client that would bind (gs2 "y") gets 28000';
    like $r->{error}{M}, qr/channel binding.*pgnear/i, '... with a message about channel binding and pgnear';
    like $r->{error}{H} // '', qr/channel_binding=disable|auth = scram/, '... and a hint';
    $tw->terminate;

    ($rc, $out, $err) = psql($ptls->conninfo(sslmode => 'require', channel_binding => 'disable'), ['\conninfo', $SSL_ON]);
    is $rc, 0, 'passthrough + TLS both sides with channel_binding=disable works' or diag $err;
    like $out, qr/SSL connection/, '... over TLS';
    like $out, qr/\nt$/, '... and TLS to the server';

    ($rc, $out, $err) = psql($ptls->conninfo(sslmode => 'disable'), 'SELECT current_user');
    is $rc, 0, 'passthrough: a plain client through the same pgnear works' or diag $err;

    ($rc, $out, $err) = psql($ptls->conninfo(sslmode => 'require', channel_binding => 'require'), 'SELECT 1');
    isnt $rc, 0, 'passthrough: channel_binding=require cannot be met';
    like $err, qr/channel binding/i, '... says the client';

    # pgnear --check warns about this set-up.
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $ptls->config_path]);
    is $rc, 0, 'pgnear --check: passthrough with TLS on both sides exits 0';
    like $err, qr/WARNING.*passthrough.*TLS.*channel binding/, '... with a WARNING about passthrough, TLS and channel binding';
    like $out, qr/configuration OK/, '... and says the configuration is OK';
}

# pgnear --check on configurations written but not started.
{
    my $cfg = PgNearTest::Proxy->new(regions => [$us], start => 0,
        settings => { auth => 'scram', auth_file => userlist('check', app => $us_verifier), %tls_client, %verify_full });
    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $cfg->config_path]);
    is $rc, 0, 'pgnear --check: scram with TLS on both sides exits 0';
    unlike $err, qr/WARNING/, '... without a warning';

    my $bad = PgNearTest::Proxy->new(regions => [$us], start => 0, settings => { auth => 'scram' });
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $bad->config_path]);
    is $rc, 1, 'pgnear --check: auth = scram without auth_file exits 1';
    like $err, qr/auth = scram needs auth_file/, '... with a message';

    $bad = PgNearTest::Proxy->new(regions => [$us], start => 0,
        settings => { auth => 'scram', auth_file => "$auth_dir/no-such-file.txt" });
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $bad->config_path]);
    is $rc, 1, 'pgnear --check: a missing auth_file exits 1';
    like $err, qr/no-such-file/, '... naming the file';

    $bad = PgNearTest::Proxy->new(regions => [$us], start => 0, settings => { client_tls => 'require' });
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $bad->config_path]);
    is $rc, 1, 'pgnear --check: client_tls without a certificate exits 1';
    like $err, qr/client_tls_cert_file/, '... with a message';

    $bad = PgNearTest::Proxy->new(regions => [$us], start => 0, settings => { auth => 'kerberos' });
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $bad->config_path]);
    is $rc, 1, 'pgnear --check: an unknown auth method exits 1';
    like $err, qr/invalid value "kerberos" for setting "auth"/, '... naming the setting and the value' or diag $err;
}

my $elapsed = time - $t0;
note sprintf('070_auth took %.1f s', $elapsed);
ok $elapsed < 90, 'test file runs in under 90 s';

done_testing;
