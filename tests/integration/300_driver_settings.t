# Real drivers' connect paths under transaction pooling: the session-level
# settings each one sets as it connects follow its client (txn_settings.h)
# instead of pinning its server connection.  Per driver, three clients of
# different settings ("plain" and two tenants of their own schema, time
# zone or timeouts) run directly against PostgreSQL and then through pgnear
# with pool_mode = transaction, one worker and pool_size = 1, so that they
# take turns on one server connection:
#   psycopg 3 (python3-psycopg): SET TIME ZONE (client-side bound), a
#     set_config of search_path, SET lock_timeout, prepared statements;
#   Django 3.2 (python3-django, over psycopg2): its connect's SET TIME ZONE
#     (USE_TZ, a TIME_ZONE per alias) and a connection_created handler's SET
#     search_path, ORM queries and transaction.atomic() blocks;
#   node-postgres (tests/node): Prisma-style SET search_path, SET
#     statement_timeout and SET application_name in one simple query, named
#     prepared statements, BEGIN ... COMMIT;
#   pgjdbc (libpostgresql-jdbc-java, run by java's source launcher): its
#     connect's SET extra_float_digits = 3 and SET application_name, then SET
#     search_path and SET TIME ZONE, PreparedStatements prepared on the
#     server from their 5th run, transactions with setAutoCommit(false).
# Each client checks what it sees in every transaction; the test holds the
# answers through pgnear to the direct ones (and the settings each session
# holds after its connect), all of them from one server connection, the
# pins counter at 0, no client pinned, and each client's settings counted
# in SHOW CLIENTS as PostgreSQL showed them directly.  A missing driver or
# runtime fails the test (scripts/install-deps.sh installs them all).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IPC::Open2;
use IO::Select;
use JSON::PP;
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
my $root = "$FindBin::RealBin/../..";
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : require_tool('python3');
my $jar = '/usr/share/java/postgresql.jar';
my %missing = (
    'psycopg 3 (python3-psycopg)' => system($python, '-c', 'import psycopg') != 0,
    'Django (python3-django)' => system($python, '-c', 'import django, psycopg2') != 0,
    'node-postgres (tests/node/node_modules/pg)' =>
        system('node', '-e', "require('$root/tests/node/node_modules/pg')") != 0,
    'java (openjdk-17-jre-headless)' => system('java -version >/dev/null 2>&1') != 0,
    "pgjdbc (libpostgresql-jdbc-java: $jar)" => !-r $jar,
);
my @missing = grep { $missing{$_} } sort keys %missing;
BAIL_OUT("missing: @missing (scripts/install-deps.sh installs them)") if @missing;

my %cmd = (
    'psycopg 3' => [$python, "$root/tests/clients/psycopg_settings_client.py"],
    'Django' => [$python, "$root/tests/clients/django_client.py"],
    'node-postgres' => ['node', "$root/tests/node/settings_client.js"],
    'pgjdbc' => ['java', '-cp', $jar, "$root/tests/clients/JdbcSettings.java"],
);
my @drivers = ('psycopg 3', 'Django', 'node-postgres', 'pgjdbc');

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin($_, dbname => 'movr') for
    'CREATE SCHEMA IF NOT EXISTS tenant_a', 'CREATE SCHEMA IF NOT EXISTS tenant_b',
    'CREATE TABLE public.items (who text)', 'CREATE TABLE tenant_a.items (who text)',
    'CREATE TABLE tenant_b.items (who text)', q{INSERT INTO public.items VALUES ('public')},
    q{INSERT INTO tenant_a.items VALUES ('a')}, q{INSERT INTO tenant_b.items VALUES ('b')},
    'GRANT USAGE ON SCHEMA tenant_a, tenant_b TO app',
    'GRANT SELECT ON public.items, tenant_a.items, tenant_b.items TO app';
my $auth_dir = tmpdir(name => 'driver-settings');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist,
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

# One worker and pool_size = 1: one server connection for all of a driver's clients.
sub proxy {
    PgNearTest::Proxy->new(regions => [$us], settings => {
        auth => 'scram', auth_file => $userlist, admin_users => 'admin', server_tls => 'disable',
        pool_mode => 'transaction', pool_size => 1, workers => 1, query_wait_timeout => '20s' });
}

sub stat_value {
    my ($p, $name) = @_;
    my ($row) = grep { $_->{stat} eq $name } $p->admin_rows('SHOW STATS');
    return $row ? $row->{value} : undef;
}

# The driver's clients at $port: (its JSON answer, a sub that stops them and waits).
sub start_driver {
    my ($name, $port) = @_;
    my $pid = open2(my $out, my $in, @{ $cmd{$name} }, '--port', $port);
    my $stop = sub { print $in "stop\n"; close $in; waitpid $pid, 0 };
    my $line;
    # java compiles the client first: minutes on a loaded machine.
    $line = <$out> if IO::Select->new($out)->can_read(300);
    unless (defined $line) {
        kill 'TERM', $pid;
        $stop->();
        return ({ fatal => "no answer from $name" }, sub { });
    }
    my $res = eval { decode_json($line) } // { fatal => "not JSON: $line" };
    return ($res, $stop);
}

sub by_id { return { map { ($_->{id} => $_) } @{ $_[0]{clients} // [] } } }

for my $name (@drivers) {
    my ($direct, $stop) = start_driver($name, $us->port);
    $stop->();
    is $direct->{fatal}, undef, "$name: directly: its clients ran";
    my $d = by_id($direct);
    is_deeply [map { $_->{failure_count} } values %$d], [map { 0 } values %$d],
              "$name: directly: every answer as its client set it"
      or diag explain [map { @{ $_->{failures} } } values %$d];
    my %pids = map { ($_ => 1) } map { @{ $_->{backends} } } values %$d;
    is scalar keys %pids, scalar keys %$d, "$name: directly: a server connection each";

    my $p = proxy();
    my ($got, $stop_p) = start_driver($name, $p->port);
    is $got->{fatal}, undef, "$name: through pgnear: its clients ran";
    my $g = by_id($got);
    is_deeply [sort keys %$g], [sort keys %$d], "$name: through pgnear: the same clients";
    for my $id (sort keys %$d) {
        my $c = $g->{$id} // {};
        is $c->{failure_count}, 0, "$name: $id: every answer as it set it, in every transaction"
          or diag explain $c->{failures};
        is_deeply $c->{session}, $d->{$id}{session},
                  "$name: $id: the settings its session holds after its connect, as directly";
        is_deeply $c->{answers}, $d->{$id}{answers}, "$name: $id: its answers, as directly";
    }
    %pids = map { ($_ => 1) } map { @{ $_->{backends} // [] } } values %$g;
    is scalar keys %pids, 1, "$name: through pgnear: all its clients took turns on one server connection";
    my @rows = grep { ($_->{user} // '') eq 'app' } $p->admin_rows('SHOW CLIENTS');
    is_deeply [map { $_->{pinned} } @rows], [map { '' } keys %$d], "$name: SHOW CLIENTS: none is pinned";
    is_deeply [sort map { $_->{settings} // '(none)' } @rows], [sort map { scalar keys %{ $_->{session} } } values %$d],
              "$name: SHOW CLIENTS: each client's settings follow it, as many as its session holds directly";
    my $pins = stat_value($p, 'txn_pins') // 0;
    is $pins, 0, "$name: the pins counter stays 0";
    note sprintf '%s: connect-time settings %s; pins %d', $name,
        join('; ', map { "$_: " . join(', ', sort keys %{ $d->{$_}{session} }) } sort keys %$d), $pins;
    $stop_p->();
    $p->stop;
}

done_testing;
