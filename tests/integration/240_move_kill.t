# A database move survives kill -9 of pgnear at any step: on restart SHOW
# MOVES tells the truth, and a cutover is either done or not done, never
# half.  Two clusters with wal_level = logical, MovR's tables:
#   - killed while MOVE DATABASE runs (its schema copy waits on a lock):
#     the restarted pgnear finds the move lock free and no subscription on
#     the target, records the move 'failed' ("interrupted before the copy
#     started"), and ABORT leaves the source as it was;
#   - killed right after MOVE DATABASE answered: the copy goes on in the
#     servers; after the restart SHOW MOVES says copying, then streaming,
#     and both sides have the same rides;
#   - killed during CUTOVER before its commit (a client's open transaction
#     keeps the gate from closing): the restarted pgnear undoes it (us-east
#     takes writes, no slot for the way back is left, the record says
#     streaming with the reason);
#   - killed during CUTOVER right after it made the slot for the way back,
#     before its record says so (the record's table locked): the record
#     says streaming, the slot is left, and CUTOVER then runs to the end
#     (it drops such a slot before it makes its own);
#   - stopped during REVERT after its commit (the state made by hand from
#     a finished REVERT): the restarted pgnear finishes it (the leaving
#     region's record, the replication back started from its slot), and a
#     write made in us-east meanwhile reaches eu-west;
#   - killed during CUTOVER after its commit, the replication back made,
#     before the leaving region's record says so: the restarted pgnear
#     finishes it (the replication back is there already);
#   - killed during REVERT right after it made the slot for the way back,
#     before its record: REVERT then runs to the end.
# Before that, a CUTOVER whose replication back could not start (us-east's
# server cannot connect to eu-west) is refused before the gate.  pgnear's
# password is in a passfile: each subscription carries it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IPC::Run ();
use PgNearTest;
use PgNearDbMove qw(logical_pair write_users admin_rows);

require_tool('psql');
require_tool('pg_dump');

my ($us, $eu, $app_secret) = logical_pair();

my $dir = tmpdir(name => 'move-kill', mode => 0755);
write_users($dir, $app_secret);
# pgnear's password is in a passfile (0600, of the user running the suite), which the servers
# cannot read: the subscriptions they make, both ways, carry what pgnear's logins used.
PgNearTest::write_file("$dir/pgpass", "*:*:*:$PgNearTest::PGNEAR_USER:$PgNearTest::PGNEAR_PASSWORD\n", mode => 0600);
# A service named by pgnear's environment alone, which the servers cannot use.
PgNearTest::write_file("$dir/pg_service.conf", "[pgnear_svc]\nuser=$PgNearTest::PGNEAR_USER\npassfile=$dir/pgpass\n");
$ENV{PGSERVICEFILE} = "$dir/pg_service.conf";
my $server_conninfo = "user=$PgNearTest::PGNEAR_USER passfile=$dir/pgpass";
my $p = PgNearTest::Proxy->new(regions => [$us, $eu],
    settings => { auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                  server_tls => 'disable', workers => $ENV{PGNEAR_TEST_WORKERS} // 2,
                  health_check_interval => '1s', health_check_timeout => '5s', move_timeout => '60s',
                  server_conninfo => $server_conninfo },
    extra_ini => "[database movr]\nregions = us-east\n");
my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');
my $app_ci = $p->conninfo(dbname => 'movr');

