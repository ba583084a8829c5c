# The list-append history checker (tests/lib/PgNearHistory.pm) on
# hand-made histories: each kind of violation found in a history made to
# have it (monotonic reads apart from those from a standby to a primary), with the operations that show it, and counted but not failed
# where the session's need does not promise it; clean histories (one
# session, several sessions interleaved, a failed append nobody saw, an
# unknown one seen or not) pass with no violation.  No server is started.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use PgNearHistory qw(check describe);

my $ALL = { map { $_ => [qw(ryw monotonic-reads monotonic-reads-primary monotonic-writes writes-follow-reads
                             long-fork)] }
            qw(nearest read-write) };

# Operations from short specs: [session, 'a', key, value, outcome?] appends one value;
# [session, 'r', {key => [values]}] reads; each a millisecond after the one before.
sub history {
    my @ops;
    my $t = 0;
    for my $s (@_) {
        my ($session, $what, @rest) = @$s;
        my $op = { id => scalar @ops, session => $session, need => 'nearest', invoke => $t, complete => $t + 0.001,
                   server => 'eu-west-1', outcome => 'ok' };
        if ($what eq 'a') { $op->{append} = [[ $rest[0], $rest[1] ]]; $op->{outcome} = $rest[2] if $rest[2] }
        else              { $op->{read} = $rest[0]; $op->{standby} = 1 }
        @$op{qw(server standby)} = ('us-east', 0) if $rest[-1] eq 'primary';
        $op->{need} = $rest[-1] if !ref $rest[-1] && $rest[-1] =~ /^(read-only|read-write)$/;
        push @ops, $op;
        $t += 0.002;
    }
    return \@ops;
}

sub kinds {
    my ($v) = @_;
    return join ',', map { "$_=$v->{count}{$_}" } grep { $v->{count}{$_} } sort keys %{ $v->{count} };
}

# Clean histories.
{
    my $h = history([s1 => a => 1, 10], [s1 => r => { 1 => [10], 2 => [] }], [s1 => a => 2, 11],
                    [s1 => r => { 1 => [10], 2 => [11] }]);
    my $v = check($h, { 1 => [10], 2 => [11] }, promises => $ALL);
    is kinds($v), '', 'one session appending and reading: clean';
    is scalar @{ $v->{failing} }, 0, '... nothing failing';
    is $v->{operations}, 4, '... four operations';
    ok abs($v->{longest_wait}{s1} - 0.001) < 1e-9, '... its longest wait is an operation\'s';
}
{
    my $h = history([s1 => a => 1, 10], [s2 => a => 1, 20], [s2 => r => { 1 => [10, 20] }],
                    [s1 => r => { 1 => [10, 20] }], [s3 => r => { 1 => [10] }], [s3 => r => { 1 => [10, 20] }],
                    [s2 => a => 1, 21, 'failed'], [s1 => a => 1, 12, 'unknown'], [s3 => a => 1, 30, 'unknown'],
                    [s3 => r => { 1 => [10, 20, 12] }]);
    my $v = check($h, { 1 => [10, 20, 12] }, promises => $ALL);
    is kinds($v), '', 'three sessions, a failed append nobody saw, unknown appends one seen and one not: clean';
}

