# suite.bash - start and stop a private postern instance for bats tests.
#
#   load helpers/suite
#   setup()    { suite_init; suite_conf key value; suite_start; }
#   teardown() { suite_stop; }
#
# Everything lives in a temp dir $T: config in $T/conf, queue in $T/queue,
# sockets in $T/run, Maildirs in $T/mail, master's log in $T/log. Ports
# are picked free on 127.0.0.1. Processes are killed only by PID. The
# bounded waits (wait_for_log, wait_for_port, ...) are in wait.bash.

# shellcheck source=tests/helpers/wait.bash
source "${BASH_SOURCE[0]%/*}/wait.bash"

: "${BUILD:=$(cd "$BATS_TEST_DIRNAME/.." && pwd)/build}"
export BUILD
POSTERN="$BUILD/postern"

# Loopback ports for a test's servers, picked below the kernel's
# ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 here): a
# port the kernel handed out by bind(0) and that was closed again may go
# to the next outgoing connection, and the test files that run side by
# side open thousands (smtp-source); one such connection took a port
# between its picking and master's bind. A random port in 20000-32767
# that binds now is free of that race; two pickers meeting on one is
# left to chance (1 in 12,768).
free_port() {
	/usr/bin/python3 "${BASH_SOURCE[0]%/*}/free_port.py" tcp
}

# A loopback port free for both UDP and TCP, for a DNS server (a test's
# dnsmasq or nsd), or for none: see instance_conf.
free_dns_port() {
	/usr/bin/python3 "${BASH_SOURCE[0]%/*}/free_port.py" tcp udp
}

# passwd_locked CMD...: run useradd/usermod one at a time across the bats
# files that run side by side (they fail, not wait, on a locked passwd).
passwd_locked() {
	flock /run/lock/postern-test-passwd "$@"
}

# The unprivileged user daemons run as: when root, a dedicated test user.
suite_user() {
	if [ "$(id -u)" -eq 0 ]; then
		if ! id posternt >/dev/null 2>&1; then
			passwd_locked useradd --system --no-create-home --home-dir /nonexistent \
				--shell /usr/sbin/nologin posternt >/dev/null 2>&1 ||
				id posternt >/dev/null 2>&1 || return 1
		fi
		echo posternt
	else
		id -un
	fi
}

# smtpd's network worker runs as smtpd_user, apart from the queue's
# owner (smtpd/smtpd_door.c): when root, a second test user.
suite_smtpd_user() {
	if [ "$(id -u)" -eq 0 ]; then
		if ! id posterns >/dev/null 2>&1; then
			passwd_locked useradd --system --user-group --no-create-home \
				--home-dir /nonexistent --shell /usr/sbin/nologin \
				posterns >/dev/null 2>&1 ||
				id posterns >/dev/null 2>&1 || return 1
		fi
		echo posterns
	else
		id -un
	fi
}

# instance_conf DIR HOSTNAME: the start of the config of an instance in
# DIR (DIR/conf/postern.conf): its queue and sockets under DIR, the
# programs of the build, the test users. The caller appends the rest.
#
# dns_servers is a loopback port where nothing answers: every look-up of
# the daemons fails at once (a temporary failure) instead of asking the
# machine's resolver, whose answers and delays are not the test's. A
# test that needs an answer, or an NXDOMAIN, gets it from its own
# dnsmasq (peers.bash: start_dnsmasq replaces the key).
instance_conf() {
	local dir=$1
	mkdir -p "$dir/conf"
	cat > "$dir/conf/postern.conf" <<CONF
# postern test instance in $dir
myhostname = $2
queue_directory = $dir/queue
run_directory = $dir/run
daemon_directory = $BUILD
user = $TEST_USER
smtpd_user = $TEST_SMTPD_USER
mailbox_owner = $TEST_USER
postdrop_group = $(id -gn "$TEST_USER")
dns_servers = 127.0.0.1:$(free_dns_port)
CONF
}

