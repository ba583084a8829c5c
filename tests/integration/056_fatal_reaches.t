# A FATAL pgnear sends while a client waits for its answer reaches the
# client's driver whole, as PostgreSQL's own FATAL does, and the session
# then ends with a FIN, never a reset (runtime/linger.h):
#  - the pool's 53300 (transaction pooling, pool_size = 1, one client in a
#    transaction, another's SELECT past query_wait_timeout), the
#    transaction_timeout's 25P04 (a pg_sleep past it), and the admin's
#    KILL's 57P01 (a pg_sleep killed): each seen by psql (the SQLSTATE in
#    its verbose report), DBD::Pg (libpq: the FATAL's text; the SQLSTATE
#    of its result the same as a direct connection gives for PostgreSQL's
#    own 57P01, since libpq 14 drops the FATAL's result once it reads the
#    end of the connection) and node-postgres (the error's code), over
#    plain TCP and TLS (whose end is a close_notify: libpq says "SSL
#    connection has been closed unexpectedly", not an EOF without it),
#    under io_backend = epoll and io_uring;
#  - a client that sent more while it waited (its next Query, unread by
#    pgnear): it reads the 53300, then the end of the stream (EOF), where
#    a close over unread input sends a reset (ECONNRESET) that may lose
#    the error on its way (Windows drops what it had not read; Linux drops
#    what it had not sent yet).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IPC::Open2;
use IO::Select;
use PgNearTest;

$SIG{PIPE} = 'IGNORE';
my $PSQL = require_tool('psql');
my $NODE = require_tool('node');
my $SRCDIR = $ENV{PGNEAR_SRCDIR} // "$FindBin::RealBin/../..";
my $NODE_CLIENT = "$SRCDIR/tests/node/fatal_client.js";
die "056_fatal_reaches: $SRCDIR/tests/node/node_modules/pg is missing: scripts/install-deps.sh "
  . "installs it (npm ci in tests/node)\n" unless -d "$SRCDIR/tests/node/node_modules/pg";

my $ca = PgNearTest::CA->new;
my $cert = $ca->issue(name => 'pgnear', cn => 'localhost', san => ['DNS:localhost', 'IP:127.0.0.1'],
                      owner => undef);
