#!/usr/bin/perl
# doc/howto/choosing-a-need.md's tables, held against a primary (us-east)
# and a streaming standby (eu-west) behind pgnear, for a caller in Dublin
# (whose nearest host is the standby): for each need of the page's first
# table, where a session lands and what a write gets, and that the page's
# row says so; the page's fence table: with a position no server has
# reached, read-only is refused with the page's words, prefer-standby and
# nearest read on the primary after min_lsn_wait, read-write goes to the
# primary at once; a fence the standby has replayed reads there.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use File::Basename qw(dirname);
use Test::More;
use Time::HiRes qw(time);
use PgNearTest;

my $src = $ENV{PGNEAR_SRCDIR} // dirname(dirname($FindBin::RealBin . '/x'));
my $page_path = "$src/doc/howto/choosing-a-need.md";
my $page = slurp_file($page_path);
plan skip_all => 'PGNEAR is not set: run it through make check' unless $ENV{PGNEAR};
require_tool('psql');
require_tool('pg_basebackup');

# ---- the page's first table: need -> (lands on, a write)
my %row;
while ($page =~ /^\| `([\w-]+)`(?: \(the default\))? \| ([^|]+) \| ([^|]+) \| [^|]+ \| [^|]+ \|$/mg) {
    $row{$1} = { lands => $2, write => $3 };
}
my @needs = qw(any read-write primary read-only standby prefer-standby prefer-primary nearest);
is_deeply([sort keys %row], [sort @needs], 'the page has a row for each need');

# What a Dublin caller gets with a primary in us-east and a standby in
# eu-west, and the words of the page's row that say it.
my %want = (
    'any'            => ['standby', '25006', qr/the nearest host that is up, whatever its role/, qr/fails with `25006` when that host is a standby/],
    'read-write'     => ['primary', 'ok', qr/primary/, qr/^runs/],
    'primary'        => ['primary', 'ok', qr/primary/, qr/^runs/],
    'read-only'      => ['standby', '25006', qr/standby/, qr/^fails with `25006`/],
    'standby'        => ['standby', '25006', qr/standby/, qr/^fails with `25006`/],
    'prefer-standby' => ['standby', '25006', qr/as `read-only`/, qr/fails on a standby/],
    'prefer-primary' => ['primary', 'ok', qr/the nearest primary/, qr/runs on the primary/],
    'nearest'        => ['standby', 'ok primary', qr/a standby before its region's primary/, qr/run again on the primary/],
);

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin('CREATE TABLE marks (id serial PRIMARY KEY, need text)', dbname => 'movr');
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
my $dir = tmpdir(name => 'howto-need');
write_file("$dir/userlist.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n"app" "}
                                . $us->scram_verifier('app') . qq{"\n});
my %common = (auth_file => "$dir/userlist.txt", admin_users => 'admin', cities_file => "$src/conf/cities.csv",
              server_tls => 'disable', health_check_interval => '1s');
my $p = PgNearTest::Proxy->new(regions => [$us, $eu],
    settings => { %common, auth => 'scram',
                  min_lsn_wait => '1s', failover_wait => '3s' });
ok(wait_until(sub { my %r = map { $_->{region} => $_->{role} } $p->admin_rows('SHOW REGIONS');
                    ($r{'us-east'} // '') eq 'primary' && ($r{'eu-west'} // '') eq 'standby' }, timeout => 20),
   'the health checks know the primary and the standby');

sub dublin { $p->conninfo(options => join ' ', '-c pgnear.city=Dublin', map { "-c pgnear.$_" } @_) }

for my $need (@needs) {
    my ($lands, $write, $lands_re, $write_re) = @{ $want{$need} };
    like($row{$need}{lands}, $lands_re, "$need: the page says where it lands");
    like($row{$need}{write}, $write_re, "$need: ... and what a write gets");
    my $ci = dublin("target_session_attrs=$need");
    my $role = psql($ci, "SELECT CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary' END");
    is($role, $lands, "$need: a Dublin session lands on the $lands");
    my ($rc, $out, $err) = psql($ci, "INSERT INTO marks (need) VALUES ('$need') "
                                     . "RETURNING CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary' END",
                                verbose => 1);
    if ($write eq '25006') {
        is(sqlstate($err), '25006', "$need: its write fails with 25006");
    } else {
        is($rc, 0, "$need: its write runs") or diag($err);
        like($out, qr/^primary$/m, '... on the primary') if $write =~ /primary/;
    }
}

# ---- fences: the page's second table
my ($fences) = $page =~ /^\| the reader's need \|.*?\n\n/ms ? ($&) : ('');
like($fences, qr/`read-only`, `standby` \| .* waits up to `failover_wait` \(10 s\), then refuses the login: `no read-only server has replayed pgnear\.min_lsn \.\.\. yet`/,
     'the page: read-only with a fence no standby has is refused');
like($fences, qr/`any`, `prefer-standby`, `nearest` \| .* waits up to `min_lsn_wait` \(1 s\) for one, then the primary/,
     '... prefer-standby and nearest wait, then read on the primary');
my $far = 'FF/0';
my $t1 = time;
my ($rc, $out, $err) = psql(dublin('target_session_attrs=read-only', "min_lsn=$far"), 'SELECT 1');
isnt($rc, 0, 'read-only with a fence no standby has: refused');
cmp_ok(time - $t1, '>=', 2.8, '... after failover_wait (3 s here)');
like($err, qr/no read-only server has replayed pgnear\.min_lsn \Q$far\E yet/, '... with the page\'s words');
for my $need ('prefer-standby', 'nearest') {
    my $t0 = time;
    my $got = psql(dublin("target_session_attrs=$need", "min_lsn=$far"), 'SELECT pg_is_in_recovery()');
    is($got, 'f', "$need with that fence: reads on the primary");
    cmp_ok(time - $t0, '<', 2.5, '... having waited no longer than min_lsn_wait (1 s here)');
}
my $t0 = time;
is(psql(dublin('target_session_attrs=read-write', "min_lsn=$far"), 'SELECT pg_is_in_recovery()'), 'f',
   'read-write with that fence: the primary');
cmp_ok(time - $t0, '<', 0.9, '... at once');
my $lsn = $us->psql_admin('SELECT pg_current_wal_lsn()');
ok(wait_until(sub { psql(dublin('target_session_attrs=read-only', "min_lsn=$lsn"), 'SELECT pg_is_in_recovery()') eq 't' },
              timeout => 10), 'a fence the standby has replayed reads on the standby');

# ---- what nearest needs: under auth = passthrough it runs on the primary
like($page, qr/`nearest` needs `auth = scram`[^.]*runs on the primary/s,
     'the page: nearest needs auth = scram, else it runs on the primary');
my $pt = PgNearTest::Proxy->new(regions => [$us, $eu], settings => { %common, auth => 'passthrough' });
ok(wait_until(sub { my %r = map { $_->{region} => $_->{role} } $pt->admin_rows('SHOW REGIONS');
                    ($r{'eu-west'} // '') eq 'standby' }, timeout => 20), 'a pgnear with auth = passthrough');
is(psql($pt->conninfo(options => '-c pgnear.city=Dublin -c pgnear.target_session_attrs=nearest'),
        'SELECT pg_is_in_recovery()'), 'f', '... runs a Dublin nearest session on the primary');

done_testing();
