#!/usr/bin/env bats
# smtpd's doors share incoming/'s fsync (issue 20, mail/dirsync.c through
# queue_file_publish()): a door whose rename into incoming/ completed
# before another door's fsync of incoming/ started waits for that fsync
# instead of issuing its own. Real SMTP clients in parallel sessions
# against the suite's smtpd; the counts come from the doors' shared table
# (run_directory/smtpd-dirsync, laid out as dirsync.c says: magic,
# slots, then commits, fsyncs, covered, alone as 64-bit counters). Mail
# stays in the queue (smtp_maps), where every acknowledged message is
# read back. A milter's quarantine covers hold/. One suite start.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

PY=/usr/bin/python3

setup_file() {
	file_timer_start
	suite_init
	smtp_maps
	MILTER_PORT=$(free_port)
	$PY "$BATS_TEST_DIRNAME/helpers/milter_script.py" "$MILTER_PORT" "$T/milter.log" \
		>"$T/milter.out" 2>&1 3>&- &
	echo $! > "$T/milter.pid"
	wait_for_port "$MILTER_PORT" 10
	suite_conf smtpd_milters "inet:127.0.0.1:$MILTER_PORT"
	suite_conf smtpd_peername_lookup no
	suite_conf smtpd_processes 12
	# A table left by an earlier master (its counts far above what this
	# file sends): master removes it at start, the doors make a new one.
	mkdir -p "$T/run"
	$PY - "$T/run/smtpd-dirsync" <<-'EOF'
	import struct, sys
	with open(sys.argv[1], "wb") as f:
	    f.write(struct.pack("<II4Q", 0x31595344, 1024, 10**9, 10**9, 0, 0))
	    f.truncate(64 + 64 * 1024)
	EOF
	chmod 600 "$T/run/smtpd-dirsync"
	suite_start
}

teardown_file() {
	pidfile_kill milter
	suite_stop
	file_timer_report
}

# The table's counters: "commits fsyncs covered alone".
counts() {
	$PY - "$T/run/smtpd-dirsync" <<-'EOF'
	import struct, sys
	head = open(sys.argv[1], "rb").read(40)
	magic, nslots, *c = struct.unpack("<II4Q", head)
	assert magic == 0x31595344, hex(magic)
	print(*c)
	EOF
}

@test "a lone message: its door fsyncs incoming/ itself, at once" {
	read -r c0 f0 v0 a0 < <(counts)
	run psend sender@example.org alice@postern.test
	echo "$output"
	[ "$status" -eq 0 ]
	id=$(queued_id "$output")
	[ -n "$id" ]
	read -r c1 f1 v1 a1 < <(counts)
	# Led at once: had it waited for a leader it would count as covered,
	# or, past the bound, as alone.
	[ $((c1 - c0)) -eq 1 ] && [ $((f1 - f0)) -eq 1 ]
	[ $((v1 - v0)) -eq 0 ] && [ $((a1 - a0)) -eq 0 ]
	[ -n "$(qtool find "$id")" ]
}

@test "a quarantined message: hold/'s fsync goes through the table too" {
	read -r c0 f0 v0 a0 < <(counts)
	run swaks --server 127.0.0.1 --port "$SMTP_PORT" --helo client.example \
		--from sender@example.org --to alice@postern.test \
		--header "Subject: quarantine"
	echo "$output"
	[[ "$output" == *"250 2.0.0 Ok: queued as"* ]]
	id=$(queued_id "$output")
	[ -f "$T/queue/hold/$id" ]
	read -r c1 f1 v1 a1 < <(counts)
	[ $((c1 - c0)) -eq 1 ] && [ $((f1 - f0 + v1 - v0)) -eq 1 ]
}

# Last: it stops the suite.
@test "parallel sessions: every acknowledged message complete in the queue, fewer fsyncs of incoming/ than messages" {
	# Made by a door while root (or as the test user), nobody else's.
	[ "$(stat -c '%a' "$T/run/smtpd-dirsync")" = 600 ]
	[ "$(stat -c '%u' "$T/run/smtpd-dirsync")" = "$(stat -c '%u' "$T/run")" ]
	read -r c0 f0 v0 a0 < <(counts)
	[ "$c0" -lt 1000000 ]
	run $PY "$HELPERS/smtp_send.py" load "$SMTP_PORT" 240 12 120 "$T/acked" \
		sender@example.org alice@postern.test
	echo "$output"
	[ "$output" = "queued=240 errors=0" ]
	read -r c1 f1 v1 a1 < <(counts)
	# Stopped, so that qmgr moves no file while they are read back.
	suite_halt
	echo "commits $((c1 - c0)) fsyncs $((f1 - f0)) covered $((v1 - v0)) alone $((a1 - a0))"
	# Every 250 is a complete, valid file holding its message, once.
	[ "$(wc -l < "$T/acked")" -eq 240 ]
	[ -z "$(cut -d' ' -f1 "$T/acked" | sort | uniq -d)" ]
	qtool acked "$T/acked"
	qtool check
	# One commit per message; each fsynced or covered by another door's
	# fsync; under 12 sessions some are covered.
	[ $((c1 - c0)) -eq 240 ]
	[ $((f1 - f0 + v1 - v0)) -eq 240 ]
	[ $((f1 - f0)) -lt 240 ]
	[ $((v1 - v0)) -gt 0 ]
	# The doors removed their unfinished files as they left.
	[ -z "$(find "$T/queue/incoming" -name '.*' -type f)" ]
}
