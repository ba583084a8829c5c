# target_session_attrs = nearest, and what a statement runs that its text
# does not call by a known name: pgnear runs a statement on a standby only
# when its database's catalog positively knows that what it names only
# reads (func_catalog.h).  Each case's function writes a row tagged with
# the case and catches the standby's refusal (EXCEPTION WHEN OTHERS), so
# that a standby would answer as if it worked and write nothing:
#   a function made directly on the primary (past pgnear) and called at
#   once, once the standby replayed it: within the catalog's refresh, so
#   only its unknown name has the catalog read again first;
#   a view whose target list calls it, and a view over that view;
#   an operator whose function calls it (CREATE OPERATOR ... FUNCTION);
#   a cast WITH FUNCTION of it, used as (x::text)::tagged;
#   a domain whose CHECK calls it, used as 'x'::logged_text;
#   a view made directly on the primary and read at once.
# Each must answer as on a direct connection to the primary and write
# exactly one row there (counted on the primary, by the simple and the
# extended protocol).  What stays near: a plain read of a table, a plain
# view, PostgreSQL's operators and casts, and a STABLE function made
# directly on the primary and called at once (the catalog read again, then
# the standby).  A name no catalog has (a function that does not exist) is
# PostgreSQL's own error, 42883, as directly.  Under pool_mode =
# transaction and session.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;
use PgNearNearest;

require_tool($_) for qw(psql pg_basebackup);

