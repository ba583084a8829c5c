# Moving a database to another region, first part: MOVE DATABASE movr TO
# REGION eu-west over three separate clusters with wal_level = logical
# (ap-south keeps replica), pgnear's password in a passfile.  Each refusal
# fires with its SQLSTATE before anything is changed (unknown region, a
# database that does not live in one region, moves_db itself, the region
# it is in, wal_level, a table without a primary key, a role the target
# lacks, a target database that is not empty, login roles whose SCRAM
# secret differs in the target (one granted a table, one with a session on
# the source), a second move of the same database, its move lock held
# elsewhere, the target's server unable to connect to the source); then
# the move copies
# 100,000 rows while pgbench writes through pgnear with 0 failed
# transactions, SHOW MOVES follows it to 'streaming', the target holds the
# same rows and keeps receiving writes, its subscription connecting with
# the passfile's password; ABORT leaves the source as it was (no
# publication, no slot) and drops the database the move created; moved
# again into an empty database, ABORT keeps it and drops a slot for the
# way back that a killed cutover left there.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IPC::Run ();
use PgNearTest;
use PgNearDbMove qw(logical_pair write_users admin_rows admin_refused);

require_tool('psql');
require_tool('pgbench');
require_tool('pg_dump');

my ($us, $eu, $app_secret) = logical_pair();
my $ap = PgNearTest::Cluster->new(name => 'ap-south');
$ap->psql_admin("ALTER ROLE app PASSWORD '$app_secret'");

my $dir = tmpdir(name => 'dbmove');
write_users($dir, $app_secret);
# pgnear's password is in a passfile (0600, in a 0700 directory of the user running the suite),
# not in the ini; and a service file named by pgnear's environment alone.  The servers, which
# make a subscription's connection from server_conninfo's words, can read neither.
my $secret = $PgNearTest::PGNEAR_PASSWORD;
PgNearTest::write_file("$dir/pgpass", "*:*:*:$PgNearTest::PGNEAR_USER:$secret\n", mode => 0600);
PgNearTest::write_file("$dir/pg_service.conf", "[pgnear_src]\nuser=$PgNearTest::PGNEAR_USER\npassfile=$dir/pgpass\n");
$ENV{PGSERVICEFILE} = "$dir/pg_service.conf";
my $server_conninfo = "user=$PgNearTest::PGNEAR_USER passfile=$dir/pgpass";
my $p = PgNearTest::Proxy->new(regions => [$us, $eu, $ap],
    settings => { auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                  server_tls => 'disable', workers => $ENV{PGNEAR_TEST_WORKERS} // 2,
                  health_check_interval => '1s', health_check_timeout => '5s',
                  server_conninfo => $server_conninfo },
    extra_ini => "[database movr]\nregions = us-east\n\n[database other]\nregions = us-east, eu-west\n");
my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');

# An admin command: (rows as hashes, error text, notices).
sub admin { admin_rows($admin_ci, $_[0], timeout => 120) }

sub refused { admin_refused($admin_ci, @_) }

sub moves_of {
    my ($db) = @_;
    my ($rows) = admin('SHOW MOVES');
    return grep { $_->{database} eq $db } @$rows;
}

sub source_objects {
    return $us->psql_admin(q{SELECT (SELECT count(*) FROM pg_publication) || '/' ||
                                    (SELECT count(*) FROM pg_replication_slots)}, dbname => 'movr');
}

ok wait_until(sub { my ($r) = admin('SHOW REGIONS'); 3 == grep { $_->{role} eq 'primary' } @$r }, timeout => 20),
  'the health checks know the three primaries';

# ------------------------------------------------------------------ refusals, before anything changes

refused('MOVE DATABASE movr TO REGION mars', '42704', qr/region "mars" does not exist/, 'an unknown region');
refused('MOVE DATABASE app TO REGION eu-west', '55000',
        qr/database "app" does not say where it lives.*DETAIL:.*; "app" lives in every region/s,
        'a database without [database] regions');
refused('MOVE DATABASE other TO REGION ap-south', '55000', qr/lives in two regions with a primary: us-east and eu-west/,
        'one in two primaries\' regions');
