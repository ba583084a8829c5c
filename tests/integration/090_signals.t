# Signals: SIGHUP reloads the configuration without dropping sessions (and
# keeps the old one when the new one is broken, and says which settings need
# a restart); SIGTERM stops accepting and waits for sessions up to
# shutdown_timeout; SIGINT closes every session at once with 57P01.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use IO::Select;
use IO::Socket::IP;
use Time::HiRes qw(time sleep);
use PgNearTest;
use POSIX ();

$SIG{PIPE} = 'IGNORE';

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $eu = PgNearTest::Cluster->new(name => 'eu-west');
my %base = (auth => 'passthrough', server_tls => 'disable', client_login_timeout => '15s');

sub login {
    my ($p, %o) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => $o{timeout} // 10);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    die "login through pgnear failed: " . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n"
      unless $r->{ok};
    return $w;
}

sub cluster_of { my ($w) = @_; my $q = $w->query('SHOW cluster_name'); $q->{error} ? "error $q->{error}{C}" : $q->{rows}[0][0] }

# What the connection does next: {kind => msg|eof|reset|timeout, type, fields}
sub next_event {
    my ($w) = @_;
    my @m = eval { $w->read_msg };
    if ($@) { return { kind => $@ =~ /timed out/ ? 'timeout' : 'reset', why => $@ } }
    return { kind => 'eof' } unless @m;
    return { kind => 'msg', type => $m[0],
             fields => $m[0] =~ /^[EN]$/ ? PgNearTest::Wire::parse_fields($m[1]) : {} };
}

# Seconds between pgnear's log lines matching $from and "pgnear stopped": its own time to stop,
# without the exit after it (the sanitizers' leak check, seconds on a loaded machine).
sub stop_took {
    my ($p, $from) = @_;
    my $log = $p->log_contents;
    my ($a) = $log =~ /(\d\d:\d\d:\d\d\.\d+)[^\n]*$from/;    # text or JSON lines
    my ($b) = $log =~ /(\d\d:\d\d:\d\d\.\d+)[^\n]*pgnear stopped/;
    return undef unless defined $a && defined $b;
    my $secs = sub { my ($h, $m, $sec) = split /:/, $_[0]; $h * 3600 + $m * 60 + $sec };
    my $d = $secs->($b) - $secs->($a);
    return $d < 0 ? $d + 86400 : $d;
}

sub closed_ok { my ($ev, $name) = @_; ok $ev->{kind} eq 'eof' || $ev->{kind} eq 'reset', $name or diag explain $ev }

# A new connection while pgnear drains: refused, or an error / close at once.
# Never a connection that is accepted and left hanging.
sub new_connection_outcome {
    my ($port) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 3);
    return 'refused' unless $s;
    my $w = bless { sock => $s, timeout => 3, buf => '' }, 'PgNearTest::Wire';
    binmode $s;
    my $r = eval { $w->startup(user => 'app', database => 'movr', password => 'app-secret') };
    my $err = $@;
    close $s;
    return "hang ($err)" if !$r && $err =~ /timed out/;
    return 'reset' if !$r;
    return "error $r->{error}{C}" if $r->{error};
    return 'eof' if $r->{eof};
    return 'ok' if $r->{ok};
    return 'other';
}

# ==================================================================== SIGHUP

