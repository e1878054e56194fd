#!/usr/bin/env bats
# make check-sanitize's own check: in a sanitizer build (BUILD=build-san),
# a report written by a daemon, a confined one or smtpd's door (master's
# grandchild), must fail suite_stop, and the daemons must be able to read
# LeakSanitizer's suppressions (one that cannot dies at its leak check
# with one line and no report). The reports are real ones: ASan's SEGV
# handler, run by a SIGSEGV sent from here. Skipped in a normal build.

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
	[ -n "$SUITE_SANITIZED" ] || skip "not a sanitizer build"
	suite_init
	suite_conf process_min_idle 1
	suite_conf smtpd_processes 2
	suite_start
}

teardown() {
	suite_stop
}

@test "a daemon's and a door's sanitizer reports fail suite_stop; LSan's suppressions are readable by the daemons" {
	# run-tests points LSAN_OPTIONS at a copy inside the build
	# (daemon_directory), which Landlock lets every daemon read.
	local supp=${LSAN_OPTIONS#*suppressions=}
	supp=${supp%%:*}
	[ -n "$supp" ] && [ "$supp" != "$LSAN_OPTIONS" ]
	[ "${supp%/*}" = "$BUILD" ]
	if [ "$(id -u)" -eq 0 ]; then
		setpriv --reuid="$TEST_SMTPD_USER" --regid="$TEST_SMTPD_USER" \
			--clear-groups -- cat "$supp" >/dev/null
	fi

	local qmgr worker door pid
	qmgr=$(ps -o pid=,comm= --ppid "$SUITE_PID" | awk '$2 == "qmgr" { print $1; exit }')
	for worker in $(ps -o pid=,comm= --ppid "$SUITE_PID" | awk '$2 == "smtpd" { print $1 }'); do
		door=$(smtp_door_of "$worker")
		[ -n "$door" ] && break
	done
	[ -n "$qmgr" ] && [ -n "$door" ]
	kill -SEGV "$qmgr" "$door"
	for pid in "$qmgr" "$door"; do
		wait_for_log "==$pid==ERROR: AddressSanitizer: SEGV" 30
	done

	local t=$T
	run suite_stop
	[ "$status" -eq 1 ]
	[[ "$output" == *"==$qmgr==ERROR: AddressSanitizer"* ]]
	[[ "$output" == *"==$door==ERROR: AddressSanitizer"* ]]
	[[ "$output" == *"# kept $t"* ]]
	# What this test provoked is not a finding: clean up quietly.
	SUITE_PID=
	rm -rf "$t"
	T=
}

@test "a report in a second instance's log under \$T fails suite_stop" {
	# front_submission, requiretls, smtpd_tls start a second master in
	# $T/b, $T/c...: its log is read too, even when the test forgets.
	# The line is planted: the first test shows that real reports
	# reach a log; this one, that suite_stop reads every instance's.
	mkdir -p "$T/b"
	printf '%s\n' 'postern/master[1]: starting' \
		'==1==ERROR: AddressSanitizer: heap-buffer-overflow (planted by sanitize.bats)' > "$T/b/log"
	local t=$T
	run suite_stop
	[ "$status" -eq 1 ]
	[[ "$output" == *"sanitizer reports in $t/b/log"* ]]
	[[ "$output" != *"sanitizer reports in $t/log:"* ]]
	SUITE_PID=
	rm -rf "$t"
	T=
}
