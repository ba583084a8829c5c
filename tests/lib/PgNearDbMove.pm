package PgNearDbMove;

# Helpers for the tests of database moves (236, 238, 239, 240): two
# clusters with wal_level = logical holding MovR's tables on one side, and
# the admin console's answers as rows.
#
#   logical_pair(rides => 100000, extra => [...]) -> ($us, $eu, $app_secret):
#       us-east and eu-west, both with wal_level = logical and room for
#       slots; movr on us-east with users (1,000), vehicles (100) and rides
#       (`rides` rows, each with a rider and a vehicle, from the rides
#       sequence), `extra` SQL run there too; eu-west without movr, its
#       app role with us-east's password (SCRAM verifier), which is returned
#   write_users($dir, $app_secret) -> "$dir/users.txt": admin (admin-secret)
#       and app, for auth = scram
#   admin_rows($conninfo, $sql, timeout => 180) -> (\@rows, $error, $stderr):
#       each row a hash by column; $error undef when psql succeeded; $stderr
#       holds the NOTICEs (psql verbose)
#   admin_refused($conninfo, $sql, $sqlstate, qr/why/, $name): two checks, that
#       the command is refused with $sqlstate and that its error says why
#   move_state($conninfo, $database) -> the state SHOW MOVES gives, or ''

use strict;
use warnings;
use Exporter 'import';
use PgNearTest;
use Test::More ();

our @EXPORT_OK = qw(logical_pair write_users admin_rows admin_refused move_state);

my %LOGICAL = (conf => { wal_level => 'logical', max_replication_slots => 10, max_wal_senders => 10 });

sub logical_pair {
    my (%o) = @_;
    my $rides = $o{rides} // 100000;
    my $us = PgNearTest::Cluster->new(name => 'us-east', %LOGICAL);
    my $eu = PgNearTest::Cluster->new(name => 'eu-west', %LOGICAL);
    $eu->psql_admin('DROP DATABASE movr');
    $us->psql_admin([
        'CREATE TABLE users (id bigserial PRIMARY KEY, city text NOT NULL, name text NOT NULL)',
        'CREATE TABLE vehicles (id bigserial PRIMARY KEY, city text NOT NULL, status text NOT NULL,'
          . ' rides int NOT NULL DEFAULT 0)',
        'CREATE TABLE rides (id bigserial PRIMARY KEY, rider bigint REFERENCES users,'
          . ' vehicle bigint REFERENCES vehicles, city text, revenue numeric(10,2),'
          . ' start_time timestamptz DEFAULT now())',
        q{INSERT INTO users (city, name) SELECT (ARRAY['boston','dublin','paris'])[1 + g % 3], 'user ' || g
          FROM generate_series(1, 1000) g},
        q{INSERT INTO vehicles (city, status) SELECT (ARRAY['boston','dublin','paris'])[1 + g % 3], 'available'
          FROM generate_series(1, 100) g},
        qq{INSERT INTO rides (rider, vehicle, city, revenue) SELECT 1 + g % 1000, 1 + g % 100, 'boston', g % 97
           FROM generate_series(1, $rides) g},
        @{ $o{extra} // [] },
    ], dbname => 'movr');
    my $app_secret = $us->scram_verifier('app');
    $eu->psql_admin("ALTER ROLE app PASSWORD '$app_secret'");
    return ($us, $eu, $app_secret);
}

sub write_users {
    my ($dir, $app_secret) = @_;
    PgNearTest::write_file("$dir/users.txt",
                           qq{"admin" "} . PgNearTest::make_scram_verifier('admin-secret') . qq{"\n"app" "$app_secret"\n});
    return "$dir/users.txt";
}

sub admin_rows {
    my ($ci, $sql, %o) = @_;
    my ($rc, $out, $err) = PgNearTest::psql($ci, $sql, args => ['-P', 'tuples_only=off', '-P', 'footer=off'],
                                            verbose => 1, timeout => $o{timeout} // 180);
    my @lines = split /\n/, $out;
    my @head = split /\|/, (shift(@lines) // ''), -1;
    my @rows = map { my %r; @r{@head} = split(/\|/, $_, -1); \%r } @lines;
    return (\@rows, $rc == 0 ? undef : $err, $err);
}

sub admin_refused {
    my ($ci, $sql, $code, $re, $name) = @_;
    my (undef, $err) = admin_rows($ci, $sql, timeout => 120);
    Test::More::is(PgNearTest::sqlstate($err), $code, "$name: $code");
    Test::More::like($err // '', $re, '... saying why');
}

sub move_state {
    my ($ci, $database) = @_;
    my ($rows) = admin_rows($ci, 'SHOW MOVES');
    my ($m) = grep { $_->{database} eq $database } @$rows;
    return $m ? $m->{state} : '';
}

1;
