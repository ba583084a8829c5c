package PgNearHistory;

# A history checker for list-append workloads, after Jepsen's Elle
# ("list-append": every transaction appends unique values to keys or reads
# keys; a key's value is the list of what was appended to it, so a read
# says exactly which appends it saw and in which order).
#
# A history is a list of operations, one per transaction:
#
#   { id => 17, session => 's3', need => 'nearest',
#     invoke => 12.301, complete => 12.304,       # seconds (any one clock)
#     server => 'eu-west-1',                      # who answered, when known
#     standby => 1,                               # a read: whether it ran on a standby, when known
#     outcome => 'ok' | 'failed' | 'unknown',     # unknown: no answer, or lost with the link
#     append => [[KEY, VALUE], ...],              # what the transaction appended, or
#     read   => { KEY => [VALUES], ... } }        # what it read (one snapshot)
#
# A session's operations are sequential: the history lists them in the
# order the session ran them.  The final state is { KEY => [VALUES] } as
# read on the primary after the workload.
#
#   my $v = PgNearHistory::check($history, $final, promises => {
#       nearest => [qw(ryw monotonic-reads monotonic-writes writes-follow-reads)] });
#   $v->{count}{'monotonic-reads'}      # all found, of every need
#   $v->{failing}                       # those a need promised not to show
#   PgNearHistory::describe($_) for @{ $v->{violations} };
#
# Kinds, each reported with the operations that show it:
#   lost                 an acknowledged append missing from the final state
#   duplicated           a value present twice in one list (final state or a read)
#   aborted-read         a read (or the final state) shows a value whose append failed, or that no
#                        operation appended
#   incompatible-order   a read that is not a prefix of the final state
#   ryw                  a session's read misses a value the session appended (acknowledged) before it
#   monotonic-reads      a session's read of a key is not an extension of its earlier read of that key
#   monotonic-reads-primary  the same, where the earlier read ran on a standby and the later on
#                        a primary (PostgreSQL shows a commit on a standby before the primary's
#                        own snapshots do: a separate promise)
#   monotonic-writes     a session's append is ordered before its own earlier acknowledged append
#                        (same key: after it in the list; two keys: a read that has the later, not
#                        the earlier)
#   writes-follow-reads  likewise for an append the session had read before its own append
#   long-fork            two reads order two appends differently (one has x's append and not y's,
#                        the other y's and not x's): no single order of commits explains both
#
# Kinds found are always counted; a kind fails only where the session's need
# promises it (the promises are the manual's table).  lost, duplicated,
# aborted-read and incompatible-order are promised by every need.
use strict;
use warnings;

use Exporter 'import';
our @EXPORT_OK = qw(check describe);

our @ALWAYS = qw(lost duplicated aborted-read incompatible-order);
our @KINDS  = (@ALWAYS, qw(ryw monotonic-reads monotonic-reads-primary monotonic-writes writes-follow-reads
                           long-fork));

