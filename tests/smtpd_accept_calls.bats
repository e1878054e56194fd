#!/usr/bin/env bats
# What an smtpd worker does per connection in the daemon skeleton
# (mail/daemon.c) and its session: the listener's own address is known
# once per process when it is bound to one address (no getsockname()
# per connection), master's alive pipe is watched by epoll_wait() alone
# (no poll() of it after each connection), and a plain session's socket
# stays blocking: each command is waited for in read(2) under
# SO_RCVTIMEO (util/bio.c's timed reads), with no ioctl(FIONBIO) and no
# poll() per command, and a client that stalls still gets its 421 at
# smtpd_timeout. Counted with strace attached to the one worker of the
# smtp service; the sessions are real (smtplib: EHLO, a message, QUIT)
# and must all be accepted.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup_file() {
	file_timer_start
	suite_init
	# One worker: every connection goes to the process strace watches.
	suite_conf smtpd_processes 1
	suite_conf process_min_idle 1
	# A new worker, and its new door, after 20 connections (the last test).
	suite_conf max_use 20
	suite_conf smtpd_peername_lookup no
	# The stalled client's wait (below); every other session here
	# answers at once.
	suite_conf smtpd_timeout 4s
	suite_start
}

teardown_file() {
	suite_stop
	file_timer_report
}

teardown() {
	strace_end
}

# send N: N sessions one after another, each EHLO, one message, QUIT;
# prints one line per session: the code of the reply to the message.
send() {
	/usr/bin/python3 - "$SMTP_PORT" "$1" <<'PY'
import smtplib, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    s = smtplib.SMTP("127.0.0.1", port, timeout=20)
    s.ehlo("client.example")
    s.mail("a@client.example")
    s.rcpt("b@postern.test")
    code, _ = s.data(b"Subject: %d\r\n\r\nbody\r\n" % i)
    s.quit()
    print(code)
PY
}

# trace_worker CALLS OUT [STRACE-OPTIONS...]: strace the smtp service's
# one worker for CALLS into OUT (its stderr in OUT.err), in the
# background (STRACE_PID), once attached: the worker's blocked
# epoll_wait shows as resumed, or strace says so; bounded. Needs root
# (the worker changed user).
trace_worker() {
	local calls=$1 out=$2 w
	shift 2
	wait_until 'w=$(smtp_worker); [ -n "$w" ]' 20
	w=$(smtp_worker)
	strace -q -e trace="$calls" "$@" -o "$out" -p "$w" 2>"$out.err" &
	STRACE_PID=$!
	wait_until "grep -q attached '$out.err' || [ -s '$out' ] ||
		grep -q 'TracerPid:[[:space:]]*[1-9]' /proc/$w/status" 20
}

# trace_stop: end the strace trace_worker started.
trace_stop() {
	kill "$STRACE_PID"
	wait "$STRACE_PID" || true
	STRACE_PID=
}

# traced_send CALLS OUT N [STRACE-OPTIONS...]: N sessions (send) while
# strace watches the worker for CALLS (trace_worker, into OUT); every
# message must be accepted. Skips without strace or root.
traced_send() {
	local calls=$1 out=$2 n=$3
	shift 3
	command -v strace >/dev/null || skip "strace is not installed"
	[ "$(id -u)" -eq 0 ] || skip "attaching to a worker that changed user needs root"
	trace_worker "$calls" "$out" "$@"
	run --separate-stderr send "$n"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^250$' <<<"$output")" -eq "$n" ]
	trace_stop
}

