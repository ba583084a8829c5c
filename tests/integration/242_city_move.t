# Moving one city's rows, first part: MOVE CITY 'seattle' OF DATABASE movr
# TO REGION us-west over two clusters with wal_level = logical, movr homed
# by city ([database movr] home_by = city, regions = us-east) with MovR's
# keys: users, vehicles and rides keyed (city, id uuid), their foreign keys
# pairing city with city, promo_codes without the column; four cities.
# Each check refuses with its SQLSTATE, naming the tables, before anything
# is made (a database not homed by city, the region the city lives in, a
# replica identity without the column, a key from another city's column
# (MovR's rides (rider_city, rider_id) -> users (city, id)), a bigserial);
# then the move copies exactly seattle's rows and all of promo_codes, its
# NOTICE counts them, SHOW MOVES shows it with its city, SHOW HOMES its
# state, seattle's new rows stream and boston's do not; a second move of
# movr (a city or the whole database) is refused with 55006; ABORT, with
# the city spelt otherwise, leaves nothing: no publication, slot,
# subscription, nor the database it created; into an empty database it
# did not create, the rows it copied are deleted and the database kept.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;
use PgNearDbMove qw(write_users admin_rows);

require_tool('psql');
require_tool('pg_dump');

my %LOGICAL = (conf => { wal_level => 'logical', max_replication_slots => 10, max_wal_senders => 10 });
my $us = PgNearTest::Cluster->new(name => 'us-east', %LOGICAL);
my $west = PgNearTest::Cluster->new(name => 'us-west', %LOGICAL);
$west->psql_admin('DROP DATABASE movr');
my @CITIES = ('seattle', 'boston', 'amsterdam', 'new york');
my $cities = join(', ', map { "'$_'" } @CITIES);
$us->psql_admin([
    'CREATE TABLE users (city text, id uuid DEFAULT gen_random_uuid(), name text NOT NULL,'
      . ' PRIMARY KEY (city, id))',
    'CREATE TABLE vehicles (city text, id uuid DEFAULT gen_random_uuid(), owner_id uuid,'
      . ' PRIMARY KEY (city, id), FOREIGN KEY (city, owner_id) REFERENCES users (city, id))',
    'CREATE TABLE rides (city text, id uuid DEFAULT gen_random_uuid(), vehicle_id uuid,'
      . ' rider_city text, rider_id uuid, revenue numeric(10,2), PRIMARY KEY (city, id),'
      . ' FOREIGN KEY (city, vehicle_id) REFERENCES vehicles (city, id))',
    'CREATE TABLE promo_codes (code text PRIMARY KEY, description text)',
    "INSERT INTO users (city, name) SELECT c, c || ' user ' || g FROM unnest(ARRAY[$cities]) c,"
      . ' generate_series(1, 40) g',
    'INSERT INTO vehicles (city, owner_id) SELECT city, id FROM users WHERE name LIKE \'% 1_\'',
    'INSERT INTO rides (city, vehicle_id, rider_city, rider_id, revenue)'
      . ' SELECT v.city, v.id, u.city, u.id, 9.5 FROM vehicles v JOIN users u ON u.city = v.city',
    "INSERT INTO promo_codes SELECT 'code' || g, 'promo ' || g FROM generate_series(1, 25) g",
], dbname => 'movr');
my $app_secret = $us->scram_verifier('app');
$west->psql_admin("ALTER ROLE app PASSWORD '$app_secret'");

my $dir = tmpdir(name => 'citymove');
write_users($dir, $app_secret);
my $p = PgNearTest::Proxy->new(regions => [$us, $west],
    settings => { auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                  server_tls => 'disable', workers => $ENV{PGNEAR_TEST_WORKERS} // 2,
                  health_check_interval => '1s', health_check_timeout => '5s' },
    extra_ini => "[database movr]\nregions = us-east\nhome_by = city\n");
my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');

sub admin { admin_rows($admin_ci, $_[0], timeout => 120) }

sub refused {
    my ($sql, $code, $re, $name) = @_;
    my (undef, $err) = admin($sql);
    is sqlstate($err), $code, "$name: $code";
    like $err // '', $re, '... saying why';
}

