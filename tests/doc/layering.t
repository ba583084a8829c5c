#!/usr/bin/perl
# The sources are built in rooms, and every arrow between files runs one
# way: down.  From the top, proxy/ (main.c, daemon.c) > proxy/login >
# proxy/admin > proxy/dbmove > proxy/migrate > proxy/pool > proxy/session
# > proxy/runtime > proxy/base > routing/ > protocol/ (doc/architecture.md
# says what each holds).  A file may use its own room and the rooms under it; what a
# lower room needs from a higher one is handed down (a table, a hook, a
# pointer), never called by name.
#
# An arrow is read two ways: from the #include lines of the sources, and
# from the symbols each built object needs (nm), which also catches a call
# through a prototype written by hand.  The test fails:
#   - on a .c/.h under proxy/, protocol/ or routing/ outside the known rooms;
#   - on an include or a symbol that reaches a higher room (file:line, symbol);
#   - on a circle of files across rooms, or inside a room beyond the few
#     a room keeps on purpose (%allowed_circle);
#   - when proxy/daemon.h or struct daemon is used below the process;
#   - on a break of the phase rules: the phase table lives in
#     proxy/login/flow.c, the engine that runs it in proxy/session/phase.c,
#     and the phase files reach each other only through the engine;
#   - on a .c file of proxy/, protocol/ or routing/ over 850 lines, or a
#     .h over 450 (a room's private header, job_engine.h or prep_int.h,
#     counts as any other), but for one being split (%long_until_split), which
#     must still be over.
# It needs the objects of a build (PGNEAR names the build's pgnear, as
# make check sets it) and nm: without either it fails, it never skips.
use strict;
use warnings;
no warnings 'recursion';
use File::Basename qw(dirname basename);
use File::Find;
use Test::More;

my $src = $ENV{PGNEAR_SRCDIR} // dirname(dirname(dirname(__FILE__)));
my $build = defined $ENV{PGNEAR} ? dirname($ENV{PGNEAR}) : undef;

# ---- the rules

# Bottom first: a file may use its own room and every room before it.
my @rooms = qw(protocol routing proxy/base proxy/runtime proxy/session proxy/pool
  proxy/migrate proxy/dbmove proxy/admin proxy/login proxy);
my %rank = map { $rooms[$_] => $_ } 0 .. $#rooms;
# proxy/'s top is the process, nothing else.
my %top_file = map { $_ => 1 } qw(proxy/main.c proxy/daemon.c proxy/daemon.h);

# The circles a room keeps on purpose: the files of one object, named
# without their folder.  A circle inside a room is allowed when all of its
# files are listed here; any other circle is a defect, and so is a file
# listed here that is in no circle any more.
my %allowed_circle = (
    'proxy/runtime' => [qw(worker worker_call)],
);

# The phase files, each with the header through which the table reaches it.
my %phase_header = (
    'proxy/login/client_login.c'   => 'proxy/login/client_login.h',
    'proxy/login/client_auth.c'    => 'proxy/login/client_auth.h',
    'proxy/login/ws_ingress.c'     => 'proxy/login/ws_ingress.h',
    'proxy/login/server_connect.c' => 'proxy/login/server_connect.h',
    'proxy/login/server_login.c'   => 'proxy/login/server_login.h',
    'proxy/session/relay.c'        => 'proxy/session/relay.h',
    'proxy/admin/console.c'        => 'proxy/admin/console.h',
);
# Files that move sessions between phases too (phase_enter, phase_done), but whose
# headers the phase files use for more than phases: the auth throttle's gate, the
# pool's slots and kept connections, a kept connection's handover, the warm-up's
# logins, and the fetcher that logs in for a session (a move's mover, transaction
# pooling's next transaction: its login begins at CONNECT, as a warm-up's), and
# a transaction-pooled login answered without a server (CONNECT to ACTIVE).
my @phase_movers = ('proxy/login/login_greet.c', 'proxy/login/login_throttle.c', 'proxy/login/server_handover.c',
    'proxy/pool/pool_wait.c', 'proxy/pool/pool_warm.c', 'proxy/session/fetch.c');
my $phase_table  = 'proxy/login/flow.c';      # the rows, and the only file that writes one
my $phase_engine = 'proxy/session/phase.c';   # the only file that sets s->phase
# What runs under the phases and reaches them only through the engine.
my @plumbing = ($phase_engine, 'proxy/session/session.c', 'proxy/session/endpoint.c',
    'proxy/session/listener.c', 'proxy/runtime/worker.c');
