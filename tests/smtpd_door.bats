#!/usr/bin/env bats
# smtpd's privilege separation (smtpd/smtpd_door.c, issue 12): the network
# worker runs as smtpd_user and cannot read the queue or smtpd_sasl_users;
# its door, running as `user`, makes the queue files and passes them open
# for writing only. Run as root, the worker is checked from outside, as
# its own uid (setpriv), and the processes are killed one by one.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup() {
	suite_init
	smtp_maps
	# Local mail really delivered, so that finished files are recycled.
	suite_conf lmtp_destination "unix:$T/run/lmtp"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mx.postern.test \
		-keyout "$T/conf/key.pem" -out "$T/conf/cert.pem" 2>/dev/null
	chmod 600 "$T/conf/key.pem"
	printf 'alice %s\n' "$(openssl passwd -6 'alice secret')" > "$T/conf/sasl_users"
	"$POSTERN" -c "$T/conf" map build "$T/conf/sasl_users"
	if [ "$(id -u)" -eq 0 ]; then
		# As INSTALL says: readable by root and user's group only.
		chown "root:$(id -gn "$TEST_USER")" "$T/conf/sasl_users" "$T/conf/sasl_users.db"
		chmod 0640 "$T/conf/sasl_users" "$T/conf/sasl_users.db"
	fi
	suite_conf tls_cert_file "$T/conf/cert.pem"
	suite_conf tls_key_file "$T/conf/key.pem"
	suite_conf smtpd_sasl_users "hash:$T/conf/sasl_users"
	suite_conf smtpd_peername_lookup no
	suite_conf process_min_idle 1
	suite_conf smtpd_processes 4
	suite_start
}

teardown() {
	suite_stop
}

# Every process of this instance (master's children and their doors).
instance_pids() {
	pgrep -f -- "-c $T/conf -s" || true
}

# The pids that hold the smtp listening socket, master left out: the
# network workers (smtpd as master started it).
listener_pids() {
	local hex inode pid mpid
	hex=$(printf '%04X' "$SMTP_PORT")
	inode=$(awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" { print $10 }' /proc/net/tcp | head -n1)
	[ -n "$inode" ] || return 0
	mpid=$(master_pid)
	for pid in $(instance_pids); do
		[ "$pid" != "$mpid" ] || continue
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = smtpd ] || continue
		if find "/proc/$pid/fd" -maxdepth 1 -lname "socket:\[$inode\]" 2>/dev/null | grep -q .; then
			echo "$pid"
		fi
	done
}

first_worker() {
	listener_pids | head -n1
}

uid_of() {
	awk '/^Uid:/ { print $2 }' "/proc/$1/status"
}

gid_of() {
	awk '/^Gid:/ { print $2 }' "/proc/$1/status"
}

qmgr_pid() {
	ps -o pid=,comm= --ppid "$(master_pid)" | awk '$2 == "qmgr" { print $1 }' | head -n1
}


# As the worker's uid and group, nothing else.
as_worker() {
	local pid=$1
	shift
	setpriv --reuid="$(uid_of "$pid")" --regid="$(gid_of "$pid")" --clear-groups -- "$@"
}

# A session that stops in the middle of DATA and waits: python3 holds it
# open until $T/release exists.
start_held_data() {
	rm -f "$T/release" "$T/held.out"
	python3 - "$SMTP_PORT" "$T/release" > "$T/held.out" 2>&1 <<'PY' &
import os, smtplib, sys, time
port, release = int(sys.argv[1]), sys.argv[2]
s = smtplib.SMTP("127.0.0.1", port, timeout=60)
s.ehlo("held.test")
s.mail("a@example.org")
s.rcpt("alice@postern.test")
code, _ = s.docmd("DATA")
print("data", code, flush=True)
s.send(b"Subject: held\r\n\r\nfirst line\r\n")
deadline = time.time() + 60
while not os.path.exists(release) and time.time() < deadline:
    time.sleep(0.05)
s.send(b".\r\n")
print("end", s.getreply()[0], flush=True)
s.quit()
PY
	HELD_PID=$!
	wait_until "grep -q '^data 354' '$T/held.out'" 30 "the held session's 354"
}

# The worker serving the held session, and its queue file descriptor.
# The worker is the one holding the session's connection: an idle worker
# may hold a queue file too, the next message's, passed ahead by its door.
held_fd() {
	local pid fd
	pid=$(ss -tnpH state established "( sport = :$SMTP_PORT )" |
		grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)
	[ -n "$pid" ] || return 1
	fd=$(find "/proc/$pid/fd" -maxdepth 1 -lname "$T/queue/incoming/.*" -printf '%f\n' 2>/dev/null | head -n1)
	[ -n "$fd" ] || return 1
	echo "$pid $fd"
}

# The queue files a process holds open: "fd path" lines.
queue_fds() {
	find "/proc/$1/fd" -maxdepth 1 -lname "$T/queue/*" -printf '%f %l\n' 2>/dev/null
}