refused('MOVE DATABASE postgres TO REGION eu-west', '0A000', qr/database "postgres" cannot be moved/, 'moves_db');
refused('MOVE DATABASE movr TO REGION us-east', '55000', qr/lives in region "us-east" already/, 'where it is');
refused('MOVE DATABASE movr TO REGION ap-south', '55000',
        qr/region "ap-south" cannot take part in logical replication.*wal_level is "replica"/s, 'wal_level = replica');
$us->psql_admin('CREATE TABLE audit (at timestamptz, what text)', dbname => 'movr');
refused('MOVE DATABASE movr TO REGION eu-west', '55000',
        qr/neither a primary key nor a replica identity.*public\.audit.*HINT:\s+Add a primary key/s, 'a table without a key');
$us->psql_admin('ALTER TABLE audit REPLICA IDENTITY FULL', dbname => 'movr');
$us->psql_admin(q{CREATE ROLE reporter NOLOGIN; GRANT SELECT ON rides TO reporter}, dbname => 'movr');
refused('MOVE DATABASE movr TO REGION eu-west', '42704', qr/do not exist in region "eu-west".*Missing: reporter/s,
        'a role the target lacks');
$eu->psql_admin('CREATE ROLE reporter NOLOGIN');
$eu->psql_admin('CREATE DATABASE movr OWNER app');
$eu->psql_admin('CREATE TABLE leftover (id int)', dbname => 'movr');
refused('MOVE DATABASE movr TO REGION eu-west', '42P04', qr/already exists in region "eu-west" and is not empty/,
        'a target database that is not empty');
$eu->psql_admin('DROP DATABASE movr');
# Login roles with the same password in both regions (so another salt, another secret): rider, granted
# a table, and walker, with a session on the source now.  pgnear's key for them fits the source only.
$_->psql_admin(q{CREATE ROLE rider LOGIN PASSWORD 'same'; CREATE ROLE walker LOGIN PASSWORD 'same'}) for $us, $eu;
$us->psql_admin('GRANT SELECT ON rides TO rider', dbname => 'movr');
{
    my $walker = IPC::Run::start([require_tool('psql'), '-X', '-q', '-h', $us->socket_dir, '-p', $us->port,
                                  '-U', 'walker', '-d', 'movr', '-c', 'SELECT pg_sleep(60)'],
                                 '>', \my $wo, '2>', \my $we);
    ok wait_until(sub { $us->psql_admin(q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'walker'}) eq '1' },
                  timeout => 10), 'walker has a session on the source';
    my %secret = map { ($_ => $us->scram_verifier($_)) } qw(rider walker);
    refused('MOVE DATABASE movr TO REGION eu-west', '55000',
            qr/roles\ that\ log\ in\ to\ database\ "movr"\ have\ another\ SCRAM\ secret\ in\ region\ "eu-west"
               .*:\ rider,\ walker\.
               .*HINT:\s+Give\ them\ region\ "us-east"'s\ secrets\ in\ region\ "eu-west":
               \s+ALTER\s+ROLE\s+rider\s+PASSWORD\s+'\Q$secret{rider}\E';
               \s+ALTER\s+ROLE\s+walker\s+PASSWORD\s+'\Q$secret{walker}\E';/sx,
            'login roles whose SCRAM secret differs in the target');
    $eu->psql_admin("ALTER ROLE $_ PASSWORD '$secret{$_}'") for sort keys %secret;
    $us->psql_admin(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'walker'});
    $walker->finish;
}
# Another move command holds the database's move lock (here: a session that took it by hand).
{
    my $holder = IPC::Run::start([require_tool('psql'), '-X', '-q', '-h', $us->socket_dir, '-p', $us->port,
                                  '-U', 'postgres', '-d', 'postgres', '-c',
                                  q{SELECT pg_advisory_lock(1885826669, hashtext('movr'))}, '-c', 'SELECT pg_sleep(60)'],
                                 '>', \my $ho, '2>', \my $he);
    ok wait_until(sub { $us->psql_admin(q{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
                                          AND classid = 1885826669 AND granted}) eq '1' }, timeout => 10),
      'a session holds the move lock of movr';
    refused('MOVE DATABASE movr TO REGION eu-west', '55006', qr/is being worked on by another move command/,
            'the lock held elsewhere');
    # The backend sleeps on whether or not its client is there: it is ended, which lets the lock go.
    $us->psql_admin(q{SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
                      AND classid = 1885826669});
    $holder->finish;
    ok wait_until(sub { $us->psql_admin(q{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
                                          AND classid = 1885826669}) eq '0' }, timeout => 10),
      '... until that session ends';
}
# The target's server cannot connect to the source as the subscription would (here: a service
# only pgnear's environment names; as well a pg_hba.conf, a firewall, TLS): refused before
# anything is made, with that server's words, and its log does not show the statement,
# which holds the password.
{
    my $off = $p->log_size;
    $p->update_config(settings => { server_conninfo => 'service=pgnear_src' });
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded/, offset => $off), "server_conninfo = service=pgnear_src";
    my $eu_log = -s $eu->log_path;
    refused('MOVE DATABASE movr TO REGION eu-west', '08006',
            qr/the target's server connecting to the source failed.*could not connect to the publisher: definition of service "pgnear_src" not found/s,
            "the target's server cannot connect to the source");
    is $eu->psql_admin(q{SELECT count(*) FROM pg_database WHERE datname = 'movr'}), '0', '... before the database is made there';
    unlike substr($eu->log_contents, $eu_log), qr/\Q$secret\E/, "... and the target's log does not show the password";
    $off = $p->log_size;
    $p->update_config(settings => { server_conninfo => $server_conninfo });
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded/, offset => $off), 'server_conninfo with a passfile again';
}
is source_objects(), '0/0', 'after every refusal: no publication, no slot on the source';
is scalar(moves_of('movr')), 0, '... and no move recorded';

