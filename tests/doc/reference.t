#!/usr/bin/perl
# The reference (doc/pgnear.md) lists what the code knows, and nothing
# else: every command of the admin console (proxy/admin/grammar_table.c)
# has a row in "### Commands" and every row there names one; every metric
# that /metrics serves (the counters of proxy/base/stats.c, the families
# proxy/admin/metrics.c writes, the latency histograms of
# proxy/base/latency.c) has a row in "## Metrics" and every metric there
# is served; every SQLSTATE that the C sources give an error of pgnear's
# own (pg_error_set, session_fail_msg, job_problem, ...) has a row in
# "## Errors sent to clients", and every code there is one of them.
# The readers of the sources are first shown to find what they
# look for (a count, and names known to be there), so that a changed
# source stops the test rather than emptying it.
use strict;
use warnings;
use File::Basename qw(dirname);
use Test::More;

my $src = $ENV{PGNEAR_SRCDIR} // dirname(dirname(dirname(__FILE__)));

sub slurp {
    my ($path) = @_;
    open(my $fh, '<:encoding(UTF-8)', "$src/$path") or die "$path: $!\n";
    local $/;
    return scalar <$fh>;
}

# The first cell of each table row of a section's text: its code spans.
sub first_cells {
    my ($text) = @_;
    my @cells;
    for my $line (split /\n/, $text) {
        next unless $line =~ /^\|\s*(.*?)\s*(?<!\\)\|/;
        my $cell = $1;
        next if $cell =~ /^-+$/ || $cell =~ /^(?:command|metric|SQLSTATE)$/;
        push @cells, $cell;
    }
    return @cells;
}

my $md = slurp('doc/pgnear.md');

# ---- the console's commands
my $table_c = slurp('proxy/admin/grammar_table.c');
my ($defs) = $table_c =~ /admin_command_def commands\[\]\s*=\s*\{(.*?)\n\};/s
  or BAIL_OUT('commands[] not found in proxy/admin/grammar_table.c');
my @commands;
while ($defs =~ /\{\s*ADMIN_\w+,\s*\{([^}]*)\},\s*ARGS_\w+,\s*((?:"(?:[^"\\]|\\.)*"\s*)+),/g) {
    my ($words, $syntax) = ($1, $2);
    my $keywords = join ' ', $words =~ /"([A-Z]+)"/g;
    $syntax = join '', $syntax =~ /"((?:[^"\\]|\\.)*)"/g;
    # "MOVE DATABASE database TO REGION region | ... CUTOVER | ...": the
    # forms after the first, each a command's last word.
    my @forms = $syntax =~ /\|\s*\.\.\.\s*([A-Z]+)/g;
    push @forms, 'HOME' if $syntax =~ /\|\s*\Q$keywords\E HOME\b/;
    push @commands, { keywords => $keywords, forms => \@forms, syntax => $syntax };
}
cmp_ok(scalar @commands, '>=', 35, 'the commands of proxy/admin/grammar_table.c were read');
ok((grep { $_->{keywords} eq 'SHOW CLIENTS' } @commands), '... SHOW CLIENTS among them');
ok((grep { $_->{keywords} eq 'MOVE DATABASE' && "@{$_->{forms}}" eq 'CUTOVER REVERT FINISH ABORT' }
    @commands), '... and MOVE DATABASE with its four other forms');

my ($commands_md) = $md =~ /^### Commands\n(.*?)^##/ms
  or BAIL_OUT('no "### Commands" section in doc/pgnear.md');
