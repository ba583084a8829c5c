#!/usr/bin/perl
# doc/howto/existing-primary.md, followed on one machine: its SQL, its
# pg_hba.conf line and its configuration file, read from the page itself,
# run against a primary (us-east) and two streaming standbys (eu-west,
# ap-northeast) in place of the page's servers.  The only changes are the
# ones a machine of its own needs: the servers' addresses and ports, the
# files' paths, 127.0.0.1 for the page's networks, pgnear's ports.
#
# The grants make a health-check user that is no superuser and has
# pg_read_all_stats; the auth_file query gives the file pgnear verifies
# clients with; pgnear --check says what the page says it says; SHOW
# REGIONS finds one primary and two standbys, each up, with its timeline;
# the page's Dublin session reads on eu-west's standby and its write runs
# on the primary (target_session_attrs = nearest), over TLS both ways.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use File::Basename qw(dirname);
use Test::More;
use PgNearTest;
use DocPage;

my $src = $ENV{PGNEAR_SRCDIR} // dirname(dirname($FindBin::RealBin . '/x'));
my $page_path = "$src/doc/howto/existing-primary.md";
my $page = slurp_file($page_path);
require_tool('psql');
require_tool('pg_basebackup');
plan skip_all => 'PGNEAR is not set: run it through make check' unless $ENV{PGNEAR};

# ---- the page's blocks: the first fenced block of a kind under a heading (tests/lib/DocPage.pm)
sub block { DocPage::block($page, $page_path, @_) }
my $grants = block('1. The user pgnear connects as', 'sql');
my $auth_sql = block('3. Passwords', 'sql');
my ($hba_line) = block('2. Let pgnear in', '') =~ /^(hostssl\s.*)$/m
  or BAIL_OUT('no hostssl line in the pg_hba.conf block');
my $ini = block('5. The configuration', 'ini');
my $tls = block('4. TLS to the servers', 'ini');
my ($check_cmd_out) = block('5. The configuration', '') =~ /^(\S+: configuration OK .*)$/m;
like($grants, qr/CREATE ROLE pgnear LOGIN/, 'the page makes the role pgnear');
for my $line (grep { /\S/ } split /\n/, $tls) {
    like($ini, qr/^\Q$line\E$/m, "its configuration has step 4's line: $line");
}

# ---- the servers, with the page's pg_hba.conf line for 127.0.0.1
(my $hba = $hba_line) =~ s{\s10\.0\.0\.0/8\s}{ 127.0.0.1/32 };
isnt($hba, $hba_line, "pg_hba.conf: the page's line, for 127.0.0.1: $hba");
my $ca = PgNearTest::CA->new;
my @hba = ('local all all trust', $hba);
my $us = PgNearTest::Cluster->new(name => 'us-east', ca => $ca, hba => \@hba, roles => 0);
$us->psql_admin($grants);
$us->psql_admin(["SET password_encryption = 'scram-sha-256'; CREATE ROLE app LOGIN PASSWORD 'app-secret'",
                 'CREATE DATABASE app OWNER app']);
$us->psql_admin('CREATE TABLE rides (id serial PRIMARY KEY, city text)', dbname => 'app');
$us->psql_admin('ALTER TABLE rides OWNER TO app', dbname => 'app');
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west', ca => $ca, hba => \@hba);
my $ap = PgNearTest::Cluster->new_standby(primary => $us, name => 'ap-northeast', ca => $ca, hba => \@hba);
my ($super, $stats) = split /\|/,
  $us->psql_admin("SELECT rolsuper, pg_has_role('pgnear', 'pg_read_all_stats', 'MEMBER') FROM pg_roles WHERE rolname = 'pgnear'");
is($super, 'f', 'the health-check user is no superuser');
is($stats, 't', '... and has pg_read_all_stats');

# ---- the files of /etc/pgnear, here
my $dir = PgNearTest::tmpdir(name => 'howto-ep');
my $lines = $us->psql_admin($auth_sql);
like($lines, qr/^"app" "SCRAM-SHA-256\$/m, "the page's query gives app's line of the auth_file");
unlike($lines, qr/^"pgnear"/m, '... and not pgnear\'s');
write_file("$dir/userlist.txt", $lines . "\n" . qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
my ($pgpass) = $page =~ /echo '(\*:\*:\*:pgnear:[^']*)' >\/etc\/pgnear\/pgpass/
  or BAIL_OUT('no pgpass line on the page');
write_file("$dir/pgpass", "$pgpass\n");
chmod 0600, "$dir/pgpass";    # install -m 600, as the page says: libpq ignores a file others may read
my ($password) = $grants =~ /PASSWORD '([^']*)'/;
is((split /:/, $pgpass)[-1], $password, 'the pgpass line holds the password the grants set');
my $cert = $ca->issue(name => 'pgnear', cn => 'localhost', owner => undef);
system('cp', $ca->cert, "$dir/servers-ca.crt") == 0 or die 'cp';

