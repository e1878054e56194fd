#!/usr/bin/env bats
# bench.bats - keeps the benchmark harness from rotting: bench/run in its
# quick mode (a handful of messages per case, one run) must start its
# private Postfix (and postern, once the build has it), print the table
# with a figure for every case, and lose no message. It asserts no speed:
# performance is measured by `make bench`, never tested.
# test-runner: long

setup() {
	[ "$(id -u)" -eq 0 ] || skip "bench/run needs root (Postfix's master runs as root)"
	command -v postfix >/dev/null || skip "Postfix is not installed"
	TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
}

@test "bench/run quick mode prints the table and loses no message" {
	run env BENCH_QUICK=1 BENCH_OUT="$BATS_TEST_TMPDIR/table" "$TOP/bench/run"
	echo "$output"
	[ "$status" -eq 0 ]
	table=$(cat "$BATS_TEST_TMPDIR/table")
	# One msgs/s row per case, with a number in the Postfix column.
	for title in "accept, 1 session, 2 KiB" "accept, 20 sessions, 2 KiB" \
		"accept, 100 sessions, 2 KiB" "accept, 4 sessions, 1 MiB" \
		"end-to-end relay, 20 sessions" "end-to-end Maildir, 20 sessions" \
		"STARTTLS accept, 20 sessions" "STARTTLS accept, resumed sessions" \
		"STARTTLS accept, ECDSA beside RSA" "end-to-end relay, TLS to the sink" \
		"accept through a milter, 20 sess." "relay with DKIM signing, 20 sess."; do
		grep -E "^$title +msgs/s +[0-9]+\.[0-9] " <<<"$table"
	done
	grep -E '^ +p99 end-of-DATA ms +[0-9]+\.[0-9]+ ' <<<"$table"
	grep -E '^ +RSS KiB per session +[0-9]+ ' <<<"$table"
	# Server CPU per message, from the instances' cgroups, where the
	# machine has cpuacct (v1) or cgroup v2.
	if [ -w /sys/fs/cgroup/cpuacct/cgroup.procs ] || [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		grep -E '^ +server CPU us/msg +[0-9]+ +[0-9]+ ' <<<"$table"
	fi
	grep -E '^fsync ceiling .*: [0-9]+/s with 1 writer, [0-9]+/s with 20$' <<<"$table"
	# Nothing lost, duplicated or bounced, counted at the sink and in the
	# Maildirs.
	grep -E '^messages lost \(all runs\) +count at the sink +0 +(0|n/a)$' <<<"$table"
	grep -E '^messages duplicated \(all runs\) +same Message-Id +0 +(0|n/a)$' <<<"$table"
	grep -E '^bounces \(all runs\) +DSNs at the sink +0 +(0|n/a)$' <<<"$table"
}

# The memory sampler beside a case's load: only acc100, whose memory per
# session needs them, has procmem sum Pss and count the sessions open (a
# read of all /proc/net/tcp, whose cost grows with the TIME_WAIT sockets
# each run leaves: bench/RESULTS.md, "acc20's drift: the memory
# sampler"); the other cases' sampler reads VmRSS alone.
@test "bench/run samples Pss and sessions in acc100 only" {
	run env BENCH_QUICK=1 BENCH_KEEP=1 BENCH_CASES="acc20 acc100" "$TOP/bench/run"
	echo "$output"
	kept=$(sed -n 's/.*kept \(\/var\/tmp\/postern-bench\.[A-Za-z0-9]*\)$/\1/p' <<<"$output" | tail -n1)
	[ -n "$kept" ] && [ -d "$kept/logs" ]
	logs=$kept/logs
	cleanup_kept() { rm -rf "$kept"; }
	trap cleanup_kept RETURN
	[ "$status" -eq 0 ]
	for sys in postfix postern; do
		[ -s "$logs/acc20.$sys.1.mem" ]
		grep -E '^peak_rss_kb=[1-9][0-9]* peak_pss_kb=0 ' "$logs/acc20.$sys.1.mem"
		! grep -q 'sessions' "$logs/acc20.$sys.1.mem"
		grep -E 'peak_pss_kb=[1-9][0-9]* .*max_sessions=[0-9]+$' "$logs/acc100.$sys.1.mem"
	done
}
