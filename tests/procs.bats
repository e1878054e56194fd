#!/usr/bin/env bats
# What a process costs (issue 20): each program is linked only with the
# libraries it uses (the Makefile links with --as-needed), and smtpd
# reads the Public Suffix List only when a DMARC check needs it
# (mail/dmarc.c, dmarc_psl_defer) and its tables at their first lookup
# (mail/map.c): every idle worker holds the list open and unread and has
# not run libdb, a trusted client's session to a mailbox_maps recipient
# (the table opened under confinement) leaves the list unread, and a
# stranger's message whose From: is under a multi-label public suffix
# (co.uk) finds the DMARC record of its organizational domain through
# the list read after the worker was confined, by the descriptor.
# dnsmasq on loopback serves the record. One suite start.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common
load helpers/peers
load helpers/authres

setup_file() {
	file_timer_start
	suite_init
	authres_mx_conf
	start_dnsmasq --local=/uk/ \
		'--txt-record=_dmarc.example.co.uk,v=DMARC1; p=quarantine'
	cp /usr/share/publicsuffix/public_suffix_list.dat "$T/psl.dat"
	suite_conf public_suffix_list "$T/psl.dat"
	suite_start
}

teardown_file() {
	peers_stop
	suite_stop
	file_timer_report
}

# NEEDED entries of a program, one a line.
needed() {
	readelf -d "$BUILD/$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
}

# The smtpd workers of the instance (master's children; their doors are
# the door zygote's).
workers() {
	ps -o pid= -o comm= --ppid "$(master_pid)" | awk '$2 == "smtpd" { print $1 }'
}

# "unread" if PID holds the list open at offset 0, "none" if it holds it
# not (read and closed, or never opened), "gone" if PID has exited,
# "read" otherwise.
psl_state() {
	local fd
	for fd in /proc/"$1"/fd/*; do
		case $(readlink "$fd") in
		"$T/psl.dat" | "$T/psl.dat (deleted)") ;;
		*) continue ;;
		esac
		if grep -q '^pos:[[:space:]]*0$' /proc/"$1"/fdinfo/"${fd##*/}"; then
			echo unread
		else
			echo read
		fi
		return
	done
	# Idle workers end after max_idle and are replaced: one may be gone.
	if [ -d /proc/"$1" ]; then echo none; else echo gone; fi
}

# KiB of libdb resident in PID.
libdb_rss() {
	awk '/^[0-9a-f]+-[0-9a-f]+ / { db = ($6 ~ /libdb-/) }
		db && /^Rss:/ { kb += $2 } END { print kb + 0 }' /proc/"$1"/smaps 2>/dev/null ||
		echo 0
}

@test "each program links only the libraries it uses" {
	[ -z "$SUITE_SANITIZED" ] || skip "sanitizer builds link their runtimes"
	local p
	for p in master smtpd qmgr deliver mtasts-fetch lmtpd postern sendmail; do
		[ -x "$BUILD/$p" ] || continue
		echo "$p: $(needed "$p" | tr '\n' ' ')"
	done
	# HTTPS fetches (MTA-STS) are mtasts-fetch's alone, which deliver
	# runs when a policy is due: no daemon maps libcurl (issue 20).
	needed mtasts-fetch | grep -qx 'libcurl.so.4'
	for p in master smtpd qmgr deliver lmtpd postern sendmail; do
		[ -z "$(needed "$p" | grep '^libcurl')" ]
	done
	# Password hashes are checked by smtpd's door only.
	for p in master qmgr deliver lmtpd; do
		[ -z "$(needed "$p" | grep '^libcrypt\.')" ]
	done
	# master reads no map and no domain in UTF-8.
	[ -z "$(needed master | grep -E '^(libdb|libidn2)')" ]
	# Loading the config asks no DNS (mail/dnsbl_parse.c): only the
	# programs that look names up load libresolv (issue 20, h-mem).
	for p in master qmgr lmtpd smtpd-door; do
		[ -z "$(needed "$p" | grep '^libresolv')" ]
	done
}

@test "smtpd reads the Public Suffix List at its first DMARC check only, through the descriptor opened before confinement" {
	local w d first st db
	wait_until '[ "$(workers | wc -l)" -ge 2 ]' 20
	# A worker still starting has not opened the list yet.
	for w in $(workers); do
		wait_until "[[ \"\$(psl_state $w)\" == @(unread|gone) ]]" 10
	done
	first=$(workers)
	for w in $first; do
		st=$(psl_state "$w") db=$(libdb_rss "$w")
		echo "worker $w: $st, libdb resident $db KiB"
		[ "$st" != gone ] || continue
		[ "$st" = unread ]
		# Tables are opened at the first lookup (mail/map.c): an
		# idle worker has not run libdb's code (1.4 MiB once it has).
		[ "$db" -lt 512 ]
		# The door (the door zygote's child): it never holds the list.
		d=$(smtp_door_of "$w")
		[ -z "$d" ] || [[ "$(psl_state "$d")" == @(none|gone) ]]
	done

	# A client in mynetworks is not checked: nothing is read.
	send_mail --server ::1 --from a@example.org --to bob@postern.test \
		--header 'From: a@mail.example.co.uk'
	for w in $first; do
		st=$(psl_state "$w")
		echo "after a trusted client, worker $w: $st"
		[[ "$st" == @(unread|gone) ]]
	done

	# A stranger: DMARC finds example.co.uk's record only if co.uk is
	# known as a public suffix (without the list the organizational
	# domain would be co.uk, which has no record). The confined worker
	# could not open $T/psl.dat by its path (Landlock allows /usr, not
	# /tmp): the list comes through the descriptor.
	rm -f "$T"/mail/postern.test/bob/new/*
	send_mail --from a@nospf.test --to bob@postern.test \
		--header 'From: a@mail.example.co.uk'
	local msg
	msg=$(mx_message bob)
	sed -n '/^Authentication-Results:/,/^[^\t]/p' "$msg"
	grep -qE 'dmarc=fail \(p=quarantine sp=quarantine pct=100 dis=[a-z]+\) header.from=mail.example.co.uk' "$msg"
	# The worker that served it read the list and closed it.
	local states=
	for w in $(workers); do
		states+="$(psl_state "$w") "
	done
	echo "after a stranger: $states"
	[[ " $states" == *" none "* ]]
	[ -z "$(grep 'public_suffix_list' "$T/log")" ]
}
