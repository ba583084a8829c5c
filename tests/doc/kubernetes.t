#!/usr/bin/perl
# The Kubernetes manifests of conf/kubernetes/ (doc/howto/kubernetes.md):
# every file parses as YAML (YAML::XS, libyaml-libyaml-perl), the objects
# name each other as they must (the StatefulSet's ConfigMap and Secrets,
# its governing Service, a Service per pod for the fleet's peers, the load
# balancer's target port), the probes are /readyz and /healthz on the
# metrics port, shutdown_ready_grace outlasts the readiness probe's
# failures, the preStop hook sends SIGUSR2, and the
# ConfigMap's pgnear.ini, rendered by the pod's own start command for each
# ordinal, is one pgnear accepts: `pgnear --check` on it, with the
# Secrets' files where the pod mounts them (generated certificates in
# place of the placeholders, the package's city table from conf/) and the
# peers' Service names pointed at 127.0.0.1, which is all that cannot be
# here.  --check refuses an unknown setting, so every setting the
# manifests use is one pgnear knows; the test last shows that it does.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use FindBin;
use Test::More;

my $src = $ENV{PGNEAR_SRCDIR} // dirname(dirname($FindBin::RealBin . '/x'));
my $pgnear = $ENV{PGNEAR} // "$src/build/pgnear";
my $dir = "$src/conf/kubernetes";

eval { require YAML::XS; 1 }
  or plan skip_all => 'YAML::XS is missing: scripts/install-deps.sh installs libyaml-libyaml-perl';

# ---- every manifest parses; the objects by kind and name
my @files = sort glob("$dir/*.yaml");
cmp_ok(scalar @files, '>=', 4, 'conf/kubernetes/ has its manifests: ' . join(', ', map { s{.*/}{}r } @files));
my (%obj, @all);
for my $f (@files) {
    my @docs = eval { YAML::XS::LoadFile($f) };
    ok(!$@ && @docs, "$f parses") or diag($@);
    for my $d (grep { ref eq 'HASH' } @docs) {
        ok($d->{apiVersion} && $d->{kind} && $d->{metadata}{name}, "... $f: an object with apiVersion, kind and name");
        push @all, $d;
        $obj{ $d->{kind} }{ $d->{metadata}{name} } = $d;
    }
}
my $sts = $obj{StatefulSet}{pgnear} or BAIL_OUT('no StatefulSet pgnear');
my $cm = $obj{ConfigMap}{'pgnear-config'} or BAIL_OUT('no ConfigMap pgnear-config');
my $ini = $cm->{data}{'pgnear.ini'} // BAIL_OUT('the ConfigMap has no pgnear.ini');
my $pod = $sts->{spec}{template}{spec};
my ($c) = @{ $pod->{containers} };

