# pgnear's own connections go where the database lives (pgconn.h,
# placement_hosts), not to the first host of the configuration: two
# separate clusters, us-west (listed first, a stale copy of movr, as a
# move leaves behind, whose log_tag only reads) and us-east with its
# streaming standby eu-west ([database movr] regions = us-east, eu-west,
# where log_tag writes a row and catches a standby's refusal).  Under
# target_session_attrs = nearest a Dublin session's SELECT log_tag(...)
# must run on us-east's primary, as its routines' catalog, read in the
# regions movr lives in, says it may write: the same answer as a direct
# connection and exactly one row more there (read on us-west's copy, it
# ran on the standby, which answered 'not logged' and wrote nothing).
# pgnear's routines connection never logs in to us-west's movr.  Its
# LISTEN goes to us-east's primary too, and a notification there reaches
# the session.  Under pool_mode = transaction and session.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;
use PgNearNearest;

require_tool($_) for qw(psql pg_basebackup);

# Writes a row tagged how; a standby's refusal caught, so that it would answer as if it worked.
my $LOG_TAG = q{CREATE TABLE visits (id serial, how text); GRANT ALL ON visits, visits_id_seq TO app;
  CREATE FUNCTION log_tag(how text) RETURNS text LANGUAGE plpgsql AS $$
  BEGIN INSERT INTO visits (how) VALUES (how); RETURN 'logged';
  EXCEPTION WHEN read_only_sql_transaction THEN RETURN 'not logged'; END$$};

my $stale = PgNearTest::Cluster->new(name => 'us-west');
$stale->psql_admin(q{CREATE FUNCTION log_tag(how text) RETURNS text LANGUAGE sql STABLE AS $$SELECT 'stale copy'$$},
                   dbname => 'movr');
my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin($LOG_TAG, dbname => 'movr');
# pgnear logs in to every cluster with the ClientKey of one SCRAM secret: the same in each.
my $app_secret = $us->scram_verifier('app');
$stale->psql_admin("ALTER ROLE app PASSWORD '$app_secret'");
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
$eu->wait_streaming;

my $auth_dir = tmpdir(name => 'own-hosts-auth');
write_file("$auth_dir/userlist.txt", qq{"app" "$app_secret"\n});

sub proxy {
    my ($mode) = @_;
    return PgNearTest::Proxy->new(
        regions  => [{ name => 'us-west', location => '37.77, -122.42', hosts => [$stale] },
                     @{ nearest_regions($us, $eu) }],
        extra_ini => "[database movr]\nregions = us-east, eu-west\n",
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", server_tls => 'disable',
                      health_check_interval => '250ms', workers => $ENV{PGNEAR_TEST_WORKERS} // 2,
                      pool_mode => $mode, target_session_attrs => 'nearest' });
}
sub rows_of { $us->psql_admin("SELECT count(*) FROM visits WHERE how = '$_[0]'", dbname => 'movr') }
# The logins to us-west's movr so far (pg_stat_database's sessions): only pgnear's own may go there.
sub stale_logins {
    $stale->psql_admin(q{SELECT sessions FROM pg_stat_database WHERE datname = 'movr'});
}

for my $mode (qw(transaction session)) {
    my $stale_before = stale_logins();
    my $p = proxy($mode);
    my $w = dublin_login($p->port);
    my $d = PgNearTest::Wire->connect(host => '127.0.0.1', port => $us->port, timeout => 30);
    ok $d->startup(user => 'app', database => 'movr', password => 'app-secret')->{ok}, "$mode: a direct login to us-east";
    is where($w), 'eu-west', "$mode: the Dublin session's first read runs on eu-west's standby";

    my $before = rows_of($mode);
    my $direct = one($d, "SELECT log_tag('$mode')");
    is $direct, 'logged', "$mode: directly on us-east's primary, log_tag writes";
    is rows_of($mode), $before + 1, "$mode: ... one row";
    ok wait_until(sub { where($w) eq 'eu-west' }, timeout => 10, interval => 0.05),
      "$mode: the session reads near first";
    is one($w, "SELECT log_tag('$mode')"), $direct,
      "$mode: through pgnear, the same answer: its catalog was read where movr lives";
    is rows_of($mode), $before + 2, "$mode: ... and exactly one row more, on us-east's primary";
    is stale_logins(), $stale_before,
      "$mode: pgnear's own connections never logged in to us-west's stale movr";

    # LISTEN: on the primary where movr lives, also after the catalog was read
    is $w->query('LISTEN here')->{tag}, 'LISTEN', "$mode: LISTEN";
    $us->psql_admin(q{SELECT pg_notify('here', 'from us-east')}, dbname => 'movr');
    my @got;
    ok wait_until(sub {
            my $q = $w->query('SELECT 1');
            push @got, map { $_->{payload} } @{ $q->{notifications} // [] };
            @got > 0;
        }, timeout => 10, interval => 0.1),
      "$mode: a notification made on us-east's primary reaches the session";
    is_deeply \@got, ['from us-east'], "$mode: ... once";
    is stale_logins(), $stale_before, "$mode: ... and still no login to us-west's movr";

    $w->terminate;
    $d->terminate;
    $p->stop;
}

done_testing;
