# The Grafana dashboard conf/grafana/pgnear.json against a running
# pgnear's /metrics: every PromQL expression in it (panels' targets and the
# template variables' label_values queries) names only metrics and labels
# that /metrics serves, and every {{label}} of a legend is one its query
# keeps.  A small PromQL tokenizer: metric names, label matchers, by /
# without / on / ignoring lists; functions, aggregations, keywords,
# numbers, durations and Grafana's $variables are passed over.  The labels
# Prometheus adds to every scraped series (instance, job) count as served.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use Test::More;
use JSON::PP;
use PgNearTest;

my $file = "$FindBin::RealBin/../../conf/grafana/pgnear.json";
ok -f $file, 'conf/grafana/pgnear.json exists' or BAIL_OUT('no dashboard');
my $dash = eval { JSON::PP->new->decode(slurp_file($file)) };
ok $dash, 'the dashboard is JSON' or diag $@;
is $dash->{uid}, 'pgnear-overview', 'a fixed uid (provisioning and links keep to it)';

my $us = PgNearTest::Cluster->new(name => 'us-east');
my $eu = PgNearTest::Cluster->new(name => 'eu-west');
my $mport = free_port();
my $p = PgNearTest::Proxy->new(regions => [$us, $eu],
    settings => { auth => 'passthrough', server_tls => 'disable', metrics_addr => "127.0.0.1:$mport",
                  health_check_interval => '1s' });

# Traffic in both regions, so that each region's histograms have samples; the
# round-trip estimate comes after five health checks.
for my $region ('us-east', 'eu-west') {
    my ($rc, $out, $err) = psql($p->conninfo(dbname => 'movr', options => "-c pgnear.region=$region"),
                                'SELECT 1');
    is $rc, 0, "a query through $region" or diag $err;
}

