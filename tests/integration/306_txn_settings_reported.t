# Settings that the server reports (TimeZone, application_name, DateStyle,
# IntervalStyle: ParameterStatus) follow a transaction-pooling client at no
# round trip (txn_settings.h): replayed in the same write as the client's
# first message, and the ParameterStatus PostgreSQL sends for the replay at
# the client's ReadyForQuery dropped, as one whose value the client heard.
# pool_size = 1, one worker: two clients alternate on one server connection,
# so that each transaction replays the other's settings there.
#  - Behind a delay relay (bench/delay_relay.pl, 100 ms each way): a client
#    that ran SET TIME ZONE and SET application_name at connect, as Django
#    does, takes one round trip per transaction (under 1.5), where the
#    replay alone first took two; and its settings are not read back after
#    each transaction (the replay's ParameterStatus changes nothing).
#  - A raw-protocol client records every message of a script (each
#    ParameterStatus with its value): through pgnear, alternating with
#    another client, it gets exactly what two direct connections get.
#  - A replay with a reported setting that the server then refuses ends the
#    session with PostgreSQL's error; the client's statement never ran.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
my $srcdir = $ENV{PGNEAR_SRCDIR} // die "PGNEAR_SRCDIR is not set (make check sets it)\n";

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin($_, dbname => 'movr') for
    'CREATE TABLE public.rep_marks (x int)', 'GRANT INSERT, SELECT ON public.rep_marks TO app';
