# The shipped configuration limits nobody: conf/pgnear.example.ini itself,
# with only what must differ on a test machine substituted (the listening
# port, the Unix socket's directory, the auth file, the city table's path,
# the regions' hosts: the default region's at a cluster that takes 1,000
# connections, the three others at a small one), and pgnear started
# under the open-files limit most systems give a service (soft 1024, the
# hard limit as it is).  The settings this relies on are checked to be the
# shipped defaults (pool_size 0, max_db_connections 0, pool_mode session,
# auth scram).  Then 1,000 sessions of one user, database and region log
# in at once and each answers a query while all are connected, on 1,000
# backends of its own, as they would directly; before that, a client's
# kept connection still goes to the next, and pgbench -c 30 -S runs
# through pgnear without an error.  1,000 sessions are 2,000 descriptors
# in pgnear, twice the soft limit it was started under, and their logins
# come at once from one place: what the shipped defaults must not limit.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgNearTest;
use PgNearCrowd;

$SIG{PIPE} = 'IGNORE';
require_tool($_) for qw(psql pgbench);
my $prlimit = require_tool('prlimit');

my $SESSIONS = 1000;
my $src = "$FindBin::RealBin/../..";

# ---------------------------------------------------------------- open-files limits
# "Max open files" of a process: (soft, hard), 'unlimited' as a large number.
sub nofile {
    my ($pid) = @_;
    my ($soft, $hard) = slurp_file("/proc/$pid/limits") =~ /^Max open files\s+(\S+)\s+(\S+)/m
      or die "no open-files limit in /proc/$pid/limits\n";
    return map { $_ eq 'unlimited' ? 1 << 30 : $_ } $soft, $hard;
}

sub set_soft_nofile {
    my ($n) = @_;
    my ($rc, $out, $err) = run_cmd([$prlimit, '--pid', $$, "--nofile=$n:"], timeout => 10);
    die "prlimit --nofile=$n: failed: $err" if $rc != 0;
}

# pgnear needs two descriptors a session (client and server) and the test one.
my ($soft0, $hard0) = nofile($$);
my $need = 2 * $SESSIONS + 200;
cmp_ok $hard0, '>=', $need, "the hard open-files limit ($hard0) allows $need descriptors"
  or BAIL_OUT("raise the hard open-files limit (ulimit -Hn) to at least $need to run this test");

# ---------------------------------------------------------------- the clusters
my $us = PgNearTest::Cluster->new(name => 'us-east',
    conf => { max_connections => $SESSIONS + 200, shared_buffers => '64MB' });
my $far = PgNearTest::Cluster->new(name => 'far-regions');
my ($rc, $out, $err) = pgbench(['-i', '-s', '1', '-q'], $us->conninfo(connect_timeout => 60), timeout => 120);
is $rc, 0, 'pgbench -i (directly)' or diag $err;
my $auth_dir = tmpdir(name => 'defaults-auth');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist, qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

# ---------------------------------------------------------------- the shipped file
my $shipped = slurp_file("$src/conf/pgnear.example.ini");

