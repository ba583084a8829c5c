# Limits per user and per database: max_user_client_connections and
# max_db_client_connections (client sessions, across workers) refuse a
# login past them with 53300 naming the limit; max_user_connections
# (server connections of a user per host) makes a client wait as a full
# pool does, served when a slot frees and refused at query_wait_timeout.
# Each under pool_mode = session, transaction and target_session_attrs =
# nearest; set globally and in [user] / [database] sections (a [user]
# section's over a [database] one's); changed by a reload; counts that go
# back down as clients leave, including those that vanish while they wait
# for a server and those that never finished their login; SHOW USERS,
# SHOW DATABASES and /metrics show them; and by default there is no limit.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool('psql');

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin("SET password_encryption = 'scram-sha-256'; CREATE ROLE app2 LOGIN PASSWORD 'app2-secret'");
my $auth_dir = tmpdir(name => 'limits-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist,
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n}
  . qq{"app2" "} . $us->scram_verifier('app2') . qq{"\n});
my %PASSWORD = (app => 'app-secret', app2 => 'app2-secret');

my %MODE = (
    session     => { pool_mode => 'session' },
    transaction => { pool_mode => 'transaction' },
    nearest     => { pool_mode => 'transaction', target_session_attrs => 'nearest' },
);

sub proxy {
    my ($mode, %o) = @_;
    my $extra = delete $o{extra_ini} // '';
    PgNearTest::Proxy->new(regions => [$us], extra_ini => $extra,
        settings => { auth => 'scram', auth_file => $userlist, admin_users => 'admin', server_tls => 'disable',
                      workers => 2, query_wait_timeout => '2s', shutdown_timeout => '1s', %{ $MODE{$mode} }, %o });
}

