# target_session_attrs = nearest: each transaction on the nearest host
# that can run it.  A primary in us-east and a streaming standby in
# eu-west that replays half a second late (recovery_min_apply_delay = 500ms); the
# caller is in Dublin.  Reads run on eu-west; a statement that writes is
# answered 25006 there and run again on the primary, the client seeing
# the primary's answer alone (simple and extended protocol, a named
# statement the primary lacks, one described first, nextval() and a function that inserts run
# once, a multi-statement Query, pipelined Queries, COPY FROM STDIN); an
# error on the primary too (a unique violation) comes once, as the
# primary's; a block goes to the primary unless it is READ ONLY, where a
# write gets the standby's 25006 as the primary would give its own; right
# after a write the session reads on the primary (the standby has not
# replayed it), and near again once the standby has; a load of writers
# that read back each write and readers: no failure, no stale read; the
# counters of transactions run near, forwarded, and forwarded but failed
# (SHOW STATS and /metrics), and SHOW CLIENTS' reads_at, writes_at and
# forwarded of a session; SHOW ROUTE without NEEDING and --explain without
# need= use the configured nearest; a cancel request reaches the standby's or the
# primary's backend, and one that comes while the primary's connection is
# awaited (a full pool) cancels the write before it runs (57014 after the
# standby's ParseComplete and BindComplete; a read-write session's queued
# Query likewise); pipelined extended batches and Queries mixing reads
# and writes; Parse, Describe, Flush, then Bind, Execute, Sync of an
# INSERT (asyncpg); answers and client messages over 64 kB; SELECT ...
# FOR UPDATE; a write first in a session, and one sent with the Terminate; state that pins (temporary
# table, LISTEN in a block, advisory lock, SET); notifications to a listener
# (its LISTEN answered by pgnear, not pinned: notify_hub.h) that
# come between its transactions; default_transaction_read_only (the
# primary's own 25006); the primary down (08001 after failover_wait,
# reads near); the standby's backend terminated while a read's answer is
# held (simple, extended, by itself): the server's FATAL, then the end; a
# session that leaves right after a write leaves its primary's connection
# to the pool; a Query after a Close with no Sync between is answered.
# Under pool_mode = transaction and session, 1 and 2 workers; under
# session pooling the session's standby and primary connections are its
# own (another session never gets them) and go back to the pool as it
# ends; one its server ended while parked is replaced; with the standby
# down its reads stay on its primary's connection (not a new one each)
# and come back near with the standby; what it sets (SET, RESET, SET ROLE,
# SQL PREPARE, a TimeZone a function sets) runs near and is carried to its
# other connection when it changed, once (a custom setting pins).  With no
# role known (the checks cannot log in) a session runs where it logged in,
# its reads after a write too, and a write refused where a login found a
# standby runs on the other host.  Without max_prepared_statements, or as a
# walsender (replication=database), the session runs as read-write, on the
# primary, and the log says why.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);
use PgNearTest;
use PgNearNearest;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pg_basebackup node curl);
my $root = "$FindBin::RealBin/../..";
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : require_tool('python3');
system($python, '-c', 'import psycopg') == 0
  or BAIL_OUT('psycopg 3 is missing (scripts/install-deps.sh installs python3-psycopg)');

# TLS on, for the one check over server_tls = require
my $ca = PgNearTest::CA->new;
my $us = PgNearTest::Cluster->new(name => 'us-east', ca => $ca);
$us->psql_admin(<<'SQL', dbname => 'movr');
CREATE TABLE rides (id int PRIMARY KEY, rider text, at timestamptz DEFAULT now());
CREATE SEQUENCE ride_ids;
CREATE FUNCTION add_ride(n int) RETURNS int LANGUAGE sql AS
  'INSERT INTO rides (id, rider) VALUES (n, ''fn'') RETURNING id';
GRANT ALL ON rides, ride_ids TO app;
SET password_encryption = 'scram-sha-256';
CREATE ROLE clerk NOLOGIN;
GRANT clerk TO app;
GRANT ALL ON rides TO clerk;
CREATE FUNCTION to_tokyo() RETURNS text LANGUAGE plpgsql AS
  $$BEGIN PERFORM set_config('TimeZone', 'Asia/Tokyo', false); RETURN 'ok'; END$$;
CREATE ROLE reader LOGIN PASSWORD 'reader-secret';
ALTER ROLE reader SET default_transaction_read_only = on;
GRANT ALL ON rides TO reader;
SQL
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west', apply_delay => '500ms', ca => $ca);
$eu->wait_streaming;

my $auth_dir = tmpdir(name => 'nearest-auth');
write_file("$auth_dir/userlist.txt",
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n}
  . qq{"reader" "} . $us->scram_verifier('reader') . qq{"\n});
my $WORKERS = $ENV{PGNEAR_TEST_WORKERS} // 2;

sub proxy {
    my (%set) = @_;
    return PgNearTest::Proxy->new(
        regions  => nearest_regions($us, $eu),
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", admin_users => 'admin',
                      server_tls => 'disable', health_check_interval => '250ms', workers => $WORKERS,
                      target_session_attrs => 'nearest', failover_wait => '1s', %set });
}
sub stat_value {
    my ($p, $name) = @_;
    my ($row) = grep { $_->{stat} eq $name } $p->admin_rows('SHOW STATS');
    return $row ? $row->{value} : undef;
}

# SHOW CLIENTS' reads_at, writes_at and forwarded of the app's one session (NULL: '').
sub legs {
    my ($me) = grep { $_->{user} eq 'app' } $_[0]->admin_rows('SHOW CLIENTS');
    return $me ? @$me{qw(reads_at writes_at forwarded)} : ('no session');
}

sub login { dublin_login($_[0]->port, options => $_[1]) }
# Until the session's reads run near again: the standby has replayed what it wrote.
sub near_again {
    my ($w) = @_;
    return wait_until(sub { where($w) eq 'eu-west' }, timeout => 10, interval => 0.05);
}

# Extended-protocol batch ending in Sync, with text parameters; the answer and its message types.
sub ext {
    my ($w, @msgs) = @_;
    for my $m (@msgs) {
        my ($kind, @a) = @$m;
        if ($kind eq 'parse') { $w->send_msg('P', "$a[0]\0$a[1]\0" . pack('n', 0)) }
        elsif ($kind eq 'bind') {
            my ($name, @params) = @a;
            $w->send_msg('B', "\0$name\0" . pack('nn', 0, scalar @params)
                              . join('', map { pack('N', length $_) . $_ } @params) . pack('n', 0));
        }
        elsif ($kind eq 'exec') { $w->send_msg('E', "\0" . pack('N', 0)) }
        elsif ($kind eq 'describe') { $w->send_msg('D', "S$a[0]\0") }
    }
    $w->send_msg('S', '');
    return $w->read_result;
}
sub primary_count { $us->psql_admin("SELECT count(*) FROM rides WHERE $_[0]", dbname => 'movr') }

