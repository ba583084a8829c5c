# Where a database lives: [database NAME] regions = ... over two separate
# PostgreSQL clusters, us-east and eu-west, where movr lives in both and
# eucars only in eu-west.  A caller near us-east lands in eu-west for
# eucars, whatever region it names; with eu-west disabled its login is
# refused (08001) while movr's go on; a session of eucars is not moved to
# a region that does not hold it, and MOVE CLIENTS HOME / FROM REGION keep
# it where it is; auth_query looks users up only where the database is; a
# reload that moves the database takes the next logins there; --check
# names every bad list.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;

require_tool('psql');

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $eu = PgNearTest::Cluster->new(name => 'eu-west');
# pgnear logs in to both with the ClientKey of one SCRAM secret: the same in both.
my $app_secret = $us->scram_verifier('app');
$eu->psql_admin("ALTER ROLE app PASSWORD '$app_secret'");
$eu->psql_admin('CREATE DATABASE eucars OWNER app');
$eu->psql_admin('CREATE TABLE cars (id int)', dbname => 'eucars');

my $dir = tmpdir(name => 'placement');
write_file("$dir/users.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
                           . qq{"app" "$app_secret"\n});
my %SETTINGS = (auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                server_tls => 'disable', workers => $ENV{PGNEAR_TEST_WORKERS} // 2,
                health_check_interval => '1s', health_check_timeout => '5s');
my $CITIES = "[cities]\nboston = us-east\ndublin = eu-west\n";
my $p = PgNearTest::Proxy->new(regions => [$us, $eu], settings => \%SETTINGS,
                               extra_ini => "$CITIES\n[database eucars]\nregions = eu-west\n");

