# SQL's words for the protocol's named statements under transaction
# pooling (pool_mode = transaction, max_prepared_statements > 0): a
# statement a client prepared with a protocol Parse is let go of by
# DEALLOCATE, DEALLOCATE PREPARE (a quoted name too) and DEALLOCATE ALL
# before it ever ran, also where it was prepared with Parse, Describe and
# Flush, as asyncpg prepares, the batch still open; it is run by SQL
# EXECUTE, with and without parameters (too few: the server's 42601), a
# quoted name too, before it ever ran by the protocol and after, inside a
# transaction block, on connections that never parsed it, and in a
# failed transaction block gets the server's 25P02; an EXECUTE or
# DEALLOCATE of a name the client never made gets the server's 26000.
# Each case runs through pgnear and directly against PostgreSQL, and both
# must answer alike, step by step; with one worker and with two, another
# client's transactions meanwhile moving the steps across connections.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;

$SIG{PIPE} = 'IGNORE';

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $auth_dir = tmpdir(name => 'txn-prepared-sql');
my $userlist = "$auth_dir/userlist.txt";
write_file($userlist, qq{"app" "} . $us->scram_verifier('app') . qq{"\n});

sub login {
    my ($port) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $port, timeout => 30);
    my $r = $w->startup(user => 'app', database => 'movr', password => 'app-secret');
    die 'login failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n" unless $r->{ok};
    return $w;
}

# Extended-protocol messages by hand, one batch ending in Sync; what read_result makes of the answer.
sub ext {
    my ($w, @msgs) = @_;
    for my $m (@msgs) {
        my ($kind, @a) = @$m;
        if ($kind eq 'parse') { $w->send_msg('P', "$a[0]\0$a[1]\0" . pack('n', 0)) }
        elsif ($kind eq 'bind') { $w->send_msg('B', "\0$a[0]\0" . pack('nnn', 0, 0, 0)) }
        elsif ($kind eq 'exec') { $w->send_msg('E', "\0" . pack('N', 0)) }
        elsif ($kind eq 'describe') { $w->send_msg('D', "S$a[0]\0") }
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

# What a client sees of an answer: its error's SQLSTATE, else its rows and tags, and the status.
sub seen {
    my ($r) = @_;
    return 'eof' if $r->{eof};
    my $what = $r->{error} ? "error $r->{error}{C}"
             : join(',', map { join('|', map { $_ // 'NULL' } @$_) } @{ $r->{rows} }) . ' [' . join(',', @{ $r->{tags} }) . ']';
    return "$what status " . ($r->{status} // '?');
}

# The cases: each a list of steps on one client; every step's answer is compared.
# A step is [query => SQL] or [ext => messages...].
my @CASES = (
    ['DEALLOCATE of a statement parsed but never run (asyncpg)',
     [ext => [parse => 's1', 'select 1'], [describe => 's1']], [query => 'DEALLOCATE s1'],
     [ext => [bind => 's1'], ['exec']], [query => 'DEALLOCATE s1']],
    ['DEALLOCATE of a statement prepared with Parse, Describe and Flush (asyncpg), never run',
     [flush => 's1', 'select 1'], [query => 'DEALLOCATE s1'], [ext => [bind => 's1'], ['exec']],
     [flush => 's2', 'select 2'], [query => 'DEALLOCATE PREPARE s2'], [query => 'DEALLOCATE s2']],
    ['EXECUTE of a statement prepared with Parse, Describe and Flush',
     [flush => 'f1', 'select 7'], [query => 'EXECUTE f1'], [query => 'EXECUTE f1']],
    ['DEALLOCATE PREPARE of a quoted name, before it ran',
     [ext => [parse => 'My S', 'select 2']], [query => 'DEALLOCATE PREPARE "My S";'],
     [ext => [bind => 'My S'], ['exec']]],
    ['DEALLOCATE ALL of statements never run',
     [ext => [parse => 'a1', 'select 3']], [ext => [parse => 'a2', 'select 4']],
     [query => 'DEALLOCATE ALL'], [ext => [bind => 'a1'], ['exec']], [query => 'EXECUTE a2'],
     [ext => [parse => 'a1', 'select 5'], [bind => 'a1'], ['exec']]],
    ['EXECUTE of a statement parsed by the protocol, never run',
     [ext => [parse => 'e1', 'select 10 AS ten']], [query => 'EXECUTE e1'], [query => 'execute E1;'],
     [ext => [bind => 'e1'], ['exec']], [query => 'EXECUTE e1']],
    ['EXECUTE with parameters',
     [ext => [parse => 'e2', 'select $1::int + $2::int, $3::text']],
     [query => q{EXECUTE e2 (40, 2, 'it''s')}], [query => 'EXECUTE e2(1, 1, NULL)'],
     [query => 'EXECUTE e2(1)']],
    ['EXECUTE of a quoted name, in a transaction block',
     [ext => [parse => 'Q"x', 'select 11']], [query => 'BEGIN'], [query => 'EXECUTE "Q""x"'],
     [query => 'EXECUTE "Q""x"'], [query => 'COMMIT'], [query => 'DEALLOCATE PREPARE "Q""x"'],
     [query => 'EXECUTE "Q""x"']],
    ['EXECUTE and DEALLOCATE of names never made',
     [query => 'EXECUTE nosuch'], [query => 'DEALLOCATE nosuch'], [query => 'EXECUTE nosuch(1)']],
    ['EXECUTE in a failed transaction block',
     [ext => [parse => 'e3', 'select 12']], [query => 'BEGIN'], [query => 'SELECT 1/0'],
     [query => 'EXECUTE e3'], [query => 'ROLLBACK'], [query => 'EXECUTE e3']],
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
{
    for my $c (@CASES) {
        my ($label, @steps) = @$c;
        my $w = login($us->port);
        $direct{$label} = run_case($w, \@steps);
        $w->terminate;
    }
}

for my $workers (1, 2) {
    my $p = PgNearTest::Proxy->new(regions => [$us], settings => {
        auth => 'scram', auth_file => $userlist, server_tls => 'disable', pool_mode => 'transaction',
        pool_size => 2 * $workers, workers => $workers, max_prepared_statements => 10 });
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
        is_deeply $got, $direct{$label}, "workers = $workers: $label: as directly"
          or diag explain { pgnear => $got, direct => $direct{$label} };
        $_->terminate for $w, $other;
    }
    $p->stop;
}

done_testing;