{
    my $p = PgNearTest::Proxy->new(regions => [$us, $eu], settings => { %base });
    my $w = login($p);
    is cluster_of($w), 'us-east', 'before reload: sessions land on the default region us-east';
    my $dbh = dbi_connect($p->conninfo);
    ok $dbh, 'DBD::Pg session through pgnear' or diag(DBI->errstr);
    is(($dbh->selectrow_array('SHOW cluster_name'))[0], 'us-east', 'DBD::Pg session on us-east');
    $dbh->do('BEGIN');
    $dbh->do('CREATE TEMP TABLE across_reload(x int)');
    $dbh->do('INSERT INTO across_reload VALUES (1)');

    # A reloadable change: default_region to the second region, and a short login timeout.
    my $off = $p->log_size;
    $p->update_config(settings => { default_region => 'eu-west', client_login_timeout => '2s' });
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded/, offset => $off), 'SIGHUP: "configuration reloaded" logged';
    unlike substr($p->log_contents, $off), qr/reload failed|restart/, 'no error and no restart warning';
    ok $p->is_running, 'pgnear is running after SIGHUP';

    is cluster_of($w), 'us-east', 'the open Wire session keeps working on its server across the reload';
    is $w->query('SELECT 20 + 1')->{rows}[0][0], 21, 'and runs queries';
    $dbh->do('INSERT INTO across_reload VALUES (2)');
    is(($dbh->selectrow_array('SELECT sum(x) FROM across_reload'))[0], 3,
       'the DBD::Pg transaction open across the reload goes on');
    ok $dbh->do('COMMIT'), 'and commits';
    is(($dbh->selectrow_array('SHOW cluster_name'))[0], 'us-east', 'the DBD::Pg session is still on us-east');

    is psql($p->conninfo, 'SHOW cluster_name'), 'eu-west', 'new sessions land on the new default region';
    like substr($p->log_contents, $off), qr/DEBUG c\d+: /,
      'the -v (debug) log level from the command line survives the reload';
    my $w2 = login($p);
    is cluster_of($w2), 'eu-west', 'a new Wire session too';

    # The new client_login_timeout (2s, was 15s) is in force for new connections.
    {
        my $s = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 8);
        my $t0 = time;
        my $ev = next_event($s);
        my $took = time - $t0;
        is $ev->{fields} && $ev->{fields}{C}, '57014', 'the reloaded client_login_timeout applies'
          or diag explain $ev;
        cmp_ok $took, '<', 5, 'after about 2 s, not the old 15 s';
        cmp_ok $took, '>', 1, 'but not at once';
        close $s->socket;
    }

    # Broken configurations: each logged as "reload failed", the old one stays.
    my $good = $p->config_text;
    my @broken = (
        ['an unparseable file', sub { PgNearTest::write_file($p->config_path, $good . "\n[pgnear\nthis is = not [an ini file\n") }],
        ['max_client_conn = 0', sub { $p->update_config(settings => { max_client_conn => 0 }) }],
        ['an unknown default_region', sub { $p->update_config(settings => { max_client_conn => undef, default_region => 'no-such-region' }) }],
        ['a region without hosts', sub {
             $p->update_config(settings => { default_region => 'eu-west' });
             PgNearTest::write_file($p->config_path, $p->config_text . "\n[region empty]\nlocation = 1, 1\nhosts =\n") }],
        ['a missing file', sub { unlink $p->config_path }],
    );
    for my $b (@broken) {
        my ($what, $break) = @$b;
        $off = $p->log_size;
        $break->();
        $p->signal('HUP');
        ok $p->wait_for_log(qr/reload failed/, offset => $off), "SIGHUP with $what: \"reload failed\" logged";
        unlike substr($p->log_contents, $off), qr/configuration reloaded/, "$what: nothing was reloaded";
        sleep 0.1;
        ok $p->is_running, "$what: pgnear keeps running";
        is cluster_of($w), 'us-east', "$what: the first session still works";
        is cluster_of($w2), 'eu-west', "$what: the second session still works";
        is(($dbh->selectrow_array('SELECT 7'))[0], 7, "$what: the DBD::Pg session still works");
        is psql($p->conninfo, 'SHOW cluster_name'), 'eu-west', "$what: new sessions follow the old (good) configuration";
        PgNearTest::write_file($p->config_path, $good);
    }

    # Restore a good file: reload works again.
    $p->update_config(settings => { max_client_conn => undef, default_region => 'us-east' });
    $off = $p->log_size;
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded/, offset => $off), 'a fixed config reloads again';
    is psql($p->conninfo, 'SHOW cluster_name'), 'us-east', 'and is in force';

    # listen_port needs a restart: logged, the old port stays.
    my $new_port = free_port();
    $off = $p->log_size;
    $p->update_config(settings => { listen_port => $new_port, default_region => 'eu-west' });
    $p->signal('HUP');
    ok $p->wait_for_log(qr/configuration reloaded/, offset => $off), 'reload with a new listen_port';
    like substr($p->log_contents, $off), qr/"listen_port" changed but takes effect only after a restart/,
      'the log says listen_port needs a restart';
    is psql($p->conninfo, 'SHOW cluster_name'), 'eu-west',
      'the old port still serves, with the other (reloadable) change in force';
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $new_port, Proto => 'tcp', Timeout => 2);
    ok !$s, 'nothing listens on the new port';
    is cluster_of($w), 'us-east', 'the first session survived all the reloads';
    $p->update_config(settings => { listen_port => $p->port });

    # Many reloads in a row while sessions work: nothing breaks.
    $off = $p->log_size;
    for my $i (1 .. 10) {
        $p->signal('HUP');
        sleep 0.02;
    }
    ok wait_until(sub { (() = substr($p->log_contents, $off) =~ /configuration reloaded/g) >= 1 }, timeout => 5),
      'a burst of SIGHUPs is handled';
    is cluster_of($w), 'us-east', 'the first session still works after a burst of reloads';
    is $w2->query('SELECT 3')->{rows}[0][0], 3, 'the second too';
    ok $p->is_running, 'pgnear is still running';

    $w->terminate;
    $w2->terminate;
    $dbh->disconnect;
    $p->stop(signal => 'INT');
}