my $us = PgNearTest::Cluster->new(name => 'us-east');
my $dir = tmpdir(name => 'fatal-reaches', mode => 0755);
my $userlist = "$dir/userlist.txt";
write_file($userlist,
    qq{"admin" "} . make_scram_verifier('admin-secret') . qq{"\n}
  . qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

# ---------------------------------------------------------------- the three clients
# Each logs in, then waits; ->(SQL) runs SQL and returns what its driver said.

my $seq = 0;
sub psql_client {
    my ($ci) = @_;
    my ($out, $err) = map { "$dir/psql-" . ++$seq . ".$_" } qw(out err);
    local $ENV{CI} = $ci;
    open(my $fh, '|-', "exec '$PSQL' -X -v VERBOSITY=verbose -d \"\$CI\" >'$out' 2>'$err'")
      or die "psql: $!";
    $fh->autoflush(1);
    print $fh "\\echo ready\n";
    wait_until(sub { -s $out && slurp_file($out) =~ /ready/ }, timeout => 30)
      or die 'psql did not log in: ' . slurp_file($err);
    return sub {
        print $fh "$_[0];\n";
        close $fh;
        return { text => slurp_file($err) };
    };
}

sub dbd_client {
    my ($ci) = @_;
    my $dbh = dbi_connect($ci) or die "DBD::Pg: $DBI::errstr";
    return sub {
        $dbh->do($_[0]);
        return { state => $dbh->state, text => $dbh->errstr // '' };
    };
}

sub node_client {
    my ($port, $tls) = @_;
    my $pid = open2(my $from, my $to, $NODE, $NODE_CLIENT, '--port', $port,
                    ($tls ? ('--ssl', '--ca', $ca->cert) : ()));
    my $ready = <$from> // '';
    die "node-postgres did not log in: $ready" unless $ready =~ /"ready":true/;
    return sub {
        print $to "$_[0]\n";
        close $to;
        my $line = <$from> // '{}';
        waitpid($pid, 0);
        return JSON::PP::decode_json($line);
    };
}

my %MAKE = (
    psql => sub { psql_client($_[0]->conninfo(sslmode => $_[1] ? 'require' : 'disable')) },
    'DBD::Pg' => sub { dbd_client($_[0]->conninfo(sslmode => $_[1] ? 'require' : 'disable')) },
    'node-postgres' => sub { node_client($_[0]->port, $_[1]) },
);
require JSON::PP;

# ---------------------------------------------------------------- a direct connection first
# PostgreSQL's own FATAL while the client waits (pg_terminate_backend of
# its pg_sleep): what each driver makes of it is the bar.

my %direct;
{
    my $direct = bless { ci => $us }, 'DirectServer';
    sub DirectServer::conninfo { my ($self, %o) = @_; $self->{ci}->conninfo(%o) }
    sub DirectServer::port { $_[0]{ci}->port }
    for my $kind (sort keys %MAKE) {
        my $run = $MAKE{$kind}->($direct, 0);
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            wait_until(sub {
                psql($us->conninfo, q{SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity }
                                  . q{WHERE query LIKE 'SELECT pg_sleep(8)%'}) eq '1' }, timeout => 10);
            exit 0;
        }
        $direct{$kind} = $run->('SELECT pg_sleep(8)');
        waitpid($pid, 0);
    }
    like $direct{psql}{text}, qr/FATAL:  57P01: terminating connection due to administrator command/,
        'direct: psql shows PostgreSQL\'s 57P01 with its SQLSTATE';
    is $direct{'node-postgres'}{code}, '57P01', 'direct: node-postgres gets code 57P01';
    like $direct{'DBD::Pg'}{text}, qr/FATAL:  terminating connection due to administrator command/,
        'direct: DBD::Pg gets the FATAL\'s text';
    note "direct: DBD::Pg's state after PostgreSQL's FATAL: $direct{'DBD::Pg'}{state}";
}

# ---------------------------------------------------------------- through pgnear

sub proxy {
    my ($io, %s) = @_;
    return PgNearTest::Proxy->new(regions => [$us], settings => {
        auth => 'scram', auth_file => $userlist, admin_users => 'admin', server_tls => 'disable',
        io_backend => $io, client_tls => 'allow',
        client_tls_cert_file => $cert->{cert}, client_tls_key_file => $cert->{key}, %s });
}

sub check {
    my ($what, $kind, $tls, $got, $code, $message) = @_;
    my $label = "$what, $kind" . ($tls ? ', TLS' : '');
    if ($kind eq 'psql') {
        like $got->{text}, qr/FATAL:  \Q$code\E: \Q$message\E/, "$label: psql shows the FATAL with its SQLSTATE"
          or diag $got->{text};
        my $end = $tls ? qr/SSL connection has been closed unexpectedly/
                       : qr/server closed the connection unexpectedly/;
        like $got->{text}, $end, "$label: then the end, as after PostgreSQL's own"
          . ($tls ? ' (a close_notify)' : '');
    } elsif ($kind eq 'DBD::Pg') {
        like $got->{text}, qr/FATAL:  \Q$message\E/, "$label: DBD::Pg gets the FATAL's text" or diag $got->{text};
        is $got->{state}, $direct{'DBD::Pg'}{state}, "$label: DBD::Pg's state as after PostgreSQL's own FATAL";
    } else {
        is $got->{code}, $code, "$label: node-postgres gets code $code" or diag explain $got;
        is $got->{severity}, 'FATAL', "$label: severity FATAL";
    }
}

for my $io (qw(epoll io_uring)) {
    # One worker where one pool slot is the case; two for the timeout.
    my $pt = proxy($io, pool_mode => 'transaction', pool_size => 1, query_wait_timeout => '1s',
                   workers => 1);
    my $ps = proxy($io, pool_mode => 'session', transaction_timeout => '1s', workers => 2);
    for my $tls (0, 1) {
        for my $kind (sort keys %MAKE) {
            # 53300: the only connection held in a transaction; the client's SELECT waits past 1 s.
            my $run = $MAKE{$kind}->($pt, $tls);
            my $holder = dbi_connect($pt->conninfo) or die $DBI::errstr;
            $holder->do('BEGIN');
            check("$io, 53300", $kind, $tls, $run->('SELECT 1'), '53300',
                  'no server connection free for database "movr", user "app"');
            $holder->do('COMMIT');
            $holder->disconnect;

            # 25P04: transaction_timeout ends the session in its pg_sleep.
            $run = $MAKE{$kind}->($ps, $tls);
            check("$io, 25P04", $kind, $tls, $run->('SELECT pg_sleep(8)'), '25P04',
                  'terminating connection due to transaction timeout');

            # 57P01: the admin console's KILL while the client waits for its pg_sleep.
            $run = $MAKE{$kind}->($pt, $tls);
            my $pid = fork // die "fork: $!";
            if ($pid == 0) {
                my $id;
                wait_until(sub {
                    ($id) = sort { $b <=> $a } map { $_->{id} } grep { ($_->{user} // '') eq 'app' }
                      $pt->admin_rows('SHOW CLIENTS');
                    defined $id && psql($us->conninfo, q{SELECT count(*) FROM pg_stat_activity }
                                      . q{WHERE query LIKE 'SELECT pg_sleep(6)%'}) eq '1' }, timeout => 10);
                $pt->admin_rows("KILL $id") if defined $id;
                exit 0;
            }
            check("$io, KILL's 57P01", $kind, $tls, $run->('SELECT pg_sleep(6)'), '57P01',
                  'terminating connection due to administrator command');
            waitpid($pid, 0);
        }
    }

    # A client that sent its next Query while it waited: the 53300, then EOF, not a reset.
    my @w = map {
        my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $pt->port, timeout => 10);
        $w->startup(user => 'app', database => 'movr', password => 'app-secret')->{ok} or die "login\n";
        $w
    } 1 .. 2;
    $w[0]->query('BEGIN');
    $w[1]->send_query('SELECT 1');
    ok wait_until(sub { grep { ($_->{state} // '') eq 'waiting' } $pt->admin_rows('SHOW CLIENTS') }, timeout => 10),
        "$io: the client waits for the full pool";
    $w[1]->send_query('SELECT 2') for 1 .. 3;    # pgnear reads no more of it while it waits
    my ($type, $payload) = $w[1]->read_msg;
    is $type && PgNearTest::Wire::parse_fields($payload)->{C}, '53300', "$io: the waiting client gets 53300";
    ok(IO::Select->new($w[1]->socket)->can_read(10), "$io: then the end of its stream");
    my $n = sysread($w[1]->socket, my $buf, 64);
    is defined $n ? "$n bytes" : "error: $!", '0 bytes', "$io: an EOF (a FIN), not a reset";
    $w[0]->query('COMMIT');
    $_->terminate for @w;
    $pt->stop;
    $ps->stop;
}

done_testing;