# instance_start DIR: start the instance of DIR/conf in the foreground,
# as a background job of the test ($! is its PID), logging to DIR/log.
instance_start() {
	: > "$1/log"
	"$POSTERN" -c "$1/conf" start -f >>"$1/log" 2>&1 &
}

# instance_stop PID [SECONDS]: stop an instance that instance_start
# started (TERM, then KILL after SECONDS, default 10) and reap it.
instance_stop() {
	kill -TERM "$1" 2>/dev/null || true
	wait_for_exit "$1" "${2:-10}" || kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

suite_init() {
	T=$(mktemp -d /tmp/postern-test.XXXXXX)
	chmod 755 "$T"
	mkdir -p "$T/conf" "$T/mail"
	SMTP_PORT=$(free_port)
	SUBMISSION_PORT=$(free_port)
	TEST_USER=$(suite_user)
	TEST_SMTPD_USER=$(suite_smtpd_user)
	if [ "$(id -u)" -eq 0 ]; then
		chown "$TEST_USER" "$T/mail"
	fi
	export T SMTP_PORT SUBMISSION_PORT TEST_USER TEST_SMTPD_USER
	instance_conf "$T" mx.postern.test
	cat >> "$T/conf/postern.conf" <<CONF
mydomains = localhost, postern.test
smtp_listen = 127.0.0.1:$SMTP_PORT
submission_listen = 127.0.0.1:$SUBMISSION_PORT
lmtp_listen = unix:$T/run/lmtp
lmtp_destination = unix:$T/run/lmtp
mailbox_base = $T/mail
service_throttle_time = 2s
shutdown_timeout = 10s
minimal_backoff = 1s
maximal_backoff = 4s
queue_run_delay = 1s
process_min_idle = 2
smtpd_processes = 20
CONF
}

# suite_conf KEY VALUE: set (or replace) a key in the test config.
suite_conf() {
	local key=$1
	shift
	local file="$T/conf/postern.conf"
	grep -v "^$key[[:space:]]*=" "$file" > "$file.new" || true
	printf '%s = %s\n' "$key" "$*" >> "$file.new"
	mv "$file.new" "$file"
}

master_pid() {
	[ -f "$T/run/master.pid" ] && head -n1 "$T/run/master.pid"
}

# Start master in the foreground (as a background job of the test).
suite_start() {
	instance_start "$T"
	SUITE_PID=$!
	export SUITE_PID
	wait_for_log 'daemon started' 30 || return 1
	if [ -x "$BUILD/smtpd" ]; then
		wait_for_port "$SMTP_PORT" 30 || return 1
	fi
}

# How long a file took, for the log of a run (never asserted):
# file_timer_start first in setup_file, file_timer_report last in
# teardown_file, which prints "# NAME.bats: N.N s" to bats' fd 3.
file_timer_start() {
	FILE_START=$(date +%s.%N)
	export FILE_START
}

file_timer_report() {
	[ -n "${FILE_START:-}" ] || return 0
	awk -v a="$FILE_START" -v b="$(date +%s.%N)" -v f="${BATS_TEST_FILENAME##*/}" \
		'BEGIN { printf "# %s: %.1f s\n", f, b - a }' >&3
}

# pidfile_kill NAME...: kill the helpers (filters, peers) a test started
# and wrote the PIDs of to $T/NAME.pid; before suite_stop removes $T.
pidfile_kill() {
	local name
	for name; do
		[ -f "$T/$name.pid" ] && kill "$(cat "$T/$name.pid")" 2>/dev/null || true
	done
}

# suite_queue_tree: the queue's directories as master makes them, for a
# test that works on queue files without starting the suite.
suite_queue_tree() {
	install -d -m 0755 "$T/queue"
	for d in incoming active hold corrupt deferred; do
		install -d -m 0700 "$T/queue/$d"
	done
	for h in 0 1 2 3 4 5 6 7 8 9 a b c d e f; do
		install -d -m 0700 "$T/queue/deferred/$h"
	done
	install -d -m 0730 "$T/queue/maildrop"
}

# refute CMD...: fail when CMD succeeds ("! cmd" does not fail a bats
# test).
refute() {
	if "$@"; then
		echo "# unexpectedly succeeded: $*" >&3
		return 1
	fi
}

# Is a process alive (and not a zombie waiting to be reaped)?
is_alive() {
	local state
	state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ "$state" != Z* ]]
}

