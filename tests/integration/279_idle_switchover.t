# A planned switchover as Patroni makes one, without Patroni: a primary in
# us-east and its streaming standby in eu-west behind pgnear; the primary's
# shutdown begins and is held open (pg_ctl stop -m smart, a direct session
# left: every new login gets 57P03 "the database system is shutting down")
# while its backends are ended (each sends its client 57P01 "terminating
# connection due to administrator command" and closes), as in a fast
# stop's first moments; then it stops and the standby is promoted.  Per pool mode (session, transaction) and
# worker count (and once with io_backend = epoll):
#   - sessions idle at the stop (Boston and Dublin read-write, Dublin
#     nearest, one that only ran extended-protocol statements, one with
#     pgnear.report_fence=on, whose server side pgnear reads) write on
#     eu-west at their next transaction with no error: pgnear holds them
#     while no primary is up and moves them as DRAIN does;
#   - one whose transaction was sent while no primary was up (after the
#     stop, before the promotion) is held, not failed, and writes on eu-west;
#     so is one whose transaction came while its server's 57P01 was still
#     unread (pgnear stopped by SIGSTOP while the backends were ended);
#   - a session inside a transaction at the stop gets an error, and its
#     write is nowhere;
#   - under pool_mode = session, a session whose state pgnear cannot carry
#     without its old server (a temporary table; a SET) gets the server's
#     57P01 as before, and so does one whose backend alone was ended
#     (pg_terminate_backend, the server still up), as it would directly;
#   - the old primary's shutdown is held open (pg_ctl stop -m smart with a
#     direct session left: it refuses every new login with 57P03 "the
#     database system is shutting down") and its backends ended, as a
#     fast shutdown's first moments are, with eu-west's replay paused: a
#     nearest session's write sent then, which must see its own last
#     write that only us-east has, is fetched a connection there, refused
#     57P03, and waits (failover_wait) for a primary: no error, it writes
#     on eu-west once eu-west is promoted;
#   - a nearest write that began on eu-west while it was a standby and was
#     refused there (25006) as its promotion ended, the promotion's
#     ParameterStatus (in_hot_standby off) before its ReadyForQuery, runs
#     again on a primary: the server's role is not a setting the session
#     changed (which would keep it where it is);
#   - every write acknowledged is on eu-west, once;
#   - before all that, a session idle while the primary restarts in place
#     (pg_ctl restart -m fast) writes there again with no error.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;
use PgNearNearest qw(one where ext_statement sync_message);

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pg_basebackup);

my $BOSTON = '-c pgnear.location=42.36,-71.06';
my $DUBLIN = '-c pgnear.location=53.35,-6.26';

sub login {
    my ($p, $where, %o) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
    my $opts = join ' ', $where, $o{options} // ();
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { options => $opts });
    die 'login failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n" unless $r->{ok};
    return $w;
}

sub rw { (options => '-c pgnear.target_session_attrs=read-write') }

# An INSERT's row (where it ran), or its error as "SQLSTATE message" (or how the connection failed).
sub insert {
    my ($w, $what) = @_;
    my $v = eval { one($w, qq{INSERT INTO writes (what) VALUES ('$what') RETURNING written_on}) };
    return $@ ? "died: $@" : $v;
}

# An INSERT through the extended protocol (Parse/Bind/Execute/Sync, unnamed): its row's first column.
sub ext_insert {
    my ($w, $what) = @_;
    my $r = eval {
        $w->send_raw(ext_statement(q{INSERT INTO writes (what) VALUES ($1) RETURNING written_on}, $what)
                   . sync_message());
        $w->read_result;
    };
    return "died: $@" unless $r;
    return $r->{error} ? "$r->{error}{C} $r->{error}{M}" : $r->{rows}[0][0];
}

# The shipped io_backend (auto) is io_uring on a kernel that has it; epoll once too.
my @CASES = ([session => 2], [transaction => 2], [session => 1], [transaction => 1], [session => 2, 'epoll'],
             [session => 2, 'io_uring']);
@CASES = grep { $_->[1] == $ENV{PGNEAR_TEST_WORKERS} } @CASES if $ENV{PGNEAR_TEST_ONLY_WORKERS};