sub city_move { my ($rows) = admin('SHOW MOVES'); return grep { ($_->{city} // '') ne '' } @$rows }

# What the source and the target hold of the move: publications/slots, and subscriptions.
sub source_objects {
    $us->psql_admin(q{SELECT (SELECT count(*) FROM pg_publication) || '/'
                             || (SELECT count(*) FROM pg_replication_slots)}, dbname => 'movr');
}

# A table's rows of the cities given (all when none), as one digest, on a cluster.
sub digest {
    my ($c, $table, $where) = @_;
    $c->psql_admin("SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '')"
                   . " FROM $table t" . ($where ? " WHERE $where" : ''), dbname => 'movr');
}

ok wait_until(sub { my ($r) = admin('SHOW REGIONS'); 2 == grep { $_->{role} eq 'primary' } @$r }, timeout => 20),
  'the health checks know both primaries';

# ------------------------------------------------------------------ refusals, before anything changes

my $MOVE = q{MOVE CITY 'seattle' OF DATABASE movr TO REGION us-west};
refused(q{MOVE CITY 'seattle' OF DATABASE plain TO REGION us-west}, '55000',
        qr/database "plain" is not homed by city/, 'a database without home_by');
refused(q{MOVE CITY 'seattle' OF DATABASE movr TO REGION us-east}, '55000',
        qr/city 'seattle' of database "movr" lives in region "us-east" already/, 'the region it lives in');

$us->psql_admin('CREATE TABLE badges (city text, id uuid PRIMARY KEY)', dbname => 'movr');
refused($MOVE, '55000', qr/replica identity .* lacks their column "city".*public\.badges.*HINT:.*primary key/s,
        'a homed table whose primary key lacks the city');
$us->psql_admin('DROP TABLE badges', dbname => 'movr');

$us->psql_admin('ALTER TABLE rides ADD CONSTRAINT rides_rider_fk FOREIGN KEY (rider_city, rider_id)'
                . ' REFERENCES users (city, id)', dbname => 'movr');
refused($MOVE, '55000',
        qr/foreign keys .* would leave the city.*rides_rider_fk on rides: FOREIGN KEY \(rider_city, rider_id\) REFERENCES users\(city, id\).*HINT:.*drop the constraint/s,
        "MovR's rides (rider_city, rider_id) -> users (city, id)");
$us->psql_admin('ALTER TABLE rides DROP CONSTRAINT rides_rider_fk', dbname => 'movr');

$us->psql_admin('CREATE TABLE tickets (city text, id bigserial, PRIMARY KEY (city, id))', dbname => 'movr');
refused($MOVE, '55000', qr/draw ids from a sequence.*public\.tickets\.id.*HINT:.*UUID/s, 'a bigserial id');
$us->psql_admin('DROP TABLE tickets', dbname => 'movr');

is source_objects(), '0/0', 'the refusals made nothing on the source';
is $west->psql_admin(q{SELECT count(*) FROM pg_database WHERE datname = 'movr'}), '0', '... nor on the target';

# ------------------------------------------------------------------ the copy

my ($rows, $err, $notices) = admin($MOVE);
is $err, undef, 'MOVE CITY seattle TO REGION us-west starts';
like $notices, qr/rows whose city = 'seattle' \(compared as written\): public\.rides 400, public\.users 40, public\.vehicles 10/,
  '... its NOTICE counting the rows of each homed table the filter takes';
ok wait_until(sub { my ($m) = city_move(); ($m->{state} // '') eq 'streaming' }, timeout => 60),
  'SHOW MOVES follows it to streaming';
my ($m) = city_move();
is "$m->{database}|$m->{city}|$m->{from_region}|$m->{to_region}", 'movr|seattle|us-east|us-west',
  '... on a row with its city';
for my $t (qw(users vehicles rides)) {
    is digest($west, $t), digest($us, $t, "city = 'seattle'"), "the target holds exactly seattle's $t";
}
is digest($west, 'promo_codes'), digest($us, 'promo_codes'), '... and promo_codes whole';

$us->psql_admin(q{INSERT INTO users (city, name) VALUES ('seattle', 'new rider'), ('boston', 'other rider')},
                dbname => 'movr');
ok wait_until(sub { $west->psql_admin(q{SELECT count(*) FROM users WHERE name = 'new rider'}, dbname => 'movr') eq '1' },
              timeout => 20), "a new seattle row streams to the target";
is $west->psql_admin(q{SELECT count(*) FROM users WHERE city <> 'seattle'}, dbname => 'movr'), '0',
  "... boston's does not";
ok wait_until(sub { grep { ($_->{city} // '') eq 'seattle' && $_->{state} eq 'copying' } homes() }, timeout => 10),
  "SHOW HOMES shows seattle's move and its state";

sub homes { my ($r) = admin('SHOW HOMES'); return @$r }

refused(q{MOVE CITY 'boston' OF DATABASE movr TO REGION us-west}, '55006',
        qr/database "movr" is being moved already.*A move of city 'seattle' to region "us-west"/s,
        'a second city of the database');
refused('MOVE DATABASE movr TO REGION us-west', '55006',
        qr/database "movr" is being moved already.*A move of city 'seattle'/s, 'the whole database meanwhile');
refused(q{MOVE CITY 'seattle' OF DATABASE movr CUTOVER}, '0A000', qr/not supported yet/,
        'a city\'s cutover (the next step)');

# ------------------------------------------------------------------ ABORT

($rows, $err) = admin(q{MOVE CITY 'Seattle' OF DATABASE movr ABORT});
is $err, undef, 'ABORT, the city spelt Seattle (compared folded)';
is source_objects(), '0/0', '... no publication nor slot left on the source';
is $west->psql_admin(q{SELECT count(*) FROM pg_database WHERE datname = 'movr'}), '0',
  '... the database it created on the target dropped, its subscription and rows with it';
($m) = city_move();
is $m->{state}, 'aborted', '... and SHOW MOVES says aborted';
refused(q{MOVE CITY 'seattle' OF DATABASE movr ABORT}, '55000',
        qr/city 'seattle' of database "movr" is not being moved/, 'a second ABORT');

# Into an empty database the move did not create: ABORT deletes what it copied, keeps the database.
$west->psql_admin('CREATE DATABASE movr OWNER app');
($rows, $err) = admin($MOVE);
is $err, undef, 'moved again, into an empty movr on the target';
ok wait_until(sub { $west->psql_admin('SELECT count(*) FROM rides', dbname => 'movr') eq '400' }, timeout => 60),
  '... its rides copied';
($rows, $err) = admin(q{MOVE CITY 'seattle' OF DATABASE movr ABORT});
is $err, undef, 'ABORT';
is $west->psql_admin(q{SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM vehicles)
                       + (SELECT count(*) FROM rides) + (SELECT count(*) FROM promo_codes) || '/'
                       || (SELECT count(*) FROM pg_subscription)}, dbname => 'movr'), '0/0',
  '... the rows it copied deleted, its subscription dropped, the database kept';
is source_objects(), '0/0', '... nothing left on the source';

done_testing;
