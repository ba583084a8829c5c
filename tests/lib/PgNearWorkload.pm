package PgNearWorkload;

# A list-append workload through pgnear, recorded as a history for
# PgNearHistory: each client (a forked process) runs short transactions
# against a table of a few keys, each either appending a unique value to
# one key or reading every key, and writes one line per transaction:
# invocation and completion time, its session, the server that answered
# (cluster_name:port), the outcome (ok, failed: the server answered an error;
# unknown: no answer, or the connection was lost with it) and what it
# appended or read.  A client whose connection fails logs in again as a
# new session (s3, then s3.2, ...).
#
#   my $w = PgNearWorkload->new(seed => $seed);            # seed: srand of each client
#   $w->setup($primary);                                   # the table, its keys, app's grants
#   $w->start(seconds => 10, clients => [
#       { need => 'nearest', port => $p->port, location => '53.35,-6.26', appends => 0.2 },
#       { need => 'read-write', port => $q->port, location => '42.36,-71.06' },
#       { need => 'read-only-fenced', port => $p->port, location => '53.35,-6.26' } ]);
#   ... a nemesis ...; $w->stop;                          # or let the seconds run out
#   my $h = $w->finish;                                    # the history, in order per session
#   my $final = $w->final_state($primary);
#
# read-only-fenced: one client of two connections, as a web application
# that keeps a fence: it appends on a read-write session, notes the
# primary's WAL position after it (FENCE_SQL: where its WAL is inserted,
# as pgnear.fence gives it), and reads on a
# new read-only session with pgnear.min_lsn set to it; its operations are
# one session for the checker (read-your-writes holds across them).
use strict;
use warnings;

use DBI;
use DBD::Pg qw(:async);
use IO::Handle;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);
use PgNearTest ();

our $KEYS = 4;

sub new {
    my ($class, %o) = @_;
    return bless { seed => $o{seed} // int(rand(2**31)), keys => $o{keys} // $KEYS,
                   timeout => $o{timeout} // 10, user => $o{user} // 'app',
                   password => $o{password} // 'app-secret', database => $o{database} // 'movr',
                   dir => PgNearTest::tmpdir(name => 'workload', mode => 0755) }, $class;
}

sub seed { $_[0]{seed} }

# A cluster (PgNearTest::Cluster: its psql_admin), or a function that runs
# SQL as a superuser on the primary and returns psql's unaligned output.
sub _on_primary {
    my ($self, $primary, $sql) = @_;
    return ref $primary eq 'CODE' ? $primary->($sql) : $primary->psql_admin($sql, dbname => $self->{database});
}

sub setup {
    my ($self, $primary) = @_;
    my $rows = join ',', map { "($_)" } 1 .. $self->{keys};
    $self->_on_primary($primary, <<SQL);
DROP TABLE IF EXISTS la;
CREATE TABLE la (key int PRIMARY KEY, vals int[] NOT NULL DEFAULT '{}');
INSERT INTO la (key) VALUES $rows;
GRANT ALL ON la TO $self->{user};
SQL
    return 1;
}

# Forks the clients; returns at once.  Each runs until `seconds` have passed.
sub start {
    my ($self, %o) = @_;
    my $until = time + $o{seconds};
    my $i = 0;
    unlink glob("$self->{dir}/client-*.jsonl"), "$self->{dir}/stop";
    $self->{clients} = @{ $o{clients} };
    for my $c (@{ $o{clients} }) {
        $i++;
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $ok = eval { $self->_client($i, $c, $until); 1 };
            print STDERR "workload client $i: $@" unless $ok;
            POSIX::_exit($ok ? 0 : 1);
        }
        PgNearTest::_reg_add("pid $pid");
        push @{ $self->{pids} }, $pid;
    }
    return 1;
}

# Ends the run before its seconds are up: each client stops after its
# transaction in flight.
sub stop { PgNearTest::write_file("$_[0]{dir}/stop", '') }

