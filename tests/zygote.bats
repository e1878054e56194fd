#!/usr/bin/env bats
# Workers cloned from a zygote (issue 20, master/master_zygote.c,
# mail/daemon_zygote.c): master execs each accept service once as its
# zygote, which makes the workers by clone(CLONE_PARENT). The workers
# are master's children, share the zygote's relocated pages (dirty pages
# a worker exec'd by master would hold privately), and serve mail; a
# killed zygote is replaced and the service goes on; a reload replaces
# it; process_zygote = no brings back fork+exec. One suite start.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup_file() {
	file_timer_start
	suite_init
	suite_start
}

teardown_file() {
	suite_stop
	file_timer_report
}

# master's children named NAME (comm), oldest first.
named() {
	ps -o pid=,comm= --ppid "$(master_pid)" --sort=start_time 2>/dev/null |
		awk -v n="$1" '$2 == n { print $1 }'
}

# The smtp service's processes: "-s smtp" ends their command line.
of_smtp() {
	local pid
	for pid in "$@"; do
		tr '\0' ' ' < /proc/"$pid"/cmdline 2>/dev/null |
			grep -q -- '-s smtp $' && echo "$pid"
	done
	return 0
}

# The oldest: a worker just cloned bears its zygote's name until it
# takes its own, a moment later.
zygote() {
	of_smtp $(named smtpd-zygote) | head -n1
}

workers() {
	of_smtp $(named smtpd)
}