my $dir = tmpdir(name => 'txn-reported');
my $userlist = "$dir/userlist.txt";
write_file($userlist,
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

# The server behind a delay relay, its delay 0 until the timing asks for more.
write_file("$dir/delay", "0\n");
my ($relay_port, $relay_log) = (free_port(), "$dir/relay.log");
my $relay = fork // die "fork: $!";
if ($relay == 0) {
    no warnings 'exec';
    exec { $^X } $^X, "$srcdir/bench/delay_relay.pl", '--listen', "127.0.0.1:$relay_port",
      '--target', $us->hostport, '--delay-file', "$dir/delay", '--log', $relay_log;
    POSIX::_exit(127);
}
END { kill 'TERM', $relay if $relay }
wait_until(sub { -e $relay_log && slurp_file($relay_log) =~ /^listening/m }, timeout => 10)
  or BAIL_OUT('the delay relay did not start');

sub set_delay {
    my ($ms) = @_;
    my $n = () = slurp_file($relay_log) =~ /^delay /mg;
    write_file("$dir/delay", "$ms\n");
    kill 'HUP', $relay;
    wait_until(sub { (() = slurp_file($relay_log) =~ /^delay /mg) > $n }, timeout => 5, interval => 0.02)
      or BAIL_OUT('the relay did not take its delay');
}

sub proxy {
    PgNearTest::Proxy->new(
        regions  => [{ name => 'us-east', hosts => ["127.0.0.1:$relay_port"] }],
        settings => { auth => 'scram', auth_file => $userlist, admin_users => 'admin',
                       server_tls => 'disable', pool_mode => 'transaction', pool_size => 1,
                       workers => 1, query_wait_timeout => '20s', health_check_interval => '1s',
                       health_check_timeout => '5s', @_ });
}

sub login_at {
    my ($port, %params) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret', params => \%params);
    die 'login failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n" unless $r->{ok};
    return $w;
}
sub one { my ($w, $sql) = @_; my $q = $w->query($sql); die "$sql: $q->{error}{M}\n" if $q->{error}; $q->{rows}[0][0] }
sub count_in { my ($text, $re) = @_; scalar(() = $text =~ /$re/g) }
sub stat_value {
    my ($p, $name) = @_;
    my ($row) = grep { $_->{stat} eq $name } $p->admin_rows('SHOW STATS');
    return $row ? $row->{value} : undef;
}

# Every message of one request's answer up to its ReadyForQuery, as text: each
# ParameterStatus with its value, rows, tags, errors' SQLSTATEs.  A step is a
# simple Query's text, or [ext => text]: Parse, Bind, Execute, Sync.
sub record {
    my ($w, $step) = @_;
    if (ref $step) {
        $w->send_msg('P', "\0$step->[1]\0" . pack('n', 0));
        $w->send_msg('B', "\0\0" . pack('nnn', 0, 0, 0));
        $w->send_msg('E', "\0" . pack('N', 0));
        $w->send_msg('S', '');
    } else {
        $w->send_query($step);
    }
    my @got;
    while (1) {
        my ($t, $m) = $w->read_msg;
        return (@got, 'EOF') unless defined $t;
        if ($t eq 'S') { my ($k, $v) = split /\0/, $m, -1; push @got, "S $k=$v" }
        elsif ($t eq 'E') { push @got, 'E ' . PgNearTest::Wire::parse_fields($m)->{C} }
        elsif ($t eq 'C') { (my $tag = $m) =~ s/\0$//; push @got, "C $tag" }
        elsif ($t eq 'D') {
            my ($n, $pos, @row) = (unpack('n', $m), 2);
            for (1 .. $n) {
                my $len = unpack('l>', substr($m, $pos, 4));
                $pos += 4;
                push @row, $len < 0 ? 'NULL' : substr($m, $pos, $len);
                $pos += $len if $len > 0;
            }
            push @got, "D @row";
        }
        elsif ($t eq 'Z') { push @got, "Z $m"; return @got }
        else { push @got, $t }
    }
}

# ================================================================ one round trip per transaction
{
    my $p = proxy();
    my ($ca, $cb) = (login_at($p->port), login_at($p->port));
    # Django's connect-time settings, each client its own.
    $ca->query($_) for q{SET TIME ZONE 'UTC'}, q{SET application_name = 'django-a'};
    $cb->query($_) for q{SET TIME ZONE 'Asia/Kolkata'}, q{SET application_name = 'django-b'};
    is one($ca, 'SELECT pg_backend_pid()'), one($cb, 'SELECT pg_backend_pid()'),
       'timing: both clients run on the one server connection (pool_size = 1)';
    set_delay(100);
    my $rtt = 0.200;
    one($_, 'SELECT 1') for $ca, $cb, $ca, $cb; # warm
    my $seen = $p->log_size;
    my (@times, $bad);
    for my $i (1 .. 6) {
        for ([$ca, 'UTC', 'django-a'], [$cb, 'Asia/Kolkata', 'django-b']) {
            my ($w, $tz, $capp) = @$_;
            sleep 3 * $rtt;    # the other's connection reset and back in the pool
            my $t0 = time;
            my $r = $w->query(q{SELECT current_setting('TimeZone') || ' ' || current_setting('application_name')});
            push @times, time - $t0;
            $bad++ if ($r->{rows}[0][0] // '') ne "$tz $capp" || @{ $r->{parameters} // [] };
        }
    }
    my $log = substr($p->log_contents, $seen);
    my @sorted = sort { $a <=> $b } @times;
    my $median = ($sorted[5] + $sorted[6]) / 2;
    ok !$bad, 'timing: 12 alternating transactions, each with its own TimeZone and application_name, no ParameterStatus';
    cmp_ok $median, '<', 1.5 * $rtt,
      sprintf('timing: a transaction takes one round trip to the server (median %.0f ms, a round trip 200 ms)', 1000 * $median);
    is count_in($log, qr/its 2 settings go to its server connection \d+, pipelined/), 12,
       'timing: each transaction had the other\'s two settings replayed, pipelined';
    is count_in($log, qr/its settings follow it:/), 0,
       'timing: the replay\'s ParameterStatus does not have the settings read back after the transaction';
    set_delay(0);
    $_->terminate for $ca, $cb;
    $p->stop;
}

# ================================================================ the ParameterStatus a client hears, as directly
# (with prepared statements followed, txn_prep.c's reader; and without, fence.c's)
sub as_directly {
    my ($label, @settings) = @_;
    my $p = proxy(@settings);
    my @a_steps = (
        q{SET TIME ZONE 'UTC'}, q{SET application_name = 'ps-a'}, 'SELECT 1', 'SHOW TimeZone',
        [ext => 'SELECT 2'], q{BEGIN; SET TIME ZONE 'Asia/Tokyo'; COMMIT}, 'SHOW TimeZone',
        q{SET application_name = 'ps-a'}, q{BEGIN; SET application_name = 'ps-x'; ROLLBACK},
        'BEGIN', q{SET application_name = 'ps-y'}, 'ROLLBACK', 'SHOW application_name',
        q{SET DateStyle = 'German'}, q{SELECT '2024-05-01'::date}, q{SET IntervalStyle = 'iso_8601'},
        q{SELECT interval '1 day'}, [ext => q{SELECT set_config('TimeZone', 'UTC', false)}],
        'SELECT 3', 'RESET TIME ZONE', 'SHOW TimeZone', 'RESET ALL', 'SELECT 4', 'SHOW DateStyle');
    # B's own settings, then a query at each of A's steps but while A is inside its BEGIN block;
    # its application_name set back to its login's, which the server reports on a direct
    # connection only, as the replayed one differed (one the connection had before the replay).
    my @b_steps = (
        q{SET TIME ZONE 'America/Los_Angeles'}, q{SET DateStyle = 'SQL, DMY'},
        q{SET application_name = 'ps-b'}, ('SELECT 1') x 3, q{SET application_name = 'ps-start'},
        'SHOW application_name', ('SHOW TimeZone') x (@a_steps - 8));
    $b_steps[$_] = undef for 9, 10;
    # Both log in naming an application_name: the pool's connection has the same.
    my %start = (a => [application_name => 'ps-start'], b => [application_name => 'ps-start']);
    my (%got, %pids);
    for my $via ('pgnear', 'direct') {
        my $port = $via eq 'pgnear' ? $p->port : $us->port;
        my $ca = login_at($port, @{ $start{a} });
        my $cb = login_at($port, @{ $start{b} });
        $pids{$via} = [one($ca, 'SELECT pg_backend_pid()'), one($cb, 'SELECT pg_backend_pid()')];
        for my $i (0 .. $#a_steps) {
            push @{ $got{$via}{a} }, [$i, record($ca, $a_steps[$i])];
            push @{ $got{$via}{b} }, [$i, record($cb, $b_steps[$i])] if defined $b_steps[$i];
        }
        $_->terminate for $ca, $cb;
    }
    is $pids{pgnear}[0], $pids{pgnear}[1], "$label: both clients on the one server connection";
    is_deeply $got{pgnear}{a}, $got{direct}{a},
      "$label: A's every message (each ParameterStatus and its value), step by step";
    is_deeply $got{pgnear}{b}, $got{direct}{b},
      "$label: B's, its application_name set back to its login's";
    my $a_text = join "\n", map { @$_[1 .. $#$_] } @{ $got{pgnear}{a} };
    like $a_text, qr/^S TimeZone=Asia\/Tokyo$/m, "$label: a new value is heard (the client's own SET)";
    cmp_ok count_in($a_text, qr/^S TimeZone=/m), '>=', 3, "$label: A hears each change of its TimeZone";
    cmp_ok count_in($p->log_contents, qr/settings go to its server connection \d+, pipelined/), '>=', 40,
           "$label: the settings were replayed at each step, pipelined";
    $p->stop;
}
as_directly('as directly');
as_directly('as directly, no prepared statements followed', max_prepared_statements => 0);

# ================================================================ a replay the server refuses
{
    my $p = proxy();
    $us->psql_admin('CREATE TEXT SEARCH CONFIGURATION public.rep_cfg (COPY = english)', dbname => 'movr');
    my $c = login_at($p->port);
    my $o = login_at($p->port);
    ok !$c->query($_)->{error}, "refused: $_" for
        q{SET TIME ZONE 'UTC'}, q{SET application_name = 'refused-later'},
        q{SET default_text_search_config = 'public.rep_cfg'};
    $o->query(q{SET TIME ZONE 'Asia/Kolkata'});
    is one($o, 'SHOW TimeZone'), 'Asia/Kolkata', 'refused: another client ran between';
    $us->psql_admin('DROP TEXT SEARCH CONFIGURATION public.rep_cfg', dbname => 'movr');
    my $seen = $p->log_size;
    my $q = $c->query('INSERT INTO public.rep_marks VALUES (1)');
    is sqlstate($q->{error}), '22023', 'refused: the client gets the server\'s error';
    like $q->{error}{M} // '', qr/^invalid value for parameter "default_text_search_config": "public.rep_cfg"$/,
         'refused: in PostgreSQL\'s words';
    like substr($p->log_contents, $seen), qr/its 3 settings go to its server connection \d+, pipelined/,
         'refused: the replay with the reported settings was pipelined';
    ok !$q->{status}, 'refused: the session ends (FATAL)';
    is $us->psql_admin('SELECT count(*) FROM public.rep_marks', dbname => 'movr'), '0',
       'refused: its INSERT never ran';
    is one($o, 'SHOW TimeZone'), 'Asia/Kolkata', 'refused: the other client runs on';
    $o->terminate;
    $p->stop;
}

done_testing;
