# Monotonic reads across standbys, for nearest (both pool modes) and
# prefer-standby (transaction pooling): a session never reads a key shorter
# than it read before, whichever standby serves its next read.
#
# Region eu-west has two standbys, eu-a (first) and eu-b.  eu-b's replay is
# paused while rows are written; each session reads them all on eu-a.
#   1. eu-a dies (immediate stop): the next read must not go to eu-b, which
#      has fewer rows (its health checks say so: it is behind what the
#      primary had written when the read ended); it runs on the primary.
#      Before pgnear followed nearest's reads, it ran on eu-b.
#   2. eu-b catches up and more rows come; the sessions read them on eu-b.
#   3. eu-a comes back behind (it opens at its minimum recovery point, and
#      recovery_min_apply_delay keeps it there): nearer, up and under
#      max_standby_lag, it must still not serve these sessions, which read
#      more on eu-b, nor two sessions that read on eu-a before it died and
#      nothing since (it came back behind what it showed them); a new
#      session, which read nothing, does read there.
#   4. eu-a restarts behind again, its checks 60 s apart: the server
#      ending pgnear's idle connection to it casts doubt on its position
#      until a check (hurried) has read it, so a session that read there
#      reads elsewhere meanwhile.
#   5. The same with no pooled connection to eu-a: the health checks' kept
#      connection, ended by its server, casts the doubt.
# Run with workers = PGNEAR_TEST_WORKERS (2 by default).
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
my $next = 1;
sub add_rows {
    my ($n) = @_;
    my $to = $next + $n - 1;
    $us->psql_admin("INSERT INTO marks SELECT generate_series($next, $to)", dbname => 'movr');
    $next = $to + 1;
    return $us->current_lsn;
}
my $lsn = add_rows(10);
ok $ea->wait_replay($lsn) && $eb->wait_replay($lsn), 'both standbys replayed the first 10 rows';
# Read at eu-a's next start only: it comes back and stays behind (step 3).
$ea->psql_admin(q{ALTER SYSTEM SET recovery_min_apply_delay = '1h'});

my $auth_dir = tmpdir(name => 'monotonic-auth');
write_file("$auth_dir/userlist.txt",
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});
my $WORKERS = $ENV{PGNEAR_TEST_WORKERS} // 2;
sub proxy {
    my ($mode) = @_;
    return PgNearTest::Proxy->new(
        regions  => [{ name => 'us-east', location => '39.04, -77.49', hosts => [$us] },
                     { name => 'eu-west', location => '53.35, -6.26', hosts => [$ea, $eb] }],
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", admin_users => 'admin',
                      server_tls => 'disable', pool_mode => $mode, workers => $WORKERS,
                      health_check_interval => '200ms', max_standby_lag => '120s',
                      min_lsn_wait => '300ms', failover_wait => '2s' });
}
my %proxy = (transaction => proxy('transaction'), session => proxy('session'));
for my $mode (sort keys %proxy) {
    ok wait_until(sub { 3 == grep { $_->{up} eq 't' && $_->{lsn} ne '' } $proxy{$mode}->admin_rows('SHOW REGIONS') },
                  timeout => 30), "$mode: the health checks know every host, with positions";
}

