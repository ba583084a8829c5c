package PgNearTest;

# Integration-test harness for pgnear.  See the POD at the end of this file
# for the API; tests/integration/000_harness.t exercises all of it.

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use Fcntl qw(O_CREAT O_EXCL O_WRONLY);
use File::Basename qw(basename dirname);
use File::Path qw(remove_tree);
use File::Spec;
use File::Temp ();
use IO::Select;
use IO::Socket::IP;
use IPC::Run ();
use POSIX ();
use Scalar::Util qw(weaken blessed);
use Time::HiRes ();
use Digest::SHA qw(sha256 hmac_sha256);
use JSON::PP ();
use MIME::Base64 qw(encode_base64 decode_base64);
require Test::Builder;

our $VERSION = '0.1';

our @EXPORT = qw(
  psql pgbench parse_pgbench run_cmd require_tool pg_bindir
  free_port have_ipv6 wait_until tmpdir
  sqlstate dbi_connect conninfo_string make_scram_verifier
  slurp_file write_file sanitizer_of haversine_km
  migrations_helper schema_history schema_states http_get
  in_background background_result
);

# Fixed credentials created in every Cluster.
our $APP_USER        = 'app';
our $APP_PASSWORD    = 'app-secret';
our $APP_DB          = 'movr';
our $PGNEAR_USER     = 'pgnear';
our $PGNEAR_PASSWORD = 'pgnear-secret';

our $OWNER_PID = $$;    # only this process cleans up (forked children do not)

my $ROOT;               # per-process temp root, /tmp/pgnear-test-NAME-XXXXXX
my $REGISTRY;           # file read by the guardian if we die without cleaning up
my $GUARD_PID;
my @LIVE;               # weak refs to Proxy / Cluster objects
my %MY_PORTS;           # port => lock file
my @PROXY_LOGS;         # shown on failure
my %JSON_LOGS;          # log path => 1: every line must be a JSON line (PGNEAR_TEST_LOG_FORMAT=json)
my $JSON_LOG_BAD = 0;   # a pgnear's log had a line that is not one
my $PORT_LOCK_DIR = '/tmp/pgnear-test-ports';

# A clean, predictable client environment: no stray libpq settings.
for my $k (keys %ENV) {
    delete $ENV{$k} if $k =~ /^PG(?!NEAR)[A-Z]/;
}
delete $ENV{LANGUAGE};
$ENV{LC_ALL} = 'C.UTF-8';

# Turn INT/TERM/HUP into an ordinary exit, so that END blocks clean up.
for my $sig (qw(INT TERM HUP)) {
    next if defined $SIG{$sig} && $SIG{$sig} ne '' && $SIG{$sig} ne 'DEFAULT';
    $SIG{$sig} = sub {
        my $n = { INT => 2, TERM => 15, HUP => 1 }->{$sig};
        if ($$ != $OWNER_PID) { POSIX::_exit(128 + $n) }
        print STDERR "# PgNearTest: caught SIG$sig, cleaning up\n";
        exit(128 + $n);
    };
}

sub _debug { Test::Builder->new->note("PgNearTest: @_") if $ENV{PGNEAR_TEST_DEBUG} }

# ---------------------------------------------------------------- temp root

sub _root {
    return $ROOT if defined $ROOT;
    (my $tn = basename($0)) =~ s/\.t$//;
    $tn =~ s/[^\w-]/_/g;
    $tn = substr($tn, 0, 16);
    $ROOT = File::Temp::tempdir("pgnear-test-$tn-XXXXXX", DIR => '/tmp', CLEANUP => 0);
    chmod 0711, $ROOT or die "chmod $ROOT: $!";
    $REGISTRY = "$ROOT/.cleanup";
    write_file($REGISTRY, '');
    _start_guardian() if $$ == $OWNER_PID;
    return $ROOT;
}

# A diagnostic line: TAP's, where Test::More is loaded (a test); else on stderr (a benchmark).
sub note_diag {
    my ($msg) = @_;
    return Test::More::diag($msg) if defined &Test::More::diag;
    print STDERR map { "# $_\n" } split /\n/, $msg;
    return 0;
}

