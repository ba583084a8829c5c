# The MovR example steps shipped in conf/migrations/ (a copy of them), run
# end to end through the admin console on three regions, as README.md's
# "Schema migrations" shows, while clients of movr in every region keep
# writing to a table of their own through pgnear.  MIGRATE PLAN lists the
# four steps in each region with their transaction mode, pause flag and
# statement count; MIGRATE UP applies them all, region by region in
# migration order, with a NOTICE per statement and per step and those of
# the pause step; then each region has users, vehicles and rides (rides
# partitioned by list, one partition per region's cities and a default
# one), the BEGIN ATOMIC function, both CONCURRENTLY built indexes valid,
# the renamed column and the view keeping its old name; the history rows
# are applied, every statement done, with the files' checksums; rows
# written through pgnear land in the partition of their city.  MIGRATE
# DOWN TO 0 runs every down script, newest first, regions in reverse
# migration order, leaving no table and every row reverted; MIGRATE UP runs
# them all again; DOWN TO 2 and UP TO 3 move part of the way.  The clients
# see no error throughout.
use strict;
use warnings;
use File::Copy qw(copy);
use FindBin;
use JSON::PP ();
use lib "$FindBin::RealBin/../lib";
use Test::More;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use PgNearTest;

$SIG{PIPE} = 'IGNORE';

my $src = $ENV{PGNEAR_SRCDIR} // "$FindBin::RealBin/../..";
my $helper = migrations_helper();

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $uw = PgNearTest::Cluster->new(name => 'us-west');
my $eu = PgNearTest::Cluster->new(name => 'eu-west');
my %cluster = ('us-east' => $us, 'us-west' => $uw, 'eu-west' => $eu);
my @order = ('eu-west', 'us-east', 'us-west');
my @reverse = reverse @order;

my $auth_dir = PgNearTest::tmpdir(name => 'movr-auth');
write_file("$auth_dir/userlist.txt", qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n});

# The example steps, copied: the test never runs the source tree's files.
my $dir = PgNearTest::tmpdir(name => 'movr-steps');
opendir(my $dh, "$src/conf/migrations") or die "$src/conf/migrations: $!";
my @files = sort grep { /\.sql$/ } readdir $dh;
closedir $dh;
copy("$src/conf/migrations/$_", "$dir/$_") or die "copy $_: $!" for @files;
is_deeply \@files, [map { ("$_.down.sql", "$_.sql") }
                    qw(0001_users 0002_rides_by_city 0003_vehicle_indexes 0004_rename_credit_card)],
    'the four example steps, each with its down script';

# pgnear's view of the steps: version => [name, checksum, statements].
my ($hrc, $hout, $herr) = run_cmd([$helper, 'steps', $dir]);
die "print_migrations steps failed ($hrc): $herr" if $hrc != 0;
my %step = map { my @f = split /\|/; ($f[0] => [@f[1 .. 3]]) } split /\n/, $hout;
my @names = qw(users rides_by_city vehicle_indexes rename_credit_card);
is_deeply [map { "$_:$step{$_}[0]:$step{$_}[2]" } sort keys %step],
    ['1:users:2', '2:rides_by_city:7', '3:vehicle_indexes:2', '4:rename_credit_card:2'],
    '... their names and statement counts, as the loader splits them';

# The clients' own table, there before any step runs.
for my $c ($us, $uw, $eu) {
    $c->psql_admin('CREATE TABLE pings (region text NOT NULL, client int NOT NULL,'
                 . ' at timestamptz NOT NULL DEFAULT clock_timestamp())', dbname => 'movr');
}

my $p = PgNearTest::Proxy->new(regions => [$us, $uw, $eu],
    settings => { auth => 'passthrough', server_tls => 'disable', admin_users => 'admin',
                  auth_file => "$auth_dir/userlist.txt", health_check_interval => '1s', health_check_timeout => '5s',
                  migrations_dir => $dir, migrations_db => 'movr',
                  migration_order => 'eu-west, us-east', migration_hold_timeout => '10s' });
my $admin_ci = $p->conninfo(dbname => 'pgnear', user => 'admin', password => 'admin-secret');