# ------------------------------------------------------------------ the move, under load

my $bench_ci = $p->conninfo(dbname => 'movr');
my ($rc, $out, $err) = run_cmd([require_tool('pgbench'), '-i', '-q', '-s', '1', $bench_ci], timeout => 120);
is $rc, 0, 'pgbench -i through pgnear' or diag $err;
$us->psql_admin('ALTER TABLE pgbench_history REPLICA IDENTITY FULL', dbname => 'movr');
my $bench = IPC::Run::start([require_tool('pgbench'), '-n', '-c', '4', '-T', '12', $bench_ci],
                            '>', \my $bench_out, '2>', \my $bench_err);
sleep 1;
my ($rows, $merr, $notices) = admin('MOVE DATABASE movr TO REGION eu-west');
is $merr, undef, 'MOVE DATABASE movr TO REGION eu-west while pgbench writes';
like $notices, qr/checks passed.*creating the database.*copying the schema.*publication/s, '... with a NOTICE per step';
like $notices, qr/copying \d+ tables \(\d+ MB\) of database "movr" from region "us-east" to region "eu-west"/,
  '... and what it does next';
refused('MOVE DATABASE movr TO REGION eu-west', '55006', qr/database "movr" is being moved already/, 'a second move');

ok wait_until(sub { my ($m) = moves_of('movr'); $m && $m->{state} eq 'streaming' }, timeout => 90),
  'SHOW MOVES: the copy ends, the move streams';
my ($m) = moves_of('movr');
is "$m->{from_region}>$m->{to_region}", 'us-east>eu-west', '... from us-east to eu-west';
is $m->{tables_copied}, $m->{tables_total}, "... every table copied ($m->{tables_total})";
cmp_ok $m->{bytes}, '>', 1_000_000, '... the source\'s size';
like $m->{started_by}, qr/^admin from /, '... who started it';
$bench->finish;
my $res = parse_pgbench($bench_out . $bench_err);
is $res->{failed} // 0, 0, 'pgbench during the copy: 0 failed transactions (' . ($res->{processed} // 0) . ' done)';
cmp_ok $res->{processed} // 0, '>', 0, '... having done work' or diag $bench_out . $bench_err;