# Children of a process, by PID (direct children only).
child_pids() {
	local pid=$1
	ps -o pid= --ppid "$pid" 2>/dev/null | tr -d ' '
}

# A sanitizer build (make check-sanitize) links the ASan runtime.
SUITE_SANITIZED=
if grep -q __asan_init "$BUILD/master" 2>/dev/null; then
	SUITE_SANITIZED=1
fi

# What AddressSanitizer, UBSan and LeakSanitizer print when they find
# something (or cannot run: a process that cannot read the suppressions
# file or open its log_path dies with one line instead of its report). A
# report inside a daemon does not fail a test by itself: master restarts
# the daemon and the test may still pass.
SANITIZER_REPORT='runtime error:|ERROR: (AddressSanitizer|LeakSanitizer)|Sanitizer has encountered a fatal error|Sanitizer: failed to|ERROR: Can.t open file'

# In a sanitizer build: print the reports in FILE and fail if there are any.
sanitizer_check() {
	local file=$1
	[ -n "$SUITE_SANITIZED" ] && [ -f "$file" ] || return 0
	grep -Eq -- "$SANITIZER_REPORT" "$file" || return 0
	echo "# sanitizer reports in $file:"
	grep -E -A 40 -- "$SANITIZER_REPORT" "$file" | head -n 200 | sed 's/^/# /'
	return 1
}

# sanitizer_check_instances DIR: sanitizer_check on DIR/log and on the
# log of every second instance a test keeps in a folder of DIR ($T/b/log,
# $T/c/log, a site's $T/NAME/log), so that a test stopping its own
# instance need not remember to.
sanitizer_check_instances() {
	local dir=$1 log status=0
	[ -n "$SUITE_SANITIZED" ] && [ -d "$dir" ] || return 0
	for log in "$dir/log" "$dir"/*/log; do
		sanitizer_check "$log" || status=1
	done
	return $status
}

# tree_pids PID: PID and all its descendants, from one ps (a walk with
# a ps per process is slow enough to let a killed tree move on).
tree_pids() {
	ps -e -o pid=,ppid= | awk -v root="$1" '
		{ kids[$2] = kids[$2] " " $1 }
		END {
			n = 1; queue[1] = root
			for (i = 1; i <= n; i++) {
				print queue[i]
				m = split(kids[queue[i]], k, " ")
				for (j = 1; j <= m; j++)
					queue[++n] = k[j]
			}
		}'
}

# Stop the suite. In a sanitizer build it fails (after the cleanup) when
# the log of the instance, or of a second instance in a folder of $T,
# holds a sanitizer report, and keeps $T for a look. A teardown that
# does more after suite_stop must return its status.
#
# Master waits for its children, not for their children: smtpd's door
# (a grandchild) writes its LeakSanitizer report when its worker is
# gone, after master may have exited. So every process of the tree is
# given time to exit (LSan's scan at exit takes a while) before the log
# is read, and only then are the stragglers killed.
suite_stop() {
	if [ -z "${SUITE_PID:-}" ]; then
		# Started some other way, or stopped already: still read
		# what is left of its logs.
		[ -n "${T:-}" ] || return 0
		sanitizer_check_instances "$T" || { echo "# kept $T"; return 1; }
		return 0
	fi
	local tree pid
	tree=$(tree_pids "$SUITE_PID")
	if kill -0 "$SUITE_PID" 2>/dev/null; then
		kill -TERM "$SUITE_PID" 2>/dev/null
		wait_for_exit "$SUITE_PID" 20 || true
		kill -KILL "$SUITE_PID" 2>/dev/null || true
	fi
	for pid in $tree; do
		[ "$pid" = "$SUITE_PID" ] && continue
		wait_for_exit "$pid" 10 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	done
	wait "$SUITE_PID" 2>/dev/null || true
	SUITE_PID=
	if ! sanitizer_check_instances "$T"; then
		echo "# kept $T"
		return 1
	fi
	if [ -n "${KEEP_TEST_DIR:-}" ]; then
		echo "# kept $T" >&3
	else
		rm -rf "$T"
	fi
}

# strace_end: stop the strace a test started in the background
# (STRACE_PID), if there is one; for teardown.
strace_end() {
	if [ -n "${STRACE_PID:-}" ]; then
		kill "$STRACE_PID" 2>/dev/null || true
		wait "$STRACE_PID" 2>/dev/null || true
		STRACE_PID=
	fi
}

# Send one message with swaks; extra swaks options may follow.
send_mail() {
	swaks --server 127.0.0.1 --port "$SMTP_PORT" --silent 2 "$@"
}

# Count the messages in the queue (all subdirectories but recycle/, which
# holds finished files for reuse: mail/queue.h, "Recycling").
queue_count() {
	# recycle/ and tls/ (deliver's MTA-STS cache, TLS-RPT store) hold
	# no messages.
	find "$T/queue/${1:-}" -path "$T/queue/recycle" -prune -o \
		-path "$T/queue/tls" -prune -o \
		-type f ! -name '.*' -print 2>/dev/null | wc -l
}

# Temporary files (".ID") in incoming/ that no process holds open: what a
# refused or broken message would leave behind. Between messages each of
# smtpd's workers holds one, open: the next message's file, which its
# door passed ahead (smtpd/smtpd_door.c); the door removes it when the
# worker goes.
queue_stray_temporaries() {
	local f held
	held=$(find /proc/[0-9]*/fd -lname "$T/queue/incoming/.*" -printf '%l\n' 2>/dev/null | sort -u)
	find "$T/queue/incoming" -name '.*' -type f 2>/dev/null | while read -r f; do
		grep -qxF "$f" <<<"$held" || echo "$f"
	done
}