# Each kind, in a history made to have it.
my @cases = (
    [lost => [[s1 => a => 1, 10], [s1 => a => 1, 11]], { 1 => [10] }, qr/append of 11 to key 1 missing/],
    [duplicated => [[s1 => a => 1, 10]], { 1 => [10, 10] }, qr/value 10 twice/],
    [duplicated => [[s1 => a => 1, 10], [s1 => r => { 1 => [10, 10] }]], { 1 => [10] }, qr/shows 10 twice/],
    ['aborted-read' => [[s1 => a => 1, 10, 'failed'], [s2 => r => { 1 => [10] }]], { 1 => [] },
     qr/shows 10, whose append failed/],
    ['aborted-read' => [[s2 => r => { 1 => [99] }]], { 1 => [] }, qr/shows 99, which no operation appended/],
    ['incompatible-order' => [[s1 => a => 1, 10], [s2 => a => 1, 11], [s3 => r => { 1 => [11] }]],
     { 1 => [10, 11] }, qr/differs from the final state at index 0/],
    [ryw => [[s1 => a => 1, 10], [s1 => a => 1, 11], [s1 => r => { 1 => [10] }]], { 1 => [10, 11] },
     qr/misses 11, which the session appended before/],
    ['monotonic-reads' => [[s1 => a => 1, 10], [s1 => a => 1, 11], [s2 => r => { 1 => [10, 11] }],
                           [s2 => r => { 1 => [10] }]], { 1 => [10, 11] }, qr/read on eu-west-1 as 1 values after 2/],
    ['monotonic-reads-primary' => [[s1 => a => 1, 10], [s1 => a => 1, 11], [s2 => r => { 1 => [10, 11] }],
                                   [s2 => r => { 1 => [10] }, 'primary']], { 1 => [10, 11] },
     qr/read on us-east as 1 values after 2 values read on eu-west-1/],
    ['monotonic-writes' => [[s1 => a => 1, 10], [s1 => a => 1, 11]], { 1 => [11, 10] },
     qr/append of 11 to key 1 is before 10/],
    ['monotonic-writes' => [[s1 => a => 1, 10], [s1 => a => 2, 20], [s2 => r => { 1 => [], 2 => [20] }]],
     { 1 => [10], 2 => [20] }, qr/shows 20 in key 2 but not 10 in key 1/],
    ['writes-follow-reads' => [[s1 => a => 1, 10], [s2 => r => { 1 => [10] }], [s2 => a => 2, 20],
                               [s3 => r => { 1 => [], 2 => [20] }]], { 1 => [10], 2 => [20] },
     qr/shows 20 in key 2 but not 10 in key 1, which the session of that append had read before/],
    ['long-fork' => [[s1 => a => 1, 10], [s2 => a => 2, 20], [s3 => r => { 1 => [10], 2 => [] }],
                     [s4 => r => { 1 => [], 2 => [20] }]], { 1 => [10], 2 => [20] }, qr/key 1: .*key 2: /],
);
for my $c (@cases) {
    my ($kind, $spec, $final, $msg) = @$c;
    my $v = check(history(@$spec), $final, promises => $ALL);
    is kinds($v), "$kind=1", "$kind found once";
    my ($one) = @{ $v->{violations} };
    like describe($one), $msg, "... described: " . (split /\n/, describe($one))[0];
    ok @{ $one->{ops} } >= 1, '... with the operations that show it (' . scalar(@{ $one->{ops} }) . ')';
    is scalar @{ $v->{failing} }, 1, '... failing where promised';
}

# Promises: counted everywhere, failed only where the need promises the kind.
{
    my $spec = [[s1 => a => 1, 10], [s1 => a => 1, 11], [s2 => r => { 1 => [10, 11] }], [s2 => r => { 1 => [10] }]];
    my $v = check(history(@$spec), { 1 => [10, 11] }, promises => { nearest => ['ryw'] });
    is $v->{count}{'monotonic-reads'}, 1, 'monotonic reads not promised: counted';
    is scalar @{ $v->{failing} }, 0, '... not failing';
    my $lost = check(history([s1 => a => 1, 10]), { 1 => [] }, promises => {});
    is scalar @{ $lost->{failing} }, 1, 'a lost write fails whatever the need promises';
    my $fork = [[s1 => a => 1, 10], [s2 => a => 2, 20], [s3 => r => { 1 => [10], 2 => [] }, 'read-write'],
                [s4 => r => { 1 => [], 2 => [20] }]];
    my $f = check(history(@$fork), { 1 => [10], 2 => [20] },
                  promises => { 'read-write' => ['long-fork'], nearest => [] });
    is $f->{count}{'long-fork'}, 1, 'a long fork between a read-write read and a nearest one: counted';
    is scalar @{ $f->{failing} }, 0, '... not failing: only one of the two needs promises it';
}

# Many operations: the checker stays quick (each session 400 appends and reads of four keys).
{
    my (@spec, %final);
    for my $i (1 .. 400) {
        for my $s (1 .. 4) {
            my $k = 1 + ($i + $s) % 4;
            my $val = $s * 100000 + $i;
            push @spec, ["s$s" => a => $k, $val];
            push @{ $final{$k} }, $val;
            push @spec, ["s$s" => r => { map { $_ => [@{ $final{$_} // [] }] } 1 .. 4 }];
        }
    }
    my $t = time;
    my $v = check(history(@spec), \%final, promises => $ALL);
    is kinds($v), '', '3200 operations of four sessions: clean';
    cmp_ok time - $t, '<', 30, '... checked in ' . (time - $t) . ' s';
}

done_testing;