# The value of a setting of [pgnear] in the shipped file; undef when it is not set there.
sub shipped_value {
    my ($name) = @_;
    my ($section) = $shipped =~ /^\[pgnear\]\s*\n(.*?)(?=^\[|\z)/ms;
    return $section =~ /^\s*\Q$name\E\s*=\s*([^;\n]*?)\s*(?:;.*)?$/m ? $1 : undef;
}

# What this test relies on: no limit per pool or host, pooling on, SCRAM.
# Not set in the file, or set to the default; SHOW CONFIG tells the default below.
my %RELIES = (pool_size => '0', max_db_connections => '0', pool_mode => 'session', auth => 'scram');
for my $k (sort keys %RELIES) {
    my $v = shipped_value($k);
    ok !defined $v || $v eq $RELIES{$k}, "the shipped file sets $k to $RELIES{$k}, or leaves it to the default"
      or diag "conf/pgnear.example.ini: $k = $v";
}

my $default_region = shipped_value('default_region') // '';
like $default_region, qr/^[\w-]+$/, "the shipped file names a default region ($default_region): the sessions go there";

my $port = free_port();
my $proxy = PgNearTest::Proxy->new(regions => [$us], start => 0, port => $port, args => []);
my %subst = (
    listen_port     => $port,
    unix_socket_dir => $proxy->dir,
    auth_file       => $userlist,
    cities_file     => "$src/conf/cities.csv",
    hosts           => undef,    # by region
);
my (%done, $section);
my $ini = join '', map {
    my $line = $_;
    $section = $1 if $line =~ /^\s*\[([^\]]+)\]/;
    if ($line =~ /^(\s*(\w+)\s*=\s*)([^;\n]*?)(\s*(?:;.*)?\n?)$/ && exists $subst{$2}) {
        my $v = $2 ne 'hosts' ? $subst{$2} : $section eq "region $default_region" ? $us->hostport : $far->hostport;
        $done{$2}++;
        $line = "$1$v$4";
    }
    $line
} split /^/, $shipped;
like $ini, qr/^\[region \Q$default_region\E\][^\[]*^hosts = \Q${\ $us->hostport}\E/m,
  "the default region's host is the big cluster";
my %sets = map { my $k = $_; ($k => scalar(() = $shipped =~ /^\s*\Q$k\E\s*=/mg)) } keys %subst;
for my $k (sort keys %subst) {
    cmp_ok $sets{$k}, '>=', 1, "the shipped file sets $k";
    is $done{$k}, $sets{$k}, "substituted every $k of it";
}
my @orig = split /\n/, $shipped;
my @mine = split /\n/, $ini;
my @changed = grep { $orig[$_] ne $mine[$_] } 0 .. $#orig;
is scalar(@mine), scalar(@orig), 'the test file has the shipped file\'s lines';
is_deeply [sort map { $orig[$_] =~ /^\s*(\w+)/ ? $1 : '?' } @changed], [sort(map { ($_) x $sets{$_} } keys %subst)],
  'and differs only in the substituted settings';
write_file($proxy->config_path, $ini);

($rc, $out, $err) = run_cmd([$ENV{PGNEAR}, '--check', $proxy->config_path]);
is $rc, 0, 'pgnear --check accepts the file' or diag $err;
like $out, qr/pool_size 0 \(no limit\)/, '--check: no pool_size limit' or diag $out;

# The server starts one backend at a time: how fast it does here, directly,
# bounds the wait (a few seconds for 1,000 on a quiet machine; minutes where
# process creation is slow).  Measured before pgnear starts, which would
# see a server busy with others as slow.
my $sample = PgNearCrowd->new(host => '127.0.0.1', port => $us->port, user => 'app', database => 'movr',
                              password => 'app-secret', count => 100);
my $direct = $sample->login(deadline => 60);
is $direct->{ok}, 100, sprintf('directly, 100 sessions log in at once (%.1f s)', $direct->{seconds});
$sample->finish;
ok wait_until(sub { $us->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'") == 0 },
              timeout => 60, interval => 0.5), 'and their backends are gone';
my $deadline = 30 + 3 * $SESSIONS * $direct->{seconds} / 100;
$deadline = 600 if $deadline > 600;
note sprintf('%d sessions through pgnear get %.0f s (three times the direct pace)', $SESSIONS, $deadline);

# pgnear starts as a service usually does: soft limit 1024, hard as it is.
set_soft_nofile(1024);
my $started = eval { $proxy->start; 1 };
my $start_error = $@;
set_soft_nofile($hard0);
ok $started, 'pgnear starts with the shipped file' or BAIL_OUT("pgnear did not start: $start_error");
my ($psoft) = nofile($proxy->pid);
cmp_ok $psoft, '>=', $need, "pgnear raised its soft open-files limit from 1024 ($psoft)";

# The console over the Unix socket, as the OS user pgnear runs as (no admin_users in the file).
my $admin_ci = conninfo_string(host => $proxy->dir, port => $port, dbname => 'pgnear',
                               user => scalar getpwuid($>));
sub admin_rows {
    my ($sql) = @_;
    my $o = psql($admin_ci, $sql, args => ['-P', 'tuples_only=off', '-P', 'footer=off']);
    my @lines = split /\n/, $o;
    my @head = split /\|/, (shift(@lines) // ''), -1;
    return map { my %r; @r{@head} = split(/\|/, $_, -1); \%r } @lines;
}
my %config = map { $_->{setting} => $_->{value} } admin_rows('SHOW CONFIG');
is $config{$_}, $RELIES{$_}, "SHOW CONFIG: $_ = $RELIES{$_}" for sort keys %RELIES;
cmp_ok $config{max_client_conn}, '>', $SESSIONS, "SHOW CONFIG: max_client_conn above $SESSIONS";

# ---------------------------------------------------------------- kept connections reused
my $pid1 = psql($proxy->conninfo, 'SELECT pg_backend_pid()');
ok wait_until(sub { grep { $_->{pid} eq $pid1 && $_->{state} eq 'idle' } admin_rows('SHOW SERVERS') }, timeout => 10),
   'a client\'s server connection is kept when it leaves';
is psql($proxy->conninfo, 'SELECT pg_backend_pid()'), $pid1, 'and the next client gets it';

# ---------------------------------------------------------------- pgbench -c 30 -S
($rc, $out, $err) = pgbench(['-n', '-S', '-c', '30', '-j', '2', '-T', '5'], $proxy->conninfo(connect_timeout => 60), timeout => 120);
is $rc, 0, 'pgbench -c 30 -S -T 5 through pgnear' or diag "$out\n$err";
my $pb = parse_pgbench($out);
cmp_ok $pb->{processed} // 0, '>', 0, 'pgbench: transactions processed (' . ($pb->{processed} // 0) . ')';
is $pb->{failed} // 0, 0, 'pgbench: none failed';
unlike $err, qr/error|FATAL/i, 'pgbench: no error';

# ---------------------------------------------------------------- 1,000 sessions at once
my $crowd = PgNearCrowd->new(host => '127.0.0.1', port => $port, user => 'app', database => 'movr',
                             password => 'app-secret', count => $SESSIONS);
my $r = $crowd->login(deadline => $deadline);
my $errors = join(', ', map { "$_ x$r->{errors}{$_} ($r->{error_text}{$_})" } sort keys %{ $r->{errors} }) || 'none';
note sprintf('%d sessions: %d logged in, %d refused (%s), %d closed, %d not connected, %d still waiting, in %.1f s',
             $SESSIONS, $r->{ok}, $SESSIONS - $r->{ok} - $r->{eof} - $r->{pending} - $r->{failed}, $errors,
             $r->{eof}, $r->{failed}, $r->{pending}, $r->{seconds});
is $r->{ok}, $SESSIONS, "all $SESSIONS sessions of one user, database and region log in at once"
  or diag sprintf('%d logged in, refused: %s, %d closed, %d still waiting after %.0f s%s', $r->{ok}, $errors,
                  $r->{eof}, $r->{pending}, $r->{seconds}, $r->{failed_why} ? ", $r->{failed_why}" : '');

my $q = $crowd->query('SELECT pg_backend_pid()', deadline => 30);
is $q->{answered}, $r->{ok}, 'every session logged in answers a query while all are connected'
  or diag explain { errors => $q->{errors}, pending => $q->{pending} };
my %pids = map { $_ => 1 } @{ $q->{values} };
is scalar(keys %pids), $SESSIONS, "$SESSIONS backends of their own, as directly";
is $us->psql_admin('SELECT count(*) FROM pg_stat_activity WHERE pid IN (' . join(',', sort keys %pids) . ')'),
  $SESSIONS, "the server has them all";
my ($pool) = grep { $_->{database} eq 'movr' && $_->{user} eq 'app' } admin_rows('SHOW POOLS');
is $pool->{cl_active}, $SESSIONS, "SHOW POOLS: cl_active $SESSIONS";
is $pool->{cl_waiting}, 0, 'SHOW POOLS: nobody waits';
$crowd->finish;

ok wait_until(sub { !grep { $_->{user} eq 'app' } admin_rows('SHOW CLIENTS') }, timeout => 60, interval => 1),
  'the sessions end';

# What the burst left: its connections kept (unless a health check that
# timed out on this busy machine took the host down meanwhile: then they
# are closed as their clients leave, by design), and a new client served.
my @kept;
wait_until(sub { @kept = grep { $_->{state} eq 'idle' && $_->{user} eq 'app' } admin_rows('SHOW SERVERS') },
           timeout => 30, interval => 1);
note scalar(@kept) . " server connections kept after the $SESSIONS sessions left";
like psql($proxy->conninfo(connect_timeout => 120), 'SELECT pg_backend_pid()', timeout => 150), qr/^\d+$/,
     'a client after the burst is served';

ok $proxy->is_running, 'pgnear still running';
unlike $proxy->log_contents, qr/waiting for a server connection|(?:pool_size|max_db_connections) \(\d+\) reached/,
  'the log says nobody waited for a server connection';
$proxy->stop;
done_testing;