@test "a worker makes no getsockname, ioctl or poll per connection, and one SO_RCVTIMEO" {
	traced_send accept4,getsockname,ioctl,poll,setsockopt,read "$T/strace" 10
	# Every connection went to this worker, or the counts below say
	# nothing.
	[ "$(grep -c '^accept4(.*) = [0-9]' "$T/strace")" -eq 10 ]
	[ "$(grep -c '^getsockname(' "$T/strace")" -eq 0 ]
	[ "$(grep -c '^ioctl(.*FIONBIO' "$T/strace")" -eq 0 ]
	# No poll at all: not of fd 4, master's alive pipe (mail/daemon.h,
	# DAEMON_ALIVE_FD), nor before each command (6 a session before
	# timed reads).
	[ "$(grep -c '^poll(' "$T/strace")" -eq 0 ]
	# The commands were read: EHLO, MAIL, RCPT, DATA, the text, QUIT.
	[ "$(grep -c '^read(' "$T/strace")" -ge 60 ]
	# SO_RCVTIMEO set once a session, a little under smtpd_timeout
	# (3.938 s of 4: util/bio.c's arm_timed_read), and not again for
	# each command; strace shows the struct timeval as bytes, tv_sec
	# first.
	local armed
	armed=$(grep -c '^setsockopt(.*SO_RCVTIMEO[_A-Z]*, "\\3\\0\\0\\0\\0\\0\\0\\0' "$T/strace") || true
	[ "$armed" -ge 10 ] && [ "$armed" -le 20 ]
}

