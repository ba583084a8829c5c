# One writer while two hosts say primary.  A primary in us-east and its
# streaming standby in eu-west behind pgnear; the standby is promoted
# (pg_ctl promote) while the old primary runs on, as in the first seconds
# of a failover whose old primary is cut off rather than dead.  Before the
# fix, Boston's read-write sessions went on writing on us-east and
# Dublin's on eu-west: two writers.  Now, per pool mode and worker count:
#   - SHOW REGIONS says us-east is a former primary, and why (timeline 1,
#     eu-west primary on timeline 2); the log says so once; the metric
#     pgnear_host_fenced is 1;
#   - sessions opened before the promotion and idle (Boston and Dublin,
#     read-write; Dublin nearest) write on eu-west at their next
#     transaction, with no error (moved);
#   - a session inside a transaction on us-east is ended with 57P01 and
#     its write is not on us-east;
#   - new sessions from Boston (read-write, any) go to eu-west; no write
#     made through pgnear after the fence is on us-east, each one is on
#     eu-west once, as the same inserts made directly;
#   - once us-east rejoins as a standby of the new timeline (pg_rewind),
#     it is a standby again, not fenced, the log says so, and reads from
#     Boston go to it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;
use PgNearNearest qw(one where);

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pg_basebackup pg_rewind curl);

my $BOSTON = '-c pgnear.location=42.36,-71.06';
my $DUBLIN = '-c pgnear.location=53.35,-6.26';

sub host_row {
    my ($p, $region) = @_;
    my ($r) = grep { $_->{region} eq $region } $p->admin_rows('SHOW REGIONS');
    return $r // {};
}

sub login {
    my ($p, $where, %o) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
    my $opts = join ' ', $where, $o{options} // ();
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { options => $opts });
    die 'login failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n" unless $r->{ok};
    return $w;
}

sub rw { (options => '-c pgnear.target_session_attrs=read-write') }

sub metric {
    my ($mport, $name, $region) = @_;
    my ($rc, $out) = run_cmd([require_tool('curl'), '-s', "http://127.0.0.1:$mport/metrics"], timeout => 10);
    my ($v) = $out =~ /^pgnear_\Q$name\E\{region="\Q$region\E"[^}]*\} (\S+)$/m;
    return $v;
}

# pg_rewind us onto eu's timeline and start it as eu's standby.
sub rejoin {
    my ($us, $eu) = @_;
    $us->stop(mode => 'fast');
    $eu->psql_admin('CHECKPOINT');    # its control file names timeline 2 only from then on
    my $src = conninfo_string(host => $eu->socket_dir, port => $eu->port, user => 'postgres',
                              dbname => 'postgres');
    my ($rc, $out, $err) = run_cmd([PgNearTest::_as_pg_user(require_tool('pg_rewind'), '-D', $us->datadir,
                                                            "--source-server=$src")],
                                   timeout => 120, cwd => '/');
    die "pg_rewind failed ($rc): $out$err" if $rc != 0;
    note "pg_rewind: $out$err";
    $us->_write_conf;    # pg_rewind copied eu-west's postgresql.conf (its port and name)
    write_file($us->datadir . '/standby.signal', '', owner => PgNearTest::_pg_os_user());
    my $auto = slurp_file($us->datadir . '/postgresql.auto.conf');
    $auto =~ s/^primary_conninfo.*$//mg;
    write_file($us->datadir . '/postgresql.auto.conf',
               $auto . "primary_conninfo = '$src'\nrecovery_target_timeline = 'latest'\n",
               mode => 0600, owner => PgNearTest::_pg_os_user());
    $us->start;
    $us->wait_streaming;
}

my @CASES = ([session => 1], [transaction => 2], [session => 2], [transaction => 1]);
@CASES = grep { $_->[1] == $ENV{PGNEAR_TEST_WORKERS} } @CASES if $ENV{PGNEAR_TEST_ONLY_WORKERS};