sub check {
    my ($history, $final, %o) = @_;
    my $self = bless { h => $history, final => $final, promises => $o{promises} // {},
                       violations => [], limit => $o{keep} // 50 }, __PACKAGE__;
    $self->_index;
    $self->_final_state;
    $self->_reads_against_final;
    $self->_sessions;
    $self->_long_forks;
    my (%count, @failing);
    for my $v (@{ $self->{violations} }) {
        $count{ $v->{kind} }++;
        push @failing, $v if $self->_promised($v);
    }
    $count{$_} //= 0 for @KINDS;
    return { count => \%count, violations => $self->{violations}, failing => \@failing,
             longest_wait => _longest_waits($history), operations => scalar @$history };
}

# One line per violation: its kind, its message, and each operation that shows it.
sub describe {
    my ($v) = @_;
    return join("\n  ", "$v->{kind}: $v->{msg}", map { op_line($_) } @{ $v->{ops} });
}

sub op_line {
    my ($op) = @_;
    my $what = $op->{append} ? join(' ', map { "append $_->[0]:$_->[1]" } @{ $op->{append} })
             : $op->{read}   ? join(' ', map { "read $_:" . scalar(@{ $op->{read}{$_} }) . ' values' }
                                        sort { $a <=> $b } keys %{ $op->{read} })
             :                 'final state';
    return sprintf('op %s session %s (%s) %s on %s, %s, %.3f-%.3f s', $op->{id} // '-', $op->{session} // '-',
                   $op->{need} // '-', $what, $op->{server} // '?', $op->{outcome} // '-',
                   $op->{invoke} // 0, $op->{complete} // 0);
}

# The longest an operation waited for its answer, per session.
sub _longest_waits {
    my ($h) = @_;
    my %w;
    for my $op (@$h) {
        my $d = ($op->{complete} // $op->{invoke}) - $op->{invoke};
        $w{ $op->{session} } = $d if !defined $w{ $op->{session} } || $d > $w{ $op->{session} };
    }
    return \%w;
}

sub _promised {
    my ($self, $v) = @_;
    return 1 if grep { $_ eq $v->{kind} } @ALWAYS;
    my @needs = @{ $v->{needs} // [] };
    return 0 unless @needs;
    for my $need (@needs) {    # every operation's need must promise it (a long fork has two)
        return 0 unless grep { $_ eq $v->{kind} } @{ $self->{promises}{$need} // [] };
    }
    return 1;
}

sub _add {
    my ($self, $kind, $msg, @ops) = @_;
    my %needs = map { $_->{need} => 1 } grep { defined $_->{need} } @ops;
    push @{ $self->{violations} }, { kind => $kind, msg => $msg, ops => \@ops, needs => [sort keys %needs],
                                     session => $ops[-1]{session} };
}

# Who appended each value, and each session's operations in order.
sub _index {
    my ($self) = @_;
    for my $op (@{ $self->{h} }) {
        for my $a (@{ $op->{append} // [] }) {
            my ($k, $val) = @$a;
            $self->_add('duplicated', "value $val appended to key $k by two operations",
                        $self->{writer}{$k}{$val}, $op) if $self->{writer}{$k}{$val};
            $self->{writer}{$k}{$val} = $op;
        }
        push @{ $self->{by_session}{ $op->{session} } }, $op;
    }
}

sub _dups {
    my ($list) = @_;
    my (%seen, @d);
    $seen{$_}++ == 1 and push @d, $_ for @$list;
    return @d;
}

# Lost, duplicated and aborted appends, as the final state shows them.
sub _final_state {
    my ($self) = @_;
    my $fin = { id => 'final', session => 'final', need => undef, read => $self->{final} };
    for my $k (sort { $a <=> $b } keys %{ $self->{final} }) {
        my $list = $self->{final}{$k};
        $self->_add('duplicated', "value $_ twice in the final state of key $k", $self->{writer}{$k}{$_} // (), $fin)
          for _dups($list);
        my %pos;
        @pos{@$list} = (0 .. $#$list);
        $self->{pos}{$k} = \%pos;
        for my $val (@$list) {
            my $w = $self->{writer}{$k}{$val};
            $self->_add('aborted-read', "final state of key $k has $val, which no operation appended", $fin)
              unless $w;
            $self->_add('aborted-read', "final state of key $k has $val, whose append failed", $w, $fin)
              if $w && $w->{outcome} eq 'failed';
        }
    }
    for my $op (grep { $_->{outcome} eq 'ok' && $_->{append} } @{ $self->{h} }) {
        for my $a (@{ $op->{append} }) {
            $self->_add('lost', "acknowledged append of $a->[1] to key $a->[0] missing from the final state", $op)
              unless exists $self->{pos}{ $a->[0] }{ $a->[1] };
        }
    }
}

# Every read is a prefix of the final state, without duplicates or aborted values.
sub _reads_against_final {
    my ($self) = @_;
    for my $op (grep { $_->{outcome} eq 'ok' && $_->{read} } @{ $self->{h} }) {
        for my $k (sort { $a <=> $b } keys %{ $op->{read} }) {
            my $list = $op->{read}{$k};
            my $fin = $self->{final}{$k} // [];
            my $i = _common_prefix($list, $fin);
            next if $i == @$list;    # a prefix of the final state, which was looked at above
            my $before = @{ $self->{violations} };
            $self->_add('duplicated', "read of key $k shows $_ twice", $op) for _dups($list);
            for my $val (@$list) {
                my $w = $self->{writer}{$k}{$val};
                $self->_add('aborted-read', "read of key $k shows $val, which no operation appended", $op)
                  unless $w;
                $self->_add('aborted-read', "read of key $k shows $val, whose append failed", $w, $op)
                  if $w && $w->{outcome} eq 'failed';
            }
            next if @{ $self->{violations} } > $before;    # said already, more precisely
            $self->_add('incompatible-order', sprintf('read of key %s differs from the final state at index %d '
                          . '(%s where the final state has %s)', $k, $i, $list->[$i], $fin->[$i] // 'nothing'), $op);
        }
    }
}

sub _common_prefix {
    my ($a, $b) = @_;
    my $i = 0;
    $i++ while $i < @$a && $i < @$b && $a->[$i] == $b->[$i];
    return $i;
}

# The session guarantees, walking each session's operations in order.
# What a session's later appends must follow, per key and per why ('own':
# its acknowledged appends, 'read': what it read), is kept as the value
# furthest in the key's final list: reads are prefixes of it, so a read
# that has that value has every one before it.
sub _sessions {
    my ($self) = @_;
    for my $s (sort keys %{ $self->{by_session} }) {
        my (%mine, %last_read, %deps);    # deps: key -> why -> [value, its op, position]
        for my $op (grep { $_->{outcome} eq 'ok' } @{ $self->{by_session}{$s} }) {
            if ($op->{read}) {
                $self->_ryw($op, \%mine);
                $self->_monotonic_read($op, \%last_read);
                for my $k (keys %{ $op->{read} }) {    # a prefix: its last value is its furthest
                    $self->_dep(\%deps, $k, $op->{read}{$k}[-1], $op, 'read') if @{ $op->{read}{$k} };
                }
            }
            next unless $op->{append};
            $self->_write_order($op, \%deps);
            for my $a (@{ $op->{append} }) {
                my ($k, $p) = ($a->[0], $self->{pos}{ $a->[0] }{ $a->[1] } // 1e9);    # lost: look at each
                $mine{$k}{ops}{ $a->[1] } = $op;
                $mine{$k}{furthest} = $p if ($mine{$k}{furthest} // -1) < $p;
                $self->_dep(\%deps, @$a, $op, 'own');
            }
        }
    }
}

sub _dep {
    my ($self, $deps, $k, $val, $op, $why) = @_;
    my $p = $self->{pos}{$k}{$val} // return;
    my $d = $deps->{$k}{$why};
    $deps->{$k}{$why} = [$val, $op, $p] if !$d || $p > $d->[2];
}

# A read that is a prefix of the final state has every value of the
# session's further in the list than its last: only a read that stops
# short of the session's furthest append is looked at value by value.
sub _ryw {
    my ($self, $op, $mine) = @_;
    for my $k (sort { $a <=> $b } keys %{ $op->{read} }) {
        my $list = $op->{read}{$k};
        my $furthest = $mine->{$k}{furthest} // next;
        next if $furthest < @$list && $list->[$furthest] == $self->{final}{$k}[$furthest];
        my %has = map { $_ => 1 } @$list;
        for my $val (sort { $a <=> $b } keys %{ $mine->{$k}{ops} }) {
            next if $has{$val};
            $self->_add('ryw', "read of key $k misses $val, which the session appended before", $mine->{$k}{ops}{$val},
                        $op);
        }
    }
}

sub _monotonic_read {
    my ($self, $op, $last) = @_;
    for my $k (sort { $a <=> $b } keys %{ $op->{read} }) {
        my $list = $op->{read}{$k};
        if (my $prev = $last->{$k}) {
            my $plist = $prev->{read}{$k};
            if (_common_prefix($plist, $list) < @$plist) {
                my $kind = $prev->{standby} && defined $op->{standby} && !$op->{standby}
                         ? 'monotonic-reads-primary' : 'monotonic-reads';
                $self->_add($kind, sprintf('key %s read on %s as %d values after %d values read on %s '
                              . '%.0f ms earlier', $k, $op->{server} // '?', scalar @$list, scalar @$plist,
                              $prev->{server} // '?', 1000 * ($op->{invoke} - $prev->{complete})), $prev, $op);
                next;    # the longer read stays the one to extend
            }
        }
        $last->{$k} = $op;
    }
}

# Each earlier acknowledged append of the session, and each value it read
# before, must come before this append: in the same key's list, and in any
# read that shows this append and reads the earlier one's key.
sub _write_order {
    my ($self, $op, $deps) = @_;
    for my $a (@{ $op->{append} }) {
        my ($k, $val) = @$a;
        for my $dk (keys %$deps) {
            for my $why (sort keys %{ $deps->{$dk} }) {
                my ($dval, $dop, $p) = @{ $deps->{$dk}{$why} };
                my $kind = $why eq 'own' ? 'monotonic-writes' : 'writes-follow-reads';
                if ($dk == $k) {
                    my $q = $self->{pos}{$k}{$val};
                    next unless defined $q && $q < $p;
                    $self->_add($kind, "append of $val to key $k is before $dval in the final state, which the "
                                  . ($why eq 'own' ? 'session appended' : 'session read') . ' first', $dop, $op);
                    next;
                }
                push @{ $self->{after}{$k}{$val} }, [$dk, $dval, $dop, $op, $kind];
            }
        }
    }
}

# Reads that show an append but miss what it must follow (_write_order
# noted those pairs), and long forks: for every two keys, reads that read
# both ordered by how much of the first they saw must also be ordered by
# the second.
sub _long_forks {
    my ($self) = @_;
    my @reads = grep { $_->{outcome} eq 'ok' && $_->{read} } @{ $self->{h} };
    my $must = $self->_must_follow;
    for my $r (@reads) {
        for my $k (sort { $a <=> $b } keys %{ $r->{read} }) {
            for my $dk (sort { $a <=> $b } keys %{ $r->{read} }) {
                my $need = $must->{$k}{$dk} && $must->{$k}{$dk}[ scalar @{ $r->{read}{$k} } ] or next;
                next if @{ $r->{read}{$dk} } > $need->[0];
                my (undef, $dval, $dop, $op, $kind) = @{ $need->[1] };
                my ($val) = map { $_->[1] } grep { $_->[0] == $k } @{ $op->{append} };
                $self->_add($kind, "read shows $val in key $k but not $dval in key $dk, which the session of "
                              . 'that append had ' . ($kind eq 'monotonic-writes' ? 'appended' : 'read') . ' before',
                            $dop, $op, $r);
            }
        }
    }
    my %keys = map { map { $_ => 1 } keys %{ $_->{read} } } @reads;
    my @k = sort { $a <=> $b } keys %keys;
    for my $i (0 .. $#k) {
        for my $j ($i + 1 .. $#k) {
            $self->_fork_pair($k[$i], $k[$j], [grep { $_->{read}{ $k[$i] } && $_->{read}{ $k[$j] } } @reads]);
        }
    }
}

# For keys k and dk, and each length L of a read of k: the furthest
# position in dk's final list that the first L values of k must follow,
# with the reason ([position, [dk, dval, dop, op, kind]]).
sub _must_follow {
    my ($self) = @_;
    my %must;
    for my $k (keys %{ $self->{after} // {} }) {
        my $list = $self->{final}{$k} // [];
        my %best;
        for my $i (0 .. $#$list) {
            for my $n (@{ $self->{after}{$k}{ $list->[$i] } // [] }) {
                my $p = $self->{pos}{ $n->[0] }{ $n->[1] };
                $best{ $n->[0] } = [$p, $n] if !$best{ $n->[0] } || $p > $best{ $n->[0] }[0];
            }
            $must{$k}{$_}[ $i + 1 ] = $best{$_} for keys %best;
        }
    }
    return \%must;
}

sub _fork_pair {
    my ($self, $x, $y, $reads) = @_;
    my @r = sort { @{ $a->{read}{$x} } <=> @{ $b->{read}{$x} } } @$reads;
    my ($best, $best_below) = (undef, undef);    # the read with most of y among those with less of x
    my $i = 0;
    while ($i < @r) {
        my $lx = @{ $r[$i]{read}{$x} };
        my $j = $i;
        $j++ while $j < @r && @{ $r[$j]{read}{$x} } == $lx;
        for my $r (@r[$i .. $j - 1]) {
            next unless $best_below && @{ $r->{read}{$y} } < @{ $best_below->{read}{$y} };
            $self->_add('long-fork', sprintf('key %s: %d values here, %d there; key %s: %d here, %d there',
                          $x, scalar @{ $r->{read}{$x} }, scalar @{ $best_below->{read}{$x} }, $y,
                          scalar @{ $r->{read}{$y} }, scalar @{ $best_below->{read}{$y} }), $best_below, $r);
        }
        for my $r (@r[$i .. $j - 1]) {
            $best_below = $r if !$best_below || @{ $r->{read}{$y} } > @{ $best_below->{read}{$y} };
        }
        $i = $j;
    }
}

1;
