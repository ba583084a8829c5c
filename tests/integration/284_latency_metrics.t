# Latency histograms (issue 57): /metrics has pgnear_transaction_duration_seconds,
# pgnear_query_duration_seconds, pgnear_server_wait_seconds and
# pgnear_login_duration_seconds per region, with cumulative buckets that end
# in +Inf = _count; pgbench -t N adds N transactions and N queries in its
# region, the same as pgnear_transactions_total; a pg_sleep(0.2) query lands
# between le="0.1" and le="0.25" of the other region; every login and every
# transaction's fetch under pool_mode = transaction counts a wait; SHOW STATS
# shows each histogram's count with p50_ms and p99_ms.  Under pool_mode =
# session and transaction.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time);
use PgNearTest;

my $curl = require_tool('curl');
require_tool($_) for qw(psql pgbench);
my $us = PgNearTest::Cluster->new(name => 'us-east');
my $eu = PgNearTest::Cluster->new(name => 'eu-west');
# One verifier for both clusters: pgnear logs into either with the client's keys.
my $verifier = $us->scram_verifier('app');
$eu->psql_admin("ALTER ROLE app PASSWORD '$verifier'");
my $dir = tmpdir(name => 'latency');
write_file("$dir/users.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
                           . qq{"app" "$verifier"\n});
write_file("$dir/select.sql", "SELECT 1;\n");

# The value of one sample ("name{labels}"), undef when absent.
sub sample {
    my ($text, $series) = @_;
    return $text =~ /^\Q$series\E (\S+)$/m ? $1 : undef;
}

# A histogram's buckets of a region: [[le, cumulative count], ...] in the order served.
sub buckets {
    my ($text, $name, $region) = @_;
    my @flat = $text =~ /^pgnear_${name}_seconds_bucket\{region="\Q$region\E",le="([^"]+)"\} (\d+)$/mg;
    return [map { [@flat[2 * $_, 2 * $_ + 1]] } 0 .. $#flat / 2];
}