# A login: {ok, w} or {ok => 0, C, M, D}.
sub try_login {
    my ($p, %o) = @_;
    my $user = $o{user} // 'app';
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
    my $r = $w->startup(user => $user, database => $o{database} // 'movr', password => $PASSWORD{$user});
    return { ok => 1, w => $w } if $r->{ok};
    return { ok => 0, eof => $r->{eof}, %{ $r->{error} // {} } };
}

sub login {
    my ($p, %o) = @_;
    my $r = try_login($p, %o);
    die "login as " . ($o{user} // 'app') . " failed: " . ($r->{C} // 'eof') . ' ' . ($r->{M} // '') . "\n"
      unless $r->{ok};
    return $r->{w};
}

sub one { my ($w, $sql) = @_; my $q = $w->query($sql); die "$sql: $q->{error}{M}\n" if $q->{error}; $q->{rows}[0][0] }

# A client holding a server connection: inside a transaction.
sub holder { my ($p, %o) = @_; my $w = login($p, %o); one($w, 'BEGIN'); one($w, 'SELECT 1'); return $w }

# A login and one query in a child process, so that the test can watch it wait:
# bg_result gives {ok, query_ok, elapsed} or {C, M, D, elapsed}.
sub bg_client {
    my ($p, %o) = @_;
    return in_background(sub {
        my %out;
        my $user = $o{user} // 'app';
        my $t0 = time;
        my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
        my $r = $w->startup(user => $user, database => $o{database} // 'movr', password => $PASSWORD{$user});
        if ($r->{ok}) {
            my $q = $w->query('SELECT 1');
            $out{elapsed} = time - $t0;
            $out{ok} = $q->{error} ? 0 : 1;
            $out{$_} = $q->{error}{$_} // '' for qw(C M D);
            $w->terminate;
        } else {
            $out{elapsed} = time - $t0;
            $out{ok} = 0;
            $out{$_} = $r->{error}{$_} // '' for qw(C M D);
        }
        return %out;
    });
}


sub user_row { my ($p, $user) = @_; (grep { $_->{user} eq $user } $p->admin_rows('SHOW USERS'))[0] // {} }
sub db_row { my ($p, $db) = @_; (grep { $_->{database} eq $db } $p->admin_rows('SHOW DATABASES'))[0] // {} }
sub user_clients { my ($p, $user) = @_; user_row($p, $user)->{clients} // 0 }

sub reload {
    my ($p, %settings) = @_;
    my $extra = delete $settings{extra_ini};
    my $off = $p->log_size;
    $p->update_config(settings => \%settings, (defined $extra ? (extra_ini => $extra) : ()));
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded/, offset => $off), 'reloaded';
}

# ================================================================ settings' bounds
for my $case ([1, max_user_connections => -1], [0, max_user_connections => 3],
              [1, max_user_client_connections => -2], [1, max_db_client_connections => 'many'],
              [0, max_db_client_connections => 0]) {
    my ($bad, $k, $v) = @$case;
    my $cfg = PgNearTest::Proxy->new(regions => [$us], start => 0,
        settings => { auth => 'scram', auth_file => $userlist, $k => $v });
    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $cfg->config_path]);
    if ($bad) {
        isnt $rc, 0, "pgnear --check refuses $k = $v";
        like $err, qr/\Q$k\E/, "... naming $k";
    } else {
        is $rc, 0, "pgnear --check accepts $k = $v" or diag $err;
    }
}
for my $case (["[user app]\nmax_user_client_connections = -1\n", qr/invalid max_user_client_connections "-1"/],
              ["[database movr]\nmax_db_client_connections = x\n", qr/invalid max_db_client_connections "x"/]) {
    my ($ini, $re) = @$case;
    my $cfg = PgNearTest::Proxy->new(regions => [$us], start => 0, extra_ini => $ini,
        settings => { auth => 'scram', auth_file => $userlist });
    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $cfg->config_path]);
    isnt $rc, 0, "pgnear --check refuses a section's bad limit";
    like $err, $re, '... naming the key and value';
}

{
    my $cfg = PgNearTest::Proxy->new(regions => [$us], start => 0,
        settings => { auth => 'scram', auth_file => $userlist, query_wait_timeout => '9s' });
    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $cfg->config_path]);
    unlike $out, qr/^limit: max_(user|db_client)/m, '--check, defaults: no limit per user or database';
    $cfg->update_config(settings => { max_user_connections => 4, max_user_client_connections => 7,
                                      max_db_client_connections => 30 });
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $cfg->config_path]);
    like $out, qr/^limit: max_user_connections 4: a session that needs its user's 5th server connection to one host waits up to query_wait_timeout \(9 s\), then gets 53300$/m,
        '--check: max_user_connections' or diag $out;
    like $out, qr/^limit: max_user_client_connections 7: a user's next client session gets 53300/m,
        '--check: max_user_client_connections';
    like $out, qr/^limit: max_db_client_connections 30: a database's next client session gets 53300/m,
        '--check: max_db_client_connections';
}

# ================================================================ defaults: no limit
{
    my $mport = free_port();
    my $p = proxy('session', metrics_addr => "127.0.0.1:$mport");
    my @w = map { login($p, user => $_ % 2 ? 'app' : 'app2') } 1 .. 12;
    is scalar(@w), 12, 'defaults: 12 clients of two users on one database all log in';
    my @h = map { holder($p) } 1 .. 4;
    my $r = try_login($p);
    ok $r->{ok}, 'defaults: a client beside four holding server connections gets in at once';
    my $u = user_row($p, 'app');
    is $u->{clients}, 6 + 4 + 1, 'SHOW USERS: clients counts the user\'s sessions';
    is $u->{max_user_client_connections}, 0, 'SHOW USERS: max_user_client_connections 0 (no limit)';
    is $u->{max_user_connections}, 0, 'SHOW USERS: max_user_connections 0 (no limit)';
    cmp_ok $u->{servers}, '>=', 4, 'SHOW USERS: servers counts the user\'s server connections';
    my $d = db_row($p, 'movr');
    is $d->{clients}, 12 + 4 + 1, 'SHOW DATABASES: clients counts the database\'s sessions';
    is $d->{max_db_client_connections}, 0, 'SHOW DATABASES: no limit';
    {
        my ($rc, $m) = run_cmd([require_tool('curl'), '-s', "http://127.0.0.1:$mport/metrics"]);
        like $m, qr/^pgnear_user_clients\{user="app"\} 11$/m, '/metrics: pgnear_user_clients';
        like $m, qr/^pgnear_database_clients\{database="movr"\} 17$/m, '/metrics: pgnear_database_clients';
        like $m, qr/^pgnear_user_server_connections\{user="app"\} \d+$/m, '/metrics: pgnear_user_server_connections';
    }
    $_->terminate for @w, @h, $r->{w};
    ok wait_until(sub { user_clients($p, 'app') == 0 }, timeout => 5), 'the counts go back to zero as they leave';
    $p->stop;
}