# psql through pgnear as app from a city, optionally naming a region.
sub through {
    my ($db, $sql, %o) = @_;
    my $options = '-c pgnear.city=' . ($o{city} // 'Boston') . ($o{region} ? " -c pgnear.region=$o{region}" : '');
    return psql($p->conninfo(dbname => $db, options => $options), $sql, verbose => 1);
}

# ------------------------------------------------------------------ routing by where the database lives

{
    my ($rc, $out) = through('movr', 'SELECT inet_server_port()');
    is $out, $us->port, 'movr, a caller in Boston: us-east, the nearest';
    ($rc, $out) = through('eucars', 'SELECT inet_server_port(), count(*) FROM cars');
    is $out, $eu->port . '|0', 'eucars, a caller in Boston: eu-west, the only region that holds it';
    ($rc, $out) = through('eucars', 'SELECT inet_server_port()', region => 'us-east');
    is $out, $eu->port, '... even when the caller names us-east';
    ($rc, $out) = through('movr', 'SELECT inet_server_port()', city => 'Dublin');
    is $out, $eu->port, 'movr, a caller in Dublin: eu-west';
    like $p->log_contents, qr/route: region eu-west \(city: city "Boston"/,
      'the route line of a Boston caller says eu-west';
}

# ------------------------------------------------------------------ the regions that hold it are closed

{
    my @r = $p->admin_rows('DISABLE eu-west', errors => 'row');
    ok !$r[0] || !$r[0]{error}, 'DISABLE eu-west';
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
    my $r = $w->startup(user => 'app', database => 'eucars', password => 'app-secret',
                        params => [options => '-c pgnear.city=Boston']);
    ok !$r->{ok}, 'eucars with eu-west disabled: refused';
    is sqlstate($r->{error}), '08001', '... 08001';
    is $r->{error}{M}, 'no region that holds the database takes sessions now', '... saying why';
    is $r->{error}{D}, 'Database "eucars" lives in eu-west, and each of them is disabled or draining.',
      '... and where it lives';
    my ($rc, $out) = through('movr', 'SELECT inet_server_port()', city => 'Dublin');
    is $out, $us->port, 'movr from Dublin meanwhile: us-east';
    $p->admin_rows('ENABLE eu-west', errors => 'row');
    ($rc, $out) = through('eucars', 'SELECT inet_server_port()');
    is $out, $eu->port, 'ENABLE eu-west: eucars logs in again';
}

# ------------------------------------------------------------------ moves stay where the database is

{
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 15);
    my $r = $w->startup(user => 'app', database => 'eucars', password => 'app-secret',
                        params => [application_name => 'placed-1', options => '-c pgnear.city=Boston']);
    ok $r->{ok}, 'a session of eucars from Boston';
    my ($c) = grep { ($_->{application_name} // '') eq 'placed-1' } $p->admin_rows('SHOW CLIENTS', errors => 'row');
    is $c->{region}, 'eu-west', '... in eu-west';
    my ($row) = $p->admin_rows("MOVE CLIENT $c->{id} TO REGION us-east", errors => 'row');
    is $row->{result}, 'not moved', 'MOVE CLIENT to us-east: not moved';
    is $row->{reason}, 'its database does not live in that region', '... its database is not there';
    ($row) = grep { $_->{client_id} eq $c->{id} } $p->admin_rows('MOVE CLIENTS HOME', errors => 'row');
    ok !$row || $row->{result} ne 'moved', 'MOVE CLIENTS HOME leaves it: eu-west is its home';
    ($row) = grep { $_->{client_id} eq $c->{id} } $p->admin_rows('MOVE CLIENTS FROM REGION eu-west', errors => 'row');
    is $row->{result}, 'not moved', 'MOVE CLIENTS FROM REGION eu-west: not moved';
    like $row->{reason}, qr/no region to move it to/, '... no other region holds it';
    my $q = $w->query('SELECT inet_server_port()');
    is $q->{rows}[0][0], $eu->port, '... and it goes on in eu-west';
    $w->terminate;
}

# ------------------------------------------------------------------ auth_query only where the database is

{
    # A user pgnear does not know: its secret comes from auth_query, run in the client's database
    # in the nearest region that holds it (us-east has no eucars; the lookup must not try it).
    $eu->psql_admin(q{SET password_encryption = 'scram-sha-256'; CREATE ROLE carol LOGIN PASSWORD 'carol-secret'});
    $p->update_config(regions => [$us, $eu],
                      settings => { %SETTINGS, auth_query => 'SELECT usename, passwd FROM pg_shadow WHERE usename = $1' },
                      extra_ini => "$CITIES\n[database eucars]\nregions = eu-west\n");
    my $off = $p->log_size;
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded|reloaded/i, offset => $off), 'reload with auth_query';
    my ($rc, $out, $err) = psql($p->conninfo(dbname => 'eucars', user => 'carol', password => 'carol-secret',
                                             options => '-c pgnear.city=Boston'), 'SELECT current_user, inet_server_port()');
    is $out, 'carol|' . $eu->port, 'a user known only to eu-west logs in to eucars from Boston' or diag $err;
}

# ------------------------------------------------------------------ a reload moves it

{
    $us->psql_admin('CREATE DATABASE eucars OWNER app');
    $p->update_config(regions => [$us, $eu], settings => \%SETTINGS,
                      extra_ini => "$CITIES\n[database eucars]\nregions = us-east, eu-west\n");
    my $off = $p->log_size;
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded|reloaded/i, offset => $off), 'reload: eucars in both regions';
    my ($rc, $out) = through('eucars', 'SELECT inet_server_port()');
    is $out, $us->port, '... a Boston caller now lands in us-east';
}

# ------------------------------------------------------------------ --check

{
    my $base = $p->config_text;
    $base =~ s/\[database eucars\].*//s;
    my @bad = (["[database eucars]\nregions = us-east, mars\n", qr/\[database eucars\] regions: "mars" is not a configured region/],
               ["[database eucars]\nregions = eu-west, EU-WEST\n", qr/regions: region "EU-WEST" is named twice/],
               ["[database eucars]\nregions =\n", qr/regions: no region named/],
               ["[user app]\nregions = eu-west\n", qr/\[user app\]: a user section takes target_session_attrs, movable, pool_mode, max_user_connections, max_user_client_connections, max_db_client_connections, query_timeout, transaction_timeout, idle_transaction_timeout and client_idle_timeout, nothing else/],
               ["[database eucars]\nregion = eu-west\n",
                qr/\[database eucars\]: a database section takes regions, target_session_attrs, movable, pool_mode, home_by, max_user_connections, max_user_client_connections, max_db_client_connections, query_timeout, transaction_timeout, idle_transaction_timeout and client_idle_timeout, nothing else/]);
    for my $i (0 .. $#bad) {
        write_file("$dir/bad$i.ini", "$base\n$bad[$i][0]");
        my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', "$dir/bad$i.ini"]);
        is $rc, 1, "--check refuses: $bad[$i][0]" =~ s/\n/ /gr;
        like $err, $bad[$i][1], '... saying why';
    }
    like((run_cmd([$ENV{PGNEAR}, '--check', "$dir/bad0.ini"]))[2], qr/bad0\.ini:\d+: /, '... at the line of regions');
}

done_testing;