for my $case (@CASES) {
    my ($mode, $workers, $io) = @$case;
    my $tag = "pool_mode = $mode, workers = $workers" . ($io ? ", io_backend = $io" : '');

    my $us = PgNearTest::Cluster->new(name => 'us-east');
    $us->psql_admin(<<'SQL', dbname => 'movr');
CREATE TABLE writes (id serial PRIMARY KEY, what text NOT NULL,
                     written_on text NOT NULL DEFAULT current_setting('cluster_name'));
GRANT ALL ON writes TO app;
GRANT ALL ON SEQUENCE writes_id_seq TO app;
GRANT pg_signal_backend TO app;
CREATE FUNCTION slept_write(what text) RETURNS text LANGUAGE sql AS $$
    SELECT pg_sleep(2);
    INSERT INTO writes (what) VALUES (what) RETURNING written_on;
$$;
SQL
    my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
    my $auth_dir = tmpdir(name => 'idle-switchover-auth');
    write_file("$auth_dir/userlist.txt",
        qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
      . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});
    my $p = PgNearTest::Proxy->new(
        regions  => [{ name => 'us-east', location => '39.04, -77.49', hosts => [$us] },
                     { name => 'eu-west', location => '53.35, -6.26', hosts => [$eu] }],
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", admin_users => 'admin',
                      server_tls => 'disable', health_check_interval => '250ms', workers => $workers,
                      pool_mode => $mode, failover_wait => '20s', move_timeout => '20s',
                      nearest_read_functions => 'slept_write',
                      ($io ? (io_backend => $io) : ()) });
    ok $p->wait_for_log(qr/region eu-west is up: it is a standby/, timeout => 20),
      "$tag: pgnear knows eu-west is a standby";

    # A restart of the primary in place while a session idles: it writes there again, no error.
    my $again = login($p, $BOSTON, rw());
    is insert($again, 'restart before'), 'us-east', "$tag: a session writes on us-east";
    $us->restart(mode => 'fast');
    is insert($again, 'restart again'), 'us-east',
      "$tag: ... idle while us-east restarted (pg_ctl restart -m fast), it writes there again with no error";
    $again->terminate;

    my %s = (boston => login($p, $BOSTON, rw()), dublin => login($p, $DUBLIN, rw()),
             near => login($p, $DUBLIN, options => '-c pgnear.target_session_attrs=nearest'),
             ext => login($p, $BOSTON, rw()), gap => login($p, $BOSTON, rw()),
             fenced => login($p, $BOSTON, options => '-c pgnear.target_session_attrs=read-write -c pgnear.report_fence=on'),
             held => login($p, $DUBLIN, options => '-c pgnear.target_session_attrs=nearest'),
             unread => login($p, $BOSTON, rw()), answered => login($p, $BOSTON, rw()),
             answered_near => login($p, $DUBLIN, options => '-c pgnear.target_session_attrs=nearest'),
             unread_near => login($p, $DUBLIN, options => '-c pgnear.target_session_attrs=nearest'),
             slept_near => login($p, $DUBLIN, options => '-c pgnear.target_session_attrs=nearest'));
    # eu-west replays nothing written from here on until the switchover: a
    # nearest session's next transaction must see its own write, which only
    # us-east has.
    $eu->pause_replay;
    my $open = login($p, $BOSTON, rw());
    for my $n (sort keys %s) {
        is($n eq 'ext' ? ext_insert($s{$n}, "$n before") : insert($s{$n}, "$n before"), 'us-east',
           "$tag: $n writes on us-east before");
    }
    is one($open, 'BEGIN'), undef, "$tag: a session opens a transaction";
    is insert($open, 'open transaction'), 'us-east', "$tag: ... and writes in it on us-east";
    my ($temp, $set);
    if ($mode eq 'session') {
        $temp = login($p, $BOSTON, rw());
        is one($temp, 'CREATE TEMP TABLE t (x int)'), undef, "$tag: a session makes a temporary table";
        $set = login($p, $BOSTON, rw());
        is one($set, q{SET application_name = 'kept'}), undef, "$tag: a session SETs application_name";
        my $killed = login($p, $BOSTON, rw());
        my $pid = one($killed, 'SELECT pg_backend_pid()');
        my $off = $p->log_size;
        is $us->psql_admin("SELECT pg_terminate_backend($pid)"), 't', "$tag: an idle session's backend is terminated";
        ok $p->wait_for_log(qr/not moved from region us-east to region us-east: its server ended its backend and still takes logins/,
                            offset => $off, timeout => 20),
          "$tag: ... pgnear does not move it: its server still takes logins";
        # What an idle client reads: the FATAL, then the end.
        my $r = eval { $killed->read_result } // { error => { C => 'died', M => $@ } };
        is "$r->{error}{C} $r->{error}{M}", '57P01 terminating connection due to administrator command',
          "$tag: ... and its client gets the server's 57P01, as directly";
    }

    # The switchover: the primary's shutdown begins while the sessions are
    # idle, held open by a direct session (a smart stop waits for it): new
    # logins get 57P03 while the backends are ended as a fast stop ends them.
    my $held_off = $p->log_size;
    my $holder = PgNearTest::Wire->connect(host => '127.0.0.1', port => $us->port, timeout => 30);
    ok $holder->startup(user => 'app', database => 'movr', password => 'app-secret')->{ok},
      "$tag: a direct session to us-east";
    # Two sessions' statements wait for a lock the direct session holds, let
    # go while pgnear is stopped (below): each answer (its ReadyForQuery) and
    # the 57P01 after it then reach pgnear in one read, the session idle
    # after the first, so it moves (session pooling) or its connection goes
    # (transaction pooling).  The nearest one's is a write, run again on
    # us-east: pgnear asks where us-east's WAL is after it, and the 57P01
    # is the answer.
    is one($holder, 'SELECT pg_advisory_lock(4242)'), '', "$tag: the direct session takes an advisory lock";
    my %waits = (answered => 'SELECT pg_advisory_xact_lock(4242)',
                 answered_near => q{INSERT INTO writes (what) SELECT 'answered_near waited' }
                                . q{FROM pg_advisory_xact_lock(4242) RETURNING written_on});
    $s{$_}->send_query($waits{$_}) for sort keys %waits;
    my $waiting = sub {
        my $q = join ', ', map { "'" . ($_ =~ s/'/''/gr) . "'" } sort values %waits;
        one($holder, qq{SELECT string_agg(state, ',') FROM pg_stat_activity WHERE query IN ($q)}) // '';
    };
    ok wait_until(sub { $waiting->() eq 'active,active' }, timeout => 10, interval => 0.02),
      "$tag: two sessions' statements wait for it";
    my ($rc, $out, $err) = $us->_pg_ctl('-m', 'smart', '-W', '-s', 'stop');
    is $rc, 0, "$tag: us-east's smart shutdown begins (pg_ctl stop -m smart -W)";
    ok wait_until(sub {
        my $w = eval { PgNearTest::Wire->connect(host => '127.0.0.1', port => $us->port, timeout => 5) } or return 0;
        my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
        ($r->{error}{C} // '') eq '57P03';
    }, timeout => 20), "$tag: ... us-east refuses new logins with 57P03";
    # pgnear is stopped (SIGSTOP) while one idle session sends its next write and then the backends
    # end: the write and that session's server's 57P01 wait for pgnear together, the write first, and
    # the end must be read first all the same, so that the session moves before the write goes to
    # the ended server.
    kill 'STOP', $p->{pid};
    ok wait_until(sub { !grep { (eval { slurp_file($_) } // '') !~ /^\d+ \(.*\) [Tt] / } glob("/proc/$p->{pid}/task/*/stat") },
                  timeout => 10, interval => 0.01), "$tag: pgnear stopped (SIGSTOP), each of its threads";
    is one($holder, 'SELECT pg_advisory_unlock(4242)'), 't', "$tag: ... the lock the waiting statement waits for is let go";
    ok wait_until(sub { $waiting->() eq 'idle,idle' }, timeout => 10, interval => 0.05),
      "$tag: ... and those statements are answered while pgnear is stopped";
    eval { $s{$_}->send_query(qq{INSERT INTO writes (what) VALUES ('$_ after') RETURNING written_on}) }
      for qw(unread unread_near);
    is one($holder, q{SELECT count(pg_terminate_backend(pid)) > 0 FROM pg_stat_activity
                      WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'
                        AND usename <> 'postgres'}), 't',
      "$tag: ... and every other backend of us-east is ended (57P01), as a fast stop ends them";
    # A fast stop ends a backend still logging in as the stop began as well (its
    # user not yet known to pg_stat_activity, so the query above missed it):
    # ended here too, each round, until none is left.
    ok wait_until(sub {
        one($holder, q{SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                       WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'
                         AND usename IS DISTINCT FROM 'postgres'}) == 0
    }, timeout => 20), "$tag: ... gone";
    kill 'CONT', $p->{pid};
    my $slept = eval { $s{answered}->read_result } // { error => { C => 'died', M => $@ } };
    is($slept->{error} ? "$slept->{error}{C} $slept->{error}{M}" : 'answered', 'answered',
       "$tag: answered: the statement's answer, read with its server's 57P01 after it, reaches the client alone");
    $slept = eval { $s{answered_near}->read_result } // { error => { C => 'died', M => $@ } };
    is($slept->{error} ? "$slept->{error}{C} $slept->{error}{M}" : $slept->{rows}[0][0], 'us-east',
       "$tag: answered_near: the write's answer, read with its server's 57P01 after it, reaches the client alone");
    # A nearest write now: its connection must be fetched from us-east, which refuses logins.
    eval { $s{held}->send_query(q{INSERT INTO writes (what) VALUES ('held after') RETURNING written_on}) };
    # A transaction sent while no primary is up: held until there is one.
    eval { $s{gap}->send_query(q{INSERT INTO writes (what) VALUES ('gap after') RETURNING written_on}) };
    sleep 0.5;
    $holder->terminate;
    ok wait_until(sub { !$us->is_running }, timeout => 30), "$tag: us-east's shutdown ends";
    $eu->resume_replay;
    # A nearest write its text does not show (a function that nearest_read_functions vouches for,
    # wrongly), which begins on eu-west while it is a standby and is refused there once the
    # promotion is done (its transaction began read-only): the 25006, then the promotion's
    # ParameterStatus (in_hot_standby off), then the ReadyForQuery.  The server's new role is not
    # a setting of the session's: the write runs again on a primary, as any refused one.
    my $sleeper = q{SELECT slept_write('slept_near after')};
    eval { $s{slept_near}->send_query($sleeper) };
    ok wait_until(sub {
        $eu->psql_admin(qq{SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = \$\$$sleeper\$\$}) == 1
    }, timeout => 20, interval => 0.05), "$tag: slept_near: a nearest write sleeps on the eu-west standby before it writes";
    $eu->promote;
    ok !$eu->is_in_recovery, "$tag: eu-west promoted";

    my $r = eval { $s{gap}->read_result } // { error => { C => 'died', M => $@ } };
    is($r->{error} ? "$r->{error}{C} $r->{error}{M}" : $r->{rows}[0][0], 'eu-west',
       "$tag: the transaction sent while no primary was up waited and wrote on eu-west");
    $r = eval { $s{slept_near}->read_result } // { error => { C => 'died', M => $@ } };
    is($r->{error} ? "$r->{error}{C} $r->{error}{M}" : $r->{rows}[0][0], 'eu-west',
       "$tag: slept_near: the write refused by eu-west as its promotion ended (its in_hot_standby off after the 25006) ran again there");
    for my $n (qw(unread unread_near)) {
        $r = eval { $s{$n}->read_result } // { error => { C => 'died', M => $@ } };
        is($r->{error} ? "$r->{error}{C} $r->{error}{M}" : $r->{rows}[0][0], 'eu-west',
           "$tag: $n: the write sent while its server's 57P01 waited unread (pgnear stopped) waited and wrote on eu-west");
    }
    $r = eval { $s{held}->read_result } // { error => { C => 'died', M => $@ } };
    is($r->{error} ? "$r->{error}{C} $r->{error}{M}" . ($r->{error}{D} ? " ($r->{error}{D})" : '')
                   : $r->{rows}[0][0], 'eu-west',
       "$tag: the nearest write sent while us-east refused logins (57P03) waited and wrote on eu-west");
    # By the first to meet the refusal: a login (57P03) or a health check (libpq's FATAL).
    ok $p->wait_for_log(qr/of region us-east is down: (?:server refused the connection: 57P03|FATAL:\s+the database system is shutting down)/,
                        offset => $held_off, timeout => 5),
      "$tag: ... us-east, refusing logins as it shut down, was marked down at once (not tried again until its checks pass)";
    for my $n (sort grep { !/^(gap|held|unread|unread_near|slept_near)$/ } keys %s) {
        is($n eq 'ext' ? ext_insert($s{$n}, "$n after") : insert($s{$n}, "$n after"), 'eu-west',
           "$tag: $n, idle at the stop, writes on eu-west with no error");
    }
    is one($s{near}, q{SELECT current_setting('cluster_name')}), 'eu-west',
      "$tag: the nearest session reads on eu-west (the only server)";
    like insert($open, 'open transaction 2'), qr/^(57P01|08006) /,
      "$tag: the session inside a transaction at the stop gets an error";
    if ($mode eq 'session') {
        like insert($temp, 'temp after'), qr/^57P01 terminating connection due to administrator command/,
          "$tag: the session with a temporary table gets the server's 57P01, as before";
        like insert($set, 'set after'), qr/^57P01 terminating connection due to administrator command/,
          "$tag: the session that SET a setting gets the server's 57P01 (its state is not known without its server)";
    }

    my @want = sort map { "$_ after" } keys %s;
    is $eu->psql_admin(q{SELECT string_agg(what || '@' || written_on, ',' ORDER BY what) FROM writes WHERE what LIKE '% after'},
                       dbname => 'movr'),
      join(',', map { "$_\@eu-west" } sort @want), "$tag: every write after the stop is on eu-west, once";
    is $eu->psql_admin(q{SELECT count(*) FROM writes WHERE what LIKE 'open%'}, dbname => 'movr'), '0',
      "$tag: the open transaction's write is nowhere";

    $_->terminate for values %s;
    $p->stop;
    $eu->stop;
}

done_testing;
