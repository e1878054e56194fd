#!/usr/bin/env bats
# The Debian package builds from the tracked sources and holds the
# programs, the systemd unit, the config file (copied into /etc/postern
# by postinst) and the manual pages.

load helpers/debpkg

setup() {
	why=$(debpkg_build_missing)
	[ -z "$why" ] || skip "$why"
	D=$(mktemp -d /tmp/postern-package.XXXXXX)
}

teardown() {
	[ -n "${D:-}" ] && rm -rf "$D"
}

@test "dpkg-buildpackage builds a complete postern package" {
	# Built once for this state of the sources, shared with debpkg.bats.
	debpkg_build
	deb=$DEB
	run dpkg-deb -c "$deb"
	[ "$status" -eq 0 ]
	for f in ./usr/lib/postern/master ./usr/lib/postern/smtpd ./usr/lib/postern/qmgr \
		./usr/lib/postern/deliver ./usr/lib/postern/mtasts-fetch \
		./usr/lib/postern/lmtpd ./usr/sbin/postern \
		./usr/sbin/sendmail ./lib/systemd/system/postern.service \
		./usr/share/postern/postern.conf ./usr/share/man/man5/postern.conf.5.gz \
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
