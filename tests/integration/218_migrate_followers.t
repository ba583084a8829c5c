# Migrations where regions are standbys of another region's primary: a
# primary in us-east with streaming standbys (pg_basebackup -R) as the
# regions eu-west and us-west, and ap-southeast a cluster of its own (a
# primary and its standby, two hosts of one region).  The health checks
# read each host's system identifier, so pgnear knows which region's
# standbys replay which primary: MIGRATE PLAN and MIGRATE UP run the steps
# in us-east and ap-southeast only and say that the others follow;
# the followers' history and tables come by replication, each step having
# run once; SHOW MIGRATIONS reads the followers' copies; a command for a
# follower alone is refused with 55000 naming its leader; MIGRATE DOWN
# passes followers by too.  A region whose own primary is down while its
# standby is up is not a follower: MIGRATE UP refuses with 08001 before
# anything runs anywhere.  And a standby's lag is measured against its
# own primary: WAL written in us-east makes no standby of ap-southeast
# late.
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
my $uw = PgNearTest::Cluster->new_standby(primary => $us, name => 'us-west');
# A cluster of its own initdb: its system identifier is not us-east's.
my $ap = PgNearTest::Cluster->new(name => 'ap-southeast', own_initdb => 1);
my $ap_sb = PgNearTest::Cluster->new_standby(primary => $ap, name => 'ap-southeast-b');
ok $eu->is_in_recovery && $uw->is_in_recovery && $ap_sb->is_in_recovery, 'three streaming standbys';

