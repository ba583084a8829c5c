# target_session_attrs = nearest and the admin console while a write is
# held on the standby (a pipelined extended-protocol batch that reads
# for a second, then inserts: the standby answers 25006 at its end, and
# the write runs again on the primary; a Query of the two statements
# starts on the primary).  PAUSE issued meanwhile: the forward waits for the pause as
# any other transaction does (PAUSE returns with the write not yet run
# and its client unanswered), and after RESUME the client gets the
# primary's answer and the row is there once; never the standby's 25006.
# DRAIN of the standby's region meanwhile: the write runs on the primary,
# once, and its client gets its answer before the session ends (57P01).
# The same batch on a direct connection gives the answer compared with.
# Under pool_mode = transaction and session.  Under session pooling, a
# cancel request that comes while the session's state is carried to the
# primary's connection for such a write cancels it (57014), and the write
# runs nowhere (eu-west behind bench/delay_relay.pl, 400 ms each way).  A
# function that a MIGRATE UP made, called at once through pgnear, runs on
# the primary (the catalogs of routines are read again after a run).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IO::Select;
use POSIX ();
use Time::HiRes qw(time sleep);
use PgNearTest;
use PgNearNearest;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pg_basebackup);

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin('CREATE TABLE orders (id int)', dbname => 'movr');
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
$eu->wait_streaming;

my $auth_dir = tmpdir(name => 'admin-auth');
write_file("$auth_dir/userlist.txt",
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n"app" "} . $us->scram_verifier('app') . qq{"\n});
my $WORKERS = $ENV{PGNEAR_TEST_WORKERS} // 2;

sub proxy {
    my ($mode) = @_;
    return PgNearTest::Proxy->new(
        regions  => nearest_regions($us, $eu),
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", admin_users => 'admin',
                      server_tls => 'disable', health_check_interval => '250ms', workers => $WORKERS,
                      pool_mode => $mode, target_session_attrs => 'nearest', pause_timeout => '20s' });
}
sub login { dublin_login($_[0]->port) }
sub rows_of { $us->psql_admin("SELECT count(*) FROM orders WHERE id = $_[0]", dbname => 'movr') }
sub admin {
    my ($p, $sql) = @_;
    my ($rc, $out, $err) = run_cmd(['psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', $sql,
        $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret')], timeout => 60);
    return $rc == 0 ? 'ok' : "failed: $err";
}
# The answer of a Query sent before: its error "SQLSTATE message", or the tags of its results.
sub answer {
    my ($w) = @_;
    my $res = $w->read_result;
    return "$res->{error}{C} $res->{error}{M}" if $res->{error};
    return 'ok';
}
# A command of the console run in a child: its pid, and a pipe that says how it ended.
sub admin_async {
    my ($p, $sql) = @_;
    pipe(my $r, my $wr) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $r;
        print {$wr} admin($p, $sql);
        close $wr;
        POSIX::_exit(0);
    }
    close $wr;
    return sub { my $out = do { local $/; <$r> }; waitpid($pid, 0); $out };
}

# A read for a second, then a write of row id, in one pipelined batch.
sub send_write { $_[0]->send_raw(ext_statement('SELECT pg_sleep(1)') . ext_statement('INSERT INTO orders VALUES ($1)', $_[1]) . sync_message()) }
my $id = 1;
for my $mode (qw(transaction session)) {
    my $d = PgNearTest::Wire->connect(host => '127.0.0.1', port => $us->port, timeout => 30);
    $d->startup(user => 'app', database => 'movr', password => 'app-secret')->{ok} or die "direct login\n";
    my $direct = $id++;
    send_write($d, $direct);
    is answer($d), 'ok', "$mode: directly, a read then a write in one batch runs";
    is rows_of($direct), 1, "$mode: ... its row once";

    my $p = proxy($mode);
    my $w = login($p);
    ok wait_until(sub { one($w, q{SELECT current_setting('cluster_name')}) eq 'eu-west' }, timeout => 10),
      "$mode: the Dublin session reads on eu-west's standby";

    # PAUSE while the write is held on the standby.
    my $paused = $id++;
    send_write($w, $paused);
    sleep 0.4;    # the standby sleeps: its answer is held
    my $pause = admin_async($p, 'PAUSE');
    is $pause->(), 'ok', "$mode: PAUSE while the write is held on the standby returns";
    is rows_of($paused), 0, "$mode: ... the write waits for the pause, not run yet";
    ok !IO::Select->new($w->socket)->can_read(0.5), "$mode: ... and its client has no answer yet";
    is admin($p, 'RESUME'), 'ok', "$mode: RESUME";
    is answer($w), 'ok', "$mode: ... the client gets the primary's answer, not the standby's 25006";
    is rows_of($paused), 1, "$mode: ... its row once, on the primary";

    # DRAIN of the standby's region while a write is held there.
    ok wait_until(sub { one($w, q{SELECT current_setting('cluster_name')}) eq 'eu-west' }, timeout => 10),
      "$mode: reads near again";
    my $drained = $id++;
    send_write($w, $drained);
    sleep 0.4;
    my $drain = admin_async($p, 'DRAIN eu-west');
    is answer($w), 'ok', "$mode: DRAIN while the write is held: the client gets the primary's answer";
    is rows_of($drained), 1, "$mode: ... its row once, on the primary";
    like $drain->(), qr/^ok|^failed/, "$mode: DRAIN ends";
    admin($p, 'ENABLE eu-west');

    $w->terminate;
    $d->terminate;
    $p->stop;
}

# pool_mode = session: a cancel request that comes while the session's state (a SET made near)
# is carried to its primary's connection, for a write the standby refused (eu-west 400 ms away
# each way, behind a delay relay, so that the carry's read takes a while): the write is canceled
# (57014), as while its connection is fetched, and runs nowhere.
{
    my $srcdir = $ENV{PGNEAR_SRCDIR} // die "PGNEAR_SRCDIR is not set (make check sets it)\n";
    my $dir = tmpdir(name => 'carry-cancel');
    write_file("$dir/eu.delay", "0\n");
    my ($port, $log) = (free_port(), "$dir/relay.log");
    my $relay = fork // die "fork: $!";
    if ($relay == 0) {
        no warnings 'exec';
        exec { $^X } $^X, "$srcdir/bench/delay_relay.pl", '--listen', "127.0.0.1:$port",
          '--target', $eu->hostport, '--delay-file', "$dir/eu.delay", '--log', $log;
        POSIX::_exit(127);
    }
    END { kill 'TERM', $relay if $relay }
    wait_until(sub { -e $log && slurp_file($log) =~ /^listening/m }, timeout => 10)
      or BAIL_OUT('the delay relay did not start');
    my $p = PgNearTest::Proxy->new(
        regions  => nearest_regions($us, "127.0.0.1:$port"),
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", admin_users => 'admin',
                      server_tls => 'disable', health_check_interval => '250ms', workers => $WORKERS,
                      pool_mode => 'session', target_session_attrs => 'nearest', route_by => 'distance',
                      health_check_timeout => '10s' });    # a check crosses the relay's 400 ms
    my $w = login($p);
    ok wait_until(sub { one($w, q{SELECT current_setting('cluster_name')}) eq 'eu-west' }, timeout => 10),
      'session, carried: the session reads on eu-west';
    is one($w, 'SET application_name = carried'), undef, 'session, carried: a SET near';
    my $n = () = slurp_file($log) =~ /^delay /mg;
    write_file("$dir/eu.delay", "400\n");
    kill 'HUP', $relay;
    wait_until(sub { (() = slurp_file($log) =~ /^delay /mg) > $n }, timeout => 5, interval => 0.02)
      or BAIL_OUT('the relay did not take its delay');
    my $canceled = $id++;
    my $seen = $p->log_size;
    $w->send_query("INSERT INTO orders VALUES ($canceled)");
    ok wait_until(sub { substr($p->log_contents, $seen) =~ /its state is read back from its connection/ },
                  timeout => 20, interval => 0.02),
      'session, carried: the standby refused the write; its state is being carried to the primary';
    PgNearTest::Wire->cancel(host => '127.0.0.1', port => $p->port, pid => $w->{pid}, key => $w->{key});
    is answer($w), '57014 canceling statement due to user request',
      'session, carried: a cancel request then cancels the write (57014)';
    sleep 2;
    is rows_of($canceled), 0, 'session, carried: ... which runs nowhere';
    write_file("$dir/eu.delay", "0\n");
    kill 'HUP', $relay;
    is one($w, q{SELECT current_setting('application_name')}), 'carried',
      'session, carried: the session goes on, its setting kept';
    $w->terminate;
    $p->stop;
}

