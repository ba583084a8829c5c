# Settings follow the client under transaction pooling (txn_settings.h):
# a session-level SET, SET TIME ZONE, RESET or set_config(name, value,
# false) is recorded as the client's, as PostgreSQL applied it, and
# replayed on its next server connection instead of pinning it.
# pool_size = 1, two workers: two tenants of two schemas alternate on one
# server connection, each sees only its own table, 20 times each, as a
# direct connection does, the setting sent in the same write as the
# client's query; time zones and statement_timeout per client;
# a SET in a transaction that fails or rolls back is undone, SET LOCAL
# records nothing, RESET ALL and DISCARD ALL clear; a reported setting
# (application_name) reaches the client once, as directly, and never the
# other client; a named statement that sets, run in a later transaction
# than its Parse; a pipelined client; psycopg 3 with Django's connect-time
# settings pins nothing (the pins counter stays 0); what still pins
# (a custom setting, a temporary table, a role) still pins; a setting the
# next connection refuses ends the session with the server's words, the
# client's statement unrun; and the
# same over a TLS server connection.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IPC::Open2;
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : require_tool('python3');
system($python, '-c', 'import psycopg') == 0
  or BAIL_OUT('psycopg 3 is missing (scripts/install-deps.sh installs python3-psycopg)');

my $ca = PgNearTest::CA->new(name => 'txn-settings');
my $us = PgNearTest::Cluster->new(name => 'us-east', ca => $ca);
$us->psql_admin($_, dbname => 'movr') for
    'CREATE SCHEMA IF NOT EXISTS tenant_a', 'CREATE SCHEMA IF NOT EXISTS tenant_b',
    'CREATE TABLE tenant_a.items (who text)', 'CREATE TABLE tenant_b.items (who text)',
    q{INSERT INTO tenant_a.items VALUES ('a')}, q{INSERT INTO tenant_b.items VALUES ('b')},
    'GRANT USAGE ON SCHEMA tenant_a, tenant_b TO app',
    'GRANT SELECT ON tenant_a.items, tenant_b.items TO app';
my $auth_dir = tmpdir(name => 'txn-settings');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist,
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