# Waits for the clients; the history, each client's operations in order,
# and per client the longest time without an answer ($w->{gaps}).
sub finish {
    my ($self) = @_;
    for my $pid (@{ delete $self->{pids} // [] }) {
        waitpid($pid, 0);
        PgNearTest::_reg_del("pid $pid");
    }
    my (@h, %gaps);
    my $json = JSON::PP->new;
    for my $f (sort glob "$self->{dir}/client-*.jsonl") {
        open my $fh, '<', $f or die "$f: $!";
        while (my $line = <$fh>) {
            my $op = $json->decode($line);
            if (exists $op->{gap}) { $gaps{ $op->{client} } = $op->{gap}; next }
            $op->{id} = scalar @h;
            push @h, $op;
        }
    }
    my @failed = grep { !defined $gaps{$_} } 1 .. $self->{clients};
    die "workload: clients @failed did not finish\n" if @failed;
    $self->{gaps} = \%gaps;
    $self->{history} = \@h;
    return \@h;
}

sub gaps { $_[0]{gaps} }

sub final_state {
    my ($self, $primary) = @_;
    my %final;
    for my $line (split /\n/, $self->_on_primary($primary, "SELECT key, array_to_string(vals, ',') FROM la ORDER BY key")) {
        my ($k, $v) = split /\|/, $line, 2;
        $final{$k} = [grep { length } split /,/, $v // ''];
    }
    return \%final;
}

# ---- in a client ----

sub _connect {
    my ($self, $c, $need, $extra) = @_;
    my $opts = join ' ', "-c pgnear.location=$c->{location}", "-c pgnear.target_session_attrs=$need", $extra // ();
    my $dsn = "dbi:Pg:host=127.0.0.1;port=$c->{port};dbname=$self->{database};connect_timeout=5;"
            . "options='$opts'";
    return DBI->connect($dsn, $self->{user}, $self->{password},
                        { RaiseError => 0, PrintError => 0, AutoCommit => 1, pg_server_prepare => 0 });
}

# One statement, asynchronously, so that a server that never answers costs
# the timeout and no more: (rows, undef) or (undef, 'failed'|'unknown', why).
sub _run {
    my ($self, $dbh, $sql) = @_;
    my $sth = $dbh->prepare($sql, { pg_async => PG_ASYNC }) or return (undef, 'unknown', $dbh->errstr);
    $sth->execute or return (undef, _outcome($dbh), $dbh->errstr);
    my $bits = '';
    vec($bits, $dbh->{pg_socket}, 1) = 1;
    my $deadline = time + $self->{timeout};
    until ($dbh->pg_ready) {
        my $left = $deadline - time;
        if ($left <= 0) {
            _abandon($dbh);
            return (undef, 'unknown', "no answer in $self->{timeout} s");
        }
        select(my $r = $bits, undef, undef, $left);
    }
    my $r = $dbh->pg_result;
    return (undef, _outcome($dbh), $dbh->errstr) unless defined $r;
    return ($sth->fetchall_arrayref, undef);
}

# A connection whose statement never got its answer is closed as a client
# that gives up closes its socket: DBD::Pg would cancel the statement first
# (libpq's PQcancel waits for the far end to close the cancel connection,
# which a server that never answers may never do) and then wait for it.
sub _abandon {
    my ($dbh) = @_;
    my $fd = $dbh->{pg_socket};
    $dbh->{InactiveDestroy} = 1;
    $dbh->{private_abandoned} = 1;
    POSIX::close($fd) if defined $fd && $fd >= 0;
}

# An error that the server answered for the statement is a failure; one of
# the connection (08xxx, a backend ended, none at all) leaves it unknown.
sub _outcome {
    my ($dbh) = @_;
    my $state = $dbh->state // '';
    return $state =~ /^(08|57P|S8)/ || $state eq '' || ($dbh->errstr // '') =~ /connection|server closed/i
      ? 'unknown' : 'failed';
}

# The end of the last WAL record the primary inserted, as pgnear.fence
# gives it (fence.c): the insert position, less a page header it points
# just past (no standby's replayed position stops inside one).  Not
# pg_current_wal_lsn(), the written position: under synchronous_commit =
# off (the test clusters') a commit returns before its WAL is written, and
# that position lags behind it by up to wal_writer_delay, so a standby that
# replayed only that far passed for having the append.
use constant FENCE_SQL =>
    "SELECT CASE WHEN (i - '0/0') % s = 40 THEN i - 40 WHEN (i - '0/0') % b = 24 THEN i - 24 "
  . "ELSE i END FROM (SELECT pg_current_wal_insert_lsn() AS i, "
  . "current_setting('wal_block_size')::numeric AS b, "
  . "(SELECT setting::numeric FROM pg_settings WHERE name = 'wal_segment_size') AS s) AS w";

# The primary's WAL position after an acknowledged append, on the
# client's read-write session or, when that fails, a new one (any read-write
# session's FENCE_SQL is at or past the commit): the fence and the
# connection to go on with.  A client that cannot learn it stops (it
# would read without its fence, which promises nothing).
sub _fence {
    my ($self, $c, $dbh, $until) = @_;
    while (1) {
        if ($dbh) {
            my ($f) = $self->_run($dbh, FENCE_SQL);
            return ($f->[0][0], $dbh) if $f && @$f;
            undef $dbh;
        }
        die "no fence for an acknowledged append\n" if time > $until + $self->{timeout};
        sleep 0.05 unless $dbh;
        $dbh = $self->_connect($c, 'read-write');
    }
}

sub _client {
    my ($self, $i, $c, $until) = @_;
    srand($self->{seed} + $i);
    open my $out, '>', sprintf('%s/client-%03d.jsonl', $self->{dir}, $i) or die "client $i: $!";
    $out->autoflush(1);
    my $json = JSON::PP->new->canonical;
    my $fenced = $c->{need} eq 'read-only-fenced';
    my ($gen, $count, $fence, $dbh) = (0, 0, undef, undef);
    my ($last_answer, $gap) = (time, 0);
    my $session;
    while (time < $until && !-e "$self->{dir}/stop") {
        unless ($dbh) {
            $dbh = $self->_connect($c, $fenced ? 'read-write' : $c->{need}, ());
            unless ($dbh) { sleep 0.05; next }
            $gen++;
            $session = $fenced ? "f$i" : ($gen == 1 ? "s$i" : "s$i.$gen");
        }
        my $op = { session => $session, need => $c->{need}, client => $i };
        if (rand() < ($c->{appends} // 0.5)) {
            my $k = 1 + int(rand($self->{keys}));
            my $v = $i * 1_000_000 + ++$count;
            $op->{append} = [[$k, $v]];
            $op->{invoke} = time;
            my ($rows, $bad, $why) = $self->_run($dbh, "UPDATE la SET vals = vals || $v WHERE key = $k "
                                                     . "RETURNING current_setting('cluster_name') || ':' || inet_server_port()");
            $op->{complete} = time;
            $op->{outcome} = $bad // 'ok';
            $op->{server} = $rows->[0][0] if $rows && @$rows;
            $op->{error} = $why if $bad;
            undef $dbh if $bad;
            if (!$bad && $fenced) {
                ($fence, $dbh) = $self->_fence($c, $dbh, $until);
                $op->{fence} = $fence;
            }
        } else {
            my $on = $dbh;
            $on = $self->_connect($c, 'read-only', $fence ? "-c pgnear.min_lsn=$fence" : ()) if $fenced;
            $op->{min_lsn} = $fence if $fenced;
            $op->{invoke} = time;
            my ($rows, $bad, $why) = $on ? $self->_run($on, "SELECT key, vals, current_setting('cluster_name') || ':' "
                                                          . '|| inet_server_port(), pg_is_in_recovery() '
                                                          . 'FROM la ORDER BY key')
                                         : (undef, 'failed', 'read-only login failed');
            $op->{complete} = time;
            $op->{outcome} = $bad // 'ok';
            $op->{error} = $why if $bad;
            if ($rows) {
                $op->{read} = { map { $_->[0] => $_->[1] } @$rows };
                ($op->{server}, $op->{standby}) = ($rows->[0][2], $rows->[0][3] ? 1 : 0) if @$rows;
            }
            $on->disconnect if $fenced && $on && !$on->{private_abandoned};
            undef $dbh if $bad && !$fenced;
        }
        print $out $json->encode($op), "\n";
        sleep $c->{think} if $c->{think};
        if ($op->{outcome} eq 'ok') {
            $gap = $op->{complete} - $last_answer if $op->{complete} - $last_answer > $gap;
            $last_answer = $op->{complete};
        }
    }
    my $end = time - $last_answer;
    $gap = $end if $end > $gap;
    print $out $json->encode({ client => $i, gap => $gap }), "\n";
    close $out;
    return 1;
}

# ---- the verdict ----

# What each need promises, as doc/concepts/consistency.md's table says:
# the kinds of PgNearHistory that fail the test where they show (lost,
# duplicated, aborted reads and reads out of the final order fail for all).
our %PROMISES = (
    'nearest'          => [qw(ryw monotonic-reads monotonic-writes writes-follow-reads)],
    'read-write'       => [qw(ryw monotonic-reads monotonic-reads-primary monotonic-writes writes-follow-reads
                              long-fork)],
    'read-only-fenced' => [qw(ryw monotonic-writes writes-follow-reads)],
);

# Checks the history against the final state, says per kind what was
# found and per client the longest time without an answer (TAP notes),
# and passes when nothing promised was broken and no client waited longer
# than max_gap seconds.
sub verdict {
    my ($self, $name, $h, $final, %o) = @_;
    require PgNearHistory;
    require Test::More;
    my $v = PgNearHistory::check($h, $final, promises => \%PROMISES);
    my %ops;
    $ops{ $_->{need} }{ $_->{outcome} }++ for @$h;
    Test::More::diag(sprintf '%s (seed %d): %d operations (%s)', $name, $self->{seed}, scalar @$h,
                     join '; ', map { my $n = $_; "$n: " . join(', ', map { "$ops{$n}{$_} $_" } sort keys %{ $ops{$n} }) }
                     sort keys %ops);
    Test::More::diag("$name: found " . join(', ', map { "$_ $v->{count}{$_}" } @PgNearHistory::KINDS));
    my %shown;
    for my $f (@{ $v->{failing} }, @{ $v->{violations} }) {
        next if $shown{$f}++ || $shown{ $f->{kind} }++ >= 3;
        Test::More::diag("$name: " . PgNearHistory::describe($f));
    }
    my $gaps = $self->{gaps} // {};
    my ($worst) = sort { $gaps->{$b} <=> $gaps->{$a} } keys %$gaps;
    Test::More::diag(sprintf '%s: longest time without an answer per client: %s', $name,
                     join ', ', map { sprintf '%d %.2f s', $_, $gaps->{$_} } sort { $a <=> $b } keys %$gaps);
    my $file = "$self->{dir}/history-" . ++$self->{segments} . '.json';
    PgNearTest::write_file($file, JSON::PP->new->canonical->encode({ seed => $self->{seed}, history => $h,
                                                                       final => $final }));
    Test::More::note("$name: the history is in $file");
    my (%failing, %first);
    for my $f (@{ $v->{failing} }) {
        $failing{ $f->{kind} }++;
        $first{ $f->{kind} } //= $f;
    }
    # A failure says its first violation again, right under it: a log's
    # tail (CI's) may keep nothing of the notes above.
    for my $kind (@PgNearHistory::KINDS) {
        Test::More::is($failing{$kind} // 0, 0, "$name: no $kind violation where promised")
          or Test::More::diag("$name (seed $self->{seed}): " . PgNearHistory::describe($first{$kind}));
    }
    my $ok = grep { $_->{outcome} eq 'ok' } @$h;
    Test::More::cmp_ok($ok, '>=', $o{min_ops} // 100, "$name: $ok operations answered");
    Test::More::cmp_ok($gaps->{$worst} // 0, '<=', $o{max_gap}, "$name: no client without an answer past $o{max_gap} s")
      if defined $o{max_gap};
    return $v;
}

1;
