# A kept server connection whose client made a temporary object is closed,
# not given to the next client: DISCARD ALL empties the temporary schema
# but cannot drop it, and a client given that server process would find
# it made (current_schema() with pg_temp on the search_path creates none,
# so a PREPARE TRANSACTION that PostgreSQL refuses on a new connection
# goes through; 290_pg_regress.t's temp).  The next client gets a server
# process without one (pg_my_temp_schema() is 0), and prepared
# transactions are refused as directly; a client that made none leaves
# its connection kept (the same backend serves the next).  Under
# pool_mode = session and transaction (where the temporary table pins the
# session).  One worker: a kept connection serves the next client of its own
# worker, so with one the next client would get it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool('psql');

my $us = PgNearTest::Cluster->new(name => 'us-east', conf => { max_prepared_transactions => 5 });
my $auth_dir = tmpdir(name => 'temp-auth');
write_file("$auth_dir/userlist.txt", qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

sub login {
    my ($p) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    die 'login through pgnear failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n"
      unless $r->{ok};
    return $w;
}

sub one {
    my ($w, $sql) = @_;
    my $q = $w->query($sql);
    return $q->{error} ? "$q->{error}{C} $q->{error}{M}" : $q->{rows}[0][0];
}

# The server process pid is done with its last client: gone, or idle after the reset (DISCARD
# ALL, then, since this change, pgnear's question of its temporary schema).
# Under transaction pooling a session that pinned nothing gives its connection back as it is.
sub settled {
    my ($pid, $as_is) = @_;
    my $reset = $as_is ? 'true' : q{query = 'DISCARD ALL' OR query LIKE '%pg_my_temp_schema() <> 0'};
    return wait_until(sub {
        $us->psql_admin(qq{SELECT count(*) FROM pg_stat_activity WHERE pid = $pid
                           AND NOT (state = 'idle' AND ($reset))}) eq '0';
    }, timeout => 20);
}

# What a client that makes a temporary table, then one that does not, leaves to the next.
sub check_mode {
    my ($mode) = @_;
    my $p = PgNearTest::Proxy->new(regions => [$us],
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", server_tls => 'disable',
                      pool_mode => $mode, workers => 1 });

    my $w = login($p);
    my $plain = one($w, 'SELECT pg_backend_pid()');
    $w->terminate;
    ok settled($plain, $mode eq 'transaction'), "$mode: a client without temporary objects leaves its connection reset";
    $w = login($p);
    is one($w, 'SELECT pg_backend_pid()'), $plain, "$mode: ... and the next client gets that server process";
    is one($w, 'CREATE TEMP TABLE scratch (id int)'), undef, "$mode: a client makes a temporary table";
    my $temp = one($w, 'SELECT pg_backend_pid()');
    $w->terminate;
    ok settled($temp), "$mode: its server process is done with it";

    $w = login($p);
    isnt one($w, 'SELECT pg_backend_pid()'), $temp, "$mode: the next client gets another server process";
    is one($w, 'SELECT pg_my_temp_schema()'), '0', "$mode: ... without a temporary schema";
    one($w, q{SET search_path TO 'pg_temp'});
    one($w, 'BEGIN');
    like one($w, 'SELECT current_schema()'), qr/^pg_temp_\d+$/, "$mode: current_schema() makes one";
    is one($w, q{PREPARE TRANSACTION 'temp_search'}),
      '0A000 cannot PREPARE a transaction that has operated on temporary objects',
      "$mode: ... so PREPARE TRANSACTION is refused as on a new connection directly";
    $w->terminate;
    like $p->log_contents, qr/has a temporary schema, which DISCARD ALL cannot drop/,
      "$mode: the log says why the connection was not kept";
    $p->stop;
    is $us->psql_admin('SELECT count(*) FROM pg_prepared_xacts'), '0', "$mode: no prepared transaction is left";
}

check_mode($_) for qw(session transaction);

done_testing;