# The holds at safe points have one owner.
my $hold_owner = 'proxy/session/gate.c';
# The line limit of a .c: 900 was the rule, and files grew to within a
# feature of it (migrations.c 878, show.c 856, uring.c 838 when they were
# split); 850 leaves the next feature room before its file must be split.
my $max_lines  = 850;
# A header is read whole by every file that includes it: a private header
# (job_engine.h, prep_int.h, near.h) holds what its room's files share, and
# weight moved there is not weight gone.  The largest, dbmove's job_int.h,
# had 444 before it was split by what its files use.
my $max_header_lines = 450;
# A file over the limit whose split is under way elsewhere, and why it may
# be: deleting its line is the whole change once the split has landed (the
# test then fails until it is deleted).
my %long_until_split = (
    # None now: txn.c (885 lines when the limit became 850) is 650 since
    # nearest's door (near_pooling.c) took its nearest parts.
);

# ---- reading the tree

sub slurp {
    my ($path) = @_;
    open(my $fh, '<', $path) or die "$path: $!\n";
    local $/;
    return scalar <$fh>;
}

# The text with its comments blanked out (line numbers kept), so that a
# comment naming struct daemon or s->phase is not taken for code.
sub code_of {
    my ($text) = @_;
    $text =~ s{("(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')|(/\*.*?\*/|//[^\n]*)}
              {defined $1 ? $1 : ($2 =~ s/[^\n]/ /gr)}gse;
    return $text;
}

sub module_of { return $_[0] =~ s/\.[cho]$//r }

# The room of a file or module, or undef when it lies in none.
sub room_of {
    my ($path) = @_;
    my $dir = dirname($path);
    if ($dir eq 'proxy') {
        my $mod = module_of($path);
        return ($top_file{"$mod.c"} || $top_file{"$mod.h"}) ? 'proxy' : undef;
    }
    return exists $rank{$dir} ? $dir : undef;
}

sub above { my ($from, $to) = @_; return $rank{$to} > $rank{$from} }

my @files;
for my $top (qw(proxy protocol routing)) {
    ok(-d "$src/$top", "$top/ is in the source tree ($src)")
      or BAIL_OUT("PGNEAR_SRCDIR ($src) is not pgnear's source tree");
    find({ no_chdir => 1, wanted => sub {
        return unless /\.[ch]$/ && -f $_;
        push @files, $File::Find::name =~ s{^\Q$src\E/}{}r;
    } }, "$src/$top");
}
@files = sort @files;
my %is_file = map { $_ => 1 } @files;
my %text = map { $_ => slurp("$src/$_") } @files;
my %code = map { $_ => code_of($text{$_}) } @files;

# Arrows between modules (a module: x.c with its x.h).
my (%include_edge, %link_edge);

# ---- 1. every file in a room

{
    my @homeless = grep { !defined room_of($_) } @files;
    is_deeply(\@homeless, [], 'every file of proxy/, protocol/ and routing/ lies in a known room')
      or diag("proxy/'s top holds only main.c, daemon.c and daemon.h; a new folder is a new "
          . "room, added to \@rooms here and to doc/architecture.md:\n  " . join("\n  ", @homeless));
}

# ---- 2. includes go down

# Where an #include "name" of file leads, when it is a file of the tree:
# next to the file first, then from the top of the tree (-I$(top_srcdir)).
sub resolve_include {
    my ($file, $name) = @_;
    my @parts;
    for my $part (split m{/}, dirname($file) . "/$name") {
        if ($part eq '..') { pop @parts }
        elsif ($part ne '.') { push @parts, $part }
    }
    my $beside = join('/', @parts);
    return $beside if $is_file{$beside};
    return $name if $name =~ m{^(?:proxy|protocol|routing)/};
    return undef;   # a generated header of the build (pgnear-build.h)
}

my (@include_up, @include_missing, %includes_of);
my $include_lines = 0;
for my $file (@files) {
    my $n = 0;
    for my $line (split /\n/, $text{$file}) {
        $n++;
        next unless $line =~ /^\s*#\s*include\s+"([^"]+)"/;
        my $target = resolve_include($file, $1) // next;
        $include_lines++;
        $includes_of{$file}{$target} = 1;
        if (!$is_file{$target}) {
            push @include_missing, "$file:$n: $target does not exist";
            next;
        }
        my ($from, $to) = (module_of($file), module_of($target));
        $include_edge{$from}{$to} //= "$file:$n" if $from ne $to;
        my ($rf, $rt) = (room_of($file), room_of($target));
        next unless defined $rf && defined $rt;
        push @include_up, "$file:$n: includes $target ($rt is above $rf)" if above($rf, $rt);
    }
}
is_deeply(\@include_missing, [], 'every include of the tree names a header that exists')
  or diag(join("\n", @include_missing));
is_deeply(\@include_up, [], 'no include line reaches a higher room')
  or diag("hand down a table, a hook or a pointer instead:\n" . join("\n", @include_up));

# ---- 3. the objects agree: no symbol of a higher room

my @link_up;
my $link_symbols = 0;
{
    my @objects;
    if (!defined $build) {
        fail('PGNEAR names the build, whose objects are read');
        diag('PGNEAR is not set: run this test through make check (AM_TESTS_ENVIRONMENT)');
    } else {
        find({ no_chdir => 1, wanted => sub { push @objects, $File::Find::name if /\.o$/ } },
            grep { -d } map { "$build/$_" } qw(proxy protocol routing));
        @objects = sort @objects;
        ok(@objects > 0, "the build's objects are there (" . scalar(@objects) . " under $build)")
          or diag("no object under $build/{proxy,protocol,routing}: build first (make)");
    }
    my $nm_ok = system('nm --version >/dev/null 2>&1') == 0;
    ok($nm_ok, 'nm is installed') or diag('install binutils (scripts/install-deps.sh)');

    # Each object belongs to the source it was built from: x.o, or
    # target-x.o when automake prefixes it.  An object of no source is
    # left over from a file that is gone.
    my (%object_of, @stale);
    for my $o (@objects) {
        my $rel = $o =~ s{^\Q$build\E/}{}r;
        my $dir = dirname($rel);
        my $name = basename($rel, '.o');
        my ($source) = grep { $is_file{$_} } ("$dir/$name.c", map {"$dir/$_.c"} $name =~ /-(.+)$/);
        if ($source) { $object_of{$source} = $o } else { push @stale, $rel }
    }
    diag("objects of no source, not read (left over from removed files): @stale") if @stale;
    if (@objects) {
        my @unbuilt = grep { /\.c$/ && !$object_of{$_} } @files;
        is_deeply(\@unbuilt, [], 'every .c of the tree has its object in the build')
          or diag("not built (missing from Makefile.am, or build first): @unbuilt");
        my @older = grep { -M $object_of{$_} > -M "$src/$_" } sort keys %object_of;
        is_deeply(\@older, [], 'every object is newer than its source')
          or diag("build again (make) before reading the objects: @older");
    }

    # One nm for all of them (-A: each line starts with its object's path).
    my (%defines, %needs);
    my %source_of = reverse %object_of;
    if (%object_of && $nm_ok) {
        open(my $nm, '-|', 'nm', '-P', '-A', sort values %object_of) or die "nm: $!\n";
        while (<$nm>) {
            my ($object, $sym, $type) = /^(.+?\.o): (\S+) (\S)/ or next;
            my $mod = module_of($source_of{$object} // die "nm named $object\n");
            if ($type eq 'U') { $needs{$mod}{$sym} = 1 }
            elsif ($type =~ /^[TDBRCGSVW]$/) { $defines{$sym} = $mod }
        }
        close($nm) or die "nm -P -A on the objects failed\n";
        ok(scalar(keys %defines) > 0, 'nm found the symbols the objects define');
    }
    for my $mod (sort keys %needs) {
        for my $sym (sort keys %{ $needs{$mod} }) {
            my $owner = $defines{$sym} // next;   # libc, libevent, OpenSSL ...
            next if $owner eq $mod;
            $link_symbols++;
            push @{ $link_edge{$mod}{$owner} }, $sym;
            my ($rf, $rt) = (room_of("$mod.c"), room_of("$owner.c"));
            next unless defined $rf && defined $rt;
            push @link_up, "$mod.o needs $sym of $owner.o ($rt is above $rf)" if above($rf, $rt);
        }
    }
    if (%defines) {
        is_deeply(\@link_up, [], 'no object needs a symbol of a higher room')
          or diag(join("\n", @link_up));
    } else {
        fail('no object needs a symbol of a higher room: no object was read');
    }
}

# ---- 4. circles

# The strongly connected components (Tarjan) of the graph over these
# nodes, by the include and link arrows among them; only those with two
# or more nodes, each sorted.
sub circles {
    my (@nodes) = @_;
    my %in = map { $_ => 1 } @nodes;
    my ($next, %index, %low, @stack, %on_stack, @found) = (0);
    my $visit;
    $visit = sub {
        my ($v) = @_;
        $index{$v} = $low{$v} = $next++;
        push @stack, $v;
        $on_stack{$v} = 1;
        my %to = (%{ $include_edge{$v} // {} }, %{ $link_edge{$v} // {} });
        for my $w (sort grep { $in{$_} } keys %to) {
            if (!exists $index{$w}) {
                $visit->($w);
                $low{$v} = $low{$w} if $low{$w} < $low{$v};
            } elsif ($on_stack{$w}) {
                $low{$v} = $index{$w} if $index{$w} < $low{$v};
            }
        }
        return unless $low{$v} == $index{$v};
        my @c;
        while (1) {
            my $w = pop @stack;
            $on_stack{$w} = 0;
            push @c, $w;
            last if $w eq $v;
        }
        push @found, [sort @c] if @c > 1;
    };
    $visit->($_) for grep { !exists $index{$_} } sort @nodes;
    undef $visit;
    return @found;
}

my %modules = map { module_of($_) => 1 } @files;
my @all_circles = sort { @$b <=> @$a } circles(keys %modules);
{
    my @across = grep {
        my %r = map { (room_of("$_.c") // room_of("$_.h") // '?') => 1 } @$_;
        keys(%r) > 1;
    } @all_circles;
    is_deeply([map { join(' ', @$_) } @across], [], 'no circle of files spans two rooms')
      or diag(join("\n", map { scalar(@$_) . " files: @$_" } @across));
}
for my $room (@rooms) {
    my @nodes = grep { (room_of("$_.c") // room_of("$_.h") // '') eq $room } keys %modules;
    next unless @nodes;
    my %allowed = map { ("$room/$_" => 1) } @{ $allowed_circle{$room} // [] };
    my @bad = grep { grep { !$allowed{$_} } @$_ } circles(@nodes);
    is_deeply([map { join(' ', @$_) } @bad], [], "$room: no circle inside the room"
        . (%allowed ? ' but among ' . join(', ', @{ $allowed_circle{$room} }) : ''))
      or diag(join("\n", map { join(' <-> ', @$_) } @bad));
    next unless %allowed;
    # An allowance shrinks with its circle: a file that left it leaves the list.
    my %in_circle = map { ($_ => 1) } map { @$_ } circles(@nodes);
    my @stale = grep { !$in_circle{$_} } sort keys %allowed;
    is_deeply(\@stale, [], "$room: every file its allowance names is still in a circle")
      or diag("delete them from %allowed_circle: @stale");
}

# ---- 5. the process is nobody's context

{
    my @users = grep { $includes_of{$_}{'proxy/daemon.h'} && !$top_file{$_} } @files;
    is_deeply(\@users, [], 'proxy/daemon.h is included by main.c and daemon.c only')
      or diag("what the workers share is in proxy/runtime/shared.h: @users");
    my @uses;
    for my $file (grep { !$top_file{$_} } @files) {
        my $n = 0;
        for my $line (split /\n/, $code{$file}) {
            $n++;
            push @uses, "$file:$n: $line" if $line =~ /\bstruct\s+daemon\b|->\s*d\s*->/;
        }
    }
    is_deeply(\@uses, [], 'struct daemon and ->d-> appear only in main.c and daemon.[ch]')
      or diag(join("\n", @uses));
}

# ---- 6. the phases

# Lines of a file that match a pattern outside its comments, as file:line: text.
sub lines_matching {
    my ($re, @in) = @_;
    my @hits;
    for my $file (@in) {
        my $n = 0;
        for my $line (split /\n/, $code{$file}) {
            $n++;
            push @hits, "$file:$n: " . ($line =~ s/^\s+//r) if $line =~ $re;
        }
    }
    return @hits;
}

{
    my @phase_headers = sort values %phase_header;
    for my $file (sort(keys %phase_header), @phase_headers, @phase_movers, $phase_table, @plumbing) {
        ok($is_file{$file}, "$file exists") or diag('a rename updates the lists of this test');
    }
    for my $file (grep { $is_file{$_} } sort keys %phase_header) {
        my @other = grep { $includes_of{$file}{$_} && $_ ne $phase_header{$file} } @phase_headers;
        is_deeply(\@other, [], "$file includes no other phase file's header")
          or diag('a phase ends with phase_done or phase_enter (proxy/session/phase.h)');
    }
    for my $file (grep { $is_file{$_} } @plumbing) {
        my @named = grep { $includes_of{$file}{$_} } @phase_headers;
        is_deeply(\@named, [], "$file includes no phase file's header")
          or diag('it reaches the phases through the table handed to the engine');
    }
    if ($is_file{$phase_table}) {
        my @missing = grep { !$includes_of{$phase_table}{$_} } @phase_headers;
        is_deeply(\@missing, [], "$phase_table includes every phase file's header (its rows name them)");
    }
    # What a phase does is the table's; the engine only names the phases and their lists.
    my @rows = grep { !/^\Q$phase_table\E:/ }
      lines_matching(qr/\.\s*(?:enter|on_timeout|done|cancel)\s*=(?!=)/, @files);
    is_deeply(\@rows, [], "only $phase_table writes the rows of the phase table")
      or diag(join("\n", @rows));
    # Every file that moves a session is known here: a phase file, the table, or the plumbing.
    my %known = map { $_ => 1 } keys %phase_header, @phase_movers, $phase_table, @plumbing;
    my @movers = grep { !$known{ (split /:/)[0] } }
      lines_matching(qr/\bphase_(?:enter|done|begin_at|server_failed)\s*\(/, grep { m{^proxy/.*\.c$} } @files);
    is_deeply(\@movers, [], 'every file that moves a session between phases is a phase file of this test')
      or diag(join("\n", @movers));
    my @setters = lines_matching(qr/(?:->|\.)\s*phase\s*=(?!=)/, grep { $_ ne $phase_engine } @files);
    is_deeply(\@setters, [], "only $phase_engine sets a session's phase (phase_enter)")
      or diag(join("\n", @setters));
    my @holds = lines_matching(qr/(?:->|\.)\s*(?:on_safe|held|hold_reasons)\s*(?:[-+|&^]|<<|>>)?=(?!=)/,
        grep { m{^proxy/} && $_ ne $hold_owner } @files);
    is_deeply(\@holds, [], "only $hold_owner holds and releases sessions (on_safe, held, hold_reasons)")
      or diag(join("\n", @holds));
}

# ---- 7. files that read at once

{
    my (@long, %lines);
    my %limit = map { $_ => /\.h$/ ? $max_header_lines : $max_lines } grep { /\.[ch]$/ } @files;
    for my $file (sort keys %limit) {
        $lines{$file} = () = $text{$file} =~ /\n/g;
        push @long, "$file: $lines{$file} lines, over $limit{$file}"
          if $lines{$file} > $limit{$file} && !$long_until_split{$file};
    }
    is_deeply(\@long, [], "no .c file of proxy/, protocol/ or routing/ is over $max_lines lines,"
        . " no .h over $max_header_lines"
        . (%long_until_split ? ' but ' . join(', ', sort keys %long_until_split) : ''))
      or diag("split it along its concerns (doc/architecture.md):\n" . join("\n", @long));
    my @stale = grep { ($lines{$_} // 0) <= ($limit{$_} // $max_lines) } sort keys %long_until_split;
    is_deeply(\@stale, [], 'every file excused from the line limit is still over it')
      or diag("split or gone: delete its line from %long_until_split: @stale");
}

# ---- what was measured

{
    my $arrows = sub { my ($e) = @_; my $n = 0; $n += keys %{ $e->{$_} } for keys %$e; $n };
    my %up_pairs = map { /^(\S+) needs \S+ of (\S+)/ ? ("$1 $2" => 1) : () } @link_up;
    my $largest = @all_circles ? $all_circles[0] : [];
    diag(join("\n",
        sprintf('layering: %d files in %d modules', scalar(@files), scalar(keys %modules)),
        sprintf('  include: %d lines inside the tree, %d arrows between modules; %d lines point up',
            $include_lines, $arrows->(\%include_edge), scalar(@include_up)),
        sprintf('  link: %d arrows between objects (%d symbols); %d arrows (%d symbols) point up',
            $arrows->(\%link_edge), $link_symbols, scalar(keys %up_pairs), scalar(@link_up)),
        sprintf('  circles: %d; the largest has %d files%s', scalar(@all_circles),
            scalar(@$largest), @$largest ? ": @$largest" : '')));
}

done_testing();