# Served: metric name => { label => 1 }, from the samples (so _bucket has le).
my %served;
my $scrape = sub {
    my ($status, $body) = http_get($mport, '/metrics');
    %served = ();
    for (split /\n/, $body // '') {
        next if /^#/ || !/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /;
        my ($name, $labels) = ($1, $2 // '');
        my $set = $served{$name} //= {};
        $set->{$1} = 1 while $labels =~ /([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g;
    }
    return scalar keys %served;
};

# Every PromQL expression of the dashboard, with where it is and its legend.
my @exprs;
for my $panel (@{ $dash->{panels} }, map { @{ $_->{panels} // [] } } @{ $dash->{panels} }) {
    for my $t (@{ $panel->{targets} // [] }) {
        push @exprs, { where => "panel '$panel->{title}' $t->{refId}", expr => $t->{expr},
                       legend => $t->{legendFormat} // '' };
    }
}
for my $v (@{ $dash->{templating}{list} // [] }) {
    next unless ($v->{type} // '') eq 'query';
    my $q = ref $v->{query} ? $v->{query}{query} : $v->{query};
    push @exprs, { where => "variable \$$v->{name}", expr => $q, legend => '' };
}
ok scalar(@exprs) >= 20, scalar(@exprs) . ' PromQL expressions in the dashboard';

my %FUNCTIONS = map { $_ => 1 } qw(
    abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week
    days_in_month delta deriv exp floor histogram_quantile holt_winters hour idelta increase irate
    label_join label_replace ln log2 log10 minute month predict_linear rate resets round scalar sgn
    sort sort_desc sqrt time timestamp vector year avg_over_time min_over_time max_over_time
    sum_over_time count_over_time quantile_over_time stddev_over_time stdvar_over_time
    last_over_time present_over_time label_values);
my %AGGREGATIONS = map { $_ => 1 } qw(sum min max avg group stddev stdvar count count_values bottomk topk quantile);
my %KEYWORDS = map { $_ => 1 } qw(by without on ignoring group_left group_right bool offset and or unless inf nan);
my %TARGET_LABELS = (instance => 1, job => 1);

# (metrics => [names], matchers => [[metric, label]], grouping => [labels]) of one expression.
sub tokenize {
    my ($e) = @_;
    my (@metrics, @matchers, @grouping);
    # Grafana's label_values(selector, label): the selector is PromQL, the label a grouping's
    if ($e =~ /^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$/s) {
        my ($m, $l, $g) = tokenize($1);
        return ($m, $l, [@$g, $2]);
    }
    my $last_metric;
    pos($e) = 0;
    while (pos($e) < length $e) {
        if ($e =~ /\G\s+/gc || $e =~ /\G"(?:[^"\\]|\\.)*"/gc || $e =~ /\G'(?:[^'\\]|\\.)*'/gc) {
            next;
        } elsif ($e =~ /\G\[[^\]]*\]/gc) {          # a range or subquery: [5m], [$__rate_interval]
            next;
        } elsif ($e =~ /\G\{/gc) {                   # label matchers of the metric before
            while ($e =~ /\G\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*,?/gc) {
                push @matchers, [$last_metric, $1];
            }
            $e =~ /\G\s*\}/gc or die "unclosed matchers at " . pos($e) . " in: $e\n";
        } elsif ($e =~ /\G([a-zA-Z_:][a-zA-Z0-9_:]*)/gc) {
            my $word = $1;
            if ($KEYWORDS{$word} && $word =~ /^(?:by|without|on|ignoring|group_left|group_right)$/) {
                if ($e =~ /\G\s*\(([^)]*)\)/gc) {
                    push @grouping, grep { length } map { s/^\s+|\s+$//gr } split /,/, $1;
                }
            } elsif ($KEYWORDS{$word}) {
            } elsif ($e =~ /\G(?=\s*\()/ && ($FUNCTIONS{$word} || $AGGREGATIONS{$word})) {
            } elsif ($AGGREGATIONS{$word} && $e =~ /\G(?=\s*(?:by|without)\b)/) {
            } elsif ($e =~ /\G(?=\s*\()/) {
                die "unknown function $word in: $e\n";
            } else {
                push @metrics, $word;
                $last_metric = $word;
            }
        } elsif ($e =~ /\G\$[a-zA-Z_][a-zA-Z0-9_]*|\G\$\{[^}]*\}/gc) {   # a Grafana variable
            next;
        } elsif ($e =~ /\G(?:\d+(?:\.\d*)?(?:e[+-]?\d+)?|0x[0-9a-f]+)(?:ms|s|m|h|d|w|y)?/gci) {
            next;
        } elsif ($e =~ m{\G(?:==|!=|>=|<=|[-+*/%^<>(),])}gc) {
            $last_metric = undef if substr($e, pos($e) - 1, 1) eq ')';
            next;
        } else {
            die "cannot read '" . substr($e, pos($e), 10) . "' in: $e\n";
        }
    }
    return (\@metrics, \@matchers, \@grouping);
}

# Everything the dashboard names must be there at once: wait for the estimate and the histograms.
my %wanted;
for my $x (@exprs) {
    my ($m) = eval { tokenize($x->{expr}) };
    $wanted{$_} = 1 for @{ $m // [] };
}
wait_until(sub { $scrape->(); !grep { !$served{$_} } keys %wanted }, timeout => 30);

my @bad;
for my $x (@exprs) {
    my ($metrics, $matchers, $grouping) = eval { tokenize($x->{expr}) };
    if (!$metrics) { push @bad, "$x->{where}: $@"; next }
    push @bad, "$x->{where}: names no metric" unless @$metrics;
    my %labels = %TARGET_LABELS;
    for my $m (@$metrics) {
        if (!$served{$m}) { push @bad, "$x->{where}: $m is not served"; next }
        %labels = (%labels, %{ $served{$m} });
    }
    for (@$matchers) {
        my ($m, $l) = @$_;
        push @bad, "$x->{where}: label $l of " . ($m // '?') . ' is not served'
            unless $TARGET_LABELS{$l} || (defined $m && $served{$m} && $served{$m}{$l});
    }
    push @bad, "$x->{where}: by/without label $_ is on none of its metrics" for grep { !$labels{$_} } @$grouping;
    # a legend's {{label}}: one its aggregation keeps (the by list); none after one without
    # a by list; else any of its metrics'
    my %kept = @$grouping ? (map { $_ => 1 } @$grouping)
             : $x->{expr} =~ /^\s*(?:sum|max|min|avg|count|group)\s*\(/ ? () : %labels;
    push @bad, "$x->{where}: legend {{$_}} is not a label of its result" for grep { !$kept{$_} } $x->{legend} =~ /\{\{\s*(\w+)\s*\}\}/g;
}
is_deeply \@bad, [], 'every metric, label matcher, grouping label and legend label of the dashboard is served'
    or diag join "\n", @bad;

# The tokenizer itself finds what is wrong.
my @caught = eval { tokenize('sum by (regio) (rate(pgnear_no_such_total{regionx="a"}[5m]))') };
is_deeply \@caught, [['pgnear_no_such_total'], [['pgnear_no_such_total', 'regionx']], ['regio']],
    'the tokenizer reads metric, matcher and grouping of a made-up expression';
ok !$served{pgnear_no_such_total}, '... whose metric the check would refuse';

# Panels the issue asks for, by what they show.
my $all = join "\n", map { $_->{expr} } @exprs;
like $all, qr/pgnear_region_sessions/, 'sessions per region';
like $all, qr/rate\(pgnear_transaction_duration_seconds_count/, 'transactions/s per region';
like $all, qr/histogram_quantile\(0\.5, .*_bucket/, 'p50 from a histogram';
like $all, qr/histogram_quantile\(0\.99, .*_bucket/, 'p99 from a histogram';
like $all, qr/pgnear_server_wait_seconds_bucket/, 'pool waits';
like $all, qr/pgnear_nearest_transactions_total/, 'forwarded writes';
like $all, qr/pgnear_host_fenced/, 'fenced hosts';
like $all, qr/sum by \(source\) \(rate\(pgnear_routing_decisions_total/, 'routing by source';

done_testing;
