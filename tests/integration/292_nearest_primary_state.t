# target_session_attrs = nearest and what only the primary knows: a
# statement that reads pg_prepared_xacts (and the other views and
# functions of protocol/primary_state.h) runs on a primary, where a
# standby would answer without an error but for itself.  A transaction
# prepared through pgnear (PREPARE TRANSACTION) is found by SELECT gid
# FROM pg_prepared_xacts and by pgjdbc's XA recovery query
# (PGXAConnection.recover), the primary's WAL sender by pg_stat_replication,
# its backends by pg_stat_activity; a plain read still runs on the nearest
# standby.  Under pool_mode = session and transaction, two workers.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;
use PgNearNearest;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pg_basebackup);

my %conf = (conf => { max_prepared_transactions => 5 });
my $us = PgNearTest::Cluster->new(name => 'us-east', %conf);
$us->psql_admin('CREATE TABLE ledger (id int)', dbname => 'movr');
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west', %conf);
$eu->wait_streaming;
$eu->wait_replay($us->current_lsn);

my $auth_dir = tmpdir(name => 'primary-state-auth');
write_file("$auth_dir/userlist.txt", qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

for my $mode (qw(session transaction)) {
    my $p = PgNearTest::Proxy->new(
        regions  => nearest_regions($us, $eu),
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", server_tls => 'disable',
                      target_session_attrs => 'nearest', pool_mode => $mode, workers => 2,
                      health_check_interval => '250ms' });
    my $w = dublin_login($p->port);
    is where($w), 'eu-west', "$mode: a plain read runs on the nearest standby";

    my $gid = "pgnear_$mode";
    is one($w, 'BEGIN'), undef, "$mode: BEGIN";
    is one($w, 'INSERT INTO ledger VALUES (1)'), undef, "$mode: a write in the block";
    is one($w, "PREPARE TRANSACTION '$gid'"), undef, "$mode: PREPARE TRANSACTION";
    is $us->psql_admin("SELECT count(*) FROM pg_prepared_xacts WHERE gid = '$gid'", dbname => 'movr'), '1',
      "$mode: ... the primary holds it";
    # A transaction manager's recovery scan runs in a session of its own, whose reads go near.
    $eu->wait_replay($us->current_lsn);
    my $r = dublin_login($p->port);
    is where($r), 'eu-west', "$mode: another session's plain read runs on the nearest standby";
    is one($r, "SELECT gid FROM pg_prepared_xacts WHERE gid = '$gid'"), $gid,
      "$mode: ... its SELECT gid FROM pg_prepared_xacts finds it (read on the primary)";
    is one($r, 'SELECT gid FROM pg_prepared_xacts where database = current_database()'), $gid,
      "$mode: ... and so does pgjdbc's XA recovery query";
    is one($r, 'SELECT count(*) FROM pg_catalog.pg_stat_replication'), '1',
      "$mode: pg_stat_replication shows the primary's WAL sender";
    is one($r, q{SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'walsender'}), 't',
      "$mode: pg_stat_activity is the primary's";
    # (each ran on the primary, so reads follow it there until the standby has replayed as far)
    ok wait_until(sub { where($r) eq 'eu-west' }, timeout => 20),
      "$mode: a plain read after them runs on the nearest standby: they do not keep the session there";
    $r->terminate;
    is one($w, "COMMIT PREPARED '$gid'"), undef, "$mode: COMMIT PREPARED";
    is one($w, "SELECT count(*) FROM pg_prepared_xacts"), '0', "$mode: ... none left";
    # once the standby has replayed the session's writes (read-your-writes)
    ok wait_until(sub { where($w) eq 'eu-west' }, timeout => 20),
      "$mode: a plain read still runs on the nearest standby";
    $w->terminate;
    $p->stop;
}

done_testing;
