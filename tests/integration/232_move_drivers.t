# Sessions of other people's drivers moved back and forth under load: a
# node-postgres client and a psycopg 3 client, each with settings, SET
# ROLE, a statement of SQL PREPARE, named statements of the extended
# protocol and two LISTEN channels, run their checks in a tight loop while
# the admin moves each 20 times between two regions (40 moves), and a
# notifier sends a numbered notification to both regions every few ms.
# Every check passes after every move, the backend changes at each move,
# and every number sent to the old server before the new one reaches the
# client (at least once: one sent just as it moves may come twice).  Once with plain connections on both sides and
# pool_mode = session (the old connection is kept and reused by the next
# move back), once with TLS on both sides and pool_mode = none.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IPC::Open2;
use JSON::PP;
use Time::HiRes qw(time sleep);
use POSIX ();
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(node openssl);
my $root = "$FindBin::RealBin/../..";
# Debian's python3, which python3-psycopg is installed for (not another one earlier on PATH).
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : require_tool('python3');
system($python, '-c', 'import psycopg') == 0
  or BAIL_OUT('psycopg 3 is missing (scripts/install-deps.sh installs python3-psycopg)');
-d "$root/tests/node/node_modules/pg"
  or BAIL_OUT('tests/node/node_modules/pg is missing (scripts/install-deps.sh installs it)');