@test "a plain session's greeting goes out before its connect line is written" {
	traced_send sendto,write "$T/greet.strace" 5 -s 64
	# The client waits for the 220, no one for the log line
	# (smtpd_proto.c, greeting_first): each "connect from" is written
	# after its session's 220 was sent (before: the line, then the
	# 220).
	local order
	order=$(awk '
		/^sendto\(.*"220 / { greeted = 1 }
		/^write\(2, ".*: connect from / { n++; if (!greeted) late++; greeted = 0 }
		END { print n + 0, late + 0 }' "$T/greet.strace")
	[ "$order" = "5 0" ]
	# What no client sees stays: the connect line is still each
	# session's first (doc/logging.md), before its client= line.
	awk '/smtpd\[/ && / connect from / { c++ } /smtpd\[/ && / client=/ { if (c == 0) bad++; c = 0 } END { exit bad }' "$T/log"
}

@test "a worker sends its message's bytes to the disk before it asks the door to commit" {
	# 3: with the 15 sessions before and suite_start's probe, under
	# max_use (20), so the worker strace watches is still there at the
	# end.
	traced_send writev,sync_file_range,sendmsg "$T/wb.strace" 3 -s 32
	# mail/queue_write.c: the file's writeback starts (SYNC_FILE_RANGE_WRITE,
	# no wait) on the descriptor just written, before the commit's round
	# trip to the door, whose fsync then finds it under way.
	local order
	order=$(awk '
		/^writev\([0-9]+, / { fd = $0; sub(/^writev\(/, "", fd); sub(/,.*/, "", fd) }
		/^sync_file_range\(/ { s = $0; sub(/^sync_file_range\(/, "", s); sub(/,.*/, "", s);
			if (s == fd && /SYNC_FILE_RANGE_WRITE/) started = 1 }
		/^sendmsg\(.*type=commit/ { n++; if (started) ok++; started = 0 }
		END { print n + 0, ok + 0 }' "$T/wb.strace")
	[ "$order" = "3 3" ]
}

# session_socket_flags PID: the file status flags (octal) of PID's end of
# the one established session on SMTP_PORT (in /proc/net/tcp).
session_socket_flags() {
	local port_hex inodes f
	port_hex=$(printf '%04X' "$SMTP_PORT")
	inodes=$(awk -v p=":$port_hex" '$4 == "01" && substr($2, length($2) - 4) == p { print $10 }' /proc/net/tcp)
	[ -n "$inodes" ] || return 1
	for f in /proc/"$1"/fd/*; do
		local target ino
		# (a descriptor may close while we look: the door's files)
		target=$(readlink "$f" 2>/dev/null) || continue
		[[ "$target" == socket:\[*\] ]] || continue
		ino=${target#socket:[}
		ino=${ino%]}
		grep -qxF "$ino" <<<"$inodes" || continue
		awk '/^flags:/ { print $2 }' "/proc/$1/fdinfo/${f##*/}" 2>/dev/null
		return 0
	done
	return 1
}

@test "a plain session's socket stays blocking; a client stalled mid-command gets 421 4.4.2 at smtpd_timeout" {
	local w fd flags
	wait_until 'w=$(smtp_worker); [ -n "$w" ]' 20
	w=$(smtp_worker)
	exec {fd}<>"/dev/tcp/127.0.0.1/$SMTP_PORT"
	local greeting reply
	read -r -t 10 greeting <&"$fd"
	[[ "$greeting" == 220* ]]
	# No O_NONBLOCK (04000): the worker waits in read(2) itself.
	flags=$(session_socket_flags "$w")
	[ -n "$flags" ]
	(( (8#$flags & 8#4000) == 0 ))
	# Half a command, then nothing: the read's deadline still holds
	# (smtpd_timeout 4s; read -t bounds the test's own wait).
	printf 'MAIL FROM:<a@client.exam' >&"$fd"
	read -r -t 30 reply <&"$fd"
	exec {fd}>&-
	[[ "$reply" == "421 4.4.2 "* ]]
}

# trace_new_worker CALLS PATTERN: strace -f the smtp service's zygote
# for CALLS (into $T/zygote.strace) while connections wear the worker
# out (max_use), until the new worker has made a call that matches
# PATTERN and has its door; sets worker and door to their pids. Bounded.
trace_new_worker() {
	local zygote old i pattern=$2
	zygote=$(ps -o pid=,comm=,args= --ppid "$SUITE_PID" |
		awk '$2 == "smtpd-zygote" && / -s smtp$/ { print $1 }' | head -n 1)
	[ -n "$zygote" ] || skip "no smtpd zygote (process_zygote = no)"
	old=$(smtp_worker)
	strace -q -f -e trace="$1" -o "$T/zygote.strace" -p "$zygote" \
		2>"$T/zygote.err" &
	STRACE_PID=$!
	wait_until 'grep -q "TracerPid:[[:space:]]*[1-9]" "/proc/$zygote/status"' 20
	# The worker goes at max_use: connections until a new one is there
	# (bounded by max_use).
	for ((i = 0; i < 25; i++)); do
		[ "$(smtp_worker)" != "$old" ] && [ -n "$(smtp_worker)" ] && break
		/usr/bin/python3 -c 'import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20); s.quit()' "$SMTP_PORT"
	done
	wait_until 'worker=$(smtp_worker) && [ -n "$worker" ] && [ "$worker" != "$old" ] &&
		door=$(smtp_door_of "$worker") && [ -n "$door" ] &&
		grep -q "^$worker  *$pattern" "$T/zygote.strace"' 30
	kill "$STRACE_PID"
	wait "$STRACE_PID" || true
	STRACE_PID=
}

# trace_new_door_zygote CALLS PATTERN: strace -f master for CALLS (into
# $T/master.strace) while the smtp service's door zygote is killed and
# master starts a new smtpd zygote, which spawns a new door zygote,
# until that one has made a call that matches PATTERN; sets door to its
# pid (the doors' start-up is the door zygote's, done once). Bounded.
smtp_zygote_now() {
	ps -o pid=,comm=,args= --ppid "$SUITE_PID" |
		awk '$2 == "smtpd-zygote" && / -s smtp$/ { print $1 }' | head -n 1
}

door_zygote_of() {
	ps -o pid=,comm= --ppid "$1" | awk '$2 == "smtpd-doorzyg" { print $1 }'
}

trace_new_door_zygote() {
	local zygote old pattern=$2
	zygote=$(smtp_zygote_now)
	[ -n "$zygote" ] || skip "no smtpd zygote (process_zygote = no)"
	old=$(door_zygote_of "$zygote")
	[ -n "$old" ]
	strace -q -f -e trace="$1" -o "$T/master.strace" -p "$SUITE_PID" \
		2>"$T/master.err" &
	STRACE_PID=$!
	wait_until 'grep -q "TracerPid:[[:space:]]*[1-9]" "/proc/$SUITE_PID/status"' 20
	kill -KILL "$old"
	wait_until 'door=$(door_zygote_of "$(smtp_zygote_now)") && [ -n "$door" ] &&
		grep -q "^$door  *$pattern" "$T/master.strace"' 30
	kill "$STRACE_PID"
	wait "$STRACE_PID" || true
	STRACE_PID=
}

@test "the door zygote unmaps its start-up pages with one madvise per run of mappings" {
	command -v strace >/dev/null || skip "strace is not installed"
	[ "$(id -u)" -eq 0 ] || skip "attaching to master needs root"
	local door n files
	trace_new_door_zygote madvise,sendmsg 'sendmsg(3,'
	n=$(grep -c "^$door  *madvise(.*MADV_DONTNEED" "$T/master.strace")
	# The door's mapped files: each file's clean segments (headers, text,
	# constants) lie side by side, so one call covers them; a call per
	# segment was three or more a file.
	files=$(awk '$6 ~ /^\// { print $6 }' "/proc/$door/maps" | sort -u | wc -l)
	echo "# door $door: $n madvise calls, $files files mapped" >&3
	[ "$n" -ge 1 ]
	[ "$n" -lt $((2 * files)) ]
}

@test "the door zygote is spawned with its signals set to default, not asked one by one, SIGINT still ignored" {
	command -v strace >/dev/null || skip "strace is not installed"
	[ "$(id -u)" -eq 0 ] || skip "attaching to master needs root"
	local door asked set
	# Up to the door zygote's own SIGINT (smtpd_door.c's main).
	trace_new_door_zygote rt_sigaction,execve \
		'rt_sigaction(SIGINT, {sa_handler=SIG_IGN'
	# Its calls between the spawn and its exec.
	awk -v d="$door" '$1 == d && /execve\(/ { exit } $1 == d' \
		"$T/master.strace" > "$T/spawn"
	asked=$(grep -c 'rt_sigaction([A-Z0-9_]*, NULL' "$T/spawn" || true)
	set=$(grep -c 'sa_handler=SIG_DFL' "$T/spawn" || true)
	echo "# door $door before its exec: $asked actions asked, $set set to default" >&3
	# glibc's child asked all 64 and set them (124 calls); told which to
	# default, it asks only those left out: SIGINT and SIGPIPE.
	[ "$set" -ge 30 ]
	[ "$asked" -le 4 ]
	# Ignored from the spawn on: a Ctrl-C to the process group under
	# postern start -f never reaches the door before it ignores SIGINT.
	grep -q 'rt_sigaction(SIGINT, NULL' "$T/spawn"
	! grep -q 'rt_sigaction(SIGINT, {sa_handler=SIG_DFL' "$T/spawn"
}

@test "a worker enforces the Landlock ruleset its zygote built, and keeps no descriptor of it" {
	command -v strace >/dev/null || skip "strace is not installed"
	[ "$(id -u)" -eq 0 ] || skip "attaching to the zygote needs root"
	local worker door zygote f held
	trace_new_worker landlock_create_ruleset,landlock_add_rule,landlock_restrict_self \
		'landlock_restrict_self'
	# The worker added no rule and made no ruleset: it enforced the
	# zygote's (18 rules, each an open, fstat, add and close, before).
	grep "^$worker " "$T/zygote.strace" > "$T/worker"
	[ "$(grep -c 'landlock_restrict_self(' "$T/worker")" -eq 1 ]
	[ "$(grep -c 'landlock_add_rule(' "$T/worker")" -eq 0 ]
	[ "$(grep -c 'landlock_create_ruleset(' "$T/worker")" -eq 0 ]
	# The zygote holds the ruleset; the worker (which parses the
	# network) and its door hold none.
	zygote=$(ps -o pid=,comm=,args= --ppid "$SUITE_PID" |
		awk '$2 == "smtpd-zygote" && / -s smtp$/ { print $1 }' | head -n 1)
	held=$(for f in /proc/"$zygote"/fd/*; do readlink "$f"; done 2>/dev/null |
		grep -c landlock-ruleset || true)
	[ "$held" -eq 1 ]
	held=$(for f in /proc/"$worker"/fd/* /proc/"$door"/fd/*; do readlink "$f"; done 2>/dev/null |
		grep -c landlock-ruleset || true)
	[ "$held" -eq 0 ]
	# And it serves, confined as before (the queue is its door's).
	run --separate-stderr send 1
	[ "$status" -eq 0 ]
	[ "$output" = 250 ]
}
