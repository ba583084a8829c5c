# Session pooling's limits: with pool_size = 2 and two clients holding
# their server connections (inside transactions), a third client's login
# waits (SHOW CLIENTS: waiting; SHOW POOLS: cl_waiting 1, maxwait counting)
# and after query_wait_timeout gets 53300 naming the pool; other users and
# databases are not held up; a waiting client that gives up leaves the
# queue; a waiting client gets in, without an error, when a holder leaves
# within the timeout (cleanly or inside its transaction); max_db_connections
# = 1 holds the same way for the whole host, across two users and two
# databases; a kept connection that cannot serve a login (another pool,
# other options) gives way to it; pool_size holds over two workers.
# Clients waiting are logged once per pool and 10 s, not once per client
# (30 clients at once: one line), with how many began waiting since; and
# pgnear --check says which limits apply and what a client then gets.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);
use Time::Local qw(timegm);
use PgNearTest;
use PgNearCrowd;

$SIG{PIPE} = 'IGNORE';
require_tool('psql');

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin("SET password_encryption = 'scram-sha-256'; CREATE ROLE app2 LOGIN PASSWORD 'app2-secret'");
my $auth_dir = tmpdir(name => 'pool-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist,
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n}
  . qq{"app2" "} . $us->scram_verifier('app2') . qq{"\n});
my %PASSWORD = (app => 'app-secret', app2 => 'app2-secret');

sub proxy {
    PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'scram', auth_file => $userlist, admin_users => 'admin', server_tls => 'disable',
                      pool_mode => 'session', workers => 1, query_wait_timeout => '2s', @_ });
}

# ---------------------------------------------------------------- helpers