# ================================================================ client limits, each mode
for my $mode (qw(session transaction nearest)) {
    # ---- global max_user_client_connections
    my $p = proxy($mode, max_user_client_connections => 2);
    my @in = (login($p), login($p));
    my $r = try_login($p);
    ok !$r->{ok}, "$mode: the third session of app is refused (max_user_client_connections = 2)";
    is $r->{C}, '53300', "$mode: ... with 53300";
    is $r->{M}, 'too many client connections for user "app"', "$mode: ... in PostgreSQL's words";
    like $r->{D}, qr/max_user_client_connections is 2; the user has 2 client sessions/, "$mode: ... the detail names the limit";
    ok try_login($p, user => 'app2')->{ok}, "$mode: another user is not held to app's count";
    $in[0]->terminate;
    my $again;
    ok wait_until(sub { $again = try_login($p); $again->{ok} }, timeout => 5), "$mode: once one leaves, app gets in again";
    $in[0] = $again->{w};
    is one($in[1], 'SELECT 41 + 1'), 42, "$mode: the sessions admitted work";

    # ---- reload: raised, then lifted
    reload($p, max_user_client_connections => 3);
    my $more = try_login($p);
    ok $more->{ok}, "$mode: after a reload to 3, another app session gets in";
    is try_login($p)->{C}, '53300', "$mode: ... and the one after is refused";
    reload($p, max_user_client_connections => 0);
    ok try_login($p)->{ok}, "$mode: after a reload to 0, no limit";
    $_->terminate for @in, $more->{w};
    $p->stop;

    # ---- global max_db_client_connections
    $p = proxy($mode, max_db_client_connections => 2);
    @in = (login($p), login($p, user => 'app2'));
    $r = try_login($p);
    is $r->{C}, '53300', "$mode: the third session on movr, of either user, is refused (max_db_client_connections = 2)";
    is $r->{M}, 'too many client connections for database "movr"', "$mode: ... naming the database";
    like $r->{D}, qr/max_db_client_connections is 2/, "$mode: ... and the limit";
    ok try_login($p, database => 'postgres')->{ok}, "$mode: another database is not held to movr's count";
    $_->terminate for @in;
    $p->stop;
}

# ================================================================ sections: [user] over [database] over global
{
    my $p = proxy('session', max_user_client_connections => 5, extra_ini =>
        "[user app]\nmax_user_client_connections = 1\n\n[database postgres]\nmax_db_client_connections = 1\n"
      . "\n[user app2]\nmax_db_client_connections = 4\n");
    my $a = login($p);
    is try_login($p)->{C}, '53300', '[user app] max_user_client_connections = 1: its second session is refused';
    my @b = map { login($p, user => 'app2') } 1 .. 3;
    is scalar(@b), 3, 'app2 keeps the global 5';
    is user_row($p, 'app')->{max_user_client_connections}, 1, 'SHOW USERS: app\'s own limit';
    is user_row($p, 'app2')->{max_user_client_connections}, 5, 'SHOW USERS: app2\'s, the global one';
    my $pg = login($p, user => 'app2', database => 'postgres');
    $a->terminate;
    ok wait_until(sub { user_clients($p, 'app') == 0 }, timeout => 5), 'app\'s session left';
    my $r = try_login($p, database => 'postgres');
    is $r->{C}, '53300', '[database postgres] max_db_client_connections = 1: a second session there is refused';
    like $r->{M}, qr/for database "postgres"/, '... naming the database';
    ok try_login($p, user => 'app2', database => 'postgres')->{ok},
        '[user app2] max_db_client_connections = 4 holds its sessions over the [database] section\'s';
    is db_row($p, 'postgres')->{max_db_client_connections}, 1, 'SHOW DATABASES: postgres\'s limit';
    $p->stop;
}

