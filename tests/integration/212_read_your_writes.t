# Read-your-writes across sessions: a session with pgnear.report_fence=on
# gets ParameterStatus pgnear.fence after each transaction that wrote, and
# only then (a read-only transaction costs nothing); a later session that
# passes it back as pgnear.min_lsn is placed only on a node known to have
# replayed it.  Against a primary (us-east) and a streaming standby in
# eu-west that replays a second late (recovery_min_apply_delay = 1s):
# 50 fenced reads from a Dublin caller that prefers a standby all see
# the row just written (min_lsn_wait = 0: on the primary), while unfenced
# reads on the delayed standby miss it; on a second standby that replays at
# once, 50 fenced reads with the default min_lsn_wait wait for it, are
# read there and see their row; a fence old enough that the standby has replayed it reads there; a
# fence from another timeline goes to the primary; a far standby that has
# the position is taken only after a 200 ms grace for a near one on its way
# there; bad values get 22023.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;

require_tool('psql');
require_tool('pg_basebackup');

# Trust on loopback: a thousand logins by a Perl client are a thousand PBKDF2 runs in Perl
# otherwise, and this test is about where sessions land, not how they log in.
my @HBA = ('local all all trust', 'host all all 127.0.0.1/32 trust', 'host all all ::1/128 trust');
my $us = PgNearTest::Cluster->new(name => 'us-east', hba => \@HBA);
$us->psql_admin('CREATE TABLE marks (id int PRIMARY KEY, at timestamptz DEFAULT now())', dbname => 'movr');
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west', apply_delay => '1s',
                                          hba => \@HBA);

