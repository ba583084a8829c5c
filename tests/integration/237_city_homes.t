# Rows homed by a city column, step one: the homes map and the routing by
# it.  movr ([database movr] home_by = city, regions = us-east, pooled by
# transaction, so each transaction is routed again) and plain
# (regions = us-east, no home_by) over two clusters, us-east and us-west,
# each its own primary.  Once a record of a finished city move (seattle
# to us-west) is in pgnear_city_moves on both primaries, as MOVE CITY
# writes it, a movr session from Seattle runs on us-west within the
# follower's round, however the city is spelled (capitals, Seattle,US); one from Amsterdam, one
# with no city and one naming us-west by a region hint stay on us-east,
# where movr lives; plain ignores the city's row.  SHOW HOMES shows
# seattle's home and the row of every other city.  A record an older
# pgnear made (no city column, no city moves' table) is read as one
# without city rows.  home_by without
# regions, or not a column name, is refused at load.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;
use PgNearDbMove qw(write_users admin_rows);

require_tool('psql');

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $west = PgNearTest::Cluster->new(name => 'us-west');
my $app_secret = $us->scram_verifier('app');
$west->psql_admin("ALTER ROLE app PASSWORD '$app_secret'");
$us->psql_admin('CREATE DATABASE plain OWNER app');

my $dir = tmpdir(name => 'homes');
write_users($dir, $app_secret);
my %SETTINGS = (auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                server_tls => 'disable', workers => $ENV{PGNEAR_TEST_WORKERS} // 2,
                health_check_interval => '1s', health_check_timeout => '5s',
                cities_file => ($ENV{PGNEAR_SRCDIR} // "$FindBin::RealBin/../..") . "/conf/cities.csv");
my $p = PgNearTest::Proxy->new(regions => [$us, $west], settings => \%SETTINGS,
    extra_ini => "[database movr]\nregions = us-east\nhome_by = city\npool_mode = transaction\n\n"
               . "[database plain]\nregions = us-east\n");
my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');

# The port of the server a session from %o's city (or none) runs its query on.
sub server_of {
    my ($db, %o) = @_;
    my @opts;
    push @opts, "-c pgnear.city=$o{city}" if defined $o{city};
    push @opts, "-c pgnear.region=$o{region}" if defined $o{region};
    my ($rc, $out, $err) = psql($p->conninfo(dbname => $db, options => join(' ', @opts)),
                                'SELECT inet_server_port()', verbose => 1);
    return $rc == 0 ? $out : "error: $err";
}

sub homes { my ($rows, $err) = admin_rows($admin_ci, 'SHOW HOMES'); return $err ? () : @$rows }

is server_of('movr', city => 'Seattle'), $us->port, 'before any city move: Seattle on us-east';
is_deeply [map { "$_->{database}|$_->{column}|$_->{city}|$_->{region}|$_->{state}" } homes()],
          ['movr|city||us-east|'], 'SHOW HOMES: every city of movr in us-east, no move';

# The record as an older pgnear made it, with no city column: still read (no row of a city).
for my $c ($us, $west) {
    $c->psql_admin([
        q{CREATE TABLE pgnear_database_moves (id bigint PRIMARY KEY, database text NOT NULL,
            from_region text NOT NULL, to_region text NOT NULL, state text NOT NULL,
            created_database boolean NOT NULL, started_at timestamptz NOT NULL DEFAULT now(),
            started_by text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
            last_error text, version int NOT NULL DEFAULT 0)},
        q{INSERT INTO pgnear_database_moves (id, database, from_region, to_region, state,
            created_database, started_by, version) VALUES
            (900, 'movr', 'us-east', 'us-west', 'aborted', false, 'test', 3)},
    ]);
}
ok wait_until(sub { my ($h) = homes(); ($h->{move_id} // '') eq '900' }, timeout => 10),
  'a record without the city column is read: SHOW HOMES shows movr\'s aborted move';
unlike $p->log_contents, qr/record of moves in region \S+ could not be read/, '... with no warning';

# The city moves' table as a move makes it, then the record as a finished MOVE CITY leaves it,
# on both primaries.
for my $c ($us, $west) {
    $c->psql_admin([
        q{ALTER TABLE pgnear_database_moves ADD COLUMN IF NOT EXISTS city text},
        q{CREATE TABLE pgnear_city_moves (LIKE pgnear_database_moves INCLUDING ALL)},
        q{INSERT INTO pgnear_city_moves (id, database, from_region, to_region, state,
            created_database, started_by, version, city) VALUES
            (1000, 'movr', 'us-east', 'us-west', 'finished', false, 'test', 4, 'seattle'),
            (1001, 'plain', 'us-east', 'us-west', 'finished', false, 'test', 4, 'seattle')},
    ]);
}

ok wait_until(sub { server_of('movr', city => 'Seattle') eq $west->port }, timeout => 10),
  'a movr session from Seattle: us-west, its city\'s home, within the follower\'s round';
is server_of('movr', city => 'SEATTLE'), $west->port, '... the city named in capitals too';
is server_of('movr', city => 'Seattle,US'), $west->port,
  '... and qualified (Seattle,US), under transaction pooling, which plans each transaction again';
like $p->log_contents, qr/city "seattle" of database "movr" lives in region us-west \(its move is finished\)/,
  '... and the log says where seattle lives';
unlike $p->log_contents, qr/of database "plain" lives/, '... not where plain\'s city row would put it';
is server_of('movr', city => 'Amsterdam'), $us->port, 'from Amsterdam: us-east, where movr lives';
is server_of('movr'), $us->port, 'with no city: us-east';
is server_of('movr', region => 'us-west'), $us->port, 'naming us-west with no city: us-east';
is server_of('plain', city => 'Seattle'), $us->port, 'plain (no home_by) from Seattle: us-east';
# Every worker routes by the same homes: a few sessions land on each.
is_deeply [map { server_of('movr', city => 'Seattle') } 1 .. 4], [($west->port) x 4],
          'four more Seattle sessions: us-west each';

my @h = homes();
is_deeply [map { "$_->{database}|$_->{column}|$_->{city}|$_->{region}|$_->{move_id}|$_->{state}" } @h],
          ['movr|city|seattle|us-west|1000|finished', 'movr|city||us-east|900|aborted'],
          'SHOW HOMES: seattle in us-west by move 1000, every other city in us-east';
like $h[0]{since} // '', qr/^\d{4}-\d\d-\d\d /, '... since the record\'s last change';

# A move that is aborted homes the city with the others again.
$_->psql_admin(q{UPDATE pgnear_city_moves SET state = 'aborted', version = 5 WHERE id = 1000})
  for $us, $west;
ok wait_until(sub { server_of('movr', city => 'Seattle') eq $us->port }, timeout => 10),
  'its move aborted: Seattle on us-east again';

# ------------------------------------------------------------------ the setting at load

sub check_says {
    my ($section) = @_;
    my $base = $p->config_text;
    $base =~ s/\[database movr\].*?(?=\[database plain\])//s;
    write_file("$dir/bad.ini", "$base\n$section");
    my ($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', "$dir/bad.ini"]);
    return $rc == 1 ? $err : "rc $rc";
}
like check_says("[database movr]\nhome_by = city\n"), qr/home_by needs regions/,
  'home_by without regions: refused, saying it needs regions';
like check_says("[database movr]\nregions = us-east\nhome_by = city-id\n"), qr/invalid home_by/,
  'a home_by that is not a column name: refused';

done_testing;
