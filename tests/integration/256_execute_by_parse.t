# SQL's EXECUTE, PREPARE and DEALLOCATE sent by the extended protocol, as
# most drivers send every query (asyncpg's fetchval('EXECUTE foobar') after
# prepare('select 1', name='foobar')): a Parse whose text is "EXECUTE
# name" of a statement the client prepared by the protocol runs it as
# directly, named (Parse, Describe, Sync, then Bind, Execute, Sync, as
# asyncpg) or unnamed, with parameters, on connections that never parsed
# it, after the statement was closed (the server's 26000); one of a SQL
# PREPARE's statement, and PREPARE and DEALLOCATE themselves by Parse, run
# as directly too; and a Query's DEALLOCATE of a protocol-level statement,
# which pgnear answers itself, under `nearest` too (it hung there, the
# session waiting for a ReadyForQuery that never came).  Each case runs
# through pgnear and directly against the primary, and both must answer
# alike, step by step: under session and transaction pooling, and under
# target_session_attrs = nearest in both (a standby beside the primary),
# workers = 2, another client's transactions meanwhile moving the steps
# across connections.  node-postgres (a named query of "EXECUTE name")
# too, where it is present.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use Time::HiRes qw(time);
use PgNearTest;
use PgNearNearest;

$SIG{PIPE} = 'IGNORE';

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $eu = PgNearTest::Cluster->new_standby(primary => $us, name => 'eu-west');
$eu->wait_streaming;
my $auth_dir = tmpdir(name => 'execute-by-parse');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist, qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

sub login {
    my ($port) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret',
                        params => { options => $PgNearNearest::DUBLIN });
    die 'login failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n" unless $r->{ok};
    return $w;
}

