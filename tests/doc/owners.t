#!/usr/bin/perl
# The parts of struct session and struct session_login that one file
# writes (doc/architecture.md): each is an embedded struct (or one its
# writer makes as it is first needed, s->timeouts), and outside
# its writer a source only reads it.  A write is an assignment to one of
# its fields (=, op=, ++, --), or its address or a field's taken (&),
# which hands it to something that may write, but for the accessors that
# read it through a const pointer (fence_asking).  An array field handed
# to a function (a string copied into it) is not seen.  The test fails on a write
# outside the writer, file:line, and on a writer that no longer writes
# (the table here is stale); and on a question of a part restated
# outside its owner (%asked).
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Find;
use Test::More;

my $src = $ENV{PGNEAR_SRCDIR} // dirname(dirname(dirname(__FILE__)));

# A member's name, unique in the tree (->M. names it), => the file that
# writes it, and any other that may, with why.
my %owner = (
    fence    => ['proxy/session/fence.c'],
    hold     => ['proxy/session/gate.c'],
    # session.h's session_turn hands out the queue's place inside it (&s->txn_next->turn).
    txn_next => ['proxy/session/txn_fetch.c', 'proxy/session/session.h'],
    timeouts => ['proxy/session/timeouts.c'],
    # A place in the queue is part of a login's state or of a txn_next, handed out by
    # session_turn alone; pool_wait.c writes it through that, and txn_fetch.c carries its
    # told_since_us over as a queued transaction goes on to wait behind a fetcher.
    turn     => ['proxy/session/session.h', 'proxy/session/txn_fetch.c'],
    pool_wait => ['proxy/pool/pool_wait.c'],
    throttle => ['proxy/login/login_throttle.c'],
    # The login's end frees the settings' parameters with the rest of it.
    handover => ['proxy/login/server_handover.c', 'proxy/session/session.c'],
);

