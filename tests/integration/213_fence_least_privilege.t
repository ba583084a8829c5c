# Fenced reads on standbys when the health check's user has no privileges
# at all (the demo's setup: server_conninfo logs in as the application's
# user), next to one with pg_read_all_stats.  Such a user cannot read a
# standby's WAL receiver; pgnear then takes the standby's timeline from its
# control file, which any role may read, where that cannot be behind.
#
# A primary (us-east) and two streaming standbys (eu-west, us-west): a
# report_fence write, then reads with its fence (prefer-standby, read-only,
# standby) land on the nearest standby at once, through both pgnear.  Then
# eu-west is promoted (timeline 2) and us-west follows it: the
# unprivileged pgnear cannot yet know that us-west replays timeline 2 (its
# control file says 1 until its next restartpoint), so a fence of timeline
# 2 goes to the primary and never to a standby that might not have it;
# the privileged one reads the WAL receiver and reads on us-west.  After a
# restartpoint on us-west, both read there.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

require_tool('psql');
require_tool('pg_basebackup');

# Trust on loopback: the logins are many, and this test is about where sessions land.
my @HBA = ('local all all trust', 'host all all 127.0.0.1/32 trust', 'host all all ::1/128 trust');
my $us = PgNearTest::Cluster->new(name => 'us-east', hba => \@HBA);
$us->psql_admin(["CREATE ROLE watcher LOGIN", "CREATE ROLE watcher_stats LOGIN IN ROLE pg_read_all_stats"]);
$us->psql_admin('CREATE TABLE marks (id int PRIMARY KEY)', dbname => 'movr');
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west', hba => \@HBA);
my $west = PgNearTest::Cluster->new_standby(primary => $us, name => 'us-west', hba => \@HBA);

my @regions = ({ name => 'us-east', hosts => [$us] }, { name => 'eu-west', hosts => [$eu] },
               { name => 'us-west', hosts => [$west] });
