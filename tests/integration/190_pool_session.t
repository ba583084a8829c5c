# Session pooling (pool_mode = session, auth = scram): a client that leaves
# an idle server connection hands it, reset, to the next client of the same
# region, database and user (same backend pid, shown idle in SHOW SERVERS
# between clients with uses counting up); the next client sees its startup
# parameters exactly as a direct connection would (SHOW values and the
# ParameterStatus messages it received, options and a custom setting
# included), and none of the last client's prepared statements, advisory
# locks, SETs, role or LISTENs (a client's temporary table closes its
# connection: 291_pool_temp_schema.t); a failing reset, a client
# leaving inside a transaction or a COPY, pool_mode = none and auth =
# passthrough keep nothing; cancel keys are the new client's alone; two
# workers and TLS to the server; pgbench -C (4 and 8 clients) stays within
# pool_size backends.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pgbench openssl);

my $ca = PgNearTest::CA->new;
my $us = PgNearTest::Cluster->new(name => 'us-east', ca => $ca);
my $auth_dir = tmpdir(name => 'pool-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist,
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

my %BASE = (auth => 'scram', auth_file => $userlist, admin_users => 'admin', server_tls => 'disable',
            pool_mode => 'session', workers => 1);

sub proxy { PgNearTest::Proxy->new(regions => [$us], settings => { %BASE, @_ }) }

# ---------------------------------------------------------------- helpers

# SHOW SERVERS rows of the region (every server connection of the test).
sub app_servers { grep { ($_->{region} // '') eq 'us-east' } $_[0]->admin_rows('SHOW SERVERS') }
# The SHOW SERVERS row of backend $pid ({} when there is none).
sub server_by_pid { my ($p, $pid) = @_; (grep { $_->{pid} eq $pid } app_servers($p))[0] // {} }

# A raw-protocol login: (wire, startup result); dies if it fails.
sub login {
    my ($p, @params) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret', params => [@params]);
    die 'login through pgnear failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n"
      unless $r->{ok};
    return ($w, $r);
}

sub direct_login {
    my (@params) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $us->port, timeout => 15);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret', params => [@params]);
    die 'direct login failed: ' . ($r->{error} ? $r->{error}{M} : 'eof') . "\n" unless $r->{ok};
    return ($w, $r);
}

sub one { my ($w, $sql) = @_; my $q = $w->query($sql); die "$sql: $q->{error}{M}\n" if $q->{error}; $q->{rows}[0][0] }
sub backend_pid { one($_[0], 'SELECT pg_backend_pid()') }

sub backend_gone {
    my ($pid) = @_;
    return wait_until(sub { $us->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid") eq '0' },
                      timeout => 5);
}

# Waits (bounded) until the server connection of backend $pid is idle in the pool.
sub wait_idle {
    my ($p, $pid) = @_;
    return wait_until(sub { (server_by_pid($p, $pid)->{state} // '') eq 'idle' }, timeout => 5);
}

my @SETTINGS = qw(application_name TimeZone DateStyle IntervalStyle search_path work_mem
                  statement_timeout client_encoding extra_float_digits);

# What a client sees: the ParameterStatus values of its login, its settings
# (a custom one, myapp.tenant, given or not: '' when it does not exist), and who it is.
sub observe {
    my ($w, $r) = @_;
    my %s = map { ($_ => one($w, "SELECT current_setting('$_')")) } @SETTINGS;
    $s{'myapp.tenant'} = one($w, "SELECT coalesce(current_setting('myapp.tenant', true), '')");
    $s{'current_user, session_user'} = one($w, "SELECT current_user || ', ' || session_user");
    return { parameter_status => $r->{params}, settings => \%s };
}

my @PARAM_CLIENTS = (
    [TimeZone => 'UTC', application_name => 'a'],
    [TimeZone => 'Europe/Paris'],
    [application_name => 'b', search_path => 'other, public'],
    [options => '-c work_mem=7MB -c statement_timeout=12345 -c extra_float_digits=2', DateStyle => 'SQL, DMY'],
    [],
    [client_encoding => 'LATIN1', DateStyle => 'German', IntervalStyle => 'iso_8601'],
    [options => '-c myapp.tenant=7'],
    [],
    [options => '-c myapp.tenant=8', application_name => 'a'],
    [options => '-c myapp.tenant=9', application_name => 'a'],
    [TimeZone => 'UTC', application_name => 'a'],
    [application_name => 'b', search_path => 'other, public'],
);

# Each client of @PARAM_CLIENTS in turn through $p sees exactly what the
# same parameters give on a direct connection; returns the backend pids.
sub parameter_checks {
    my ($p, $label) = @_;
    my @pids;
    for my $i (0 .. $#PARAM_CLIENTS) {
        my @params = @{ $PARAM_CLIENTS[$i] };
        my $desc = @params ? join(' ', map { "$params[2*$_]=$params[2*$_+1]" } 0 .. $#params / 2) : 'no parameters';
        my ($dw, $dr) = direct_login(@params);
        my $want = observe($dw, $dr);
        $dw->terminate;
        my ($w, $r) = login($p, @params);
        my $got = observe($w, $r);
        push @pids, backend_pid($w);
        is $r->{pid}, $pids[-1], "$label: client " . ($i + 1) . ": BackendKeyData pid is pg_backend_pid()";
        is_deeply $got->{settings}, $want->{settings}, "$label: client " . ($i + 1) . " ($desc): settings as direct"
            or diag explain { got => $got->{settings}, direct => $want->{settings} };
        is_deeply $got->{parameter_status}, $want->{parameter_status},
            "$label: client " . ($i + 1) . " ($desc): ParameterStatus as direct"
            or diag explain { got => $got->{parameter_status}, direct => $want->{parameter_status} };
        $w->terminate;
        wait_until(sub { !grep { $_->{state} =~ /^(active|used|new)$/ } app_servers($p) }, timeout => 5);
    }
    return @pids;
}

psql($us->conninfo, 'CREATE TABLE t (x int)');
my $count_t = sub { $us->psql_admin('SELECT count(*) FROM t', dbname => 'movr') };

# ================================================================ reuse
my $p = proxy();
{
    my ($w1, $r1) = login($p);
    my $pid = backend_pid($w1);
    is $r1->{pid}, $pid, 'client 1: BackendKeyData pid is the real backend pid';
    my $s = server_by_pid($p, $pid);
    ok %$s, 'SHOW SERVERS lists client 1\'s server connection' or diag explain [app_servers($p)];
    is $s->{state}, 'active', 'SHOW SERVERS: active while client 1 is there';
    is $s->{uses}, 1, 'SHOW SERVERS: uses 1';
    is $s->{database}, 'movr', 'SHOW SERVERS: database';
    is $s->{user}, 'app', 'SHOW SERVERS: user';
    like $s->{age}, qr/^\d+$/, 'SHOW SERVERS: age in whole seconds';
    is $s->{idle}, '', 'SHOW SERVERS: idle is NULL while in use';
    $w1->terminate;

    ok wait_idle($p, $pid), 'after client 1 left, its server connection is idle in the pool';
    $s = server_by_pid($p, $pid);
    is $s->{client}, '', 'SHOW SERVERS: no client while idle';
    is $s->{uses}, 1, 'SHOW SERVERS: still uses 1 while idle';
    like $s->{idle}, qr/^\d+$/, 'SHOW SERVERS: idle seconds while idle';
    my ($pool) = grep { ($_->{database} // '') eq 'movr' && ($_->{user} // '') eq 'app' } $p->admin_rows('SHOW POOLS');
    ok $pool, 'SHOW POOLS: a pool for movr/app' or diag explain [$p->admin_rows('SHOW POOLS')];
    $pool //= {};
    is_deeply [@{$pool}{qw(cl_active cl_waiting sv_active sv_idle pool_mode)}], [0, 0, 0, 1, 'session'],
        'SHOW POOLS: no client, one idle server, pool_mode session' or diag explain $pool;
    is $us->psql_admin("SELECT state FROM pg_stat_activity WHERE pid = $pid"), 'idle',
        'the backend is still there, idle, on the server';

    my ($w2, $r2) = login($p);
    is backend_pid($w2), $pid, 'client 2 gets client 1\'s backend (same pg_backend_pid)';
    is $r2->{pid}, $pid, 'client 2: BackendKeyData carries the real pid';
    isnt $r2->{key}, $r1->{key}, 'client 2: a new cancel key';
    is $r2->{status}, 'I', 'client 2: ReadyForQuery idle';
    $s = server_by_pid($p, $pid);
    is $s->{state}, 'active', 'SHOW SERVERS: active again';
    is $s->{uses}, 2, 'SHOW SERVERS: uses 2';
    like $s->{client} // '', qr/^\d+$/, 'SHOW SERVERS: the client is shown';
    is one($w2, 'SELECT 40 + 2'), 42, 'client 2 can query';
    $w2->terminate;
    ok wait_idle($p, $pid), 'idle again after client 2';
    my ($w3) = login($p);
    is backend_pid($w3), $pid, 'client 3 gets the same backend';
    is server_by_pid($p, $pid)->{uses}, 3, 'SHOW SERVERS: uses 3';
    $w3->terminate;
    ok wait_idle($p, $pid), 'idle again after client 3';
}

# ================================================================ a setting the server refuses
# A kept connection takes the client's settings at the handover: the one
# the server refuses ends the login as a direct connection's does.
{
    my @bad = (work_mem => '7XB');
    my $dw = PgNearTest::Wire->connect(host => '127.0.0.1', port => $us->port, timeout => 15);
    my $want = $dw->startup(user => 'app', database => 'movr', password => 'app-secret', params => [@bad])->{error} // {};
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret', params => [@bad]);
    ok !$r->{ok}, 'work_mem=7XB on a kept connection: the login fails';
    is_deeply [@{ $r->{error} // {} }{qw(S C M D H)}], [@{$want}{qw(S C M D H)}],
        '... with the server\'s error as FATAL, as a direct login gets it' or diag explain [$r->{error}, $want];
    like $want->{H} // '', qr/Valid units/, '... which has a hint';
}

# ================================================================ session state does not leak
{
    my ($w1) = login($p);
    my $pid = backend_pid($w1);
    one($w1, 'PREPARE leaked_stmt AS SELECT 1');
    is one($w1, 'SELECT pg_advisory_lock(4242)'), '', 'client 1 takes advisory lock 4242';
    $w1->query('SET work_mem = \'9MB\'');
    $w1->terminate;
    ok wait_idle($p, $pid), 'client 1 (prepared statement, lock) left an idle connection';
    is $us->psql_admin('SELECT pg_try_advisory_lock(4242)'), 't',
        'advisory lock 4242 is free for others once client 1 left';
    my ($w2) = login($p);
    is backend_pid($w2), $pid, 'client 2 is on client 1\'s backend';
    my $q = $w2->query('EXECUTE leaked_stmt');
    is sqlstate($q->{error}), '26000', 'client 1\'s prepared statement does not exist for client 2 (26000)';
    is one($w2, 'SHOW work_mem'), '4MB', 'client 1\'s SET work_mem is gone';
    is one($w2, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), 0, 'no advisory lock held';
    $w2->terminate;
    ok wait_idle($p, $pid), 'idle again';
}
{
    # Settings changed with SET (and the ParameterStatus they caused), a
    # role, and LISTEN: none of it reaches the next client.
    $us->psql_admin('CREATE ROLE reader NOLOGIN', dbname => 'movr');
    my ($dw, $dr) = direct_login();
    my $want = observe($dw, $dr);
    $dw->terminate;
    my ($w1) = login($p);
    my $pid = backend_pid($w1);
    one($w1, $_) for "SET application_name = 'changed'", "SET TimeZone = 'Asia/Tokyo'", "SET DateStyle = 'SQL, DMY'",
                     "SET IntervalStyle = 'sql_standard'", 'SET search_path = pg_catalog', 'SET myapp.tenant = 5',
                     'SET ROLE reader', 'LISTEN leaked_channel';
    is one($w1, 'SELECT current_user'), 'reader', 'client 1 switched to role reader';
    $w1->terminate;
    ok wait_idle($p, $pid), 'client 1 (SETs, SET ROLE, LISTEN) left an idle connection';
    my ($w2, $r2) = login($p);
    is backend_pid($w2), $pid, 'client 2 is on client 1\'s backend';
    my $got = observe($w2, $r2);
    is_deeply $got->{settings}, $want->{settings}, 'after SETs and SET ROLE: client 2\'s settings as direct'
        or diag explain { got => $got->{settings}, direct => $want->{settings} };
    is_deeply $got->{parameter_status}, $want->{parameter_status}, 'after SETs and SET ROLE: ParameterStatus as direct'
        or diag explain { got => $got->{parameter_status}, direct => $want->{parameter_status} };
    $us->psql_admin("NOTIFY leaked_channel, 'x'", dbname => 'movr');
    sleep 0.2;
    my $q = $w2->query('SELECT 1');
    is scalar(@{ $q->{notifications} }), 0, 'client 1\'s LISTEN does not deliver notifications to client 2';
    is one($w2, "SELECT count(*) FROM pg_listening_channels()"), 0, 'client 2 listens to nothing';
    $w2->terminate;
    ok wait_idle($p, $pid), 'idle again';
}

# ================================================================ cancel keys after reuse
{
    my ($w1, $r1) = login($p);
    my $pid = backend_pid($w1);
    $w1->terminate;
    ok wait_idle($p, $pid), 'cancel: client 1 left';
    my ($w2, $r2) = login($p);
    my $pid2 = backend_pid($w2);
    is $pid2, $pid, 'cancel: client 2 on the same backend';

    my $t0 = time;
    # CI's machine runs ten times slower than a desk's: "promptly" is well
    # inside a sleep long enough that only the cancel can have ended it.
    $w2->send_query('SELECT pg_sleep(20)');
    ok $us->wait_sleeping($pid2), 'cancel: client 2 runs pg_sleep(20)';
    my $t1 = time;
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $r2->{pid}, key => $r2->{key});
    my $res = $w2->read_result;
    is sqlstate($res->{error}), '57014', 'cancel: client 2\'s own key cancels its query (57014)';
    cmp_ok time - $t1, '<', 5, sprintf('cancel: promptly (%.2f s)', time - $t1);
    is $res->{status}, 'I', 'cancel: ReadyForQuery after the cancel';

    $t0 = time;
    $w2->send_query('SELECT pg_sleep(2)');
    ok $us->wait_sleeping($pid2), 'cancel: client 2 runs pg_sleep(2)';
    my $off = $p->log_size;
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $r1->{pid}, key => $r1->{key});
    ok $p->wait_for_log(qr/cancel request for process $pid matches no session; ignored/, offset => $off, timeout => 3),
        'cancel: pgnear logs client 1\'s old key as matching no session';
    $res = $w2->read_result;
    ok !$res->{error}, 'cancel: client 1\'s old key does not cancel client 2\'s query'
        or diag explain($res->{error}), join("\n", grep { /cancel/ } split /\n/, $p->log_contents);
    is $res->{tag}, 'SELECT 1', 'cancel: client 2\'s query completed';
    cmp_ok time - $t0, '>=', 1.9, 'cancel: it ran its full 2 s';
    $w2->terminate;
    ok wait_idle($p, $pid2), 'cancel: idle again';
}

# ================================================================ leaving in a transaction or a COPY
{
    my ($w1) = login($p);
    my $pid = backend_pid($w1);
    $w1->query('BEGIN');
    $w1->query('INSERT INTO t VALUES (1)');
    is server_by_pid($p, $pid)->{tx_status}, 'in transaction', 'transaction: client 1 inside a transaction';
    $w1->terminate;
    ok backend_gone($pid), 'transaction: client 1\'s backend is closed, not kept';
    my ($w2) = login($p);
    isnt backend_pid($w2), $pid, 'transaction: client 2 gets another backend';
    is one($w2, 'SELECT count(*) FROM t'), 0, 'transaction: the row inserted in client 1\'s transaction is not there';
    $w2->terminate;
    is $count_t->(), 0, 'transaction: rolled back (seen directly)';
}
{
    # Without Terminate: the socket just closes.
    my ($w1) = login($p);
    my $pid = backend_pid($w1);
    $w1->query('BEGIN');
    $w1->query('INSERT INTO t VALUES (2)');
    close $w1->socket;
    ok backend_gone($pid), 'transaction, EOF: client 1\'s backend is closed, not kept';
    my ($w2) = login($p);
    isnt backend_pid($w2), $pid, 'transaction, EOF: client 2 gets another backend';
    is one($w2, 'SELECT count(*) FROM t'), 0, 'transaction, EOF: rolled back';
    $w2->terminate;
}
{
    my ($w1) = login($p);
    my $pid = backend_pid($w1);
    $w1->send_query('COPY t FROM STDIN');
    my ($type) = $w1->read_msg;
    is $type, 'G', 'COPY: CopyInResponse';
    $w1->send_msg('d', "3\n4\n");
    $w1->send_msg('d', "5\n");
    sleep 0.3;    # let the CopyData reach the server
    close $w1->socket;
    ok backend_gone($pid), 'COPY: client 1\'s backend is closed, not kept';
    my ($w2) = login($p);
    isnt backend_pid($w2), $pid, 'COPY: client 2 gets another backend';
    is one($w2, 'SELECT count(*) FROM t'), 0, 'COPY: nothing of the unfinished COPY was stored';
    $w2->terminate;
}
# Client 2's connection is reset after its Terminate (one round trip) before it is idle.
ok wait_until(sub { !grep { $_->{state} ne 'idle' } app_servers($p) }, timeout => 10),
  'no server connection is left in use' or diag explain [app_servers($p)];

# ================================================================ parameters
my @pids = parameter_checks($p, 'workers 1');
note "workers 1: backends of the parameter clients in turn: @pids";
my %distinct = map { $_ => 1 } @pids;
note 'workers 1: ' . scalar(keys %distinct) . " distinct backends for " . scalar(@pids) . ' clients';
ok $p->is_running, 'pgnear (workers = 1) still running';

# ================================================================ failing reset query
{
    my $pr = proxy(server_reset_query => 'SELECT 1/0');
    my ($w1) = login($pr);
    my $pid = backend_pid($w1);
    $w1->terminate;
    ok backend_gone($pid), 'failing reset: the connection is closed';
    my ($w2, $r2) = login($pr);
    ok !$r2->{error}, 'failing reset: client 2 logs in without an error';
    isnt backend_pid($w2), $pid, 'failing reset: client 2 on another backend';
    is one($w2, 'SELECT 1'), 1, 'failing reset: client 2 queries';
    ok !@{ $r2->{notices} }, 'failing reset: no notice for client 2' or diag explain $r2->{notices};
    $w2->terminate;
    $pr->stop;
}

# ================================================================ pool_mode = none, auth = passthrough
for my $case (['pool_mode = none', pool_mode => 'none'],
              ['auth = passthrough, pool_mode = session', auth => 'passthrough']) {
    my ($label, @settings) = @$case;
    my $pn = proxy(@settings);
    my ($w1) = login($pn);
    my $pid = backend_pid($w1);
    $w1->terminate;
    ok backend_gone($pid), "$label: client 1's backend closes with it";
    my ($w2) = login($pn);
    isnt backend_pid($w2), $pid, "$label: client 2 gets another backend";
    $w2->terminate;
    $pn->stop;
}

# ================================================================ two workers
{
    my $p2 = proxy(workers => 2);
    my %seen;
    for my $i (1 .. 10) {
        my ($w) = login($p2);
        $seen{ backend_pid($w) }++;
        $w->terminate;
        wait_until(sub { !grep { $_->{state} ne 'idle' } app_servers($p2) }, timeout => 5);
    }
    cmp_ok scalar(keys %seen), '<=', 2, 'workers 2: 10 sequential clients used at most 2 backends'
        or diag explain \%seen;
    parameter_checks($p2, 'workers 2');
    $p2->stop;
}

# ================================================================ TLS to the server
{
    my $pt = proxy(server_tls => 'verify-full', server_tls_ca_file => $ca->cert);
    my ($w1) = login($pt);
    my $pid = backend_pid($w1);
    is one($w1, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'), 't', 'TLS: the server connection uses TLS';
    $w1->terminate;
    ok wait_idle($pt, $pid), 'TLS: idle in the pool';
    is server_by_pid($pt, $pid)->{tls}, 't', 'TLS: SHOW SERVERS says tls';
    my ($w2) = login($pt);
    is backend_pid($w2), $pid, 'TLS: client 2 gets the same backend';
    is one($w2, "SELECT length(string_agg(md5(i::text), '')) FROM generate_series(1, 20000) i"), 640000,
        'TLS: a larger result comes through after reuse';
    $w2->terminate;
    parameter_checks($pt, 'TLS');
    $pt->stop;
}

# ================================================================ pgbench -C
{
    my $pb = proxy(pool_size => 4);
    my ($rc, $out, $err) = pgbench(['-i', '-s', '1', '-q'], $us->conninfo, timeout => 120);
    is $rc, 0, 'pgbench -i (directly)' or diag $err;
    my $off = -s $us->log_path;
    ($rc, $out, $err) = pgbench(['-n', '-S', '-C', '-c', '4', '-j', '2', '-t', '50'], $pb->conninfo, timeout => 120);
    is $rc, 0, 'pgbench -C -c 4 -t 50 through the pool' or diag "$out\n$err";
    my $r = parse_pgbench($out);
    is $r->{processed}, 200, 'pgbench: 200 transactions processed';
    is $r->{failed} // 0, 0, 'pgbench: 0 failed';
    my $log = substr($us->log_contents, $off);
    my $logins = () = $log =~ /connection authorized: user=app database=movr/g;
    cmp_ok $logins, '>=', 1, "pgbench: $logins backends opened for app/movr";
    cmp_ok $logins, '<=', 4, 'pgbench: no more backends than pool_size (4) for 200 client connections';

    # Twice as many clients as pool_size: they take turns.  One thread per
    # client: pgbench -C connects synchronously, so a thread whose client
    # waits for a connection would stall its other clients, holders included.
    ($rc, $out, $err) = pgbench(['-n', '-S', '-C', '-c', '8', '-j', '8', '-t', '25'], $pb->conninfo, timeout => 120);
    is $rc, 0, 'pgbench -C -c 8 -t 25 through a pool of 4' or diag "$out\n$err";
    $r = parse_pgbench($out);
    is $r->{processed}, 200, 'pgbench -c 8: 200 transactions processed';
    is $r->{failed} // 0, 0, 'pgbench -c 8: 0 failed';
    $log = substr($us->log_contents, $off);
    $logins = () = $log =~ /connection authorized: user=app database=movr/g;
    cmp_ok $logins, '<=', 4, "pgbench -c 8: still no more than pool_size (4) backends in all ($logins)";
    ok $pb->is_running, 'pgbench: pgnear still running';
    $pb->stop;
}

ok $p->is_running, 'pgnear still running';
done_testing;