# The files of the queue, the temporaries held ahead by smtpd's workers
# left out (see queue_stray_temporaries).
queue_files_but_ahead() {
	local held
	held=$(find /proc/[0-9]*/fd -lname "$T/queue/incoming/.*" -printf '%l\n' 2>/dev/null | sort -u)
	find "$T/queue" -type f 2>/dev/null | grep -vxF "${held:-/nonexistent}" || true
}

# suite_tls_selfsigned [CN [ec]]: a self-signed certificate for CN
# (default mx.postern.test; an RSA key, or P-256 with "ec") in $T/conf,
# made smtpd's (tls_cert_file, tls_key_file): for tests that need
# STARTTLS with no particular PKI.
suite_tls_selfsigned() {
	local cn=${1:-mx.postern.test} key=(-newkey rsa:2048)
	[ "${2:-}" != ec ] || key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
	openssl req -x509 "${key[@]}" -nodes -days 2 -subj "/CN=$cn" \
		-keyout "$T/conf/key.pem" -out "$T/conf/cert.pem" 2>/dev/null
	chmod 600 "$T/conf/key.pem"
	suite_conf tls_cert_file "$T/conf/cert.pem"
	suite_conf tls_key_file "$T/conf/key.pem"
}

# sasl_users_build CONF NAME PASSWORD [NAME PASSWORD...]: the table
# CONF/sasl_users of these accounts (SHA-512 crypt), built with the
# config in CONF.
sasl_users_build() {
	local conf=$1 file=$1/sasl_users
	shift
	: > "$file"
	while [ $# -ge 2 ]; do
		printf '%s %s\n' "$1" "$(openssl passwd -6 "$2")" >> "$file"
		shift 2
	done
	"$POSTERN" -c "$conf" map build "$file"
}

# suite_sasl_users NAME PASSWORD [NAME PASSWORD...]: smtpd's AUTH
# accounts (smtpd_sasl_users) in the suite.
suite_sasl_users() {
	sasl_users_build "$T/conf" "$@" || return 1
	suite_conf smtpd_sasl_users "hash:$T/conf/sasl_users"
}