sub admin { admin_rows($admin_ci, $_[0]) }
sub move_row {
    my ($rows) = admin('SHOW MOVES');
    my ($m) = grep { $_->{database} eq 'movr' } @$rows;
    return $m // {};
}
sub move_state { PgNearDbMove::move_state($admin_ci, 'movr') }
# The state the record of a region says, read there directly.
sub recorded {
    my ($c) = @_;
    return eval { $c->psql_admin(q{SELECT state FROM pgnear_database_moves WHERE database = 'movr' ORDER BY id DESC LIMIT 1}) } // '';
}
sub lands_on {
    my ($rc, $out) = psql($app_ci, 'SELECT inet_server_port()');
    return $rc == 0 ? $out : 'error';
}
# An admin command run in the background: its harness and its output.
sub admin_bg {
    my ($sql) = @_;
    my %o = (out => '', err => '');
    my $h = IPC::Run::start([require_tool('psql'), '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d', $admin_ci, '-c', $sql],
                            '>', \$o{out}, '2>', \$o{err});
    return ($h, \%o);
}
# A session straight to a cluster that keeps a transaction open until released.
sub hold_open {
    my ($c, $db, @sql) = @_;
    # A cutover's source refuses writes by default: this session writes all the same.
    my $in = join('', map { "$_;\n" } 'SET default_transaction_read_only = off', 'BEGIN', @sql) . "SELECT 'held';\n";
    my $out = '';
    my $ci = PgNearTest::conninfo_string(host => $c->{socket_dir}, port => $c->port, user => 'postgres', dbname => $db);
    my $h = IPC::Run::start([require_tool('psql'), '-X', '-At', '-d', $ci],
                            '<', \$in, '>', \$out, '2>&1');
    wait_until(sub { $h->pump_nb; $out =~ /held/ }, timeout => 20) or diag "hold_open: $out";
    return sub { $in .= "ROLLBACK;\n\\q\n"; eval { $h->finish } };
}
sub kill_and_restart {
    $p->stop(signal => 'KILL');
    $p->start;
}
my $sum = q{SELECT count(*) || ':' || coalesce(sum(revenue), 0) FROM rides};
sub same_rides {
    my $a = $us->psql_admin($sum, dbname => 'movr');
    return $a eq $eu->psql_admin($sum, dbname => 'movr') ? $a : undef;
}
sub job_waits_on_lock {
    return $_[0]->psql_admin(q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgnear database move'
                               AND wait_event_type = 'Lock'}) ne '0';
}
sub slots { $_[0]->psql_admin(q{SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots}) }
sub subs  { $_[0]->psql_admin(q{SELECT string_agg(subname, ',' ORDER BY subname) FROM pg_subscription}) }

ok wait_until(sub { my ($r) = admin('SHOW REGIONS'); 2 == grep { $_->{role} eq 'primary' } @$r }, timeout => 20),
  'the health checks know both primaries';

# ------------------------------------------------------------------ killed while MOVE DATABASE runs