# ==================================================================== SIGTERM, session ends

{
    my $p = PgNearTest::Proxy->new(regions => [$us], settings => { %base, shutdown_timeout => '10s' });
    my $w = login($p);
    is $w->query('SELECT 1')->{rows}[0][0], 1, 'SIGTERM: a session is open and idle';
    my $off = $p->log_size;
    $p->signal('TERM');
    ok $p->wait_for_log(qr/received SIGTERM/, offset => $off), 'SIGTERM is logged';
    sleep 0.2;
    ok $p->is_running, 'pgnear waits for the open session';

    my $t0 = time;
    my $outcome = new_connection_outcome($p->port);
    like $outcome, qr/^(refused|reset|eof|error \w+)$/,
      'a new connection is refused or gets an error, not left hanging';
    cmp_ok time - $t0, '<', 2.5, 'and is told at once';
    my $via_socket = eval {
        my $u = PgNearTest::Wire->connect(socket_dir => $p->socket_dir, port => $p->port, timeout => 3);
        my $r = $u->startup(user => 'app', database => 'movr');
        $r->{ok} ? 'ok' : $r->{error} ? "error $r->{error}{C}" : 'eof';
    } // "died: $@";
    unlike $via_socket, qr/^ok$|timed out/, 'a new Unix-socket connection is not accepted either';

    is $w->query('SELECT 2')->{rows}[0][0], 2, 'the open session can still run queries';
    is $w->query('SHOW cluster_name')->{rows}[0][0], 'us-east', 'and more queries';
    ok $p->is_running, 'pgnear still waits while the session lives';

    $t0 = time;
    $w->terminate;
    my $st = $p->wait_for_exit(timeout => 8);
    is $st, 0, 'pgnear exits with code 0 by itself once the session ends';
    cmp_ok time - $t0, '<', 3, 'shortly after the session ends (well before shutdown_timeout)';
    like $p->log_contents, qr/all sessions ended; shutting down/, 'the log says why it stopped';
}

# ==================================================================== SIGTERM, idle drain with no session

{
    my $p = PgNearTest::Proxy->new(regions => [$us], settings => { %base, shutdown_timeout => '10s' });
    is psql($p->conninfo, 'SELECT 1'), '1', 'SIGTERM without sessions: pgnear serves';
    my $t0 = time;
    $p->signal('TERM');
    is $p->wait_for_exit(timeout => 5), 0, 'SIGTERM with no session: exits 0';
    cmp_ok time - $t0, '<', 2, 'at once';
}

# ==================================================================== SIGTERM, session never ends