sub admin { psql($admin_ci, @_) }
sub admin_full { psql($admin_ci, $_[0], verbose => 1, timeout => 180) }
sub rows { [map { [split /\|/, $_, -1] } split /\n/, admin($_[0])] }
sub in_region { $p->conninfo(options => "-c pgnear.region=$_[0]") }
sub q1 { $_[0]->psql_admin($_[1], dbname => 'movr') }

my $progress_re = qr/, statement \d+ of \d+ \(line \d+\), [\d.]+ s into the step$/;
sub all_notes { my @n = $_[0] =~ /NOTICE:\s+(?:00000: )?(.*)/g; \@n }
# The NOTICEs that say what was done, times as N.
sub notes { [map { s/\d+ ms/N ms/gr } grep { !/$progress_re/ } @{ all_notes($_[0]) }] }
# ... and those said as each statement starts: region/version/statement/line.
sub progress {
    [map { /^region "([^"]+)": step (\d+) \(\w+\), statement (\d+) of (\d+) \(line (\d+)\)/
           ? "$1/$2/$3of$4/$5" : $_ } grep { /$progress_re/ } @{ all_notes($_[0]) }]
}

# Many one-value queries in one psql (a psql per value cost most of this test's time):
# name => SQL, each value as psql -A prints it (format's %s: NULL as '', booleans as t/f).
sub facts {
    my ($c, %q) = @_;
    my $json = q1($c, 'SELECT json_build_object('
                    . join(', ', map { "'$_', format('%s', ($q{$_}))" } sort keys %q) . ')');
    return JSON::PP::decode_json($json);
}

# The history rows, as one value: a line "version|name|...|error" each.
my $history_sql = "SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s', version, name, checksum, state,"
                . " statements_done, statements_total, error), E'\\n' ORDER BY version)"
                . ' FROM pgnear_schema_history';
sub history_of { [split /\n/, $_[0]{history}] }

# ------------------------------------------------------------------ the client load

# A client of movr in a region, through pgnear, in a child process: a
# transaction at a time (BEGIN, INSERT, SELECT, COMMIT) on pings, until
# $stop exists (at most 240 s); writes how many it committed, its longest
# wait for an answer, and its errors.
sub wire_in {
    my ($region) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 60);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { options => "-c pgnear.region=$region" });
    die 'startup: ' . ($r->{error} ? $r->{error}{M} : 'no answer') . "\n" unless $r->{ok};
    return $w;
}

sub client_loop {
    my ($region, $file, $stop) = @_;
    my ($done, $longest, @errors) = (0, 0);
    my $w = eval { wire_in($region) };
    push @errors, "connect: $@" unless $w;
    my $deadline = time + 240;
    while ($w && !-e $stop && time < $deadline && @errors < 5) {
        for my $sql ('BEGIN', "INSERT INTO pings (region, client) VALUES ('$region', $$)",
                     "SELECT count(*) FROM pings WHERE client = $$", 'COMMIT') {
            my $t0 = time;
            my $q = eval { $w->query($sql) };
            my $took = time - $t0;
            $longest = $took if $took > $longest;
            if (!$q) { push @errors, "$sql: $@"; undef $w; last }
            if ($q->{error} || $q->{eof}) {
                push @errors, "$sql: " . ($q->{error} ? "$q->{error}{C} $q->{error}{M}" : 'connection closed');
                last;
            }
        }
        $done++ unless @errors;
        sleep 0.01;
    }
    $w->terminate if $w;
    write_file($file, join("\n", $done, sprintf('%.3f', $longest), @errors) . "\n");
}

my $load_n = 0;
sub start_load {
    my $stop = "$auth_dir/stop-" . ++$load_n;
    my @kids;
    for my $region (@order) {
        for my $i (1, 2) {
            my $file = "$auth_dir/load-$load_n-$region-$i";
            my $pid = fork // die "fork: $!";
            if ($pid == 0) { client_loop($region, $file, $stop); POSIX::_exit(0) }
            push @kids, { pid => $pid, file => $file, region => $region };
        }
    }
    return { stop => $stop, kids => \@kids };
}
sub load_count { my ($c) = @_; q1($c, 'SELECT count(*) FROM pings') }