sub pool_row {
    my ($p, $db, $user) = @_;
    return (grep { ($_->{database} // '') eq $db && ($_->{user} // '') eq $user } $p->admin_rows('SHOW POOLS'))[0] // {};
}
sub waiting_clients { my ($p) = @_; grep { ($_->{state} // '') eq 'waiting' } $p->admin_rows('SHOW CLIENTS') }
sub servers { my ($p) = @_; grep { ($_->{region} // '') eq 'us-east' } $p->admin_rows('SHOW SERVERS') }
# The server connections of pool movr/app.
sub pool_servers { my ($p) = @_; grep { $_->{database} eq 'movr' && $_->{user} eq 'app' } servers($p) }

sub login {
    my ($p, %o) = @_;
    my $user = $o{user} // 'app';
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
    my $r = $w->startup(user => $user, database => $o{database} // 'movr', password => $PASSWORD{$user},
                        params => $o{params} // []);
    die "login through pgnear as $user failed: " . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n"
      unless $r->{ok};
    return $w;
}

sub one { my ($w, $sql) = @_; my $q = $w->query($sql); die "$sql: $q->{error}{M}\n" if $q->{error}; $q->{rows}[0][0] }

# A client holding its server connection inside a transaction: (wire, backend pid).
sub holder {
    my ($p, %o) = @_;
    my $w = login($p, %o);
    one($w, 'BEGIN');
    return ($w, one($w, 'SELECT pg_backend_pid()'));
}

sub backend_gone {
    my ($pid) = @_;
    return wait_until(sub { $us->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid") eq '0' },
                      timeout => 5);
}

# A login in a child process, so that the test can watch it wait: returns a
# handle for bg_result, which gives {ok, elapsed, pid, query_ok} or {C, M, D, elapsed}.
sub bg_login {
    my ($p, %o) = @_;
    return in_background(sub {
        my %out;
        my $user = $o{user} // 'app';
        my $t0 = time;
        my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
        my $r = $w->startup(user => $user, database => $o{database} // 'movr', password => $PASSWORD{$user});
        $out{elapsed} = time - $t0;
        if ($r->{ok}) {
            $out{ok} = 1;
            my $q = $w->query('SELECT pg_backend_pid()');
            $out{query_ok} = $q->{error} ? 0 : 1;
            $out{pid} = $q->{rows}[0][0] // '';
            $w->terminate;
        } else {
            $out{ok} = 0;
            $out{$_} = $r->{error}{$_} // '' for qw(C M D);
            $out{eof} = $r->{eof} ? 1 : 0;
        }
        return %out;
    });
}


sub no_servers_left {
    my ($p, $label) = @_;
    ok wait_until(sub { !servers($p) }, timeout => 5), "$label: no server connection left"
        or diag explain [servers($p)];
}

# ================================================================ bounds, with pgnear --check
# (pool_size 0 (no limit) to 10000, max_db_connections 0 or more, lifetimes 1s or more)
for my $case ([0, pool_size => 0], [1, pool_size => -1], [1, pool_size => 10001], [0, pool_size => 1],
              [1, max_db_connections => -1],
              [0, max_db_connections => 0], [1, server_lifetime => '500ms'], [0, server_lifetime => '1s'],
              [1, server_idle_timeout => '0s'], [0, server_idle_timeout => '1s'], [1, pool_mode => 'bogus'],
              [0, pool_mode => 'none']) {
    my ($bad, $k, $v) = @$case;
    my $cfg = PgNearTest::Proxy->new(regions => [$us], start => 0,
        settings => { auth => 'scram', auth_file => $userlist, pool_mode => 'session', $k => $v });
    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $cfg->config_path]);
    if ($bad) {
        is $rc, 1, "pgnear --check refuses $k = $v";
        like $err, qr/\Q$k\E/, "... naming $k";
    } else {
        is $rc, 0, "pgnear --check accepts $k = $v" or diag $err;
    }
}

# ================================================================ --check says which limits apply
{
    my $cfg = PgNearTest::Proxy->new(regions => [$us], start => 0,
        settings => { auth => 'scram', auth_file => $userlist, pool_mode => 'session' });
    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $cfg->config_path]);
    is $rc, 0, '--check, defaults: exit 0' or diag $err;
    like $out, qr/^limit: none per pool or host: every client session gets a server connection/m,
        '--check, defaults: no limit per pool or host' or diag $out;
    unlike $out, qr/^limit: (pool_size|max_db_connections)/m, '--check, defaults: neither limit listed';
    $cfg->update_config(settings => { pool_size => 20, max_db_connections => 50, query_wait_timeout => '90s' });
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $cfg->config_path]);
    like $out, qr/^limit: pool_size 20: the 21st concurrent session of one region, database and user waits for a server connection up to query_wait_timeout \(90 s\), then gets 53300$/m,
        '--check: the 21st session of one region, database and user waits, then gets 53300' or diag $out;
    like $out, qr/^limit: max_db_connections 50: a session that needs the 51st server connection of one host waits up to query_wait_timeout \(90 s\), then gets 53300$/m,
        '--check: so does one that needs the 51st connection of a host' or diag $out;
    unlike $out, qr/^limit: none per pool/m, '--check: and no longer says there is none';
    $cfg->update_config(settings => { auth => 'passthrough', auth_file => undef });
    ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $cfg->config_path]);
    unlike $out, qr/^limit: pool_size/m, '--check, passthrough: pool_size does not apply (nothing is pooled)';
}

# ================================================================ clients waiting: one line per pool and interval
# The log's UTC timestamp as Unix time.
sub log_time {
    my ($stamp) = @_;
    my ($y, $mo, $d, $h, $mi, $sec) = $stamp =~ /^(\d+)-(\d+)-(\d+) (\d+):(\d+):([\d.]+)/ or return undef;
    return timegm(0, $mi, $h, $d, $mo - 1, $y) + $sec;
}

{
    my $p = proxy(pool_size => 2);
    my ($h1) = holder($p);
    my ($h2) = holder($p);
    my $line = qr/^(\S+ \S+) UTC WARNING (?:c\d+: )?pool_size \(2\) reached for region us-east, database movr, user app: (\d+) clients? waiting for a server connection \((\d+) began waiting since the last report\); a client still waiting after query_wait_timeout \(2 s\) gets 53300$/m;
    my $lines = sub { my ($off) = @_; my @m; my $log = substr($p->log_contents, $off);
                      while ($log =~ /$line/g) { push @m, { at => log_time($1), waiting => $2, began => $3 } } @m };
    my $off = $p->log_size;
    my $crowd = PgNearCrowd->new(port => $p->port, user => 'app', database => 'movr', password => 'app-secret', count => 30);
    my $r = $crowd->login(deadline => 20);
    is $r->{errors}{53300}, 30, '30 clients past pool_size: each gets 53300 after query_wait_timeout'
        or diag explain $r;
    $crowd->finish;
    my @said = $lines->($off);
    is scalar(@said), 1, '30 clients waiting: one log line, not one per client' or diag substr($p->log_contents, $off);
    cmp_ok $said[0]{waiting} // 0, '>=', 1, 'the line says how many wait';
    my $per_client = () = substr($p->log_contents, $off) =~ /^\S+ \S+ UTC (?:LOG|WARNING) .*waiting for a server connection/mg;
    is $per_client, 1, 'and nothing else at LOG level or above says a client waits';

    # Past the interval, the next client to wait is said again, with those that began since.
    my $wait = ($said[0]{at} // time) + 10.3 - time;
    sleep $wait if $wait > 0;
    $crowd = PgNearCrowd->new(port => $p->port, user => 'app', database => 'movr', password => 'app-secret', count => 30);
    $r = $crowd->login(deadline => 20);
    is $r->{errors}{53300}, 30, 'second round: 30 clients get 53300' or diag explain $r;
    $crowd->finish;
    @said = $lines->($off);
    is scalar(@said), 2, 'second round, 10 s later: one more line' or diag substr($p->log_contents, $off);
    is $said[1]{began}, 30, 'it counts the 29 left unsaid and the one it reports' or diag explain \@said;
    cmp_ok $said[1]{at} - $said[0]{at}, '>=', 10, 'at least 10 s after the first';
    is one($h1, 'SELECT 1'), 1, 'the holders are unaffected';
    $_->terminate for $h1, $h2;
    ok $p->is_running, 'pgnear still running';
    $p->stop;
}

# ================================================================ pool_size: the wait times out
{
    my $p = proxy(pool_size => 2);
    my ($h1, $pid1) = holder($p);
    my ($h2, $pid2) = holder($p);
    isnt $pid1, $pid2, 'pool_size 2: two clients hold two server connections';
    is pool_row($p, 'movr', 'app')->{sv_active}, 2, 'SHOW POOLS: sv_active 2';

    my $t0 = time;
    my $bg = bg_login($p);
    ok wait_until(sub { waiting_clients($p) == 1 }, timeout => 3), 'SHOW CLIENTS: the third client is waiting';
    my ($wc) = waiting_clients($p);
    is_deeply [@{$wc}{qw(user database)}], ['app', 'movr'], 'SHOW CLIENTS: the waiting client\'s user and database';
    my $pool = pool_row($p, 'movr', 'app');
    is $pool->{cl_waiting}, 1, 'SHOW POOLS: cl_waiting 1';
    is $pool->{cl_active}, 2, 'SHOW POOLS: cl_active 2';
    sleep 1.3 - (time - $t0) if time - $t0 < 1.3;
    cmp_ok pool_row($p, 'movr', 'app')->{maxwait} // -1, '>=', 1, 'SHOW POOLS: maxwait counts the wait in seconds';
    is scalar(servers($p)), 2, 'SHOW SERVERS: still two server connections';

    my $r = background_result($bg);
    ok !$r->{ok}, 'the waiting client does not get in' or diag explain $r;
    is $r->{C}, '53300', 'it gets 53300' or diag explain $r;
    like "$r->{M} $r->{D}", qr/pool/i, 'the error mentions the pool' or diag explain $r;
    cmp_ok $r->{elapsed}, '>=', 1.8, sprintf('after query_wait_timeout (%.2f s)', $r->{elapsed});
    cmp_ok $r->{elapsed}, '<', 3.5, 'not much later';
    is scalar(waiting_clients($p)), 0, 'SHOW CLIENTS: nobody waiting any more';
    is pool_row($p, 'movr', 'app')->{cl_waiting}, 0, 'SHOW POOLS: cl_waiting 0';
    is one($h1, 'SELECT 1'), 1, 'the holders are unaffected (1)';
    is one($h2, 'SELECT 2'), 2, 'the holders are unaffected (2)';
    is scalar(servers($p)), 2, 'no server connection opened past pool_size';

    # pool_size counts per database and user: other pools are not held up.
    for my $other (['user app2', user => 'app2'], ['database postgres', database => 'postgres']) {
        my ($label, @who) = @$other;
        my $t = time;
        my $w = eval { login($p, @who) };
        ok $w, "pool app/movr full: a client of $label gets in" or diag $@;
        cmp_ok time - $t, '<', 1.8, sprintf("pool app/movr full: $label does not wait: in before query_wait_timeout (%.2f s)", time - $t);
        $w->terminate if $w;
    }

    # A waiting client that gives up leaves the queue at once.
    $bg = bg_login($p);
    ok wait_until(sub { waiting_clients($p) == 1 }, timeout => 3), 'give up: a client waits';
    kill 'KILL', $bg->{kid};
    waitpid($bg->{kid}, 0);
    ok wait_until(sub { !waiting_clients($p) }, timeout => 1), 'give up: gone from SHOW CLIENTS within a second';
    is pool_row($p, 'movr', 'app')->{cl_waiting}, 0, 'give up: SHOW POOLS cl_waiting 0';
    is scalar(pool_servers($p)), 2, 'give up: still two server connections in pool movr/app';

    # ============================================================ a holder leaves cleanly
    $t0 = time;
    $bg = bg_login($p);
    ok wait_until(sub { waiting_clients($p) == 1 }, timeout => 3), 'clean leave: a client waits';
    sleep 0.8;
    one($h1, 'ROLLBACK');
    $h1->terminate;
    $r = background_result($bg);
    ok $r->{ok}, 'clean leave: the waiting client gets in' or diag explain $r;
    ok $r->{query_ok}, 'clean leave: and can query';
    cmp_ok $r->{elapsed}, '>=', 0.7, sprintf('clean leave: it had waited (%.2f s)', $r->{elapsed});
    cmp_ok $r->{elapsed}, '<', 1.8, 'clean leave: it got in before query_wait_timeout';
    note "clean leave: the waiter got backend $r->{pid}; the holder that left had $pid1";
    cmp_ok scalar(pool_servers($p)), '<=', 2, 'clean leave: still at most pool_size server connections in pool movr/app';

    # ============================================================ a holder leaves inside its transaction
    my ($h3, $pid3) = holder($p);
    is scalar(grep { $_->{state} eq 'active' } pool_servers($p)), 2, 'transaction leave: two held again';
    $bg = bg_login($p);
    ok wait_until(sub { waiting_clients($p) == 1 }, timeout => 3), 'transaction leave: a client waits';
    sleep 0.8;
    $h2->terminate;    # inside its transaction: its connection is closed, not kept
    $r = background_result($bg);
    ok $r->{ok}, 'transaction leave: the waiting client gets in' or diag explain $r;
    ok $r->{query_ok}, 'transaction leave: and can query';
    cmp_ok $r->{elapsed}, '<', 1.8, sprintf('transaction leave: before query_wait_timeout (%.2f s)', $r->{elapsed});
    isnt $r->{pid}, $pid2, 'transaction leave: not on the abandoned transaction\'s backend';
    ok backend_gone($pid2), 'transaction leave: that backend is closed';
    $h3->terminate;
    ok $p->is_running, 'pgnear still running';
    $p->stop;
}

# ================================================================ max_db_connections = 1
{
    my $p = proxy(pool_size => 5, max_db_connections => 1);
    for my $case (['another user', user => 'app2'], ['another database', database => 'postgres']) {
        my ($label, @who) = @$case;
        no_servers_left($p, "max_db_connections, $label");
        my ($h, $hpid) = holder($p);
        my $t0 = time;
        my $bg = bg_login($p, @who);
        ok wait_until(sub { waiting_clients($p) == 1 }, timeout => 3),
            "max_db_connections, $label: the second client waits";
        my %w = @who;
        my ($db, $user) = ($w{database} // 'movr', $w{user} // 'app');
        is pool_row($p, $db, $user)->{cl_waiting}, 1, "max_db_connections, $label: SHOW POOLS cl_waiting 1 in its pool";
        my $r = background_result($bg);
        ok !$r->{ok}, "max_db_connections, $label: it does not get in" or diag explain $r;
        is $r->{C}, '53300', "max_db_connections, $label: 53300" or diag explain $r;
        cmp_ok $r->{elapsed}, '>=', 1.8, sprintf('max_db_connections, %s: after query_wait_timeout (%.2f s)',
                                                 $label, $r->{elapsed});
        is scalar(servers($p)), 1, "max_db_connections, $label: one server connection on the host";
        is one($h, 'SELECT 1'), 1, "max_db_connections, $label: the holder is unaffected";
        $h->terminate;    # inside its transaction: closed
        ok backend_gone($hpid), "max_db_connections, $label: the holder's connection closed";
    }

    like $p->log_contents, qr/^\S+ \S+ UTC WARNING (?:c\d+: )?max_db_connections \(1\) reached on host \Q${\ $us->hostport}\E of region us-east: 1 client waiting for a server connection/m,
        'max_db_connections: the log says a client waits for the host, and for which limit';

    # The holder leaves within the timeout: the other user's client gets in.
    no_servers_left($p, 'max_db_connections, handover');
    my ($h, $hpid) = holder($p);
    my $bg = bg_login($p, user => 'app2');
    ok wait_until(sub { waiting_clients($p) == 1 }, timeout => 3), 'max_db_connections, handover: app2 waits';
    sleep 0.8;
    $h->terminate;
    my $r = background_result($bg);
    ok $r->{ok}, 'max_db_connections, handover: app2 gets in when app\'s holder leaves' or diag explain $r;
    ok $r->{query_ok}, 'max_db_connections, handover: and can query';
    cmp_ok $r->{elapsed}, '<', 1.8, sprintf('max_db_connections, handover: before the timeout (%.2f s)', $r->{elapsed});

    # A kept connection of another pool gives way at once.
    ok wait_until(sub { my @s = servers($p); @s == 1 && $s[0]{state} eq 'idle' && $s[0]{user} eq 'app2' }, timeout => 5),
        'max_db_connections, give way: one kept connection, of app2';
    my ($idle_pid) = map { $_->{pid} } servers($p);
    my $t0 = time;
    ($h, $hpid) = eval { holder($p, database => 'postgres') };
    ok $h, 'max_db_connections, give way: a client of database postgres logs in' or diag $@;
    cmp_ok time - $t0, '<', 1.8, sprintf('max_db_connections, give way: without waiting: in before query_wait_timeout (%.2f s)', time - $t0);
    ok backend_gone($idle_pid), 'max_db_connections, give way: app2\'s kept connection was closed for it';

    # The holder gives its connection back cleanly: kept for database
    # postgres, it cannot serve app2, and gives way to app2's waiting client.
    $bg = bg_login($p, user => 'app2');
    ok wait_until(sub { waiting_clients($p) == 1 }, timeout => 3), 'max_db_connections, clean handover: app2 waits';
    sleep 0.8;
    one($h, 'ROLLBACK') if $h;
    $h->terminate if $h;
    $r = background_result($bg);
    ok $r->{ok}, 'max_db_connections, clean handover: app2 gets in when the holder gives its connection back'
        or diag explain $r;
    cmp_ok $r->{elapsed}, '<', 1.8, sprintf('max_db_connections, clean handover: before the timeout (%.2f s)', $r->{elapsed});
    ok backend_gone($hpid), 'max_db_connections, clean handover: the kept connection of database postgres was closed for it';
    ok $p->is_running, 'pgnear still running';
    $p->stop;
}

# ================================================================ pool_size: a kept connection that cannot serve gives way
{
    my $p = proxy(pool_size => 1);
    my $w = login($p, params => [options => '-c work_mem=7MB']);
    my $pid = one($w, 'SELECT pg_backend_pid()');
    $w->terminate;
    ok wait_until(sub { my @s = pool_servers($p); @s == 1 && $s[0]{state} eq 'idle' }, timeout => 5),
        'pool_size 1: a connection logged in with other options is kept';
    my $t0 = time;
    $w = eval { login($p) };
    ok $w, 'pool_size 1: a client without those options logs in' or diag $@;
    cmp_ok time - $t0, '<', 1.8, sprintf('pool_size 1: without waiting: in before query_wait_timeout (%.2f s)', time - $t0);
    is $w ? one($w, 'SHOW work_mem') : '', '4MB', 'pool_size 1: with its own settings';
    ok backend_gone($pid), 'pool_size 1: the kept connection that could not serve it was closed';
    $w->terminate if $w;

    # Given back while a client that it cannot serve waits: it gives way.
    ok wait_until(sub { my @s = pool_servers($p); @s == 1 && $s[0]{state} eq 'idle' }, timeout => 5),
        'pool_size 1, clean handover: one kept connection';
    my ($h, $hpid) = holder($p, params => [options => '-c work_mem=7MB']);
    my $bg = bg_login($p);
    ok wait_until(sub { waiting_clients($p) == 1 }, timeout => 3), 'pool_size 1, clean handover: a client waits';
    sleep 0.8;
    one($h, 'ROLLBACK');
    $h->terminate;
    my $r = background_result($bg);
    ok $r->{ok}, 'pool_size 1, clean handover: it gets in when the holder with other options gives its connection back'
        or diag explain $r;
    cmp_ok $r->{elapsed}, '<', 1.8, sprintf('pool_size 1, clean handover: before the timeout (%.2f s)', $r->{elapsed});
    ok backend_gone($hpid), 'pool_size 1, clean handover: the connection with other options was closed for it';
    $p->stop;
}

# ================================================================ pool_size over two workers
{
    my $p = proxy(pool_size => 2, workers => 2);
    my ($h1, $pid1) = holder($p);
    my ($h2, $pid2) = holder($p);
    # Three logins: whatever workers they land on, the third waits.
    my $bg = bg_login($p);
    ok wait_until(sub { waiting_clients($p) == 1 }, timeout => 3), 'two workers: the third client waits';
    my $r = background_result($bg);
    is $r->{C}, '53300', 'two workers: and gets 53300' or diag explain $r;
    is scalar(pool_servers($p)), 2, 'two workers: never more than pool_size connections';
    for my $round (1 .. 4) {
        $bg = bg_login($p);
        ok wait_until(sub { waiting_clients($p) == 1 }, timeout => 3), "two workers, round $round: a client waits";
        sleep 0.3;
        my $leaving = $round % 2 ? $h1 : $h2;
        one($leaving, 'ROLLBACK');
        $leaving->terminate;
        $r = background_result($bg);
        ok $r->{ok}, "two workers, round $round: it gets in when a holder on either worker leaves" or diag explain $r;
        cmp_ok $r->{elapsed}, '<', 1.8, sprintf('two workers, round %d: before the timeout (%.2f s)', $round, $r->{elapsed});
        my ($new) = holder($p);
        if ($round % 2) { $h1 = $new } else { $h2 = $new }
        cmp_ok scalar(pool_servers($p)), '<=', 2, "two workers, round $round: at most pool_size connections";
    }
    $_->terminate for $h1, $h2;
    ok $p->is_running, 'two workers: pgnear still running';
    $p->stop;
}

done_testing;
