#!/usr/bin/env bats
# smtpd's door is a program of its own, smtpd-door (issue 20, branch
# h-rss; smtpd/smtpd_door.c, SMTPD_DOOR_PROGRAM), exec'd once per smtpd
# zygote as the door zygote, which forks each worker's door (h-doorzyg;
# tests/smtpd_door_zygote.bats). Checked from outside: the
# door of a live worker runs smtpd-door, as `user`, with no new
# privileges and a seccomp filter, maps no OpenSSL (and, linked
# statically, no shared library at all), holds neither the listener nor
# master's pipes, and still makes the worker's queue files; smtpd-door
# run by hand, or handed a socket pair by a process that is not its
# parent, refuses to run (the door zygote's start check).

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup_file() {
	file_timer_start
}

teardown_file() {
	file_timer_report
}

setup() {
	suite_init
	smtp_one_worker
}

teardown() {
	suite_stop
}

# The socket inode of the smtp listener.
listener_inode() {
	local hex
	hex=$(printf '%04X' "$SMTP_PORT")
	awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" { print $10 }' /proc/net/tcp | head -n1
}

@test "the door runs smtpd-door as user, confined, without OpenSSL or master's descriptors, and queues mail" {
	suite_start
	wait_until "[ -n \"\$(smtp_worker)\" ]" 10 "an smtp worker"
	worker=$(smtp_worker)
	wait_until "[ -n \"\$(smtp_door_of $worker)\" ]" 10 "its door"
	door=$(smtp_door_of "$worker")
	# The program, and the name ps knows it by.
	[ "$(readlink "/proc/$door/exe")" = "$(readlink -f "$BUILD/smtpd-door")" ]
	[ "$(cat "/proc/$door/comm")" = smtpd ]
	grep -q -- "-c $T/conf -s smtp" <(tr '\0' ' ' < "/proc/$door/cmdline")
	# Its identity: the queue's owner, no new privileges, a filter.
	[ "$(awk '/^Uid:/ { print $2 }' "/proc/$door/status")" = "$(id -u "$TEST_USER")" ]
	[ "$(awk '/^NoNewPrivs:/ { print $2 }' "/proc/$door/status")" = 1 ]
	[ "$(awk '/^Seccomp:/ { print $2 }' "/proc/$door/status")" = 2 ]
	# What it maps: no OpenSSL; when linked statically, no library.
	! grep -E 'libssl|libcrypto' "/proc/$door/maps"
	if ! readelf -d "$BUILD/smtpd-door" | grep -q NEEDED; then
		! grep -E '\.so' "/proc/$door/maps"
	fi
	# The worker's RSS is not counted again in it: far less than the
	# worker's (a forked door mapped about as much as its worker). Not
	# in a sanitizer build: there both carry the ASan runtime's own
	# pages, most of the door's RSS (8,488 against 5,660 KiB, 0.67).
	w=$(awk '/^Rss:/ { print $2 }' "/proc/$worker/smaps_rollup")
	d=$(awk '/^Rss:/ { print $2 }' "/proc/$door/smaps_rollup")
	echo "worker RSS $w KiB, door RSS $d KiB"
	[ -n "$SUITE_SANITIZED" ] || [ "$d" -lt $((w * 2 / 3)) ]
	# Nothing of master's: not the listener, not fd 4 (the alive pipe).
	inode=$(listener_inode)
	[ -n "$inode" ]
	! find "/proc/$door/fd" -maxdepth 1 -lname "socket:\[$inode\]" | grep -q .
	[ ! -e "/proc/$door/fd/4" ] || [ "$(readlink "/proc/$door/fd/4")" != "$(readlink "/proc/$worker/fd/4")" ]
	# The worker still gets its queue files: two messages queued.
	run swaks --server 127.0.0.1 --port "$SMTP_PORT" \
		--from a@example.org --to postmaster@postern.test
	[ "$status" -eq 0 ]
	[[ "$output" == *"250 2.0.0 Ok: queued as "* ]]
	run swaks --server 127.0.0.1 --port "$SMTP_PORT" \
		--from a@example.org --to postmaster@postern.test
	[ "$status" -eq 0 ]
	[[ "$output" == *"250 2.0.0 Ok: queued as "* ]]
	[ "$(smtp_door_of "$worker")" = "$door" ]
	# What its loop keeps (issue 20, h-mem): no libresolv mapped, and
	# under 36 KiB of stack after messages (40-44 KiB when the 16 KiB
	# receive buffer was on the stack, above each log line's frame).
	[ -z "$(grep libresolv "/proc/$door/maps")" ]
	if [ -z "$SUITE_SANITIZED" ]; then
		kib=$(awk '/\[stack\]/ { st = 1 } st && /^Rss:/ { print $2; exit }' \
			"/proc/$door/smaps")
		echo "door stack $kib KiB"
		[ "$kib" -lt 36 ]
	fi
	# The doors' shared table of directory fsyncs (mail/dirsync.c, 68
	# KiB): only the pages the door wrote, the header and its
	# directories' slots, not the 60 KiB a first read mapped around the
	# slot (the kernel's fault-around; issue 20, h-rss2).
	kib=$(awk '/smtpd-dirsync/ { t = 1; next } t && /^Rss:/ { print $2; exit }' \
		"/proc/$door/smaps")
	echo "door's dirsync table $kib KiB"
	[ -n "$kib" ]
	[ "$kib" -le 12 ]
}

@test "smtpd-door refuses to run when not started by smtpd" {
	# By hand: descriptor 3 is no socket.
	run "$BUILD/smtpd-door" -c "$T/conf" -s smtp 3</dev/null
	[ "$status" -eq 1 ]
	[[ "$output" == *"not started by smtpd (descriptor 3 is not a socket)"* ]]
	# A stream socket is not smtpd's socket pair.
	run /usr/bin/python3 -c '
import os, socket, sys
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
os.dup2(b.fileno(), 3, inheritable=True)
os.execv(sys.argv[1], ["smtpd-door", "-c", sys.argv[2], "-s", "smtp"])
' "$BUILD/smtpd-door" "$T/conf"
	[ "$status" -eq 1 ]
	[[ "$output" == *"descriptor 3 is not smtpd's socket pair"* ]]
	# A pair made by a process that is not its parent (its grandparent).
	run /usr/bin/python3 -c '
import os, socket, sys
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
pid = os.fork()
if pid == 0:
    door = os.fork()
    if door == 0:
        os.dup2(b.fileno(), 3, inheritable=True)
        os.execv(sys.argv[1], ["smtpd-door", "-c", sys.argv[2], "-s", "smtp"])
    _, st = os.waitpid(door, 0)
    os._exit(os.waitstatus_to_exitcode(st))
_, st = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(st))
' "$BUILD/smtpd-door" "$T/conf"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"the other end of descriptor 3 is not the parent process"* ]]
	# No instance was started: nothing of it to keep.
	rm -rf "$T"
}
