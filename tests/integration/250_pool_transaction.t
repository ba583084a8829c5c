# Transaction pooling (pool_mode = transaction, auth = scram): a session's
# server connection goes back to the pool at every transaction's end and
# comes back for its next one.  Many logged-in clients share pool_size
# backends (counted in pg_stat_activity and SHOW SERVERS); a transaction
# keeps its backend from BEGIN to COMMIT; two clients take turns on one
# connection (pool_size = 1); a client waiting longer than
# query_wait_timeout gets 53300; what lives past a transaction (a
# session-level custom setting, a temporary table, a session advisory lock, LISTEN in a block,
# SQL PREPARE, a WITH HOLD cursor, a named prepared statement, SET ROLE
# made by a function) pins the client to its backend, while SET
# LOCAL and set_config(..., true) do not (a session-level SET of an
# ordinary setting follows the client: 298_txn_settings.t); startup parameters are each
# client's own (exact fits only); cancel reaches the backend running the
# query; a client that leaves between transactions leaves nothing behind,
# and one that hangs up while it waits for a connection is noticed at once;
# an idle connection is taken at once (no login of pgnear's own) unless
# server_check_query is due, and not while PAUSE holds the session, but
# while a client of another pool waits (which then gets the connection
# given back); a write sent with the Terminate in one packet runs (small,
# and 8 MB);
# pgbench -M simple and -M extended with 20 clients over pool_size = 5, one
# and two workers, never more than 5 backends and no failure; -M prepared
# within pool_size (its named statements pin); the shipped pool_size under
# this mode is 20.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Select;
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pgbench);

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $auth_dir = tmpdir(name => 'txn-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist,
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

my %BASE = (auth => 'scram', auth_file => $userlist, admin_users => 'admin', server_tls => 'disable',
            pool_mode => 'transaction', workers => 1, query_wait_timeout => '20s');

sub proxy { PgNearTest::Proxy->new(regions => [$us], settings => { %BASE, @_ }) }

sub login {
    my ($p, @params) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret', params => [@params]);
    die 'login through pgnear failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n"
      unless $r->{ok};
    return wantarray ? ($w, $r) : $w;
}

sub login_db {
    my ($p, $db) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
    my $r = $w->startup(user => 'app', database => $db, password => 'app-secret');
    die "login to $db through pgnear failed\n" unless $r->{ok};
    return $w;
}

sub one { my ($w, $sql) = @_; my $q = $w->query($sql); die "$sql: $q->{error}{M}\n" if $q->{error}; $q->{rows}[0][0] }
sub backend_pid { one($_[0], 'SELECT pg_backend_pid()') }

# Backends of user app on the server, pgnear's and anyone's.
sub app_backends { $us->psql_admin(q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'}) }

sub stat_value {
    my ($p, $name) = @_;
    my ($row) = grep { $_->{stat} eq $name } $p->admin_rows('SHOW STATS');
    return $row ? $row->{value} : undef;
}

# ================================================================ many clients, few backends
{
    my $p = proxy(pool_size => 3);
    my @w = map { scalar login($p) } 1 .. 10;
    my %pids;
    for my $round (1 .. 3) {
        $pids{ backend_pid($_) }++ for @w;
    }
    cmp_ok scalar(keys %pids), '<=', 3, '10 clients, 30 queries: at most pool_size (3) backends served them';
    cmp_ok app_backends(), '<=', 3, 'pg_stat_activity: at most 3 backends of app while 10 clients are logged in';
    my @servers = grep { ($_->{region} // '') eq 'us-east' } $p->admin_rows('SHOW SERVERS');
    cmp_ok scalar(@servers), '<=', 3, 'SHOW SERVERS: at most 3 connections';
    ok((grep { $_->{state} eq 'idle' } @servers) == @servers, 'SHOW SERVERS: every connection idle between transactions')
        or diag explain \@servers;
    cmp_ok stat_value($p, 'txn_returns') // 0, '>=', 30, 'SHOW STATS: txn_returns counts the connections given back';

    # A transaction keeps its backend from BEGIN to COMMIT, whoever else runs meanwhile.
    my ($a, $b) = @w[0, 1];
    is one($a, 'BEGIN'), undef, 'client A: BEGIN';
    my $in_a = backend_pid($a);
    my %b_pids;
    $b_pids{ backend_pid($b) }++ for 1 .. 5;
    ok !$b_pids{$in_a}, "client B never got A's backend while A's transaction was open";
    is backend_pid($a), $in_a, 'client A: the same backend inside its transaction';
    $a->query('COMMIT');

    # A client leaving between transactions takes no server.
    my $before = app_backends();
    $_->terminate for @w;
    sleep 0.3;
    cmp_ok app_backends(), '<=', $before, 'clients leaving between transactions open nothing';
    is scalar(grep { ($_->{region} // '') eq 'us-east' && $_->{state} ne 'idle' } $p->admin_rows('SHOW SERVERS')), 0,
       'and leave every connection idle';
    $p->stop;
}

# ================================================================ taking turns, waiting, pinning
{
    my $p = proxy(pool_size => 1, query_wait_timeout => '1s');
    my ($a, $b) = (scalar login($p), scalar login($p));
    my $pa = backend_pid($a);
    is backend_pid($b), $pa, 'pool_size = 1: client B runs on the backend client A used';
    is backend_pid($a), $pa, 'and A again after B';

    # SET LOCAL and a transaction-local set_config do not pin.
    $a->query('BEGIN');
    $a->query(q{SET LOCAL work_mem = '9MB'});
    is one($a, 'SHOW work_mem'), '9MB', 'SET LOCAL applies inside the transaction';
    $a->query('COMMIT');
    is one($a, q{SELECT set_config('myapp.x', 'local', true)}), 'local', 'set_config(..., true)';
    is backend_pid($b), $pa, 'after SET LOCAL and a local set_config, B still gets the connection';
    is one($b, 'SHOW work_mem'), '4MB', 'and sees no leftover of A\'s SET LOCAL';

    # Each kind of session state pins its client; B then waits, and gets 53300.
    my @pinning = (
        # (A session-level SET of an ordinary setting follows the client instead: 298_txn_settings.t.)
        [q{SET myapp.x = '7'}, 'SHOW myapp.x', '7', 'a session-level custom setting (a name with a dot)'],
        [q{CREATE TEMP TABLE tt (x int); INSERT INTO tt VALUES (42)}, 'SELECT x FROM tt', '42', 'a temporary object'],
        [q{SELECT pg_advisory_lock(7)}, q{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()}, '1', 'a session advisory lock'],
        [q{PREPARE pq AS SELECT 5}, 'EXECUTE pq', '5', 'a SQL PREPARE'],
        [q{BEGIN; DECLARE hc CURSOR WITH HOLD FOR SELECT 11; COMMIT}, 'FETCH hc', '11', 'a WITH HOLD cursor'],
        # (LISTEN alone is answered by pgnear without pinning: 283_listen.t; in a block it runs on the server.)
        [q{BEGIN; LISTEN chan_a; COMMIT}, q{SELECT count(*) FROM pg_listening_channels()}, '1', 'LISTEN'],
        # Out of the scan's sight (a function body is a string): the server's ParameterStatus
        # has the state read back (298_txn_settings.t), which finds the role.
        [q{DO $$BEGIN PERFORM set_config('role', 'app', false); PERFORM set_config('application_name', 'changed', false); END$$},
         'SHOW role', 'app', 'SET ROLE'],
    );
    for my $case (@pinning) {
        my ($make, $check, $want, $why) = @$case;
        my $c = scalar login($p);
        my $pc = backend_pid($c);
        my $q = $c->query($make);
        ok !$q->{error}, "$why: made" or diag $q->{error}{M};
        is one($c, $check), $want, "$why: seen in the next transaction";
        is backend_pid($c), $pc, "$why: the same backend";
        my ($row) = grep { ($_->{user} // '') eq 'app' && ($_->{pinned} // '') ne '' } $p->admin_rows('SHOW CLIENTS');
        like $row ? $row->{pinned} : '', qr/\Q$why\E/, "$why: SHOW CLIENTS says why it is pinned";
        my $t0 = time;
        my $res = $b->query('SELECT 1');
        is sqlstate($res->{error}), '53300', "$why: another client waits for the pinned connection, then 53300";
        cmp_ok time - $t0, '>=', 0.8, "$why: after query_wait_timeout";
        ok !$res->{status}, "$why: the client that waited too long is ended (FATAL)";
        $c->terminate;
        # The pinned connection was reset (DISCARD ALL) as its client left; a new client gets it.
        $b = eval { scalar login($p) };
        ok $b && one($b, 'SELECT 1') eq '1', "$why: once the pinned client leaves, the others run again";
        is one($b, 'SHOW work_mem'), '4MB', "$why: and see nothing of the pinned session's state";
    }

    $a->terminate;
    $b->terminate;
    $p->stop;
}

# A client waiting for the only connection (its reads paused; the read event
# is left armed until it fires, endpoint.c) that hangs up is noticed at once,
# and the connection goes to the next client after the transaction ends.
{
    my $p = proxy(pool_size => 1);
    my ($a, $b) = (scalar login($p), scalar login($p));
    $a->query('BEGIN');
    $b->send_query('SELECT 1');
    ok wait_until(sub { grep { ($_->{state} // '') =~ /wait/ } $p->admin_rows('SHOW CLIENTS') }, timeout => 5),
       'pool_size = 1 held by an open transaction: the next client waits';
    close $b->socket;
    ok wait_until(sub { $p->log_contents =~ /client closed the connection while pgnear was not reading from it/ },
                  timeout => 5), 'the waiting client that hangs up is noticed while it waits';
    $a->query('COMMIT');
    my $c = scalar login($p);
    is one($c, 'SELECT 2'), '2', 'the connection then serves the next client';
    $_->terminate for $a, $c;
    $p->stop;
}

# ================================================================ named prepared statements
# Extended-protocol messages by hand: each call sends one batch ending in Sync,
# and returns what read_result makes of the answer, with the message types seen.
sub ext {
    my ($w, @msgs) = @_;
    for my $m (@msgs) {
        my ($kind, @a) = @$m;
        if ($kind eq 'parse') { $w->send_msg('P', "$a[0]\0$a[1]\0" . pack('n', 0)) }
        elsif ($kind eq 'bind') { $w->send_msg('B', "\0$a[0]\0" . pack('nnn', 0, 0, 0)) }
        elsif ($kind eq 'exec') { $w->send_msg('E', "\0" . pack('N', 0)) }
        elsif ($kind eq 'close') { $w->send_msg('C', "S$a[0]\0") }
        elsif ($kind eq 'describe') { $w->send_msg('D', "S$a[0]\0") }
    }
    $w->send_msg('S', '');
    return $w->read_result;
}

{
    my $p = proxy(pool_size => 2);
    my ($a, $b, $c) = map { scalar login($p) } 1 .. 3;
    my $r = ext($a, [parse => 'mine', 'SELECT pg_backend_pid()'], [bind => 'mine'], ['exec']);
    ok !$r->{error}, 'named statement: Parse, Bind, Execute' or diag $r->{error}{M};
    my $first = $r->{rows}[0][0];
    # C holds that connection in a transaction, so A's next one runs on the other.
    $c->query('BEGIN');
    my $held = backend_pid($c);
    $r = ext($a, [bind => 'mine'], ['exec']);
    ok !$r->{error}, 'named statement: bound again in a later transaction' or diag $r->{error}{M};
    my $second = $r->{rows}[0][0];
    isnt $second, $held, 'named statement: that transaction ran on the connection C does not hold';
    $c->query('COMMIT');
    ok $us->psql_admin(q{SELECT count(*) FROM pg_prepared_statements}) ne '', 'server reachable';
    $r = ext($a, [parse => 'mine', 'SELECT 2']);
    is sqlstate($r->{error}), '42P05', 'named statement: a second Parse of the name gets 42P05';
    is $r->{error}{M}, 'prepared statement "mine" already exists', 'named statement: PostgreSQL\'s message';
    $r = ext($a, [close => 'mine']);
    ok !$r->{error}, 'named statement: Close';
    $r = ext($a, [bind => 'mine'], ['exec']);
    is sqlstate($r->{error}), '26000', 'named statement: Bind after Close gets 26000';
    $r = ext($a, [bind => 'never'], ['exec']);
    is sqlstate($r->{error}), '26000', 'named statement: Bind of a name never parsed gets 26000';
    $r = ext($b, [bind => 'PGNEAR_0000000000000001'], ['exec']);
    is sqlstate($r->{error}), '26000', 'named statement: pgnear\'s own names are not reachable';
    # Same name, two clients, two texts: each gets its own.
    ext($a, [parse => 'same', q{SELECT 'a'}]);
    ext($b, [parse => 'same', q{SELECT 'b'}]);
    is ext($a, [bind => 'same'], ['exec'])->{rows}[0][0], 'a', 'same name, client A: its own text';
    is ext($b, [bind => 'same'], ['exec'])->{rows}[0][0], 'b', 'same name, client B: its own text';
    # An error inside a batch: the rest is skipped, as PostgreSQL does.
    $r = ext($a, [parse => 'bad', 'SELEC 1'], [bind => 'bad'], ['exec']);
    is sqlstate($r->{error}), '42601', 'a Parse that fails: its syntax error';
    $r = ext($a, [bind => 'bad'], ['exec']);
    is sqlstate($r->{error}), '26000', 'and its name was never made';
    is backend_pid($a) =~ /^\d+$/ ? 1 : 0, 1, 'client A goes on';
    # DEALLOCATE by name, as psycopg 3 evicts from its own cache: pgnear answers for the server.
    ext($a, [parse => 'gone1', 'SELECT 11']);
    ext($a, [parse => 'Gone2', 'SELECT 12']);
    $r = $a->query('DEALLOCATE gone1');
    ok !$r->{error}, 'DEALLOCATE name of a protocol-level statement' or diag $r->{error}{M};
    is $r->{tag}, 'DEALLOCATE', 'DEALLOCATE: its tag';
    is sqlstate(ext($a, [bind => 'gone1'], ['exec'])->{error}), '26000', 'DEALLOCATE: the name is gone';
    $r = $a->query('deallocate prepare "Gone2";');
    ok !$r->{error} && ($r->{tag} // '') eq 'DEALLOCATE', 'DEALLOCATE PREPARE "quoted name";' or diag explain $r;
    is sqlstate(ext($a, [bind => 'Gone2'], ['exec'])->{error}), '26000', 'DEALLOCATE PREPARE: the name is gone';
    is sqlstate($a->query('DEALLOCATE nosuch')->{error}), '26000', 'DEALLOCATE of a name never made: the server\'s 26000';
    $a->query('BEGIN');
    ext($a, [parse => 'gone3', 'SELECT 13']);
    $r = $a->query('DEALLOCATE gone3');
    is $r->{status}, 'T', 'DEALLOCATE inside a transaction: ReadyForQuery says T';
    $a->query('COMMIT');
    my $pins = stat_value($p, 'txn_pins');
    is $pins, 0, 'named statements pin no session';
    $_->terminate for $a, $b, $c;
    $p->stop;
}

# A session with pgnear.report_fence=on: its named statements are followed
# as anyone's (not pinned), and each writing transaction still gets its fence.
{
    my $p = proxy(pool_size => 2);
    my $f = login($p, options => '-c pgnear.report_fence=on');
    my $c = login($p);
    one($f, 'CREATE TABLE IF NOT EXISTS fenced (n int)');
    my $r = ext($f, [parse => 'ins', 'INSERT INTO fenced VALUES (1)'], [bind => 'ins'], ['exec']);
    ok !$r->{error}, 'fenced session: a named INSERT' or diag $r->{error}{M};
    my @fences = map { $_->[1] } grep { $_->[0] eq 'pgnear.fence' } @{ $r->{parameters} // [] };
    is scalar(@fences), 1, 'fenced session: its write gets one fence';
    like $fences[0] // '', qr{^[0-9A-F]{8}/[0-9A-F]+/[0-9A-F]+$}, 'fenced session: a position with its timeline';
    $c->query('BEGIN');
    my $held = backend_pid($c);
    $r = ext($f, [bind => 'ins'], ['exec']);
    ok !$r->{error}, 'fenced session: the statement bound again in a later transaction' or diag $r->{error}{M};
    is scalar(grep { $_->[0] eq 'pgnear.fence' } @{ $r->{parameters} // [] }), 1, 'and another fence';
    isnt backend_pid($f), $held, 'fenced session: its transactions run on the connection C does not hold';
    $c->query('COMMIT');
    # A simple Query's answer moves on as a run (txn_prep.c): its write still gets its fence.
    my $q = $f->query('INSERT INTO fenced VALUES (3)');
    is scalar(grep { $_->[0] eq 'pgnear.fence' } @{ $q->{parameters} // [] }), 1, 'fenced session: a simple INSERT gets its fence';
    is one($f, 'SELECT count(*) FROM fenced'), 3, 'fenced session: the rows written';
    is stat_value($p, 'txn_pins'), 0, 'fenced session: not pinned by its named statement';
    one($f, 'DROP TABLE fenced');
    $_->terminate for $f, $c;
    $p->stop;
}

# A statement whose result type changed: PostgreSQL refuses its plan (0A000)
# for good, and a new Parse of the same text plans afresh. pgnear must not
# answer that Parse from a server's cache of the stale plan. C holds one of
# the two connections in a transaction, so that A and B share the other.
{
    my $p = proxy(pool_size => 2);
    my ($a, $b, $c) = map { scalar login($p) } 1 .. 3;
    $c->query('BEGIN');
    my $held = backend_pid($c);
    one($a, 'DROP TABLE IF EXISTS shaped');
    one($a, 'CREATE TABLE shaped (x int)');
    one($a, q{INSERT INTO shaped VALUES (1)});
    my $r = ext($a, [parse => 's1', 'SELECT x FROM shaped'], [bind => 's1'], ['exec']);
    is $r->{rows}[0][0], 1, 'result type: the statement runs';
    ext($b, [parse => 'b1', 'SELECT x FROM shaped'], [describe => 'b1']);
    one($a, q{ALTER TABLE shaped ALTER COLUMN x TYPE text USING 'one'});
    $r = ext($a, [bind => 's1'], ['exec']);
    is sqlstate($r->{error}), '0A000', 'result type changed: the old statement gets 0A000';
    is $r->{error}{M}, 'cached plan must not change result type', '0A000: PostgreSQL\'s message';
    $r = ext($a, [parse => 's2', 'SELECT x FROM shaped'], [bind => 's2'], ['exec']);
    ok !$r->{error}, 'result type changed: a new Parse of the same text plans afresh' or diag $r->{error}{M};
    is $r->{rows}[0][0], 'one', 'and returns the new type';
    isnt backend_pid($a), $held, 'and all of it ran beside the transaction C holds';
    $c->query('COMMIT');
    $r = ext($c, [parse => 'c1', 'SELECT x FROM shaped'], [bind => 'c1'], ['exec']);
    is $r->{rows}[0][0], 'one', 'another client\'s Parse of the text: the new plan';
    # B's statement is stale too, on whichever connection its transaction runs.
    for my $try (1 .. 2) {
        $r = ext($b, [bind => 'b1'], ['exec']);
        is sqlstate($r->{error}), '0A000', "another client's statement of the old plan: 0A000 too ($try)";
    }
    $r = ext($b, [close => 'b1'], [parse => 'b1', 'SELECT x FROM shaped'], [bind => 'b1'], ['exec']);
    is $r->{rows}[0][0], 'one', 'closed and parsed again: the new plan';
    one($a, 'DROP TABLE shaped');
    $_->terminate for $a, $b, $c;
    $p->stop;
}

# A statement its client described, bound on a connection that never had it
# after its result type changed: pgnear plans it there afresh only to
# compare it with what the client was told, and answers 0A000 as PostgreSQL
# answers for the client's own statement, never rows of the new type under
# the old description. C holds the connection A used.
{
    my $p = proxy(pool_size => 2);
    my ($a, $c) = map { scalar login($p) } 1 .. 2;
    one($a, 'DROP TABLE IF EXISTS told');
    one($a, 'CREATE TABLE told (x int)');
    one($a, q{INSERT INTO told VALUES (1)});
    my $r = ext($a, [parse => 't1', 'SELECT x FROM told'], [describe => 't1'], [bind => 't1'], ['exec']);
    is $r->{rows}[0][0], 1, 'described elsewhere: the statement runs';
    my $used = backend_pid($a);
    $c->query('BEGIN');
    is backend_pid($c), $used, 'described elsewhere: C holds the connection A used';
    $us->psql_admin(q{ALTER TABLE told ALTER COLUMN x TYPE text USING 'one'}, dbname => 'movr');
    $r = ext($a, [bind => 't1'], ['exec']);
    is sqlstate($r->{error}), '0A000', 'described elsewhere: 0A000 on the connection that lacked it';
    is $r->{error}{R}, 'RevalidateCachedQuery', '0A000: with the routine drivers prepare again on';
    is_deeply $r->{rows} // [], [], 'described elsewhere: no rows of the new type';
    $r = ext($a, [bind => 't1'], ['exec']);
    is sqlstate($r->{error}), '0A000', 'described elsewhere: and again';
    $r = ext($a, [parse => 't2', 'SELECT x FROM told'], [describe => 't2'], [bind => 't2'], ['exec']);
    is $r->{rows}[0][0], 'one', 'described elsewhere: the text parsed again gets the new plan';
    isnt backend_pid($a), $used, 'described elsewhere: all of it beside the transaction C holds';
    $c->query('COMMIT');
    one($a, 'DROP TABLE told');
    $_->terminate for $a, $c;
    $p->stop;
}

# The server ends a session's connection inside a transaction: the client
# gets the server's FATAL alone, then the end, as directly (drivers that
# get a second FATAL of pgnear's have crashed on it: pg-native).
for my $mps (200, 0) {
    my $p = proxy(pool_size => 2, max_prepared_statements => $mps);
    my $a = login($p);
    $a->query('BEGIN');
    my $pid = backend_pid($a);
    is $us->psql_admin("SELECT pg_terminate_backend($pid)"), 't', "max_prepared_statements $mps: the backend of an open transaction is terminated";
    my @errors = $a->errors_until_eof;
    is "@errors", '57P01', "max_prepared_statements $mps: the client gets the server's FATAL once, then EOF";
    my $b = login($p);
    is one($b, 'SELECT 1'), 1, "max_prepared_statements $mps: the next client is served";
    $b->terminate;
    $p->stop;
}

# max_prepared_statements = 0: named statements are not followed, and pin their session.
{
    my $p = proxy(pool_size => 1, max_prepared_statements => 0);
    my ($rc, $out, $err) = pgbench(['-i', '-s', '1', '-q'], $us->conninfo, timeout => 120);
    is $rc, 0, 'pgbench -i (directly)' or diag $err;
    ($rc, $out, $err) = pgbench(['-n', '-S', '-M', 'prepared', '-c', '1', '-t', '50'], $p->conninfo, timeout => 120);
    my $r = parse_pgbench($out);
    is $rc, 0, 'max_prepared_statements = 0: pgbench -M prepared -c 1' or diag "$out\n$err";
    is $r->{failed} // 0, 0, 'max_prepared_statements = 0: 0 failed';
    like $p->log_contents, qr/keeps its server connection from now on \(transaction pooling\): a named prepared statement/,
        'max_prepared_statements = 0: a named prepared statement pinned the session';
    $p->stop;
}

# ================================================================ startup parameters, cancel
{
    my $p = proxy(pool_size => 2);
    my $x = scalar login($p, application_name => 'x-app', TimeZone => 'Asia/Tokyo');
    my $y = scalar login($p, application_name => 'y-app');
    my $server_tz = $us->psql_admin('SHOW TimeZone');
    for (1 .. 3) {
        is one($x, 'SHOW application_name'), 'x-app', "client x sees its own application_name ($_)";
        is one($x, 'SHOW TimeZone'), 'Asia/Tokyo', "client x sees its own TimeZone ($_)";
        is one($y, 'SHOW application_name'), 'y-app', "client y sees its own application_name ($_)";
        is one($y, 'SHOW TimeZone'), $server_tz, "client y sees the server's TimeZone ($_)";
    }

    my ($c, $rc) = login($p);
    $c->send_query('SELECT pg_sleep(20)');
    my $pid;
    ok wait_until(sub {
        $pid = $us->psql_admin(q{SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(20)' AND state = 'active'});
        $pid ne '' }, timeout => 5), 'cancel: the pooled transaction runs pg_sleep(20)';
    my $t1 = time;
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $rc->{pid}, key => $rc->{key});
    my $res = $c->read_result;
    is sqlstate($res->{error}), '57014', 'cancel: the client\'s key cancels the query on the backend running it';
    cmp_ok time - $t1, '<', 5, sprintf('cancel: promptly (%.2f s)', time - $t1);
    is one($c, 'SELECT 1'), '1', 'cancel: the client goes on';
    $_->terminate for $x, $y, $c;

    # COPY both ways, and a row larger than anything read whole, with prepared statements followed.
    my $ci = $p->conninfo;
    psql($ci, 'CREATE TABLE IF NOT EXISTS copied (n int, t text)');
    my $data = tmpdir(name => 'txn-copy') . '/rows.txt';
    write_file($data, join('', map { "$_\trow $_\n" } 1 .. 20000));
    my ($crc, $cout, $cerr) = run_cmd([require_tool('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $ci,
                                       '-c', "\\copy copied FROM '$data'"], timeout => 60);
    is $crc, 0, 'COPY FROM STDIN through transaction pooling' or diag $cerr;
    is scalar(psql($ci, 'SELECT count(*) || \' \' || sum(n) FROM copied')), '20000 200010000', 'every row arrived';
    my $out = scalar psql($ci, 'COPY (SELECT n, t FROM copied ORDER BY n) TO STDOUT', timeout => 60);
    is scalar(split /\n/, $out), 20000, 'COPY TO STDOUT: every row came back';
    is scalar(psql($ci, q{SELECT length(repeat('x', 5000000) || n) FROM copied WHERE n = 7})), '5000001',
       'a 5 MB row through the rewriter';
    my $w = scalar login($p);
    my $r = ext($w, [parse => 'big', q{SELECT repeat('y', 3000000)}], [bind => 'big'], ['exec']);
    is length($r->{rows}[0][0] // ''), 3000000, 'a 3 MB row of a named statement';
    $r = ext($w, [bind => 'big'], ['exec']);
    is length($r->{rows}[0][0] // ''), 3000000, 'and again in a later transaction';
    $w->terminate;
    $p->stop;
}

# ================================================================ MOVE and DRAIN between transactions
# Two regions on the same server (a second name for it): what changes is
# where the session's next transactions are routed, not what they see.
{
    my $p = PgNearTest::Proxy->new(
        regions => [$us, { name => 'eu-west', location => '53.35, -6.26', hosts => [$us->hostport] }],
        settings => { %BASE, pool_size => 2, default_region => 'us-east' });
    my $w = scalar login($p);
    is one($w, 'SELECT 1'), '1', 'moves: a session between transactions';
    my ($me) = grep { ($_->{user} // '') eq 'app' } $p->admin_rows('SHOW CLIENTS');
    is $me->{movable}, 'yes', 'moves: SHOW CLIENTS says it may move';
    my ($row) = $p->admin_rows("MOVE CLIENT $me->{id} TO REGION \"eu-west\"");
    is $row->{result}, 'moved', 'MOVE CLIENT: moved at once (nothing to carry)' or diag explain $row;
    is one($w, 'SELECT 2'), '2', 'moves: its next transaction runs';
    ($me) = grep { $_->{id} eq $me->{id} } $p->admin_rows('SHOW CLIENTS');
    is $me->{region}, 'eu-west', 'moves: and ran in region eu-west';
    my @rows = $p->admin_rows('DRAIN "eu-west"');
    ($row) = grep { $_->{client_id} eq $me->{id} } @rows;
    is $row->{result}, 'moved', 'DRAIN: the session between transactions is moved, not ended' or diag explain \@rows;
    is $row->{to_region}, 'us-east', 'DRAIN: to the next region of its route';
    is one($w, 'SELECT 3'), '3', 'DRAIN: its next transaction runs';
    ($me) = grep { $_->{id} eq $me->{id} } $p->admin_rows('SHOW CLIENTS');
    is $me->{region}, 'us-east', 'DRAIN: in region us-east';
    $p->admin_rows('ENABLE "eu-west"');
    $w->terminate;
    $p->stop;
}

# ================================================================ an idle connection taken at once
# A transaction takes an idle connection that fits it at once, with no login
# of pgnear's own to fetch it (SHOW STATS txn_direct_takes); it goes through
# such a login when server_check_query is due; a PAUSE holds it before.
{
    my $p = proxy(pool_size => 1);
    my $takes = sub { stat_value($p, 'txn_direct_takes') // -1 };
    my $before = $takes->();
    my ($rc, $out, $err) = pgbench(['-n', '-S', '-c', '1', '-t', '50'], $p->conninfo, timeout => 60);
    is $rc, 0, 'pgbench -S -c 1 -t 50' or diag "$out\n$err";
    cmp_ok $takes->() - $before, '>=', 50, "pgbench's transactions took their idle connection at once";

    # PAUSE holds a session between transactions before it looks for a connection.
    my $w = login($p);
    is one($w, 'SELECT 6'), '6', 'PAUSE: a session between transactions';
    $p->admin_rows('PAUSE "us-east"');
    $before = $takes->();
    $w->send_query('SELECT 7');
    ok !IO::Select->new($w->socket)->can_read(0.5), 'PAUSE: its next transaction waits';
    is $takes->() - $before, 0, 'PAUSE: no connection taken meanwhile';
    $p->admin_rows('RESUME "us-east"');
    is $w->read_result->{rows}[0][0], '7', 'RESUME: the transaction runs';
    $w->terminate;
    $p->stop;

    $p = proxy(pool_size => 1, server_check_delay => 0);
    $w = login($p);
    is one($w, "SELECT $_"), $_, "server_check_delay = 0: transaction $_ runs" for 1 .. 3;
    is stat_value($p, 'txn_direct_takes'), 0, 'server_check_query due: no connection taken at once';
    $w->terminate;
    $p->stop;
}

# A client waiting for its full pool keeps no transaction of another pool
# from taking an idle connection at once (the wait is that pool's: a
# connection it fits is kept for it when given back); given back, the
# connection goes to the waiting client.
{
    my $p = proxy(pool_size => 1);
    my $takes = sub { stat_value($p, 'txn_direct_takes') // -1 };
    my $d = login($p);
    is one($d, 'SELECT 1'), '1', 'movr: its pool has an idle connection';
    my @other = map { scalar login_db($p, 'postgres') } 1 .. 2;
    is one($other[0], 'BEGIN'), undef, "postgres: A's transaction holds its pool's only connection";
    $other[1]->send_query('SELECT 2');
    ok !IO::Select->new($other[1]->socket)->can_read(0.5), 'postgres: B waits for it';
    my $before = $takes->();
    is one($d, 'SELECT 3'), '3', 'movr: a transaction runs while B waits';
    is $takes->() - $before, 1, 'movr: it took its idle connection at once, a client of another pool waiting';
    $other[0]->query('COMMIT');
    is $other[1]->read_result->{rows}[0][0], '2', 'postgres: A committed, B runs on the connection given back';
    $_->terminate for $d, @other;
    $p->stop;
}

# A transaction that finds its pool full waits as itself, with no login of
# pgnear's own, for a connection to be given back (SHOW STATS
# txn_waited_takes), with two workers for its worker's slice of the pool;
# shown waiting in SHOW POOLS and SHOW CLIENTS, its request canceled at
# once by its key (57014, nothing run), its client free to hang up, its
# wait bounded by query_wait_timeout (53300, the time it waited counted
# once).
for my $workers (1, 2) {
    my $p = proxy(pool_size => $workers, workers => $workers, query_wait_timeout => '3s');
    my @w = map { scalar login($p) } 1 .. 3 * $workers;
    my $before = stat_value($p, 'txn_waited_takes') // -1;
    $_->send_query('SELECT pg_sleep(0.2)') for @w;
    my @r = map { $_->read_result } @w;
    is scalar(grep { !$_->{error} } @r), 3 * $workers, "workers $workers: a crowd's transactions ran in turn";
    cmp_ok((stat_value($p, 'txn_waited_takes') // -1) - $before, '>=', 2 * $workers,
           "workers $workers: those that waited took a connection as it was given back (txn_waited_takes)");
    $_->terminate for @w;
    $p->stop;
}
{
    # query_wait_timeout far off here: each admin query is a psql of its own,
    # which a loaded machine can take a second to start.
    my $p = proxy(pool_size => 1, query_wait_timeout => '60s');
    my $pool = sub { my ($q) = grep { $_->{database} eq 'movr' } $p->admin_rows('SHOW POOLS'); $q->{cl_waiting} // -1 };
    my ($holder, $gone, $d) = map { scalar login($p) } 1 .. 3;
    my ($c, $rc) = login($p); # a login takes a connection too: all before the pool fills
    is one($holder, 'BEGIN'), undef, 'a transaction holds the only connection';
    $c->send_query('SELECT 42');
    ok !IO::Select->new($c->socket)->can_read(0.3), 'a client of the full pool waits';
    cmp_ok $pool->(), '>=', 1, 'SHOW POOLS counts it in cl_waiting';
    my @clients = $p->admin_rows('SHOW CLIENTS');
    my ($row) = grep { ($_->{state} // '') eq 'waiting' && ($_->{user} // '') eq 'app' } @clients;
    ok $row, 'SHOW CLIENTS shows the client itself waiting'
      or diag explain [map { "$_->{id} $_->{user} $_->{state} server=" . ($_->{server} // '') } @clients],
              [$p->admin_rows('SHOW POOLS')], [$p->admin_rows('SHOW SERVERS')];
    my $t0 = time;
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $rc->{pid}, key => $rc->{key});
    my $res = $c->read_result;
    is sqlstate($res->{error}), '57014', 'its cancel request answers the waiting query 57014'
      or diag explain $res, sprintf('%.3f s after the cancel; the log: %s', time - $t0, substr($p->log_contents, -6000));
    cmp_ok time - $t0, '<', 10, 'at once, not at query_wait_timeout (60 s)';
    is $pool->(), 0, 'and it waits no more';

    $gone->send_query('SELECT 43');
    ok wait_until(sub { $pool->() >= 1 }, timeout => 20), 'another client waits'
      or diag explain [map { "$_->{id} $_->{user} $_->{state} server=" . ($_->{server} // '') } $p->admin_rows('SHOW CLIENTS')],
              [$p->admin_rows('SHOW POOLS')], [$p->admin_rows('SHOW SERVERS')], substr($p->log_contents, -8000);
    close $gone->socket;
    ok wait_until(sub { $pool->() == 0 }, timeout => 20), 'it hangs up: counted as waiting no more';
    $holder->query('COMMIT');
    is one($c, 'SELECT 45'), '45', 'the transaction ends: the pool serves again';
    is $pool->(), 0, 'nobody counted as waiting is left';
    $_->terminate for $holder, $c, $d;
    $p->stop;

    # Past query_wait_timeout: 53300, the time it waited counted once.
    $p = proxy(pool_size => 1, query_wait_timeout => '2s');
    ($holder, $c) = map { scalar login($p) } 1 .. 2;
    is one($holder, 'BEGIN'), undef, 'query_wait_timeout = 2s: a transaction holds the only connection';
    $t0 = time;
    $res = $c->query('SELECT 44');
    is sqlstate($res->{error}), '53300', 'past query_wait_timeout a waiting query gets 53300' or diag explain $res;
    my $dt = time - $t0;
    cmp_ok $dt, '>=', 1.8, 'after query_wait_timeout (2 s)';
    cmp_ok $dt, '<', 3.5, 'counted once, not again by the fetcher that says so';
    like $res->{error}{M}, qr/no server connection free for database "movr", user "app"/, 'the message names the pool';
    $holder->query('COMMIT');
    is $pool->(), 0, 'query_wait_timeout = 2s: nobody counted as waiting is left';
    $holder->terminate;
    $p->stop;
}

# ================================================================ pgbench over pool_size = 5
for my $workers (1, 2) {
    my $p = proxy(pool_size => 5, workers => $workers);
    for my $mode (qw(simple extended prepared)) {
        my $max = 0;
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my ($rc) = pgbench(['-n', '-M', $mode, '-c', '20', '-j', '2', '-t', '25'], $p->conninfo, timeout => 180);
            exit($rc == 0 ? 0 : 1);
        }
        my $deadline = time + 180;
        while (time < $deadline) {
            my $n = app_backends();
            $max = $n if $n =~ /^\d+$/ && $n > $max;
            last if waitpid($pid, 1) == $pid;
            sleep 0.2;
        }
        is $? >> 8, 0, "workers = $workers, pgbench -M $mode -c 20 over pool_size 5: no failure";
        cmp_ok $max, '<=', 5, "workers = $workers, -M $mode: never more than 5 backends (saw $max)";
        cmp_ok $max, '>=', 1, "workers = $workers, -M $mode: the sampling saw the backends";
    }
    $p->stop;
}

# ================================================================ pool_mode per [database] and [user]
# Session mode for all; database movr in transaction mode; user solo of movr
# back in session mode. An app client's connection goes back between its
# transactions (the next app client gets that same backend); each solo client
# keeps its own; SHOW POOLS says each pool's mode.
{
    $us->psql_admin(q{DO $$BEGIN CREATE ROLE solo LOGIN PASSWORD 'solo-secret'; EXCEPTION WHEN duplicate_object THEN NULL; END$$});
    $us->psql_admin('GRANT ALL ON DATABASE movr TO solo');
    my $users = "$auth_dir/users-sections.txt";
    write_file($users, qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
                     . qq{"app" "} . $us->scram_verifier('app') . qq{"\n}
                     . qq{"solo" "} . $us->scram_verifier('solo') . qq{"\n});
    my $p = PgNearTest::Proxy->new(regions => [$us],
        settings  => { %BASE, pool_mode => 'session', auth_file => $users },
        extra_ini => "[database movr]\npool_mode = transaction\n\n[user solo]\npool_mode = session\n");
    my $a1 = login($p);
    my $pid = backend_pid($a1);
    my $a2 = login($p);
    is backend_pid($a2), $pid, '[database movr] pool_mode = transaction: the next client gets the same backend';
    my @solo = map {
        my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
        my $r = $w->startup(user => 'solo', database => 'movr', password => 'solo-secret');
        ok $r->{ok}, "user solo logs in ($_)" or diag explain $r->{error};
        $w;
    } 1 .. 2;
    isnt backend_pid($solo[0]), backend_pid($solo[1]), '[user solo] pool_mode = session: each session holds its own backend';
    my %mode = map { ("$_->{database}/$_->{user}" => $_->{pool_mode}) } $p->admin_rows('SHOW POOLS');
    is $mode{'movr/app'}, 'transaction', 'SHOW POOLS: movr/app is pooled by transaction';
    is $mode{'movr/solo'}, 'session', 'SHOW POOLS: movr/solo by session';
    $_->terminate for $a1, $a2, @solo;
    $p->stop;
}

# ================================================================ a write sent with the Terminate
# A client that sends its last statement and its Terminate in one packet
# and leaves (a fire-and-forget script) has it run, as directly: a small
# INSERT, and one of 8 MB that cannot be sent to the server at once.
{
    my $p = proxy(pool_size => 2);
    my $w = login($p);
    one($w, 'CREATE TABLE IF NOT EXISTS gone (tag text, body text)');
    $w->terminate;
    for my $case (['small', 10], ['8 MB', 8 << 20]) {
        my ($tag, $n) = @$case;
        $w = login($p);
        my $sql = "INSERT INTO gone VALUES ('$tag', '" . ('y' x $n) . "')";
        $w->send_raw('Q' . pack('N', 4 + length($sql) + 1) . $sql . "\0" . 'X' . pack('N', 4));
        my $seen = wait_until(sub {
            $us->psql_admin("SELECT count(*) FROM gone WHERE tag = '$tag'", dbname => 'movr') eq '1' },
            timeout => 15);
        ok $seen, "a $tag INSERT sent with its Terminate in one packet runs";
        close $w->socket;
    }
    $p->stop;
}

# ================================================================ the shipped pool_size
{
    my $p = proxy();
    my ($row) = grep { $_->{setting} eq 'pool_size' } $p->admin_rows('SHOW CONFIG');
    is $row->{value}, '20', 'pool_mode = transaction without pool_size: pool_size is 20';
    $p->stop;
}

done_testing;