# The text with its comments and string literals blanked out, lines kept.
sub code_of {
    my ($text) = @_;
    $text =~ s{("(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')|(/\*.*?\*/|//[^\n]*)}
              {defined $1 ? '""' : ($2 =~ s/[^\n]/ /gr)}gse;
    return $text;
}

my @files;
for my $top (qw(proxy protocol routing)) {
    ok(-d "$src/$top", "$top/ is in the source tree ($src)")
      or BAIL_OUT("PGNEAR_SRCDIR ($src) is not pgnear's source tree");
    find({ no_chdir => 1, wanted => sub {
        push @files, $File::Find::name =~ s{^\Q$src\E/}{}r if /\.[ch]$/ && -f $_;
    } }, "$src/$top");
}

# The accessors that read a part through a const pointer.
my $const_readers = join('|', qw(fence_asking));
# The pointer before it: s, s->login, c->client->login.
my $path = qr/\w+(?:\s*->\s*\w+)*?/;
my $assign = qr/(?:[-+*\/%|&^]|<<|>>)?=(?!=)/;
for my $member (sort keys %owner) {
    my ($writer, @also) = @{ $owner{$member} };
    my %may = map { $_ => 1 } $writer, @also;
    # s->fence.lsn, l->pool_wait.key[0], ...: x->M.F; a part kept apart (s->timeouts, made by
    # its writer as it is first needed): x->M->F, and x->M = ...; or &x->M whole
    my $field = qr/->\s*\Q$member\E\s*(?:\.|->)\s*\w+(?:\s*\[[^\]]*\])*|->\s*\Q$member\E(?=\s*$assign)/;
    my (@bad, $writes);
    for my $file (sort @files) {
        open(my $fh, '<', "$src/$file") or die "$file: $!\n";
        my $code = code_of(do { local $/; <$fh> });
        my $n = 0;
        for my $line (split /\n/, $code) {
            $n++;
            my $w = $line =~ /$field\s*(?:$assign|\+\+|--)/ || $line =~ /(?:\+\+|--)\s*$path\s*$field/
              || $line =~ /(?<!&)&\s*$path\s*$field/;
            # &s->M whole: a write, but where a reader that takes it const is called.
            (my $rest = $line) =~ s/\b(?:$const_readers)\s*\(\s*&\s*$path\s*->\s*\Q$member\E\s*\)//g;
            $w ||= $rest =~ /(?<!&)&\s*$path\s*->\s*\Q$member\E\b(?!\s*(?:\.|->|\[))/;
            next unless $w;
            $writes++ if $file eq $writer;
            push @bad, "$file:$n: " . ($line =~ s/^\s+//r) unless $may{$file};
        }
    }
    is_deeply(\@bad, [], "only $writer writes ->$member" . (@also ? " (and @also)" : ''))
      or diag(join("\n", @bad));
    ok($writes, "$writer writes ->$member (the table of this test is up to date)");
}

# A part whose questions are asked through its owner's functions, each
# stated once: the pattern a source outside the owner (and its header)
# must not hold, with what it asks instead.  s->txn_next: whether a
# session waits for its next transaction's connection, or is detached and
# idle between transactions (txn_next_waiting, txn_next_detached_idle
# in session_types.h, txn_next_stop in txn_fetch.h); outside, txn_next is read only as QUEUED
# (the pool's queue, SHOW CLIENTS) and its spot.  The old fields, a
# session's fetcher and txn_wait, are that question restated.  fetch.c's
# take is one function (fetch_take) for a direct take and a waited one.
my %asked = (
    txn_next => {
        owner => ['proxy/session/txn_fetch.c', 'proxy/session/txn_next.h',
                  'proxy/session/session_types.h'],
        restated => qr/->\s*fetcher\b|->\s*txn_wait\b|\bTXN_NEXT_(?:NONE|FETCHER)\b
                      |->\s*txn_next\s*(?:\.|->)\s*(?:fetcher|need)\b/x,
        instead => 'txn_next_waiting, txn_next_detached_idle, txn_next_stop',
    },
    fetch_take => {
        owner => [],
        restated => qr/\bfetch_take_(?:idle|at)\b/,
        instead => 'fetch_take (fetch.h), one take at a planned spot or a waited one',
    },
);
for my $part (sort keys %asked) {
    my %may = map { $_ => 1 } @{ $asked{$part}{owner} };
    my @bad;
    for my $file (sort @files) {
        next if $may{$file};
        open(my $fh, '<', "$src/$file") or die "$file: $!\n";
        my $code = code_of(do { local $/; <$fh> });
        my $n = 0;
        for my $line (split /\n/, $code) {
            $n++;
            push @bad, "$file:$n: " . ($line =~ s/^\s+//r) if $line =~ $asked{$part}{restated};
        }
    }
    is_deeply(\@bad, [], "$part is asked through $asked{$part}{instead}")
      or diag(join("\n", @bad));
}

# A part whose state is opaque behind its verbs: its private header, and
# the files of that part alone that may include it (and so write it).
my %private = (
    'proxy/session/near_int.h' =>
      ['proxy/session/near.c', 'proxy/session/near_hold.c', 'proxy/session/near_pooling.c',
       'proxy/session/near_slots.c', 'proxy/session/near_state.c'],
    'proxy/session/notify_int.h' => ['proxy/session/notify_hub.c', 'proxy/session/notify_conn.c'],
);
for my $header (sort keys %private) {
    my %may = map { $_ => 1 } @{ $private{$header} };
    my @bad;
    for my $file (sort @files) {
        open(my $fh, '<', "$src/$file") or die "$file: $!\n";
        my $text = do { local $/; <$fh> };
        push @bad, $file if $text =~ m{^\s*#\s*include\s*"\Q$header\E"}m && !$may{$file};
    }
    is_deeply(\@bad, [], "only @{ $private{$header} } include $header") or diag(join("\n", @bad));
}

done_testing();
