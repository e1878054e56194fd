#!/usr/bin/env bats
# The Debian package builds from the tracked sources and holds the
# programs, the systemd unit, the config file and the manual pages.

setup() {
	command -v dpkg-buildpackage >/dev/null && [ -f /usr/share/perl5/Debian/Debhelper/Dh_Lib.pm ] ||
		skip "dpkg-buildpackage and debhelper are not installed"
	TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
	D=$(mktemp -d /tmp/postern-package.XXXXXX)
}

teardown() {
	[ -n "${D:-}" ] && rm -rf "$D"
}

@test "dpkg-buildpackage builds a complete postern package" {
	mkdir "$D/postern"
	(cd "$TOP" && git ls-files -z | tar --null -T - -cf -) | tar -C "$D/postern" -xf -
	run bash -c "cd '$D/postern' && DEB_BUILD_OPTIONS=nocheck dpkg-buildpackage -b -us -uc 2>&1"
	[ "$status" -eq 0 ] || { echo "$output" | tail -20; false; }
	deb=$(ls "$D"/postern_*_*.deb | grep -v dbgsym)
	run dpkg-deb -c "$deb"
	[ "$status" -eq 0 ]
	for f in ./usr/lib/postern/master ./usr/lib/postern/smtpd ./usr/lib/postern/qmgr \
		./usr/lib/postern/deliver ./usr/lib/postern/lmtpd ./usr/sbin/postern \
		./usr/sbin/sendmail ./lib/systemd/system/postern.service \
		./etc/postern/postern.conf ./usr/share/man/man5/postern.conf.5.gz \
		./usr/share/man/man8/postern.8.gz; do
		echo "$output" | grep -q " $f\$" || { echo "missing $f"; false; }
	done
	echo "$output" | grep -q ' ./usr/sbin/mailq -> sendmail$'
	run dpkg-deb -f "$deb" Provides
	[ "$output" = "mail-transport-agent" ]
	# The unit is what systemd expects of a notify service.
	dpkg-deb -x "$deb" "$D/root"
	grep -q '^Type=notify$' "$D/root/lib/systemd/system/postern.service"
	grep -q '^ExecReload=/usr/sbin/postern reload$' "$D/root/lib/systemd/system/postern.service"
}
