# Transaction pooling (pool_mode = transaction, auth = scram) under other
# people's drivers: 8 node-postgres clients (each its own pg.Client) and 8
# psycopg 3 connections (half with prepare_threshold = 0, every query a
# named statement from its first run; half with the default, prepared
# after 5 runs) run at once over pool_size = 3, all with the same startup
# parameters (a connection serves only exact fits), each 120 transactions
# of: named prepared statements, unnamed parameterized queries, simple
# queries, BEGIN ... COMMIT blocks whose statements see their own
# uncommitted row and all run on one backend, and ROLLBACK blocks whose
# row is gone after (psycopg then sends DEALLOCATE ALL).  Every result is
# right, every client finishes, no more than 3 backends ever serve them
# (the pids the clients saw, and pg_stat_activity sampled meanwhile: never
# more than 3 at once; with two workers, each has its slice of the pool), the server connection went back to the pool at
# least once per transaction (SHOW STATS txn_returns), and none of this
# pins a client (SHOW CLIENTS' pinned, txn_pins).  With one worker and
# with two; then, with one worker, max_prepared_statements = 2 and 10
# named statements per client, so that each connection's statements are
# evicted and parsed again all the time: still every result right, and
# no connection holds more than 2 of pgnear's statements.  And first, a
# prepared statement whose result type changes under postgres.js and
# node-postgres clients (stale_plan, below).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IPC::Open2;
use IO::Select;
use JSON::PP;
use List::Util qw(sum0);
use POSIX ();
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(node psql);
my $root = "$FindBin::RealBin/../..";
# Debian's python3, which python3-psycopg is installed for (not another one earlier on PATH).
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : require_tool('python3');
system($python, '-c', 'import psycopg') == 0
  or BAIL_OUT('psycopg 3 is missing (scripts/install-deps.sh installs python3-psycopg)');
-d "$root/tests/node/node_modules/pg" && system('node', '-e', "require('$root/tests/node/node_modules/pg')") == 0
  or BAIL_OUT('tests/node/node_modules/pg is missing (scripts/install-deps.sh installs it)');
system('node', '-e', "require('$root/tests/node/node_modules/postgres')") == 0
  or BAIL_OUT('postgres.js (tests/node/node_modules/postgres) is missing (scripts/install-deps.sh installs it)');

my $N = 8;             # clients of each driver
my $TXNS = 120;        # transactions of each client
my $POOL = 3;

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin('CREATE TABLE txn_rows (client text, n int, v int, PRIMARY KEY (client, n))', dbname => 'movr');
my $auth_dir = tmpdir(name => 'txn-drivers');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist,
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

sub stat_value {
    my ($p, $name) = @_;
    my ($row) = grep { $_->{stat} eq $name } $p->admin_rows('SHOW STATS');
    return $row ? $row->{value} : undef;
}