# ================================================================ max_user_connections: waits, each mode
for my $mode (qw(session transaction nearest)) {
    my $p = proxy($mode, max_user_connections => 1);
    my $h = holder($p);
    my $bg = bg_client($p);
    sleep 0.7;
    ok !-e $bg->{file}, "$mode: max_user_connections = 1: a second client of app waits for the first's server connection";
    my $other = try_login($p, user => 'app2');
    ok $other->{ok} && one($other->{w}, 'SELECT 1') == 1, "$mode: another user does not wait";
    $other->{w}->terminate;
    one($h, 'COMMIT');
    $h->terminate if $mode eq 'session';
    my $res = background_result($bg);
    ok $res->{ok}, "$mode: the waiting client is served when the slot frees" or diag explain $res;

    # timed out by query_wait_timeout
    $h = holder($p) if $mode eq 'session';
    one($h, 'BEGIN') unless $mode eq 'session';
    one($h, 'SELECT 1');
    my $t0 = time;
    $res = background_result(bg_client($p));
    is $res->{C}, '53300', "$mode: a client still waiting after query_wait_timeout gets 53300";
    is $res->{M}, sprintf('no server connection free for user "app" on host %s', $us->hostport),
        "$mode: ... naming the user and the host" or diag explain $res;
    like $res->{D}, qr/\(max_user_connections\)/, "$mode: ... and the limit";
    cmp_ok $res->{elapsed}, '>=', 1.8, "$mode: ... after about 2 s";
    is user_row($p, 'app')->{max_user_connections}, 1, "$mode: SHOW USERS shows max_user_connections";
    $h->terminate;

    # a [user] section's limit, over the global one
    reload($p, max_user_connections => 0, extra_ini => "[user app2]\nmax_user_connections = 1\n");
    $h = holder($p, user => 'app2');
    $bg = bg_client($p, user => 'app2');
    my @free = map { holder($p) } 1 .. 2;
    is scalar(@free), 2, "$mode: after a reload app has no limit";
    $res = background_result($bg);
    is $res->{C}, '53300', "$mode: [user app2] max_user_connections = 1: its second client times out";
    $_->terminate for $h, @free;
    $p->stop;
}

# ================================================================ counts after clients vanish
{
    my $p = proxy('session', max_user_connections => 1, max_user_client_connections => 2, query_wait_timeout => '20s');
    my $h = holder($p);
    # A client that logs in and waits for a server, then vanishes.
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
    my $kid = fork // die;
    if ($kid == 0) { $w->startup(user => 'app', database => 'movr', password => 'app-secret'); POSIX::_exit(0) }
    ok wait_until(sub { user_clients($p, 'app') == 2 }, timeout => 5), 'a client waiting for a server counts';
    kill 'KILL', $kid;
    waitpid $kid, 0;
    undef $w;
    ok wait_until(sub { user_clients($p, 'app') == 1 }, timeout => 5), 'it vanished: the count goes down';
    # Clients that leave before their login ends are never counted.
    my $startup = pack('N', 196608) . "user\0app\0database\0movr\0\0";
    for my $first (pack('NN', 8, 80877103), pack('N', 4 + length $startup) . $startup) {
        # An SSLRequest, or a startup packet (SCRAM's first challenge comes back), then gone.
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p->port) or die "connect: $!";
        print $s $first;
        sleep 0.2;
        close $s;
    }
    sleep 0.3;
    is user_clients($p, 'app'), 1, 'connections that left mid-login were never counted';
    $h->terminate;
    ok wait_until(sub { user_clients($p, 'app') == 0 }, timeout => 5), 'all gone: zero';
    my $again = login($p);
    is user_clients($p, 'app'), 1, 'and a new session counts from there';
    $again->terminate;
    $p->stop;
}

done_testing;