# Extended-protocol messages by hand, one batch ending in Sync; what read_result makes of the answer.
sub ext {
    my ($w, @msgs) = @_;
    for my $m (@msgs) {
        my ($kind, @a) = @$m;
        if ($kind eq 'parse') { $w->send_msg('P', "$a[0]\0$a[1]\0" . pack('n', 0)) }
        elsif ($kind eq 'bind') {
            my @p = @a[1 .. $#a];
            $w->send_msg('B', "\0$a[0]\0" . pack('nn', 0, scalar @p)
                              . join('', map { pack('N', length $_) . $_ } @p) . pack('n', 0));
        }
        elsif ($kind eq 'exec') { $w->send_msg('E', "\0" . pack('N', 0)) }
        elsif ($kind eq 'describe') { $w->send_msg('D', "S$a[0]\0") }
        elsif ($kind eq 'close') { $w->send_msg('C', "S$a[0]\0") }
    }
    $w->send_msg('S', '');
    return $w->read_result;
}

# Parse and Describe of a statement ending in Flush, as asyncpg prepares: what came, up to its
# description (no ReadyForQuery: the batch stays open).
sub ext_flush {
    my ($w, $name, $text) = @_;
    $w->send_msg('P', "$name\0$text\0" . pack('n', 0));
    $w->send_msg('D', "S$name\0");
    $w->send_msg('H', '');
    my @types;
    while (my ($t, $m) = $w->read_msg) {
        push @types, $t eq 'E' ? 'error ' . PgNearTest::Wire::parse_fields($m)->{C} : $t;
        last if $t =~ /^[TnE]$/;
    }
    return join(' ', @types);
}

# What a client sees of an answer: its error's SQLSTATE, else its columns, rows and tags, and the status.
sub seen {
    my ($r) = @_;
    return 'eof' if $r->{eof};
    my $what = $r->{error} ? "error $r->{error}{C}"
             : join(',', @{ $r->{columns} }) . ': '
               . join(',', map { join('|', map { $_ // 'NULL' } @$_) } @{ $r->{rows} })
               . ' [' . join(',', @{ $r->{tags} }) . ']';
    return "$what status " . ($r->{status} // '?');
}

# The cases: each a list of steps on one client; every step's answer is compared.
my @CASES = (
    ['asyncpg: prepare(name=foobar), then fetchval(EXECUTE foobar)',
     [ext => [parse => 'foobar', 'select 1 AS one'], [describe => 'foobar']],
     [ext => [parse => '__s1', 'EXECUTE foobar'], [describe => '__s1']],
     [ext => [bind => '__s1'], ['exec']], [ext => [bind => '__s1'], ['exec']],
     [ext => [bind => '__s1'], ['exec']]],
    ['an unnamed Parse of EXECUTE, with parameters, and its Describe',
     [ext => [parse => 'add', 'select $1::int + $2::int AS sum']],
     [ext => [parse => '', 'EXECUTE add(40, 2)'], [describe => ''], [bind => ''], ['exec']],
     [ext => [parse => '', 'execute ADD (1, 1)'], [bind => ''], ['exec']],
     [ext => [parse => '', 'EXECUTE add($1, 3)'], [bind => '', '4'], ['exec']]],
    ['EXECUTE by Parse in a transaction block, and of a quoted name',
     [ext => [parse => 'Q"x', 'select 11']], [query => 'BEGIN'],
     [ext => [parse => '', 'EXECUTE "Q""x"'], [bind => ''], ['exec']], [query => 'COMMIT'],
     [ext => [parse => 'e', 'EXECUTE "Q""x"'], [bind => 'e'], ['exec']]],
    ['EXECUTE by Parse of a statement closed, and of one never made',
     [ext => [parse => 'gone', 'select 3']], [ext => [parse => 'ex', 'EXECUTE gone']],
     [ext => [bind => 'ex'], ['exec']], [ext => [close => 'gone']],
     [ext => [parse => '', 'EXECUTE gone'], [bind => ''], ['exec']],
     [ext => [parse => '', 'EXECUTE nosuch'], [bind => ''], ['exec']]],
    ['DEALLOCATE by Query of statements parsed by the protocol, asyncpg\'s Parse, Describe, Flush too',
     [ext => [parse => 'gone', 'select 3']], [query => 'DEALLOCATE gone'], [query => 'SELECT 1'],
     [ext => [parse => 'g2', 'select 3'], [describe => 'g2']], [query => 'DEALLOCATE g2'],
     [query => 'DEALLOCATE nosuch'], [flush => 'f1', 'select 7'], [query => 'DEALLOCATE f1'],
     [query => 'SELECT 3']],
    ['EXECUTE by Parse of a SQL PREPARE, and PREPARE and DEALLOCATE by Parse',
     [query => 'PREPARE sq AS select 5'],
     [ext => [parse => '', 'EXECUTE sq'], [bind => ''], ['exec']],
     [ext => [parse => '', 'PREPARE pp AS select 6'], [bind => ''], ['exec']],
     [query => 'EXECUTE pp'], [ext => [parse => '', 'EXECUTE pp'], [bind => ''], ['exec']],
     [ext => [parse => '', 'DEALLOCATE pp'], [bind => ''], ['exec']], [query => 'EXECUTE pp']],
);

sub run_case {
    my ($w, $steps, $between) = @_;
    my @seen;
    for my $step (@$steps) {
        my ($kind, @a) = @$step;
        $between->(scalar @seen) if $between;
        push @seen, $kind eq 'flush' ? ext_flush($w, @a)
                  : seen($kind eq 'query' ? $w->query($a[0]) : ext($w, @a));
    }
    return \@seen;
}

my %direct;
for my $c (@CASES) {
    my ($label, @steps) = @$c;
    my $w = login($us->port);
    $direct{$label} = run_case($w, \@steps);
    $w->terminate;
}

my $have_node = -d "$FindBin::RealBin/../node/node_modules/pg";

for my $near (0, 1) {
    for my $mode (qw(session transaction)) {
        my $started = time;
        my $p = PgNearTest::Proxy->new(
            regions  => nearest_regions($us, $eu),
            settings => { auth => 'scram', auth_file => $userlist, server_tls => 'disable',
                          pool_mode => $mode, pool_size => 4, workers => 2,
                          max_prepared_statements => 10, health_check_interval => '250ms',
                          target_session_attrs => $near ? 'nearest' : 'primary' });
        my $where = $near ? "nearest, $mode pooling" : "$mode pooling";
        # Each region's role known first: a login that needs a primary is not sent to the standby.
        $p->wait_healthy($started, $us, $eu);
        for my $c (@CASES) {
            my ($label, @steps) = @$c;
            my $w = login($p->port);
            # Another client holds a connection in a transaction now and then, so
            # that the steps run on connections that never saw the Parse.
            my $other = login($p->port);
            my $got = run_case($w, \@steps, sub {
                my ($i) = @_;
                $other->query($i % 2 ? 'COMMIT' : 'BEGIN');
                $other->query('SELECT 1') unless $i % 2;
            });
            is_deeply $got, $direct{$label}, "$where: $label: as directly"
              or diag explain { pgnear => $got, direct => $direct{$label} };
            $_->terminate for $w, $other;
        }
      SKIP: {
            skip 'node-postgres is not installed (scripts/install-deps.sh)', 1 unless $have_node;
            my ($rc, $out, $err) = run_cmd(['node', "$FindBin::RealBin/../node/execute_client.js",
                                            '--port', $p->port, '--options', $PgNearNearest::DUBLIN],
                                           timeout => 60);
            chomp $out;
            is $out, '1,1,1', "$where: node-postgres, a named query of EXECUTE foobar"
              or diag "rc=$rc $err";
        }
        $p->stop;
    }
}

done_testing;