my $us = PgNearTest::Cluster->new(name => 'us-east');
$us->psql_admin(<<'SQL', dbname => 'movr');
CREATE TABLE visits (id serial, how text);
GRANT ALL ON visits, visits_id_seq TO app;
CREATE FUNCTION log_tag(how text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    INSERT INTO visits (how) VALUES (how);
  EXCEPTION WHEN OTHERS THEN
    RETURN 'not logged';
  END;
  RETURN 'logged';
END$$;
CREATE VIEW logged_view AS SELECT log_tag('view') AS r;
CREATE VIEW over_logged AS SELECT r || '!' AS r FROM logged_view;
CREATE FUNCTION log_eq(a int, b int) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM log_tag('operator'); RETURN a = b; END$$;
CREATE OPERATOR ~=~ (LEFTARG = int, RIGHTARG = int, FUNCTION = log_eq);
CREATE TYPE tagged AS (t text);
CREATE FUNCTION to_tagged(text) RETURNS tagged LANGUAGE plpgsql AS $$
BEGIN PERFORM log_tag('cast'); RETURN ROW($1)::tagged; END$$;
CREATE CAST (text AS tagged) WITH FUNCTION to_tagged(text);
CREATE FUNCTION check_logged(text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM log_tag('domain'); RETURN true; END$$;
CREATE DOMAIN logged_text AS text CHECK (check_logged(VALUE));
CREATE VIEW plain_view AS SELECT 1 AS one;
GRANT ALL ON ALL TABLES IN SCHEMA public TO app;
SQL
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
$eu->wait_streaming;

my $auth_dir = tmpdir(name => 'catalog-auth');
write_file("$auth_dir/userlist.txt", qq{"app" "} . $us->scram_verifier('app') . qq{"\n});
my $WORKERS = $ENV{PGNEAR_TEST_WORKERS} // 2;

sub proxy {
    my ($mode) = @_;
    return PgNearTest::Proxy->new(
        regions  => nearest_regions($us, $eu),
        settings => { auth => 'scram', auth_file => "$auth_dir/userlist.txt", server_tls => 'disable',
                      health_check_interval => '250ms', workers => $WORKERS, pool_mode => $mode,
                      target_session_attrs => 'nearest' });
}
sub direct {
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $us->port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    die "direct login failed\n" unless $r->{ok};
    return $w;
}
# The rows tagged how, counted on the primary.
sub rows_of { $us->psql_admin("SELECT count(*) FROM visits WHERE how = '$_[0]'", dbname => 'movr') }
# The answer of sql by Parse, Bind, Execute, Sync: its first value, or "SQLSTATE message".
sub extended {
    my ($w, $sql) = @_;
    $w->send_raw(ext_statement($sql) . sync_message());
    my $res = $w->read_result;
    return $res->{error} ? "$res->{error}{C} $res->{error}{M}" : $res->{rows}[0][0];
}
# Made directly on the primary; the standby replays it before the test goes on.
sub made_on_primary {
    my ($sql, $check) = @_;
    $us->psql_admin($sql, dbname => 'movr');
    ok wait_until(sub { $eu->psql_admin($check, dbname => 'movr') eq '1' }, timeout => 20),
      "... replayed by the standby";
}
sub same_as_directly {
    my ($mode, $d, $w, $name, $sql, $how, $run) = @_;
    $run //= \&one;
    my $before = rows_of($how);
    my $direct = $run->($d, $sql);
    is rows_of($how), $before + 1, "$mode: $name: directly on the primary, one row";
    ok wait_until(sub { where($w) eq 'eu-west' }, timeout => 10, interval => 0.05),
      "$mode: $name: the session reads near first";
    is $run->($w, $sql), $direct, "$mode: $name: through pgnear, the same answer ($direct)";
    is rows_of($how), $before + 2, "$mode: $name: ... and exactly one row more, on the primary";
}

my $n = 0;
for my $mode (qw(transaction session)) {
    my $p = proxy($mode);
    my $w = dublin_login($p->port);
    my $d = direct();
    is where($w), 'eu-west', "$mode: the Dublin session's first read runs on eu-west's standby";

    # Made past pgnear, called at once: its unknown name has the catalog read again first.
    $n++;
    made_on_primary("CREATE FUNCTION fresh_$n() RETURNS text LANGUAGE plpgsql AS"
                    . " \$\$BEGIN RETURN log_tag('fresh_$n'); END\$\$",
                    "SELECT count(*) FROM pg_proc WHERE proname = 'fresh_$n'");
    same_as_directly($mode, $d, $w, 'a function made directly on the primary, called at once',
                     "SELECT fresh_$n()", "fresh_$n");
    $n++;
    made_on_primary("CREATE FUNCTION fresh_$n() RETURNS text LANGUAGE plpgsql AS"
                    . " \$\$BEGIN RETURN log_tag('fresh_$n'); END\$\$",
                    "SELECT count(*) FROM pg_proc WHERE proname = 'fresh_$n'");
    same_as_directly($mode, $d, $w, '... by the extended protocol', "SELECT fresh_$n()", "fresh_$n",
                     \&extended);

    # Statements that call no writing function by name.
    same_as_directly($mode, $d, $w, 'a view whose target list calls it', 'SELECT r FROM logged_view', 'view');
    same_as_directly($mode, $d, $w, '... by the extended protocol', 'SELECT r FROM logged_view', 'view',
                     \&extended);
    same_as_directly($mode, $d, $w, 'a view over that view', 'SELECT * FROM public.over_logged', 'view');
    same_as_directly($mode, $d, $w, 'an operator whose function calls it', 'SELECT (1 ~=~ 1)::text',
                     'operator');
    same_as_directly($mode, $d, $w, 'a cast WITH FUNCTION of it', q{SELECT (('x'::text)::tagged)::text},
                     'cast');
    same_as_directly($mode, $d, $w, 'a domain whose CHECK calls it', q{SELECT 'x'::logged_text}, 'domain');
    $n++;
    made_on_primary("CREATE VIEW fresh_view_$n AS SELECT log_tag('fresh_view_$n') AS r;"
                    . " GRANT SELECT ON fresh_view_$n TO app",
                    "SELECT count(*) FROM pg_class WHERE relname = 'fresh_view_$n'");
    same_as_directly($mode, $d, $w, 'a view made directly on the primary, read at once',
                     "SELECT r FROM fresh_view_$n", "fresh_view_$n");

    # What stays near.
    for my $c (['SELECT count(*) >= 0 FROM visits', 't', 'a read of a table'],
               ['SELECT one FROM plain_view', 1, 'a plain view'],
               [q{SELECT ('1'::int + 2 * 3)::text || 'x' LIKE '7%'}, 't', q{PostgreSQL's operators and casts}]) {
        my ($sql, $want, $what) = @$c;
        ok wait_until(sub { where($w) eq 'eu-west' }, timeout => 10, interval => 0.05),
          "$mode: $what: the session reads near";
        is one($w, "SELECT ($sql)::text || '\@' || current_setting('cluster_name')"),
          ($want eq 't' ? 'true' : $want) . '@eu-west', "$mode: $what runs near";
    }
    $n++;
    made_on_primary("CREATE FUNCTION stable_$n(x int) RETURNS int LANGUAGE sql STABLE AS 'SELECT x + 1'",
                    "SELECT count(*) FROM pg_proc WHERE proname = 'stable_$n'");
    ok wait_until(sub { where($w) eq 'eu-west' }, timeout => 10, interval => 0.05),
      "$mode: the session reads near";
    is one($w, "SELECT stable_$n(1)::text || '\@' || current_setting('cluster_name')"), '2@eu-west',
      "$mode: a STABLE function made directly on the primary, called at once, runs near";
    is one($w, 'SELECT no_such_function_at_all(1)'), one($d, 'SELECT no_such_function_at_all(1)'),
      "$mode: a function that does not exist: PostgreSQL's own error, as directly";
    like one($w, 'SELECT no_such_function_at_all(1)'), qr/^42883 /, "$mode: ... 42883";

    $w->terminate;
    $d->terminate;
    $p->stop;
}

done_testing;
