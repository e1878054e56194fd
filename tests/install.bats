#!/usr/bin/env bats
# make install: honours DESTDIR and PREFIX; installs programs, links and
# manual pages where master and the documentation expect them.

setup() {
	: "${BUILD:=$(cd "$BATS_TEST_DIRNAME/.." && pwd)/build}"
	TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
	D=$(mktemp -d /tmp/postern-install.XXXXXX)
}

teardown() {
	rm -rf "$D"
}

@test "make install DESTDIR PREFIX" {
	run make -s -C "$TOP" install BUILD="$BUILD" DESTDIR="$D" PREFIX=/opt/pt
	[ "$status" -eq 0 ]
	for p in master smtpd qmgr deliver mtasts-fetch lmtpd; do
		[ -x "$D/opt/pt/lib/postern/$p" ]
	done
	[ -x "$D/opt/pt/sbin/postern" ]
	[ -x "$D/opt/pt/sbin/sendmail" ]
	[ "$(readlink "$D/opt/pt/sbin/mailq")" = sendmail ]
	[ "$(readlink "$D/opt/pt/sbin/newaliases")" = sendmail ]
	[ -f "$D/opt/pt/share/man/man5/postern.conf.5" ]
	for m in postern master smtpd qmgr deliver lmtpd; do
		[ -f "$D/opt/pt/share/man/man8/$m.8" ]
	done
	[ -f "$D/opt/pt/share/man/man1/sendmail.1" ]
	# Nothing outside DESTDIR.
	[ -z "$(find "$D" -mindepth 1 -maxdepth 1 ! -name opt ! -name etc)" ]
}

@test "every configuration key is documented in postern.conf(5)" {
	keys=$(sed -n 's/^\tX([A-Z]*, \([a-z_0-9]*\), .*/\1/p' "$TOP/mail/cfg_keys.h")
	[ -n "$keys" ]
	missing=""
	for k in $keys; do
		# Keys appear as ".BR key", ".B key" or in a list ".BR a ", " b".
		grep -Eq "^\.BR? (.*[ \"])?$k([ \",]|\$)" "$TOP/man/postern.conf.5" || missing="$missing $k"
	done
	[ -z "$missing" ] || { echo "undocumented:$missing"; false; }
}
