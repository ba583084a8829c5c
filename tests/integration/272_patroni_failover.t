# pgnear in front of a real Patroni cluster (Debian's patroni and
# etcd-server: one etcd, three members m1 us-east, m2 us-west, m3
# eu-west), with `patroni` naming the members' REST APIs.  The file lists
# us-east's and us-west's hosts; eu-west's comes from Patroni (its tag
# pgnear_region).  Writers through pgnear — Boston read-write, Dublin
# read-write, Dublin nearest (an INSERT every 20 ms), Boston read-write slow
# (every 500 ms), each once through a pgnear with pool_mode = session and
# once through one with pool_mode = transaction — each keep
# one session and insert ids, recording each id whose commit was
# acknowledged, and each error with when its statement was sent.  Then:
#   1. patronictl switchover (to the synchronous standby): no writer whose
#      session was idle when the old leader's shutdown began gets an error
#      (pgnear holds it and moves it to the new leader), at most one
#      statement a writer that was running then does, and no write is lost;
#   2. a failover: kill -9 of the leader's Patroni and postmaster;
#   3. the leader's Patroni stopped (SIGSTOP) while its PostgreSQL runs on
#      as a primary: another member is promoted after the ttl; Patroni's
#      /cluster stops naming the old one leader, and pgnear fences it;
#      then it rejoins (SIGCONT: Patroni rewinds it);
# each with synchronous_mode on (every acknowledged id is on the final
# leader) and, for the third, off too (no write on the old leader after
# the new one was promoted), after every member's Patroni stopped for a
# few seconds (pgnear says it routes on its own checks, writes go on).  After each, the time from the new leader's
# first direct write to the first write through pgnear of each writer is
# printed (diag) and bounded loosely: a timing belongs in a benchmark.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use PgNearTest;
use PgNearPatroni;

$SIG{PIPE} = 'IGNORE';
require_tool('psql');
require DBD::Pg;

my $WORKERS = $ENV{PGNEAR_TEST_WORKERS} // 2;
my %CITY = (boston => '42.36,-71.06', dublin => '53.35,-6.26');
# name, city, need, pool mode (which pgnear: scenario_cluster's two), seconds between
# writes: a slow writer is idle at a switchover but for a rare moment.
my @WRITERS = map { my $m = $_; map { [$_->[0] . ($m eq 'session' ? '' : '_txn'), @$_[1, 2], $m, $_->[3]] }
                                    ([boston_rw => boston => 'read-write', 0.02], [dublin_rw => dublin => 'read-write', 0.02],
                                     [dublin_near => dublin => 'nearest', 0.02], [boston_slow => boston => 'read-write', 0.5]) }
              qw(session transaction);