sub proxy {
    PgNearTest::Proxy->new(regions => [$us], settings => {
        auth => 'scram', auth_file => $userlist, admin_users => 'admin', server_tls => 'disable',
        server_tls_ca_file => $ca->cert, pool_mode => 'transaction', pool_size => 1,
        workers => $ENV{PGNEAR_TEST_WORKERS} // 2, query_wait_timeout => '20s', @_ });
}

sub login_at {
    my ($port) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    die 'login failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n" unless $r->{ok};
    return wantarray ? ($w, $r) : $w;
}
sub one { my ($w, $sql) = @_; my $q = $w->query($sql); die "$sql: $q->{error}{M}\n" if $q->{error}; $q->{rows}[0][0] }

# Extended-protocol messages by hand, one batch ending in Sync (as 250_pool_transaction.t's).
sub ext {
    my ($w, @msgs) = @_;
    for my $m (@msgs) {
        my ($kind, @a) = @$m;
        if ($kind eq 'parse') { $w->send_msg('P', "$a[0]\0$a[1]\0" . pack('n', 0)) }
        elsif ($kind eq 'bind') { $w->send_msg('B', "\0$a[0]\0" . pack('nnn', 0, 0, 0)) }
        elsif ($kind eq 'exec') { $w->send_msg('E', "\0" . pack('N', 0)) }
    }
    $w->send_msg('S', '');
    return $w->read_result;
}

sub stat_value {
    my ($p, $name) = @_;
    my ($row) = grep { $_->{stat} eq $name } $p->admin_rows('SHOW STATS');
    return $row ? $row->{value} : undef;
}
# app's clients that are pinned (SHOW CLIENTS rows).
sub pinned_rows { grep { ($_->{user} // '') eq 'app' && ($_->{pinned} // '') ne '' } $_[0]->admin_rows('SHOW CLIENTS') }
sub pinned_clients { scalar pinned_rows($_[0]) }
# Why app's clients are pinned, once one's reason matches $want: what pins is
# known when the settings are read back, after the client has its
# ReadyForQuery, and a client that just left may still be listed.
sub pinned_why {
    my ($p, $want) = @_;
    my $why = '';
    wait_until(sub { ($why = join ', ', map { $_->{pinned} } pinned_rows($p)) =~ $want });
    $why;
}

# Two clients on one worker: pool_size = 1 there, so one server connection serves both.
sub same_connection {
    my ($p) = @_;
    my $a = login_at($p->port);
    my $pa = one($a, 'SELECT pg_backend_pid()');
    for (1 .. 20) {
        my $b = login_at($p->port);
        return ($a, $b) if one($b, 'SELECT pg_backend_pid()') eq $pa;
        $b->terminate;
    }
    die "no second client on the first one's worker\n";
}

# The same steps through pgnear (two clients) and directly (two connections): the answers alike.
sub tenants {
    my ($p, $label) = @_;
    my ($a, $b) = same_connection($p);
    my ($da, $db) = (scalar login_at($us->port), scalar login_at($us->port));
    for ([$a, $da, 'tenant_a'], [$b, $db, 'tenant_b']) {
        my ($w, $d, $schema) = @$_;
        ok !$w->query("SET search_path TO $schema")->{error}, "$label: $schema: SET search_path";
        $d->query("SET search_path TO $schema");
    }
    my ($pa, $pb, $bad) = (one($a, 'SELECT pg_backend_pid()'), one($b, 'SELECT pg_backend_pid()'), 0);
    is $pa, $pb, "$label: both run on the one server connection (pool_size = 1)";
    for my $i (1 .. 20) {
        for ([$a, $da, 'a'], [$b, $db, 'b']) {
            my ($w, $d, $who) = @$_;
            # B's every other one by the extended protocol (Parse, Bind, Execute, Sync).
            my $got = $who eq 'b' && $i % 2 == 0
                ? ext($w, [parse => '', 'SELECT who FROM items'], [bind => ''], ['exec'])->{rows}[0][0] // ''
                : one($w, 'SELECT who FROM items');
            $bad++ if $got ne one($d, 'SELECT who FROM items') || $got ne $who;
        }
    }
    is $bad, 0, "$label: 20 transactions each, alternating (simple and extended protocol): each sees its own schema's table every time, as directly";
    like $p->log_contents, qr/its 1 settings go to its server connection \d+, pipelined/,
         "$label: a search_path is applied in the same write as the client's query (no round trip)";
    is one($a, 'SHOW search_path'), 'tenant_a', "$label: A's search_path";
    is one($b, 'SHOW search_path'), 'tenant_b', "$label: B's search_path";
    is pinned_clients($p), 0, "$label: neither is pinned";
    is_deeply [sort map { $_->{settings} } grep { ($_->{user} // '') eq 'app' } $p->admin_rows('SHOW CLIENTS')],
              [1, 1], "$label: SHOW CLIENTS: each has 1 setting that follows it";
    $_->terminate for $a, $b, $da, $db;
}

# ================================================================ tenants, time zones, timeouts
{
    my $p = proxy();
    tenants($p, 'plain');
    is stat_value($p, 'txn_pins') // 0, 0, 'plain: the pins counter stays 0';

    my ($a, $b) = same_connection($p);
    $a->query(q{SET TIME ZONE 'Asia/Kolkata'});
    $b->query(q{SET TIME ZONE 'America/Los_Angeles'});
    for (1 .. 3) {
        like one($a, 'SELECT now()::text'), qr/\+05:30$/, "time zone: A's now() in +05:30 (round $_)";
        like one($b, 'SELECT now()::text'), qr/-0[78]$/, "time zone: B's now() in Los Angeles (round $_)";
    }

    # statement_timeout: A's 100ms never hits B.
    $a->query(q{SET statement_timeout = '100ms'});
    my $q = $a->query('SELECT pg_sleep(0.5)');
    is sqlstate($q->{error}), '57014', "statement_timeout: A's 100ms cancels its statement";
    $q = $b->query('SELECT pg_sleep(0.5)');
    ok !$q->{error}, "statement_timeout: B's statement runs out" or diag $q->{error}{M};
    $q = $a->query('SELECT pg_sleep(0.5)');
    is sqlstate($q->{error}), '57014', 'statement_timeout: and A is still under its own';
    $a->query('RESET statement_timeout');
    ok !$a->query('SELECT pg_sleep(0.2)')->{error}, 'statement_timeout: RESET lifts it';

    # A SET in a transaction that fails or rolls back is undone, as PostgreSQL does.
    $a->query('SET search_path TO tenant_a');
    $q = $a->query('BEGIN; SET search_path TO tenant_b; SELECT 1/0');
    is sqlstate($q->{error}), '22012', 'SET then an error: the error';
    $a->query('ROLLBACK');
    is one($a, 'SHOW search_path'), 'tenant_a', 'SET then an error: the SET is rolled back';
    $a->query('BEGIN'); $a->query('SET search_path TO tenant_b'); $a->query('ROLLBACK');
    is one($b, 'SHOW search_path'), '"$user", public', 'SET in a rolled-back block: B sees its own';
    is one($a, 'SHOW search_path'), 'tenant_a', 'SET in a rolled-back block: undone';
    $q = $a->query('SET search_path TO tenant_b; SELECT 1/0');
    is one($a, 'SHOW search_path'), 'tenant_a', 'SET and an error in one implicit transaction: undone';
    $a->query('BEGIN'); $a->query('SET search_path TO tenant_b'); $a->query('COMMIT');
    is one($a, 'SHOW search_path'), 'tenant_b', 'SET in a committed block: kept';
    $a->query('BEGIN'); $a->query(q{SET LOCAL work_mem = '9MB'}); $a->query('COMMIT');
    is one($b, 'SHOW work_mem'), '4MB', 'SET LOCAL: B sees nothing of it';
    is one($a, 'SHOW work_mem'), '4MB', 'SET LOCAL: recorded nothing';
    is one($a, q{SELECT set_config('work_mem', '5MB', false)}), '5MB', 'set_config(..., false)';
    is one($b, 'SHOW work_mem'), '4MB', 'set_config: B does not see it';
    is one($a, 'SHOW work_mem'), '5MB', 'set_config: A keeps it';
    $a->query('RESET ALL');
    is one($a, 'SHOW search_path'), '"$user", public', 'RESET ALL: the search_path as at login';
    is one($a, 'SHOW work_mem'), '4MB', 'RESET ALL: work_mem as at login';
    $a->query('SET SESSION search_path TO tenant_b');
    is one($a, 'SELECT who FROM items'), 'b', 'SET SESSION: followed';
    $a->query('DISCARD ALL');
    is one($a, 'SHOW search_path'), '"$user", public', 'DISCARD ALL: cleared';
    is one($b, 'SHOW TimeZone'), 'America/Los_Angeles', 'B kept its time zone all along';

    # A named statement that sets, run in a later transaction than its Parse: read back there too.
    ok !ext($a, [parse => 'setsp', 'SET search_path TO tenant_b'])->{error}, 'a named SET: parsed';
    is one($b, 'SELECT 2'), '2', 'a named SET: another transaction between';
    ok !ext($a, [bind => 'setsp'], ['exec'])->{error}, 'a named SET: run in a later transaction';
    is one($b, 'SHOW search_path'), '"$user", public', 'a named SET: B does not see it';
    is one($a, 'SELECT who FROM items'), 'b', 'a named SET: A keeps it';
    $a->query('RESET search_path');
    is one($a, 'SHOW search_path'), '"$user", public', 'a named SET: RESET';

    # A reported setting: the client hears it once, as directly; the other client never.
    my ($d) = scalar login_at($us->port);
    my %heard;
    for ([$a, 'pgnear'], [$d, 'direct']) {
        my ($w, $k) = @$_;
        my $r = $w->query(q{SET application_name = 'tenant-a-app'});
        $heard{$k} = [map { "$_->[0]=$_->[1]" } @{ $r->{parameters} // [] }];
        my @later;
        for (1 .. 3) { $w->query('SELECT 1'); $r = $w->query('SELECT 1'); push @later, @{ $r->{parameters} // [] } }
        $heard{"$k-later"} = scalar @later;
    }
    is_deeply $heard{pgnear}, $heard{direct}, 'application_name: the ParameterStatus the client hears, as directly';
    is $heard{'pgnear-later'}, 0, 'application_name: no ParameterStatus again as it moves between transactions';
    my $r = $b->query('SELECT current_setting(\'application_name\')');
    is_deeply $r->{parameters} // [], [], "application_name: B hears nothing of A's";
    isnt $r->{rows}[0][0], 'tenant-a-app', "application_name: B's is its own";
    is one($a, 'SHOW application_name'), 'tenant-a-app', "application_name: A's follows it";
    $d->terminate;

    # A pipelined client: its queries sent at once, each with its settings.
    $a->query('SET search_path TO tenant_a');
    $b->query('SET search_path TO tenant_b');
    $a->send_query('SELECT who FROM items') for 1 .. 3;
    $b->send_query('SELECT who FROM items') for 1 .. 3;
    my @got = ((map { $a->read_result->{rows}[0][0] } 1 .. 3), (map { $b->read_result->{rows}[0][0] } 1 .. 3));
    is "@got", 'a a a b b b', 'pipelined: each query with its own search_path';
    is pinned_clients($p), 0, 'none of this pinned anyone';
    is stat_value($p, 'txn_pins') // 0, 0, 'the pins counter stays 0';

    # What still pins.
    $a->query(q{SET myapp.tenant = 'a'});
    is one($a, 'SHOW myapp.tenant'), 'a', 'a custom setting: set';
    like pinned_why($p, qr/custom setting/), qr/custom setting/, 'a custom setting still pins';
    $a->terminate;
    ($a) = scalar login_at($p->port);
    $a->query('CREATE TEMP TABLE tt (x int)');
    like pinned_why($p, qr/temporary/), qr/temporary/, 'a temporary table still pins';
    $a->terminate;
    is one($b, 'SELECT who FROM items'), 'b', 'B runs on after the pinned client left';

    # A setting the next connection refuses: the session ends with the server's words, and
    # nothing of what the client sent runs without its settings.
    $us->psql_admin($_, dbname => 'movr') for
        'CREATE TEXT SEARCH CONFIGURATION public.txn_cfg (COPY = english)',
        'CREATE TABLE public.txn_marks (x int)', 'GRANT INSERT, SELECT ON public.txn_marks TO app';
    my $c = login_at($p->port);
    ok !$c->query(q{SET default_text_search_config = 'public.txn_cfg'})->{error}, 'refused later: set';
    is one($c, 'SHOW default_text_search_config'), 'public.txn_cfg', 'refused later: it follows the client';
    $us->psql_admin('DROP TEXT SEARCH CONFIGURATION public.txn_cfg', dbname => 'movr');
    $q = $c->query('INSERT INTO public.txn_marks VALUES (1)');
    is sqlstate($q->{error}), '22023', 'refused later: the client gets the server\'s error';
    like $q->{error}{M} // '', qr/^invalid value for parameter "default_text_search_config": "public.txn_cfg"$/,
         'refused later: in PostgreSQL\'s words';
    ok !$q->{status}, 'refused later: the session ends (FATAL)';
    is $us->psql_admin('SELECT count(*) FROM public.txn_marks', dbname => 'movr'), '0',
       'refused later: its INSERT never ran';
    is one($b, 'SELECT who FROM items'), 'b', 'refused later: the other client runs on';
    $us->psql_admin('CREATE ROLE txn_set_role');
    $us->psql_admin('GRANT txn_set_role TO app');
    $b->query(q{SELECT set_config('role', 'txn_set_role', false)});
    like pinned_why($p, qr/ROLE/), qr/ROLE/, 'set_config of role (SET ROLE): pins, read back';
    $b->terminate;
    $p->stop;
}

# ================================================================ psycopg 3 and Django's connect-time settings
{
    my $p = proxy();
    my $script = <<'PY';
import sys, psycopg
port = int(sys.argv[1])
conns = []
for i in range(4):
    c = psycopg.connect(host='127.0.0.1', port=port, user='app', password='app-secret', dbname='movr',
                        autocommit=True)
    c.execute("SET TIME ZONE 'UTC'")
    c.execute("SELECT set_config('search_path', %s, false)", ['tenant_a' if i % 2 == 0 else 'tenant_b'])
    c.execute(f"SET application_name TO 'django-{i}'")
    conns.append(c)
bad = 0
for n in range(10):
    for i, c in enumerate(conns):
        who = c.execute("SELECT who FROM items").fetchone()[0]
        tz = c.execute("SHOW TimeZone").fetchone()[0]
        if who != ('a' if i % 2 == 0 else 'b') or tz != 'UTC':
            bad += 1
print(bad)
sys.stdout.flush()
sys.stdin.readline()
PY
    write_file("$auth_dir/django.py", $script);
    my $pid = open2(my $out, my $in, $python, "$auth_dir/django.py", $p->port);
    my $bad = <$out>;
    chomp $bad if defined $bad;
    is $bad, '0', 'psycopg: 4 clients with connect-time settings, 40 transactions over pool_size = 1: every answer right';
    is pinned_clients($p), 0, 'psycopg: no client is pinned';
    is stat_value($p, 'txn_pins') // 0, 0, 'psycopg: the pins counter stays 0';
    print $in "stop\n";
    close $in;
    waitpid $pid, 0;
    $p->stop;
}

# ================================================================ over a TLS server connection
{
    my $p = proxy(server_tls => 'require');
    tenants($p, 'TLS server');
    $p->stop;
}

done_testing;