# Stops the clients: [region, committed, longest wait, errors...] each.
sub stop_load {
    my ($load) = @_;
    write_file($load->{stop}, "stop\n");
    my @res;
    for my $k (@{ $load->{kids} }) {
        my $ended = wait_until(sub { waitpid($k->{pid}, WNOHANG) == $k->{pid} }, timeout => 90);
        kill 'KILL', $k->{pid} unless $ended;
        my @r = -e $k->{file} ? split(/\n/, slurp_file($k->{file})) : (0, 0, 'no result');
        push @res, [$k->{region}, @r];
    }
    return \@res;
}

sub check_load {
    my ($res, $what) = @_;
    is_deeply [map { "$_->[0]: " . join('; ', @$_[3 .. $#$_]) } grep { @$_ > 3 } @$res], [],
        "$what: the clients saw no error";
    is_deeply [map { $_->[0] } grep { $_->[1] > 0 } @$res], [map { ($_, $_) } @order],
        "$what: each of the six clients committed transactions";
    my ($longest) = sort { $b <=> $a } map { $_->[2] } @$res;
    my $total = 0;
    $total += $_->[1] for @$res;
    diag sprintf '%s: %d transactions by 6 clients, longest wait for an answer %.3f s',
        $what, $total, $longest;
}

# ------------------------------------------------------------------ the state of a region

my @partitions = qw(rides_elsewhere rides_eu_west rides_us_east rides_us_west);

# What of the example's schema a region has, in words: name => SQL.
my %schema_sql = (
    tables => "SELECT coalesce(string_agg(relname, ',' ORDER BY relname), '') FROM pg_class"
            . " WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'v')"
            . " AND relname NOT IN ('pings', 'pgnear_schema_history')",
    users_columns => "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute"
                   . " WHERE attrelid = to_regclass('users') AND attnum > 0 AND NOT attisdropped",
    function => "SELECT coalesce(to_regprocedure('city_revenue(text)')::text, 'none')",
    indexes => "SELECT coalesce(string_agg(c.relname || '=' || i.indisvalid, ','"
             . " ORDER BY c.relname), '') FROM pg_index i JOIN pg_class c"
             . " ON c.oid = i.indexrelid WHERE c.relname IN ('vehicles_owner_idx', 'users_name_idx')",
);
# ... and the details check_full looks at (to_regclass: '' rather than an error where missing).
my %full_sql = (
    partitioned => "SELECT partstrat::text || ' ' || pg_get_partkeydef(partrelid) FROM pg_partitioned_table"
                 . " WHERE partrelid = to_regclass('rides')",
    partitions => "SELECT string_agg(c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid), '; '"
                . " ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                . " WHERE i.inhparent = to_regclass('rides')",
    atomic => "SELECT prosqlbody IS NOT NULL FROM pg_proc WHERE oid = to_regprocedure('city_revenue(text)')",
    view => "SELECT pg_get_viewdef(to_regclass('users_v1')) LIKE '%payment_method AS credit_card%'",
);
sub schema_in { my ($f) = @_; return { map { ($_ => $f->{$_}) } keys %schema_sql } }
sub schema_of { schema_in(facts($_[0], %schema_sql)) }

# All that the checks below read of a region, and %more, in one psql (two where there is
# no history table yet, as after a MIGRATE UP that failed: then no history rows).
sub region_facts {
    my ($r, %more) = @_;
    my %q = (%schema_sql, %full_sql, %more);
    return eval { facts($cluster{$r}, %q, history => $history_sql) }
        // { %{ facts($cluster{$r}, %q) }, history => '' };
}

my %full = (
    tables => 'rides,' . join(',', @partitions) . ',users,users_v1,vehicles',
    users_columns => 'id,city,name,address,payment_method',
    function => 'city_revenue(text)',
    indexes => 'users_name_idx=true,vehicles_owner_idx=true',
);
my %none = (tables => '', users_columns => '', function => 'none', indexes => '');

sub check_full {
    my ($r, $f) = @_;
    $f //= region_facts($r);
    is_deeply schema_in($f), \%full,
        "$r: users, vehicles, rides with its partitions, users_v1, city_revenue, both indexes valid,"
      . ' users.payment_method';
    is $f->{partitioned}, 'l LIST (city)', "$r: rides is partitioned by list (city)";
    is $f->{partitions},
        "rides_elsewhere DEFAULT; rides_eu_west FOR VALUES IN ('amsterdam', 'paris', 'rome');"
      . " rides_us_east FOR VALUES IN ('new york', 'boston', 'washington dc');"
      . " rides_us_west FOR VALUES IN ('seattle', 'san francisco', 'los angeles')",
        "$r: ... its four partitions, one the default";
    is $f->{atomic}, 't', "$r: city_revenue has a SQL-standard body (BEGIN ATOMIC)";
    is $f->{view}, 't', "$r: users_v1 keeps the old column name";
}

sub check_history {
    my ($r, $states, $f) = @_;
    $f //= region_facts($r);
    is_deeply history_of($f),
        [map { my $v = $_; my $s = $states->[$v - 1];
               join '|', $v, $step{$v}[0], $step{$v}[1], $s, $step{$v}[2], $step{$v}[2], '' } 1 .. @$states],
        "$r: history rows " . join(',', @$states) . ', every statement done, the files\' checksums';
}

# ------------------------------------------------------------------ MIGRATE PLAN

is_deeply rows('SHOW MIGRATIONS'),
    [map { my $v = $_; map { [$v, $names[$v - 1], $_, 'pending', ('') x 5] } @order } 1 .. 4],
    'SHOW MIGRATIONS: the four steps pending in every region';
my @plan_rows = map { my $r = $_;
                      ([$r, 1, 'users', 'transaction', 'f', 2], [$r, 2, 'rides_by_city', 'transaction', 'f', 7],
                       [$r, 3, 'vehicle_indexes', 'no-transaction', 'f', 2],
                       [$r, 4, 'rename_credit_card', 'transaction', 't', 2]) } @order;
is_deeply rows('MIGRATE PLAN'), \@plan_rows,
    'MIGRATE PLAN: the four steps in each region, in migration order: mode, pause, statements';
is_deeply schema_of($_), \%none, $_->name . ': nothing ran' for $us, $uw, $eu;

# ------------------------------------------------------------------ MIGRATE UP under load

my $load = start_load();
ok wait_until(sub { load_count($eu) > 20 && load_count($us) > 20 && load_count($uw) > 20 }, timeout => 30),
    'six clients of movr, two in each region, commit through pgnear';
my $up_t0 = time;
my ($rc, $out, $err) = admin_full('MIGRATE UP');
my $up_took = time - $up_t0;
is $rc, 0, 'MIGRATE UP under the load succeeds' or diag $err;
is $out, 'MIGRATE', '... tag MIGRATE';
diag sprintf 'MIGRATE UP of the four steps in three regions: %.3f s', $up_took;

my @up_notes = map { my $r = $_; (
    "region \"$r\": step 1 (users) applied, 2 statements in N ms",
    "region \"$r\": step 2 (rides_by_city) applied, 7 statements in N ms",
    "region \"$r\": step 3 (vehicle_indexes) applied, 2 statements (no transaction) in N ms",
    "region \"$r\": step 4 (rename_credit_card) is a pause step: holding the sessions of database \"movr\" there",
    "region \"$r\": the sessions of database \"movr\" are held (N ms to close the gate)",
    "region \"$r\": step 4 (rename_credit_card) applied, 2 statements in N ms",
    "region \"$r\": the sessions of database \"movr\" go on, held N ms") } @order;
is_deeply notes($err), [@up_notes, 'the longest a pause step held its sessions: N ms'],
    '... NOTICEs: each step applied, region by region in migration order, the pause step holding and'
  . ' letting go, then the longest hold' or diag explain all_notes($err);
my %lines = (1 => [5, 14], 2 => [8, 19, 34, 36, 38, 40, 44], 3 => [8, 9], 4 => [8, 10]);
my @up_progress = map { my $r = $_; map { my $v = $_; my @l = @{ $lines{$v} };
                        map { "$r/$v/${_}of" . @l . "/$l[$_ - 1]" } 1 .. @l } 1 .. 4 } @order;
is_deeply progress($err), \@up_progress,
    '... and one as each statement starts, with its line (the function\'s BEGIN ATOMIC body one statement)';
my @held = $err =~ /the sessions of database "movr" go on, held (\d+) ms/g;
diag 'pause step held movr\'s sessions (ms): ' . join(', ', @held);

my $in_window = 0;
for my $r (@order) {
    # ... with the writes committed in the region while its steps ran.
    my $f = region_facts($r, window => "SELECT count(*) FROM pings WHERE at BETWEEN (SELECT min(started_at)"
                                     . " FROM pgnear_schema_history) AND (SELECT max(finished_at)"
                                     . " FROM pgnear_schema_history)");
    check_history($r, [('applied') x 4], $f);
    check_full($r, $f);
    my $n = $f->{window};
    cmp_ok $n, '>', 0, "$r: the clients committed while the steps ran there";
    note "$r: $n transactions committed between its first step's start and its last step's end";
}
my $show = rows('SHOW MIGRATIONS');
is_deeply [map { join '|', @$_[0 .. 4] } @$show],
    [map { my $v = $_; map { "$v|$names[$v - 1]|$_|applied|t" } @order } 1 .. 4],
    'SHOW MIGRATIONS: applied everywhere, checksum_ok t';
($rc, $out, $err) = admin_full('MIGRATE PLAN');
is "$rc|$out", '0|', 'MIGRATE PLAN: nothing left to run';
is scalar(grep { /has nothing to run/ } @{ all_notes($err) }), 3, '... a NOTICE for each region';

check_load(stop_load($load), 'during MIGRATE UP');

# ------------------------------------------------------------------ the schema in use, through pgnear

my %city = ('eu-west' => ['paris', 'rides_eu_west'], 'us-east' => ['boston', 'rides_us_east'],
            'us-west' => ['seattle', 'rides_us_west']);
for my $r (@order) {
    for my $cp ($city{$r}, ['tokyo', 'rides_elsewhere']) {
        my ($name, $part) = @$cp;
        ($rc, $out, $err) = psql(in_region($r),
            "WITH u AS (INSERT INTO users (city, name, payment_method) VALUES ('$name', 'Ana', 'visa')"
          . " RETURNING city, id), v AS (INSERT INTO vehicles (city, type, owner_id)"
          . " SELECT city, 'scooter', id FROM u RETURNING city, id)"
          . " INSERT INTO rides (city, vehicle_id, rider_id, revenue) SELECT v.city, v.id, u.id, 12.50"
          . " FROM u, v RETURNING tableoid::regclass", quiet => 1);
        is "$rc|$out", "0|$part", "$r: a ride in $name, written through pgnear, lands in $part" or diag $err;
    }
    is psql(in_region($r), "SELECT city_revenue('$city{$r}[0]') || ' ' || (SELECT credit_card"
                         . " FROM users_v1 WHERE city = '$city{$r}[0]')"), '12.50 visa',
        "$r: city_revenue and users_v1 answer";
}

# ------------------------------------------------------------------ MIGRATE DOWN TO 0, then UP

my %before = map { ($_ => load_count($cluster{$_})) } @order;
$load = start_load();
ok wait_until(sub { !grep { load_count($cluster{$_}) < $before{$_} + 20 } @order }, timeout => 30),
    'the six clients again, committing in every region';

($rc, $out, $err) = admin_full('MIGRATE DOWN TO 0');
is $rc, 0, 'MIGRATE DOWN TO 0 under the load succeeds' or diag $err;
is $out, 'MIGRATE', '... tag MIGRATE';
my @down_notes = map { my $r = $_; (
    "region \"$r\": step 4 (rename_credit_card) is a pause step: holding the sessions of database \"movr\" there",
    "region \"$r\": the sessions of database \"movr\" are held (N ms to close the gate)",
    "region \"$r\": step 4 (rename_credit_card) reverted, 2 statements in N ms",
    "region \"$r\": the sessions of database \"movr\" go on, held N ms",
    "region \"$r\": step 3 (vehicle_indexes) reverted, 2 statements (no transaction) in N ms",
    "region \"$r\": step 2 (rides_by_city) reverted, 3 statements in N ms",
    "region \"$r\": step 1 (users) reverted, 1 statement in N ms") } @reverse;
is_deeply notes($err), [@down_notes, 'the longest a pause step held its sessions: N ms'],
    '... newest first, regions in reverse migration order, the pause down script holding the sessions'
    or diag explain all_notes($err);
for my $r (@order) {
    my $f = region_facts($r);
    is_deeply schema_in($f), \%none, "$r: no table, view, function or index of the example left";
    check_history($r, [('reverted') x 4], $f);
}
is_deeply rows('MIGRATE PLAN'), \@plan_rows, 'MIGRATE PLAN: the four steps pending again everywhere';

($rc, $out, $err) = admin_full('MIGRATE UP');
is $rc, 0, 'MIGRATE UP again' or diag $err;
is_deeply notes($err), [@up_notes, 'the longest a pause step held its sessions: N ms'],
    '... runs the reverted steps anew, as the first time' or diag explain all_notes($err);
for my $r (@order) {
    my $f = region_facts($r, users => 'SELECT count(*) FROM users');
    check_full($r, $f);
    check_history($r, [('applied') x 4], $f);
    is $f->{users}, 0, "$r: users is a new, empty table";
}

# ------------------------------------------------------------------ part of the way: DOWN TO 2, UP TO 3

($rc, $out, $err) = admin_full('MIGRATE DOWN TO 2');
is $rc, 0, 'MIGRATE DOWN TO 2' or diag $err;
is_deeply [grep { /reverted/ } @{ notes($err) }],
    [map { ("region \"$_\": step 4 (rename_credit_card) reverted, 2 statements in N ms",
            "region \"$_\": step 3 (vehicle_indexes) reverted, 2 statements (no transaction) in N ms") } @reverse],
    '... steps 4 then 3, regions in reverse migration order';
for my $r (@order) {
    my $f = region_facts($r);
    is_deeply schema_in($f),
        { %full, tables => 'rides,' . join(',', @partitions) . ',users,vehicles',
          users_columns => 'id,city,name,address,credit_card', indexes => '' },
        "$r: tables and function kept; no index, no view, credit_card back";
    check_history($r, ['applied', 'applied', 'reverted', 'reverted'], $f);
}
is_deeply rows('MIGRATE PLAN'), [grep { $_->[1] >= 3 } @plan_rows], 'MIGRATE PLAN: steps 3 and 4 in each region';

($rc, $out, $err) = admin_full('MIGRATE UP TO 3');
is $rc, 0, 'MIGRATE UP TO 3' or diag $err;
is_deeply notes($err),
    [map { "region \"$_\": step 3 (vehicle_indexes) applied, 2 statements (no transaction) in N ms" } @order],
    '... step 3 in each region, in migration order';
for my $r (@order) {
    my $f = region_facts($r);
    is_deeply schema_in($f),
        { %full, tables => 'rides,' . join(',', @partitions) . ',users,vehicles',
          users_columns => 'id,city,name,address,credit_card' },
        "$r: both indexes valid again; step 4 not run";
    check_history($r, ['applied', 'applied', 'applied', 'reverted'], $f);
}

($rc, $out, $err) = admin_full('MIGRATE UP');
is $rc, 0, 'MIGRATE UP: the rest' or diag $err;
is_deeply [grep { /applied/ } @{ notes($err) }],
    [map { "region \"$_\": step 4 (rename_credit_card) applied, 2 statements in N ms" } @order],
    '... step 4 everywhere';
check_full($_) for @order;
is_deeply [map { join '|', @$_[0 .. 4] } @{ rows('SHOW MIGRATIONS') }],
    [map { my $v = $_; map { "$v|$names[$v - 1]|$_|applied|t" } @order } 1 .. 4],
    'SHOW MIGRATIONS: applied everywhere, checksum_ok t';

check_load(stop_load($load), 'during DOWN TO 0, UP, DOWN TO 2, UP TO 3, UP');
for my $r (@order) {
    is q1($cluster{$r}, "SELECT count(*) FROM pings WHERE region <> '$r'"), 0,
        "$r: its pings came from its own clients";
}
is $p->stop, 0, 'pgnear exits cleanly on SIGTERM';

done_testing();