my $auth_dir = PgNearTest::tmpdir(name => 'fence-lp');
write_file("$auth_dir/userlist.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
my %common = (auth => 'passthrough', server_tls => 'disable', health_check_interval => '1s',
              admin_users => 'admin', auth_file => "$auth_dir/userlist.txt",
              health_check_timeout => '2s', failover_wait => '3s', min_lsn_wait => '2s');
my %px = (
    'least privilege'   => PgNearTest::Proxy->new(regions => \@regions,
                               settings => { %common, server_conninfo => 'user=watcher' }),
    'pg_read_all_stats' => PgNearTest::Proxy->new(regions => \@regions,
                               settings => { %common, server_conninfo => 'user=watcher_stats' }),
);
for my $k (sort keys %px) {
    for my $r ('eu-west', 'us-west') {
        ok wait_until(sub { $px{$k}->log_contents =~ /region \Q$r\E is up: it is a standby/ }, timeout => 20),
          "$k: the health checks know $r is a standby";
    }
}
# One psql for both (the standby has the primary's roles).
my ($su, $stats) = split /\|/, $eu->psql_admin("SELECT has_table_privilege('watcher', 'pg_authid', 'SELECT'), "
                                               . "pg_has_role('watcher', 'pg_read_all_stats', 'USAGE')");
like $su, qr/^f$/, 'watcher is no superuser';
is $stats, 'f', 'watcher lacks pg_read_all_stats';

sub wire {
    my ($px, $options) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $px->port, timeout => 20);
    my $r = eval { $w->startup(user => 'app', database => 'movr', params => { options => $options }) }
            // { error => { M => $@ } };
    return ($w, $r);
}
# Where the primary's WAL is written up to: a position a standby's replay reaches.
sub written { $_[0]->psql_admin('SELECT pg_current_wal_lsn()') }
sub lsn_num { my ($hi, $lo) = $_[0] =~ m{([0-9A-F]+)/([0-9A-F]+)$}i; hex($hi) * 2**32 + hex($lo) }
# SHOW REGIONS of $px, one hash per host (NULL as '', as psql shows it).
# One admin console session per pgnear, kept: the polls below ask often,
# and a psql each (a process and a SCRAM login) took most of their time.
my %admin;
sub regions {
    my ($px) = @_;
    my $w = $admin{ $px->port } //= do {
        my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $px->port, timeout => 20);
        my $r = $w->startup(user => 'admin', database => 'pgnear', password => 'admin-secret');
        die "admin console login: $r->{error}{M}\n" unless $r->{ok};
        $w;
    };
    my $q = $w->query('SHOW REGIONS');
    die 'SHOW REGIONS: ' . ($q->{error} ? $q->{error}{M} : 'the session ended') . "\n"
      if $q->{error} || $q->{eof};
    my @cols = @{ $q->{columns} };
    return map { my %h; @h{@cols} = map { $_ // '' } @$_; \%h } @{ $q->{rows} };
}
# Bounded wait until $px's health checks have read that $region replayed $fence.
sub seen_replayed {
    my ($px, $region, $fence) = @_;
    return wait_until(sub {
        my ($h) = grep { $_->{region} eq $region } regions($px);
        $h && length $h->{lsn} && lsn_num($h->{lsn}) >= lsn_num($fence);
    }, timeout => 10);
}
sub fence_of { my ($res) = @_; my @f = map { $_->[1] } grep { $_->[0] eq 'pgnear.fence' } @{ $res->{parameters} // [] }; $f[0] }

# A write through $px with report_fence: its fence.
my $next_id = 1;
sub write_fence {
    my ($px) = @_;
    my ($w, $r) = wire($px, '-c pgnear.target_session_attrs=read-write -c pgnear.report_fence=on');
    die "writer: $r->{error}{M}\n" unless $r->{ok};
    my $fence = fence_of($w->query('INSERT INTO marks VALUES (' . $next_id++ . ')'));
    $w->terminate;
    return $fence;
}
# Where a fenced read lands, whether it sees the row, and how long its login took.
sub fenced_read {
    my ($px, $options, $fence, $id) = @_;
    my $t0 = time;
    my ($w, $r) = wire($px, "$options -c pgnear.min_lsn=$fence");
    my $took = time - $t0;
    return ("error $r->{error}{C}: $r->{error}{M}", 0, $took) unless $r->{ok};
    my $row = $w->query("SELECT current_setting('cluster_name'), count(*) FROM marks WHERE id = $id")->{rows}[0];
    $w->terminate;
    return ($row->[0], $row->[1], $took);
}

# ------------------------------------------------------------------ one timeline

for my $k (sort keys %px) {
    is join(',', map { "$_->{region}:$_->{timeline}" } regions($px{$k})), 'us-east:1,eu-west:1,us-west:1',
      "$k: SHOW REGIONS gives every host's timeline";
    for my $need ('prefer-standby', 'read-only', 'standby', 'any') {
        my $id = $next_id;
        my $fence = write_fence($px{$k});
        like $fence, qr{^00000001/}, "$k, $need: a fence on timeline 1";
        ok seen_replayed($px{$k}, 'eu-west', $fence), "... which pgnear's checks see eu-west replay";
        my ($where, $seen, $took) =
          fenced_read($px{$k}, "-c pgnear.location=53.35,-6.26 -c pgnear.target_session_attrs=$need", $fence, $id);
        is $where, 'eu-west', "$k, $need: the fenced read from Dublin (pgnear.location) lands on the standby in eu-west";
        is $seen, 1, '... and sees the row';
        cmp_ok $took, '<', 1.9, sprintf('... without waiting for min_lsn_wait (2 s) or failover_wait (3 s): %.2f s', $took);
    }
}

# ------------------------------------------------------------------ across a promotion

$us->stop;
$eu->promote;
ok wait_until(sub { $eu->psql_admin('SELECT pg_is_in_recovery()') eq 'f' }, timeout => 30), 'eu-west is promoted';
like $eu->psql_admin('SELECT pg_walfile_name(pg_current_wal_lsn())'), qr/^00000002/, '... onto timeline 2';
$west->psql_admin("ALTER SYSTEM SET primary_conninfo = 'host=" . $eu->socket_dir . ' port=' . $eu->port
                  . " user=postgres'");
$west->psql_admin('SELECT pg_reload_conf()');
ok wait_until(sub { $west->psql_admin('SELECT received_tli FROM pg_stat_wal_receiver') eq '2' }, timeout => 30),
  'us-west follows eu-west on timeline 2';
is $west->psql_admin('SELECT timeline_id FROM pg_control_checkpoint()'), '1',
  "... while its control file still names timeline 1 (no restartpoint yet)";
for my $k (sort keys %px) {
    ok wait_until(sub { $px{$k}->log_contents =~ /region eu-west is up: it is a primary now/ }, timeout => 20),
      "$k: eu-west is seen a primary";
}

my %timeline = ('least privilege' => '', 'pg_read_all_stats' => '2');
for my $k (sort keys %px) {
    my $h;
    ok wait_until(sub { ($h) = grep { $_->{region} eq 'us-west' } regions($px{$k}); $h->{timeline} eq $timeline{$k} },
                  timeout => 10), "$k: SHOW REGIONS gives us-west's timeline as '$timeline{$k}' (empty: not known)"
      or diag explain $h;
}
my %after = ('least privilege' => 'eu-west', 'pg_read_all_stats' => 'us-west');
for my $k (sort keys %px) {
    my $id = $next_id;
    my $fence = write_fence($px{$k});
    like $fence, qr{^00000002/}, "$k: a fence on timeline 2";
    ok seen_replayed($px{$k}, 'us-west', $fence), "... which pgnear's checks see us-west replay";
    my ($where, $seen) = fenced_read($px{$k}, '-c pgnear.region=us-west -c pgnear.target_session_attrs=prefer-standby',
                                     $fence, $id);
    is $where, $after{$k}, "$k: a fenced prefer-standby read asking for us-west is read in $after{$k}";
    is $seen, 1, '... and sees the row';
}

# A restartpoint on us-west: its control file names timeline 2, and both pgnear read there.
$eu->psql_admin('CHECKPOINT');
ok $west->wait_replay(written($eu)), 'us-west replays the new primary\'s checkpoint';
$west->psql_admin('CHECKPOINT');
is $west->psql_admin('SELECT timeline_id FROM pg_control_checkpoint()'), '2',
  '... and after a restartpoint its control file names timeline 2';
for my $k (sort keys %px) {
    my $id = $next_id;
    my $fence = write_fence($px{$k});
    ok seen_replayed($px{$k}, 'us-west', $fence), "$k: a fence on timeline 2, replayed by us-west";
    my $where;
    ok wait_until(sub {
        ($where) = fenced_read($px{$k}, '-c pgnear.region=us-west -c pgnear.target_session_attrs=prefer-standby',
                               $fence, $id);
        $where eq 'us-west';
    }, timeout => 10), "$k: the fenced read asking for us-west is read there now" or diag "last: $where";
}

# An old fence of timeline 1 on a standby of timeline 2: never read there (it may be lost history).
for my $k (sort keys %px) {
    my ($where) = fenced_read($px{$k}, '-c pgnear.region=us-west -c pgnear.target_session_attrs=prefer-standby',
                              '00000001/0/3000000', 1);
    is $where, 'eu-west', "$k: a fence of the old timeline goes to the primary";
}

done_testing;
