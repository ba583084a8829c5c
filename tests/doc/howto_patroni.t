#!/usr/bin/perl
# doc/howto/patroni.md, followed on one machine: a Patroni cluster
# (tests/lib/PgNearPatroni.pm: etcd and a Patroni per member) whose three
# members are the page's, tagged with the page's regions, and pgnear
# started on the page's configuration, read from the page itself: its
# regions list no hosts, `patroni` names every member's REST API.  What a
# machine of its own changes: the REST ports, plain TCP to the servers
# (the harness's members have no certificates), the files' paths, the
# page's pgnear user's password (the harness made the role).
#
# pgnear takes each member into the region its tag names (SHOW REGIONS),
# the leader as the primary; a writer lands on the leader, a Dublin
# session reads on eu-west; after a switchover (patronictl) the writer
# lands on the new leader.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use File::Basename qw(dirname);
use Test::More;
use PgNearTest;
use DocPage;

my $src = $ENV{PGNEAR_SRCDIR} // dirname(dirname($FindBin::RealBin . '/x'));
my $page_path = "$src/doc/howto/patroni.md";
my $page = slurp_file($page_path);
plan skip_all => 'PGNEAR is not set: run it through make check' unless $ENV{PGNEAR};
require_tool('psql');
require PgNearPatroni;

# ---- the page's blocks: the first fenced block of a kind under a heading (tests/lib/DocPage.pm)
sub block { DocPage::block($page, $page_path, @_) }

# The members, from the page's table: name, region, REST API.
my @members = $page =~ /^\| `([\w-]+)` \| ([\w-]+) \| `[\d.:]+` \| `(http:\/\/[\d.:]+)` \|$/mg;
my @spec;
push @spec, [splice(@members, 0, 3)] while @members;
is(scalar @spec, 3, 'the page names three members: ' . join(', ', map { "$_->[0] ($_->[1])" } @spec));
my $tags = block('1. Tag each member with its region', 'yaml');
like($tags, qr/^tags:\n  pgnear_region: us-east\b/m, "the page's tag: pgnear_region under tags");

my $pc = PgNearPatroni->new(members => [map { [$_->[0], $_->[1]] } @spec]);
my %member = map { $_->{name} => $_ } $pc->members;
for my $s (@spec) {
    like(slurp_file($member{ $s->[0] }{conf}), qr/^tags:\n  pgnear_region: (['"]?)\Q$s->[1]\E\1$/m,
         "$s->[0]'s patroni.yml has the page's tag, pgnear_region: $s->[1]");
}
my $leader = $pc->leader;
is($leader->{name}, $spec[0][0], "$spec[0][0] leads (it bootstrapped the cluster)");
$pc->psql($leader, 'CREATE TABLE rides (id serial PRIMARY KEY, city text)', dbname => 'movr');
$pc->psql($leader, "ALTER TABLE rides OWNER TO $PgNearTest::APP_USER", dbname => 'movr');

# ---- the page's configuration, for this machine
my $ini = block('3. pgnear', 'ini');
my (%set, @regions, $section);
for (split /\n/, $ini) {
    next if /^\s*(;|$)/;
    if (/^\[(pgnear|region (\S+))\]/) {
        $section = $2 // '';
        push @regions, { name => $2, hosts => [] } if $2;
        next;
    }
    my ($k, $v) = /^(\w+)\s*=\s*(.*?)\s*$/ or BAIL_OUT("not a setting: $_");
    if ($section eq '') {
        $set{$k} = $v;
    } else {
        BAIL_OUT("the page's region $regions[-1]{name} lists $k") unless $k eq 'location';
        $regions[-1]{location} = $v;
    }
}
is_deeply([map { $_->{name} } @regions], [map { $_->[1] } @spec], "the page's regions are its members' tags, and list no hosts");
my %rest = map { $_->[2] => "http://127.0.0.1:$member{ $_->[0] }{rest_port}" } @spec;
my @urls = split /\s*,\s*/, $set{patroni};
is_deeply([sort @urls], [sort keys %rest], '`patroni` names every member\'s REST API');
$set{patroni} = join ', ', map { $rest{$_} } @urls;
my $dir = PgNearTest::tmpdir(name => 'howto-patroni');
my $verifier = $pc->psql($leader, "SELECT rolpassword FROM pg_authid WHERE rolname = '$PgNearTest::APP_USER'");
write_file("$dir/userlist.txt",
           qq{"$PgNearTest::APP_USER" "$verifier"\n"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
write_file("$dir/pgpass", "*:*:*:pgnear:$PgNearTest::PGNEAR_PASSWORD\n");
chmod 0600, "$dir/pgpass";
$set{auth_file} = "$dir/userlist.txt";
$set{server_conninfo} =~ s{passfile=/etc/pgnear/pgpass}{passfile=$dir/pgpass};
$set{server_tls} = 'disable';
delete $set{server_tls_ca_file};
$set{cities_file} = "$src/conf/cities.csv";
$set{admin_users} = 'admin';
delete @set{qw(listen_addr listen_port)};
my $px = PgNearTest::Proxy->new(regions => \@regions, settings => \%set);
my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $px->config_path]);
is($rc, 0, 'pgnear --check accepts the configuration') or diag($err);

# ---- step 3's look: each member in its region, the leader the primary
sub roles {
    my %r;
    for ($px->admin_rows('SHOW REGIONS')) {
        $r{ $_->{region} } = $_->{role} if $_->{up} eq 't';
    }
    return \%r;
}
my %want = map { $_->[1] => ($_->[0] eq $leader->{name} ? 'primary' : 'standby') } @spec;
ok(wait_until(sub { my $r = roles(); !grep { ($r->{$_} // '') ne $want{$_} } keys %want }, timeout => 30),
   'SHOW REGIONS: each member in the region its tag names, the leader the primary')
  or diag(explain(roles()));
ok($px->log_contents =~ /patroni: the members no region lists are now/, 'the log names the members taken from Patroni');

my $writer = $px->conninfo(options => '-c pgnear.target_session_attrs=read-write');
my $dublin = $px->conninfo(options => '-c pgnear.city=Dublin');
sub where { scalar psql($_[0], "SELECT inet_server_port()") }
is(where($writer), $leader->{port}, 'a writer lands on the leader');
is(psql($dublin, 'SELECT pg_is_in_recovery(), inet_server_port()'), "t|$member{ $spec[1][0] }{port}",
   'a Dublin session reads on the eu-west member');

# ---- step 4: a switchover
my $new = $pc->switchover($spec[1][0]);
is($new->{name}, $spec[1][0], "patronictl switchover: $spec[1][0] leads");
ok(wait_until(sub { my ($r, $o) = psql($writer, 'SELECT inet_server_port()'); !$r && $o == $new->{port} },
              timeout => 30), '... and a writer through pgnear lands there');
like(psql($writer, "INSERT INTO rides (city) VALUES ('dublin') RETURNING inet_server_port()"),
     qr/^$new->{port}\b/m, '... and writes there');

done_testing();