# ---- the page's configuration, for this machine
my (%set, @regions, $section);
my %server = ('10.1.0.10:5432' => $us, '10.2.0.10:5432' => $eu, '10.3.0.10:5432' => $ap);
for (split /\n/, $ini) {
    next if /^\s*(;|$)/;
    if (/^\[(pgnear|region (\S+))\]/) {
        $section = $2 // '';
        push @regions, { name => $2 } if $2;
        next;
    }
    my ($k, $v) = /^(\w+)\s*=\s*(.*?)\s*(?:;.*)?$/ or BAIL_OUT("not a setting: $_");
    if ($section eq '') {
        $set{$k} = $v;
    } elsif ($k eq 'location') {
        $regions[-1]{location} = $v;
    } elsif ($k eq 'hosts') {
        # the page's second us-east host, a standby of its own, is left out here
        $regions[-1]{hosts} = [map { $server{$_} // () } split /\s*,\s*/, $v];
    }
}
is(scalar @regions, 3, 'the page has three regions');
is(scalar(map { @{ $_->{hosts} } } @regions), 3, '... whose hosts are our three servers');
$set{$_} =~ s{^/etc/pgnear/}{$dir/} for grep { $set{$_} =~ m{^/etc/pgnear/} } keys %set;
$set{server_conninfo} =~ s{passfile=/etc/pgnear/}{passfile=$dir/};
$set{cities_file} = "$src/conf/cities.csv";
$set{client_tls_cert_file} = $cert->{cert};
$set{client_tls_key_file} = $cert->{key};
$set{metrics_addr} = '127.0.0.1:' . free_port();
delete @set{qw(listen_addr listen_port)};    # the harness's own: 127.0.0.1, a free port
my $px = PgNearTest::Proxy->new(regions => \@regions, settings => \%set);

my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $px->config_path]);
is($rc, 0, 'pgnear --check accepts the configuration') or diag($err);
(my $says = $check_cmd_out // '') =~ s/^\S+: //;
like("$out$err", qr/\Q$says\E/, "... and says what the page shows: $says") if $says;

# ---- step 6: SHOW REGIONS, then the Dublin session
my $admin = $px->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret', sslmode => 'require');
my %want = ('us-east' => 'primary', 'eu-west' => 'standby', 'ap-northeast' => 'standby');
my %seen;
# SHOW REGIONS, a hash per region by its column names (its first host).
sub regions {
    my ($rc2, $rows) = psql($admin, 'SHOW REGIONS', args => ['-P', 'tuples_only=off', '-P', 'footer=off'], quiet => 1);
    return () if $rc2;
    my ($head, @rows) = split /\n/, $rows;
    my @cols = split /\|/, $head;
    my %by;
    for (@rows) {
        my %h;
        @h{@cols} = split /\|/, $_, -1;
        $by{ $h{region} } //= \%h;
    }
    return %by;
}
my $found = wait_until(sub {
    %seen = regions();
    !grep { ($seen{$_}{role} // '') ne $want{$_} || $seen{$_}{up} ne 't' || ($seen{$_}{timeline} // '') eq '' } keys %want;
}, timeout => 30);
ok($found, 'SHOW REGIONS: every host up with its role and timeline within 30 s') or diag(explain(\%seen));
for my $r (sort keys %want) {
    is($seen{$r}{role}, $want{$r}, "SHOW REGIONS: $r is a $want{$r}");
    is($seen{$r}{up}, 't', '... up');
    like($seen{$r}{timeline}, qr/^\d+$/, '... with its timeline');
}
unlike($px->log_contents, qr/health check cannot log in|password authentication failed for user "pgnear"/,
       "the health checks log in as pgnear with the page's pgpass");

my $dublin = $px->conninfo(dbname => 'app', user => 'app', password => 'app-secret', sslmode => 'require',
                           options => '-c pgnear.city=Dublin');
my $read = psql($dublin, "SELECT current_setting('cluster_name'), pg_is_in_recovery()");
is($read, 'eu-west|t', "the page's Dublin session reads on eu-west's standby");
my $wrote = psql($dublin, "INSERT INTO rides (city) VALUES ('dublin') RETURNING current_setting('cluster_name')");
like($wrote, qr/^us-east\b/m, '... and its write runs on the primary');
my $ssl = psql($dublin, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
is($ssl, 't', '... over TLS to the server (server_tls = verify-full)');
my ($urc, $users) = psql($admin, 'SHOW USERS', args => ['-F', '|']);
is($urc, 0, 'SHOW USERS answers');
unlike($users, qr/\|f\|/, "... and no user's key misfits a region") or diag($users);

done_testing();