for my $case (@CASES) {
    my ($mode, $workers) = @$case;
    my $tag = "pool_mode = $mode, workers = $workers";

        # pg_rewind, for the rejoin, needs hints and full pages logged.
    my %rewindable = (conf => { wal_log_hints => 'on', full_page_writes => 'on', wal_keep_size => '256MB' });
    my $us = PgNearTest::Cluster->new(name => 'us-east', %rewindable);
    $us->psql_admin(<<'SQL', dbname => 'movr');
CREATE TABLE writes (id serial PRIMARY KEY, what text NOT NULL,
                     written_on text NOT NULL DEFAULT current_setting('cluster_name'));
GRANT ALL ON writes TO app;
GRANT ALL ON SEQUENCE writes_id_seq TO app;
SQL
    my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west', %rewindable);
    my $auth_dir = tmpdir(name => 'two-primaries-auth');
    write_file("$auth_dir/userlist.txt",
        qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
      . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});
    my $mport = free_port();
    my $p = PgNearTest::Proxy->new(
        regions  => [{ name => 'us-east', location => '39.04, -77.49', hosts => [$us] },
                     { name => 'eu-west', location => '53.35, -6.26', hosts => [$eu] }],
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", admin_users => 'admin',
                      server_tls => 'disable', health_check_interval => '250ms', workers => $workers,
                      pool_mode => $mode, failover_wait => '5s', metrics_addr => "127.0.0.1:$mport" });
    ok $p->wait_for_log(qr/region eu-west is up: it is a standby/, timeout => 20),
      "$tag: pgnear knows eu-west is a standby";

    # Sessions opened before the promotion.
    my $boston = login($p, $BOSTON, rw());
    my $dublin = login($p, $DUBLIN, rw());
    my $near = login($p, $DUBLIN, options => '-c pgnear.target_session_attrs=nearest');
    my $open = login($p, $BOSTON, rw());
    is one($boston, q{INSERT INTO writes (what) VALUES ('boston before') RETURNING written_on}), 'us-east',
      "$tag: Boston writes on us-east before";
    is one($dublin, q{INSERT INTO writes (what) VALUES ('dublin before') RETURNING written_on}), 'us-east',
      "$tag: Dublin writes on us-east before (the only primary)";
    is where($near), 'eu-west', "$tag: Dublin's nearest session reads on eu-west before";
    is one($open, 'BEGIN'), undef, "$tag: a Boston session opens a transaction";
    is one($open, q{INSERT INTO writes (what) VALUES ('open transaction') RETURNING written_on}), 'us-east',
      "$tag: ... and writes in it on us-east";

    my $off = $p->log_size;
    $eu->promote;
    ok !$eu->is_in_recovery, "$tag: eu-west promoted while us-east runs on";
    ok !$us->is_in_recovery, "$tag: us-east still says primary";
    my $us_port = $us->port;
    my $eu_port = $eu->port;
    ok $p->wait_for_log(qr/host 127\.0\.0\.1:$us_port of region us-east is fenced, no session or transaction goes there: former primary: timeline 1, 127\.0\.0\.1:$eu_port of eu-west is primary on timeline 2/,
                        offset => $off, timeout => 20),
      "$tag: the log says us-east is fenced, and why";

    my $row = host_row($p, 'us-east');
    is $row->{role}, 'former primary', "$tag: SHOW REGIONS: us-east is a former primary";
    like $row->{fenced} // '', qr/^former primary: timeline 1, 127\.0\.0\.1:$eu_port of eu-west is primary on timeline 2$/,
      "$tag: SHOW REGIONS says why";
    is $row->{up}, 't', "$tag: ... and that it answers";
    my $eu_row = host_row($p, 'eu-west');
    is $eu_row->{role}, 'primary', "$tag: SHOW REGIONS: eu-west is the primary";
    is $eu_row->{fenced}, '', "$tag: ... not fenced";
    is metric($mport, 'host_fenced', 'us-east'), '1', "$tag: pgnear_host_fenced is 1 for us-east";
    is metric($mport, 'host_fenced', 'eu-west'), '0', "$tag: ... and 0 for eu-west";

    # The sessions opened before.
    is one($boston, q{INSERT INTO writes (what) VALUES ('boston after') RETURNING written_on}), 'eu-west',
      "$tag: Boston's session writes on eu-west now, with no error";
    is one($dublin, q{INSERT INTO writes (what) VALUES ('dublin after') RETURNING written_on}), 'eu-west',
      "$tag: Dublin's session writes on eu-west now";
    is one($near, q{INSERT INTO writes (what) VALUES ('nearest after') RETURNING written_on}), 'eu-west',
      "$tag: Dublin's nearest session writes on eu-west";
    my $ended = one($open, q{INSERT INTO writes (what) VALUES ('open transaction 2')});
    like $ended, qr/^57P01 terminating connection because its server is no longer the primary/,
      "$tag: the session inside a transaction on us-east is ended with 57P01";

    # New sessions.
    my $fresh = login($p, $BOSTON, rw());
    is one($fresh, q{INSERT INTO writes (what) VALUES ('boston new') RETURNING written_on}), 'eu-west',
      "$tag: a new read-write session from Boston writes on eu-west";
    my $any = login($p, $BOSTON);
    is where($any), 'eu-west', "$tag: a new session from Boston with the default need goes to eu-west";
    my $psql_out = psql($p->conninfo(user => 'app', password => 'app-secret', dbname => 'movr',
                                     options => "$BOSTON -c pgnear.target_session_attrs=read-write"),
                        q{WITH i AS (INSERT INTO writes (what) VALUES ('psql') RETURNING written_on) SELECT * FROM i});
    is $psql_out, 'eu-west', "$tag: psql from Boston writes on eu-west";

    # Every write after the fence once, on eu-west alone; the open transaction's on neither.
    my $after = q{SELECT string_agg(what || '@' || written_on, ',' ORDER BY what) FROM writes }
              . q{WHERE what NOT LIKE '%before' AND what NOT LIKE 'open%'};
    is $us->psql_admin($after, dbname => 'movr'), '', "$tag: no write through pgnear on us-east after the promotion";
    is $eu->psql_admin($after, dbname => 'movr'),
      'boston after@eu-west,boston new@eu-west,dublin after@eu-west,nearest after@eu-west,psql@eu-west',
      "$tag: each on eu-west, once";
    is $us->psql_admin(q{SELECT count(*) FROM writes WHERE what LIKE 'open%'}, dbname => 'movr'), '0',
      "$tag: the open transaction's write did not commit on us-east";

    # The former primary rejoins as a standby of the new timeline.
    $_->terminate for $boston, $dublin, $near, $fresh, $any;
    $off = $p->log_size;
    rejoin($us, $eu);
    ok $p->wait_for_log(qr/host 127\.0\.0\.1:$us_port of region us-east is no longer fenced: it is a standby now/,
                        offset => $off, timeout => 20),
      "$tag: once rewound and following, us-east is no longer fenced";
    $row = host_row($p, 'us-east');
    is $row->{role}, 'standby', "$tag: SHOW REGIONS: us-east is a standby";
    is $row->{fenced}, '', "$tag: ... not fenced";
    is metric($mport, 'host_fenced', 'us-east'), '0', "$tag: pgnear_host_fenced is 0 again";
    my $reader = login($p, $BOSTON, options => '-c pgnear.target_session_attrs=read-only');
    is where($reader), 'us-east', "$tag: Boston's reads go to us-east again";
    $reader->terminate;
    $p->stop;
    $us->stop;
    $eu->stop;
}

done_testing;