sub monotone {
    my ($b) = @_;
    for my $i (1 .. $#$b) { return 0 if $b->[$i][1] < $b->[$i - 1][1] }
    return 1;
}

for my $mode (qw(session transaction)) {
    my $mport = free_port();
    my $p = PgNearTest::Proxy->new(regions => [$us, $eu],
        settings => { auth => 'scram', auth_file => "$dir/users.txt", admin_users => 'admin',
                      server_tls => 'disable', pool_mode => $mode, workers => 2,
                      metrics_addr => "127.0.0.1:$mport" });
    my $scrape = sub {
        my ($rc, $out) = run_cmd([$curl, '-s', '-S', "http://127.0.0.1:$mport/metrics"], timeout => 10);
        return $rc == 0 ? $out : '';
    };
    my $ci = sub { $p->conninfo(options => "-c pgnear.region=$_[0]") };

    my $before = $scrape->();
    like $before, qr/^# TYPE pgnear_query_duration_seconds histogram$/m, "$mode: query duration is a histogram";
    like $before, qr/^# TYPE pgnear_$_\_seconds histogram$/m, "$mode: $_ too"
      for qw(transaction_duration server_wait login_duration);

    my $n = 40;
    # Upper bounds are the test's own clock around each client: a loaded machine may stretch
    # any query, never past the run that sent it.
    my $t0 = time;
    my ($rc, $out, $err) = pgbench(['-n', '-f', "$dir/select.sql", '-c', '1', '-t', $n], $ci->('us-east'),
                                   timeout => 60);
    my $pgbench_ms = (time - $t0) * 1000;
    is $rc, 0, "$mode: pgbench -t $n through pgnear to us-east" or diag "$out\n$err";
    $t0 = time;
    ok psql($ci->('eu-west'), 'SELECT pg_sleep(0.2)') ne 'x', "$mode: a pg_sleep(0.2) in eu-west";
    my $sleep_s = time - $t0;
    # The smallest bucket bound the pg_sleep must be under: its psql's whole run.
    my ($sleep_le) = grep { $_ >= $sleep_s } qw(0.25 0.5 1 2.5 5 10);
    my $after = $scrape->();
    write_file("/tmp/o57hist-$mode.txt", $after) if $ENV{LATENCY_DUMP};

    my $delta = sub { my ($series) = @_; (sample($after, $series) // 0) - (sample($before, $series) // 0) };
    is $delta->('pgnear_transaction_duration_seconds_count{region="us-east"}'), $n,
        "$mode: pgbench's $n transactions counted in us-east";
    is $delta->('pgnear_query_duration_seconds_count{region="us-east"}'), $n, "$mode: ... and its $n queries";
    is $delta->('pgnear_transactions_total'), $n + 1,
        "$mode: as many as pgnear_transactions_total counted (pgbench's and the pg_sleep)";
    # pgbench logs in twice: once to look at the server, then its client.
    my $logins = $delta->('pgnear_login_duration_seconds_count{region="us-east"}');
    cmp_ok $logins, '>=', 1, "$mode: pgbench's logins ($logins)";
    is $delta->('pgnear_login_duration_seconds_count{region="eu-west"}'), 1, "$mode: psql's login, in eu-west";
    # Under transaction pooling a login may be answered without a server (login_greet.h): no wait.
    my $greeted = $delta->('pgnear_logins_without_server_total');
    is $greeted, 0, "$mode: no login answered without a server" if $mode eq 'session';
    is $delta->('pgnear_server_wait_seconds_count{region="us-east"}'),
        $mode eq 'session' ? $logins : $logins - $greeted + $n,
        "$mode: waits for a server connection: each login's" . ($mode eq 'session' ? '' : " not answered without one ($greeted were), and each transaction's");
    cmp_ok $delta->('pgnear_query_duration_seconds_sum{region="us-east"}'), '>', 0, "$mode: _sum grows";

    for my $region ('us-east', 'eu-west') {
        for my $name (qw(transaction_duration query_duration server_wait login_duration)) {
            my $b = buckets($after, $name, $region);
            is scalar(@$b), 17, "$mode: $name in $region: 16 bounds and +Inf";
            ok monotone($b), "$mode: ... cumulative (never smaller)";
            is_deeply [$b->[0][0], $b->[-1][0]], ['0.0001', '+Inf'], "$mode: ... from 0.1 ms to +Inf";
            is $b->[-1][1], sample($after, "pgnear_${name}_seconds_count{region=\"$region\"}"),
                "$mode: ... +Inf is _count";
        }
    }
    # The pg_sleep: the one eu-west query over 0.1 s, under 0.25 s.
    my $q = sub { my ($t, $le) = @_; sample($t, qq{pgnear_query_duration_seconds_bucket{region="eu-west",le="$le"}}) // 0 };
    is $q->($after, '0.1') - $q->($before, '0.1'), 0, "$mode: the pg_sleep(0.2) is not under le=\"0.1\"";
    is $q->($after, $sleep_le) - $q->($before, $sleep_le), 1,
        "$mode: ... but under le=\"$sleep_le\" (its psql ran ${\ sprintf '%.3f', $sleep_s} s)";

    # SHOW STATS: the counts, p50_ms and p99_ms; the counters' rows have none.
    my %stats = map { $_->{stat} => $_ } $p->admin_rows('SHOW STATS');
    is $stats{queries}{p50_ms}, '', "$mode: SHOW STATS: a counter has no p50_ms";
    my $us_q = $stats{'query_duration{region="us-east"}'};
    ok $us_q, "$mode: SHOW STATS: query_duration of us-east" or diag explain [sort keys %stats];
    is $us_q->{value}, sample($after, 'pgnear_query_duration_seconds_count{region="us-east"}'),
        "$mode: ... its count, as /metrics";
    ok $us_q->{p50_ms} > 0 && $us_q->{p50_ms} <= $us_q->{p99_ms} && $us_q->{p99_ms} < $pgbench_ms,
        "$mode: ... 0 < p50 <= p99 < pgbench's run for SELECT 1 ($us_q->{p50_ms}, $us_q->{p99_ms}, "
          . sprintf('%.0f ms)', $pgbench_ms);
    my $eu_q = $stats{'query_duration{region="eu-west"}'};
    ok $eu_q && $eu_q->{p99_ms} >= 190 && $eu_q->{p99_ms} < $sleep_s * 1000 * 1.04,
        "$mode: SHOW STATS: eu-west's p99 is the pg_sleep(0.2) (" . ($eu_q ? $eu_q->{p99_ms} : 'none') . ' ms)';
    my $login = $stats{'login_duration{region="us-east"}'};
    ok $login && $login->{p50_ms} > 0, "$mode: SHOW STATS: login_duration p50";

    # The extended protocol, prepared statements (transaction pooling rewrites them): each
    # transaction timed once, as pgnear_transactions_total counts it.
    $before = $scrape->();
    ($rc, $out, $err) = pgbench(['-n', '-M', 'prepared', '-f', "$dir/select.sql", '-c', '2', '-t', 25],
                                $ci->('us-east'), timeout => 60);
    is $rc, 0, "$mode: pgbench -M prepared -c 2 -t 25" or diag "$out\n$err";
    $after = $scrape->();
    # (a Parse and its Sync that PQprepare sends ends a transaction too, one per client at most)
    my $timed = $delta->('pgnear_transaction_duration_seconds_count{region="us-east"}');
    ok $timed >= 50 && $timed <= 52, "$mode: its 50 transactions timed ($timed)";
    is $timed, $delta->('pgnear_transactions_total'), "$mode: ... as many as pgnear_transactions_total counted";
    is $delta->('pgnear_query_duration_seconds_count{region="us-east"}'), $delta->('pgnear_queries_total'),
        "$mode: ... and its requests, as many as pgnear_queries_total counted";
    $p->stop;
}

done_testing;
