#!/usr/bin/env bats
# The group commit of new/'s fsync across lmtpd processes (mail/dirsync.c):
# a process whose rename into new/ completed before another's fsync of
# new/ started waits for that fsync instead of issuing its own. Real
# LMTP clients (python3 smtplib.LMTP, in parallel sessions) against the
# suite's lmtpd; the counts come from the shared table itself
# (run_directory/lmtpd-dirsync, the header dirsync.c lays out: magic,
# slots, then commits, fsyncs, covered, alone as 64-bit counters).
# One suite start for the file.

bats_require_minimum_version 1.5.0
load helpers/suite

setup_file() {
	[ -x "$BUILD/lmtpd" ] || skip "lmtpd is not built"
	file_timer_start
	suite_init
	# The Maildirs on a disk, where an fsync takes time for others to
	# arrive during it: /tmp may be a tmpfs, where it takes none.
	MB=$(mktemp -d /var/tmp/postern-group-commit.XXXXXX)
	export MB
	[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$MB"
	suite_conf mailbox_base "$MB"
	printf 'list@postern.test\tpostern.test/list/\nsolo@postern.test\tpostern.test/solo/\n' \
		> "$T/conf/mailboxes"
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/mailboxes"
	suite_conf mailbox_maps "hash:$T/conf/mailboxes"
	suite_conf lmtpd_processes 12
	suite_start
	wait_for_socket "$T/run/lmtp"
}

teardown_file() {
	suite_stop
	[ -n "${MB:-}" ] && rm -rf "$MB"
	file_timer_report
}

teardown() {
	[ -n "${SLEEPER:-}" ] && kill "$SLEEPER" 2>/dev/null
	[ -n "${SLEEPER:-}" ] && wait "$SLEEPER" 2>/dev/null
	SLEEPER=
}

# The table's counters: "commits fsyncs covered alone".
counts() {
	/usr/bin/python3 - "$T/run/lmtpd-dirsync" <<-'EOF'
	import struct, sys
	head = open(sys.argv[1], "rb").read(40)
	magic, nslots, *c = struct.unpack("<II4Q", head)
	assert magic == 0x31595344, hex(magic)
	print(*c)
	EOF
}

# send_lmtp RCPT N SESSIONS TAG: N messages in each of SESSIONS parallel
# LMTP sessions, each with a Subject "TAG s.m"; fails unless every one
# got 250.
send_lmtp() {
	/usr/bin/python3 - "$T/run/lmtp" "$@" <<-'EOF'
	import smtplib, sys, threading
	sock, rcpt, n, sessions, tag = sys.argv[1:6]
	errors = []
	def session(k):
	    try:
	        c = smtplib.LMTP(sock, timeout=20)
	        c.ehlo("client.postern.test")
	        for m in range(int(n)):
	            body = "Subject: %s %d.%d\r\n\r\nbody %d.%d\r\n" % (tag, k, m, k, m)
	            refused = c.sendmail("sender@example.org", [rcpt], body)
	            if refused:
	                errors.append(refused)
	        c.quit()
	    except Exception as e:
	        errors.append(repr(e))
	threads = [threading.Thread(target=session, args=(k,)) for k in range(int(sessions))]
	for t in threads: t.start()
	for t in threads: t.join()
	if errors:
	    sys.exit("errors: %r" % errors[:5])
	EOF
}

# set_leader MAILDIR PID: write PID as the running leader into the slot
# of MAILDIR/new (found by its device and inode), as a leader that was
# killed, or stopped, in the middle of its fsync would leave it.
set_leader() {
	/usr/bin/python3 - "$T/run/lmtpd-dirsync" "$1/new" "$2" <<-'EOF'
	import mmap, os, struct, sys
	path, newdir, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
	st = os.stat(newdir)
	with open(path, "r+b") as f:
	    m = mmap.mmap(f.fileno(), 0)
	    nslots = struct.unpack_from("<I", m, 4)[0]
	    found = 0
	    for i in range(nslots):
	        off = 64 + 64 * i
	        dev, ino = struct.unpack_from("<QQ", m, off)
	        if dev == st.st_dev and ino == st.st_ino:
	            struct.pack_into("<I", m, off + 52, pid)
	            found += 1
	    m.close()
	sys.exit(0 if found == 1 else "slot of %s found %d times" % (newdir, found))
	EOF
}

# leader_of MAILDIR: the leader pid in MAILDIR/new's slot.
leader_of() {
	/usr/bin/python3 - "$T/run/lmtpd-dirsync" "$1/new" <<-'EOF'
	import os, struct, sys
	data = open(sys.argv[1], "rb").read()
	st = os.stat(sys.argv[2])
	for i in range(struct.unpack_from("<I", data, 4)[0]):
	    dev, ino = struct.unpack_from("<QQ", data, 64 + 64 * i)
	    if dev == st.st_dev and ino == st.st_ino:
	        print(struct.unpack_from("<I", data, 64 + 64 * i + 52)[0])
	EOF
}

@test "parallel LMTP sessions into one Maildir: every message in new/ exactly once, fewer fsyncs of new/ than messages" {
	[ "$(stat -c '%U %a' "$T/run/lmtpd-dirsync")" = "$(id -un) 600" ]
	read -r c0 f0 v0 a0 < <(counts)
	run send_lmtp list@postern.test 25 8 grp
	echo "$output"
	[ "$status" -eq 0 ]
	read -r c1 f1 v1 a1 < <(counts)
	echo "commits $((c1 - c0)) fsyncs $((f1 - f0)) covered $((v1 - v0)) alone $((a1 - a0))"
	# Each of the 200 copies is there once, nothing in tmp/.
	new=$MB/postern.test/list/new
	[ "$(find "$new" -type f | wc -l)" -eq 200 ]
	[ -z "$(find "$MB/postern.test/list/tmp" -type f)" ]
	run bash -c "grep -h '^Subject: grp ' '$new'/* | sort | uniq -d"
	[ -z "$output" ]
	[ "$(grep -h '^Subject: grp ' "$new"/* | sort -u | wc -l)" -eq 200 ]
	# One commit per copy; fewer fsyncs than copies, the rest covered by
	# another process's fsync; every commit either fsynced or was covered.
	[ $((c1 - c0)) -eq 200 ]
	if [ "$(stat -f -c %T "$MB")" = tmpfs ]; then
		echo "# $MB is a tmpfs: its fsyncs take no time to share" >&3
	else
		[ $((f1 - f0)) -lt 200 ]
		[ $((v1 - v0)) -gt 0 ]
	fi
	[ $((f1 - f0 + v1 - v0)) -eq 200 ]
	# lmtpd logged each one stored.
	[ "$(grep -c 'rcpt=<list@postern.test>.*result=stored' "$T/log")" -eq 200 ]
}

@test "a lone delivery fsyncs new/ itself at once; a leader killed mid-fsync is replaced, a stuck one waited for only a bounded time" {
	solo=$MB/postern.test/solo
	# 1. Alone: its own fsync, nobody to wait for, no delay.
	read -r c0 f0 v0 a0 < <(counts)
	send_lmtp solo@postern.test 1 1 lone
	read -r c1 f1 v1 a1 < <(counts)
	echo "lone: commits $((c1 - c0)) fsyncs $((f1 - f0)) covered $((v1 - v0)) alone $((a1 - a0))"
	# Led at once: had it waited for a leader it would count as covered,
	# or, past the bound, as alone.
	[ $((c1 - c0)) -eq 1 ] && [ $((f1 - f0)) -eq 1 ]
	[ $((v1 - v0)) -eq 0 ] && [ $((a1 - a0)) -eq 0 ]
	[ "$(leader_of "$solo")" -eq 0 ]

	# 2. A leader that was killed in its fsync (its pid is gone): the
	#    next delivery sees it dead within a wait slice, leads, fsyncs.
	true & dead=$!
	wait "$dead"
	set_leader "$solo" "$dead"
	send_lmtp solo@postern.test 1 1 dead
	read -r c2 f2 v2 a2 < <(counts)
	echo "dead leader: fsyncs $((f2 - f1)) covered $((v2 - v1)) alone $((a2 - a1))"
	# It led (not alone: it did not wait out the bound).
	[ $((f2 - f1)) -eq 1 ] && [ $((a2 - a1)) -eq 0 ] && [ $((v2 - v1)) -eq 0 ]
	[ "$(leader_of "$solo")" -eq 0 ]

	# 3. A leader that lives but never finishes (a stopped process): the
	#    delivery waits its bound (1 s), fsyncs alone, and clears it.
	sleep 30 & SLEEPER=$!
	set_leader "$solo" "$SLEEPER"
	t0=$(date +%s%N)
	send_lmtp solo@postern.test 1 1 stuck
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	read -r c3 f3 v3 a3 < <(counts)
	echo "stuck leader: ${ms} ms, fsyncs $((f3 - f2)) alone $((a3 - a2))"
	[ $((f3 - f2)) -eq 1 ] && [ $((a3 - a2)) -eq 1 ] && [ $((v3 - v2)) -eq 0 ]
	[ "$ms" -ge 1000 ] && [ "$ms" -lt 10000 ]
	[ "$(leader_of "$solo")" -eq 0 ]
	[ "$(find "$solo/new" -type f | wc -l)" -eq 3 ]
}