sub tmpdir {
    my (%o) = @_;
    my $prefix = $o{name} // 'tmp';
    $prefix =~ s/[^\w.-]/_/g;
    $prefix = substr($prefix, 0, 16);
    my $d = File::Temp::tempdir("$prefix-XXXX", DIR => _root(), CLEANUP => 0);
    chmod(($o{mode} // 0700), $d) or die "chmod $d: $!";
    _chown($o{owner}, $d) if $o{owner};
    return $d;
}

# chown to a user by name; only meaningful (and only done) when root.
sub _chown {
    my ($user, @paths) = @_;
    return unless $> == 0 && defined $user;
    my (undef, undef, $uid, $gid) = getpwnam($user);
    die "PgNearTest: no such user '$user'\n" unless defined $uid;
    chown($uid, $gid, @paths) == @paths or die "chown $user @paths: $!";
}

# The OS account that runs PostgreSQL: postgres when we are root, else us.
sub _pg_os_user { $> == 0 ? 'postgres' : scalar getpwuid($>) }

sub _as_pg_user {
    my @cmd = @_;
    return @cmd unless $> == 0;
    die "PgNearTest: user 'postgres' does not exist\n" unless defined getpwnam('postgres');
    return (require_tool('setpriv'), '--reuid=postgres', '--regid=postgres', '--init-groups', '--', @cmd);
}

# ---------------------------------------------------------------- guardian
# A detached process that outlives us if we are SIGKILLed: it then stops the
# servers and processes listed in $REGISTRY and removes the temp root.

sub _start_guardian {
    my $parent = $$;
    my $pid = fork;
    die "PgNearTest: fork: $!" unless defined $pid;
    if ($pid == 0) {
        eval {
            POSIX::setsid();
            open STDIN,  '<', '/dev/null';
            open STDOUT, '>', '/dev/null';
            open STDERR, '>', '/dev/null';
            if (opendir my $dh, '/proc/self/fd') {
                my @fds = grep { /^\d+$/ && $_ > 2 } readdir $dh;
                closedir $dh;
                POSIX::close($_) for @fds;    # do not hold the TAP pipe open
            }
            $SIG{$_} = 'IGNORE' for qw(INT HUP PIPE QUIT);
            $SIG{TERM} = sub { POSIX::_exit(0) };
            Time::HiRes::sleep(0.5) while getppid() == $parent;
            $SIG{TERM} = 'IGNORE';
            _cleanup_from_registry();
        };
        POSIX::_exit(0);
    }
    $GUARD_PID = $pid;
}

sub _reg_add {
    my ($line) = @_;
    _root();
    open my $fh, '>>', $REGISTRY or return;
    print $fh "$line\n";
    close $fh;
}

sub _reg_del {
    my ($line) = @_;
    return unless defined $REGISTRY && -e $REGISTRY;
    my @keep = grep { $_ ne "$line\n" } do { open my $fh, '<', $REGISTRY or return; <$fh> };
    write_file("$REGISTRY.new", join('', @keep));
    rename "$REGISTRY.new", $REGISTRY;
}

sub _cleanup_from_registry {
    my @lines = do { open my $fh, '<', $REGISTRY or return; <$fh> };
    chomp @lines;
    my @pids   = map { /^pid (\d+)$/    ? $1 : () } @lines;
    my @pgdata = map { /^pgdata (.+)$/  ? $1 : () } @lines;
    my @files  = map { /^unlink (.+)$/  ? $1 : () } @lines;
    # "pgroup N": a supervisor's process group (Patroni), killed first, so
    # that it starts no PostgreSQL again while the data directories stop.
    my @groups = map { /^pgroup (\d+)$/ ? $1 : () } @lines;
    if (@groups) {
        kill 'KILL', map { -$_ } @groups;
        Time::HiRes::sleep(0.5);
    }
    kill 'INT', @pids if @pids;
    _pg_kill_datadir($_) for @pgdata;
    kill 'KILL', @pids if @pids;
    unlink @files;
    remove_tree($ROOT) unless $ENV{PGNEAR_TEST_KEEP};
}

# Immediate shutdown of a postmaster by signal (no pg_ctl needed).
sub _pg_kill_datadir {
    my ($datadir) = @_;
    my $pid = _postmaster_pid($datadir) or return;
    kill 'QUIT', $pid;
    for (1 .. 100) {
        return unless kill 0, $pid;
        Time::HiRes::sleep(0.05);
    }
    kill 'KILL', $pid;
}

sub _postmaster_pid {
    my ($datadir) = @_;
    open my $fh, '<', "$datadir/postmaster.pid" or return;
    my $pid = <$fh>;
    return unless defined $pid && $pid =~ /^(\d+)/;
    return $1;
}

# ---------------------------------------------------------------- cleanup

sub _register {
    my ($obj) = @_;
    push @LIVE, $obj;
    weaken($LIVE[-1]);
}

END {
    my $sanitizer_hit = 0;
    if ($$ == $OWNER_PID) {
        # How long the file ran, for whoever keeps the suite within CI's time.
        Test::Builder->new->note(sprintf 'PgNearTest: this test file ran %.0f s', time - $^T);
        my $failed = $? || !Test::Builder->new->is_passing;
        # A file whose checks all passed but whose process ends with a status: said where it is
        # known, so that a status set later (global destruction) is told from one set before.
        Test::Builder->new->diag("PgNearTest: the file's status is $? as it ends, its checks passing")
          if $? && Test::Builder->new->is_passing;
        local ($?, $!, $@);
        my @objs = grep { defined } @LIVE;
        # Every pgnear is told at once, then each is waited for: on a loaded machine an exit
        # (the sanitizers' leak check included) can take seconds, which would add up in turn.
        my @proxies = grep { $_->isa('PgNearTest::Proxy') } reverse @objs;
        my @told = grep { eval { $_->{pid} && $_->is_running && kill 'INT', $_->{pid} } } @proxies;
        for my $o (@told) { eval { $o->wait_for_exit(timeout => 10) } }
        for my $o (@proxies) { eval { $o->_cleanup } }
        for my $o (grep { $_->isa('PgNearTest::Cluster') } reverse @objs) { eval { $o->_cleanup } }
        for my $o (grep { $_->isa('PgNearTest::Relay') } reverse @objs) { eval { $o->_cleanup } }
        # PGNEAR_TEST_LOG_FORMAT=json: a line of a pgnear's log that is not a JSON line fails the file.
        for my $log (grep { -e } sort keys %JSON_LOGS) {
            $JSON_LOG_BAD = 1 unless eval { json_log_check($log) };
        }
        # A sanitizer report in any pgnear log fails the test file, passing or not.
        for my $log (grep { -s } @PROXY_LOGS) {
            my $text = eval { slurp_file($log) } // next;
            next unless $text =~ /(ERROR: (?:Address|Leak|Undefined)Sanitizer|WARNING: ThreadSanitizer|runtime error:)/;
            $sanitizer_hit = 1;
            Test::Builder->new->diag("sanitizer report in $log:\n" . _tail($text, 80));
        }
        if ($failed) {
            for my $log (grep { -s } @PROXY_LOGS) {
                my $tail = _tail(eval { slurp_file($log) } // "(not read: $@)", 40);
                Test::Builder->new->diag("tail of $log:\n$tail");
            }
        }
        unlink values %MY_PORTS;
        if ($GUARD_PID) {
            kill 'TERM', $GUARD_PID;
            waitpid($GUARD_PID, 0);
        }
        if (defined $ROOT) {
            if ($ENV{PGNEAR_TEST_KEEP}) { print STDERR "# PgNearTest: kept $ROOT\n" }
            else                        { _remove_root() }
        }
    }
    $? = 97 if $sanitizer_hit;
    $? = 96 if $JSON_LOG_BAD && !$?;
}

# The temporary root, as the file ends.  File::Path croaks on some races
# (a directory that changed under it); a die in END would skip
# Test::More's END and leave errno as the file's status: said instead.
sub _remove_root {
    my $ok = eval { remove_tree($ROOT, { error => \my $errors }); @$errors ? $errors : 1 };
    my @why = !defined $ok ? ($@) : ref $ok ? map { my ($f, $m) = %$_; "$f: $m" } @$ok : ();
    Test::Builder->new->diag("PgNearTest: $ROOT not removed whole: " . join('; ', @why)) if @why;
}

# ---------------------------------------------------------------- utilities

# pgnear's log lines under log_format = json: one object a line, with time
# (RFC 3339, microseconds, UTC), level, pid and message, and where there is
# one worker, session_id, client_addr, region, host, sqlstate.
my $JSON_LINE = JSON::PP->new->utf8;
my %LOG_LEVELS = map { $_ => 1 } qw(DEBUG LOG WARNING ERROR FATAL);

# The object of a JSON log line, or undef with $@ saying why it is not one.
sub json_log_line {
    my ($line) = @_;
    my $o = eval { $JSON_LINE->decode($line) };
    return undef unless defined $o;
    if (ref $o ne 'HASH') { $@ = 'not an object'; return undef }
    my @bad = grep { !defined $o->{$_} } qw(time level pid message);
    push @bad, 'time' if defined $o->{time} && $o->{time} !~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
    push @bad, 'level' if defined $o->{level} && !$LOG_LEVELS{ $o->{level} };
    push @bad, 'pid' if defined $o->{pid} && $o->{pid} !~ /^\d+$/;
    for my $k (qw(worker session_id)) { push @bad, $k if defined $o->{$k} && $o->{$k} !~ /^\d+$/ }
    if (@bad) { $@ = 'missing or malformed: ' . join(', ', @bad); return undef }
    return $o;
}

# A log's text with each JSON line written as the text line it stands for
# ("2026-11-28 08:33:05.123 UTC LOG c12: message"), so that a test's
# patterns read either format; any other line as it is.
sub log_as_text {
    my ($text) = @_;
    return $text unless $text =~ /^\{/m;
    my $out = '';
    for my $line (split /^/, $text) {
        my $o = $line =~ /^\{.*\}\s*$/ ? json_log_line($line) : undef;
        if (!$o) { $out .= $line; next }
        my ($d, $t) = $o->{time} =~ /^(\S+)T(\d\d:\d\d:\d\d\.\d{3})/;
        my $msg = $o->{message};
        utf8::encode($msg);
        $out .= "$d $t UTC $o->{level} " . ($o->{session_id} ? "c$o->{session_id}: " : '') . "$msg\n";
    }
    return $out;
}

# Whether every line of a pgnear's log is a JSON log line; each one that is
# not is told (at most 5), for a test file's failure.
sub json_log_check {
    my ($path) = @_;
    my ($n, @bad) = (0);
    open my $fh, '<', $path or return 1;
    while (my $line = <$fh>) {
        $n++;
        chomp(my $l = $line);
        next if json_log_line($l);
        (my $why = $@) =~ s/ at \S+ line \d+\.\n?$//;
        push @bad, "line $n: $why: " . substr($l, 0, 300);
    }
    return 1 unless @bad;
    Test::Builder->new->diag("PgNearTest: $path: " . scalar(@bad) . " of $n lines are not JSON log lines "
                             . "(PGNEAR_TEST_LOG_FORMAT=json):\n  " . join("\n  ", @bad[0 .. ($#bad < 4 ? $#bad : 4)]));
    return 0;
}

# utime and stime of a process, all its threads, in clock ticks
# (/proc/PID/stat); an empty list when it is gone.  For the benches.
sub proc_cpu_ticks {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return ();
    my $stat = <$fh> // return ();
    my @f = split ' ', substr($stat, rindex($stat, ')') + 2); # past "pid (comm)"
    return ($f[11], $f[12]);
}

# Nanoseconds on a CPU and runnable without one, and the times it was
# given one, summed over a process's threads (/proc/PID/task/*/schedstat).
sub proc_schedstat {
    my ($pid) = @_;
    my ($run, $wait, $slices) = (0, 0, 0);
    for my $f (glob "/proc/$pid/task/*/schedstat") {
        open my $fh, '<', $f or next; # a thread that just ended
        my @a = split ' ', (<$fh> // next);
        $run += $a[0];
        $wait += $a[1];
        $slices += $a[2];
    }
    return ($run, $wait, $slices);
}

sub slurp_file {
    my ($path) = @_;
    open my $fh, '<', $path or die "PgNearTest: cannot read $path: $!\n";
    local $/;
    my $c = <$fh>;
    return $c // '';
}

sub write_file {
    my ($path, $content, %o) = @_;
    open my $fh, '>', $path or die "PgNearTest: cannot write $path: $!\n";
    print $fh $content;
    close $fh or die "PgNearTest: cannot write $path: $!\n";
    chmod($o{mode}, $path) or die "chmod $path: $!" if defined $o{mode};
    _chown($o{owner}, $path) if $o{owner};
    return $path;
}

sub _tail {
    my ($text, $n) = @_;
    my @l = split /\n/, $text // '';
    @l = @l[-$n .. -1] if @l > $n;
    return join("\n", @l) . "\n";
}

# in_background(sub { ...; return %result }): runs the code in a child
# process (a client that must wait while the test goes on) and returns a
# handle; background_result($handle) waits up to 20 s for the child's hash
# of one-line values, { died => why } when it died or never answered.
my ($background_dir, $background_n);

sub in_background {
    my ($code) = @_;
    $background_dir //= tmpdir(name => 'background');
    my $file = "$background_dir/result-" . ++$background_n;
    my $kid = fork // die "fork: $!";
    if ($kid == 0) {
        my %out;
        eval { %out = $code->(); 1 } or $out{died} = $@;
        write_file("$file.new", join('', map { my $v = $out{$_} // ''; $v =~ s/\n/ /g; "$_=$v\n" } sort keys %out));
        rename "$file.new", $file;
        POSIX::_exit(0);
    }
    return { kid => $kid, file => $file };
}

sub background_result {
    my ($bg, %o) = @_;
    my $timeout = $o{timeout} // 20;
    my $done = wait_until(sub { -e $bg->{file} }, timeout => $timeout);
    waitpid($bg->{kid}, 0);
    return { died => "no result within $timeout s" } unless $done;
    return { map { /^(\w+)=(.*)$/ ? ($1, $2) : () } split /\n/, slurp_file($bg->{file}) };
}

sub wait_until {
    my ($code, %o) = @_;
    my $timeout  = $o{timeout}  // 10;
    my $interval = $o{interval} // 0.1;
    my $deadline = Time::HiRes::time() + $timeout;
    my $max      = int($timeout / $interval) + 2;
    for (1 .. $max) {
        my $r = $code->();
        return $r if $r;
        last if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep($interval);
    }
    return 0;
}

my $HAVE_V6;
sub have_ipv6 {
    return $HAVE_V6 if defined $HAVE_V6;
    return $HAVE_V6 = 0 if $ENV{PGNEAR_TEST_NO_IPV6};
    my $s = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0, Proto => 'tcp', Listen => 1);
    $HAVE_V6 = $s ? 1 : 0;
    close $s if $s;
    return $HAVE_V6;
}

sub _port_bindable {
    my ($host, $port) = @_;
    my $s = IO::Socket::IP->new(LocalHost => $host, LocalPort => $port, Proto => 'tcp',
                                Listen => 1, ReuseAddr => 1) or return 0;
    close $s;
    return 1;
}

# Cross-process reservation: /tmp/pgnear-test-ports/PORT holding our pid.
sub _lock_port {
    my ($port) = @_;
    unless (-d $PORT_LOCK_DIR) {
        mkdir $PORT_LOCK_DIR;
        chmod 01777, $PORT_LOCK_DIR;
    }
    my $f = "$PORT_LOCK_DIR/$port";
    for (1 .. 2) {
        if (sysopen my $fh, $f, O_CREAT | O_EXCL | O_WRONLY, 0644) {
            print $fh "$$\n";
            close $fh;
            $MY_PORTS{$port} = $f;
            return 1;
        }
        my $owner = do { open my $r, '<', $f or next; local $/; <$r> } // '';
        return 0 unless $owner =~ /^(\d+)\s*$/;              # being written: taken
        return 0 if kill(0, $1) || $!{EPERM};                 # owner alive: taken
        unlink $f;                                            # stale, retry once
    }
    return 0;
}

sub free_port {
    my (%o) = @_;
    my $v6 = $o{ipv6} && have_ipv6();
    for (1 .. 500) {
        my $port = 20000 + int(rand(12000));
        next if $MY_PORTS{$port};
        next unless _lock_port($port);
        if (_port_bindable('127.0.0.1', $port) && (!$v6 || _port_bindable('::1', $port))) {
            return $port;
        }
        unlink delete $MY_PORTS{$port};
    }
    die "PgNearTest: free_port found no free port in 20000-31999 after 500 tries\n";
}

# ---------------------------------------------------------------- tools

my $BINDIR;
sub pg_bindir {
    return $BINDIR if defined $BINDIR;
    if (defined $ENV{PG_BINDIR}) {
        die "PgNearTest: PG_BINDIR=$ENV{PG_BINDIR} has no executable initdb\n"
          unless -x "$ENV{PG_BINDIR}/initdb";
        return $BINDIR = $ENV{PG_BINDIR};
    }
    my @cand = ('/usr/lib/postgresql/15/bin',
                sort { (basename(dirname($b)) =~ /(\d+)/)[0] <=> (basename(dirname($a)) =~ /(\d+)/)[0] }
                grep { m{/\d+/bin$} } glob('/usr/lib/postgresql/*/bin'));
    for my $d (@cand) { return $BINDIR = $d if -x "$d/initdb" && -x "$d/postgres" }
    for my $d (split /:/, $ENV{PATH} // '') { return $BINDIR = $d if length $d && -x "$d/initdb" }
    die "PgNearTest: no PostgreSQL server binaries found (looked in @cand and PATH); "
      . "install postgresql-15 or set PG_BINDIR\n";
}

# Which sanitizer a binary is built with ('address', 'thread' or ''), from
# the runtime it links: measurements of its memory must know.
# Great-circle distance in km (haversine, mean Earth radius): the tests'
# own geography, written apart from pgnear's to check its routing.
# http_get($port, $path) -> (status, body) from http://127.0.0.1:$port$path
# (HTTP/1.0, bounded to 10 s), or () when nothing answered.
sub http_get {
    my ($port, $path) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 5)
      or return ();
    binmode $s;
    print $s "GET $path HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    my $sel = IO::Select->new($s);
    my $text = '';
    my $deadline = Time::HiRes::time() + 10;
    while (Time::HiRes::time() < $deadline) {
        last unless $sel->can_read(1);
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $text .= $buf;
    }
    close $s;
    return () unless $text =~ m{\AHTTP/1\.[01] (\d+)};
    my $status = $1;
    my ($body) = $text =~ /\r?\n\r?\n(.*)\z/s;
    return ($status, $body // '');
}

sub haversine_km {
    my ($lat1, $lon1, $lat2, $lon2) = @_;
    my $r = 4 * atan2(1, 1) / 180;
    my $h = sin(($lat2 - $lat1) * $r / 2)**2
          + cos($lat1 * $r) * cos($lat2 * $r) * sin(($lon2 - $lon1) * $r / 2)**2;
    $h = 1 if $h > 1;
    return 2 * 6371.0088 * atan2(sqrt($h), sqrt(1 - $h));
}

sub sanitizer_of {
    my ($bin) = @_;
    $bin //= $ENV{PGNEAR};
    my $libs = `ldd '$bin' 2>/dev/null`;
    return $libs =~ /libtsan/ ? 'thread' : $libs =~ /libasan/ ? 'address' : '';
}

my %TOOL;
my %PG_TOOL = map { $_ => 1 } qw(psql pgbench initdb pg_ctl postgres pg_isready createdb pg_dump pg_rewind pg_resetwal);
sub require_tool {
    my ($name) = @_;
    return $TOOL{$name} if $TOOL{$name};
    my @dirs;
    push @dirs, pg_bindir() if $PG_TOOL{$name};
    push @dirs, grep { length } split /:/, ($ENV{PATH} // '');
    push @dirs, qw(/usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin);
    if ($name =~ m{/}) {
        return $TOOL{$name} = $name if -x $name && !-d $name;
    } else {
        for my $d (@dirs) {
            return $TOOL{$name} = "$d/$name" if -x "$d/$name" && !-d "$d/$name";
        }
    }
    die "PgNearTest: required tool '$name' not found (searched: @dirs)\n";
}

# run_cmd(\@argv, timeout => 30, stdin => '', env => {K => V|undef}, cwd => DIR)
#   -> (exit_code, stdout, stderr); exit_code is 128+N when killed by signal N
#   and -1 when it could not start or timed out (stderr then says so).
sub run_cmd {
    my ($cmd, %o) = @_;
    my $timeout = $o{timeout} // 30;
    my ($in, $out, $err) = ($o{stdin} // '', '', '');
    my $env = $o{env} // {};
    my $init = sub {
        if (defined $o{cwd}) { chdir $o{cwd} or die "chdir $o{cwd}: $!" }
        for my $k (keys %$env) {
            if (defined $env->{$k}) { $ENV{$k} = $env->{$k} } else { delete $ENV{$k} }
        }
    };
    my $h = eval {
        IPC::Run::start($cmd, init => $init, '<', \$in, '>', \$out, '2>', \$err,
                        IPC::Run::timeout($timeout, name => 'PgNearTest'));
    };
    return (-1, '', "PgNearTest: could not start @$cmd: $@") unless $h;
    unless (eval { $h->finish; 1 }) {
        my $e = $@;
        eval { $h->kill_kill(grace => 2) };
        $err .= ($e =~ /timeout/i)
          ? "\nPgNearTest: $cmd->[0] timed out after ${timeout}s\n"
          : "\nPgNearTest: $cmd->[0]: $e\n";
        return (-1, $out, $err);
    }
    my $st = $h->full_result(0);
    my $code = POSIX::WIFEXITED($st) ? POSIX::WEXITSTATUS($st)
             : POSIX::WIFSIGNALED($st) ? 128 + POSIX::WTERMSIG($st) : -1;
    return ($code, $out, $err);
}

sub _trim { my $s = shift // ''; $s =~ s/^\s+|\s+$//g; return $s }

# psql($conninfo, $sql | \@sqls, %opts)
sub psql {
    my ($conninfo, $sql, %o) = @_;
    my @cmd = (require_tool('psql'), '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1');
    push @cmd, '-q' if $o{quiet};
    push @cmd, '-c', '\set VERBOSITY verbose' if $o{verbose};
    push @cmd, @{ $o{args} } if $o{args};
    push @cmd, map { ('-c', $_) } (ref $sql ? @$sql : ($sql)) if defined $sql;
    push @cmd, '-d', $conninfo;
    my %env = %{ $o{env} // {} };
    $env{PGPASSWORD} = $o{password} if defined $o{password};
    my ($rc, $out, $err) = run_cmd(\@cmd, timeout => $o{timeout} // 30, stdin => $o{stdin}, env => \%env);
    $out = _trim($out);
    return ($rc, $out, $err) if wantarray;
    my $what = ref $sql ? join('; ', @$sql) : $sql // '(stdin)';
    croak "psql failed (exit $rc) on [$conninfo] running [$what]:\n$err" if $rc != 0;
    return $out;
}

# SQLSTATE from psql's stderr (needs verbose => 1) or a Wire error hash.
sub sqlstate {
    my ($x) = @_;
    return $x->{C} if ref $x eq 'HASH';
    return $1 if defined $x && $x =~ /(?:ERROR|FATAL|PANIC):\s+([0-9A-Z]{5}):/;
    return undef;
}

# pgbench(\@args, $conninfo | {ENV => value}, timeout => 120)
sub pgbench {
    my ($args, $target, %o) = @_;
    my @cmd = (require_tool('pgbench'), @$args);
    my %env = %{ $o{env} // {} };
    if (ref $target eq 'HASH') { %env = (%env, %$target) }
    elsif (defined $target)    { push @cmd, $target }
    return run_cmd(\@cmd, timeout => $o{timeout} // 120, env => \%env);
}

sub parse_pgbench {
    my ($out) = @_;
    my %r;
    $out //= '';
    $r{processed}   = $1 if $out =~ /number of transactions actually processed:\s*(\d+)/;
    ($r{failed}, $r{failed_pct}) = ($1, $2)
      if $out =~ /number of failed transactions:\s*(\d+)(?:\s*\(([\d.]+)%\))?/;
    $r{tps}         = $1 + 0 if $out =~ /^tps = ([\d.]+)/m;
    $r{latency_avg} = $1 + 0 if $out =~ /latency average = ([\d.]+) ms/;
    $r{clients}     = $1 if $out =~ /number of clients:\s*(\d+)/;
    $r{threads}     = $1 if $out =~ /number of threads:\s*(\d+)/;
    $r{scale}       = $1 if $out =~ /scaling factor:\s*(\d+)/;
    $r{duration}    = $1 if $out =~ /duration:\s*(\d+) s/;
    return \%r;
}

# conninfo_string(key => value, ...): ordered libpq conninfo, undef values skipped.
sub conninfo_string {
    my @kv = @_;
    my @parts;
    while (my ($k, $v) = splice(@kv, 0, 2)) {
        next unless defined $v;
        if ($v eq '' || $v =~ /[\s'\\]/) {
            (my $q = $v) =~ s/([\\'])/\\$1/g;
            $v = "'$q'";
        }
        push @parts, "$k=$v";
    }
    return join ' ', @parts;
}

# (\@default_pairs, \%overrides): overrides replace in place (undef removes),
# new keys are appended in sorted order.
sub _merge_conninfo {
    my ($defaults, $over) = @_;
    my %o = %$over;
    my @kv = @$defaults;
    my @out;
    while (my ($k, $v) = splice(@kv, 0, 2)) {
        push @out, $k, (exists $o{$k} ? delete $o{$k} : $v);
    }
    push @out, map { ($_, $o{$_}) } sort keys %o;
    return conninfo_string(@out);
}

sub dbi_connect {
    my ($conninfo, %attr) = @_;
    require DBI;
    return DBI->connect("dbi:Pg:$conninfo", '', '',
                        { RaiseError => 0, PrintError => 0, AutoCommit => 1, %attr });
}

sub _pbkdf2_sha256 {
    my ($pw, $salt, $iter) = @_;
    my $u = hmac_sha256($salt . pack('N', 1), $pw);
    my $r = $u;
    for (2 .. $iter) { $u = hmac_sha256($u, $pw); $r ^= $u }
    return $r;
}

# make_scram_verifier($password, salt => RAW_BYTES, iterations => 4096)
sub make_scram_verifier {
    my ($pw, %o) = @_;
    my $salt = $o{salt} // join('', map { chr(int(rand(256))) } 1 .. 16);
    my $iter = $o{iterations} // 4096;
    my $salted = _pbkdf2_sha256($pw, $salt, $iter);
    my $stored = sha256(hmac_sha256('Client Key', $salted));
    my $server = hmac_sha256('Server Key', $salted);
    return sprintf('SCRAM-SHA-256$%d:%s$%s:%s', $iter, encode_base64($salt, ''),
                   encode_base64($stored, ''), encode_base64($server, ''));
}

# ======================================================================

# ---- schema migrations

# The helper that prints what pgnear's step loader reads (make check builds it beside pgnear).
sub migrations_helper {
    my $pgnear = $ENV{PGNEAR} // die "PGNEAR is not set\n";
    my $helper = dirname($pgnear) . '/tests/unit/print_migrations';
    die "$helper is missing: make check (or make tests/unit/print_migrations) builds it\n"
        unless -x $helper;
    return $helper;
}

# A cluster's migration history in database $db (default movr), by version:
# [version, state, statements_done, statements_total, error, error_statement];
# [] while the table does not exist.
sub schema_history {
    my ($c, $db) = @_;
    $db //= $APP_DB;
    return [] if $c->psql_admin("SELECT to_regclass('pgnear_schema_history') IS NOT NULL",
                                dbname => $db) ne 't';
    return [map { [split /\|/, $_, -1] } split /\n/, $c->psql_admin(
        'SELECT version, state, statements_done, statements_total, error, error_statement'
      . ' FROM pgnear_schema_history ORDER BY version', dbname => $db)];
}

# The same as "version:state" strings.
sub schema_states { [map { "$_->[0]:$_->[1]" } @{ schema_history(@_) }] }

package PgNearTest::CA;

use strict;
use warnings;
use Carp qw(croak);

sub new {
    my ($class, %o) = @_;
    my $dir = $o{dir} // PgNearTest::tmpdir(name => 'ca', mode => 0755);
    unless (-d $dir) { mkdir $dir or die "mkdir $dir: $!" }
    chmod 0755, $dir;
    my $self = bless { dir => $dir, key_type => $o{key_type} // 'ec' }, $class;
    PgNearTest::write_file("$dir/openssl.cnf", <<'EOF');
[req]
distinguished_name = req_dn
[req_dn]
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    $self->{key}  = "$dir/ca.key";
    $self->{cert} = "$dir/ca.crt";
    my $cn = $o{cn} // "PgNear Test CA $$";
    $self->_genkey($self->{key}, $self->{key_type});
    $self->_openssl('req', '-new', '-x509', '-config', "$dir/openssl.cnf", '-extensions', 'v3_ca',
                    '-key', $self->{key}, '-out', $self->{cert}, '-days', 3650, '-sha256',
                    '-set_serial', _serial(), '-subj', "/CN=$cn");
    chmod 0644, $self->{cert};
    return $self;
}

sub cert { $_[0]{cert} }
sub key  { $_[0]{key} }
sub dir  { $_[0]{dir} }

sub _serial { '0x' . join('', map { sprintf '%02x', int(rand(256)) } 1 .. 12) }

sub _openssl {
    my ($self, @args) = @_;
    my ($rc, $out, $err) = PgNearTest::run_cmd([PgNearTest::require_tool('openssl'), @args],
                                               timeout => 60, env => { OPENSSL_CONF => "$self->{dir}/openssl.cnf" });
    die "PgNearTest::CA: openssl @args failed ($rc):\n$out$err" if $rc != 0;
    return $out;
}

sub _genkey {
    my ($self, $path, $type) = @_;
    my @alg = $type eq 'rsa' ? ('-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048')
            : $type eq 'ec'  ? ('-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1')
            : croak "key_type must be ec or rsa";
    $self->_openssl('genpkey', @alg, '-out', $path);
    chmod 0600, $path;
}

# issue(name => 'server', cn => 'localhost', san => [...], owner => 'postgres',
#       key_type => 'ec'|'rsa', days => 3650) -> {cert => path, key => path}
sub issue {
    my ($self, %o) = @_;
    my $name = $o{name} // croak 'issue: name required';
    croak "issue: bad name '$name'" unless $name =~ /^[\w.-]+$/;
    my $cn   = $o{cn} // $name;
    my $dir  = $self->{dir};
    my ($key, $csr, $crt, $ext) = map { "$dir/$name.$_" } qw(key csr crt ext.cnf);
    my $type = $o{key_type} // $self->{key_type};
    my $ku   = $type eq 'rsa' ? 'digitalSignature, keyEncipherment' : 'digitalSignature';
    my $ext_text = "[v3_leaf]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, $ku\n"
                 . "extendedKeyUsage = serverAuth, clientAuth\nsubjectKeyIdentifier = hash\n"
                 . "authorityKeyIdentifier = keyid, issuer\n";
    $ext_text .= 'subjectAltName = ' . join(', ', @{ $o{san} }) . "\n" if $o{san} && @{ $o{san} };
    PgNearTest::write_file($ext, $ext_text);
    $self->_genkey($key, $type);
    $self->_openssl('req', '-new', '-config', "$dir/openssl.cnf", '-key', $key, '-out', $csr,
                    '-subj', "/CN=$cn");
    $self->_openssl('x509', '-req', '-in', $csr, '-CA', $self->{cert}, '-CAkey', $self->{key},
                    '-set_serial', _serial(), '-days', $o{days} // 3650, '-sha256',
                    '-extfile', $ext, '-extensions', 'v3_leaf', '-out', $crt);
    chmod 0644, $crt;
    my $owner = exists $o{owner} ? $o{owner} : PgNearTest::_pg_os_user();
    PgNearTest::_chown($owner, $key) if defined $owner;
    return { cert => $crt, key => $key };
}

# crl(revoked => [issue's {cert => path}, ...], out => path) -> path: a revocation list (PEM)
# of this CA that revokes those certificates (none: an empty list), by openssl ca -gencrl.
sub crl {
    my ($self, %o) = @_;
    my $dir = $self->{dir};
    my $n   = ++$self->{crls};
    my ($db, $cnf) = ("$dir/crl$n.index", "$dir/crl$n.cnf");
    my $out = $o{out} // "$dir/crl$n.pem";
    PgNearTest::write_file($db, '');
    PgNearTest::write_file($cnf, "[ca]\ndefault_ca = crl_ca\n[crl_ca]\ndatabase = $db\n"
                               . "default_md = sha256\ndefault_crl_days = 30\n");
    my @ca = ('-config', $cnf, '-keyfile', $self->{key}, '-cert', $self->{cert});
    $self->_openssl('ca', @ca, '-revoke', $_->{cert}) for @{ $o{revoked} // [] };
    $self->_openssl('ca', @ca, '-gencrl', '-out', $out);
    chmod 0644, $out;
    return $out;
}

# ======================================================================
package PgNearTest::Cluster;

use strict;
use warnings;
use Carp qw(croak);

our %LOCATION = (
    'us-east'      => '39.04, -77.49',     # Ashburn
    'us-central'   => '41.26, -95.86',     # Council Bluffs
    'us-west'      => '45.60, -121.18',    # The Dalles
    'eu-west'      => '53.35, -6.26',      # Dublin
    'eu-central'   => '50.11, 8.68',       # Frankfurt
    'ap-southeast' => '1.35, 103.82',      # Singapore
    'ap-northeast' => '35.68, 139.69',     # Tokyo
    'ap-south'     => '19.08, 72.88',      # Mumbai
    'sa-east'      => '-23.55, -46.63',    # Sao Paulo
);

sub new {
    my ($class, %o) = @_;
    my $name = $o{name} // croak 'Cluster: name required';
    croak "Cluster: bad name '$name'" unless $name =~ /^[\w.-]+$/;
    my $self = bless {
        name      => $name,
        ca        => $o{ca},
        host      => '127.0.0.1',
        ipv6      => $o{ipv6} // PgNearTest::have_ipv6(),
        location  => $o{location} // $LOCATION{$name},
        env       => $o{env} // {},
        owner_pid => $$,
    }, $class;
    $self->{ipv6} = 0 unless PgNearTest::have_ipv6();
    my $dir = $self->{dir} = PgNearTest::tmpdir(name => 'pg-' . substr($name, 0, 12), mode => 0700,
                                                owner => PgNearTest::_pg_os_user());
    $self->{datadir}    = "$dir/data";
    $self->{socket_dir} = "$dir/sock";
    $self->{log_path}   = "$dir/postgres.log";
    mkdir $self->{socket_dir} or die "mkdir: $!";
    chmod 0700, $self->{socket_dir};
    PgNearTest::_chown(PgNearTest::_pg_os_user(), $self->{socket_dir});
    die "Cluster: socket path too long: $self->{socket_dir}\n" if length($self->{socket_dir}) > 90;
    PgNearTest::_register($self);

    my $primary = $o{standby_of};
    if ($primary) {
        _basebackup($name, $primary, $self->{datadir}, $dir);
    } else {
        _initdb($name, $self->{datadir}, $dir, $o{own_initdb});
    }
    PgNearTest::_reg_add("pgdata $self->{datadir}");
    $self->{base_conf} = $primary ? $primary->{base_conf}
                                  : PgNearTest::slurp_file("$self->{datadir}/postgresql.conf");

    if ($self->{ca}) {
        my $c = $self->{ca}->issue(name => "pg-$name", cn => 'localhost',
                                   san => ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1']);
        $self->_write("server.crt", PgNearTest::slurp_file($c->{cert}), 0644);
        $self->_write("server.key", PgNearTest::slurp_file($c->{key}), 0600);
        $self->_write("root.crt",   PgNearTest::slurp_file($self->{ca}->cert), 0644);
        $self->{server_cert} = $c;
    }
    my @hba = $o{hba} ? @{ $o{hba} } : ('local all all trust',
                                        'host all all 127.0.0.1/32 scram-sha-256',
                                        'host all all ::1/128 scram-sha-256');
    # The postgres user may stream from any cluster over its socket: new_standby copies one.
    $self->_write('pg_hba.conf', join("\n", 'local all postgres trust', 'local replication postgres trust', @hba)
                  . "\n", 0600);
    $self->{extra_conf} = ref $o{conf} eq 'HASH'
      ? join('', map { "$_ = " . _q($o{conf}{$_}) . "\n" } sort keys %{ $o{conf} })
      : ($o{conf} // '');
    $self->{extra_conf} = "hot_standby = on\n"
      . ($o{apply_delay} ? 'recovery_min_apply_delay = ' . _q($o{apply_delay}) . "\n" : '')
      . $self->{extra_conf} if $primary;

    my $auto = !defined $o{port};
    for my $attempt (1 .. ($auto ? 4 : 1)) {
        $self->{port} = $o{port} // PgNearTest::free_port(ipv6 => $self->{ipv6});
        $self->_write_conf;
        my $off = -s $self->{log_path} // 0;
        my ($ok, $msg) = $self->_try_start;
        last if $ok;
        my $log = $self->_log_from($off);
        next if $auto && $attempt < 4 && $log =~ /could not bind|already in use|could not create any TCP/i;
        die "Cluster $name: server did not start on port $self->{port}:\n$msg\n--- log:\n"
          . PgNearTest::_tail($log, 30);
    }
    if ($primary) {
        $self->wait_streaming;
    } else {
        $self->_create_roles unless defined $o{roles} && !$o{roles};
    }
    return $self;
}

# A hot standby of primary, streaming from it, made with pg_basebackup -R:
# new_standby(primary => $c, name => 'eu-west', apply_delay => '1s', ...);
# the rest as new().  Its roles and databases are the primary's.
sub new_standby {
    my ($class, %o) = @_;
    my $primary = delete $o{primary} // croak 'new_standby: primary required';
    return $class->new(%o, standby_of => $primary);
}

# The primary's data directory, copied over its socket as the postgres user;
# -R leaves standby.signal and primary_conninfo (that socket) behind.
sub _basebackup {
    my ($name, $primary, $datadir, $cwd) = @_;
    my $bb = PgNearTest::require_tool('pg_basebackup');
    my ($rc, $out, $err) = PgNearTest::run_cmd(
        [PgNearTest::_as_pg_user($bb, '-D', $datadir, '-h', $primary->socket_dir, '-p', $primary->port,
                                 '-U', 'postgres', '-R', '-X', 'stream', '--checkpoint=fast',
                                 '--no-sync')],
        timeout => 120, cwd => $cwd);
    die "Cluster $name: pg_basebackup from $primary->{name} failed ($rc):\n$out$err" if $rc != 0;
}

# Bounded wait until the standby's WAL receiver streams from its primary.
sub wait_streaming {
    my ($self, %o) = @_;
    my $ok = PgNearTest::wait_until(sub {
        $self->psql_admin('SELECT count(*) FROM pg_stat_wal_receiver WHERE status = \'streaming\'') eq '1'
    }, timeout => $o{timeout} // 60, interval => 0.05);
    die "Cluster $self->{name}: the standby does not stream\n--- log:\n"
      . PgNearTest::_tail($self->log_contents, 30) unless $ok;
    return 1;
}

sub is_in_recovery { $_[0]->psql_admin('SELECT pg_is_in_recovery()') eq 't' }
# A primary's WAL insert position; a standby's replayed one.
sub current_lsn { $_[0]->psql_admin('SELECT pg_current_wal_insert_lsn()') }
sub replay_lsn  { $_[0]->psql_admin('SELECT pg_last_wal_replay_lsn()') }
sub pause_replay  { $_[0]->psql_admin('SELECT pg_wal_replay_pause()'); 1 }
sub resume_replay { $_[0]->psql_admin('SELECT pg_wal_replay_resume()'); 1 }

# Bounded wait until the standby has replayed lsn.
sub wait_replay {
    my ($self, $lsn, %o) = @_;
    return PgNearTest::wait_until(sub {
        $self->psql_admin("SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn") eq 't'
    }, timeout => $o{timeout} // 30, interval => 0.02);
}

sub promote {
    my ($self) = @_;
    my ($rc, $out, $err) = $self->_pg_ctl('promote', '-w', '-t', 60);
    die "Cluster $self->{name}: promote failed ($rc): $out$err" if $rc != 0;
    return 1;
}

sub _q { my $v = shift; $v =~ s/'/''/g; "'$v'" }

# A fresh data directory, copied from one initdb made once per machine and
# set of PostgreSQL binaries (keyed by initdb's path, version and mtime), as
# PostgreSQL's own test suites do: initdb costs about a second, a copy a
# tenth of that, and the suite makes a few hundred clusters.  Made under a
# lock, in a directory of its own, and renamed into place whole, so test
# files starting together neither race nor see half a template.
my @INITDB_ARGS = ('-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256',
                   '-E', 'UTF8', '--no-locale', '--no-sync', '--no-instructions');
my $INITDB_TEMPLATE;    # the path, worked out once per test process
sub _initdb_template {
    my ($name) = @_;
    return $INITDB_TEMPLATE if defined $INITDB_TEMPLATE;
    my $initdb = PgNearTest::require_tool('initdb');
    my ($vrc, $version) = PgNearTest::run_cmd([$initdb, '--version'], timeout => 30);
    die "Cluster $name: $initdb --version failed\n" if $vrc != 0;
    my $key = substr(Digest::SHA::sha256_hex(join "\0", $initdb, $version, (stat $initdb)[9],
                                             PgNearTest::_pg_os_user(), @INITDB_ARGS), 0, 16);
    return $INITDB_TEMPLATE = "/tmp/pgnear-initdb-template-$key";
}

# A copy of the template, with a system identifier of its own
# (_own_system_identifier); own_initdb => 1 (Cluster->new) runs initdb
# itself.
sub _initdb {
    my ($name, $datadir, $cwd, $own) = @_;
    my $initdb = PgNearTest::require_tool('initdb');
    if ($own) {
        my ($rc, $out, $err) = PgNearTest::run_cmd(
            [PgNearTest::_as_pg_user($initdb, '-D', $datadir, @INITDB_ARGS)], timeout => 120, cwd => $cwd);
        die "Cluster $name: initdb failed ($rc):\n$out$err" if $rc != 0;
        return;
    }
    my $template = _initdb_template($name);
    unless (-f "$template/PG_VERSION") {
        open(my $lock, '>>', "$template.lock") or die "Cluster $name: $template.lock: $!";
        flock($lock, Fcntl::LOCK_EX) or die "Cluster $name: flock: $!";
        unless (-f "$template/PG_VERSION") {
            my $work = PgNearTest::tmpdir(name => 'initdb', mode => 0700,
                                          owner => PgNearTest::_pg_os_user());
            my ($rc, $out, $err) = PgNearTest::run_cmd(
                [PgNearTest::_as_pg_user($initdb, '-D', "$work/data", @INITDB_ARGS)],
                timeout => 120, cwd => $work);
            die "Cluster $name: initdb failed ($rc):\n$out$err" if $rc != 0;
            rename("$work/data", $template) or die "Cluster $name: rename to $template: $!";
        }
        close $lock;
    }
    my ($rc, $out, $err) = PgNearTest::run_cmd(['cp', '-a', $template, $datadir],
                                               timeout => 120, cwd => $cwd);
    die "Cluster $name: copying the initdb template failed ($rc):\n$out$err" if $rc != 0;
    _own_system_identifier($name, $datadir);
}

my $SYSID_SEQ = 0;

# CRC-32C (Castagnoli), as PostgreSQL's COMP_CRC32C and FIN_CRC32C compute it.
my @CRC32C_TABLE;
sub _crc32c {
    my ($bytes) = @_;
    unless (@CRC32C_TABLE) {
        for my $i (0 .. 255) {
            my $c = $i;
            $c = ($c & 1) ? (($c >> 1) ^ 0x82F63B78) : ($c >> 1) for 1 .. 8;
            $CRC32C_TABLE[$i] = $c;
        }
    }
    my $crc = 0xFFFFFFFF;
    $crc = $CRC32C_TABLE[($crc ^ $_) & 0xFF] ^ ($crc >> 8) for unpack('C*', $bytes);
    return $crc ^ 0xFFFFFFFF;
}

# A copy of the template gets a system identifier of its own, as a cluster
# initdb made would: pg_control starts with it, and its CRC, which follows
# the control data, is found where it matches and written anew.  Unrelated
# clusters that shared one would look to pgnear like one system with two
# primaries (routing/claimants.h).
sub _own_system_identifier {
    my ($name, $datadir) = @_;
    my $path = "$datadir/global/pg_control";
    open(my $fh, '+<:raw', $path) or die "Cluster $name: $path: $!";
    my $got = read($fh, my $control, 8192);
    die "Cluster $name: $path: short read\n" unless defined $got && $got >= 512;
    my $crc_at;
    for (my $off = 16; $off <= 508; $off += 4) {
        if (unpack('V', substr($control, $off, 4)) == _crc32c(substr($control, 0, $off))) {
            $crc_at = $off;
            last;
        }
    }
    die "Cluster $name: $path: no CRC found in the control data\n" unless defined $crc_at;
    # As PostgreSQL makes one: seconds, microseconds and a pid's low bits, here a counter's.
    my ($sec, $usec) = Time::HiRes::gettimeofday();
    my $id = ($sec << 32) | ($usec << 12) | (($$ + $SYSID_SEQ++) & 0xFFF);
    substr($control, 0, 8) = pack('Q<', $id);
    substr($control, $crc_at, 4) = pack('V', _crc32c(substr($control, 0, $crc_at)));
    seek($fh, 0, 0) or die "Cluster $name: seek: $!";
    print {$fh} $control or die "Cluster $name: write $path: $!";
    close $fh or die "Cluster $name: close $path: $!";
    # The WAL's page headers name the system too: pg_resetwal writes a fresh segment for it.
    my ($rc, $out, $err) = PgNearTest::run_cmd(
        [PgNearTest::_as_pg_user(PgNearTest::require_tool('pg_resetwal'), '-f', '-D', $datadir)],
        timeout => 60, cwd => '/');
    die "Cluster $name: pg_resetwal failed ($rc):\n$out$err" if $rc != 0;
}

sub _write {
    my ($self, $file, $content, $mode) = @_;
    PgNearTest::write_file("$self->{datadir}/$file", $content, mode => $mode,
                           owner => PgNearTest::_pg_os_user());
}

sub _write_conf {
    my ($self) = @_;
    my $listen = $self->{ipv6} ? '127.0.0.1,::1' : '127.0.0.1';
    my $conf = $self->{base_conf} . "\n# ---- added by PgNearTest ----\n"
      . "cluster_name = " . _q($self->{name}) . "\n"
      . "port = $self->{port}\n"
      . "listen_addresses = '$listen'\n"
      . "unix_socket_directories = " . _q($self->{socket_dir}) . "\n"
      . "max_connections = 200\n"
      . "shared_buffers = '32MB'\n"
      . "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
      . "password_encryption = 'scram-sha-256'\n"
      . "log_line_prefix = '%m [%p] %q%u@%d '\n"
      . "log_connections = on\n";
    $conf .= $self->{ca}
      ? "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'root.crt'\n"
      : "ssl = off\n";
    $conf .= $self->{extra_conf};
    $self->_write('postgresql.conf', $conf, 0600);
}

sub _log_from {
    my ($self, $off) = @_;
    open my $fh, '<', $self->{log_path} or return '';
    seek $fh, $off, 0;
    local $/;
    return <$fh> // '';
}

sub _pg_ctl {
    my ($self, @args) = @_;
    return PgNearTest::run_cmd(
        [PgNearTest::_as_pg_user(PgNearTest::require_tool('pg_ctl'), '-D', $self->{datadir}, @args)],
        timeout => 90, cwd => $self->{dir}, env => $self->{env});
}

sub _try_start {
    my ($self) = @_;
    my ($rc, $out, $err) = $self->_pg_ctl('-l', $self->{log_path}, '-w', '-t', 60, '-s', 'start');
    return (1) if $rc == 0;
    return (0, "pg_ctl start exit $rc: $out$err");
}

sub _create_roles {
    my ($self) = @_;
    $self->psql_admin([
        "SET password_encryption = 'scram-sha-256'; "
          . "CREATE ROLE $APP_USER LOGIN SUPERUSER PASSWORD " . _q($APP_PASSWORD) . '; '
          . "CREATE ROLE $PGNEAR_USER LOGIN SUPERUSER PASSWORD " . _q($PGNEAR_PASSWORD) . ';',
        "CREATE DATABASE $APP_DB OWNER $APP_USER",
    ]);
}

sub name       { $_[0]{name} }
sub host       { $_[0]{host} }
sub port       { $_[0]{port} }
sub location   { $_[0]{location} }
sub datadir    { $_[0]{datadir} }
sub socket_dir { $_[0]{socket_dir} }
sub log_path   { $_[0]{log_path} }
sub log_contents { PgNearTest::slurp_file($_[0]{log_path}) }
sub hostport   { "$_[0]{host}:$_[0]{port}" }
sub pid        { PgNearTest::_postmaster_pid($_[0]{datadir}) }

sub is_running {
    my ($self) = @_;
    my $pid = $self->pid or return 0;
    return kill(0, $pid) ? 1 : 0;
}

sub conninfo {
    my ($self, %o) = @_;
    return PgNearTest::_merge_conninfo(
        [host => $self->{host}, port => $self->{port}, dbname => $APP_DB, user => $APP_USER,
         password => $APP_PASSWORD, sslmode => 'disable', connect_timeout => 10], \%o);
}

sub psql_admin {
    my ($self, $sql, %o) = @_;
    my $ci = PgNearTest::conninfo_string(host => $self->{socket_dir}, port => $self->{port},
                                         user => 'postgres', dbname => $o{dbname} // 'postgres');
    my ($rc, $out, $err) = PgNearTest::psql($ci, $sql, timeout => $o{timeout} // 60);
    my $what = ref $sql ? join('; ', @$sql) : $sql;
    die "Cluster $self->{name}: psql_admin failed (exit $rc) running [$what]:\n$err" if $rc != 0;
    return $out;
}

# wait_sleeping(PID, timeout => 5): bounded wait until server process PID
# runs a query with pg_sleep in it (seen on the server directly).
sub wait_sleeping {
    my ($self, $pid, %o) = @_;
    return PgNearTest::wait_until(sub {
        $self->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid "
                        . "AND state = 'active' AND query LIKE '%pg_sleep%'") eq '1'
    }, timeout => $o{timeout} // 5, interval => 0.02);
}

sub scram_verifier {
    my ($self, $role) = @_;
    return $self->psql_admin('SELECT rolpassword FROM pg_authid WHERE rolname = ' . _q($role));
}

sub stop {
    my ($self, %o) = @_;
    return 1 unless $self->is_running;
    my $mode = $o{mode} // 'fast';
    my ($rc, $out, $err) = $self->_pg_ctl('-m', $mode, '-w', '-t', 60, '-s', 'stop');
    die "Cluster $self->{name}: pg_ctl stop failed ($rc): $out$err" if $rc != 0;
    return 1;
}

sub start {
    my ($self) = @_;
    croak "Cluster $self->{name} is already running" if $self->is_running;
    my $off = -s $self->{log_path} // 0;
    my ($ok, $msg) = $self->_try_start;
    die "Cluster $self->{name}: start failed:\n$msg\n--- log:\n"
      . PgNearTest::_tail($self->_log_from($off), 30) unless $ok;
    return 1;
}

sub restart {
    my ($self, %o) = @_;
    $self->stop(%o);
    $self->start;
}

sub _cleanup {
    my ($self) = @_;
    return if $self->{cleaned} || $$ != $self->{owner_pid};
    $self->{cleaned} = 1;
    if ($self->is_running) {
        my ($rc) = eval { $self->_pg_ctl('-m', 'immediate', '-w', '-t', 30, '-s', 'stop') };
        PgNearTest::_pg_kill_datadir($self->{datadir}) if !defined $rc || $rc != 0 || $self->is_running;
    }
    PgNearTest::_reg_del("pgdata $self->{datadir}");
}

sub DESTROY {
    local ($?, $!, $@);
    eval { $_[0]->_cleanup };
}

# ======================================================================
package PgNearTest::Proxy;

use strict;
use warnings;
use Carp qw(croak);
use POSIX qw(WNOHANG);
use File::Spec;
use Scalar::Util qw(blessed);

sub new {
    my ($class, %o) = @_;
    my $bin = $o{binary} // $ENV{PGNEAR};
    my $start = $o{start} // 1;
    if ($start) {
        die "PgNearTest::Proxy: \$PGNEAR is not set; point it at the pgnear binary "
          . "(make check sets it)\n" unless defined $bin && length $bin;
        die "PgNearTest::Proxy: \$PGNEAR=$bin is not an executable file\n" unless -f $bin && -x _;
    }
    my $dir = PgNearTest::tmpdir(name => 'pgnear', mode => 0755);
    my $self = bless {
        binary        => defined $bin ? File::Spec->rel2abs($bin) : undef,
        dir           => $dir,
        config_path   => "$dir/pgnear.ini",
        log_path      => "$dir/pgnear.log",
        host          => '127.0.0.1',
        args          => $o{args} // ['-v'],
        fixed_port    => defined $o{port},
        port          => $o{port},
        start_timeout => $o{start_timeout} // 10,
        owner_pid     => $$,
        settings      => {},
        extra_ini     => '',
    }, $class;
    $self->{port} //= PgNearTest::free_port(ipv6 => 1);
    push @PROXY_LOGS, $self->{log_path};
    PgNearTest::_register($self);
    $self->update_config(regions => $o{regions}, settings => $o{settings} // {},
                         extra_ini => $o{extra_ini} // '');
    $self->start if $start;
    return $self;
}

sub port        { $_[0]{port} }
sub host        { $_[0]{host} }
sub dir         { $_[0]{dir} }
sub pid         { $_[0]{pid} }
sub config_path { $_[0]{config_path} }
sub log_path    { $_[0]{log_path} }
sub socket_dir  { $_[0]{dir} }
sub config_text { PgNearTest::slurp_file($_[0]{config_path}) }
# The log as text lines whatever log_format wrote (PgNearTest::log_as_text), and offsets in that
# text: log_size is its length, _log_from and wait_for_log's offset index it, as tests' substr do.
sub log_contents { $_[0]->_text_log }
sub log_size    { length $_[0]->_text_log }

# The log read as text: what was read before is kept (complete lines, rendered once), only what
# was written since is read and rendered; a line still being written is rendered but not kept.
sub _text_log {
    my ($self) = @_;
    my $c = $self->{text_log} //= { raw => 0, text => '' };
    my $size = -s $self->{log_path} // 0;
    %$c = (raw => 0, text => '') if $size < $c->{raw};
    return $c->{text} if $size == $c->{raw};
    open my $fh, '<', $self->{log_path} or return $c->{text};
    seek $fh, $c->{raw}, 0;
    my $new = do { local $/; <$fh> } // '';
    my $end = rindex($new, "\n") + 1;
    $c->{text} .= PgNearTest::log_as_text(substr($new, 0, $end));
    $c->{raw} += $end;
    return $c->{text} . PgNearTest::log_as_text(substr($new, $end));
}
sub exit_status { $_[0]{exit_status} }

sub _norm_regions {
    my ($regions) = @_;
    croak 'Proxy: regions required' unless $regions;
    my @list;
    if (ref $regions eq 'HASH') {
        @list = map {
            my $r = $regions->{$_};
            blessed($r) ? { name => $_, location => $r->location, hosts => [$r] } : { name => $_, %$r }
        } sort keys %$regions;
    } else {
        @list = map { blessed($_) ? { name => $_->name, location => $_->location, hosts => [$_] } : {%$_} }
                @$regions;
    }
    for my $r (@list) {
        croak 'Proxy: region without name' unless defined $r->{name};
        my @hosts = @{ $r->{hosts} // croak "Proxy: region $r->{name} has no hosts" };
        if (!defined $r->{location}) {
            my ($c) = grep { blessed($_) } @hosts;
            $r->{location} = $c ? $c->location : $PgNearTest::Cluster::LOCATION{ $r->{name} };
            croak "Proxy: region $r->{name} needs a location" unless defined $r->{location};
        }
        $r->{hosts} = [map { blessed($_) ? $_->hostport : $_ } @hosts];
    }
    return \@list;
}

# update_config(regions => ..., settings => {...}, extra_ini => '...'):
# settings are merged into the current ones (undef deletes a key); the file
# is rewritten.  Send HUP yourself to make a running pgnear reload it.
sub update_config {
    my ($self, %o) = @_;
    $self->{regions} = _norm_regions($o{regions}) if $o{regions};
    if ($o{settings}) {
        for my $k (keys %{ $o{settings} }) { $self->{settings}{$k} = $o{settings}{$k} }
    }
    $self->{extra_ini} = $o{extra_ini} if defined $o{extra_ini};
    $self->_write_config;
}

sub _write_config {
    my ($self) = @_;
    my @default = (
        listen_addr     => PgNearTest::have_ipv6() ? '127.0.0.1, ::1' : '127.0.0.1',
        listen_port     => $self->{port},
        unix_socket_dir => $self->{dir},
        default_region  => $self->{regions}[0]{name},
        server_conninfo => "user=$PgNearTest::PGNEAR_USER password=$PgNearTest::PGNEAR_PASSWORD",
        # Not the shipped 1 s: two ASan test files at a time load two cores so much that a
        # check's login can take over 1 s, and three such checks in a row take a healthy host
        # down.  A test about slow checks sets its own (142); undef gives the shipped default.
        health_check_timeout => '5s',
        # PGNEAR_TEST_WORKERS=N runs every proxy of the suite with N event-loop threads
        ($ENV{PGNEAR_TEST_WORKERS} ? (workers => $ENV{PGNEAR_TEST_WORKERS}) : ()),
        # PGNEAR_TEST_LOG_FORMAT=json runs every proxy of the suite with JSON logs, each line checked
        ($ENV{PGNEAR_TEST_LOG_FORMAT} ? (log_format => $ENV{PGNEAR_TEST_LOG_FORMAT}) : ()),
        # PGNEAR_TEST_IO_BACKEND=epoll|io_uring runs every proxy of the suite with that backend
        ($ENV{PGNEAR_TEST_IO_BACKEND} ? (io_backend => $ENV{PGNEAR_TEST_IO_BACKEND}) : ()),
    );
    my %s = %{ $self->{settings} };
    my @lines;
    while (my ($k, $v) = splice(@default, 0, 2)) {
        $v = delete $s{$k} if exists $s{$k};
        push @lines, [$k, $v];
    }
    push @lines, map { [$_, $s{$_}] } sort keys %s;
    my $ini = "; generated by PgNearTest for $0\n[pgnear]\n";
    for (@lines) {
        my ($k, $v) = @$_;
        next unless defined $v;
        $v = join(', ', @$v) if ref $v eq 'ARRAY';
        $ini .= "$k = $v\n";
    }
    for my $r (@{ $self->{regions} }) {
        $ini .= "\n[region $r->{name}]\nlocation = $r->{location}\nhosts = " . join(', ', @{ $r->{hosts} }) . "\n";
        for my $k (sort grep { !/^(name|location|hosts)$/ } keys %$r) { $ini .= "$k = $r->{$k}\n" }
    }
    $ini .= "\n$self->{extra_ini}\n" if length $self->{extra_ini};
    PgNearTest::write_file($self->{config_path}, $ini);
}

sub start {
    my ($self) = @_;
    croak 'Proxy: already running' if $self->is_running;
    my $bin = $self->{binary};
    die "PgNearTest::Proxy: \$PGNEAR is not set or not executable\n" unless defined $bin && -x $bin;
    # Under PGNEAR_TEST_LOG_FORMAT=json, a proxy started with it (not one whose test sets its own) is checked,
    # as its file says: a test that writes the file itself (193, the shipped one as it is) may leave it out.
    # (000_harness's stand-in for pgnear, a script of its own, is not.)
    $JSON_LOGS{ $self->{log_path} } = 1
      if ($ENV{PGNEAR_TEST_LOG_FORMAT} // '') eq 'json' && !exists $self->{settings}{log_format}
      && $ENV{PGNEAR} && $bin eq File::Spec->rel2abs($ENV{PGNEAR})
      && $self->config_text =~ /^\s*log_format\s*=\s*json\s*$/m;
    for my $attempt (1 .. 3) {
        my $off = $self->log_size;
        open my $logfh, '>>', $self->{log_path} or die "open $self->{log_path}: $!";
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            open STDIN, '<', '/dev/null';
            open STDOUT, '>&', $logfh;
            open STDERR, '>&', $logfh;
            { no warnings 'exec'; exec { $bin } $bin, @{ $self->{args} }, $self->{config_path}; }
            print STDERR "PgNearTest: exec $bin failed: $!\n";
            POSIX::_exit(127);
        }
        close $logfh;
        $self->{pid} = $pid;
        delete $self->{exit_status};
        PgNearTest::_reg_add("pid $pid");
        my $state = $self->_wait_listening;
        return $self if $state eq 'up';
        my $log = $self->_log_from($off);
        if ($state eq 'exited') {
            if (!$self->{fixed_port} && $attempt < 3 && $log =~ /in use/i) {
                $self->{port} = PgNearTest::free_port(ipv6 => 1);
                $self->_write_config;
                next;
            }
            die "PgNearTest::Proxy: pgnear exited during startup (status $self->{exit_status})\n"
              . "command: $bin @{ $self->{args} } $self->{config_path}\n--- log:\n"
              . PgNearTest::_tail($log, 40);
        }
        $self->stop(signal => 'KILL');
        die "PgNearTest::Proxy: pgnear did not listen on 127.0.0.1:$self->{port} within "
          . "$self->{start_timeout}s\n--- log:\n" . PgNearTest::_tail($log, 40);
    }
}

sub _log_from {
    my ($self, $off) = @_;
    my $text = $self->_text_log;
    return $off < length $text ? substr($text, $off) : '';
}

# 'up' | 'exited' | 'timeout'
sub _wait_listening {
    my ($self) = @_;
    my $deadline = Time::HiRes::time() + $self->{start_timeout};
    for (1 .. int($self->{start_timeout} / 0.05) + 2) {
        return 'exited' unless $self->is_running;
        return 'up' if _pid_listens($self->{pid}, $self->{port});
        last if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.05);
    }
    return 'timeout';
}

# Does process $pid own a listening TCP socket on $port?  Uses /proc so that
# no probe connection shows up in pgnear's log; falls back to connecting.
sub _pid_listens {
    my ($pid, $port) = @_;
    unless (-r '/proc/net/tcp') {
        my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 1);
        return $s ? 1 : 0;
    }
    my %ino;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $f or next;
        <$fh>;
        while (<$fh>) {
            my @f = split;
            next unless @f > 9 && $f[3] eq '0A' && $f[1] =~ /:([0-9A-F]{4})$/ && hex($1) == $port;
            $ino{ $f[9] } = 1;
        }
    }
    return 0 unless %ino;
    opendir my $dh, "/proc/$pid/fd" or return 0;
    for my $fd (readdir $dh) {
        my $l = readlink("/proc/$pid/fd/$fd") // next;
        return 1 if $l =~ /^socket:\[(\d+)\]$/ && $ino{$1};
    }
    return 0;
}

sub is_running {
    my ($self) = @_;
    my $pid = $self->{pid} or return 0;
    my $r = waitpid($pid, WNOHANG);
    return 1 if $r == 0;
    $self->_reaped($r == $pid ? $? : undef);
    return 0;
}

sub _reaped {
    my ($self, $st) = @_;
    PgNearTest::_reg_del("pid $self->{pid}") if $self->{pid};
    delete $self->{pid};
    $self->{exit_status} = !defined $st ? -1
                         : POSIX::WIFEXITED($st) ? POSIX::WEXITSTATUS($st)
                         : 128 + POSIX::WTERMSIG($st);
}

sub signal {
    my ($self, $sig) = @_;
    croak "Proxy: not running" unless $self->is_running;
    kill($sig, $self->{pid}) or croak "kill $sig $self->{pid}: $!";
}

# wait_for_exit(timeout => 10): exit status, or undef if still running.
# Routing prefers healthy regions.  A host is ready when pgnear's last word
# on it is "is up", or, when pgnear logs nothing because hosts start up and
# stay up, pgnear never said "is down" and a check passed: the cluster
# holds a check connection (application_name "pgnear health check", kept
# only after a check passed) idle after a check that began at $started_at
# or later, or, where
# checks do not keep one (health_check_login_interval = 0), two
# health-check intervals have passed and the cluster has seen the checks'
# logins.
#   $p->wait_healthy($started_at, @clusters)   one ok() per cluster; BAIL_OUT if never
sub wait_healthy {
    my ($self, $since, @clusters) = @_;
    for my $c (@clusters) {
        my ($port, $name) = ($c->port, $c->name);
        my $ready = PgNearTest::wait_until(sub {
            my @said = $self->log_contents =~ /host 127\.0\.0\.1:$port of region \Q$name\E is (up|down)/g;
            return $said[-1] eq 'up' if @said;
            my $kept = $c->psql_admin("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                    . "'pgnear health check' AND state = 'idle' AND query_start >= to_timestamp($since)");
            return 1 if $kept > 0;
            return 0 if time - $since < 2.5;
            my @checks = $c->log_contents =~ /connection authorized: user=pgnear database=postgres application_name=pgnear/g;
            return @checks >= 2;
        }, timeout => 20, interval => 0.1);
        Test::Builder->new->ok($ready, "pgnear on port $self->{port}: region $name is healthy")
          or Test::Builder->new->BAIL_OUT("region $name never became healthy");
    }
}

sub wait_for_exit {
    my ($self, %o) = @_;
    PgNearTest::wait_until(sub { !$self->is_running }, timeout => $o{timeout} // 10, interval => 0.05);
    return $self->is_running ? undef : $self->{exit_status};
}

# Each thread of a process as one line: its id, name, state (R running, S
# asleep, D in the kernel, uninterruptible; Z ended) and where it waits in
# the kernel (wchan, and the kernel stack where root may read it), so that
# a pgnear that does not stop shows whether it waits on itself (a loop, a
# join: S in futex_wait or ep_poll) or on the kernel (D, an io_uring exit).
sub threads_state {
    my ($self) = @_;
    my $pid = $self->{pid} // return '';
    my @lines;
    for my $dir (sort glob("/proc/$pid/task/*")) {
        my ($tid) = $dir =~ m{/(\d+)$};
        my $status = eval { PgNearTest::slurp_file("$dir/status") } // next;
        my ($name) = $status =~ /^Name:\s+(\S+)/m;
        my ($state) = $status =~ /^State:\s+(.+)$/m;
        my $wchan = eval { PgNearTest::slurp_file("$dir/wchan") } // '?';
        my $stack = eval { PgNearTest::slurp_file("$dir/stack") } // '';
        $stack = join(' < ', map { /\]\s+(\S+)/ ? $1 : () } split /\n/, $stack);
        push @lines, sprintf('  thread %s (%s): %s, waiting in %s%s', $tid, $name // '?', $state // '?',
                             length $wchan && $wchan ne '0' ? $wchan : '-', length $stack ? " [$stack]" : '');
    }
    return join("\n", @lines);
}

# stop(signal => 'TERM', timeout => 15): signal, wait, SIGKILL after timeout.
# Returns the exit code (128+N if killed by signal N), or undef when even
# SIGKILL left it unreaped 10 s later (a thread stuck in the kernel: the
# threads' states are told).
sub stop {
    my ($self, %o) = @_;
    my $st = $self->_stop(%o);
    # Each stop checks the log so far; END checks it again, whole.
    $JSON_LOG_BAD = 1 if $JSON_LOGS{ $self->{log_path} } && !PgNearTest::json_log_check($self->{log_path});
    return $st;
}

sub _stop {
    my ($self, %o) = @_;
    return $self->{exit_status} unless $self->is_running;
    my ($t0, $pid, $sig) = (Time::HiRes::time(), $self->{pid}, $o{signal} // 'TERM');
    kill($sig, $pid);
    my $st = $self->wait_for_exit(timeout => $o{timeout} // 15);
    # A slow stop is most often sessions left open: the log says so, to find where time goes.
    PgNearTest::note_diag(sprintf('PgNearTest: pgnear %d took %.1f s to stop on SIG%s%s', $pid,
                             Time::HiRes::time() - $t0, $sig, defined $st ? '' : ' (killed)'))
      if Time::HiRes::time() - $t0 > 2;
    return $st if defined $st;
    PgNearTest::note_diag("PgNearTest: pgnear $pid still running after SIG$sig; its threads:\n" . $self->threads_state);
    kill 'KILL', $pid;
    $st = $self->wait_for_exit(timeout => 10);
    return $st if defined $st;
    PgNearTest::note_diag("PgNearTest: pgnear $pid not reaped 10 s after SIGKILL (a thread stuck in the kernel); "
                     . "its threads:\n" . $self->threads_state);
    return undef;
}

sub wait_for_log {
    my ($self, $re, %o) = @_;
    my $off = $o{offset} // 0;
    my $m;
    PgNearTest::wait_until(sub { my @m = $self->_log_from($off) =~ $re; $m = @m ? $m[0] // 1 : undef; @m },
                           timeout => $o{timeout} // 10, interval => 0.05);
    return $m;
}


# $p->pool_row('movr'): SHOW POOLS' row of a database (its cl_waiting, ...), or undef.
sub pool_row {
    my ($self, $database) = @_;
    my ($row) = grep { $_->{database} eq $database } $self->admin_rows('SHOW POOLS');
    return $row;
}

# $p->wire_login(user => 'app', database => 'movr', password => 'app-secret'):
# a raw-protocol client logged in through this pgnear (dies when it is not).
sub wire_login {
    my ($self, %o) = @_;
    my $w = PgNearTest::Wire->connect(host => '127.0.0.1', port => $self->{port}, timeout => 30);
    my $r = $w->startup(%o);
    die 'login through pgnear failed: ' . ($r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'eof') . "\n"
      unless $r->{ok};
    return $w;
}

# $p->admin_rows('SHOW REGIONS', user => 'admin', password => 'admin-secret'):
# the console's answer as a list of hashes keyed by column name (psql -A, a
# header row, no footer), so that a test reads columns by their names.
sub admin_rows {
    my ($self, $sql, %o) = @_;
    # A proxy whose clients must use TLS is asked over TLS.
    my $tls = ($self->{settings}{client_tls} // '') eq 'require';
    my ($rc, $out, $err) = PgNearTest::psql(
        $self->conninfo(dbname => 'pgnear', user => $o{user} // 'admin', password => $o{password} // 'admin-secret',
                        ($tls ? (sslmode => 'require') : ())),
        $sql, args => ['-P', 'tuples_only=off', '-P', 'footer=off'], verbose => 1);
    if ($rc != 0) {
        # errors => 'row': the failure as one row, { error => psql's stderr }, for a test that checks it.
        return { error => $err } if ($o{errors} // '') eq 'row';
        croak "admin command [$sql] failed (exit $rc):\n$err";
    }
    my @lines = split /\n/, $out;
    my @head = split /\|/, (shift(@lines) // ''), -1;
    return map { my %r; @r{@head} = split(/\|/, $_, -1); \%r } @lines;
}

sub conninfo {
    my ($self, %o) = @_;
    return PgNearTest::_merge_conninfo(
        [host => $self->{host}, port => $self->{port}, dbname => $PgNearTest::APP_DB,
         user => $PgNearTest::APP_USER, password => $PgNearTest::APP_PASSWORD,
         sslmode => 'disable', connect_timeout => 10], \%o);
}

sub _cleanup {
    my ($self) = @_;
    return if $$ != $self->{owner_pid};
    $self->stop(signal => 'INT', timeout => 5) if $self->{pid};
}

sub DESTROY {
    local ($?, $!, $@);
    eval { $_[0]->_cleanup };
}

# ======================================================================
# A TCP relay in front of a server, run in a child process, for tests that
# need to see or break what travels between pgnear and a server:
#   first_bytes => N   records the first N bytes pgnear sent on each
#                      connection (hex, one line per connection) in ->record
#   ->sever            loses every connection it carries without a word to
#                      pgnear: the server side is closed, the pgnear side is
#                      reset only when pgnear next sends (a NAT forgetting)
#   ->intercept(match => STR, count => N, action => 'stall' | 'reset')
#                      the next N connections whose first bytes from pgnear
#                      contain STR (an application_name, say) never reach
#                      the server: 'stall' holds them open and silent (a
#                      server too busy to answer), 'reset' resets them (a
#                      crash); count => 0 stops intercepting
#   ->intercepted      one word per connection that matched, in order:
#                      'stall', 'reset', or 'pass' (matched, let through)
# It stops by itself after `lifetime` seconds (default 300).
package PgNearTest::Relay;

use strict;
use warnings;
use IO::Select;
use IO::Socket::IP;
use Socket qw(SOL_SOCKET SO_LINGER);
use Time::HiRes qw(time);

sub new {
    my ($class, %o) = @_;
    my $to = $o{to} // die 'Relay: to => port required';
    my $dir = PgNearTest::tmpdir(name => 'relay', mode => 0755);
    my $self = bless { record => "$dir/first-bytes", control => "$dir/intercept",
                       intercepted => "$dir/intercepted", owner_pid => $$ }, $class;
    my $l;
    for (1 .. 5) {
        $self->{port} = PgNearTest::free_port();
        $l = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => $self->{port}, Listen => 64,
                                 ReuseAddr => 1) and last;
    }
    die "Relay: cannot listen: $!" unless $l;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        eval { _run($l, $to, $o{first_bytes} // 0, $self->{record}, $o{lifetime} // 300,
                    @{$self}{qw(control intercepted)}) };
        POSIX::_exit(0);
    }
    close $l;
    $self->{pid} = $pid;
    PgNearTest::_reg_add("pid $pid");
    PgNearTest::_register($self);
    return $self;
}

sub port   { $_[0]{port} }
sub hostport { "127.0.0.1:$_[0]{port}" }
sub sever  { kill 'USR1', $_[0]{pid} }
# One hex string per connection, in the order they were accepted.
sub recorded {
    my ($self) = @_;
    return () unless -e $self->{record};
    return split /\n/, PgNearTest::slurp_file($self->{record});
}

sub intercept {
    my ($self, %o) = @_;
    my $match = $o{match} // die 'Relay: intercept needs match';
    my $action = $o{action} // 'stall';
    die "Relay: intercept action is stall or reset\n" unless $action =~ /^(?:stall|reset)$/;
    die "Relay: intercept match cannot hold a newline\n" if $match =~ /\n/;
    _write_control($self->{control}, $action, $o{count} // 1, $match);
}

sub intercepted {
    my ($self) = @_;
    return () unless -e $self->{intercepted};
    return split /\n/, PgNearTest::slurp_file($self->{intercepted});
}

# Written aside and renamed, so that the relay never reads half a file.
sub _write_control {
    my ($path, $action, $count, $match) = @_;
    PgNearTest::write_file("$path.new", "$action\n$count\n$match\n");
    rename "$path.new", $path or die "rename $path: $!";
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'KILL', $self->{pid};
    waitpid($self->{pid}, 0);
    PgNearTest::_reg_del("pid $self->{pid}");
    delete $self->{pid};
}

sub _cleanup { my ($self) = @_; $self->stop if $$ == $self->{owner_pid} }
sub DESTROY  { local ($?, $@); eval { $_[0]->_cleanup } }

# What to do with a client connection whose first bytes so far are $head:
# 'stall', 'reset', 'pass' (it matched, let through), '' (it did not match).
sub _intercept_verdict {
    my ($control, $log, $head) = @_;
    return '' unless -e $control;
    my ($action, $left, $match) = split /\n/, PgNearTest::slurp_file($control);
    return '' unless defined $match && length $match && index($head, $match) >= 0;
    my $verdict = $left > 0 ? $action : 'pass';
    _write_control($control, $action, $left - 1, $match) if $left > 0;
    open my $fh, '>>', $log or die "open $log: $!";
    print $fh "$verdict\n";
    close $fh;
    return $verdict;
}

sub _run {
    my ($l, $to, $want, $record, $lifetime, $control, $intercepted) = @_;
    my $sever = 0;
    local $SIG{USR1} = sub { $sever = 1 };
    my (%other, %upstream, %zombie, %seen, %head, %held);
    my $sel = IO::Select->new($l);
    my $end = time + $lifetime;
    while (time < $end) {
        if ($sever) {
            for my $s (grep { $_ != $l } $sel->handles) {
                if ($upstream{$s}) { $sel->remove($s); close $s }
                else               { $zombie{$s} = 1 }
            }
            %other = %upstream = ();
            $sever = 0;
        }
        for my $s ($sel->can_read(0.05)) {
            if ($s == $l) {
                my $c = $l->accept or next;
                my $u = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $to) or do { close $c; next };
                @other{ $c, $u } = ($u, $c);
                $upstream{$u} = 1;
                $seen{$c} = '';
                $head{$c} = '';
                $sel->add($c, $u);
                next;
            }
            next unless defined fileno($s);    # closed earlier in this batch
            my $n = sysread($s, my $buf, 65536);
            if (delete $zombie{$s}) {
                setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));    # RST
                $sel->remove($s); close $s;
                next;
            }
            if ($held{$s}) {    # stalled: what it sends goes nowhere, until it hangs up
                if (!$n) { delete $held{$s}; $sel->remove($s); close $s }
                next;
            }
            if ($n && exists $head{$s}) {
                $head{$s} .= $buf;
                my $v = _intercept_verdict($control, $intercepted, $head{$s});
                delete $head{$s} if $v ne '' || length $head{$s} >= 4096;
                if ($v eq 'stall' || $v eq 'reset') {
                    my $u = delete $other{$s};
                    delete $other{$u};
                    delete $upstream{$u};
                    $sel->remove($u); close $u;
                    if ($v eq 'stall') { $held{$s} = 1; next }
                    setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));    # RST
                    $sel->remove($s); close $s;
                    next;
                }
            }
            if ($want && exists $seen{$s} && $n) {
                $seen{$s} .= $buf;
                if (length $seen{$s} >= $want) {
                    open my $fh, '>>', $record or die;
                    print $fh unpack('H*', substr($seen{$s}, 0, $want)), "\n";
                    close $fh;
                    delete $seen{$s};
                }
            }
            my $o = $other{$s};
            if (!$n || !$o) {
                for my $x (grep { defined } $s, $o) {
                    $sel->remove($x); close $x; delete $other{$x}; delete $head{$x};
                }
                next;
            }
            syswrite($o, $buf);
        }
    }
}

# ======================================================================
package PgNearTest::Wire;

# A small PostgreSQL v3 frontend speaking raw protocol, for what libpq
# cannot show (SQLSTATE of a failed login, NegotiateProtocolVersion) or
# will not send (PROXY headers, odd startup packets, cancel requests).
# Plain TCP or Unix socket only (no TLS).

use strict;
use warnings;
use Carp qw(croak);
use IO::Select;
use IO::Socket::IP;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Digest::SHA qw(sha256 hmac_sha256);
use Digest::MD5 qw(md5_hex);
use MIME::Base64 qw(encode_base64 decode_base64);

# connect(host => '127.0.0.1', port => N | socket_dir => DIR, port => N
#         | socket_path => PATH, timeout => 10, prelude => BYTES)
sub connect {
    my ($class, %o) = @_;
    my $timeout = $o{timeout} // 10;
    my $port = $o{port} // ($o{socket_path} ? 0 : croak 'Wire: port required');
    my $sock;
    if ($o{socket_path}) {
        $sock = IO::Socket::UNIX->new(Peer => $o{socket_path}, Type => SOCK_STREAM)
          or die "Wire: connect $o{socket_path}: $!\n";
    } elsif ($o{socket_dir}) {
        $sock = IO::Socket::UNIX->new(Peer => "$o{socket_dir}/.s.PGSQL.$port", Type => SOCK_STREAM)
          or die "Wire: connect $o{socket_dir}/.s.PGSQL.$port: $!\n";
    } else {
        my $host = $o{host} // '127.0.0.1';
        # local_addr: connect from another loopback address (127.0.0.5), as another "caller"
        $sock = IO::Socket::IP->new(PeerHost => $host, PeerPort => $port, Proto => 'tcp', Timeout => $timeout,
                                    ($o{local_addr} ? (LocalHost => $o{local_addr}) : ()))
          or die "Wire: connect $host:$port: $@\n";
    }
    binmode $sock;
    my $self = bless { sock => $sock, timeout => $timeout, buf => '' }, $class;
    $self->send_raw($o{prelude}) if defined $o{prelude};
    return $self;
}

sub socket { $_[0]{sock} }

sub send_raw {
    my ($self, $bytes) = @_;
    my $sel = IO::Select->new($self->{sock});
    my $off = 0;
    while ($off < length $bytes) {
        $sel->can_write($self->{timeout}) or die "Wire: write timed out\n";
        my $n = syswrite($self->{sock}, $bytes, length($bytes) - $off, $off);
        die "Wire: write: $!\n" unless defined $n;
        $off += $n;
    }
}

sub send_msg {
    my ($self, $type, $payload) = @_;
    $self->send_raw($type . pack('N', 4 + length $payload) . $payload);
}

# read_bytes(N): exactly N bytes, undef on EOF; dies on timeout.
sub read_bytes {
    my ($self, $n) = @_;
    my $sel = IO::Select->new($self->{sock});
    while (length $self->{buf} < $n) {
        $sel->can_read($self->{timeout}) or die "Wire: read timed out after $self->{timeout}s\n";
        my $r = sysread($self->{sock}, my $chunk, 65536);
        die "Wire: read: $!\n" unless defined $r;
        return undef if $r == 0;
        $self->{buf} .= $chunk;
    }
    return substr($self->{buf}, 0, $n, '');
}

# read_msg -> (type, payload), or () on EOF
sub read_msg {
    my ($self) = @_;
    my $hdr = $self->read_bytes(5) // return ();
    my ($type, $len) = unpack('a N', $hdr);
    my $payload = $len > 4 ? $self->read_bytes($len - 4) : '';
    return () unless defined $payload;
    return ($type, $payload);
}

# errors_until_eof -> the SQLSTATE of each ErrorResponse read until the
# server side closes, and "no EOF: why" last when it does not in time.
sub errors_until_eof {
    my ($self) = @_;
    my @codes;
    eval {
        while (my ($type, $payload) = $self->read_msg) {
            push @codes, parse_fields($payload)->{C} // '?' if $type eq 'E';
        }
        1;
    } or push @codes, "no EOF: $@";
    return @codes;
}

sub parse_fields {
    my ($payload) = @_;
    my %f;
    while ($payload =~ /\G([^\0])([^\0]*)\0/gc) { $f{$1} = $2 }
    return \%f;
}

# SSLRequest: returns the one-byte answer ('S' or 'N'), or undef on EOF.
sub ssl_request {
    my ($self) = @_;
    $self->send_raw(pack('NN', 8, 80877103));
    return $self->read_bytes(1);
}

# startup(user =>, database =>, password =>, params => [k => v, ...],
#         protocol => 0x30000 | [3, 2])
# -> { ok => 0|1, error => {C=>..,M=>..}, params => {...}, pid =>, key =>,
#      auth => [...], negotiate => {minor =>, unrecognized => [...]},
#      notices => [...], eof => 0|1 }
sub startup {
    my ($self, %o) = @_;
    my $proto = $o{protocol} // 0x30000;
    $proto = ($proto->[0] << 16) | $proto->[1] if ref $proto;
    my @p = (user => $o{user} // croak('Wire: user required'));
    push @p, database => $o{database} if defined $o{database};
    push @p, ref $o{params} eq 'HASH' ? %{ $o{params} } : @{ $o{params} // [] };
    my $body = pack('N', $proto);
    while (my ($k, $v) = splice(@p, 0, 2)) { $body .= "$k\0$v\0" }
    $body .= "\0";
    $self->send_raw(pack('N', 4 + length $body) . $body);

    my %r = (ok => 0, params => {}, auth => [], notices => []);
    # hangup_at => 'sent': close once the startup packet is out; 'sasl_final': at the SCRAM
    # exchange's last message (the password proved); 'auth_ok': at AuthenticationOk
    if (($o{hangup_at} // '') eq 'sent') { $self->hangup; $r{hung_up} = 1; return \%r }
    my $scram;
    for (1 .. 1000) {
        my ($t, $m) = $self->read_msg;
        if (!defined $t) { $r{eof} = 1; return \%r }
        if ($t eq 'R') {
            my $code = unpack('N', $m);
            if ($code == 0) {
                push @{ $r{auth} }, 'ok';
                if (($o{hangup_at} // '') eq 'auth_ok') { $self->hangup; $r{hung_up} = 1; return \%r }
            }
            elsif ($code == 3) {
                push @{ $r{auth} }, 'password';
                $self->send_msg('p', ($o{password} // '') . "\0");
            } elsif ($code == 5) {
                push @{ $r{auth} }, 'md5';
                my $salt = substr($m, 4, 4);
                $self->send_msg('p', 'md5' . md5_hex(md5_hex(($o{password} // '') . $o{user}) . $salt) . "\0");
            } elsif ($code == 10) {
                my @mechs = grep { length } split /\0/, substr($m, 4);
                push @{ $r{auth} }, "sasl:@mechs";
                $r{sasl_mechanisms} = \@mechs;
                die "Wire: server offers no SCRAM-SHA-256 (@mechs)\n" unless grep { $_ eq 'SCRAM-SHA-256' } @mechs;
                my $nonce = encode_base64(join('', map { chr(int(rand(256))) } 1 .. 18), '');
                $scram = { bare => "n=,r=$nonce", nonce => $nonce };
                my $first = "n,,$scram->{bare}";
                $self->send_msg('p', "SCRAM-SHA-256\0" . pack('N', length $first) . $first);
            } elsif ($code == 11) {
                my $sf = substr($m, 4);
                my %a = map { /^(\w)=(.*)$/s ? ($1, $2) : () } split /,/, $sf;
                die "Wire: bad SCRAM server-first '$sf'\n"
                  unless $scram && defined $a{r} && index($a{r}, $scram->{nonce}) == 0 && $a{s} && $a{i};
                my $salted = PgNearTest::_pbkdf2_sha256($o{password} // '', decode_base64($a{s}), $a{i});
                my $ck = hmac_sha256('Client Key', $salted);
                my $wo = "c=biws,r=$a{r}";
                my $am = "$scram->{bare},$sf,$wo";
                my $proof = $ck ^ hmac_sha256($am, sha256($ck));
                $scram->{expect} = encode_base64(hmac_sha256($am, hmac_sha256('Server Key', $salted)), '');
                # before_final => sub { ... }: runs with the login paused before the proof is sent
                $o{before_final}->() if $o{before_final};
                $self->send_msg('p', "$wo,p=" . encode_base64($proof, ''));
            } elsif ($code == 12) {
                my ($v) = substr($m, 4) =~ /v=([^,]+)/;
                $r{server_signature_ok} = (defined $v && $scram && $v eq $scram->{expect}) ? 1 : 0;
                if (($o{hangup_at} // '') eq 'sasl_final') { $self->hangup; $r{hung_up} = 1; return \%r }
            } else {
                die "Wire: unsupported authentication request $code\n";
            }
        }
        elsif ($t eq 'S') { my ($k, $v) = split /\0/, $m; $r{params}{$k} = $v }
        elsif ($t eq 'K') { ($r{pid}, $r{key}) = unpack('N a*', $m) }
        elsif ($t eq 'N') { push @{ $r{notices} }, parse_fields($m) }
        elsif ($t eq 'v') {
            my ($minor, $n) = unpack('N N', $m);
            $r{negotiate} = { minor => $minor & 0xffff,
                              unrecognized => [grep { length } split /\0/, substr($m, 8)] };
        }
        elsif ($t eq 'E') { $r{error} = parse_fields($m); return \%r }
        elsif ($t eq 'Z') { $r{ok} = 1; $r{status} = $m; $self->{pid} = $r{pid}; $self->{key} = $r{key}; return \%r }
        else { die "Wire: unexpected message '$t' during startup\n" }
    }
    die "Wire: startup did not finish\n";
}

# query($sql) -> { rows => [[...]], columns => [...], tags => [...], tag =>,
#                  error => {...}, notices => [...], notifications => [...], status => 'I' }
sub query {
    my ($self, $sql) = @_;
    $self->send_query($sql);
    return $self->read_result;
}

# send_query($sql): the Query message alone; read_result later reads its answer.
sub send_query {
    my ($self, $sql) = @_;
    $self->send_msg('Q', "$sql\0");
}

# read_result -> what query returns, for a Query sent before.
sub read_result {
    my ($self) = @_;
    my %r = (rows => [], columns => [], tags => [], notices => [], notifications => []);
    for (1 .. 10_000_000) {
        my ($t, $m) = $self->read_msg;
        if (!defined $t) { $r{eof} = 1; return \%r }
        if ($t eq 'T') {
            my $n = unpack('n', $m);
            my @cols;
            my $pos = 2;
            for (1 .. $n) {
                my $end = index($m, "\0", $pos);
                push @cols, substr($m, $pos, $end - $pos);
                $pos = $end + 1 + 18;
            }
            $r{columns} = \@cols;
        }
        elsif ($t eq 'D') {
            my $n = unpack('n', $m);
            my $pos = 2;
            my @row;
            for (1 .. $n) {
                my $len = unpack('l>', substr($m, $pos, 4));
                $pos += 4;
                if ($len < 0) { push @row, undef }
                else { push @row, substr($m, $pos, $len); $pos += $len }
            }
            push @{ $r{rows} }, \@row;
        }
        elsif ($t eq 'C') { (my $tag = $m) =~ s/\0$//; push @{ $r{tags} }, $tag; $r{tag} = $tag }
        elsif ($t eq 'E') { $r{error} = parse_fields($m) }
        elsif ($t eq 'N') { push @{ $r{notices} }, parse_fields($m) }
        elsif ($t eq 'A') {
            my ($pid, $rest) = unpack('N a*', $m);
            my ($ch, $payload) = split /\0/, $rest, -1;
            push @{ $r{notifications} }, { pid => $pid, channel => $ch, payload => $payload };
        }
        elsif ($t eq 'S') {
            my ($k, $v) = split /\0/, $m, -1;
            push @{ $r{parameters} }, [$k, $v];
        }
        elsif ($t eq 'Z') { $r{status} = $m; return \%r }
        # 'I' (empty query) and others are ignored
    }
    die "Wire: query did not finish\n";
}

sub terminate {
    my ($self) = @_;
    eval { $self->send_msg('X', '') };
    close $self->{sock};
}

# PgNearTest::Wire->cancel(host =>, port =>, pid =>, key =>): sends a
# CancelRequest and waits (bounded) for the other side to close.
sub cancel {
    my ($class, %o) = @_;
    my $w = $class->connect(%o);
    my $body = pack('NN', 80877102, $o{pid}) . $o{key};
    $w->send_raw(pack('N', 4 + length $body) . $body);
    my $eof = eval { !defined $w->read_bytes(1) };
    $w->hangup;
    return 1;
}

# Closes the connection without a Terminate (TlsWire: ends its openssl).
sub hangup { my $sock = $_[0]->socket; close $sock if $sock }

package PgNearTest;


# ================================================================ PgNearTest::TlsWire

# A raw protocol client over TLS: PgNearTest::Wire with its socket replaced
# by `openssl s_client -starttls postgres` (which sends the SSLRequest and
# does the handshake), so that startup() & co. work over TLS too.
#   PgNearTest::TlsWire->connect(host =>, port =>, ca => CA_FILE, verify_hostname => 'localhost')
package PgNearTest::TlsWire;
our @ISA = ('PgNearTest::Wire');
use IPC::Run ();
use Time::HiRes ();

sub connect {
    my ($class, %o) = @_;
    my $self = bless { in => '', out => '', err => '', timeout => $o{timeout} // 10, buf => '' }, $class;
    my @cmd = (PgNearTest::require_tool('openssl'), 's_client', '-connect', "$o{host}:$o{port}",
               '-starttls', 'postgres', '-quiet', '-nocommands', '-verify_return_error',
               '-CAfile', $o{ca}, '-verify_hostname', $o{verify_hostname} // 'localhost');
    $self->{h} = IPC::Run::start(\@cmd, '<', \$self->{in}, '>', \$self->{out}, '2>', \$self->{err},
                                 IPC::Run::timeout(60));
    return $self;
}

sub send_raw {
    my ($self, $bytes) = @_;
    $self->{in} .= $bytes;
    my $deadline = Time::HiRes::time() + $self->{timeout};
    while (length $self->{in}) {
        die "TlsWire: openssl s_client ended: $self->{err}\n" unless $self->{h}->pumpable;
        die "TlsWire: write timed out\n" if Time::HiRes::time() > $deadline;
        $self->{h}->pump_nb;
        Time::HiRes::sleep(0.01) if length $self->{in};
    }
}

# Exactly N bytes, undef on EOF (s_client exits when the server closes).
sub read_bytes {
    my ($self, $n) = @_;
    my $deadline = Time::HiRes::time() + $self->{timeout};
    while (length $self->{out} < $n) {
        return undef unless $self->{h}->pumpable;
        die "TlsWire: read timed out after $self->{timeout}s; s_client said: $self->{err}\n"
          if Time::HiRes::time() > $deadline;
        $self->{h}->pump_nb;
        Time::HiRes::sleep(0.01) if length $self->{out} < $n;
    }
    return substr($self->{out}, 0, $n, '');
}

sub stderr { $_[0]{err} }

sub terminate {
    my ($self) = @_;
    eval { $self->send_msg('X', '') };
    eval { $self->{h}->kill_kill(grace => 1) };
}

sub hangup { eval { $_[0]{h}->kill_kill(grace => 1) } }

sub DESTROY { my $s = shift; local ($@, $?); eval { $s->{h}->kill_kill(grace => 0) if $s->{h} && $s->{h}->pumpable } }

package PgNearTest;

1;

__END__

=head1 NAME

PgNearTest - integration-test harness for pgnear (real PostgreSQL servers, TAP)

=head1 SYNOPSIS

  use FindBin;
  use lib "$FindBin::RealBin/../lib";
  use Test::More;
  use PgNearTest;

  my $ca = PgNearTest::CA->new;
  my $us = PgNearTest::Cluster->new(name => 'us-east', ca => $ca);
  my $eu = PgNearTest::Cluster->new(name => 'eu-west', ca => $ca);
  my $p  = PgNearTest::Proxy->new(regions => [$us, $eu],
                                  settings => { health_check_interval => '1s' });
  is psql($p->conninfo(options => '-c pgnear.city=dublin'), 'SHOW cluster_name'), 'eu-west';
  done_testing;

=head1 ENVIRONMENT

  PGNEAR            the pgnear binary (required by PgNearTest::Proxy)
  PG_BINDIR         PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
  PGNEAR_TEST_KEEP  keep the temp root (/tmp/pgnear-test-*) for inspection
  PGNEAR_TEST_NO_IPV6  behave as if ::1 were unavailable
  PGNEAR_TEST_WORKERS  run every pgnear with this many event-loop threads
  PGNEAR_TEST_IO_BACKEND  run every pgnear with this io_backend (epoll, io_uring)

Loading the module deletes every PG* libpq variable from %ENV and sets
LC_ALL=C.UTF-8, so that tools behave the same everywhere.

=head1 CLEANUP

Everything lives under one root /tmp/pgnear-test-NAME-XXXXXX per test
process.  At exit (normal, die, or SIGINT/TERM/HUP) proxies are stopped
(SIGINT, SIGKILL after 5 s), servers stopped with pg_ctl -m immediate, and
the root removed.  A detached guardian process does the same if the test
process is SIGKILLed.  Ports are reserved across processes with lock files
in /tmp/pgnear-test-ports.  When the test failed, the tail of every pgnear
log is printed as diagnostics.

=head1 FUNCTIONS (exported)

  psql($conninfo, $sql | \@sqls, timeout => 30, verbose => 0, quiet => 0,
       stdin => STR, args => [...], env => {...}, password => STR)
      list context: (exit_code, trimmed stdout, stderr)
      scalar context: trimmed stdout; dies unless exit code is 0.
      Runs psql -X -A -t -v ON_ERROR_STOP=1 [-c ...]... -d CONNINFO.
      verbose => 1 adds \set VERBOSITY verbose, so sqlstate($stderr) works
      (for errors after login; for login errors use PgNearTest::Wire).
  pgbench(\@args, $conninfo | {ENV=>VAL}, timeout => 120) -> (exit_code, stdout, stderr)
  parse_pgbench($stdout) -> {processed, failed, failed_pct, tps, latency_avg,
                             clients, threads, scale, duration}
  run_cmd(\@argv, timeout => 30, stdin =>, env => {K => V|undef}, cwd =>)
      -> (exit_code, stdout, stderr); -1 if it timed out or could not start
  sqlstate($psql_stderr | $wire_error_hash) -> 'XXXXX' or undef
  dbi_connect($conninfo, %dbi_attrs) -> $dbh or undef ($DBI::errstr)
  conninfo_string(k => v, ...) -> "k=v k='quoted v'" (undef values skipped)
  make_scram_verifier($password, salt => RAW, iterations => 4096) -> 'SCRAM-SHA-256$...'
  free_port(ipv6 => 0|1) -> a free port in 20000..31999, reserved for this process
  have_ipv6() -> 1 if ::1 can be bound
  wait_until(sub {...}, timeout => 10, interval => 0.1) -> the true value, or 0
  http_get($port, $path) -> (status, body) of http://127.0.0.1:$port$path, or ()
  require_tool($name) -> full path; dies loudly if missing
  pg_bindir() -> directory of the PostgreSQL server binaries
  tmpdir(name => 'x', mode => 0700, owner => 'postgres') -> dir under the root
  slurp_file($path), write_file($path, $content, mode => 0600, owner => 'postgres')

=head1 PgNearTest::CA

  PgNearTest::CA->new(dir => DIR, key_type => 'ec'|'rsa', cn => 'PgNear Test CA')
  $ca->issue(name => 'server', cn => 'localhost',
             san => ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1'],
             owner => 'postgres', key_type => 'ec', days => 3650)
      -> {cert => path, key => path}   (key mode 0600, owned by postgres
         when we are root unless owner => undef)
  $ca->cert, $ca->key, $ca->dir

=head1 PgNearTest::Cluster

  PgNearTest::Cluster->new(name => 'us-east', ca => $ca|undef, port => N,
      location => 'lat, lon', hba => [lines], conf => {k => v} | "text",
      ipv6 => 0|1, roles => 1, own_initdb => 0|1, env => {NAME => value})
  Starts a PostgreSQL server (initdb, pg_ctl -w) as OS user postgres, with
  cluster_name, listen_addresses 127.0.0.1[,::1], max_connections 200,
  fsync off, password_encryption scram-sha-256, ssl on with a CA-issued
  certificate (SAN localhost, 127.0.0.1, ::1) when ca is given.
  pg_hba.conf: "local all postgres trust" followed by hba (default: local
  all all trust; host all all 127.0.0.1/32 and ::1/128 scram-sha-256).
  Roles: app/app-secret (superuser, owns database movr) and
  pgnear/pgnear-secret (superuser).  Known region names have a default
  location (%PgNearTest::Cluster::LOCATION).  The data directory is a copy
  of one initdb per test process, so every such cluster has the same
  system identifier (as a primary and its standbys do); own_initdb => 1
  runs initdb for this cluster alone, for one that must look unrelated.
  env: the server's environment beside the test's (LD_PRELOAD, say).

  $c->name, host ('127.0.0.1'), port, hostport, location, datadir,
  socket_dir, log_path, log_contents, pid, is_running
  $c->conninfo(%overrides)   host port dbname=movr user=app password sslmode=disable connect_timeout=10
  $c->psql_admin($sql | \@sqls, dbname => 'postgres') -> trimmed stdout; dies on error
  $c->scram_verifier($role) -> rolpassword
  $c->stop(mode => 'fast'), $c->start, $c->restart(mode => 'fast')

=head1 PgNearTest::Proxy

  PgNearTest::Proxy->new(
      regions   => [$cluster, {name =>, location =>, hosts => [$cluster | 'h:p', ...]}, ...]
                   | {name => $cluster | {location =>, hosts => [...]}},
      settings  => {key => value | [values] | undef},   # undef removes a default
      extra_ini => "[cities]\nseattle = us-west\n",
      binary    => $ENV{PGNEAR}, args => ['-v'], port => N,
      start => 1, start_timeout => 10)
  Defaults in [pgnear]: listen_addr (127.0.0.1[, ::1]), listen_port,
  unix_socket_dir (its temp dir), default_region (first region),
  server_conninfo (user=pgnear password=pgnear-secret), health_check_timeout
  (5s, not the shipped 1s: a loaded machine makes checks slow, and three
  slow ones in a row take a healthy host down; a test about slow checks
  sets its own).
  Runs "$PGNEAR -v CONFIG.ini", output to log_path, and waits until the
  process listens on 127.0.0.1:port; dies with the log tail otherwise.
  PGNEAR_TEST_LOG_FORMAT=json writes log_format = json into every file (a
  test's own log_format wins), and the log of a pgnear whose file says so
  (not one whose test wrote the file itself without it: 193's shipped
  file) with a line that is not a JSON log line (time, level, pid,
  message) fails the test file (status 96) at its stop and at the end.  log_contents, log_size, wait_for_log and
  their offsets read a JSON line as the text line it stands for.

  $p->port, host, pid, dir, socket_dir, config_path, config_text, log_path,
  log_contents, log_size, exit_status, is_running
  $p->conninfo(%overrides)   like Cluster::conninfo, pointing at pgnear
  $p->update_config(regions =>, settings =>, extra_ini =>)   rewrites the file
  $p->signal('HUP'), $p->start
  $p->stop(signal => 'TERM', timeout => 15) -> exit code (128+N if signal N)
  $p->wait_for_exit(timeout => 10) -> exit code or undef
  $p->wait_for_log(qr/.../, offset => $p->log_size_before, timeout => 10) -> $1 / 1 or undef

=head1 PgNearTest::Wire

Raw protocol client (plain TCP or Unix socket), for login-time SQLSTATEs,
NegotiateProtocolVersion, PROXY headers and cancel requests.

  my $w = PgNearTest::Wire->connect(host =>, port =>, socket_dir =>, socket_path =>, timeout => 10, prelude => $bytes,
                                    local_addr => '127.0.0.5');
  my $r = $w->startup(user =>, database =>, password =>, params => [k => v],
                      protocol => [3, 0]);
      # {ok, error => {C, M, S, ...}, params, pid, key, auth, negotiate, notices, eof}
  my $q = $w->query($sql);   # {rows, columns, tags, tag, error, notices, notifications, status}
  $w->ssl_request -> 'S' | 'N'; $w->send_raw($bytes); $w->send_msg($type, $payload);
  $w->read_msg -> ($type, $payload); $w->terminate;
  PgNearTest::Wire->cancel(host =>, port =>, pid =>, key =>);

=cut