# The backends of user app on the server now, pgnear's and anyone's.
sub app_pids {
    split /\n/, $us->psql_admin(q{SELECT pid FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'});
}

# One run: both drivers' clients at once through a pgnear with these settings.
sub run_drivers {
    my (%o) = @_;
    my $label = $o{label};
    my $p = PgNearTest::Proxy->new(regions => [$us], settings => {
        auth => 'scram', auth_file => $userlist, admin_users => 'admin', server_tls => 'disable',
        pool_mode => 'transaction', pool_size => $POOL, query_wait_timeout => '20s',
        workers => $o{workers}, %{ $o{settings} // {} } });
    my $returns0 = stat_value($p, 'txn_returns') // 0;
    (my $tag = $label) =~ s/\W+/-/g;
    my %cmd = (
        'node-postgres' => ['node', "$root/tests/node/txn_client.js"],
        'psycopg'       => [$python, "$root/tests/clients/txn_client.py",
                            $o{prepared_max} ? ('--prepared-max', $o{prepared_max}) : ()],
    );
    my (%run, %by_fh);
    for my $name (sort keys %cmd) {
        my $pid = open2(my $out, my $in, @{ $cmd{$name} }, '--port', $p->port, '--clients', $N,
                        '--txns', $TXNS, '--names', $o{names}, '--seconds', 40, '--tag', "$tag-$name", '--app', "txn-$tag");
        $run{$name} = { pid => $pid, out => $out, in => $in, buf => '' };
        $by_fh{fileno $out} = $name;
    }
    # Wait for each one's JSON line, looking at the server's backends of app meanwhile.
    my $sel = IO::Select->new(map { $_->{out} } values %run);
    my (%sampled, $samples, $most);
    my $deadline = time + 50;
    my $next_sample = 0;
    while ($sel->count && time < $deadline) {
        if (time >= $next_sample) {
            my @now = app_pids();
            $sampled{$_}++ for @now;
            $samples++;
            $most = @now if !defined $most || @now > $most;
            $next_sample = time + 0.25;
        }
        for my $fh ($sel->can_read(0.1)) {
            my $c = $run{ $by_fh{ fileno $fh } };
            my $n = sysread $fh, $c->{buf}, 65536, length $c->{buf};
            if (!$n || $c->{buf} =~ /\n/) {
                $sel->remove($fh);
                $c->{line} = $c->{buf} =~ /^(.*)\n/ ? $1 : $c->{buf};
            }
        }
    }
    my %seen = %sampled;
    my $total_txns = 0;
    for my $name (sort keys %run) {
        my $c = $run{$name};
        my $res = eval { decode_json($c->{line} // '') } // { fatal => $c->{line} // 'no answer within 50 s' };
        is $res->{fatal}, undef, "$label, $name: the clients connected and reported";
        my @clients = @{ $res->{clients} // [] };
        is scalar(@clients), $N, "$label, $name: $N clients ran";
        my @unfinished = grep { !$_->{finished} } @clients;
        is scalar(@unfinished), 0, "$label, $name: every client finished its $TXNS transactions"
          or diag explain [map { { id => $_->{id}, transactions => $_->{transactions}, failures => $_->{failures} } } @unfinished];
        my @failed = grep { ($_->{failure_count} // 1) != 0 } @clients;
        is scalar(@failed), 0, "$label, $name: every check of every client passed"
          or diag explain [map { { id => $_->{id}, failure_count => $_->{failure_count}, failures => $_->{failures} } } @failed];
        my $txns = sum0(map { $_->{transactions} // 0 } @clients);
        my $checks = sum0(map { $_->{ok} // 0 } @clients);
        cmp_ok $checks, '>=', $N * $TXNS, "$label, $name: at least one check per transaction ($checks checks, $txns transactions)";
        $total_txns += $txns;
        $seen{$_}++ for map { @{ $_->{backends} // [] } } @clients;
        if ($name eq 'psycopg') {
            my %thresholds = map { ($_->{prepare_threshold} // 'none') => 1 } @clients;
            is join(',', sort keys %thresholds), '0,5', "$label, psycopg: connections with prepare_threshold 0 and with the default 5";
        }
    }
    cmp_ok scalar(keys %sampled), '>', 0, "$label: pg_stat_activity was sampled while they ran ($samples samples)";
    cmp_ok $most, '<=', $POOL, "$label: pg_stat_activity never showed more than $POOL backends of app at once (at most $most)";
    # With two workers each has a slice of the pool (2 and 1 of 3): no
    # connection is closed for a client of the other worker.
    cmp_ok scalar(keys %seen), '<=', $POOL,
      "$label: at most pool_size ($POOL) backends ever served the 16 clients (saw " . scalar(keys %seen) . ')'
      or diag 'pids: ' . join(' ', sort keys %seen);

    # Still logged in, between transactions: nothing pinned any of them.
    my @clients = grep { ($_->{user} // '') eq 'app' } $p->admin_rows('SHOW CLIENTS');
    is scalar(@clients), 2 * $N, "$label: SHOW CLIENTS lists the 16 clients";
    my @pinned = grep { ($_->{pinned} // '') ne '' } @clients;
    is scalar(@pinned), 0, "$label: SHOW CLIENTS shows none of them pinned"
      or diag explain [map { { id => $_->{id}, application_name => $_->{application_name}, pinned => $_->{pinned} } } @pinned];
    is stat_value($p, 'txn_pins'), 0, "$label: SHOW STATS txn_pins is 0";
    # A client's last transaction may still be read back (txn_settings) as it
    # reports: its connection goes back a round trip after its answer.
    my $returns;
    wait_until(sub { ($returns = (stat_value($p, 'txn_returns') // 0) - $returns0) >= $total_txns },
               timeout => 10);
    cmp_ok $returns, '>=', $total_txns,
      "$label: SHOW STATS txn_returns grew by at least the $total_txns transactions (by $returns)";

    # Under max_prepared_statements = N, each connection holds at most N of pgnear's statements.
    if (my $max = ($o{settings} // {})->{max_prepared_statements}) {
        # Three sessions in a transaction each: three connections, the whole pool.
        my @w = map {
            my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 30);
            my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                                params => [application_name => "txn-$tag", client_encoding => 'UTF8']);
            $r->{ok} or BAIL_OUT('login through pgnear failed: ' . ($r->{error} ? $r->{error}{M} : 'eof'));
            $w
        } 1 .. $POOL;
        my %held;
        for my $w (@w) {
            my $q = $w->query(q{BEGIN; SELECT pg_backend_pid(), count(*) FROM pg_prepared_statements WHERE starts_with(name, 'PGNEAR_')});
            $held{ $q->{rows}[0][0] // 'none' } = $q->{rows}[0][1] if !$q->{error};
            diag "$label: $q->{error}{M}" if $q->{error};
        }
        $_->query('COMMIT') for @w;
        $_->terminate for @w;
        note "$label: pgnear's statements on each connection: " . join(', ', map { "$_: $held{$_}" } sort keys %held);
        is scalar(keys %held), $POOL, "$label: three sessions in a transaction each hold the three connections";
        # (Some may hold none: psycopg's DEALLOCATE ALL after a ROLLBACK empties its connection.)
        ok !(grep { $_ > $max } values %held), "$label: no connection holds more than $max of pgnear's statements"
          or diag explain \%held;
    }

    for my $c (values %run) {
        print { $c->{in} } "stop\n";
        close $c->{in};
    }
    my $stop_by = time + 15;
    for my $name (sort keys %run) {
        my $c = $run{$name};
        my $gone;
        while (!($gone = waitpid($c->{pid}, POSIX::WNOHANG()) > 0) && time < $stop_by) { sleep 0.05 }
        if (!$gone) {
            kill 'KILL', $c->{pid};
            waitpid $c->{pid}, 0;
        }
        ok $gone, "$label, $name: the clients ended their sessions and the process exited";
    }
    $p->stop;
}

# A prepared statement whose result type changes under the client (the
# table made again, x bytea then int[]), and whose next run lands on a
# server connection that never had it (H holds the one A used): postgres.js
# decodes rows by the description it was told once, so a fresh plan there
# would hand it an int[] as a bytea. It must get what it gets directly:
# 0A000, on which it prepares again, and then {1,NULL,3}; node-postgres
# (which gets the rows' description each time) gets 0A000 or the new rows.
sub stale_plan {
    my $p = PgNearTest::Proxy->new(regions => [$us], settings => {
        auth => 'scram', auth_file => $userlist, server_tls => 'disable',
        pool_mode => 'transaction', pool_size => 2, workers => 1 });
    my ($rc, $out, $err) = run_cmd(['node', "$root/tests/node/stale_plan_client.js", '--port', $p->port,
                                    '--direct-port', $us->port], timeout => 60);
    my $res = eval { decode_json((split /\n/, $out)[0] // '') } // { fatal => "exit $rc: $out$err" };
    is $res->{fatal}, undef, 'stale plan: the clients ran' or diag $res->{fatal};
    my %want = ('postgres.js' => ['[1,null,3]'], 'node-postgres' => ['[1,null,3]', '0A000']);
    for my $name (sort keys %want) {
        my $r = $res->{drivers}{$name} // {};
        is $r->{first}, '\\x010203', "stale plan, $name: the bytea first";
        is $r->{held_pid}, $r->{first_pid}, "stale plan, $name: H holds the connection A used";
        my $got = $r->{error} // $r->{second} // 'nothing';
        ok((grep { $_ eq $got } @{ $want{$name} }), "stale plan, $name: the int[] or 0A000, never other rows ($got)");
        isnt $r->{second_pid} // 0, $r->{held_pid}, "stale plan, $name: on the other connection" if !$r->{error};
    }
    $p->stop;
}
stale_plan();

run_drivers(label => 'workers = 1', workers => 1, names => 3);
run_drivers(label => 'workers = 2', workers => 2, names => 3);
# psycopg keeps 4 statements of its own there, and evicts the others with DEALLOCATE name.
run_drivers(label => 'max_prepared_statements = 2, 10 names', workers => 1, names => 10,
            prepared_max => 4, settings => { max_prepared_statements => 2 });

done_testing;