my $auth_dir = PgNearTest::tmpdir(name => 'ryw-auth');
write_file("$auth_dir/userlist.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});
my $p = PgNearTest::Proxy->new(
    regions  => [{ name => 'us-east', location => '39.04, -77.49', hosts => [$us] },
                 { name => 'eu-west', location => '53.35, -6.26', hosts => [$eu] }],
    settings => { auth => 'passthrough', server_tls => 'disable', health_check_interval => '1s',
                  health_check_timeout => '2s', admin_users => 'admin',
                  auth_file => "$auth_dir/userlist.txt", min_lsn_wait => '0' });
ok wait_until(sub { $p->log_contents =~ /region eu-west is up: it is a standby/ }, timeout => 20),
  'the health checks know eu-west is a standby';

sub wire {
    my ($options, $px) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => ($px // $p)->port, timeout => 15);
    my $r = eval { $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                               params => { options => $options }) } // { error => { M => $@ } };
    return ($w, $r);
}
sub fence_of { my ($res) = @_; my @f = map { $_->[1] } grep { $_->[0] eq 'pgnear.fence' } @{ $res->{parameters} // [] }; @f }
sub lsn_num { my ($hi, $lo) = $_[0] =~ m{([0-9A-F]+)/([0-9A-F]+)$}i; hex($hi) * 2**32 + hex($lo) }

# ------------------------------------------------------------------ the writer's fences

my ($w, $r) = wire('-c pgnear.target_session_attrs=read-write -c pgnear.report_fence=on');
ok $r->{ok}, 'a writer with report_fence logs in' or diag explain $r;
my @f = fence_of($w->query('SELECT count(*) FROM marks'));
is scalar(@f), 0, 'a read: no fence';
@f = fence_of($w->query('BEGIN; SELECT 1; COMMIT'));
is scalar(@f), 0, 'a read-only transaction: no fence';
my $before = lsn_num($us->current_lsn);
my $res = $w->query('INSERT INTO marks (id) VALUES (1)');
@f = fence_of($res);
is scalar(@f), 1, 'an INSERT outside a transaction: one fence';
like $f[0], qr{^[0-9A-F]{8}/[0-9A-F]+/[0-9A-F]+$}, '... "timeline/position", as WAL file names and pg_lsn write them';
like $f[0], qr{^00000001/}, '... on timeline 1';
cmp_ok lsn_num($f[0]), '>', $before, '... past the position before the INSERT';
cmp_ok lsn_num($f[0]), '<=', lsn_num($us->current_lsn), '... and not past the server\'s position after';
is $res->{status}, 'I', '... then the ReadyForQuery, idle';
is_deeply $res->{tags}, ['INSERT 0 1'], '... and nothing of pgnear\'s own query reached the client';
@f = fence_of($w->query('BEGIN'));
is scalar(@f), 0, 'BEGIN: no fence';
@f = fence_of($w->query('INSERT INTO marks (id) VALUES (2)'));
is scalar(@f), 0, 'an INSERT inside a transaction: no fence yet';
$res = $w->query('COMMIT');
@f = fence_of($res);
is scalar(@f), 1, 'its COMMIT: a fence';
is $res->{status}, 'I', '... with the ReadyForQuery after it';
$res = $w->query('UPDATE marks SET at = now() WHERE id = 1; SELECT 42');
is scalar(fence_of($res)), 1, 'a write and a read in one Query: one fence';
is $res->{rows}[0][0], 42, '... and the read\'s rows';
{
    # Two Queries in one write: the INSERT's ReadyForQuery comes with the SELECT outstanding.
    my $q = sub { my $sql = shift; 'Q' . pack('N', 4 + length($sql) + 1) . "$sql\0" };
    $w->send_raw($q->('INSERT INTO marks (id) VALUES (10)') . $q->('SELECT 1'));
    my ($r1, $r2) = ($w->read_result, $w->read_result);
    is scalar(fence_of($r1)), 0, 'pipelined: no fence while the next request is outstanding';
    is scalar(fence_of($r2)), 1, '... the next ReadyForQuery that leaves nothing outstanding carries it';
    is_deeply [$r1->{tags}, $r2->{tags}], [['INSERT 0 1'], ['SELECT 1']], '... and both answers arrive whole';
}
{
    my ($row) = grep { $_->{user} eq 'app' } show_clients();
    like $row->{fence}, qr{^00000001/}, 'SHOW CLIENTS: the last fence the session was sent';
}
# The server ends a fenced session's connection: the client gets the server's
# FATAL alone, then the end (the fence reader reads the server message by message).
{
    my ($k) = wire('-c pgnear.target_session_attrs=read-write -c pgnear.report_fence=on');
    $k->query('BEGIN');
    my $pid = $k->query('SELECT pg_backend_pid()')->{rows}[0][0];
    is $us->psql_admin("SELECT pg_terminate_backend($pid)"), 't', 'a fenced session\'s backend is terminated';
    my @errors = $k->errors_until_eof;
    is "@errors", '57P01', 'a fenced session gets the server\'s FATAL once, then EOF';
}
my ($plain) = wire('-c pgnear.target_session_attrs=read-write');
is scalar(fence_of($plain->query('INSERT INTO marks (id) VALUES (3)'))), 0,
  'a session without report_fence gets no fence (the default is off)';
$plain->terminate;

sub show_clients {
    my ($rc, $out, $err) = psql($p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret'),
                                'SHOW CLIENTS', args => ['-P', 'tuples_only=off', '-P', 'footer=off', '-F', '|']);
    my ($head, @rows) = split /\n/, $out;
    my @cols = split /\|/, $head, -1;
    return map { my @v = split /\|/, $_, -1; my %h; @h{@cols} = @v; \%h } @rows;
}

# ------------------------------------------------------------------ fenced reads

# Where a read lands and whether it sees row id: "cluster|count".
sub read_at {
    my ($id, $options, $px, $at) = @_;
    $at //= '53.35,-6.26';
    my ($rw, $rr) = wire("-c pgnear.target_session_attrs=prefer-standby -c pgnear.location=$at $options", $px);
    return "error: $rr->{error}{M}" unless $rr->{ok};
    my $q = $rw->query("SELECT current_setting('cluster_name') || '|' || count(*) FROM marks WHERE id = $id");
    $rw->terminate;
    return $q->{rows}[0][0] // "error: " . ($q->{error}{M} // 'none');
}

my ($unfenced_missed, $fenced_ok, %where) = (0, 0);
# Each is a write, a login and a read.  With min_lsn_wait = 0 and a standby a second late, where
# a fenced read goes is decided, not raced (no health check can show the standby past a fresh
# write): 50 find a fence that is missing or wrong as surely as 200 did, in a quarter of the time.
my $N = 50;
for my $id (100 .. 100 + $N - 1) {
    my ($fence) = fence_of($w->query("INSERT INTO marks (id) VALUES ($id)"));
    if ($id < 120) {   # the control: a read right after the write, without the fence
        $unfenced_missed++ if read_at($id, '') eq 'eu-west|0';
    }
    my $got = read_at($id, "-c pgnear.min_lsn=$fence");
    $fenced_ok++ if $got =~ /\|1$/;
    $where{ (split /\|/, $got)[0] }++;
}
is $fenced_ok, $N, "$N fenced reads right after their write: every one sees its row";
note 'fenced reads went to: ' . join(', ', map { "$_ $where{$_}" } sort keys %where);
cmp_ok $unfenced_missed, '>', 0, "... while unfenced reads on the delayed standby missed it ($unfenced_missed of 20)";

# The same on a standby that replays at once (ap-southeast, no apply delay),
# with the default min_lsn_wait: each fenced read waits for it to replay its
# write, lands there, and sees the row; 50 of them, each a write, a wait
# and a login.  (The test clusters run synchronous_commit = off, so the WAL
# reaches the standby at the WAL writer's pace, 200 ms: most of the wait.)
# (The same standby serves the nearer-standby test below: one pg_basebackup, not two.)
my $ap = PgNearTest::Cluster->new_standby(primary => $us, name => 'ap-southeast', hba => \@HBA);
{
    my $q = PgNearTest::Proxy->new(
        regions  => [{ name => 'us-east', location => '39.04, -77.49', hosts => [$us] },
                     { name => 'ap-southeast', location => '1.35, 103.82', hosts => [$ap] }],
        settings => { auth => 'passthrough', server_tls => 'disable', health_check_interval => '1s',
                      health_check_timeout => '2s' });
    ok wait_until(sub { $q->log_contents =~ /region ap-southeast is up: it is a standby/ }, timeout => 20),
      'a second pgnear knows ap-southeast is a standby';
    my ($ok, %at, @took) = (0);
    my $t0 = time;
    my $n = 50;
    for my $id (20000 .. 20000 + $n - 1) {
        my ($fence) = fence_of($w->query("INSERT INTO marks (id) VALUES ($id)"));
        my $t = time;
        my $got = read_at($id, "-c pgnear.min_lsn=$fence", $q, '1.35,103.82');
        push @took, time - $t;
        $ok++ if $got =~ /\|1$/;
        $at{ (split /\|/, $got)[0] }++;
    }
    my @sorted = sort { $a <=> $b } @took;
    note sprintf('fenced reads on the prompt standby went to: %s (%.1f s for %d writes and reads; '
                 . 'a read, login to answer: median %.0f ms, 95th percentile %.0f ms)',
                 join(', ', map { "$_ $at{$_}" } sort keys %at), time - $t0, $n,
                 1000 * $sorted[$n / 2], 1000 * $sorted[int($n * 0.95)]);
    is $ok, $n, "$n fenced reads on a standby right after their write: every one sees its row";
    cmp_ok $at{'ap-southeast'} // 0, '>=', $n * 0.95, '... and (nearly) all were read on the standby';
    $q->stop;
}

my ($old) = fence_of($w->query('INSERT INTO marks (id) VALUES (5000)'));
ok wait_until(sub { read_at(5000, '') eq 'eu-west|1' }, timeout => 10), 'the standby replays the row a second later';
ok wait_until(sub { read_at(5000, "-c pgnear.min_lsn=$old") eq 'eu-west|1' }, timeout => 5),
  'a fence the standby is known to have replayed: the read stays on the near standby';
{
    my ($tli, $rest) = $old =~ m{^([0-9A-F]{8})/(.*)$};
    is read_at(5000, "-c pgnear.min_lsn=00000009/$rest"), 'us-east|1',
      'the same position on another timeline: the primary';
    is read_at(5000, "-c pgnear.min_lsn=$rest"), 'eu-west|1', 'a bare position (no timeline) works too';
}

# ------------------------------------------------------------------ waiting for the standby

# min_lsn_wait: a fenced read waits for the near standby to replay its position (checked every
# 20 ms meanwhile), and settles for the primary when the wait runs out first.
for my $case (['3s', 'eu-west', 0.8, 2.9], ['300ms', 'us-east', 0.25, 0.9]) {
    my ($wait, $lands, $lo, $hi) = @$case;
    my $q = PgNearTest::Proxy->new(
        regions  => [{ name => 'us-east', location => '39.04, -77.49', hosts => [$us] },
                     { name => 'eu-west', location => '53.35, -6.26', hosts => [$eu] }],
        settings => { auth => 'passthrough', server_tls => 'disable', health_check_interval => '2s',
                      health_check_timeout => '2s', min_lsn_wait => $wait });
    wait_until(sub { $q->log_contents =~ /region eu-west is up: it is a standby/ }, timeout => 20);
    my @took;
    for my $id (6000 .. 6004) {
        my $base = $id * 10 + length $wait;
        my ($fence) = fence_of($w->query("INSERT INTO marks (id) VALUES ($base)"));
        my $t = time;
        my $got = read_at($base, "-c pgnear.min_lsn=$fence", $q);
        push @took, time - $t;
        is $got, "$lands|1", "min_lsn_wait = $wait: a read right after the write sees it on $lands";
    }
    my @sorted = sort { $a <=> $b } @took;
    note sprintf 'min_lsn_wait = %s: fenced reads took %s s', $wait, join(', ', map { sprintf '%.2f', $_ } @took);
    cmp_ok $sorted[0], '>=', $lo, "... after waiting for the standby (the fastest: $sorted[0] s)";
    cmp_ok $sorted[-1], '<', $hi, "... no longer than the wait allows (the slowest: $sorted[-1] s)";
    $q->stop;
}

# ------------------------------------------------------------------ the nearer standby first

# A fenced read from Dublin whose near standby (eu-west, a second late) is
# on its way to the position while a farther one (ap-southeast, prompt)
# already has it: it waits up to 200 ms more for the near one, then takes
# the far one rather than waiting the whole min_lsn_wait.  Without that
# grace the first standby to replay would win, and a session would stay an
# ocean away for the whole of its life because of one health check's timing.
{
    my $q = PgNearTest::Proxy->new(
        regions  => [{ name => 'us-east', location => '39.04, -77.49', hosts => [$us] },
                     { name => 'eu-west', location => '53.35, -6.26', hosts => [$eu] },
                     { name => 'ap-southeast', location => '1.35, 103.82', hosts => [$ap] }],
        settings => { auth => 'passthrough', server_tls => 'disable', health_check_interval => '2s',
                      health_check_timeout => '2s', min_lsn_wait => '3s' });
    ok wait_until(sub { my $l = $q->log_contents;
                        $l =~ /region eu-west is up: it is a standby/
                          && $l =~ /region ap-southeast is up: it is a standby/ }, timeout => 20),
      'a third pgnear knows both standbys';
    my ($fence) = fence_of($w->query('INSERT INTO marks (id) VALUES (7000)'));
    my $t = time;
    my $got = read_at(7000, "-c pgnear.min_lsn=$fence", $q);
    my $took = time - $t;
    is $got, 'ap-southeast|1', 'the near standby a second late: the far one that has the row';
    like $q->log_contents, qr/route: region ap-southeast has replayed pgnear\.min_lsn; waiting up to 200 ms for a nearer standby/,
      '... after the grace for the near one, logged';
    note sprintf 'the read took %.2f s, login to answer', $took;
    ok wait_until(sub { read_at(7000, '', $q) eq 'eu-west|1' }, timeout => 10), 'eu-west replays it';
    $q->stop;
    $ap->stop;
}

# ------------------------------------------------------------------ bad values

for my $case (['-c pgnear.min_lsn=0/zz', 'pgnear.min_lsn', '0/zz'],
              ['-c pgnear.min_lsn=1/2/3/4', 'pgnear.min_lsn', '1/2/3/4'],
              ['-c pgnear.report_fence=maybe', 'pgnear.report_fence', 'maybe']) {
    my ($bw, $br) = wire($case->[0]);
    is $br->{error}{C}, '22023', "$case->[1]=$case->[2]: 22023";
    like $br->{error}{M}, qr/invalid value for parameter "\Q$case->[1]\E": "\Q$case->[2]\E"/, '... naming it';
}
$w->terminate;
ok $p->is_running, 'pgnear is running';

done_testing;
