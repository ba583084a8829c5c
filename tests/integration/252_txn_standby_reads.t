# Monotonic reads under transaction pooling: each transaction may run on
# another server, and a session that reads standbys must never read an
# older one in its next transaction than in its last.  Region eu-west has
# two standbys, eu-a (first) and eu-b, whose replay is paused; a row is
# written on the primary and replayed by eu-a only.  A session reads it on
# eu-a; eu-a stops; its next transaction must not go to eu-b (which the
# health checks last saw at the same position as eu-a, before the row),
# since nothing shows eu-b has what the session read: it goes to the
# primary and sees the row.  A new session, which has read nothing, does
# go to eu-b: the rule, not the route, kept the first one away.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pg_basebackup);

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin('CREATE TABLE marks (id int PRIMARY KEY)', dbname => 'movr');
$us->psql_admin('GRANT SELECT ON marks TO app', dbname => 'movr');
my $ea = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-a');
my $eb = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-b');
$_->wait_streaming for $ea, $eb;
my $start = $us->current_lsn;
ok $ea->wait_replay($start) && $eb->wait_replay($start), 'both standbys replayed the setup';

my $auth_dir = tmpdir(name => 'txn-reads-auth');
write_file("$auth_dir/userlist.txt",
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});
# One round of checks, then none for a minute: the positions they read stay as they were.
my $p = PgNearTest::Proxy->new(
    regions  => [{ name => 'us-east', location => '39.04, -77.49', hosts => [$us] },
                 { name => 'eu-west', location => '53.35, -6.26', hosts => [$ea, $eb] }],
    settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", admin_users => 'admin',
                  server_tls => 'disable', pool_mode => 'transaction', workers => 1,
                  health_check_interval => '60s', min_lsn_wait => '0' });
ok wait_until(sub { 2 == grep { $_->{region} eq 'eu-west' && $_->{role} eq 'standby' && $_->{lsn} ne '' }
                            $p->admin_rows('SHOW REGIONS') }, timeout => 30),
  'the health checks know both eu-west hosts as standbys, with positions';

$eb->pause_replay;
$us->psql_admin('INSERT INTO marks VALUES (1)', dbname => 'movr');
ok $ea->wait_replay($us->current_lsn), 'eu-a replayed the row; eu-b is paused';
is $eb->psql_admin('SELECT count(*) FROM marks', dbname => 'movr'), '0', 'eu-b lacks the row';

sub session {
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { options => '-c pgnear.target_session_attrs=prefer-standby -c pgnear.location=53.35,-6.26' });
    die 'login: ' . ($r->{error} ? $r->{error}{M} : 'eof') . "\n" unless $r->{ok};
    return $w;
}
sub where {
    my ($w) = @_;
    my $q = $w->query(q{SELECT current_setting('cluster_name') || '|' || count(*) FROM marks WHERE id = 1});
    return $q->{rows}[0][0] // 'error: ' . ($q->{error}{M} // 'none');
}

my $s = session();
is where($s), 'eu-a|1', 'first transaction: the nearest standby, which has the row';
$ea->stop(mode => 'immediate');
is where($s), 'us-east|1', 'next transaction, eu-a gone: the primary, not eu-b, which may be older';
is where($s), 'us-east|1', 'and the one after';
my $fresh = session();
is where($fresh), 'eu-b|0', 'a session that has read nothing does go to eu-b';
$eb->resume_replay;
ok $eb->wait_replay($us->current_lsn), 'eu-b replays the row';
$_->terminate for $s, $fresh;
ok $p->is_running, 'pgnear is running';
$p->stop;

done_testing;
