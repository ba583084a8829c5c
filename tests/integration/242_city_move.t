# Moving one city's rows, first part: MOVE CITY 'seattle' OF DATABASE movr
# TO REGION us-west over two clusters with wal_level = logical, movr homed
# by city ([database movr] home_by = city, regions = us-east) with MovR's
# keys: users, vehicles and rides keyed (city, id uuid), their foreign keys
# pairing city with city, promo_codes without the column; four cities.
# Each check refuses with its SQLSTATE, naming the tables, before anything
# is made (a database not homed by city, the region the city lives in, a
# replica identity without the column, a key from another city's column
# (MovR's rides (rider_city, rider_id) -> users (city, id)), a bigserial,
# a partitioned table);
# then the move copies exactly seattle's rows and all of promo_codes, its
# NOTICE counts them, SHOW MOVES shows it with its city, SHOW HOMES its
# state, seattle's new rows stream and boston's do not; a second move of
# movr (a city or the whole database) is refused with 55006; ABORT, with
# the city spelt otherwise, leaves nothing: no publication, slot,
# subscription, nor the database it created; into an empty database it
# did not create, the rows it copied are deleted and the database kept.
# CUTOVER while a seattle and a boston writer run through pgnear, with a
# seattle client in a transaction: the cutover waits for it while boston
# writes on (never held), then holds and moves the seattle sessions alone,
# 0 failed transactions, seattle's rows the same on both sides (those
# written in us-west come back), us-east refuses a direct seattle write,
# us-west a write to promo_codes (25006), which still follows us-east;
# the second pgnear of the fleet holds and moves its own seattle client
# (not its boston one) and sends seattle's new sessions to us-west;
# REVERT under both writers loses nothing and moves the seattle sessions
# back (us-west then refuses seattle's writes); a CUTOVER whose pgnear is
# killed (kill -9) before its commit is undone by the other pgnear of the
# fleet, and CUTOVER runs again;
# FINISH deletes seattle's rows in us-east (not boston's) and every
# replication object, and a seattle session lands in us-west.
# Migrations (migrations_db = movr): a step run in us-east before the moves
# (its history is copied with promo_codes); MIGRATE UP refused while seattle
# is copied, SHOW MIGRATIONS counting us-west meanwhile; after FINISH a step
# adding a column runs in us-east and us-west, each recording it; a move
# (of boston, of movr) asked while a slow step runs is refused with 55006,
# on the pgnear that runs it and on the other one of the fleet.
# Boston's ABORT keeps us-east's refusal of seattle's rows. After boston's
# FINISH, a step makes a table without the city and a homed one: the upkeep
# after the run publishes the first from us-east, which us-west follows
# (copied, the step's own row there once) and refuses to direct writes, and
# guards the second in us-east (seattle refused, new york taken); MIGRATE UP
# with nothing to run does it again and finds nothing missing; a table made
# IN REGION us-east alone is published only once the step ran in us-west.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IPC::Run ();
use PgNearTest;
use PgNearDbMove qw(write_users admin_rows admin_refused);

