# A switchover the health checks have not seen yet: us-east's primary is
# stopped, eu-west's standby promoted and us-east started again as its
# standby, all within one health_check_interval (60 s here), so pgnear
# still takes us-east for the primary.  A session that needs read-write
# and is sent there finds in_hot_standby = on as its login ends: it never
# lands there, but gets 08001 saying why (the client has seen the server's
# login messages, under auth = scram as under passthrough); the checks
# the finding started at once find the new primary, where the next writer
# lands.  The log says it once per pgnear; readers go to the standby.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

require_tool('psql');
require_tool('pg_basebackup');

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
ok $eu->is_in_recovery, 'eu-west is a streaming standby of us-east';

my $auth_dir = PgNearTest::tmpdir(name => 'demoted-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist, qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

my %BASE = (server_tls => 'disable', health_check_interval => '60s', health_check_timeout => '2s',
            failover_wait => '10s');
my $scram = PgNearTest::Proxy->new(regions => [$us, $eu],
                                   settings => { %BASE, auth => 'scram', auth_file => $userlist });
my $pass = PgNearTest::Proxy->new(regions => [$us, $eu], settings => { %BASE, auth => 'passthrough' });
for my $px ($scram, $pass) {
    ok $px->wait_for_log(qr/region eu-west is up: it is a standby/, timeout => 20),
      'pgnear\'s first checks: eu-west is a standby, us-east the primary';
}

# Where a session near us-east that needs what it needs lands: "cluster|read-only".
sub land {
    my ($px, $need) = @_;
    return psql($px->conninfo(options => "-c pgnear.region=us-east -c pgnear.target_session_attrs=$need"),
                "SELECT current_setting('cluster_name') || '|' || current_setting('transaction_read_only')",
                verbose => 1);
}
is scalar(land($scram, 'read-write')), 'us-east|off', 'before: a writer lands on us-east';

# ------------------------------------------------------------------ the switchover

$us->stop(mode => 'fast');
$eu->promote;
ok wait_until(sub { !$eu->is_in_recovery }, timeout => 30), 'eu-west is promoted';
# us-east stopped cleanly before the promotion: it can follow eu-west's new timeline.
write_file($us->datadir . '/standby.signal', '', owner => 'postgres');
my $auto = slurp_file($us->datadir . '/postgresql.auto.conf');
write_file($us->datadir . '/postgresql.auto.conf',
           $auto . sprintf("primary_conninfo = 'host=%s port=%d user=postgres'\n", $eu->socket_dir, $eu->port),
           owner => 'postgres');
$us->start;
ok $us->is_in_recovery, 'us-east runs again, as a standby of eu-west';
ok wait_until(sub { $us->psql_admin("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'") eq '1' },
              timeout => 30), '... streaming from it';

# ------------------------------------------------------------------ a writer sent there

# The login's messages have reached the client as they came (under scram
# too: ParameterStatus and BackendKeyData pass through), so the session
# cannot move to another server: it fails, saying why, and the next writer
# goes to the new primary, which the checks the finding started have found.
for my $case (['scram', $scram], ['passthrough', $pass]) {
    my ($auth, $px) = @$case;
    my $off = $px->log_size;
    my ($rc, $out, $err) = land($px, 'read-write');
    isnt $rc, 0, "$auth: the writer sent to the demoted us-east does not land there";
    like $err, qr/server is a standby, and the session needs read-write/, '... the error says why';
    like $err, qr/DETAIL:\s+A switchover: the server became a standby since pgnear last checked it/,
      '... with a detail';
    like $err, qr/HINT:\s+Connect again/, '... and a hint';
    ok wait_until(sub { substr($px->log_contents, $off) =~ /FATAL 08001: server is a standby/ }, timeout => 5),
      '... 08001 (the log)';
    ok wait_until(sub { substr($px->log_contents, $off) =~ /region eu-west is up: it is a primary now/ },
                  timeout => 5), '... the checks it started at once find the new primary';
    my $log = substr($px->log_contents, $off);
    like $log, qr/host 127\.0\.0\.1:\d+ of region us-east is a standby by its login, though its last health check said it was a primary/,
      '... the log says what the login found';
    is scalar(land($px, 'read-write')), 'eu-west|off', 'the next writer lands on the new primary in eu-west';
    is scalar(land($px, 'read-only')), 'us-east|on', 'a reader near us-east lands on the standby there';
    my @said = substr($px->log_contents, $off) =~ /is a standby by its login/g;
    is scalar @said, 1, 'the log said it once';
}

ok $scram->is_running && $pass->is_running, 'both pgnear alive';
done_testing;