my $ca = PgNearTest::CA->new;
my $us = PgNearTest::Cluster->new(name => 'us-east', ca => $ca);
my $uw = PgNearTest::Cluster->new(name => 'us-west', ca => $ca);
my $secret = $us->scram_verifier('app');
$uw->psql_admin("ALTER ROLE app PASSWORD '$secret'");
$_->psql_admin('CREATE ROLE reader NOLOGIN; GRANT reader TO app') for $us, $uw;
my $dir = tmpdir(name => 'move-drivers');
write_file("$dir/users.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n"app" "$secret"\n});
my $cert = $ca->issue(name => 'pgnear', cn => 'localhost', san => ['DNS:localhost', 'IP:127.0.0.1']);
my $workers = $ENV{PGNEAR_TEST_WORKERS} // 2;

my %variants = (
    plain => { server_tls => 'disable', pool_mode => 'session' },
    tls   => { server_tls => 'verify-full', server_tls_ca_file => $ca->cert, pool_mode => 'none',
               client_tls => 'require', client_tls_cert_file => $cert->{cert},
               client_tls_key_file => $cert->{key} },
);

# Numbered notifications to both regions, every few ms, until killed; the last number in a file.
sub start_notifier {
    my ($file) = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    my @w = map {
        my $w = PgNearTest::Wire->connect(socket_dir => $_->{socket_dir}, port => $_->port);
        $w->startup(user => 'postgres', database => 'movr')->{ok} or POSIX::_exit(1);
        $w
    } $us, $uw;
    my $n = 0;
    $SIG{TERM} = sub { write_file($file, $n); POSIX::_exit(0) };
    # us-east, us-west, us-east again: whichever way a session moves, each number is sent to
    # its old server before its new one once, which is the order in which none may be lost.
    while (1) {
        $n++;
        $_->query("NOTIFY moves, '$n'") for @w, $w[0];
        sleep 0.004;
    }
}

# A client's lines, read without Perl's buffering so that a wait can time out.
sub client_line {
    my ($c, $timeout) = @_;
    my $deadline = time + $timeout;
    while ($c->{buf} !~ /\n/) {
        my $left = $deadline - time;
        return undef if $left <= 0;
        my $rin = '';
        vec($rin, fileno($c->{out}), 1) = 1;
        next unless select(my $rout = $rin, undef, undef, $left) > 0;
        sysread($c->{out}, $c->{buf}, 65536, length $c->{buf}) or return undef;
    }
    $c->{buf} =~ s/^([^\n]*\n)//;
    return $1;
}

# Waits until the client saw its backend change (a line "switch N"): a move
# made before it ran a query on the new backend would be counted with the next.
sub wait_switch {
    my ($c) = @_;
    while (defined(my $line = client_line($c, 10))) {
        return 1 if $line =~ /^switch \d+$/;
        $c->{early} = $line;    # its JSON: it ended
        return 0;
    }
    return 0;
}

my $total_moves = 0;
for my $variant (sort keys %variants) {
    my $p = PgNearTest::Proxy->new(regions => [$us, $uw],
        settings => { auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                      workers => $workers, %{ $variants{$variant} } },
        extra_ini => "\n[cities]\nboston = us-east\n");
    my $tls_env = $variant eq 'tls' ? 'require' : 'disable';
    my %clients = (
        'node-postgres' => ['node', "$root/tests/node/move_client.js"],
        'psycopg'       => [$python, "$root/tests/clients/move_client.py"],
    );
    my %run;
    for my $name (sort keys %clients) {
        my $app = "move-$variant-$name";
        local $ENV{PGSSLMODE} = $tls_env;
        my $pid = open2(my $out, my $in, @{ $clients{$name} }, '--port', $p->port, '--app', $app,
                        '--options', '-c pgnear.city=Boston', '--seconds', 120,
                        ($name eq 'node-postgres' && $tls_env eq 'require' ? ('--ssl') : ()));
        my $c = { pid => $pid, out => $out, in => $in, buf => '' };
        is client_line($c, 60), "ready\n", "$variant, $name: the client set its session up" or next;
        my ($row) = grep { ($_->{application_name} // '') eq $app } $p->admin_rows('SHOW CLIENTS');
        ok $row, "$variant, $name: SHOW CLIENTS lists it" or next;
        $c->{id} = $row->{id};
        $run{$name} = $c;
    }
    my $notified_file = "$dir/notified-$variant";
    my $notifier = start_notifier($notified_file);
    my (%moved, @holds);
    my $ROUNDS = 20;
    for my $round (1 .. $ROUNDS) {
        my $to = $round % 2 ? 'us-west' : 'us-east';
        for my $name (sort keys %run) {
            my ($r) = $p->admin_rows("MOVE CLIENT $run{$name}{id} TO REGION $to", errors => 'row');
            if (($r->{result} // '') eq 'moved') {
                $moved{$name}++;
                push @holds, $r->{hold_ms};
                wait_switch($run{$name}) or diag "$variant, $name, round $round: no new backend seen";
            } else {
                diag "$variant, $name, round $round: " . ($r->{reason} // 'no answer');
            }
        }
        sleep 0.02;
    }
    kill 'TERM', $notifier;
    waitpid $notifier, 0;
    my $last = slurp_file($notified_file);
    for my $name (sort keys %run) {
        my $c = $run{$name};
        is $moved{$name} // 0, $ROUNDS, "$variant, $name: moved $ROUNDS times";
        $total_moves += $moved{$name} // 0;
        print { $c->{in} } "stop\n";
        close $c->{in};
        my $json = $c->{early};
        while (!defined $json && defined(my $line = client_line($c, 60))) {
            $json = $line unless $line =~ /^switch \d+$/;
        }
        $json //= '{}';
        waitpid $c->{pid}, 0;
        my $res = eval { decode_json($json) } // { fatal => $json };
        is $res->{fatal}, undef, "$variant, $name: the client ran to its end";
        is $res->{failure_count}, 0, "$variant, $name: every check passed after every move"
          or diag explain $res->{failures};
        cmp_ok $res->{iterations} // 0, '>', 100, "$variant, $name: under load ($res->{iterations} loops)";
        cmp_ok $res->{switches} // 0, '>=', $ROUNDS, "$variant, $name: its backend changed at each move";
        my %got = map { $_ => 1 } @{ $res->{notified} // [] };
        my @lost = grep { !$got{$_} } 1 .. $last - 1;
        is scalar(@lost), 0, "$variant, $name: none of ${\ ($last - 1)} notifications lost"
          or diag "lost: @lost[0 .. ($#lost < 9 ? $#lost : 9)]";
    }
    @holds = sort { $a <=> $b } @holds;
    note sprintf '%s: %d moves, hold median %.1f ms, p99 %.1f ms', $variant, scalar @holds,
      $holds[$#holds / 2] // 0, $holds[int($#holds * 0.99)] // 0;
    $p->stop;
}
note "moves made by this test: $total_moves";

done_testing;