# The target now holds what the source holds, and receives what is written through pgnear.
psql($p->conninfo(dbname => 'movr'), q{INSERT INTO users VALUES (5000, 'dublin', 'after the copy')});
ok wait_until(sub { $eu->psql_admin('SELECT count(*) FROM users WHERE id = 5000', dbname => 'movr') eq '1' }, timeout => 20),
  'a row written through pgnear reaches eu-west';
my $sum = q{SELECT count(*) || ':' || sum(revenue) FROM rides};
ok wait_until(sub { $eu->psql_admin($sum, dbname => 'movr') eq $us->psql_admin($sum, dbname => 'movr') }, timeout => 20),
  'rides: the same count and sum on both sides (' . $us->psql_admin($sum, dbname => 'movr') . ')';
is $eu->psql_admin('SELECT count(*) FROM pgbench_history', dbname => 'movr'),
   $us->psql_admin('SELECT count(*) FROM pgbench_history', dbname => 'movr'), 'pgbench_history too';
is $eu->psql_admin(q{SELECT has_table_privilege('reporter', 'rides', 'SELECT')}, dbname => 'movr'), 't',
  'the grants came with the schema';
like $eu->psql_admin(q{SELECT subconninfo FROM pg_subscription}), qr/ password='\Q$secret\E'/,
  "the subscription's connection carries the password pgnear's login took from its passfile";
unlike $p->log_contents, qr/\Q$secret\E/, "... which pgnear's log never shows";


# ------------------------------------------------------------------ ABORT

($rows, $merr, $notices) = admin('MOVE DATABASE movr ABORT');
is $merr, undef, 'MOVE DATABASE movr ABORT';
like $notices, qr/is aborted: its subscription, slot and publication are gone, and the database it created there/,
  '... saying what it removed';
is source_objects(), '0/0', 'the source has no publication and no slot left';
is $eu->psql_admin(q{SELECT count(*) FROM pg_database WHERE datname = 'movr'}), '0', 'the database it created is gone';
($m) = moves_of('movr');
is $m->{state}, 'aborted', 'SHOW MOVES: aborted';
is $us->psql_admin('SELECT count(*) FROM users', dbname => 'movr'), '1001', 'the source keeps its rows';
refused('MOVE DATABASE movr ABORT', '55000', qr/database "movr" is not being moved/, 'a second ABORT');

# Once aborted, the database may be moved again, here into an empty one the target has.  A
# cutover killed after it made the slot for the way back, before its record said so, leaves it
# in the target (240): ABORT drops it, as the database stays.
$eu->psql_admin('CREATE DATABASE movr OWNER app');
($rows, $merr) = admin('MOVE DATABASE movr TO REGION eu-west');
is $merr, undef, 'moved again after the abort, into an empty database';
my $move_id = $us->psql_admin(q{SELECT max(id) FROM pgnear_database_moves WHERE database = 'movr'});
# A physical slot of that name stands in for it: made at once, where a logical one waits for
# the transactions of the copy that runs.
$eu->psql_admin("SELECT pg_create_physical_replication_slot('pgnear_move_${move_id}_back')");
($rows, $merr) = admin('MOVE DATABASE movr ABORT');
is $merr, undef, '... and aborted again';
is source_objects(), '0/0', '... leaving nothing on the source';
is $eu->psql_admin(q{SELECT count(*) FROM pg_replication_slots}), '0', '... nor a slot on the target';
is $eu->psql_admin(q{SELECT count(*) FROM pg_database WHERE datname = 'movr'}), '1', '... whose database stays';
is scalar(grep { $_->{state} eq 'aborted' } moves_of('movr')), 2, 'SHOW MOVES lists both moves, aborted';

# A region that cannot be read leaves SHOW MOVES to the others, with a NOTICE.
$eu->stop(mode => 'immediate');
my ($after, $serr, $snotices) = admin('SHOW MOVES');
is $serr, undef, 'SHOW MOVES with eu-west stopped answers';
is scalar(grep { $_->{database} eq 'movr' } @$after), 2, '... with the moves us-east records';
like $snotices, qr/NOTICE:.*region "eu-west"/, '... and a NOTICE naming eu-west';

done_testing;