{
    my $p = PgNearTest::Proxy->new(regions => [$us], settings => { %base, shutdown_timeout => '2s' });
    my $busy = login($p);
    my $idle = login($p);
    my $idle_pid = $idle->{pid};
    $busy->send_msg('Q', "SELECT pg_sleep(30)\0");
    sleep 0.3;
    my $t0 = time;
    $p->signal('TERM');
    my $q = eval {
        my %r;
        for (1 .. 50) {
            my $ev = next_event($busy);
            if ($ev->{kind} ne 'msg') { $r{end} = $ev; last }
            $r{error} //= $ev->{fields} if $ev->{type} eq 'E';
        }
        \%r;
    };
    my $took = time - $t0;
    is $q->{error} && $q->{error}{C}, '57P01', 'shutdown_timeout: the busy session gets 57P01'
      or diag explain $q;
    like $q->{error} ? $q->{error}{M} : '', qr/terminating connection due to administrator command/,
      'with the administrator-command message';
    closed_ok($q->{end} // {}, 'then its connection closes');
    cmp_ok $took, '>=', 1.5, 'not before shutdown_timeout';
    cmp_ok $took, '<', 3.5, 'at shutdown_timeout (2 s)';

    my $ev = next_event($idle);
    is $ev->{fields} && $ev->{fields}{C}, '57P01', 'the idle session gets 57P01 too' or diag explain $ev;
    closed_ok(next_event($idle), 'and is closed');

    my $st = $p->wait_for_exit(timeout => 15);
    ok defined $st, 'pgnear exits';
    is $st, 0, 'with code 0';
    cmp_ok stop_took($p, 'received SIGTERM') // 99, '<', 3, 'within ~3 s of SIGTERM (its log)';
    like $p->log_contents, qr/shutdown timeout reached/, 'the log says the timeout was reached';

    # The server backend of the cut idle session does not linger.  (The busy
    # one ends when its pg_sleep does: PostgreSQL notices a gone client only
    # when it next talks to it.)
    ok wait_until(sub {
        $us->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE pid = $idle_pid") eq '0'
    }, timeout => 10), 'the server session behind the idle client ends';
}

# ==================================================================== SIGINT

{
    my $p = PgNearTest::Proxy->new(regions => [$us], settings => { %base, shutdown_timeout => '30s' });
    my $w  = login($p);
    my $w2 = login($p);
    is $w->query('SELECT 1')->{rows}[0][0], 1, 'SIGINT: sessions are open';
    $w2->send_msg('Q', "SELECT pg_sleep(30)\0");
    # and one connection still logging in (never sends anything)
    my $half = PgNearTest::Wire->connect(host => '127.0.0.1', port => $p->port, timeout => 5);
    sleep 0.3;
    my $t0 = time;
    $p->signal('INT');

    my $ev = next_event($w);
    is $ev->{kind} . ':' . ($ev->{type} // ''), 'msg:E', 'the idle session gets an ErrorResponse' or diag explain $ev;
    is $ev->{fields}{C}, '57P01', 'SQLSTATE 57P01';
    is $ev->{fields}{M}, 'terminating connection due to administrator command', 'the PostgreSQL message';
    is $ev->{fields}{S}, 'FATAL', 'severity FATAL';
    closed_ok(next_event($w), 'then the connection closes');

    my $err;
    for (1 .. 20) {
        my $e = next_event($w2);
        if ($e->{kind} ne 'msg') { closed_ok($e, 'the busy session is closed'); last }
        $err //= $e->{fields} if $e->{type} eq 'E';
    }
    is $err && $err->{C}, '57P01', 'the busy session gets 57P01';

    $ev = next_event($half);
    ok(($ev->{kind} eq 'msg' && $ev->{fields}{C} eq '57P01') || $ev->{kind} eq 'eof' || $ev->{kind} eq 'reset',
       'a connection still logging in is closed (57P01 or EOF)') or diag explain $ev;

    my $st = $p->wait_for_exit(timeout => 15);
    ok defined $st, 'pgnear exits';
    cmp_ok stop_took($p, 'received SIGINT') // 99, '<', 1.5, 'at once (not after shutdown_timeout; its log)';
    is $st, 0, 'with code 0';
    like $p->log_contents, qr/received SIGINT/, 'SIGINT is logged';
}

# ==================================================================== SIGHUP and the log file

# SIGHUP reopens the logfile, so a rotated file (renamed away) is let go and
# a fresh one created; a new logfile name takes effect at once.  Sessions
# running on several workers while the file changes lose nothing.
{
    my $p = PgNearTest::Proxy->new(regions => [$us], settings => { %base }, start => 0);
    my $a = $p->dir . '/a.log';
    my $b = $p->dir . '/b.log';
    $p->update_config(settings => { logfile => $a });
    $p->start;
    my $w = login($p);
    is cluster_of($w), 'us-east', 'logfile: a session through pgnear';
    my $alog = PgNearTest::log_as_text(PgNearTest::slurp_file($a));    # text, or JSON read as text
    like $alog, qr/^\S+ \S+ UTC LOG c\d+: login from 127\.0\.0\.1:\d+: user=app database=movr/m,
      'logfile: records go to the configured file, one per line';

    rename $a, "$a.1" or die "rename: $!";
    $p->signal('HUP');
    ok PgNearTest::wait_until(sub { -e $a && PgNearTest::slurp_file($a) =~ /configuration reloaded/ }, timeout => 10),
      'logfile rotated away + SIGHUP: a fresh file is created and carries "configuration reloaded"';
    my $w2 = login($p);
    $w2->terminate;
    like PgNearTest::slurp_file($a), qr/login from 127\.0\.0\.1:\d+: user=app/, '... and the next login is logged there';
    my $old = PgNearTest::slurp_file("$a.1");
    unlike $old, qr/configuration reloaded/, '... the rotated file got nothing after the reopen';

    $p->update_config(settings => { logfile => $b });
    $p->signal('HUP');
    ok PgNearTest::wait_until(sub { -e $b && PgNearTest::slurp_file($b) =~ /configuration reloaded/ }, timeout => 10),
      'a new logfile name in the configuration: SIGHUP switches to it';
    my $a_size = -s $a;
    my @ws = map { login($p) } 1 .. 4;
    is_deeply [map { cluster_of($_) } @ws], [('us-east') x 4], '... sessions after the switch work';
    $_->terminate for @ws;
    is -s $a, $a_size, '... and nothing more is written to the old file';
    is cluster_of($w), 'us-east', 'the session opened before both reopens still works';
    $w->terminate;
    ok $p->is_running, 'pgnear is running';
    $p->stop;
}

# ==================================================================== SIGHUP loads aside

# The new configuration loads on a thread of its own: while it loads
# (here, a city table that is a FIFO nobody has written yet) sessions are
# served, new ones accepted, and a second SIGHUP waits for the first.
{
    my $p = PgNearTest::Proxy->new(regions => [$us, $eu], settings => { %base, workers => 1 });
    my $w = login($p);
    my $fifo = $p->dir . '/cities.fifo';
    POSIX::mkfifo($fifo, 0600) or die "mkfifo: $!";
    my $off = $p->log_size;
    $p->update_config(settings => { cities_file => $fifo });
    $p->signal('HUP');
    sleep 0.5;
    is $w->query('SELECT 6 * 7')->{rows}[0][0], 42, 'while the new configuration loads, a session runs queries';
    my $w2 = eval { login($p) };
    ok $w2, '... and new sessions are accepted' or diag $@;
    is $w2 && cluster_of($w2), 'us-east', '... under the configuration in force';
    $p->signal('HUP');
    ok $p->wait_for_log(qr/a reload is already running; another one follows it/, offset => $off),
      'a second SIGHUP meanwhile waits for the first';
    unlike substr($p->log_contents, $off), qr/configuration reloaded/, 'nothing was swapped in yet';

    # Let the load finish; the reload after it reads the file again.
    $p->update_config(settings => { cities_file => undef, default_region => 'eu-west' });
    open my $fh, '>', $fifo or die "open fifo: $!";
    print $fh "name,country,lat,lon\nSeattle,US,47.6062,-122.3321\n";
    close $fh;
    ok PgNearTest::wait_until(sub { 2 <= (() = substr($p->log_contents, $off) =~ /configuration reloaded/g) },
                              timeout => 15), 'the first reload finishes, then the second';
    is cluster_of(login($p)), 'eu-west', 'new sessions follow the configuration of the second';
    is cluster_of($w), 'us-east', 'the session from before is where it was';
    $w->terminate;
    $w2->terminate if $w2;
    ok $p->is_running, 'pgnear is running';
    $p->stop;
}

done_testing;
