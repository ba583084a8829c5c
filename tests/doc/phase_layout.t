#!/usr/bin/perl
# The shape of proxy/ that breaks the circle the session's phases were
# wired in: phase.c owns the transitions (proxy/phase.h), each phase file
# starts its own phases and calls phase.c, never another phase file.
#
# - a phase file includes no other phase file's header (phase.c includes
#   them all: its table names what each exports);
# - the session plumbing under the phases (session.c, listener.c,
#   worker.c) includes none either: it reaches them through phase.h;
# - only phase.c sets a session's phase (phase_enter).
#
# Reads the sources only; a listed file that is missing fails the test,
# so that a rename updates the list instead of emptying the check.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Find;
use Test::More;

my $src = $ENV{PGNEAR_SRCDIR} // dirname(dirname(dirname(__FILE__)));

# Each phase file, and the header through which phase.c reaches it.
my %phase_header = (
    'proxy/client_login.c'   => 'proxy/client_login.h',
    'proxy/client_auth.c'    => 'proxy/client_auth.h',
    'proxy/server_connect.c' => 'proxy/server_connect.h',
    'proxy/server_login.c'   => 'proxy/server_login.h',
    'proxy/relay.c'          => 'proxy/relay.h',
    'proxy/admin/console.c'  => 'proxy/admin/console.h',
    'proxy/ws_ingress.c'     => 'proxy/ws_ingress.h',
);
# Headers of phase files that are gone (merged into another): nobody includes them.
my @gone_headers = ('proxy/server_auth.h');
my @plumbing = ('proxy/session.c', 'proxy/listener.c', 'proxy/worker.c');

sub slurp {
    my ($path) = @_;
    open(my $fh, '<', "$src/$path") or die "$src/$path: $!\n";
    local $/;
    return scalar <$fh>;
}

sub includes {
    my ($path) = @_;
    return [slurp($path) =~ /^\s*#\s*include\s+"([^"]+)"/mg];
}

my @phase_headers = (values(%phase_header), @gone_headers);

for my $file (sort(keys %phase_header), 'proxy/phase.c', @plumbing) {
    ok(-f "$src/$file", "$file exists") or BAIL_OUT("$file is missing: update this test's lists");
}
for my $h (sort(values %phase_header), 'proxy/phase.h') {
    ok(-f "$src/$h", "$h exists") or BAIL_OUT("$h is missing: update this test's lists");
}

for my $file (sort keys %phase_header) {
    my %inc = map { $_ => 1 } @{includes($file)};
    my @wrong = grep { $inc{$_} && $_ ne $phase_header{$file} } sort @phase_headers;
    is_deeply(\@wrong, [], "$file includes no other phase file's header")
        or diag("it calls another phase directly; go through phase.h (phase_enter, phase_done)");
}

for my $file (@plumbing) {
    my %inc = map { $_ => 1 } @{includes($file)};
    my @wrong = grep { $inc{$_} } sort @phase_headers;
    is_deeply(\@wrong, [], "$file includes no phase file's header");
}

{
    my %inc = map { $_ => 1 } @{includes('proxy/phase.c')};
    my @missing = grep { !$inc{$_} } sort values %phase_header;
    is_deeply(\@missing, [], 'phase.c includes every phase file\'s header (its table names them)');
}

# Every place in proxy/ that assigns a phase, but phase.c.
my @setters;
find(
    {
        no_chdir => 1,
        wanted   => sub {
            return unless /\.[ch]$/ && -f $_;
            (my $rel = $File::Find::name) =~ s{^\Q$src\E/}{};
            return if $rel eq 'proxy/phase.c';
            my $n = 0;
            for my $line (split /\n/, slurp($rel)) {
                $n++;
                push @setters, "$rel:$n: $line" if $line =~ /(?:->|\.)phase\s*=(?!=)/;
            }
        },
    },
    "$src/proxy");
is_deeply(\@setters, [], 'only phase.c sets a session\'s phase (phase_enter)')
    or diag(join("\n", @setters));

done_testing();