# A migration that makes a function that writes behind an EXCEPTION clause: called through pgnear
# right after MIGRATE UP, it runs on the primary (every worker reads its database's routines
# again after a run), once.
{
    my $mdir = tmpdir(name => 'routine-migrations');
    write_file("$mdir/0001_log_order.sql", <<'SQL');
CREATE FUNCTION log_order(n int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN INSERT INTO orders VALUES (n); RETURN 'logged';
EXCEPTION WHEN OTHERS THEN RETURN 'lost'; END$$;
SQL
    write_file("$mdir/0001_log_order.down.sql", "DROP FUNCTION log_order(int);\n");
    my $p = PgNearTest::Proxy->new(
        regions  => nearest_regions($us, $eu),
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", admin_users => 'admin',
                      server_tls => 'disable', health_check_interval => '250ms', workers => $WORKERS,
                      target_session_attrs => 'nearest', migrations_dir => $mdir, migrations_db => 'movr' });
    my $w = login($p);
    ok wait_until(sub { one($w, q{SELECT current_setting('cluster_name')}) eq 'eu-west' }, timeout => 10),
      'migration: the session reads on eu-west';
    is admin($p, 'MIGRATE UP'), 'ok', 'migration: MIGRATE UP makes log_order()';
    ok wait_until(sub { $eu->psql_admin(q{SELECT count(*) FROM pg_proc WHERE proname = 'log_order'},
                                        dbname => 'movr') eq '1' }, timeout => 10),
      'migration: ... replayed by the standby';
    my $logged = $id++;
    is one($w, "SELECT log_order($logged)"), 'logged', 'migration: called at once through pgnear, it writes';
    is rows_of($logged), 1, 'migration: ... once, on the primary';
    $w->terminate;
    $p->stop;
}

done_testing;