my @rows = map { [/`([^`]+)`/g] } first_cells($commands_md);
cmp_ok(scalar @rows, '>=', 35, 'the rows of "### Commands" were read');
my %known = map { $_->{keywords} => $_ } @commands;
for my $c (@commands) {
    my $k = $c->{keywords};
    my @mine = grep { (grep { /^\Q$k\E\b/ } @$_) } @rows;
    ok(@mine, "command $k has a row");
    for my $form (@{ $c->{forms} }) {
        ok((grep { (grep { /^\Q$k\E\b.*\b\Q$form\E$/ } @$_) } @mine), "... and $k ... $form");
    }
}
for my $row (@rows) {
    for my $span (@$row) {
        my ($k) = grep { $span =~ /^\Q$_\E\b/ } sort { length $b <=> length $a } keys %known;
        ok($k, "documented command `$span` is one proxy/admin/grammar_table.c knows") or next;
        # Each keyword of the row is one of the command's syntax.
        my @unknown = grep { $known{$k}{syntax} !~ /\b\Q$_\E\b/ } $span =~ /\b([A-Z]{2,})\b/g;
        is("@unknown", '', "... and every keyword of `$span` is in its syntax");
    }
}

# ---- the metrics
my @metrics;
my $stats_c = slurp('proxy/base/stats.c');
# F(field, "metric", help) and the rows that name a metric in second place
# (the labelled ones, and the macros that make them); NULL is a
# histogram's part, served under the name below.
push @metrics, map { "pgnear_${_}_total" } $stats_c =~ /\bF\(\w+,\s*"(\w+)"/g;
push @metrics, map { "pgnear_${_}_total" } $stats_c =~ /^\s*\{?\s*"\w+"(?:\s+\w+)?,\s*"([a-z]\w+)",/mg;
my $metrics_c = slurp('proxy/admin/metrics.c');
push @metrics, map { "pgnear_$_" } grep { $_ ne 'name' } $metrics_c =~ /\bput_header\(out,\s*"(\w+)"/g;
my ($kinds) = $metrics_c =~ /kinds\[\]\[3\]\s*=\s*\{(.*?)\};/s
  or BAIL_OUT('the kinds[][3] of proxy/admin/metrics.c not found');
push @metrics, map { "pgnear_$_" } $kinds =~ /\{"(\w+)",/g;
my $latency_c = slurp('proxy/base/latency.c');
push @metrics, map { "pgnear_${_}_seconds" } $latency_c =~ /\[LATENCY_\w+\]\s*=\s*"(\w+)"/g;
my %served = map { $_ => 1 } @metrics;
cmp_ok(scalar keys %served, '>=', 50, 'the metrics of the sources were read: ' . scalar(keys %served));
for my $name (qw(pgnear_client_connections_total pgnear_login_errors_total pgnear_cancel_requests_total
                 pgnear_session_moves_total pgnear_session_move_hold_seconds pgnear_host_up
                 pgnear_user_clients pgnear_query_duration_seconds pgnear_info)) {
    ok($served{$name}, "... $name among them");
}

my ($metrics_md) = $md =~ /^## Metrics\n(.*?)^## /ms
  or BAIL_OUT('no "## Metrics" section in doc/pgnear.md');
my %documented;
for my $cell (first_cells($metrics_md)) {
    $documented{$_} = 1 for $cell =~ /`(pgnear_\w+)`/g;
}
for my $name (sort keys %served) {
    ok($documented{$name}, "metric $name is in the reference's table");
}
for my $name (sort keys %documented) {
    ok($served{$name}, "documented metric $name is served");
}

# ---- the SQLSTATEs pgnear itself sends
use File::Find qw(find);
my %sent;
find({ no_chdir => 1, wanted => sub {
    return unless /\.c$/;
    (my $rel = $File::Find::name) =~ s{^\Q$src\E/}{};
    my $c = slurp($rel);
    # the builders of errors, each with its code as a literal; a code as a
    # struct's field or a named constant
    while ($c =~ /\b(?:pg_error_set|session_fail_msg|job_problem|gram_fail|timeouts_fail|prep_fail_batch
                     |prep_build_error)\s*\((?:[^;"]|"(?:[^"\\]|\\.)*")*?"([0-9A-Z]{5})"/gx) {
        $sent{$1} //= $rel;
    }
    while ($c =~ /\.sqlstate\s*=\s*"([0-9A-Z]{5})"|_SQLSTATE\s+"([0-9A-Z]{5})"|\bsqlstate\s*=\s*"([0-9A-Z]{5})"/g) {
        $sent{ $1 // $2 // $3 } //= $rel;
    }
} }, map { "$src/$_" } qw(protocol routing proxy));
delete $sent{'00000'};    # a NOTICE's, successful completion
cmp_ok(scalar keys %sent, '>=', 30, 'the SQLSTATEs of the sources were read: ' . scalar(keys %sent));
ok($sent{$_}, "... $_ among them") for qw(28P01 53300 57P05 25P04 0A000);
my ($errors_md) = $md =~ /^## Errors sent to clients\n(.*?)^## /ms
  or BAIL_OUT('no "## Errors sent to clients" section in doc/pgnear.md');
my %listed = map { /^`([0-9A-Z]{5})`$/ ? ($1 => 1) : () } first_cells($errors_md);
for my $code (sort keys %sent) {
    ok($listed{$code}, "SQLSTATE $code ($sent{$code}) is in the reference's table");
}
for my $code (sort keys %listed) {
    ok($sent{$code}, "documented SQLSTATE $code is one pgnear sends");
}

done_testing();