require_tool('psql');
require_tool('pg_dump');
require_tool('pgbench');

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
mkdir "$dir/migrations" or die "mkdir: $!";
write_file("$dir/migrations/0001_promo_comment.sql", "COMMENT ON TABLE promo_codes IS 'MovR promo codes';\n");
my %SETTINGS = (auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                server_tls => 'disable', workers => $ENV{PGNEAR_TEST_WORKERS} // 2,
                health_check_interval => '1s', health_check_timeout => '5s', move_timeout => '30s',
                migrations_dir => "$dir/migrations", migrations_db => 'movr',
                cities_file => ($ENV{PGNEAR_SRCDIR} // "$FindBin::RealBin/../..") . "/conf/cities.csv");
my $INI = "[database movr]\nregions = us-east\nhome_by = city\n";
# A fleet of two: the second holds its own seattle sessions through the first's cutovers.
my @port = map { PgNearTest::free_port() } 1 .. 2;
my $peers = join ', ', map { ($_ + 1) . "\@127.0.0.1:$port[$_]" } 0 .. 1;
my ($p, $p2) = map {
    PgNearTest::Proxy->new(port => $port[$_], regions => [$us, $west],
                           settings => { %SETTINGS, peer_id => $_ + 1, peers => $peers }, extra_ini => $INI)
} 0 .. 1;
my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');

sub admin { admin_rows($admin_ci, $_[0], timeout => 120) }

sub refused { admin_refused($admin_ci, @_) }

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

# A region's migration history: version => state, and the column's presence.
sub history { map { split /\|/ } split /\n/, $_[0]->psql_admin('SELECT version, state FROM pgnear_schema_history',
                                                                 dbname => 'movr') }
sub migration_regions { my ($r) = admin('SHOW MIGRATIONS'); my %in = map { $_->{region} => 1 } @$r;
                        join ',', sort keys %in }
my (undef, $merr) = admin('MIGRATE UP');
is $merr, undef, 'before any move, MIGRATE UP runs step 1 where movr lives';
is migration_regions(), 'us-east', '... SHOW MIGRATIONS: us-east alone';

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
$us->psql_admin(['CREATE TABLE trips (city text, id uuid, PRIMARY KEY (city, id)) PARTITION BY LIST (city)',
                 "CREATE TABLE trips_seattle PARTITION OF trips FOR VALUES IN ('seattle')"], dbname => 'movr');
refused($MOVE, '0A000', qr/database "movr" has partitioned tables.*public\.trips\./s,
        'a partitioned table (its rows would be neither copied nor refused)');
$us->psql_admin('DROP TABLE trips', dbname => 'movr');

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
refused('MIGRATE UP', '55006', qr/database "movr" is being moved/, 'MIGRATE UP while seattle is copied');
is migration_regions(), 'us-east,us-west', '... SHOW MIGRATIONS counts us-west, the target, meanwhile';

sub homes { my ($r) = admin('SHOW HOMES'); return @$r }

refused(q{MOVE CITY 'boston' OF DATABASE movr TO REGION us-west}, '55006',
        qr/database "movr" is being moved already.*A move of city 'seattle' to region "us-west"/s,
        'a second city of the database');
refused('MOVE DATABASE movr TO REGION us-west', '55006',
        qr/database "movr" is being moved already.*A move of city 'seattle'/s, 'the whole database meanwhile');
refused(q{MOVE CITY 'seattle' OF DATABASE movr REVERT}, '55000', qr/cannot be reverted now/,
        'REVERT before the cutover');
refused(q{MOVE CITY 'seattle' OF DATABASE movr FINISH}, '55000', qr/cannot be finished now/,
        'FINISH before the cutover');

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

# ------------------------------------------------------------------ CUTOVER under writes

$west->psql_admin('DROP DATABASE movr');
($rows, $err) = admin($MOVE);
is $err, undef, 'moved a third time';
ok wait_until(sub { my ($m) = city_move(); ($m->{state} // '') eq 'streaming' }, timeout => 60),
  '... streaming';

# A writer per city through pgnear, each session placed by its city (a startup hint).
my $LOAD_BOUND = 300;
sub writer {
    my ($city, $n) = @_;
    write_file("$dir/$city.sql", "INSERT INTO users (city, name) VALUES ('$city', 'bench');\n");
    my $ci = $p->conninfo(dbname => 'movr', options => "-c pgnear.city=$city", application_name => "writer $city");
    my %w = (out => '', err => '');
    $w{h} = IPC::Run::start([require_tool('pgbench'), '-n', '-c', $n, '-T', $LOAD_BOUND, '-f',
                             "$dir/$city.sql", $ci], '>', \$w{out}, '2>', \$w{err});
    return \%w;
}
# The writer ended (SIGALRM ends pgbench's run as -T does): its report.
sub ended {
    my ($w) = @_;
    $w->{h}->signal('ALRM');
    $w->{h}->finish;
    return parse_pgbench($w->{out} . $w->{err});
}
# The sessions a city's writer has on a server (its application_name names the city).
sub writers_on { $_[0]->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'writer $_[1]'") }
sub bench_rows { $_[0]->psql_admin("SELECT count(*) FROM users WHERE name = 'bench' AND city = '$_[1]'",
                                   dbname => 'movr') }
my %load = (seattle => writer('seattle', 2), boston => writer('boston', 2));
# At least two: a server connection kept from pgbench's first look (its own login, ended before the
# clients') may still carry the name, idle in the pool.
ok wait_until(sub { bench_rows($us, 'seattle') > 0 && bench_rows($us, 'boston') > 0
                   && writers_on($us, 'seattle') >= 2 }, timeout => 30),
  'both writers commit in us-east, seattle\'s two sessions there'
  or diag sprintf 'rows seattle %s boston %s; seattle sessions in us-east %s, us-west %s',
                  bench_rows($us, 'seattle'), bench_rows($us, 'boston'), writers_on($us, 'seattle'),
                  writers_on($west, 'seattle');

# A client of a city on an instance.
sub client {
    my ($proxy, $city) = @_;
    my $c = PgNearTest::Wire->connect(host => '127.0.0.1', port => $proxy->port, timeout => 15);
    return $c->startup(user => 'app', database => 'movr', password => $PgNearTest::APP_PASSWORD,
                       params => [options => "-c pgnear.city=$city"])->{ok} ? $c : undef;
}
sub on { my ($c, $sql) = @_; my $q = $c->query($sql); $q->{error} ? "ERROR: $q->{error}{M}" : $q->{rows}[0][0] }
# A seattle session in a transaction keeps the gate from closing: meanwhile boston writes on.
my $w = client($p, 'Seattle');
ok $w, 'a seattle client logs in';
sub one { on($w, $_[0]) }
my ($w2, $b2) = (client($p2, 'Seattle'), client($p2, 'Boston'));
is on($w2, 'SELECT inet_server_port()') . '/' . on($b2, 'SELECT inet_server_port()'), $us->port . '/' . $us->port,
  'on the second pgnear, a seattle and a boston client on us-east';
is one('SELECT inet_server_port()'), $us->port, '... on us-east';
one('BEGIN');
one(q{INSERT INTO users (city, name) VALUES ('seattle', 'in the held transaction')});
my $cut = IPC::Run::start([require_tool('psql'), '-X', '-v', 'ON_ERROR_STOP=1', '-P', 'tuples_only=off',
                           '-P', 'footer=off', '-c', q{MOVE CITY 'seattle' OF DATABASE movr CUTOVER},
                           $admin_ci], '>', \my $cut_out, '2>', \my $cut_err);
ok wait_until(sub { $cut->pump_nb if $cut->pumpable; ($cut_err // '') =~ /holding/ }, timeout => 30),
  'CUTOVER starts holding seattle\'s sessions' or diag $cut_err;
my $boston0 = bench_rows($us, 'boston');
ok wait_until(sub { bench_rows($us, 'boston') > $boston0 + 20 }, timeout => 10),
  '... while boston\'s writes go on, never held';
ok $cut->pumpable, '... and the cutover waits for the seattle transaction';
# The transaction stays open half a second more: the writers' rows below must show that wait, which
# boston's 20 rows alone (tens of ms) do not make longer than the tail of the cutover's own hold.
select undef, undef, undef, 0.5;
ok $cut->pumpable, '... still, half a second later';
one('COMMIT');
ok $cut->finish, 'CUTOVER: done once the transaction ends' or diag $cut_err;
like $cut_err, qr/city 'seattle' of database "movr" lives in region "us-west" now: (\d+) sessions moved there, 0 ended; the sessions were held \d+ ms/,
  '... saying where it lives and how many sessions moved';
my @held = grep { /\|/ } split /\n/, $cut_out;
is scalar(@held) - 1, 3, '... a row per held session: the two seattle writers and the client, no boston one';
# A row's hold_ms counts from its session's hold at the gate: the writers, held while the client's
# transaction ran, waited longer than the cutover's own hold (from the last session held).
my ($gate_hold) = $cut_err =~ /the sessions were held (\d+) ms/;
my @cols = map { s/^\s+|\s+$//gr } split /\|/, $held[0];
my ($hold_col) = grep { $cols[$_] eq 'hold_ms' } 0 .. $#cols;
my ($longest) = sort { $b <=> $a } map { (split /\|/)[$hold_col] } @held[1 .. $#held];
cmp_ok $longest, '>', $gate_hold, "... the longest row's hold_ms counting from its session's hold at the gate";

# Its rows are also copied to us-east, so a count there can pass one in us-west read a moment before:
# that the writer writes in us-west is its two sessions there and the rows growing while they run.
my $seattle1;
ok wait_until(sub { writers_on($west, 'seattle') >= 2 }, timeout => 30)
  && ($seattle1 = bench_rows($west, 'seattle'))
  && wait_until(sub { writers_on($west, 'seattle') >= 2 && bench_rows($west, 'seattle') > $seattle1 + 20 },
                timeout => 30),
  "seattle's writer goes on in us-west, its two sessions there";
my $boston1 = bench_rows($us, 'boston');
ok wait_until(sub { bench_rows($us, 'boston') > $boston1 }, timeout => 30), "boston's in us-east";
is one('SELECT inet_server_port()'), $west->port, 'the held seattle client is on us-west now';
is one(q{SELECT count(*) FROM users WHERE name = 'in the held transaction'}), 1, '... with its transaction';
ok wait_until(sub { psql($p2->conninfo(dbname => 'movr', options => '-c pgnear.city=Seattle'),
                         'SELECT inet_server_port()') eq $west->port }, timeout => 10),
  'the second pgnear sends a new seattle session to us-west';
ok $p2->wait_for_log(qr/city 'seattle' of database "movr" was cut over to region us-west by another pgnear: 1 of this one's sessions moved there, 0 ended/,
                     timeout => 20), '... having held its own seattle client and moved it';
is on($w2, 'SELECT inet_server_port()') . '/' . on($b2, 'SELECT inet_server_port()'), $west->port . '/' . $us->port,
  '... which is on us-west, its boston client on us-east';
my $q = $w->query(q{INSERT INTO promo_codes VALUES ('west', 'written in us-west')});
is $q->{error}{C} // '', '25006', 'in us-west, a write to promo_codes (no city) is refused: 25006';
like $q->{error}{M} // '', qr/table public\.promo_codes of database movr is written in region "us-east"/,
  '... naming the region where it is written';
$us->psql_admin(q{INSERT INTO promo_codes VALUES ('east', 'written in us-east')}, dbname => 'movr');
ok wait_until(sub { $west->psql_admin(q{SELECT count(*) FROM promo_codes WHERE code = 'east'}, dbname => 'movr') eq '1' },
              timeout => 20), '... and one written in us-east reaches us-west';
for my $city (qw(seattle boston)) {
    my $r = ended($load{$city});
    is $r->{failed} // 0, 0, "${city}'s writer: 0 failed transactions of " . ($r->{processed} // 0)
      or diag $load{$city}{out} . $load{$city}{err};
}

# The seattle rows are the same on both sides: us-east's at the cutover, and us-west's since,
# which stream back.
for my $t (qw(vehicles rides)) {
    is digest($west, $t), digest($us, $t, "city = 'seattle'"), "seattle's $t the same on both sides";
}
ok wait_until(sub { digest($west, 'users') eq digest($us, 'users', "city = 'seattle'") }, timeout => 30),
  "seattle's users the same on both sides (" . digest($west, 'users') . ')';
my ($rc, undef, $derr) = psql($us->conninfo(dbname => 'movr'),
                              q{UPDATE users SET name = 'direct' WHERE city = 'seattle' AND name = 'bench'},
                              verbose => 1);
like $derr // '', qr/25006.*rows of city 'seattle' live in region "us-west" now/s,
  'us-east refuses a direct write to a seattle row (25006)';
($rc, undef, $derr) = psql($us->conninfo(dbname => 'movr'),
                          q{UPDATE users SET name = 'direct' WHERE city = 'boston' AND name = 'bench'});
is $rc, 0, '... not to a boston row' or diag $derr;
($m) = city_move();
is $m->{state}, 'moved', 'SHOW MOVES: moved';
refused(q{MOVE CITY 'seattle' OF DATABASE movr ABORT}, '55000', qr/cannot be aborted now/, 'ABORT after the cutover');

# ------------------------------------------------------------------ REVERT under writes, then CUTOVER again

%load = (seattle => writer('seattle', 2), boston => writer('boston', 2));
my ($s0, $b0) = (bench_rows($west, 'seattle'), bench_rows($us, 'boston'));
ok wait_until(sub { bench_rows($west, 'seattle') > $s0 && bench_rows($us, 'boston') > $b0 }, timeout => 30),
  'seattle writes in us-west, boston in us-east';
my ($back, $rerr, $rnotices) = admin(q{MOVE CITY 'seattle' OF DATABASE movr REVERT});
is $rerr, undef, 'REVERT under writes' or diag $rnotices;
like $rnotices, qr/city 'seattle' of database "movr" lives in region "us-east" now: \d+ sessions moved there, 0 ended/,
  '... back in us-east';
note "REVERT held seattle's sessions $1 ms" if $rnotices =~ /the sessions were held (\d+) ms/;
is scalar(@$back), 3, '... the three seattle sessions held and moved back';
is one('SELECT inet_server_port()'), $us->port, 'the seattle client is on us-east again';
$s0 = bench_rows($us, 'seattle');
ok wait_until(sub { bench_rows($us, 'seattle') > $s0 }, timeout => 30), "seattle's writer goes on in us-east";
for my $city (qw(seattle boston)) {
    my $r = ended($load{$city});
    is $r->{failed} // 0, 0, "${city}'s writer through REVERT: 0 failed transactions of " . ($r->{processed} // 0)
      or diag $load{$city}{out} . $load{$city}{err};
}
ok wait_until(sub { digest($west, 'users') eq digest($us, 'users', "city = 'seattle'") }, timeout => 30),
  "nothing lost: seattle's users the same on both sides (" . digest($us, 'users', "city = 'seattle'") . ')';
($m) = city_move();
is $m->{state}, 'streaming', 'SHOW MOVES: streaming again';
($rc, undef, $derr) = psql($west->conninfo(dbname => 'movr'),
                           q{UPDATE users SET name = 'direct' WHERE city = 'seattle' AND name = 'bench'}, verbose => 1);
like $derr // '', qr/25006.*rows of city 'seattle' live in region "us-east" now/s,
  'us-west refuses a direct write to a seattle row now';
# Killed (kill -9) during a CUTOVER before its commit: the other pgnear of the fleet undoes it.
my $wk = client($p, 'Seattle');
on($wk, 'BEGIN');
on($wk, q{INSERT INTO users (city, name) VALUES ('seattle', 'in a transaction at the kill')});
my $cutk = IPC::Run::start([require_tool('psql'), '-X', '-c', q{MOVE CITY 'seattle' OF DATABASE movr CUTOVER},
                            $admin_ci], '>', \my $k_out, '2>', \my $k_err);
ok wait_until(sub { $cutk->pump_nb if $cutk->pumpable; ($k_err // '') =~ /holding the city/ }, timeout => 30),
  'a CUTOVER waits for a seattle transaction' or diag $k_err;
$p->stop(signal => 'KILL');
eval { $cutk->finish };
ok $p2->wait_for_log(qr/city 'seattle' of database "movr" lives in region "us-east": the interrupted CUTOVER had not been committed, and is undone/,
                     timeout => 30), 'killed there, the other pgnear of the fleet undoes it';
my $admin2_ci = $p2->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');
ok wait_until(sub { my ($r) = admin_rows($admin2_ci, 'SHOW MOVES');
                    grep { ($_->{city} // '') eq 'seattle' && $_->{state} eq 'streaming' } @$r }, timeout => 10),
  '... SHOW MOVES: streaming';
is on($w2, 'SELECT inet_server_port()'), $us->port, "... its own seattle client let go on us-east";
($rc, undef, $derr) = psql($us->conninfo(dbname => 'movr'),
                           q{UPDATE users SET name = 'bench' WHERE city = 'seattle' AND name = 'bench'});
is $rc, 0, '... and us-east takes seattle\'s writes' or diag $derr;
$p->start;
ok wait_until(sub { my ($r) = admin('SHOW REGIONS'); 2 == grep { $_->{role} eq 'primary' } @$r }, timeout => 20),
  'the killed pgnear restarted';
$w = client($p, 'Seattle');

($rows, $err, $notices) = admin(q{MOVE CITY 'seattle' OF DATABASE movr CUTOVER});
is $err, undef, 'CUTOVER again';
note "the second CUTOVER held seattle's sessions $1 ms" if $notices =~ /the sessions were held (\d+) ms/;
is one('SELECT inet_server_port()'), $west->port, '... the seattle client on us-west';
is one(q{INSERT INTO users (city, name) VALUES ('seattle', 'after the second cutover') RETURNING name}),
   'after the second cutover', '... writing there';

# ------------------------------------------------------------------ FINISH

my $boston_rows = digest($us, 'users', "city = 'boston'");
my $seattle_rows = digest($west, 'users');
($rows, $err, $notices) = admin(q{MOVE CITY 'seattle' OF DATABASE movr FINISH});
is $err, undef, 'FINISH';
like $notices, qr/its (\d+) rows in region "us-east" are deleted/, '... saying how many rows it deleted';
is $us->psql_admin(q{SELECT (SELECT count(*) FROM users WHERE city = 'seattle')
                      + (SELECT count(*) FROM vehicles WHERE city = 'seattle')
                      + (SELECT count(*) FROM rides WHERE city = 'seattle')}, dbname => 'movr'), '0',
  "us-east holds no seattle row any more";
is digest($us, 'users', "city = 'boston'"), $boston_rows, "... and all of boston's";
is digest($west, 'users'), $seattle_rows, "us-west keeps seattle's";
is source_objects(), '1/1', 'on us-east, one publication and its slot left:';
is $us->psql_admin('SELECT string_agg(pubname, \',\') FROM pg_publication', dbname => 'movr'), 'pgnear_reference',
  '... pgnear_reference, of the tables without the city';
sub west_objects {
    $west->psql_admin(q{SELECT (SELECT count(*) FROM pg_publication) || '/' || (SELECT count(*) FROM pg_replication_slots)
                        || '/' || coalesce((SELECT string_agg(array_to_string(subpublications, '+'), ',' ORDER BY subname)
                                            FROM pg_subscription), '')}, dbname => 'movr');
}
is west_objects(), '0/0/pgnear_reference', '... which us-west follows, nothing else left there';
# The tables without the column go on following us-east: us-west's seattle sessions read them.
sub promo_follows {
    my ($code) = @_;
    $us->psql_admin("INSERT INTO promo_codes VALUES ('$code', 'written in us-east')", dbname => 'movr');
    wait_until(sub { $west->psql_admin("SELECT count(*) FROM promo_codes WHERE code = '$code'", dbname => 'movr') eq '1' },
               timeout => 20);
}
ok promo_follows('after-finish'), 'a promo code written in us-east after FINISH reaches us-west';
($m) = city_move();
is $m->{state}, 'finished', 'SHOW MOVES: finished';
ok wait_until(sub { grep { ($_->{city} // '') eq 'seattle' && $_->{region} eq 'us-west' && $_->{state} eq 'finished' } homes() },
              timeout => 10), 'SHOW HOMES: seattle lives in us-west, its move finished';
is psql($p->conninfo(dbname => 'movr', options => '-c pgnear.city=Seattle'), 'SELECT inet_server_port()'),
   $west->port, 'a new seattle session lands in us-west';
is psql($p->conninfo(dbname => 'movr', options => '-c pgnear.city=Boston'), 'SELECT inet_server_port()'),
   $us->port, '... a boston one in us-east';
(undef, undef, $derr) = psql($us->conninfo(dbname => 'movr'),
                             q{INSERT INTO users (city, name) VALUES ('seattle', 'late')}, verbose => 1);
like $derr // '', qr/25006/, 'us-east still refuses a seattle row written there directly';
# As a role that is not a superuser (the application's usually): the trigger reads pgnear's schema
# with pgnear's rights, not the writer's.
$us->psql_admin(["CREATE ROLE rider LOGIN PASSWORD 'rider-secret'", 'GRANT SELECT, INSERT ON users TO rider'],
                dbname => 'movr');
# In us-west with us-east's secret, as a city's move wants of the roles that log in (a salt each else).
$west->psql_admin(["CREATE ROLE rider LOGIN PASSWORD '" . $us->scram_verifier('rider') . "'",
                   'GRANT SELECT, INSERT ON users TO rider'], dbname => 'movr');
my $rider = $us->conninfo(dbname => 'movr', user => 'rider', password => 'rider-secret');
(undef, undef, $derr) = psql($rider, q{INSERT INTO users (city, name) VALUES ('seattle', 'rider')}, verbose => 1);
like $derr // '', qr/25006.*city 'seattle' live in region "us-west"/s, '... so does it for a role that is not a superuser';
is psql($rider, q{WITH i AS (INSERT INTO users (city, name) VALUES ('boston', 'rider') RETURNING city)
                  SELECT city FROM i}), 'boston',
  "... which writes boston's rows";
(undef, undef, $derr) = psql($west->conninfo(dbname => 'movr'),
                             q{INSERT INTO promo_codes VALUES ('late', 'x')}, verbose => 1);
like $derr // '', qr/25006/, 'us-west still refuses a write to its copy of promo_codes';

# ------------------------------------------------------------------ migrations where the city's rows live

write_file("$dir/migrations/0002_nickname.sql", "ALTER TABLE users ADD COLUMN nickname text;\n");
($rows, $err, $notices) = admin('MIGRATE UP');
is $err, undef, 'MIGRATE UP after FINISH' or diag $notices;
like $notices, qr/region "us-east": step 2 \(nickname\) applied.*region "us-west": step 2 \(nickname\) applied/s,
  '... runs step 2 in us-east, then in us-west, where seattle lives';
unlike $notices, qr/step 1 /, '... not step 1 again: us-west\'s history came with the copy';
for my $c ($us, $west) {
    my %h = history($c);
    is "$h{1}/$h{2}", 'applied/applied', "$c->{name}: steps 1 and 2 applied in its history";
    is $c->psql_admin(q{SELECT count(*) FROM information_schema.columns WHERE table_name = 'users'
                        AND column_name = 'nickname'}, dbname => 'movr'), '1', "... users.nickname there";
}
is migration_regions(), 'us-east,us-west', 'SHOW MIGRATIONS lists us-west';
(undef, $err, $notices) = admin('MIGRATE PLAN IN REGION us-west');
is $err, undef, 'MIGRATE PLAN IN REGION us-west is accepted' or diag $notices;
like $notices, qr/region "us-west" has nothing to run/, '... and has nothing to run';

write_file("$dir/migrations/0003_slow.sql", "SELECT pg_sleep(1);\n");
my $mig = IPC::Run::start([require_tool('psql'), '-X', '-c', 'MIGRATE UP', $admin_ci], '>', \my $m_out, '2>', \my $m_err);
ok wait_until(sub { $mig->pump_nb if $mig->pumpable; ($m_err // '') =~ /step 3 \(slow\), statement 1/ }, timeout => 20),
  'a slow step 3 runs' or diag $m_err;
refused(q{MOVE CITY 'boston' OF DATABASE movr TO REGION us-west}, '55006',
        qr/a migration of database "movr" is running.*MIGRATE UP by admin admin.*step 3 \(slow\) runs in region "us-(east|west)"/s,
        'MOVE CITY of another city meanwhile');
refused('MOVE DATABASE movr TO REGION us-west', '55006', qr/a migration of database "movr" is running/,
        'MOVE DATABASE meanwhile');
ok $mig->finish, 'the slow step ends' or diag $m_err;
# Run by the other pgnear of the fleet: its lock on the primaries says so.
write_file("$dir/migrations/0004_slow_too.sql", "SELECT pg_sleep(1.5);\n");
$mig = IPC::Run::start([require_tool('psql'), '-X', '-c', 'MIGRATE UP', $admin2_ci], '>', \$m_out, '2>', \$m_err);
ok wait_until(sub { $mig->pump_nb if $mig->pumpable; ($m_err // '') =~ /step 4 \(slow_too\), statement 1/ }, timeout => 20),
  'a slow step 4 runs on the second pgnear' or diag $m_err;
refused(q{MOVE CITY 'boston' OF DATABASE movr TO REGION us-west}, '55006',
        qr/a migration of database "movr" is running in region "us-(east|west)".*pgnear migrations \(server process \d+/s,
        '... MOVE CITY on the first meanwhile');
ok $mig->finish, '... the step ends' or diag $m_err;

# ------------------------------------------------------------------ a second city into us-west

# Its tables must be us-east's: a column us-west alone has is refused, naming the table.
$west->psql_admin('ALTER TABLE vehicles ADD COLUMN color text', dbname => 'movr');
refused(q{MOVE CITY 'boston' OF DATABASE movr TO REGION us-west}, '55000',
        qr/the tables of database "movr" differ between regions "us-east" and "us-west".*public\.vehicles \(city text not null, id uuid not null, owner_id uuid\); region "us-west" has public\.vehicles \(city text not null, id uuid not null, owner_id uuid, color text\)/s,
        'boston into us-west, whose vehicles have a column more');
$west->psql_admin('ALTER TABLE vehicles DROP COLUMN color', dbname => 'movr');

my $seattle_west = digest($west, 'users');
sub boston_in_west { $west->psql_admin(q{SELECT (SELECT count(*) FROM users WHERE city = 'boston')
                                         + (SELECT count(*) FROM vehicles WHERE city = 'boston')
                                         + (SELECT count(*) FROM rides WHERE city = 'boston')}, dbname => 'movr') }
sub boston_streams {
    ($rows, $err, $notices) = admin(q{MOVE CITY 'boston' OF DATABASE movr TO REGION us-west});
    return 0 if defined $err;
    return wait_until(sub { my ($b) = grep { $_->{city} eq 'boston' && $_->{state} ne 'aborted' } city_move();
                            ($b->{state} // '') eq 'streaming' }, timeout => 60);
}
ok boston_streams(), 'MOVE CITY boston TO REGION us-west, where seattle lives, copies and streams' or diag $err;
like $notices, qr/rows whose city = 'boston' \(compared as written\): public\.rides 400, public\.users \d+/,
  '... its NOTICE counting boston\'s rows';
for my $t (qw(users vehicles rides)) {
    is digest($west, $t, "city = 'boston'"), digest($us, $t, "city = 'boston'"), "us-west holds boston's $t";
}
is digest($west, 'users', "city = 'seattle'"), $seattle_west, "... beside seattle's, untouched";
is digest($west, 'promo_codes'), digest($us, 'promo_codes'), '... promo_codes as they were (copied once)';
is west_objects(), '0/0/pgnear_reference,pgnear_move',
  '... the move subscribed to its own publication, beside the feed of promo_codes';

($rows, $err) = admin(q{MOVE CITY 'boston' OF DATABASE movr ABORT});
is $err, undef, "boston's ABORT";
is boston_in_west(), '0', "... deletes boston's rows in us-west";
is digest($west, 'users', "city = 'seattle'"), $seattle_west, "... not seattle's";
is digest($west, 'promo_codes'), digest($us, 'promo_codes'), '... nor promo_codes';
is west_objects(), '0/0/pgnear_reference', "... and drops the move's subscription, not the feed";
is source_objects(), '1/1', '... whose publication and slot stay on us-east';
ok promo_follows('after-abort'), '... and which still carries a new promo code';
(undef, undef, $derr) = psql($us->conninfo(dbname => 'movr'),
                             q{INSERT INTO users (city, name) VALUES ('seattle', 'after the abort')}, verbose => 1);
like $derr // '', qr/25006.*city 'seattle' live in region "us-west"/s,
  "... and us-east still refuses a seattle row written there directly (seattle's refusal kept)";

ok boston_streams(), 'boston moved again' or diag $err;
my $bc = client($p, 'Boston');
is on($bc, 'SELECT inet_server_port()'), $us->port, 'a boston session in us-east';
($rows, $err, $notices) = admin(q{MOVE CITY 'boston' OF DATABASE movr CUTOVER});
is $err, undef, "boston's CUTOVER" or diag $notices;
is on($bc, 'SELECT inet_server_port()'), $west->port, '... moves the boston session to us-west';
is on($bc, q{INSERT INTO users (city, name) VALUES ('boston', 'west rider') RETURNING name}), 'west rider',
  '... where it writes boston rows';
(undef, undef, $derr) = psql($us->conninfo(dbname => 'movr'),
                             q{INSERT INTO users (city, name) VALUES ('boston', 'late')}, verbose => 1);
like $derr // '', qr/25006.*city 'boston' live in region "us-west"/s,
  'us-east refuses a boston row written there directly (the trigger seattle\'s move made serves boston)';
# REVERT, then CUTOVER again: the joining city's way back, its rows written in us-west coming home.
($rows, $err, $notices) = admin(q{MOVE CITY 'boston' OF DATABASE movr REVERT});
is $err, undef, "boston's REVERT" or diag $notices;
is on($bc, 'SELECT inet_server_port()'), $us->port, '... moves the boston session back to us-east';
is on($bc, q{SELECT count(*) FROM users WHERE name = 'west rider'}), '1', '... where its row written in us-west is';
is digest($west, 'users', "city = 'seattle'"), $seattle_west, "... seattle's rows in us-west untouched";
($rows, $err, $notices) = admin(q{MOVE CITY 'boston' OF DATABASE movr CUTOVER});
is $err, undef, "boston's CUTOVER again" or diag $notices;
is on($bc, 'SELECT inet_server_port()'), $west->port, '... the boston session in us-west again';
($rows, $err, $notices) = admin(q{MOVE CITY 'boston' OF DATABASE movr FINISH});
is $err, undef, "boston's FINISH";
is $us->psql_admin(q{SELECT (SELECT count(*) FROM users WHERE city IN ('seattle', 'boston'))
                      + (SELECT count(*) FROM rides WHERE city IN ('seattle', 'boston'))}, dbname => 'movr'), '0',
  '... us-east holds no boston nor seattle row';
is $west->psql_admin(q{SELECT string_agg(DISTINCT city, ',' ORDER BY city) FROM users}, dbname => 'movr'),
  'boston,seattle', '... us-west both cities';
is west_objects(), '0/0/pgnear_reference', '... the feed of promo_codes alone left in us-west';
ok promo_follows('after-boston'), '... which still carries a new promo code';
ok wait_until(sub { 2 == grep { $_->{region} eq 'us-west' && $_->{state} eq 'finished' } homes() }, timeout => 10),
  'SHOW HOMES: seattle and boston live in us-west';
is psql($p2->conninfo(dbname => 'movr', options => '-c pgnear.city=Boston'), 'SELECT inet_server_port()'),
   $west->port, 'a new boston session on the other pgnear lands in us-west';
refused('MOVE DATABASE movr TO REGION us-west', '0A000',
        qr/cities of database "movr" live in other regions than its own.*Moved by MOVE CITY: (?=.*'seattle' in "us-west")(?=.*'boston' in "us-west")/s,
        'MOVE DATABASE while cities of it live away from it');

# ------------------------------------------------------------------ tables a migration makes after the moves

# A table without the city (its row written by the step in both regions) and a homed one: the
# upkeep after the run publishes the first from us-east and has us-west follow and refuse it,
# and guards the second in us-east.
write_file("$dir/migrations/0005_city_tables.sql",
           "CREATE TABLE cities_info (name text PRIMARY KEY, note text);\n"
           . "INSERT INTO cities_info VALUES ('seattle', 'from the step');\n"
           . "CREATE TABLE reviews (city text, id uuid DEFAULT gen_random_uuid(), body text,"
           . " PRIMARY KEY (city, id));\n");
($rows, $err, $notices) = admin('MIGRATE UP');
is $err, undef, 'MIGRATE UP of a step making a table without the city and a homed table' or diag $notices;
like $notices, qr/region "us-east": database "movr" kept in step with its cities' regions: published in pgnear_reference: public\.cities_info; pgnear_move_city made on: public\.reviews/,
  '... then us-east publishes cities_info and guards reviews';
like $notices, qr/region "us-west": database "movr" kept in step with region "us-east": writes refused to its copies of public\.cities_info; refreshed its feed pgnear_move_\d+, which copies public\.cities_info/,
  '... and us-west refuses writes to its cities_info, which its feed copies';
$us->psql_admin(q{INSERT INTO cities_info VALUES ('boston', 'written in us-east')}, dbname => 'movr');
sub cities_info { $west->psql_admin(q{SELECT string_agg(name || ':' || note, ',' ORDER BY name) FROM cities_info},
                                    dbname => 'movr') }
ok wait_until(sub { cities_info() eq 'boston:written in us-east,seattle:from the step' }, timeout => 30),
  'a cities_info row written in us-east reaches us-west (the step\'s row there once)' or diag cities_info();
(undef, undef, $derr) = psql($west->conninfo(dbname => 'movr'), q{INSERT INTO cities_info VALUES ('x', 'y')},
                             verbose => 1);
like $derr // '', qr/25006.*table public\.cities_info of database movr is written in region "us-east"/s,
  'us-west refuses a direct write to its copy of cities_info';
(undef, undef, $derr) = psql($us->conninfo(dbname => 'movr'),
                             q{INSERT INTO reviews (city, body) VALUES ('seattle', 'direct')}, verbose => 1);
like $derr // '', qr/25006.*city 'seattle' live in region "us-west"/s, 'us-east refuses a seattle review written there';
is psql($us->conninfo(dbname => 'movr'),
        q{WITH i AS (INSERT INTO reviews (city, body) VALUES ('new york', 'fine') RETURNING city) SELECT city FROM i}),
   'new york', '... and takes a new york one';
($rows, $err, $notices) = admin('MIGRATE UP');
is $err, undef, 'MIGRATE UP with nothing to run';
like $notices, qr/nothing to run.*region "us-east": [^\n]*nothing was missing.*region "us-west": [^\n]*nothing new to copy/s,
  '... does the upkeep again, which finds nothing missing';

# A step run in us-east alone: its table is not published until us-west has it too.
write_file("$dir/migrations/0006_city_notes.sql", "CREATE TABLE city_notes (name text PRIMARY KEY);\n");
($rows, $err, $notices) = admin('MIGRATE UP IN REGION us-east');
is $err, undef, 'MIGRATE UP IN REGION us-east of a step making city_notes' or diag $notices;
like $notices, qr/region "us-east": [^\n]*not published while a region of its cities lacks them: public\.city_notes/,
  '... which is not published while us-west lacks it';
($rows, $err, $notices) = admin('MIGRATE UP');
like $notices, qr/region "us-east": [^\n]*published in pgnear_reference: public\.city_notes/,
  '... and is, once MIGRATE UP has run the step in us-west';
$us->psql_admin(q{INSERT INTO city_notes VALUES ('new york')}, dbname => 'movr');
ok wait_until(sub { $west->psql_admin('SELECT count(*) FROM city_notes', dbname => 'movr') eq '1' }, timeout => 30),
  '... its rows then reach us-west';

done_testing;