my $auth_dir = PgNearTest::tmpdir(name => 'followers-auth');
write_file("$auth_dir/userlist.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
my $dir = PgNearTest::tmpdir(name => 'followers-steps');
# Each step leaves a row in runs: a step run twice in a cluster would show it.
write_file("$dir/0001_runs.sql", "CREATE TABLE runs (step int);\nINSERT INTO runs VALUES (1);\n");
write_file("$dir/0002_accounts.sql", "CREATE TABLE accounts (id int PRIMARY KEY);\nINSERT INTO runs VALUES (2);\n");
write_file("$dir/0002_accounts.down.sql", "DROP TABLE accounts;\nDELETE FROM runs WHERE step = 2;\n");

my @order = ('eu-west', 'us-east', 'us-west', 'ap-southeast');
my $p = PgNearTest::Proxy->new(
    regions => [{ name => 'us-east', hosts => [$us] }, { name => 'eu-west', hosts => [$eu] },
                { name => 'us-west', hosts => [$uw] }, { name => 'ap-southeast', hosts => [$ap, $ap_sb] }],
    settings => { auth => 'passthrough', server_tls => 'disable', auth_file => "$auth_dir/userlist.txt",
                  admin_users => 'admin', health_check_interval => '1s', health_check_timeout => '2s',
                  migrations_dir => $dir, migrations_db => 'movr', migration_order => join(', ', @order) });

sub admin_full { psql($p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret'), $_[0], verbose => 1) }
sub notes { my @n = $_[0] =~ /NOTICE:\s+(?:00000: )?(.*)/g; [grep { !/ s into the step$/ } @n] }
sub runs { [split /\n/, $_[0]->psql_admin('SELECT step FROM runs ORDER BY step', dbname => 'movr')] }

# Rows of an admin SHOW as hashes by column name.
sub show {
    my ($what) = @_;
    my ($rc, $out, $err) = psql($p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret'), $what,
                                args => ['-P', 'tuples_only=off', '-P', 'footer=off', '-F', '|']);
    die "$what: $err" if $rc != 0;
    my ($head, @rows) = split /\n/, $out;
    my @cols = split /\|/, $head, -1;
    return map { my @v = split /\|/, $_, -1; my %h; @h{@cols} = @v; \%h } @rows;
}

ok wait_until(sub { 5 == grep { $_->{role} ne 'unknown' } show('SHOW REGIONS') }, timeout => 20),
    'the health checks know every role';

my $follow_eu = 'region "eu-west" follows region "us-east": its standbys replay the steps run there';
my $follow_uw = 'region "us-west" follows region "us-east": its standbys replay the steps run there';

# ------------------------------------------------------------------ PLAN, UP

my ($rc, $out, $err) = admin_full('MIGRATE PLAN');
is $rc, 0, 'MIGRATE PLAN succeeds' or diag $err;
is_deeply [sort map { (split /\|/)[0] } split /\n/, $out], [sort qw(us-east us-east ap-southeast ap-southeast)],
    'MIGRATE PLAN: steps in us-east and ap-southeast only';
is_deeply notes($err), [$follow_eu, $follow_uw], 'MIGRATE PLAN: eu-west and us-west follow us-east';

($rc, $out, $err) = admin_full('MIGRATE UP');
is $rc, 0, 'MIGRATE UP succeeds' or diag $err;
my @notes = @{ notes($err) };
is_deeply [grep { /follows/ } @notes], [$follow_eu, $follow_uw], 'MIGRATE UP: the followers are said, in migration order';
is_deeply [map { /^region "([^"]+)": step (\d+) \(\w+\) applied/ ? "$1/$2" : () } @notes],
    ['us-east/1', 'us-east/2', 'ap-southeast/1', 'ap-southeast/2'], 'MIGRATE UP: each step once in each primary';
is_deeply runs($us), [1, 2], 'us-east: both steps ran once';
is_deeply runs($ap), [1, 2], 'ap-southeast: both steps ran once';
my $lsn = $us->current_lsn;
ok $eu->wait_replay($lsn) && $uw->wait_replay($lsn), 'the followers replayed us-east';
is_deeply runs($eu), [1, 2], 'eu-west has the steps by replication, each once';
is_deeply schema_states($uw, 'movr'), ['1:applied', '2:applied'], "us-west's history is us-east's";

my %state;
($rc, $out, $err) = admin_full('SHOW MIGRATIONS');
is $rc, 0, 'SHOW MIGRATIONS succeeds' or diag $err;
for (split /\n/, $out) { my @f = split /\|/; $state{"$f[2]/$f[0]"} = $f[3] }
is_deeply [map { $state{"$_/2"} } @order], [('applied') x 4], 'SHOW MIGRATIONS: step 2 applied in every region';
is_deeply notes($err), [$follow_eu, $follow_uw], 'SHOW MIGRATIONS says which regions follow';

($rc, $out, $err) = admin_full('MIGRATE UP');
is $rc, 0, 'MIGRATE UP again succeeds';
like $err, qr/nothing to run/, '... with nothing to run';

# ------------------------------------------------------------------ a follower alone

($rc, $out, $err) = admin_full('MIGRATE DOWN TO 1 IN REGION eu-west');
isnt $rc, 0, 'MIGRATE DOWN IN REGION of a follower fails';
like $err, qr/55000: region "eu-west" follows region "us-east": nothing runs in it/, '... 55000 naming its leader';
like $err, qr/HINT:\s+Run the command for the region that follows none/, '... with a hint';
is_deeply runs($us), [1, 2], '... and nothing ran in us-east';

($rc, $out, $err) = admin_full('MIGRATE DOWN TO 1');
is $rc, 0, 'MIGRATE DOWN TO 1 succeeds' or diag $err;
is_deeply [map { /^region "([^"]+)": step (\d+) \(\w+\) reverted/ ? "$1/$2" : () } @{ notes($err) }],
    ['ap-southeast/2', 'us-east/2'], 'MIGRATE DOWN: reverted in the primaries, reverse order';
is_deeply runs($us), [1], 'us-east: step 2 reverted';
$lsn = $us->current_lsn;
ok $eu->wait_replay($lsn), 'eu-west replayed it';
is_deeply schema_states($eu, 'movr'), ['1:applied', '2:reverted'], "eu-west's history follows";

# ------------------------------------------------------------------ a region's own primary down

# A standby of ap-southeast's own primary is no follower: with that primary
# down, the region cannot be migrated, and nothing runs anywhere.
$ap->stop;
ok wait_until(sub { grep { $_->{port} == $ap->port && $_->{up} eq 'f' } show('SHOW REGIONS') }, timeout => 20),
    'the ap-southeast primary is down';
($rc, $out, $err) = admin_full('MIGRATE UP');
isnt $rc, 0, 'MIGRATE UP with a region whose primary is down fails';
like $err, qr/08001: could not read the migration history of region "ap-southeast"/, '... 08001 naming it';
like $err, qr/DETAIL:\s+no primary: every host of region "ap-southeast" that is up is a standby, and none streams from another region's primary/,
    '... the detail says why it is no follower';
is_deeply runs($us), [1], '... and nothing ran in us-east';
$ap->start;

# ------------------------------------------------------------------ lag against its own primary

# Some WAL in us-east only: ap-southeast's standby is not behind anything.
$us->psql_admin('CREATE TABLE filler AS SELECT g, repeat(\'x\', 200) AS pad FROM generate_series(1, 20000) g',
                dbname => 'movr');
my $us_lsn = $us->current_lsn;
ok $eu->wait_replay($us_lsn), 'eu-west replayed the filler';
ok wait_until(sub {
        my ($h) = grep { $_->{port} == $ap_sb->port } show('SHOW REGIONS');
        my ($e) = grep { $_->{port} == $eu->port } show('SHOW REGIONS');
        $h && $e && $h->{lag_bytes} ne '' && $e->{lag_bytes} eq '0' && $h->{lag_bytes} < 100_000
    }, timeout => 10), "ap-southeast's standby is measured against its own primary, not us-east";

ok $p->is_running, 'pgnear is alive';
done_testing;