# An extended-protocol batch (unnamed statement and portal, text parameters), Sync last.
sub batch { ext_statement(@_) . sync_message() }
sub qmsg { query_message(@_) }
# The message types of an answer up to ReadyForQuery.
sub types_until_ready {
    my ($w) = @_;
    my @t;
    while (my ($t) = $w->read_msg) { push @t, $t; last if $t eq 'Z' }
    return join '', @t;
}
# Whether a backend of cluster $c runs a statement like $like, within 10 s.
sub backend_running {
    my ($c, $like) = @_;
    $like =~ s/'/''/g;
    return wait_until(sub {
        $c->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '$like'") eq '1'
    }, timeout => 10, interval => 0.02);
}

# Under session pooling: what a session sets is carried between its standby's and its
# primary's connections, read back and replayed only when it changed.
sub session_state_sync {
    my ($p, $next) = @_;
    my $c = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
    my $r = $c->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { options => '-c pgnear.location=53.35,-6.26', application_name => 'carried_app' });
    die "login failed\n" unless $r->{ok};
    my $syncs = stat_value($p, 'nearest_state_syncs');
    my $row = sub {    # a write that records what the primary's session has, read back there
        my ($what) = @_;
        my $id = $$next++;
        my $q = $c->query("INSERT INTO rides (id, rider) VALUES ($id, $what)");
        return "$q->{error}{C} $q->{error}{M}" if $q->{error};
        return $us->psql_admin("SELECT rider FROM rides WHERE id = $id", dbname => 'movr');
    };
    is one($c, q{SET search_path = acme, public}), undef, 'session: SET search_path runs';
    is where($c), 'eu-west', 'session: ... near, and the session still reads near (not pinned)';
    ok !(grep { $_->{user} eq 'app' && ($_->{pinned} // '') ne '' } $p->admin_rows('SHOW CLIENTS')),
      'session: ... SHOW CLIENTS pins nothing';
    is $row->(q{current_setting('search_path') || '/' || current_setting('application_name')}), 'acme, public/carried_app',
      'session: a write forwarded to the primary sees the setting, and the startup parameters';
    is stat_value($p, 'nearest_state_syncs'), $syncs + 1, 'session: ... carried there once';
    ok near_again($c), 'session: reads near again';
    is one($c, q{SELECT current_setting('search_path')}), 'acme, public', 'session: ... with the setting still there';
    is $row->(q{current_setting('search_path')}), 'acme, public', 'session: another write: the same';
    is stat_value($p, 'nearest_state_syncs'), $syncs + 1, 'session: ... and no sync when nothing changed';

    # Set on the primary (a block), read near: carried back.
    $c->query('BEGIN');
    $c->query(q{SET search_path = globex, public});
    $c->query('COMMIT');
    ok near_again($c), 'session: a SET in a block on the primary, then reads near again';
    is one($c, q{SELECT current_setting('search_path') || '@' || current_setting('cluster_name')}), 'globex, public@eu-west',
      'session: ... with the primary\'s setting carried to the standby';
    is stat_value($p, 'nearest_state_syncs'), $syncs + 2, 'session: ... one sync';

    # SET ROLE, a SQL PREPARE, a setting a function changes (its ParameterStatus tells), RESET.
    is one($c, 'SET ROLE clerk'), undef, 'session: SET ROLE near';
    is one($c, q{PREPARE add(int, text) AS INSERT INTO rides (id, rider) VALUES ($1, $2)}), undef,
      'session: a SQL PREPARE of an INSERT near';
    is one($c, 'SELECT to_tokyo()'), 'ok', 'session: a function that sets TimeZone near';
    my $id = $$next++;
    my $q = $c->query("EXECUTE add($id, current_user || ' ' || current_setting('TimeZone'))");
    ok !$q->{error}, 'session: EXECUTE of the prepared INSERT is forwarded' or diag explain $q->{error};
    is $us->psql_admin("SELECT rider FROM rides WHERE id = $id", dbname => 'movr'), 'clerk Asia/Tokyo',
      'session: ... and runs on the primary as the role, with the time zone the function set';
    is one($c, 'RESET search_path'), undef, 'session: RESET search_path';
    is $row->(q{current_setting('search_path') || ' ' || current_user}),
      '"$user", public clerk', 'session: ... carried: the primary\'s session has the default search_path, the role stays';
    is one($c, 'RESET ROLE'), undef, 'session: RESET ROLE';
    # eu-west's replay paused: $row's look on the primary may outlast its 500 ms delay on a loaded machine.
    $eu->pause_replay;
    is $row->('current_user'), 'app', 'session: ... carried';
    is where($c), 'us-east', 'session: right after a write, reads on the primary';
    $eu->resume_replay;
    ok near_again($c), 'session: ... then near';
    is one($c, 'SELECT current_user'), 'app', 'session: ... as the role the session has';

    # A named statement of the extended protocol the primary had before a sync (its DISCARD ALL):
    # parsed there again when it is used.
    $id = $$next++;
    $r = ext($c, [parse => 'add_ext', 'INSERT INTO rides (id, rider) VALUES ($1, $2)'], [bind => 'add_ext', $id, 'ext1'], ['exec']);
    ok !$r->{error}, 'session: Parse/Bind/Execute of an INSERT, forwarded' or diag explain $r->{error};
    ok near_again($c), 'session: reads near again';
    is one($c, 'SET search_path = public'), undef, 'session: a SET near';
    $id = $$next++;
    $r = ext($c, [bind => 'add_ext', $id, 'ext2'], ['exec']);
    ok !$r->{error}, 'session: the statement bound again, forwarded to the primary after its state was carried there'
      or diag explain $r->{error};
    is $us->psql_admin("SELECT rider FROM rides WHERE id = $id", dbname => 'movr'), 'ext2', 'session: ... once';

    # The only connection with the newest state ended while parked: the session cannot go on.
    ok near_again($c), 'session: reads near again';
    is one($c, 'SET search_path = lost, public'), undef, 'session: a SET near';
    my $pid = one($c, 'SELECT pg_backend_pid()');
    is $eu->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid"), 1, 'session: ... on the standby';
    $eu->psql_admin("SELECT pg_terminate_backend($pid)");
    ok wait_until(sub { $eu->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid") eq '0' },
                  timeout => 10), 'session: ... and its standby\'s connection, the only one with it, ended by the server';
    $id = $$next++;
    $q = $c->query("INSERT INTO rides (id, rider) VALUES ($id, 'lost')");
    is $q->{error} ? "$q->{error}{C} $q->{error}{M}" : 'no error', "08006 pgnear lost the session's settings",
      'session: its next write: the session ends, saying why';
    is $us->psql_admin("SELECT count(*) FROM rides WHERE rider = 'lost'", dbname => 'movr'), 0, 'session: ... writing nothing';
    $c->terminate;
}

my $next_id = 1;
for my $mode (qw(transaction session)) {
    # Each mode counts its own rows (the checks count by rider).
    $us->psql_admin('TRUNCATE rides', dbname => 'movr');
    # The standby takes TRUNCATE's lock as it replays the lock's record and
    # lets it go at the commit's, half a second later: replay paused between
    # (below) leaves every query of rides there waiting, the INSERT that
    # tries near first too.  A primary just restarted (the mode before) has
    # the standby reconnect and replay late.
    my $truncated = $us->psql_admin('SELECT pg_current_wal_lsn()');
    ok $eu->wait_replay($truncated), "$mode: the standby has replayed the TRUNCATE";
    my $first_id = $next_id;
    my $mport = free_port();
    my $p = proxy(pool_mode => $mode, metrics_addr => "127.0.0.1:$mport");
    ok wait_until(sub { grep { $_->{region} eq 'eu-west' && $_->{role} eq 'standby' } $p->admin_rows('SHOW REGIONS') },
                  timeout => 30), "$mode: the checks know eu-west as a standby";
    if ($mode eq 'transaction') {
        # No NEEDING, no need=: the need of a session that names none, nearest here.
        my @route = grep { $_->{rank} ne '' } $p->admin_rows("SHOW ROUTE FOR LOCATION '53.35,-6.26'");
        is_deeply [map { "$_->{rank}. $_->{region} $_->{needing}" } @route],
          ['1. eu-west nearest', '2. us-east nearest', '1. us-east read-write'],
          'SHOW ROUTE without NEEDING: the configured nearest, reads from eu-west, writes to us-east';
        my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--explain', $p->config_path, 'location=53.35,-6.26']);
        like $out, qr/^needing: nearest\nregion: eu-west\n(?:.*\n)*^writes: /m,
          '--explain without need=: the configured nearest, its reads and its writes' or diag $out, $err;
    }
    my $w = login($p);
    is where($w), 'eu-west', "$mode: a read runs on the nearest standby";
    is_deeply [legs($p)], ['eu-west', '', 0], "$mode: SHOW CLIENTS: it reads on eu-west, no write yet";

    # ---- a write forwarded, in the simple protocol (eu-west's replay paused until the read after it:
    # the look on the primary between may outlast its 500 ms delay on a loaded machine)
    my $id = $next_id++;
    $eu->pause_replay;
    my $q = $w->query("INSERT INTO rides (id, rider) VALUES ($id, 'simple')");
    ok !$q->{error}, "$mode: an INSERT succeeds" or diag explain $q->{error};
    is_deeply $q->{tags}, ['INSERT 0 1'], "$mode: ... with the primary's answer alone";
    is primary_count("id = $id"), 1, "$mode: ... once, on the primary";
    is one($w, "SELECT current_setting('cluster_name') || ':' || count(*) FROM rides WHERE id = $id"),
      'us-east:1', "$mode: read right after the write: on the primary, which has it";
    $eu->resume_replay;
    ok wait_until(sub { where($w) eq 'eu-west' }, timeout => 10),
      "$mode: once the standby has replayed the write, reads are near again";
    is one($w, "SELECT count(*) FROM rides WHERE id = $id"), 1, "$mode: ... and see it";
    is_deeply [legs($p)], ['eu-west', 'us-east', 1], "$mode: SHOW CLIENTS: it reads on eu-west, writes through us-east";

    if ($mode eq 'session') {
        # ---- session pooling: its standby's and its primary's connections are its own, then the pool's
        ok near_again($w), "$mode: reads near again";
        my $near_pid = one($w, 'SELECT pg_backend_pid()');
        $w->query('BEGIN');
        my $primary_pid = one($w, 'SELECT pg_backend_pid()');
        $w->query('COMMIT');
        my $o = login($p);
        isnt one($o, 'SELECT pg_backend_pid()'), $near_pid, "$mode: another session never gets its standby's connection";
        ok near_again($w), "$mode: reads near again";
        is one($w, 'SELECT pg_backend_pid()'), $near_pid, "$mode: ... on its own connection";
        $w->query('BEGIN');
        is one($w, 'SELECT pg_backend_pid()'), $primary_pid, "$mode: a block on its own primary's connection";
        $w->query('COMMIT');
        ok near_again($w), "$mode: reads near again"; # (the primary's position asked after the block is answered)
        $_->terminate for $w, $o;
        ok wait_until(sub {
            my %idle = map { $_->{pid} => 1 } grep { $_->{state} eq 'idle' } $p->admin_rows('SHOW SERVERS');
            $idle{$near_pid} && $idle{$primary_pid}
        }, timeout => 10), "$mode: both go back to the pool as the session ends"
          or diag explain [$p->admin_rows("SHOW SERVERS")];
        $w = login($p);
        # ---- its primary's connection ended by the server while parked: a write gets another
        $w->query('BEGIN');
        $primary_pid = one($w, 'SELECT pg_backend_pid()');
        $w->query('COMMIT');
        ok near_again($w), "$mode: reads near again";
        $us->psql_admin("SELECT pg_terminate_backend($primary_pid)");
        ok wait_until(sub { $us->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE pid = $primary_pid") eq '0' },
                      timeout => 10), "$mode: its parked primary's connection ended by the server";
        $id = $next_id++;
        $q = $w->query("INSERT INTO rides (id, rider) VALUES ($id, 'parked')");
        ok !$q->{error}, "$mode: ... its next write runs on another" or diag explain $q->{error};
        is primary_count("id = $id"), 1, "$mode: ... once";
        # ---- the standby down: reads on the primary's connection it has, not on another each
        $w->terminate;
        $eu->stop(mode => 'immediate');
        ok wait_until(sub { grep { $_->{region} eq 'eu-west' && $_->{up} eq 'f' } $p->admin_rows('SHOW REGIONS') },
                      timeout => 10), "$mode: the standby down";
        $w = login($p);
        my $kept = stat_value($p, 'servers_kept');
        my %at;
        $at{ where($w) }++ for 1 .. 40;
        is_deeply \%at, { 'us-east' => 40 }, "$mode, the standby down: reads run on the primary";
        cmp_ok stat_value($p, 'servers_kept') - $kept, '<', 10,
          "$mode, the standby down: ... on the session's connection, not a new one each (one a health check at most)"
          or diag stat_value($p, 'servers_kept') - $kept, ' connections replaced';
        $eu->start;
        $eu->wait_streaming;
        ok near_again($w), "$mode: ... and near again once the standby is back";
    }

    # ---- the extended protocol, a named statement the primary lacks
    ok near_again($w), "$mode: reads near again";
    $id = $next_id++;
    my $r = ext($w, [parse => 'ins', 'INSERT INTO rides (id, rider) VALUES ($1, $2)'], [bind => 'ins', $id, 'ext'], ['exec']);
    ok !$r->{error}, "$mode: Parse/Bind/Execute of an INSERT succeeds" or diag explain $r->{error};
    is primary_count("id = $id"), 1, "$mode: ... once";
    ok near_again($w), "$mode: reads near again";
    $id = $next_id++;
    $r = ext($w, [bind => 'ins', $id, 'again'], ['exec']);
    ok !$r->{error}, "$mode: the named statement bound again, in a later transaction" or diag explain $r->{error};
    is primary_count("id = $id"), 1, "$mode: ... once";
    # described on the standby, a statement is checked on the primary before its Parse
    # there (postgres.js's batch): that check's answer is no end of the transaction.  It
    # was, at times, over TLS (a read with no message in it ended the transaction early,
    # the session's fence question took the check's answer, and the client waited for
    # ever): 4 times over server_tls = require
    {
        my $pt = proxy(pool_mode => $mode, server_tls => 'require');
        # (its checks must know eu-west as a standby first: until then its role is unknown)
        wait_until(sub { grep { $_->{region} eq 'eu-west' && $_->{role} eq 'standby' } $pt->admin_rows('SHOW REGIONS') },
                   timeout => 30);
        my $wt = login($pt);
        my @described;
        for my $k (1 .. 4) {
            near_again($wt);
            $id = $next_id++;
            my $rt = eval {
                ext($wt, [parse => "insd$k", "INSERT INTO rides (rider, id) VALUES (\$2, \$1) -- $k"],
                    [describe => "insd$k"], [bind => "insd$k", $id, 'described'], ['exec'])
            } // { error => { M => $@ } };
            push @described, $rt->{error} || $rt->{eof} ? 'failed' : primary_count("id = $id");
            last if $described[-1] eq 'failed';
        }
        is "@described", '1 1 1 1', "$mode: Parse, Describe, Bind, Execute of an INSERT over TLS, 4 times: each once";
        $wt->terminate;
        $pt->stop;
    }

    # ---- a Close, then a Query with no Sync between (node-postgres's cursor after an error):
    # the Query's answer ends the transaction and comes (it was held for a Sync that never came)
    ok near_again($w), "$mode: reads near again";
    {
        local $w->{timeout} = 5;
        $w->send_raw("C\0\0\0\7Pc\0" . qmsg(q{SELECT current_setting('cluster_name')}));
        is eval { types_until_ready($w) } // "no answer: $@", '3TDCZ',
          "$mode: a Close and a Query without a Sync: CloseComplete and the Query's answer";
        is where($w), 'eu-west', "$mode: ... and the session reads on";
    }

    # ---- writes hidden in reads
    my $before = $us->psql_admin(q{SELECT nextval('ride_ids')}, dbname => 'movr');
    ok near_again($w), "$mode: reads near again";
    is one($w, q{SELECT nextval('ride_ids')}), $before + 1, "$mode: nextval() runs, on the primary";
    is $us->psql_admin('SELECT last_value FROM ride_ids', dbname => 'movr'), $before + 1, "$mode: ... exactly once";
    ok near_again($w), "$mode: reads near again";
    $id = $next_id++;
    is one($w, "SELECT add_ride($id)"), $id, "$mode: a function that inserts runs";
    is primary_count("id = $id"), 1, "$mode: ... once";
    ok near_again($w), "$mode: reads near again";
    $id = $next_id++;
    $q = $w->query("SELECT 41 + 1; INSERT INTO rides (id, rider) VALUES ($id, 'multi')");
    ok !$q->{error}, "$mode: a Query with a read then a write succeeds" or diag explain $q->{error};
    is_deeply [$q->{rows}[0][0], $q->{tags}], [42, ['SELECT 1', 'INSERT 0 1']], "$mode: ... both answers once";

    # ---- an error on the primary too: the primary's, once
    ok near_again($w), "$mode: reads near again";
    $q = $w->query("INSERT INTO rides (id, rider) VALUES ($id, 'dup')");
    is sqlstate($q->{error}), '23505', "$mode: a unique violation: the primary's 23505, not the standby's 25006";

    # ---- a write on the primary whose Parse and Describe come first, then a Flush (postgres.js,
    # asyncpg), and its Bind, Execute, Sync a while later: the transaction ends at the Sync's
    # ReadyForQuery, not when the Flush's answers leave the server idle, so the reads after it
    # wait for its own position, not the one before it
    ok near_again($w), "$mode: reads near again";
    $id = $next_id++;
    $q = $w->query("INSERT INTO rides (id, rider) VALUES ($id, 'flush-a')");
    ok !$q->{error}, "$mode: a write (the session reads on the primary for a while)" or diag explain $q->{error};
    my $idb = $next_id++;
    $w->send_msg('P', "\0INSERT INTO rides (id, rider) VALUES ($idb, 'flush-b')\0" . pack('n', 0));
    $w->send_msg('D', "S\0");
    $w->send_msg('H', '');
    my @got;
    while (my ($t) = $w->read_msg) { push @got, $t; last if $t eq 'n' || $t eq 'E' || $t eq 'Z' }
    is join('', @got), '1tn', "$mode: Parse, Describe, Flush of an INSERT on the primary: answered";
    sleep 0.3;
    $w->send_msg('B', "\0\0" . pack('nnn', 0, 0, 0));
    $w->send_msg('E', "\0" . pack('N', 0));
    $w->send_msg('S', '');
    $r = $w->read_result;
    ok !$r->{error}, "$mode: ... its Bind, Execute, Sync 0.3 s later write" or diag explain $r->{error};
    ok near_again($w), "$mode: reads near again once the standby has it";
    is one($w, "SELECT count(*) FROM rides WHERE id = $idb"), 1, "$mode: ... and see the row written after the Flush";

    # ---- a write pipelined behind a forwarded one: it follows it on the primary before the
    # primary has said where its WAL ends after the first, and counts as a write of its own
    # (the position on its way predates it): reads wait for the standby to have it
    ok near_again($w), "$mode: reads near again";
    my ($ida, $idc) = ($next_id++, $next_id++);
    $w->send_raw(qmsg("INSERT INTO rides (id, rider) VALUES ($ida, 'behind-a')")
               . qmsg("SELECT pg_sleep(0.3); INSERT INTO rides (id, rider) VALUES ($idc, 'behind-b')"));
    my @two = map { $w->read_result } 1 .. 2;
    is_deeply [map { $_->{error} ? $_->{error}{C} : 'ok' } @two], ['ok', 'ok'], "$mode: a write and one pipelined behind it";
    ok near_again($w), "$mode: reads near again once the standby has both";
    is one($w, "SELECT count(*) FROM rides WHERE id = $idc"), 1, "$mode: ... and see the second";

    # ---- pipelined Queries
    ok near_again($w), "$mode: reads near again";
    my @ids = map { $next_id++ } 1 .. 3;
    $w->send_raw(join '', map { my $s = "INSERT INTO rides (id, rider) VALUES ($_, 'pipe')\0"; 'Q' . pack('N', 4 + length $s) . $s } @ids);
    my @res = map { $w->read_result } @ids;
    is_deeply [map { $_->{error} ? $_->{error}{C} : $_->{tag} } @res], [('INSERT 0 1') x 3],
      "$mode: three pipelined INSERTs each get their answer";
    is primary_count("id IN (@{[join ',', @ids]})"), 3, "$mode: ... each once";

    # ---- blocks
    $w->query('BEGIN');
    is where($w), 'us-east', "$mode: a block runs on the primary";
    $id = $next_id++;
    $q = $w->query("INSERT INTO rides (id, rider) VALUES ($id, 'block')");
    ok !$q->{error}, "$mode: ... and writes there after its read" or diag explain $q->{error};
    is $w->query('COMMIT')->{tag}, 'COMMIT', "$mode: ... and commits";
    ok wait_until(sub { where($w) eq 'eu-west' }, timeout => 10), "$mode: reads near again after it";
    $w->query('BEGIN READ ONLY');
    is where($w), 'eu-west', "$mode: a READ ONLY block runs near";
    $q = $w->query("INSERT INTO rides (id, rider) VALUES ($next_id, 'ro')");
    is sqlstate($q->{error}), '25006', "$mode: a write in it gets 25006, as on the primary";
    $w->query('ROLLBACK');

    # ---- COPY FROM STDIN, through psql
    my @copy = map { $next_id++ } 1 .. 2;
    my ($rc, $out, $err) = psql($p->conninfo(dbname => 'movr', user => 'app', password => 'app-secret',
                                             options => '-c pgnear.location=53.35,-6.26'),
                                'COPY rides (id, rider) FROM STDIN', stdin => join('', map { "$_\tcopy\n" } @copy));
    is $rc, 0, "$mode: COPY FROM STDIN succeeds" or diag $err;
    is primary_count("rider = 'copy'"), 2, "$mode: ... its rows once";

    # ---- a cancel request during a long read held on the standby reaches the standby's backend
    # (a new session reads near at once: it has written nothing)
    my $c = login($p);
    $c->send_query('SELECT count(*) FROM pg_sleep(20), rides');
    ok backend_running($eu, 'SELECT count(*) FROM pg_sleep(20), rides'), "$mode: a long read runs on the standby";
    my $t0 = time;
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $c->{pid}, key => $c->{key});
    $q = $c->read_result;
    is sqlstate($q->{error}), '57014', "$mode: a cancel request stops it: 57014";
    cmp_ok time - $t0, '<', 5, sprintf("$mode: ... at once, well inside its 20 s (%.2f s)", time - $t0);
    # ... and during a forwarded write, the primary's backend
    $id = $next_id++;
    $c->send_query("INSERT INTO rides (id, rider) SELECT $id, 'cancel' FROM pg_sleep(20)");
    ok backend_running($us, "INSERT INTO rides (id, rider) SELECT $id, 'cancel'%"),
      "$mode: a write that sleeps is forwarded to the primary";
    $t0 = time;
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $c->{pid}, key => $c->{key});
    $q = $c->read_result;
    is sqlstate($q->{error}), '57014', "$mode: a cancel request stops it too: 57014";
    cmp_ok time - $t0, '<', 5, sprintf("$mode: ... at once, well inside its 20 s (%.2f s)", time - $t0);
    is primary_count("id = $id"), 0, "$mode: ... and it wrote nothing";
    $c->terminate;
    # ... and while the forwarded write waits for the primary's connection (max_db_connections = 1,
    # which a read-write block holds): answered 57014 at once, after what the standby answered of it
    # (ParseComplete, BindComplete), nothing written, not even once the connection is free
    {
        my $pw = proxy(pool_mode => $mode, max_db_connections => 1);
        ok wait_until(sub { grep { $_->{role} eq 'standby' } $pw->admin_rows('SHOW REGIONS') }, timeout => 30),
          "$mode, a full pool: the checks know the standby";
        my $c = login($pw);
        # (under session pooling a read-write session would hold the primary's one connection)
        my $rw = $mode eq 'transaction' ? login($pw, ' -c pgnear.target_session_attrs=read-write') : undef;
        my $blocker = login($pw, ' -c pgnear.target_session_attrs=read-write');
        ok !$blocker->query('BEGIN')->{error} && !$blocker->query('SELECT 1')->{error},
          "$mode, a full pool: a read-write block holds the primary's one connection";
        my $waiting = sub {
            wait_until(sub { grep { $_->{list} eq 'clients_waiting' && $_->{items} >= 1 } $pw->admin_rows('SHOW LISTS') },
                       timeout => 10, interval => 0.05);
        };
        my $id = $next_id++;
        $c->send_raw(batch(q{INSERT INTO rides (id, rider) VALUES ($1, 'waitcancel')}, $id));
        ok $waiting->(), "$mode, a full pool: the write refused near waits for the primary's connection";
        my $t0 = time;
        PgNearTest::Wire->cancel(host => '127.0.0.1', port => $pw->port, pid => $c->{pid}, key => $c->{key});
        local $c->{timeout} = 5;
        my @t;
        eval {
            while (my ($t, $body) = $c->read_msg) {
                push @t, $t eq 'E' ? 'E' . sqlstate(PgNearTest::Wire::parse_fields($body)) : $t;
                last if $t eq 'Z';
            }
        };
        is join(',', @t), '1,2,E57014,Z', "$mode, a full pool: a cancel request answers it 57014 after its ParseComplete, BindComplete";
        cmp_ok time - $t0, '<', 5, sprintf("$mode, a full pool: ... at once, not when the block ends (%.2f s)", time - $t0);
        # A read-write session's request waiting in the queue likewise (transaction pooling: it has
        # no connection of its own between transactions).
        if ($mode eq 'transaction') {
            $rw->send_query('SELECT 1');
            ok $waiting->(), "$mode, a full pool: a read-write session's Query waits for a connection";
            PgNearTest::Wire->cancel(host => '127.0.0.1', port => $pw->port, pid => $rw->{pid}, key => $rw->{key});
            local $rw->{timeout} = 5;
            $q = eval { $rw->read_result } // {};
            is sqlstate($q->{error}), '57014', "$mode, a full pool: a cancel request answers it 57014";
        }
        $blocker->terminate;
        is one($c, q{SELECT 'still here'}), 'still here', "$mode, a full pool: the session goes on after it";
        is primary_count("id = $id"), 0, "$mode, a full pool: ... the canceled write ran nowhere";
        $r = ext($c, [parse => '', q{INSERT INTO rides (id, rider) VALUES ($1, 'waitcancel')}], [bind => '', $id], ['exec']);
        ok !$r->{error}, "$mode, a full pool: the same write again succeeds" or diag explain $r->{error};
        is primary_count("id = $id"), 1, "$mode, a full pool: ... once";
        is one($rw, 'SELECT 2'), 2, "$mode, a full pool: the read-write session goes on too" if $rw;
        $_->terminate for grep { defined } $c, $rw;
        $pw->stop;
    }

    # ---- the standby's backend terminated while the read's answer is held (by another
    # session, or by itself as pg-native's test does): the client gets what the server sent,
    # its FATAL last, then the end, as directly (and as a server that ends a transaction-pooled
    # transaction does); the read does not run again elsewhere
    for my $how (qw(simple extended itself)) {
        my $c = login($p);
        my $sql = "SELECT 'held-$how', pg_sleep(5)";
        if ($how eq 'simple') {
            $c->send_query($sql);
        } elsif ($how eq 'extended') {    # a named statement, as node-postgres's prepared one
            $c->send_msg('P', "slow\0$sql\0" . pack('n', 0));
            $c->send_msg('B', "\0slow\0" . pack('nnn', 0, 0, 0));
            $c->send_msg('E', "\0" . pack('N', 0));
            $c->send_msg('S', '');
        } else {
            $c->send_query('SELECT pg_terminate_backend(pg_backend_pid())');
        }
        if ($how ne 'itself') {
            # (asleep: its Parse shows the text as active too, and a kill then answers no Bind)
            my $asleep = "FROM pg_stat_activity WHERE query LIKE 'SELECT ''held-$how''%' AND wait_event = 'PgSleep'";
            ok wait_until(sub { $eu->psql_admin("SELECT count(*) $asleep") eq '1' }, timeout => 10, interval => 0.02),
              "$mode, $how: a long read runs on the standby";
            $eu->psql_admin("SELECT pg_terminate_backend(pid) $asleep");
        }
        local $c->{timeout} = 4;
        my @t;
        eval {
            while (my ($t, $body) = $c->read_msg) {
                push @t, $t eq 'E' ? 'E' . sqlstate(PgNearTest::Wire::parse_fields($body)) : $t;
            }
            1;
        } or push @t, 'no EOF';
        my %direct = (simple => 'T,E57P01', extended => '1,2,E57P01', itself => 'T,D,E57P01');
        is join(',', @t), $direct{$how}, "$mode, $how: its backend terminated: the client gets the FATAL 57P01, then the end";
        $c->terminate;
    }

    # ---- pgnear's own question after a transaction (the position it wrote to, pgnear.fence) leaves
    # the server's unnamed statement alone: a client's unnamed statement bound again there works,
    # whether followed (transaction pooling, nearest) or not (a read-write session's, session pooling)
    for my $need (qw(nearest read-write)) {
        $c = login($p, " -c pgnear.target_session_attrs=$need -c pgnear.report_fence=on");
        $id = $next_id++;
        $r = ext($c, [parse => '', 'INSERT INTO rides (id, rider) VALUES ($1, $2)'], [bind => '', $id, 'unnamed'], ['exec']);
        ok !$r->{error}, "$mode, $need with pgnear.fence: an unnamed INSERT" or diag explain $r->{error};
        $id = $next_id++;
        $r = ext($c, [bind => '', $id, 'unnamed'], ['exec']);
        ok !$r->{error}, "$mode, $need with pgnear.fence: the unnamed statement bound again in the next transaction"
          or diag explain $r->{error};
        is primary_count("rider = 'unnamed' AND id = $id"), 1, "$mode, $need with pgnear.fence: ... once";
        $c->terminate;
    }

    # ---- pipelined extended-protocol batches and simple Queries, reads and writes mixed
    @ids = map { $next_id++ } 1 .. 4;
    $c = login($p);
    $c->send_raw(batch('SELECT $1::int + 1', 1) . batch(q{INSERT INTO rides (id, rider) VALUES ($1, 'xpipe')}, $ids[0])
               . batch('SELECT $1::int + 1', 2) . batch(q{INSERT INTO rides (id, rider) VALUES ($1, 'xpipe')}, $ids[1]));
    @res = map { $c->read_result } 1 .. 4;
    is_deeply [map { $_->{error} ? $_->{error}{C} : $_->{rows}[0] ? $_->{rows}[0][0] : $_->{tag} } @res],
      [2, 'INSERT 0 1', 3, 'INSERT 0 1'], "$mode: four pipelined extended batches, reads and writes: each answer once, in order";
    $c->terminate;
    $c = login($p);
    $c->send_raw(join '', qmsg('SELECT 1'), qmsg("INSERT INTO rides (id, rider) VALUES ($ids[2], 'xpipe')"),
                 qmsg('SELECT 2'), qmsg("INSERT INTO rides (id, rider) VALUES ($ids[3], 'xpipe')"));
    @res = map { $c->read_result } 1 .. 4;
    is_deeply [map { $_->{error} ? $_->{error}{C} : $_->{rows}[0] ? $_->{rows}[0][0] : $_->{tag} } @res],
      [1, 'INSERT 0 1', 2, 'INSERT 0 1'], "$mode: four pipelined Queries, reads and writes: each answer once, in order";
    is primary_count("rider = 'xpipe'"), 4, "$mode: ... every write once";
    $c->terminate;

    # ---- Parse/Describe/Flush, the answers read, then Bind/Execute/Sync of an INSERT (asyncpg);
    # and all of it sent at once
    for my $case (['', 'read'], ['described', 'read'], ['', 'pipelined']) {
        my ($stmt, $how) = @$case;
        $c = login($p);
        local $c->{timeout} = 5;
        $id = $next_id++;
        $c->send_msg('P', "$stmt\0INSERT INTO rides (id, rider) VALUES (\$1, 'flush')\0" . pack('nN', 1, 23));
        $c->send_msg('D', "S$stmt\0");
        $c->send_msg('H', '');
        my $got = $how eq 'read' ? join('', map { ($c->read_msg)[0] } 1 .. 3) : '';
        $c->send_msg('B', "\0$stmt\0" . pack('nn', 0, 1) . pack('N', length $id) . $id . pack('n', 0));
        $c->send_msg('E', "\0" . pack('N', 0));
        $c->send_msg('S', '');
        is $got . types_until_ready($c), '1tn2CZ', "$mode, statement '$stmt', $how: Parse/Describe/Flush, Bind/Execute/Sync of an INSERT";
        is primary_count("id = $id"), 1, "$mode, statement '$stmt', $how: ... once";
        $c->terminate;
    }

    # ---- more than 64 kB of answer from a read, then a write
    $c = login($p);
    $q = $c->query(q{SELECT repeat('x', 100000), current_setting('cluster_name') UNION ALL SELECT repeat('y', 70000), 'b'});
    is_deeply [map { length($_->[0]) . ':' . $_->[1] } @{ $q->{rows} }], ['100000:eu-west', '70000:b'],
      "$mode: a read answered with more than 64 kB: whole and right, from the standby";
    $id = $next_id++;
    $q = $c->query("INSERT INTO rides (id, rider) VALUES ($id, 'after-big')");
    ok !$q->{error}, "$mode: a write after it is forwarded" or diag explain $q->{error};
    is primary_count("id = $id"), 1, "$mode: ... once";
    $c->terminate;
    # ... a client message of more than 64 kB that writes, first of its transaction
    $c = login($p);
    $id = $next_id++;
    $q = $c->query("INSERT INTO rides (id, rider) VALUES ($id, 'big-' || length('" . ('z' x 70000) . "'))");
    ok !$q->{error}, "$mode: an INSERT longer than 64 kB succeeds" or diag explain $q->{error};
    is primary_count("id = $id AND rider = 'big-70000'"), 1, "$mode: ... once";
    $c->terminate;

    # ---- SELECT ... FOR UPDATE in autocommit
    $c = login($p);
    is one($c, qq{SELECT id || ':' || current_setting('cluster_name') FROM rides WHERE id = $first_id FOR UPDATE}),
      "$first_id:us-east",
      "$mode: SELECT ... FOR UPDATE outside a block is forwarded";
    $c->terminate;

    # ---- a session whose first statement is a write
    {
        my $c = login($p);
        $id = $next_id++;
        $q = $c->query("INSERT INTO rides (id, rider) VALUES ($id, 'first')");
        ok !$q->{error}, "$mode: a write as the session's first statement is forwarded" or diag explain $q->{error};
        is primary_count("id = $id"), 1, "$mode: ... once";
        $c->terminate;
        # and one sent with the Terminate in one packet, the client gone: it runs all the same
        $c = login($p);
        $id = $next_id++;
        my $sql = "INSERT INTO rides (id, rider) VALUES ($id, 'then gone')";
        $c->send_raw('Q' . pack('N', 4 + length($sql) + 1) . $sql . "\0" . 'X' . pack('N', 4));
        ok wait_until(sub { primary_count("id = $id") eq '1' }, timeout => 10),
          "$mode: a write sent with the Terminate is forwarded and runs";
        close $c->socket;
    }

    # ---- state that lives on one server: on the primary, and the session stays there
    my @pins = (["CREATE TEMP TABLE t_here (x int)", 'a temporary object'], ['BEGIN; LISTEN here; COMMIT', 'LISTEN'],
                ['SELECT pg_advisory_lock(37)', 'a session advisory lock']);
    # (Under session pooling a SET is carried between the session's connections instead: below.)
    push @pins, ['SET search_path = public', 'a session-level SET'] if $mode eq 'transaction';
    # ... except a custom one, which no query reads back.
    push @pins, [q{SELECT set_config('app.tenant', 'acme', false)}, 'a session-level custom setting'] if $mode eq 'session';
    for my $c (@pins) {
        my ($sql, $why) = @$c;
        my $c1 = login($p);
        my $c2 = login($p);
        $q = $c1->query($sql);
        ok !$q->{error}, "$mode, $why: '$sql' succeeds" or diag explain $q->{error};
        is where($c1), 'us-east', "$mode, $why: ... and the session stays on the primary";
        ok((grep { ($_->{pinned} // '') =~ /\Q$why\E/ } $p->admin_rows('SHOW CLIENTS')), "$mode, $why: SHOW CLIENTS says why");
        $id = $next_id++;
        $q = $c1->query("INSERT INTO rides (id, rider) VALUES ($id, 'pinned')");
        is $q->{error} ? $q->{error}{C} : $q->{tag} . ':' . one($c1, "SELECT count(*) FROM rides WHERE id = $id"),
          'INSERT 0 1:1', "$mode, $why: its writes and reads work";
        is where($c2), 'eu-west', "$mode, $why: another session still reads near";
        $c1->terminate;
        $c2->terminate;
    }
    # A notification that comes while pgnear asks the primary where its WAL ends, after
    # each of the listener's transactions, is the client's (it was dropped with the answer)
    {
        my $c = login($p);
        $q = $c->query('LISTEN burst');
        my $notifier = fork // die "fork: $!";
        if ($notifier == 0) {
            eval { $us->psql_admin([map { "NOTIFY burst, '$_'" } 1 .. 300], dbname => 'movr') };
            POSIX::_exit($@ ? 1 : 0);
        }
        my %seen;
        my $collect = sub { $seen{ $_->{payload} } = 1 for @{ $_[0]{notifications} } };
        while (waitpid($notifier, POSIX::WNOHANG()) == 0) { $collect->($c->query('SELECT 1')) }
        is $? >> 8, 0, "$mode: another session sends 300 notifications while the listener runs its transactions";
        wait_until(sub { $collect->($c->query('SELECT 1')); keys %seen == 300 }, timeout => 5, interval => 0.1);
        is scalar(keys %seen), 300, "$mode: ... and the listener gets every one";
        $c->terminate;
    }

    session_state_sync($p, \$next_id) if $mode eq 'session';

    # ---- default_transaction_read_only = on: the primary's 25006, once
    {
        my $c = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
        my $r = $c->startup(user => 'reader', database => 'movr', password => 'reader-secret',
                            params => { options => '-c pgnear.location=53.35,-6.26' });
        ok $r->{ok}, "$mode: a role with default_transaction_read_only = on logs in" or diag explain $r;
        my $failed = stat_value($p, 'nearest_forward_failed');
        $q = $c->query("INSERT INTO rides (id, rider) VALUES ($next_id, 'ro-role')");
        is sqlstate($q->{error}), '25006', "$mode: its write gets 25006";
        ok wait_until(sub { stat_value($p, 'nearest_forward_failed') == $failed + 1 }, timeout => 5),
          "$mode: ... from the primary, forwarded once and counted as failed there";
        is one($c, 'SELECT 1'), 1, "$mode: ... and the session goes on";
        $c->query('BEGIN');
        $q = $c->query("INSERT INTO rides (id, rider) VALUES ($next_id, 'ro-role')");
        is sqlstate($q->{error}), '25006', "$mode: ... and in a block, on the primary: 25006";
        $c->query('ROLLBACK');
        $c->terminate;
        $c = login($p);
        $c->query('SET default_transaction_read_only = on');
        is where($c), $mode eq 'session' ? 'eu-west' : 'us-east',
          "$mode: a session-level SET default_transaction_read_only = on runs "
          . ($mode eq 'session' ? 'near (carried to the primary with the write)' : 'on the primary (it pins)');
        $q = $c->query("INSERT INTO rides (id, rider) VALUES ($next_id, 'ro-set')");
        is sqlstate($q->{error}), '25006', "$mode: ... and a write after it gets 25006";
        is primary_count("id = $next_id"), 0, "$mode: ... writing nothing";
        $c->terminate;
    }

    # ---- serializable transactions, which a standby refuses (0A000): on the primary
    {
        my $c = login($p);
        $q = $c->query('BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE');
        ok !$q->{error}, "$mode: BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY succeeds" or diag explain $q->{error};
        is where($c), 'us-east', "$mode: ... on the primary";
        $c->query('COMMIT');
        $c->terminate;
        $c = login($p, ' -c default_transaction_isolation=serializable');
        is where($c), 'us-east', "$mode: with default_transaction_isolation = serializable a read runs, on the primary";
        $c->query('BEGIN READ ONLY');
        is where($c), 'us-east', "$mode: ... and so does a READ ONLY block after it";
        $c->query('COMMIT');
        $c->terminate;
    }

    # ---- clients that leave right after a write, their Terminate sent as its answer came:
    # the primary's connection, still answering pgnear's question of where its WAL ends,
    # goes back to the pool once it has (it was closed, and each short session that wrote
    # logged in on the primary anew: psycopg_pool's test_grow, 25 ms more a transaction)
    {
        my @pids;
        for (1 .. 5) {
            my $c = login($p);
            $id = $next_id++;
            push @pids, one($c, "INSERT INTO rides (id, rider) VALUES ($id, 'left') RETURNING pg_backend_pid()");
            $c->terminate;
        }
        my %idle;
        ok wait_until(sub {
            %idle = map { $_->{pid} => 1 } grep { $_->{state} eq 'idle' && $_->{safe_point} eq 't' } $p->admin_rows('SHOW SERVERS');
            !grep { !$idle{$_} } @pids
        }, timeout => 10), "$mode: 5 sessions that leave right after their write: their primary's connections go back to the pool"
          or diag explain [\@pids, $p->admin_rows('SHOW SERVERS')];
    }

    cmp_ok stat_value($p, 'nearest_forwarded'), '>=', 8, "$mode: SHOW STATS counts the forwarded transactions";
    cmp_ok stat_value($p, 'nearest_forward_failed'), '>=', 1, "$mode: ... and the one that failed on the primary too";
    cmp_ok stat_value($p, 'nearest_near'), '>=', 3, "$mode: ... and those run near";
    my (undef, $metrics) = run_cmd(['curl', '-s', "http://127.0.0.1:$mport/metrics"], timeout => 10);
    is_deeply [map { $metrics =~ /^pgnear_nearest_transactions_total\{ran="$_"\} (\d+)$/m ? $1 : 'none' } qw(near forwarded forward_failed)],
              [map { stat_value($p, "nearest_$_") } qw(near forwarded forward_failed)],
      "$mode: /metrics has the same counts in pgnear_nearest_transactions_total by ran";
    $w->terminate;

    # ---- readers and writers that read back each write
    my $first = $next_id;
    $next_id += 1000;
    my @kids;
    for my $k (0 .. 5) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my ($fail, $stale) = (0, 0);
            my $c = eval { login($p) } or POSIX::_exit(99);
            for my $i (0 .. 19) {
                if ($k < 3) {
                    my $n = $first + $k * 100 + $i;
                    my $ins = $c->query("INSERT INTO rides (id, rider) VALUES ($n, 'load')");
                    $fail++ if $ins->{error};
                    my $back = $c->query("SELECT count(*) FROM rides WHERE id = $n");
                    $fail++ if $back->{error};
                    $stale++ if !$back->{error} && $back->{rows}[0][0] != 1;
                } else {
                    $fail++ if $c->query('SELECT count(*) FROM rides')->{error};
                }
            }
            $c->terminate;
            POSIX::_exit($fail * 10 + $stale > 98 ? 98 : $fail * 10 + $stale);
        }
        push @kids, $pid;
    }
    my @codes = map { waitpid($_, 0); $? >> 8 } @kids;
    is_deeply \@codes, [(0) x 6], "$mode: 3 writers that read back each write and 3 readers: no failure, no stale read";
    is primary_count("rider = 'load'"), 60, "$mode: ... every write once";

    # ---- other people's drivers: node-postgres (named statements) and psycopg 3 (prepared)
    for my $d (['node-postgres', 'node', "$root/tests/node/nearest_client.js"],
               ['psycopg', $python, "$root/tests/clients/nearest_client.py"]) {
        my ($name, @cmd) = @$d;
        my $first = $next_id;
        $next_id += 100;
        my ($rc, $out, $err) = run_cmd([@cmd, '--port', $p->port, '--clients', 2, '--rounds', 8,
                                        '--first', $first], timeout => 60);
        my $res = eval { JSON::PP::decode_json($out) } // { fatal => "$out $err" };
        is_deeply [@$res{qw(fatal writes stale failure_count)}], [undef, 16, 0, 0],
          "$mode, $name: 16 writes, each read back at once, no stale read, no failure"
          or diag explain $res;
        is primary_count("id >= $first AND id < $first + 16"), 16, "$mode, $name: ... each write once";
        cmp_ok $res->{near_reads}, '>', 0, "$mode, $name: ... and some reads near";
    }

    # ---- the primary down: a write fails as a read-write session's would; reads stay near
    {
        my $c = login($p);
        ok near_again($c), "$mode: reads near";
        $us->stop(mode => 'immediate');
        my $t0 = time;
        $q = $c->query("INSERT INTO rides (id, rider) VALUES ($next_id, 'down')");
        is sqlstate($q->{error}), '08001', "$mode, the primary down: a write gets 08001"
          or diag explain $q->{error};
        cmp_ok time - $t0, '>=', 0.9, "$mode, the primary down: ... after failover_wait";
        my $r = eval { login($p) };
        is $r ? where($r) : $@, 'eu-west', "$mode, the primary down: reads still run near";
        $r->terminate if $r;
        $us->start;
        $eu->wait_streaming;
    }
    $p->stop;
}

# ---- no role known (the checks cannot log in, as with the shipped file's server_conninfo
# before it is filled in): a caller by us-east runs each transaction there, its reads after
# a write too, with no error, and under session pooling on the one connection it logged in on
for my $mode (qw(transaction session)) {
    my $p = proxy(pool_mode => $mode, server_conninfo => 'user=app password=wrong');
    ok wait_until(sub { grep { $_->{region} eq 'us-east' && $_->{up} eq 't' } $p->admin_rows('SHOW REGIONS') },
                  timeout => 30), "$mode, no role known: the checks find us-east up";
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { options => '-c pgnear.location=39.04,-77.49' });
    ok $r->{ok}, "$mode, no role known: a caller by us-east logs in";
    my $id = $next_id++;
    my $q = $w->query("INSERT INTO rides (id, rider) VALUES ($id, 'unknown')");
    ok !$q->{error}, "$mode, no role known: a write succeeds" or diag explain $q->{error};
    my @seen = map { one($w, "SELECT pg_backend_pid() || ':' || count(*) FROM rides WHERE id = $id") } 1 .. 5;
    is_deeply [map { /:(\d+)$/ ? $1 : $_ } @seen], [(1) x 5], "$mode, no role known: reads after it see it";
    is scalar(keys %{ { map { /^(\d+):/ ? ($1 => 1) : ($_ => 1) } @seen } }), 1,
      "$mode, no role known: ... on one server connection" if $mode eq 'session';
    $w->terminate;
    # a caller by Dublin logs in on eu-west, whose login says it is a standby: its write,
    # refused there, runs on us-east (not on eu-west again, for its 25006 to reach the client)
    my $d = login($p);
    $id = $next_id++;
    $q = $d->query("INSERT INTO rides (id, rider) VALUES ($id, 'unknown, Dublin')");
    ok !$q->{error}, "$mode, no role known: a Dublin caller's write succeeds" or diag explain $q->{error};
    is one($d, "SELECT current_setting('cluster_name') || ':' || count(*) FROM rides WHERE id = $id"),
      'us-east:1', "$mode, no role known: ... and its read after it sees it, on the primary";
    $d->terminate;
    $p->stop;
}

# ---- where transactions cannot be placed one by one: the session runs as read-write
{
    my $p = proxy(pool_mode => 'session', max_prepared_statements => 0);
    ok wait_until(sub { grep { $_->{region} eq 'eu-west' && $_->{role} eq 'standby' } $p->admin_rows('SHOW REGIONS') },
                  timeout => 30), 'no prepared statements followed: the checks know eu-west as a standby';
    my $w = login($p);
    is where($w), 'us-east', '... a session that needs nearest runs on the primary';
    is_deeply [legs($p)], ['', '', ''], '... SHOW CLIENTS has no reads_at, writes_at, forwarded for it';
    my $q = $w->query("INSERT INTO rides (id, rider) VALUES ($next_id, 'session')");
    ok !$q->{error}, '... where its writes succeed' or diag explain $q->{error};
    like $p->log_contents, qr/needs nearest, placed as read-write: max_prepared_statements = 0/,
      '... and the log says why';
    $w->terminate;
    $p->stop;
}
# A walsender (replication=database, as postgres.js's subscribe logs in) is no pooled
# session: its replication commands run where it logs in, so on a primary
{
    my $p = proxy(pool_mode => 'transaction');
    ok wait_until(sub { grep { $_->{region} eq 'eu-west' && $_->{role} eq 'standby' } $p->admin_rows('SHOW REGIONS') },
                  timeout => 30), 'a walsender: the checks know eu-west as a standby';
    $us->psql_admin('ALTER ROLE app REPLICATION');
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { replication => 'database', options => '-c pgnear.location=53.35,-6.26' });
    ok $r->{ok}, '... logs in' or diag explain $r->{error};
    is $r->{ok} ? where($w) : 'no login', 'us-east', '... on the primary, where a logical slot can be made';
    like $p->log_contents, qr/needs nearest, placed as read-write: its server connection cannot be pooled/,
      '... and the log says why';
    $w->terminate;
    $us->psql_admin('ALTER ROLE app NOREPLICATION');
    $p->stop;
}

done_testing;