# How many written (anonymous) pages of the libraries and the program
# PID1 and PID2 hold in common, by physical frame (/proc/PID/pagemap,
# root only): the relocated data the loader wrote. Two processes exec'd
# apart share none; a zygote and the workers it cloned share them all
# until written.
common_pages() {
	/usr/bin/python3 - "$1" "$2" <<'PY'
import struct, sys

def frames(pid):
    out = set()
    with open(f"/proc/{pid}/maps") as maps, \
         open(f"/proc/{pid}/pagemap", "rb") as pm:
        for line in maps:
            f = line.split()
            if len(f) < 6 or not f[5].startswith("/"):
                continue
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            pm.seek(lo // 4096 * 8)
            data = pm.read((hi - lo) // 4096 * 8)
            for (e,) in struct.iter_unpack("<Q", data):
                # present, and anonymous (a private copy, not the file)
                if e >> 63 & 1 and not e >> 61 & 1:
                    out.add(e & ((1 << 55) - 1))
    return out

a, b = frames(sys.argv[1]), frames(sys.argv[2])
print(len(a & b))
PY
}

# KiB of FIELD (Private_Dirty, Shared_Dirty...) in PID's smaps_rollup.
kib() {
	awk -v f="$2:" '$1 == f { print $2 }' /proc/"$1"/smaps_rollup 2>/dev/null
}

# Every smtp worker is master's child, made by the zygote: the pages
# the loader wrote are the zygote's, not the worker's own as after an
# exec.
check_cloned() {
	local w shared
	for w in $(workers); do
		[ -d /proc/"$w" ] || continue	# a worker that just left
		[ "$(ps -o ppid= -p "$w" | tr -d ' ')" = "$(master_pid)" ]
		common=$(common_pages "$w" "$(zygote)") || return 1
		echo "# worker $w: Private_Dirty $(kib "$w" Private_Dirty) KiB, Shared_Dirty $(kib "$w" Shared_Dirty) KiB, pages in common with the zygote $common" >&3
		[ "${common:-0}" -ge 50 ] || return 1
	done
}

@test "workers are cloned from the zygote, are master's children, and serve mail" {
	z=$(zygote)
	[ -n "$z" ]
	[ "$(ps -o ppid= -p "$z" | tr -d ' ')" = "$(master_pid)" ]
	# The zygote never accepts: it is no worker and holds no client.
	wait_until '[ "$(workers | wc -l)" -ge 2 ]' 10
	check_cloned
	run send_mail --from a@example.org --to postmaster@postern.test
	[ "$status" -eq 0 ]
	echo "# zygote $z: Private_Dirty $(kib "$z" Private_Dirty) KiB" >&3
}

# KiB resident of the dynamic loader's code (ld-linux's executable
# mapping) in PID.
loader_code_kib() {
	awk '/^[0-9a-f]+-[0-9a-f]+ / { ld = ($2 ~ /x/ && $6 ~ /\/ld-linux/) }
		ld && /^Rss:/ { kb += $2 } END { print kb + 0 }' /proc/"$1"/smaps
}

@test "the zygote binds every call at its start: a worker runs no loader code, nor its door (the door zygote bound them)" {
	[ -z "$SUITE_SANITIZED" ] || skip "the sanitizer runtime looks symbols up itself"
	# A worker made after this start (its first connection binds libc's
	# and libdb's lazy calls unless the zygote bound them all), which
	# then serves a session.
	before=$(workers)
	for w in $before; do kill -TERM "$w"; done
	for w in $before; do wait_for_exit "$w" 10; done
	wait_until '[ "$(workers | wc -l)" -ge 2 ]' 10
	for i in 1 2 3; do
		run send_mail --from a@example.org --to postmaster@postern.test
		[ "$status" -eq 0 ]
	done
	local w d kib
	for w in $(workers); do
		[ -d /proc/"$w" ] || continue
		kib=$(loader_code_kib "$w")
		echo "# worker $w: loader code resident $kib KiB" >&3
		[ "$kib" -eq 0 ]
		# Its door, forked by the door zygote, which the smtpd zygote
		# spawned with LD_BIND_NOW=1 (a door's /proc/PID/environ is
		# the door zygote's start).
		d=$(smtp_door_of "$w")
		[ -n "$d" ]
		kib=$(loader_code_kib "$d")
		echo "# door $d: loader code resident $kib KiB" >&3
		[ "$kib" -eq 0 ]
		tr '\0' '\n' < /proc/"$d"/environ | grep -qx 'LD_BIND_NOW=1'
	done
	tr '\0' '\n' < /proc/"$(zygote)"/environ | grep -qx 'LD_BIND_NOW=1'
}

@test "a killed zygote is replaced and the service goes on; a crashed worker replaces it" {
	old=$(zygote)
	kill -KILL "$old"
	wait_for_log "zygote $old killed by signal 9"
	wait_until 'z=$(zygote) && [ -n "$z" ] && [ "$z" != "$old" ]' 10
	# Workers the new zygote makes: stop the current ones (max_use is
	# the path a worker takes when it is done; SIGTERM is master's).
	before=$(workers)
	for w in $before; do kill -TERM "$w"; done
	for w in $before; do wait_for_exit "$w" 10; done
	wait_until '[ "$(workers | wc -l)" -ge 2 ]' 10
	check_cloned
	run send_mail --from a@example.org --to postmaster@postern.test
	[ "$status" -eq 0 ]
	# A worker that crashes: its siblings share its layout and canary,
	# so the zygote is replaced. SIGABRT, as glibc's abort() on a smashed
	# stack (and a signal AddressSanitizer leaves alone).
	old=$(zygote)
	set -- $(workers)
	kill -ABRT "$1"
	wait_for_log "zygote $old: a worker it made was killed by signal 6: replaced"
	wait_until 'z=$(zygote) && [ -n "$z" ] && [ "$z" != "$old" ]' 10
}

@test "a reload replaces the zygote; process_zygote = no goes back to exec" {
	old=$(zygote)
	kill -HUP "$(master_pid)"
	wait_for_exit "$old" 10
	wait_until 'z=$(zygote) && [ -n "$z" ] && [ "$z" != "$old" ]' 10
	suite_conf process_zygote no
	old=$(zygote)
	oldw=$(workers)
	kill -HUP "$(master_pid)"
	wait_for_exit "$old" 10
	for w in $oldw; do wait_for_exit "$w" 10; done
	wait_until '[ "$(workers | wc -l)" -ge 2 ]' 10
	[ -z "$(named smtpd-zygote)" ]
	# Exec'd: the relocations are each worker's own.
	set -- $(workers)
	common=$(common_pages "$1" "$2")
	echo "# exec'd workers $1 and $2: pages in common $common; Private_Dirty $(kib "$1" Private_Dirty) KiB" >&3
	[ "$common" -lt 5 ]
	run send_mail --from a@example.org --to postmaster@postern.test
	[ "$status" -eq 0 ]
}