sub session {
    my ($p, $need) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { options => "-c pgnear.target_session_attrs=$need -c pgnear.location=53.35,-6.26" });
    die 'login: ' . ($r->{error} ? $r->{error}{M} : 'eof') . "\n" unless $r->{ok};
    return $w;
}
# Where a read ran, and how many rows it saw: [host, count].
sub read_marks {
    my ($w) = @_;
    my $q = $w->query(q{SELECT current_setting('cluster_name'), count(*) FROM marks});
    return $q->{rows}[0] ? [@{ $q->{rows}[0] }] : ['error: ' . ($q->{error}{M} // 'none'), -1];
}

my @sessions = (
    { name => 'nearest, transaction pooling',        w => session($proxy{transaction}, 'nearest') },
    { name => 'nearest, session pooling',            w => session($proxy{session}, 'nearest') },
    { name => 'prefer-standby, transaction pooling', w => session($proxy{transaction}, 'prefer-standby') },
    # These read on eu-a, then nothing until it came back behind itself.
    { name => 'nearest, idle while eu-a restarted', idle => 1, w => session($proxy{transaction}, 'nearest') },
    { name => 'prefer-standby, idle while eu-a restarted', idle => 1,
      w => session($proxy{transaction}, 'prefer-standby') },
);
# Each read: never fewer rows than the session's last; its host and count.
sub read_on {
    my ($s, $what) = @_;
    my ($host, $n) = @{ read_marks($s->{w}) };
    my $before = $s->{seen} // 0;
    ok $n >= $before, "$s->{name}: $what: $n rows on $host, no fewer than the $before read before"
      or diag "monotonic reads broken: $n rows on $host after $before";
    $s->{seen} = $n if $n > $before;
    return $host;
}

$eb->pause_replay;
$lsn = add_rows(10);
ok $ea->wait_replay($lsn), 'eu-a replayed 20 rows; eu-b is paused at 10';
is $eb->psql_admin('SELECT count(*) FROM marks', dbname => 'movr'), '10', 'eu-b has 10 rows';
for my $s (@sessions) {
    my $host = read_on($s, 'a read while both standbys are up');
    is $host, 'eu-a', "$s->{name}: it ran on the nearest standby";
    is $s->{seen}, 20, "$s->{name}: it saw all 20 rows";
}

# 1. eu-a dies: eu-b lacks what the sessions read.
$ea->stop(mode => 'immediate');
for my $s (grep { !$_->{idle} } @sessions) {
    my $host = read_on($s, 'the first read after eu-a died');
    isnt $host, 'eu-b', "$s->{name}: not on eu-b, which has not replayed what it read";
    read_on($s, 'the next read');
}

# 2. eu-b catches up; more rows; the sessions read near again, on eu-b.
$eb->resume_replay;
$lsn = add_rows(10);
ok $eb->wait_replay($lsn), 'eu-b replayed all 30 rows';
for my $s (grep { !$_->{idle} } @sessions) {
    my $host = '';
    ok wait_until(sub { ($host = read_on($s, 'a read while eu-b catches up')) eq 'eu-b' }, timeout => 10),
      "$s->{name}: reads come back near, on eu-b" or diag "last read on $host";
}

# 3. eu-a comes back behind what the sessions read on eu-b.
$ea->start;
for my $mode (sort keys %proxy) {
    ok wait_until(sub { grep { $_->{host} eq $ea->host && $_->{port} == $ea->port && $_->{up} eq 't'
                                 && $_->{role} eq 'standby' } $proxy{$mode}->admin_rows('SHOW REGIONS') },
                  timeout => 30), "$mode: eu-a is up and a standby again";
}
my $behind = $ea->psql_admin('SELECT count(*) FROM marks', dbname => 'movr');
ok $behind < 30, "eu-a came back behind: $behind rows";
select(undef, undef, undef, 0.5); # a few checks of eu-a since
for my $s (@sessions) {
    for my $i (1 .. 3) {
        my $host = read_on($s, "read $i with eu-a back behind");
        isnt $host, 'eu-a', "$s->{name}: read $i not on eu-a";
    }
}
my $fresh = session($proxy{transaction}, 'nearest');
is read_marks($fresh)->[0], 'eu-a', 'a new session, which read nothing, reads on eu-a: the rule kept the others away';

$_->{w}->terminate for @sessions;
$fresh->terminate;
for my $mode (sort keys %proxy) {
    ok $proxy{$mode}->is_running, "$mode: pgnear is running";
    $proxy{$mode}->stop;
}

# 4. eu-a restarts behind while no check of it is due (health_check_interval
#    60 s): its server ending pgnear's idle connection to it is the only
#    sign.  A session that read there must not read there again before a
#    check has read its new run and position.
# 5. The same where pgnear holds no connection of a session to eu-a (its
#    pool's closed after server_idle_timeout): the kept connection of the
#    health checks, which the server ends too, is the sign.
sub restart_between_checks {
    my ($name, %settings) = @_;
    $ea->psql_admin('ALTER SYSTEM RESET recovery_min_apply_delay');
    $ea->psql_admin('SELECT pg_reload_conf()');
    $lsn = add_rows(1);
    ok $ea->wait_replay($lsn), "$name: eu-a caught up";
    $ea->psql_admin('CHECKPOINT'); # a restartpoint: it comes back here
    $ea->psql_admin(q{ALTER SYSTEM SET recovery_min_apply_delay = '1h'});
    my $slow = PgNearTest::Proxy->new(
        regions  => [{ name => 'us-east', location => '39.04, -77.49', hosts => [$us] },
                     { name => 'eu-west', location => '53.35, -6.26', hosts => [$ea, $eb] }],
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", admin_users => 'admin',
                      server_tls => 'disable', pool_mode => 'transaction', workers => $WORKERS,
                      health_check_interval => '60s', max_standby_lag => '120s',
                      min_lsn_wait => '300ms', failover_wait => '2s', %settings });
    ok wait_until(sub { 3 == grep { $_->{up} eq 't' && $_->{lsn} ne '' } $slow->admin_rows('SHOW REGIONS') },
                  timeout => 30), "$name: the first checks know every host, with positions";
    $lsn = add_rows(10);
    ok $ea->wait_replay($lsn) && $eb->wait_replay($lsn), "$name: both standbys replayed 10 rows more";
    my $s = { name => $name, w => session($slow, 'nearest') };
    is read_on($s, 'a read before the restart'), 'eu-a', "$s->{name}: it read on eu-a";
    is $s->{seen}, $next - 1, "$s->{name}: every row";
    if ($settings{server_idle_timeout}) {
        ok wait_until(sub { $ea->psql_admin(q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'}) eq '0' },
                      timeout => 20), "$name: pgnear's pool holds no connection to eu-a";
        ok wait_until(sub { $ea->psql_admin(q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'pgnear'}) ne '0' },
                      timeout => 5), "$name: ... only the health checks' kept one";
    }
    $ea->stop(mode => 'immediate');
    $ea->start;
    $behind = $ea->psql_admin('SELECT count(*) FROM marks', dbname => 'movr');
    ok $behind < $s->{seen}, "$name: eu-a came back behind: $behind rows of $s->{seen}";
    my @hosts = map { read_on($s, "read $_ right after eu-a came back") } 1 .. 3;
    ok !(grep { $_ eq 'eu-a' } @hosts), "$s->{name}: none on eu-a (@hosts)";
    $s->{w}->terminate;
    ok $slow->is_running, "$name: pgnear is running";
    $slow->stop;
    $ea->psql_admin('ALTER SYSTEM RESET recovery_min_apply_delay');
}
restart_between_checks('nearest, eu-a restarted between checks');
restart_between_checks('nearest, eu-a restarted between checks, no pooled connection to it',
                       server_idle_timeout => '1s');

done_testing;
