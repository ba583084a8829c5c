# What the relay learns about a server connection from the messages it
# forwards (protocol/tx_track.h), checked against a real PostgreSQL 15:
# raw protocol flows through pgnear — simple and extended queries,
# pipelined, transactions and errors, COPY IN in both protocols, ended by
# CopyDone, by CopyFail and by the server, from a client that waits for
# CopyInResponse and from one that does not — and, as the session ends,
# pgnear's debug log says the transaction status, the requests it still
# counted as outstanding, and whether the connection was at a safe point.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearTest;

my $pg = PgNearTest::Cluster->new(name => 'us-east');
$pg->psql_admin('CREATE TABLE t (i int); GRANT ALL ON t TO app; '
                . 'CREATE VIEW v AS SELECT i FROM t; GRANT ALL ON v TO app',
                dbname => $PgNearTest::APP_DB);
my $p = PgNearTest::Proxy->new(regions => [$pg], args => ['-v'],
                               settings => { auth => 'passthrough', server_tls => 'disable' });

# ---- messages ----

sub parse { my ($sql) = @_; return ('P', "\0$sql\0" . pack('n', 0)) }
sub bind_ { return ('B', "\0\0" . pack('nnn', 0, 0, 0)) }
sub describe { return ('D', "P\0") }
sub execute { return ('E', "\0" . pack('N', 0)) }
sub sync { return ('S', '') }
sub query { my ($sql) = @_; return ('Q', "$sql\0") }
sub copy_data { my ($rows) = @_; return ('d', $rows) }
sub copy_done { return ('c', '') }
sub copy_fail { return ('f', "client gave up\0") }

# An extended-protocol statement as libpq sends it: Parse/Bind/Describe/Execute/Sync.
sub extended { my ($sql) = @_; return (parse($sql), bind_(), describe(), execute(), sync()) }

sub send_all {
    my ($w, @msgs) = @_;
    my $bytes = '';
    while (my ($t, $m) = splice(@msgs, 0, 2)) { $bytes .= $t . pack('N', 4 + length $m) . $m }
    $w->send_raw($bytes);
}

# Reads until the message type $until has come $n times; returns the types seen, in order.
sub read_until {
    my ($w, $until, $n) = @_;
    my @types;
    while ($n > 0) {
        my ($t) = $w->read_msg;
        die "the server connection ended early (got @types)\n" unless defined $t;
        push @types, $t;
        $n-- if $t eq $until;
    }
    return join '', @types;
}

# ---- one session: the flow runs, the client leaves, pgnear says what it counted ----

sub session_end_state {
    my ($name, $flow) = @_;
    my $off = $p->log_size;
    my $w = PgNearTest::Wire->connect(port => $p->port);
    my $r = $w->startup(user => $PgNearTest::APP_USER, database => $PgNearTest::APP_DB,
                        password => $PgNearTest::APP_PASSWORD);
    BAIL_OUT("$name: no login through pgnear") unless $r->{ok};
    $flow->($w);
    {
        local $SIG{PIPE} = 'IGNORE';
        eval { send_all($w, 'X', '') }; # the server may have hung up already
    }
    close $w->socket;
    my $state = $p->wait_for_log(
        qr/server connection \d+ to \S+ closed \(\d+ bytes in, \d+ out; (status .*)\)/,
        offset => $off);
    ok defined $state, "$name: pgnear logs the server connection's end state"
      or diag $p->_log_from($off);
    return $state // '';
}

my $idle = 'status I, 0 requests outstanding, at a safe point';

is session_end_state('simple query', sub {
    my ($w) = @_;
    send_all($w, query('SELECT 1'));
    is read_until($w, 'Z', 1), 'TDCZ', 'simple query: one ReadyForQuery';
}), $idle, 'simple query: idle at the end';

is session_end_state('pipelined queries', sub {
    my ($w) = @_;
    send_all($w, query('SELECT 1'), query('SELECT 2; SELECT 3'), query('SELECT 4'));
    is read_until($w, 'Z', 3), 'TDCZTDCTDCZTDCZ', 'three Queries, one ReadyForQuery each';
}), $idle, 'pipelined queries: idle at the end';

is session_end_state('extended, pipelined', sub {
    my ($w) = @_;
    send_all($w, extended('SELECT 1'), extended('SELECT nonsense FROM nowhere'),
              parse('SELECT 2'), bind_(), execute(), sync(), sync());
    is read_until($w, 'Z', 4), '12TDCZEZ12DCZZ', 'four Syncs, four ReadyForQuery, an error among them';
}), $idle, 'extended, pipelined: idle at the end';

is session_end_state('batch without Sync', sub {
    my ($w) = @_;
    send_all($w, parse('SELECT 1'), bind_(), execute());
}), 'status I, 0 requests outstanding', 'a batch without its Sync is no safe point';