@test "the worker runs as smtpd_user, apart from qmgr; its door runs as qmgr's user" {
	[ "$(id -u)" -eq 0 ] || skip "needs root: one uid otherwise"
	worker=$(first_worker)
	[ -n "$worker" ]
	door=$(smtp_door_of "$worker")
	[ -n "$door" ]
	qmgr=$(qmgr_pid)
	[ -n "$qmgr" ]
	[ "$(uid_of "$worker")" = "$(id -u "$TEST_SMTPD_USER")" ]
	[ "$(uid_of "$worker")" != "$(uid_of "$qmgr")" ]
	[ "$(gid_of "$worker")" != "$(gid_of "$qmgr")" ]
	[ "$(uid_of "$door")" = "$(uid_of "$qmgr")" ]
	# One group each, no supplementary ones.
	[ -z "$(awk '/^Groups:/ { print $2 }' "/proc/$worker/status")" ]
	# The door does not hold the listener.
	! listener_pids | grep -qx "$door"
}

@test "as the worker's uid: no queue file, no listing of incoming/, no smtpd_sasl_users" {
	[ "$(id -u)" -eq 0 ] || skip "needs root: one uid otherwise"
	# A message that waits in deferred/ (its relay does not answer).
	run send_mail --from a@example.org --to far@example.net
	[ "$status" -eq 0 ]
	wait_until "[ -n \"\$(find '$T/queue/deferred' -type f)\" ]" 20 "a deferred message"
	# On hold it stays put: in deferred/ it moves to active/ at every
	# retry (minimal_backoff 1s), and a read could find it gone.
	id=$(find "$T/queue/deferred" -type f -printf '%f\n' | head -n1)
	[ -n "$id" ]
	"$BUILD/postern" -c "$T/conf" queue hold "$id"
	wait_until "[ -f '$T/queue/hold/$id' ]" 20 "the message on hold"
	file=$T/queue/hold/$id
	worker=$(first_worker)
	# The queue's owner can, the worker cannot.
	setpriv --reuid="$(id -u "$TEST_USER")" --regid="$(id -g "$TEST_USER")" --clear-groups -- cat "$file" > /dev/null
	run as_worker "$worker" cat "$file"
	[ "$status" -ne 0 ]
	echo "$output" | grep -q 'Permission denied'
	run as_worker "$worker" ls "$T/queue/incoming"
	[ "$status" -ne 0 ]
	echo "$output" | grep -q 'Permission denied'
	run as_worker "$worker" cat "$T/conf/sasl_users.db"
	[ "$status" -ne 0 ]
	echo "$output" | grep -q 'Permission denied'
	# Not a held descriptor either: between messages the worker has none
	# into the table, and into the queue at most the next message's
	# file (incoming/.ID), write only, passed ahead by its door.
	! ls -l "/proc/$worker/fd" | grep -q sasl_users
	for w in $(listener_pids); do
		[ "$(queue_fds "$w" | wc -l)" -le 1 ]
		queue_fds "$w" | while read -r fd path; do
			[[ "$path" == "$T/queue/incoming/."* ]]
			flags=$(awk '/^flags:/ { print $2 }' "/proc/$w/fdinfo/$fd")
			[ $((8#$flags & 3)) -eq 1 ]
		done
	done
}

@test "a recycled queue file reaches the worker open for writing only" {
	# One worker, so that which file it holds is known: its first
	# message's file is new (recycle/ is empty), and so are the files
	# its door makes ahead (passed with the first's commit, and the
	# spare made after it). A delivered message leaves its file in
	# recycle/, where it stays until the door's next commit claims it as
	# the spare: so recycle/ is listed after each message has left the
	# queue and before the next is sent, and no recycled file is missed.
	# Within a few messages the worker holds one.
	"$POSTERN" -c "$T/conf" stop
	wait_for_exit "$SUITE_PID" 20
	suite_conf smtpd_processes 1
	suite_start
	held_inode() {
		local worker
		worker=$(ps -o pid=,comm=,args= --ppid "$(master_pid)" |
			awk '$2 == "smtpd" && $NF == "smtp" { print $1 }' | head -n1)
		[ -n "$worker" ] || return 0
		find "/proc/$worker/fd" -maxdepth 1 -lname "$T/queue/incoming/.*" \
			-printf '%f\n' | head -n1 | xargs -I{} stat -L -c %i "/proc/$worker/fd/{}"
	}
	# A message file (not a dot file being written) outside recycle/.
	queued() {
		find "$T/queue" -path "$T/queue/recycle" -prune -o -path "$T/queue/tls" -prune \
			-o -type f ! -name '.*' -print | grep -q .
	}
	recycled=" "
	for i in 1 2 3 4 5 6; do
		run send_mail --from a@example.org --to alice@postern.test
		[ "$status" -eq 0 ]
		wait_until "[ \"\$(find '$T/mail' -path '*/new/*' -type f | wc -l)\" -ge $i ] && ! queued" \
			30 "message $i delivered and out of the queue"
		[ -z "$(ls -A "$T/queue/recycle")" ] ||
			recycled="$recycled$(stat -c %i "$T/queue/recycle/"* | paste -sd' ') "
		[[ "$recycled" == *" $(held_inode) "* ]] && break
	done
	echo "recycled:$recycled held: $(held_inode)"
	[[ "$recycled" == *" $(held_inode) "* ]]
	start_held_data
	wait_until "held_fd > /dev/null" 30 "the worker's queue file"
	read -r worker fd < <(held_fd)
	# The very inode that held a finished message...
	[[ "$recycled" == *" $(stat -L -c %i "/proc/$worker/fd/$fd") "* ]]
	# ... open O_WRONLY (flags & O_ACCMODE == 1): its old bytes cannot
	# be read through it.
	flags=$(awk '/^flags:/ { print $2 }' "/proc/$worker/fdinfo/$fd")
	[ $((8#$flags & 3)) -eq 1 ]
	# Nor by its name: the worker's uid cannot open it for reading.
	if [ "$(id -u)" -eq 0 ]; then
		name=$(readlink "/proc/$worker/fd/$fd")
		run as_worker "$worker" cat "$name"
		[ "$status" -ne 0 ]
	fi
	touch "$T/release"
	wait "$HELD_PID"
	grep -q '^end 250' "$T/held.out"
}

@test "mail and AUTH end to end through the door, with swaks" {
	run swaks --server 127.0.0.1 --port "$SMTP_PORT" --tls --auth PLAIN \
		--auth-user alice --auth-password 'alice secret' \
		--from alice@postern.test --to far@example.net
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '235 2.7.0 Authentication successful'
	id=$(queued_id "$output")
	[ -n "$id" ]
	run qtool show "$id"
	echo "$output" | grep -q '"sasl_user": "alice"'
	run swaks --server 127.0.0.1 --port "$SMTP_PORT" --tls --auth PLAIN \
		--auth-user alice --auth-password 'wrong' --quit-after AUTH \
		--from alice@postern.test --to far@example.net
	[ "$status" -ne 0 ]
	echo "$output" | grep -q '535 5.7.8'
	run send_mail --from a@example.org --to alice@postern.test
	[ "$status" -eq 0 ]
	wait_until "[ -n \"\$(find '$T/mail' -path '*/new/*' -type f)\" ]" 20 "a delivered message"
}

@test "kill -9 of the worker mid-DATA: its door removes the unfinished file and exits; mail flows again" {
	start_held_data
	wait_until "held_fd > /dev/null" 30 "the worker's queue file"
	read -r worker fd < <(held_fd)
	door=$(smtp_door_of "$worker")
	[ -n "$door" ]
	ls -A "$T/queue/incoming" | grep -q '^\.'
	kill -KILL "$worker"
	wait_for_exit "$door" 30
	wait_until "! ls -A '$T/queue/incoming' | grep -q '^\\.'" 30 "incoming/ without a temporary file"
	touch "$T/release"
	wait "$HELD_PID" || true
	! grep -q '^end 250' "$T/held.out"
	run send_mail --from a@example.org --to alice@postern.test
	[ "$status" -eq 0 ]
}

@test "kill -9 of the door: the worker leaves, master starts a new pair, mail flows" {
	worker=$(first_worker)
	door=$(smtp_door_of "$worker")
	[ -n "$door" ]
	kill -KILL "$door"
	wait_for_exit "$worker" 30
	wait_until "[ -n \"\$(first_worker)\" ] && [ -n \"\$(smtp_door_of \"\$(first_worker)\")\" ]" 30 "a new worker and door"
	run send_mail --from a@example.org --to alice@postern.test
	[ "$status" -eq 0 ]
	# A door killed in the middle of a message: 451 at the end, not 250.
	start_held_data
	wait_until "held_fd > /dev/null" 30 "the worker's queue file"
	read -r worker fd < <(held_fd)
	kill -KILL "$(smtp_door_of "$worker")"
	touch "$T/release"
	wait "$HELD_PID" || true
	grep -q '^end 451' "$T/held.out"
	wait_for_exit "$worker" 30
}

@test "reload and stop leave no smtpd process behind" {
	old=$(instance_pids | grep -v "^$(master_pid)\$" | sort)
	workers=$(listener_pids)
	[ -n "$workers" ]
	kill -HUP "$(master_pid)"
	for pid in $old; do
		wait_for_exit "$pid" 30
	done
	wait_until "[ -n \"\$(first_worker)\" ]" 30 "a new worker"
	# Each worker has exactly one door and no other child: the door
	# zygote forks the doors; only a worker that master had to exec
	# (its zygote slow to answer, as under a sanitizer) runs its door
	# itself (-1), and then the door is its one child.
	for pid in $(listener_pids); do
		door=$(smtp_door_of "$pid")
		[ -n "$door" ]
		kids=$(ps -o pid= --ppid "$pid" | tr -d ' ')
		if [ -n "$kids" ] && [ "$kids" != "$door" ]; then
			ps -o pid=,ppid=,args= --ppid "$pid" >&3
			false
		fi
	done
	run send_mail --from a@example.org --to alice@postern.test
	[ "$status" -eq 0 ]
	all=$(instance_pids)
	"$POSTERN" -c "$T/conf" stop
	for pid in $all; do
		wait_for_exit "$pid" 20
	done
	[ -z "$(instance_pids)" ]
}