# ---- the objects name each other
my %labels = %{ $sts->{spec}{template}{metadata}{labels} };
is_deeply($sts->{spec}{selector}{matchLabels}, \%labels, "the StatefulSet's selector matches its pods' labels");
ok($obj{Service}{ $sts->{spec}{serviceName} }, "its governing Service, $sts->{spec}{serviceName}, exists");
is($obj{Service}{ $sts->{spec}{serviceName} }{spec}{clusterIP}, 'None', '... headless');
my %mount = map { $_->{name} => $_->{mountPath} } @{ $c->{volumeMounts} };
for my $v (@{ $pod->{volumes} }) {
    ok($mount{ $v->{name} }, "volume $v->{name} is mounted");
    if (my $n = $v->{configMap} && $v->{configMap}{name}) {
        ok($obj{ConfigMap}{$n}, "... its ConfigMap $n is among the manifests");
    } elsif ($n = $v->{secret} && $v->{secret}{secretName}) {
        ok($obj{Secret}{$n}, "... its Secret $n is among the manifests");
    }
}
my %ports = map { $_->{name} => $_->{containerPort} } @{ $c->{ports} };
my ($listen_port) = $ini =~ /^listen_port\s*=\s*(\d+)/m;
my ($metrics_port) = $ini =~ /^metrics_addr\s*=\s*\S*:(\d+)/m;
is($ports{postgres}, $listen_port, "the container's postgres port is listen_port ($listen_port)");
is($ports{metrics}, $metrics_port, "its metrics port is metrics_addr's ($metrics_port)");
is($c->{readinessProbe}{httpGet}{path}, '/readyz', 'ready when /readyz says so');
is($c->{readinessProbe}{httpGet}{port}, 'metrics', '... on the metrics port');
is($c->{livenessProbe}{httpGet}{path}, '/healthz', 'alive when /healthz says so');
is($c->{livenessProbe}{httpGet}{port}, 'metrics', '... on the metrics port');
# A stopping pod keeps taking connections while it is not ready, longer
# than the readiness probe takes to see it.
my ($grace) = $ini =~ /^shutdown_ready_grace\s*=\s*(\d+)s\s*$/m;
my $rp = $c->{readinessProbe};
cmp_ok($grace // 0, '>', ($rp->{periodSeconds} // 10) * ($rp->{failureThreshold} // 3),
       'shutdown_ready_grace is longer than the readiness probe\'s period times its failure threshold');