is session_end_state('open transaction', sub {
    my ($w) = @_;
    send_all($w, query('BEGIN'));
    read_until($w, 'Z', 1);
}), 'status T, 0 requests outstanding', 'inside a transaction: status T, no safe point';

is session_end_state('aborted transaction', sub {
    my ($w) = @_;
    send_all($w, query('BEGIN'), query('SELECT 1/0'));
    is read_until($w, 'Z', 2), 'CZEZ', 'the error inside the transaction';
}), 'status E, 0 requests outstanding', 'an aborted transaction: status E';

is session_end_state('transaction ended', sub {
    my ($w) = @_;
    send_all($w, query('BEGIN'), query('SELECT 1/0'), query('ROLLBACK'));
    read_until($w, 'Z', 3);
}), $idle, 'after ROLLBACK: idle again';

is session_end_state('client sends Z', sub {
    my ($w) = @_;
    send_all($w, query('BEGIN'));
    read_until($w, 'Z', 1);
    send_all($w, 'Z', 'I');      # a client's 'Z': the server rejects it and hangs up
    my @rest;
    while (my ($t) = $w->read_msg) { push @rest, $t }
    is join('', @rest), 'E', 'the server refuses the client\'s Z';
}), 'status T, 0 requests outstanding', 'a client\'s Z does not make the server idle';

is session_end_state('COPY, simple, CopyDone', sub {
    my ($w) = @_;
    send_all($w, query('COPY t FROM STDIN'));
    is read_until($w, 'G', 1), 'G', 'CopyInResponse';
    send_all($w, copy_data("1\n2\n"), copy_data("3\n"), copy_done());
    is read_until($w, 'Z', 1), 'CZ', 'one ReadyForQuery, for the Query';
}), $idle, 'simple COPY ended by CopyDone: idle';

is session_end_state('COPY, simple, CopyFail', sub {
    my ($w) = @_;
    send_all($w, query('COPY t FROM STDIN'));
    read_until($w, 'G', 1);
    send_all($w, copy_data("1\n"), copy_fail());
    is read_until($w, 'Z', 1), 'EZ', 'the COPY fails; one ReadyForQuery';
}), $idle, 'simple COPY ended by CopyFail: idle';

is session_end_state('COPY, simple, not waiting', sub {
    my ($w) = @_;
    send_all($w, query('COPY t FROM STDIN'), copy_data("4\n"), copy_done());
    is read_until($w, 'Z', 1), 'GCZ', 'data sent before the CopyInResponse';
}), $idle, 'simple COPY from a client that does not wait: idle';

# libpq's extended-protocol COPY: the Sync behind the Execute goes to the COPY.
is session_end_state('COPY, extended, CopyDone', sub {
    my ($w) = @_;
    send_all($w, extended('COPY t FROM STDIN'));
    is read_until($w, 'G', 1), '12nG', 'CopyInResponse after the Execute';
    # The server ignores a Sync inside COPY IN too.
    send_all($w, copy_data("5\n"), sync(), copy_data("6\n"), copy_done(), sync());
    is read_until($w, 'Z', 1), 'CZ', 'one ReadyForQuery for the three Syncs';
    send_all($w, query('SELECT 1'));
    is read_until($w, 'Z', 1), 'TDCZ', 'and no other: the next one answers the next Query';
}), $idle, 'extended COPY ended by CopyDone: idle';

is session_end_state('COPY, extended, CopyFail', sub {
    my ($w) = @_;
    send_all($w, extended('COPY t FROM STDIN'));
    read_until($w, 'G', 1);
    send_all($w, copy_data("6\n"), copy_fail(), sync());
    is read_until($w, 'Z', 1), 'EZ', 'the COPY fails; one ReadyForQuery';
}), $idle, 'extended COPY ended by CopyFail: idle';

is session_end_state('COPY, extended, bad data', sub {
    my ($w) = @_;
    send_all($w, extended('COPY t FROM STDIN'));
    read_until($w, 'G', 1);
    send_all($w, copy_data("7\nnot a number\n"));
    is read_until($w, 'E', 1), 'E', 'the server fails the COPY on its data';
    send_all($w, copy_done(), sync());
    is read_until($w, 'Z', 1), 'Z', 'one ReadyForQuery, for the Sync after CopyDone';
}), $idle, 'extended COPY failed by the server: idle';

# The one case the count cannot follow: the COPY fails before the Sync behind its Execute is read.
is session_end_state('COPY, extended, into a view', sub {
    my ($w) = @_;
    send_all($w, extended('COPY v FROM STDIN'));
    is read_until($w, 'Z', 1), '12nGEZ', 'the COPY fails at once; the Sync behind it is answered';
    send_all($w, copy_done(), sync());
    is read_until($w, 'Z', 1), 'Z', 'and so is the Sync after CopyDone';
}), 'status I, 0 requests outstanding, count not trusted',
   'a ReadyForQuery the count did not expect: never a safe point again';

done_testing();