{
    my $release = hold_open($us, 'movr', 'LOCK rides IN ACCESS EXCLUSIVE MODE');
    my ($h, $o) = admin_bg('MOVE DATABASE movr TO REGION eu-west');
    ok wait_until(sub { (recorded($us) // '') eq 'copying' }, timeout => 60),
      'MOVE DATABASE recorded the move; its schema copy waits on a lock';
    kill_and_restart();
    $release->();
    eval { $h->finish };
    ok wait_until(sub { move_state() eq 'failed' }, timeout => 30),
      'after kill -9 and a restart, SHOW MOVES says failed';
    like move_row()->{last_error}, qr/interrupted \(the pgnear running it stopped\) before the copy started; ABORT removes what it made/,
      '... saying why and what to do';
    like $p->log_contents, qr/was interrupted before its copy started: it is recorded as failed/, '... and the log says so';
    # The kill may land before or after the target's CREATE DATABASE commits (CI met the
    # first): drop what it made, so that ABORT always meets a target without the database,
    # which it cannot even connect to (236 aborts with the database there).
    $eu->psql_admin('DROP DATABASE IF EXISTS movr WITH (FORCE)');
    my (undef, $err) = admin('MOVE DATABASE movr ABORT');
    is $err, undef, 'ABORT' or diag $err;
    is $us->psql_admin(q{SELECT count(*) FROM pg_publication}, dbname => 'movr'), 0, '... no publication left on us-east';
    is slots($us), '', '... no slot';
    is $eu->psql_admin(q{SELECT count(*) FROM pg_database WHERE datname = 'movr'}), 0,
      '... and the database it created in eu-west is gone';
}

# ------------------------------------------------------------------ killed during the copy

{
    my (undef, $err) = admin('MOVE DATABASE movr TO REGION eu-west');
    is $err, undef, 'MOVE DATABASE movr TO REGION eu-west answers once the copy runs' or diag $err;
    kill_and_restart();
    like move_state(), qr/^(copying|streaming)$/, 'killed right away: after the restart SHOW MOVES says ' . move_state();
    ok wait_until(sub { move_state() eq 'streaming' }, timeout => 120), '... and then streaming';
    ok wait_until(sub { defined same_rides() }, timeout => 30), '... with the same rides on both sides';
    is lands_on(), $us->port, 'movr still lives in us-east';
}

# ------------------------------------------------------------------ killed during CUTOVER, before the commit

my $move_id = $us->psql_admin(q{SELECT max(id) FROM pgnear_database_moves WHERE database = 'movr'});
{
    # A client in a transaction: the gate waits for its end (move_timeout 60 s).
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    ok $r->{ok}, 'a client logs in';
    $w->query(q{BEGIN; INSERT INTO rides (rider, city, revenue) VALUES (1, 'open', 1)});
    my ($h, $o) = admin_bg('MOVE DATABASE movr CUTOVER');
    ok wait_until(sub { (recorded($us) // '') eq 'cutting over' }, timeout => 60),
      'CUTOVER recorded "cutting over" and waits for the client to end its transaction';
    kill_and_restart();
    eval { $h->finish };
    ok $p->wait_for_log(qr/the CUTOVER of database "movr" to region "eu-west" was interrupted \(the pgnear running it stopped\) before the commit: undoing it/,
                        timeout => 30), 'after kill -9 and a restart, pgnear undoes the cutover';
    ok wait_until(sub { move_state() eq 'streaming' }, timeout => 30), 'SHOW MOVES: streaming again';
    like move_row()->{last_error}, qr/CUTOVER: interrupted before the commit/, '... with the reason';
    is recorded($eu), 'streaming', "... eu-west's record too";
    is lands_on(), $us->port, 'movr lives in us-east';
    my ($rc, $out, $err) = psql($app_ci, q{WITH i AS (INSERT INTO rides (rider, city, revenue) VALUES (1, 'after undo', 1) RETURNING 1) SELECT 'ok' FROM i});
    is $out, 'ok', '... and takes writes there' or diag $err;
    unlike slots($eu) // '', qr/_back/, 'no slot for the way back is left in eu-west';
}

# ------------------------------------------------------------------ a replication back that could not start

{
    # us-east's server cannot connect to eu-west as the replication back will: refused before
    # the gate, nothing changed (else it would fail after the commit, with no way back).
    my $off = $p->log_size;
    $p->update_config(settings => { server_conninfo => 'service=pgnear_svc' });
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded/, offset => $off), 'server_conninfo = service=pgnear_svc';
    my (undef, $err) = admin('MOVE DATABASE movr CUTOVER');
    like $err // '', qr/the leaving region's server connecting to the arriving region failed.*definition of service "pgnear_svc" not found/s,
      "CUTOVER is refused: us-east's server cannot connect to eu-west";
    is recorded($us), 'streaming', '... the record says streaming';
    is lands_on(), $us->port, '... and movr lives in us-east';
    $off = $p->log_size;
    $p->update_config(settings => { server_conninfo => $server_conninfo });
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded/, offset => $off), 'server_conninfo with a passfile again';
}

# ------------------------------------------------------------------ killed during CUTOVER, before its record

{
    # Killed right after it made the slot for the way back, before its record says
    # 'cutting over': us-east's record of moves is locked, and the cutover waits to write it.
    my $release = hold_open($us, 'postgres', 'LOCK TABLE pgnear_database_moves IN EXCLUSIVE MODE');
    my ($h, $o) = admin_bg('MOVE DATABASE movr CUTOVER');
    ok wait_until(sub { (slots($eu) // '') =~ /_back/ && job_waits_on_lock($us) }, timeout => 60),
      'CUTOVER made the slot for the way back and waits to record "cutting over"';
    $p->stop(signal => 'KILL');
    # Its statement must not write the record once the lock goes: the server ends it, as
    # it ends a killed client's sessions (client_connection_check_interval) on its own.
    $us->psql_admin(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgnear database move'});
    ok wait_until(sub { !job_waits_on_lock($us) }, timeout => 10), 'after kill -9 its waiting statement is ended';
    $release->();
    eval { $h->finish };
    $p->start;
    is recorded($us), 'streaming', 'after a restart the record says streaming';
    like slots($eu) // '', qr/_back/, '... and the slot for the way back is left in eu-west';
    my (undef, $cerr, $cn) = admin('MOVE DATABASE movr CUTOVER');
    is $cerr, undef, 'CUTOVER again, to the end' or diag $cn;
    like $us->psql_admin(q{SELECT subconninfo FROM pg_subscription}), qr/ password='\Q$PgNearTest::PGNEAR_PASSWORD\E'/,
      "the replication back connects with the passfile's password";
    is lands_on(), $eu->port, 'movr lives in eu-west';
}

# ------------------------------------------------------------------ stopped after the commit

# What a pgnear that stopped between a REVERT's commit and its end leaves:
# us-east's record says streaming (the commit), eu-west's still says
# reverting, and the replication back is not running yet (its slot is
# there).  Made here by hand from a finished REVERT, which ends too soon to
# be killed at that point reliably: the slot stays when the subscription
# goes (slot_name = NONE), and eu-west's row goes back one version.
{
    my (undef, $rerr, $rn) = admin('MOVE DATABASE movr REVERT');
    is $rerr, undef, 'REVERT' or diag $rn;
    is lands_on(), $us->port, 'movr lives in us-east';
    $p->stop(signal => 'KILL');
    my $back = "pgnear_move_${move_id}";
    $eu->psql_admin(["SET default_transaction_read_only = off", "ALTER SUBSCRIPTION $back DISABLE", "ALTER SUBSCRIPTION $back SET (slot_name = NONE)",
                     "DROP SUBSCRIPTION $back"], dbname => 'movr');
    $eu->psql_admin(q{UPDATE pgnear_database_moves SET state = 'reverting', version = version - 1 WHERE database = 'movr' AND state = 'streaming'});
    like slots($us), qr/\Q$back\E/, "us-east keeps the slot of the way back; eu-west's record says reverting";
    is $us->psql_admin(q{WITH i AS (INSERT INTO rides (rider, city, revenue) VALUES (1, 'before settling', 1) RETURNING 1) SELECT 'ok' FROM i},
                       dbname => 'movr'), 'ok', 'a write in us-east meanwhile';
    $p->start;
    ok $p->wait_for_log(qr/the REVERT of database "movr" to region "us-east" was interrupted \(the pgnear running it stopped\) after the commit: finishing it/,
                        timeout => 30), 'after kill -9, that state and a restart, pgnear finishes the revert';
    ok $p->wait_for_log(qr/the interrupted REVERT had been committed, and is finished/, timeout => 30), '... and says so';
    is recorded($eu), 'streaming', "eu-west's record says streaming";
    is move_state(), 'streaming', 'SHOW MOVES: streaming';
    is lands_on(), $us->port, 'movr lives in us-east';
    like subs($eu) // '', qr/\Q$back\E(,|$)/, 'eu-west subscribes to us-east again';
    ok wait_until(sub { defined same_rides() }, timeout => 30), '... and the write made meanwhile reaches it';
}

# ------------------------------------------------------------------ killed after the commit, before the last record

{
    # CUTOVER killed once the replication back is made, before the leaving region's record
    # says so: a client's open transaction keeps the gate from closing until us-east's record
    # of moves is locked; then the cutover commits in eu-west and waits to write us-east's.
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
    ok $w->startup(user => 'app', database => 'movr', password => 'app-secret')->{ok}, 'a client logs in';
    $w->query(q{BEGIN; INSERT INTO rides (rider, city, revenue) VALUES (1, 'open again', 1)});
    my ($h, $o) = admin_bg('MOVE DATABASE movr CUTOVER');
    ok wait_until(sub { (recorded($us) // '') eq 'cutting over' }, timeout => 60), 'CUTOVER recorded "cutting over"';
    my $release = hold_open($us, 'postgres', 'LOCK TABLE pgnear_database_moves IN EXCLUSIVE MODE');
    $w->query('COMMIT');
    ok wait_until(sub { recorded($eu) eq 'moved' && (subs($us) // '') =~ /_back/ && job_waits_on_lock($us) },
                  timeout => 60), "... committed in eu-west, started the replication back, and waits to record it in us-east";
    $p->stop(signal => 'KILL');
    $us->psql_admin(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgnear database move'});
    ok wait_until(sub { !job_waits_on_lock($us) }, timeout => 10), 'after kill -9 its waiting statement is ended';
    $release->();
    eval { $h->finish };
    $p->start;
    ok $p->wait_for_log(qr/the CUTOVER of database "movr" to region "eu-west" was interrupted \(the pgnear running it stopped\) after the commit: finishing it/,
                        timeout => 30), 'after a restart, pgnear finishes the cutover';
    ok wait_until(sub { recorded($us) eq 'moved' }, timeout => 30), "us-east's record says moved";
    is move_state(), 'moved', 'SHOW MOVES: moved';
    is lands_on(), $eu->port, 'movr lives in eu-west';
}

# ------------------------------------------------------------------ killed during REVERT, before its record

{
    # As the CUTOVER above, the other way: the slot for the way back is us-east's.
    my $release = hold_open($eu, 'postgres', 'LOCK TABLE pgnear_database_moves IN EXCLUSIVE MODE');
    my ($h, $o) = admin_bg('MOVE DATABASE movr REVERT');
    ok wait_until(sub { (slots($us) // '') =~ /\Qpgnear_move_$move_id\E(,|$)/ && job_waits_on_lock($eu) }, timeout => 60),
      'REVERT made the slot for the way back and waits to record "reverting"';
    $p->stop(signal => 'KILL');
    $eu->psql_admin(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgnear database move'});
    ok wait_until(sub { !job_waits_on_lock($eu) }, timeout => 10), 'after kill -9 its waiting statement is ended';
    $release->();
    eval { $h->finish };
    $p->start;
    is recorded($eu), 'moved', 'after a restart the record says moved';
    my (undef, $rerr, $rn) = admin('MOVE DATABASE movr REVERT');
    is $rerr, undef, 'REVERT again, to the end' or diag $rn;
    is lands_on(), $us->port, 'movr lives in us-east';
}

ok $p->is_running, 'pgnear is running';
done_testing;