my @lb = grep { ($_->{spec}{type} // '') eq 'LoadBalancer' } values %{ $obj{Service} };
is(scalar @lb, 1, 'one Service of type LoadBalancer');
is_deeply($lb[0]{spec}{selector}, \%labels, "... which selects the StatefulSet's pods");
ok((grep { $_->{targetPort} eq 'postgres' || $_->{targetPort} eq $listen_port } @{ $lb[0]{spec}{ports} }),
    '... and sends to listen_port');
like($ini, qr/^proxy_protocol\s*=\s*(optional|required)/m, 'pgnear reads the PROXY header the balancer sends');

# ---- a drain, not a cut: preStop sends SIGUSR2 to pgnear (PID 1, exec'd)
my $prestop = join ' ', @{ $c->{lifecycle}{preStop}{exec}{command} // [] };
like($prestop, qr/\bkill -USR2 1\b/, 'preStop sends SIGUSR2 to PID 1');
like(join(' ', @{ $c->{command} }), qr/\bexec \S*pgnear\b/, 'the start command execs pgnear, so that it is PID 1');
cmp_ok($pod->{terminationGracePeriodSeconds} // 30, '>=', 300, 'sessions get time to end: terminationGracePeriodSeconds');

# ---- the fleet: a peer per replica, each a Service of that pod
my ($peers) = $ini =~ /^peers\s*=\s*(.+)$/m;
my @peers = map { [/^(\d+)@([^:]+):(\d+)$/] } split /[,\s]+/, $peers // '';
is(scalar @peers, $sts->{spec}{replicas}, "peers lists every replica ($sts->{spec}{replicas})");
for my $i (0 .. $#peers) {
    my ($id, $host, $port) = @{ $peers[$i] };
    is($id, $i + 1, "peer $id is pgnear-$i (ordinal + 1, as the start command writes peer_id)");
    my $svc = $obj{Service}{$host};
    ok($svc && ($svc->{spec}{selector}{'statefulset.kubernetes.io/pod-name'} // '') eq "pgnear-$i",
        "... $host is a Service of pod pgnear-$i");
    is($port, $listen_port, '... on listen_port');
}
like($ini, qr/^peer_secret_file\s*=/m, 'the fleet signs its forwarded cancel requests (peer_secret_file)');

# ---- pgnear --check on the ini, as each pod renders it
SKIP: {
    my $n = $sts->{spec}{replicas};
    skip "no pgnear binary ($pgnear): build it, or run through make check", 3 * $n + 2 unless -x $pgnear;
    skip 'no openssl', 3 * $n + 2 unless system('openssl version >/dev/null 2>&1') == 0;
    my $tmp = tempdir(CLEANUP => 1);
    # Each mount's files under $tmp, from the ConfigMap's data and the Secrets' stringData.
    my %root = map { $mount{$_} => "$tmp/mnt/$_" } keys %mount;
    my $at = sub {
        my ($p) = @_;
        for my $m (sort { length $b <=> length $a } keys %root) {
            return "$root{$m}$1" if $p =~ m{^\Q$m\E(/.*|)$};
        }
        return $p;
    };
    for my $v (@{ $pod->{volumes} }) {
        my $to = $root{ $mount{ $v->{name} } };
        make_path($to);
        my $data = $v->{configMap} ? $obj{ConfigMap}{ $v->{configMap}{name} }{data}
                 : $v->{secret} ? $obj{Secret}{ $v->{secret}{secretName} }{stringData}
                 : {};
        for my $k (keys %{ $data // {} }) {
            open my $fh, '>', "$to/$k" or die "$to/$k: $!";
            print $fh $data->{$k};
            close $fh;
        }
    }
    # Certificates of our own where the Secrets hold placeholders.
    my ($ca) = $ini =~ /^server_tls_ca_file\s*=\s*(\S+)/m;
    my ($crt) = $ini =~ /^client_tls_cert_file\s*=\s*(\S+)/m;
    my ($key) = $ini =~ /^client_tls_key_file\s*=\s*(\S+)/m;
    is(system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=kubernetes.t -keyout '"
              . $at->($key) . "' -out '" . $at->($crt) . "' 2>/dev/null"), 0,
       'a certificate and key of our own where the pod mounts them');
    system('cp', $at->($crt), $at->($ca)) == 0 or die "cp: $?";
    # pgnear, for the start command: --check on the file it wrote, with what
    # cannot be here pointed home (the mounts, the package's city table, the
    # peers' Service names), and nothing else changed.
    my @sed = map { ('-e', "s#$_#$root{$_}#g") } sort { length $b <=> length $a } keys %root;
    push @sed, '-e', "s#/usr/share/pgnear/cities.csv#$src/conf/cities.csv#", '-e', 's#@pgnear-[0-9]*:#@127.0.0.1:#g';
    my $stub = "$tmp/pgnear";
    open my $fh, '>', $stub or die "$stub: $!";
    print $fh "#!/bin/sh\nsed " . join(' ', map { "'$_'" } @sed) . " \"\$1\" >\"\$1.here\" &&\n"
      . "exec '$pgnear' --check \"\$1.here\"\n";
    close $fh;
    chmod 0755, $stub;
    my $cmd = $c->{command}[-1];
    $cmd =~ s{(/[\w./-]+)}{ $1 eq '/usr/bin/pgnear' ? $stub : $at->($1) }ge;
    my $rendered = $at->('/run/pgnear') . '/pgnear.ini';
    for my $ord (0 .. $n - 1) {
        local $ENV{HOSTNAME} = "pgnear-$ord";
        open my $sh, '-|', '/bin/sh', '-c', "$cmd 2>&1" or die "sh: $!";
        my $out = do { local $/; <$sh> } // '';
        close $sh;
        is($?, 0, "pgnear-$ord: its start command runs, and pgnear --check accepts the file") or diag($out);
        like($out, qr/configuration OK/, "... pgnear says so") or diag($out);
        my $text = do { local (@ARGV, $/) = $rendered; <> } // '';
        like($text, qr/^peer_id = @{[ $ord + 1 ]}$/m, '... with peer_id = ' . ($ord + 1));
    }
    # The check can fail: a setting pgnear does not know.
    my $bad = $ini =~ s/^(\[pgnear\]\n)/$1no_such_setting = 1\n/mr;
    open $fh, '>', "$tmp/bad.ini" or die;
    print $fh $bad;
    close $fh;
    my $got = `'$stub' '$tmp/bad.ini' 2>&1`;
    isnt($?, 0, 'an unknown setting in the file fails the check');
    like($got, qr/unrecognized setting "no_such_setting"/, '... naming it') or diag($got);
}

done_testing();
