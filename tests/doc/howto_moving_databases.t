#!/usr/bin/perl
# doc/howto/moving-databases.md, its checks and its way back, on one
# machine: two clusters with wal_level = logical (tests/lib/PgNearDbMove.pm),
# movr in us-east with two tables logical replication cannot carry (one
# without a primary key, one unlogged) beside two it can (a primary key;
# REPLICA IDENTITY FULL).  The page's SQL of "1. Check first", read from
# the page, names exactly the two; MOVE DATABASE refuses with 55000 as the
# page's table says; after the page's remedies the query names none, the
# move starts, and ABORT (the page's way back while copying or streaming)
# leaves it aborted and the target without the database.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use File::Basename qw(dirname);
use Test::More;
use PgNearTest;
use PgNearDbMove qw(logical_pair write_users admin_rows admin_refused move_state);

my $src = $ENV{PGNEAR_SRCDIR} // dirname(dirname($FindBin::RealBin . '/x'));
my $page_path = "$src/doc/howto/moving-databases.md";
my $page = slurp_file($page_path);
plan skip_all => 'PGNEAR is not set: run it through make check' unless $ENV{PGNEAR};
require_tool('psql');
require_tool('pg_dump');

my ($section) = $page =~ /^## 1\. Check first\n(.*?)(?=^## )/ms or BAIL_OUT("no \"1. Check first\" in $page_path");
my ($check_sql) = $section =~ /^```sql\n(.*?)^```$/ms or BAIL_OUT('no ```sql block under "1. Check first"');
my ($refusals) = $section =~ /^(\| SQLSTATE \|.*?)\n\n/ms or BAIL_OUT('no table of refusals');
like($refusals, qr/^\| `55000` \| a table has no primary key or replica identity;/m,
     'the page: a table without a primary key or replica identity is refused with 55000');
like($refusals, qr/`ALTER TABLE \.\.\. REPLICA IDENTITY FULL`/, '... and says what to do');

my ($us, $eu, $app_secret) = logical_pair(rides => 1000, extra => [
    'CREATE TABLE audit_log (at timestamptz DEFAULT now(), what text)',
    'CREATE UNLOGGED TABLE sessions_cache (id int PRIMARY KEY, data text)',
    'CREATE TABLE settings (name text, value text)',
    'ALTER TABLE settings REPLICA IDENTITY FULL',
]);

# The page's query, as psql runs a file: its statements' rows, in order.
sub check_rows {
    my ($rc, $out, $err) = psql(conninfo_string(host => $us->socket_dir, port => $us->port, user => 'postgres',
                                                dbname => 'movr'), undef, stdin => $check_sql, args => ['-F', '|']);
    is($rc, 0, "the page's check runs on the source's primary") or diag($err);
    return [split /\n/, $out];
}
my $rows = check_rows();
is_deeply([grep { /\|/ } @$rows],
          ['audit_log|no primary key nor replica identity', 'sessions_cache|unlogged'],
          'it names the table without a primary key and the unlogged one, and no other');
ok((grep { $_ eq 'logical' } @$rows), '... and wal_level is logical');

my $dir = tmpdir(name => 'howto-move', mode => 0755);
write_users($dir, $app_secret);
my $p = PgNearTest::Proxy->new(regions => [$us, $eu],
    settings => { auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                  server_tls => 'disable', health_check_interval => '1s', health_check_timeout => '5s' },
    extra_ini => "[database movr]\nregions = us-east\n");
my $admin = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');
ok(wait_until(sub { my ($r) = admin_rows($admin, 'SHOW REGIONS'); 2 == grep { $_->{role} eq 'primary' } @$r },
              timeout => 20), 'the health checks know both primaries');

admin_refused($admin, 'MOVE DATABASE movr TO REGION eu-west', '55000', qr/audit_log/,
              "MOVE DATABASE refuses as the page's table says");
is(move_state($admin, 'movr'), '', '... and leaves nothing behind (no move recorded)');

# The page's remedies: the replica identity, and no unlogged table.
$us->psql_admin(['ALTER TABLE audit_log REPLICA IDENTITY FULL', 'ALTER TABLE sessions_cache SET LOGGED'],
                dbname => 'movr');
$rows = check_rows();
is_deeply([grep { /\|/ } @$rows], [], 'after the remedies the check names no table');

my (undef, $err, $notices) = admin_rows($admin, 'MOVE DATABASE movr TO REGION eu-west', timeout => 120);
ok(!defined $err, 'MOVE DATABASE starts') or diag($err);
like(move_state($admin, 'movr'), qr/^(copying|streaming)$/, 'SHOW MOVES: copying or streaming');
(undef, $err) = admin_rows($admin, 'MOVE DATABASE movr ABORT', timeout => 120);
ok(!defined $err, 'ABORT, the way back while it copies or streams') or diag($err);
is(move_state($admin, 'movr'), 'aborted', 'SHOW MOVES: aborted');
is($eu->psql_admin("SELECT count(*) FROM pg_database WHERE datname = 'movr'"), '0',
   'the target is without the database the move made');

done_testing();