# A writer: one session through pgnear, an INSERT every $interval s, each id whose
# commit came back written to $dir/$name.acked as "id time port backend-pid",
# each failed statement or login to $dir/$name.errors as "id sent-time
# end-time pid error" (pid: the backend of its last acknowledged write, 0: none);
# a failed session is opened again.  Runs until $dir/stop appears (or 240 s).
sub start_writer {
    my ($dir, $proxies, $name, $city, $need, $mode, $interval) = @_;
    my $p = $proxies->{$mode};
    my $ci = $p->conninfo(user => 'app', password => $PgNearTest::APP_PASSWORD, dbname => 'movr',
                          options => "-c pgnear.location=$CITY{$city} -c pgnear.target_session_attrs=$need",
                          connect_timeout => 20);
    my $parent = $$;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    open my $out, '>>', "$dir/$name.acked" or POSIX::_exit(1);
    open my $err, '>>', "$dir/$name.errors" or POSIX::_exit(1);
    $out->autoflush(1);
    $err->autoflush(1);
    my ($dbh, $n, $last_backend) = (undef, 0, 0);
    my $until = time + 240;
    while (!-e "$dir/stop" && time < $until && getppid() == $parent) {
        my $t_login = time;
        $dbh //= DBI->connect("dbi:Pg:$ci", undef, undef, { RaiseError => 0, PrintError => 0, AutoCommit => 1 });
        if (!$dbh) {
            (my $why = DBI->errstr // '?') =~ s/\s+/ /g;
            printf {$err} "login %.6f %.6f 0 %s\n", $t_login, time, $why;
            sleep 0.05;
            next;
        }
        my $id = sprintf '%s-%06d', $name, ++$n;
        my $t_send = time;
        my ($port, $backend) = $dbh->selectrow_array(
            'INSERT INTO writes (id) VALUES (?) RETURNING inet_server_port(), pg_backend_pid()', undef, $id);
        if (defined $port) {
            printf {$out} "%s %.6f %d %d\n", $id, time, $port, $backend;
            $last_backend = $backend;
        } else {
            (my $why = $dbh->errstr // '?') =~ s/\s+/ /g;
            printf {$err} "%s %.6f %.6f %d %s\n", $id, $t_send, time, $last_backend, $why;
            $last_backend = 0;
        }
        if (!defined $port && !$dbh->ping) {
            $dbh->disconnect;
            undef $dbh;
        }
        sleep $interval;
    }
    POSIX::_exit(0);
}

# Each writer's acknowledged ids: name => [[id, time, port], ...].
sub acked {
    my ($dir) = @_;
    my %a;
    for my $w (@WRITERS) {
        open my $in, '<', "$dir/$w->[0].acked" or next;
        $a{ $w->[0] } = [map { [split ' '] } grep { /\S/ } <$in>];
    }
    return \%a;
}

# Each writer's errors: name => [[id, sent, ended, pid, error], ...].
sub errors {
    my ($dir) = @_;
    my %e;
    for my $w (@WRITERS) {
        open my $in, '<', "$dir/$w->[0].errors" or next;
        $e{ $w->[0] } = [map { chomp; [split ' ', $_, 5] } grep { /\S/ } <$in>];
    }
    return \%e;
}

# A line of member $m's PostgreSQL log (log_line_prefix %m, in UTC): its time as Unix time.
sub log_time {
    my ($line) = @_;
    return undef unless $line && $line =~ /^(\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+(?:\.\d+)?) UTC /;
    require Time::Local;
    my $whole = int $6;
    return Time::Local::timegm($whole, $5, $4, $3, $2 - 1, $1) + ($6 - $whole);
}

# Member $m's last fast shutdown: when its PostgreSQL logged "received fast
# shutdown request", when the last of its backends ended by the FATAL of the
# shutdown (57P01) after that, and when each did (backend pid => time); undef
# each when it did not.  A backend's end is its "disconnection" line
# (log_disconnections), logged as it exits, after its FATAL went out: the
# FATAL's own line comes before it is sent, and a backend that a loaded
# machine keeps waiting between the two sends it that much later.
sub shutdown_window {
    my ($m) = @_;
    my @lines = split /\n/, slurp_file($m->{log});
    my ($at) = grep { $lines[$_] =~ /received fast shutdown request/ } reverse 0 .. $#lines;
    return (undef, undef, {}) unless defined $at;
    my (%fatal, %gone);
    for (@lines[$at .. $#lines]) {
        my ($pid) = /^\S+ \S+ UTC \[(\d+)\]/ or next;
        $fatal{$pid} //= log_time($_) if /FATAL:  terminating connection due to administrator command/;
        $gone{$pid} //= log_time($_) if /LOG:  disconnection: /;
    }
    my %by_pid = map { ($_ => $gone{$_} // $fatal{$_}) } keys %fatal;
    my ($last) = sort { $b <=> $a } values %by_pid;
    return (log_time($lines[$at]), $last, \%by_pid);
}

# A switchover: each error since $t0 was for a statement sent before its
# backend was ended (the one of the writer's last write, when the log names
# it: session pooling; else the last to end: a transaction may take any), at
# most one a writer; none for a session that was idle by then.  The log's
# times are whole milliseconds, and pgnear reads a FATAL a moment after it
# was sent: 3 ms of grace.
sub switchover_errors {
    my ($dir, $old, $t0, $tag) = @_;
    my ($began, $ended, $by_pid) = shutdown_window($old);
    ok defined $began && $began >= $t0 - 1 && defined $ended,
      "$tag: the old leader's log says when its fast shutdown began and ended its backends"
      or return;
    diag sprintf '%s: the old leader ended its backends %.3f s after its shutdown began', $tag, $ended - $began;
    my $e = errors($dir);
    my (@idle, %running);
    for my $w (@WRITERS) {
        for my $err (grep { $_->[1] >= $t0 } @{ $e->{ $w->[0] } // [] }) {
            my $end = $w->[3] eq 'session' ? $by_pid->{ $err->[3] } // $ended : $ended;
            diag sprintf '%s: %s: %s sent %+.3f s, ended %+.3f s after the shutdown began, its backend %s ended %+.3f s: %s',
                         $tag, $w->[0], $err->[0], $err->[1] - $began, $err->[2] - $began, $err->[3], $end - $began, $err->[4];
            if ($err->[1] > $end + 0.003 || $err->[0] eq 'login') { push @idle, "$w->[0] $err->[0]" }
            else { $running{ $w->[0] }++ }
        }
    }
    is scalar(@idle), 0, "$tag: no error for a session idle when the old leader's shutdown began"
      or diag "idle then: @idle";
    ok !(grep { $_ > 1 } values %running), "$tag: at most one error a writer, for a statement running then";
}

# The errors since $t0, per writer, printed (a failover's and a fence's are expected).
sub report_errors {
    my ($dir, $t0, $tag) = @_;
    my $e = errors($dir);
    my @n = map { my $w = $_->[0]; scalar(grep { $_->[1] >= $t0 } @{ $e->{$w} // [] }) . " $w" } @WRITERS;
    diag "$tag: errors since: @n";
}

# The first time a direct INSERT on member $m succeeds (polled every 10 ms, up to $timeout s).
sub first_direct_write {
    my ($pc, $m, $timeout) = @_;
    my $ci = conninfo_string(host => $m->{sock}, port => $m->{port}, user => 'postgres', dbname => 'movr',
                             connect_timeout => 2);
    my $deadline = time + $timeout;
    my ($k, $why) = (0, '');
    while (time < $deadline) {
        my $dbh = DBI->connect("dbi:Pg:$ci", undef, undef, { RaiseError => 0, PrintError => 0, AutoCommit => 1 });
        $why = DBI->errstr // '' unless $dbh;
        if ($dbh) {
            while (time < $deadline) {
                my $ok = $dbh->do('INSERT INTO writes (id) VALUES (?)', undef,
                                  sprintf('direct-%s-%.6f-%d', $m->{name}, time, ++$k));
                return time if $ok;
                $why = $dbh->errstr // '';
                last unless $dbh->ping;
                sleep 0.01;
            }
        }
        sleep 0.01;
    }
    diag "no direct write on $m->{name}: $why";
    return undef;
}

# After an event: each writer's first acknowledged write on $new after $t_direct;
# the delays are printed and loosely bounded.
sub writes_resume {
    my ($dir, $tag, $new, $t_direct) = @_;
    my %first;
    ok wait_until(sub {
        my $a = acked($dir);
        for my $w (@WRITERS) {
            my ($hit) = grep { $_->[1] >= $t_direct - 0.5 && $_->[2] == $new->{port} } @{ $a->{ $w->[0] } // [] };
            $first{ $w->[0] } //= $hit->[1] if $hit;
        }
        keys %first == @WRITERS;
    }, timeout => 30, interval => 0.1), "$tag: every writer writes on the new leader $new->{name}";
    my @ms = map { defined $first{ $_->[0] } ? sprintf('%s %.0f ms', $_->[0], 1000 * ($first{ $_->[0] } - $t_direct)) : "$_->[0] -" } @WRITERS;
    diag "$tag: from the new leader's first direct write to each writer's first through pgnear: @ms";
    return \%first;
}

# Every acknowledged id is on member $m.
sub all_acked_on {
    my ($pc, $m, $dir, $tag) = @_;
    my $a = acked($dir);
    my @ids = map { $_->[0] } map { @{ $a->{ $_->[0] } // [] } } @WRITERS;
    my %have = map { $_ => 1 } split /\n/, $pc->psql($m, 'SELECT id FROM writes', dbname => 'movr');
    my @lost = grep { !$have{$_} } @ids;
    is scalar(@lost), 0, "$tag: every acknowledged write (" . scalar(@ids) . ") is on $m->{name}"
      or diag "lost: @lost[0 .. ($#lost < 9 ? $#lost : 9)]";
}

# Every member streams, and (synchronous_mode) one is the synchronous standby.
sub settle {
    my ($pc) = @_;
    $pc->wait_streaming(timeout => 90);
    ok wait_until(sub { my $c = $pc->cluster; $c && grep { $_->{role} eq 'sync_standby' } @{ $c->{members} } },
                  timeout => 60, interval => 0.2), 'a synchronous standby follows the leader'
      or diag $pc->cluster_line;
}

sub scenario_cluster {
    my ($sync) = @_;
    my $pc = PgNearPatroni->new(synchronous_mode => $sync);
    my $leader = $pc->leader;
    $pc->psql($leader, q{CREATE TABLE writes (id text PRIMARY KEY, port int DEFAULT inet_server_port(), }
                     . q{at timestamptz NOT NULL DEFAULT clock_timestamp())}, dbname => 'movr');
    my $verifier = $pc->psql($leader, qq{SELECT rolpassword FROM pg_authid WHERE rolname = '$PgNearTest::APP_USER'});
    my $auth_dir = tmpdir(name => 'patroni-auth');
    write_file("$auth_dir/userlist.txt",
        qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n"$PgNearTest::APP_USER" "$verifier"\n});
    my %m = map { $_->{region} => $_ } $pc->members;
    my $urls = join ', ', map { "http://127.0.0.1:$_->{rest_port}" } $pc->members;
    my %p = map {
        $_ => PgNearTest::Proxy->new(
            regions  => [{ name => 'us-east', location => '39.04, -77.49', hosts => ["127.0.0.1:$m{'us-east'}{port}"] },
                         { name => 'us-west', location => '45.60, -121.18', hosts => ["127.0.0.1:$m{'us-west'}{port}"] },
                         { name => 'eu-west', location => '53.35, -6.26', hosts => [] }],
            settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", admin_users => 'admin',
                          server_tls => 'disable', health_check_interval => '500ms', health_check_timeout => '1s',
                          workers => $WORKERS, failover_wait => '30s', patroni => $urls, pool_mode => $_ })
    } qw(session transaction);
    return ($pc, $p{session}, \%m, \%p);
}

# ------------------------------------------------------------------ synchronous_mode: on

{
    my ($pc, $p, $m, $proxies) = scenario_cluster(1);
    my $eu_port = $m->{'eu-west'}{port};
    ok $p->wait_for_log(qr/patroni: the members no region lists are now 127\.0\.0\.1:$eu_port of eu-west/, timeout => 20),
      'sync: eu-west\'s member comes from Patroni (its tag)';
    ok wait_until(sub { grep { $_->{region} eq 'eu-west' && $_->{port} == $eu_port && $_->{role} eq 'standby' }
                        $p->admin_rows('SHOW REGIONS') }, timeout => 20, interval => 0.2),
      'sync: SHOW REGIONS lists it in eu-west, a standby';

    my $dir = tmpdir(name => 'patroni-writers', mode => 0755);
    my @pids = map { start_writer($dir, $proxies, @$_) } @WRITERS;
    END { kill 'TERM', @pids if @pids && $$ == $PgNearTest::OWNER_PID }
    ok wait_until(sub { my $a = acked($dir); !grep { !@{ $a->{ $_->[0] } // [] } } @WRITERS },
                  timeout => 30, interval => 0.1), 'sync: every writer writes through pgnear';

    # 1. A switchover, to the synchronous standby (Patroni takes no other candidate in this mode).
    my $old = $pc->leader;
    my ($sync) = grep { $_->{role} eq 'sync_standby' } @{ $pc->cluster->{members} };
    my $t0 = time;
    my $new = $pc->switchover($sync->{name});
    my $t_direct = first_direct_write($pc, $new, 30);
    ok defined $t_direct, "switchover: the new leader $new->{name} takes a direct write";
    writes_resume($dir, 'switchover', $new, $t_direct // $t0);
    switchover_errors($dir, $old, $t0, 'switchover');

    # 2. A failover: the leader's Patroni and postmaster killed, once a synchronous standby follows it.
    settle($pc);
    $old = $pc->kill_leader;
    $t0 = time;
    $new = $pc->wait_leader(not => $old->{name}, timeout => 60);
    $t_direct = first_direct_write($pc, $new, 30);
    ok defined $t_direct, "failover: $new->{name} leads after $old->{name} was killed";
    writes_resume($dir, 'failover', $new, $t_direct // $t0);
    report_errors($dir, $t0, 'failover');
    $pc->start_member($old);

    # 3. The leader's Patroni stopped while its PostgreSQL runs on.
    settle($pc);
    $old = $pc->stop_leader_patroni;
    $t0 = time;
    $new = $pc->wait_leader(not => $old->{name}, timeout => 60);
    $t_direct = first_direct_write($pc, $new, 30);
    ok defined $t_direct, "SIGSTOP: $new->{name} promoted while $old->{name}'s PostgreSQL runs on";
    writes_resume($dir, 'SIGSTOP (sync)', $new, $t_direct // $t0);
    my @rows = $p->admin_rows('SHOW REGIONS');
    my ($fenced) = grep { $_->{port} == $old->{port} } @rows;
    like $fenced->{fenced} // '', qr/^former primary/, 'SIGSTOP: SHOW REGIONS shows the old leader fenced'
      or diag join "\n", map { "$_->{region} $_->{port} $_->{role} $_->{up} [$_->{fenced}]" } @rows;
    $pc->resume($old);
    ok wait_until(sub { my ($r) = grep { $_->{port} == $old->{port} } $p->admin_rows('SHOW REGIONS');
                        $r && $r->{role} eq 'standby' && $r->{fenced} eq '' }, timeout => 90, interval => 0.5),
      'SIGSTOP: the old leader rejoins as a standby, no longer fenced';
    write_file("$dir/stop", '');
    waitpid($_, 0) for @pids;
    @pids = ();
    all_acked_on($pc, $pc->leader, $dir, 'synchronous_mode');
    $_->stop for values %$proxies;
    $pc->stop;
}

# ------------------------------------------------------------------ synchronous_mode: off, SIGSTOP

{
    my ($pc, $p, $m, $proxies) = scenario_cluster(0);
    my $eu_port = $m->{'eu-west'}{port};
    ok $p->wait_for_log(qr/patroni: the members no region lists are now 127\.0\.0\.1:$eu_port of eu-west/, timeout => 20),
      'async: eu-west\'s member comes from Patroni';
    my $dir = tmpdir(name => 'patroni-writers-async', mode => 0755);
    my @pids = map { start_writer($dir, $proxies, @$_) } @WRITERS;
    END { kill 'TERM', @pids if @pids && $$ == $PgNearTest::OWNER_PID }
    ok wait_until(sub { my $a = acked($dir); !grep { !@{ $a->{ $_->[0] } // [] } } @WRITERS },
                  timeout => 30, interval => 0.1), 'async: every writer writes through pgnear';

    # Patroni unreachable (every member's Patroni stopped, for less than its ttl): pgnear says so
    # and routes on its own checks; writes go on; Patroni back, it says so again.
    my $off = $p->log_size;
    kill 'STOP', map { -$_->{pid} } $pc->members;
    ok $p->wait_for_log(qr/patroni: no REST endpoint answers \(.*\); routing on pgnear's own checks/,
                        offset => $off, timeout => 8), 'async: no Patroni answering, pgnear says so';
    my $before = scalar map { @$_ } values %{ acked($dir) };
    ok wait_until(sub { (scalar map { @$_ } values %{ acked($dir) }) > $before + 10 }, timeout => 5, interval => 0.1),
      '... and the writers write on';
    kill 'CONT', map { -$_->{pid} } $pc->members;
    ok $p->wait_for_log(qr/patroni: its REST API answers again/, offset => $off, timeout => 10),
      '... and says so again when Patroni answers';
    $pc->wait_streaming(timeout => 60);

    my $old = $pc->stop_leader_patroni;
    my $t0 = time;
    my $new = $pc->wait_leader(not => $old->{name}, timeout => 60);
    my $t_direct = first_direct_write($pc, $new, 30);
    ok defined $t_direct, "async SIGSTOP: $new->{name} promoted";
    writes_resume($dir, 'SIGSTOP (async)', $new, $t_direct // $t0);
    # The old leader's PostgreSQL still runs: nothing written there once the new one took writes.
    my $late = $pc->psql($old, sprintf(q{SELECT count(*) FROM writes WHERE id NOT LIKE 'direct-%%' AND at > to_timestamp(%.6f)},
                                       $t_direct // $t0), dbname => 'movr');
    is $late, '0', 'async SIGSTOP: no write through pgnear on the old leader after the new one took writes';
    my $a = acked($dir);
    my @on_old = grep { $_->[2] == $old->{port} && $_->[1] > ($t_direct // $t0) } map { @{ $a->{ $_->[0] } // [] } } @WRITERS;
    is scalar(@on_old), 0, 'async SIGSTOP: no acknowledged write came from the old leader after that';
    write_file("$dir/stop", '');
    waitpid($_, 0) for @pids;
    @pids = ();
    $pc->resume($old);
    $_->stop for values %$proxies;
    $pc->stop;
}

done_testing;
