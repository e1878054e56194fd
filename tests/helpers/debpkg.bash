# debpkg.bash - the Debian package for tests: built once per state of the
# tracked sources, and installed into a throwaway Debian 12 tree made by
# mmdebstrap (tests/debpkg.bats, tests/package.bats).
#
# Both are cached under /var/tmp, so that a second run costs seconds:
#   /var/tmp/postern-deb-KEY/        the .deb, KEY a hash of the tracked
#                                    sources that go into it (git
#                                    ls-files, with the contents of the
#                                    work tree)
#   /var/tmp/postern-mmdebstrap-KEY.tar   a minbase bookworm tree holding
#                                    the package's dependencies, KEY a
#                                    hash of its inputs (suite, package
#                                    list, apt sources, mmdebstrap)
# A flock serializes builders (run-tests runs two bats files at a time).
# Caches older than two days are removed.

DEBPKG_CACHE=${DEBPKG_CACHE:-/var/tmp}
DEBPKG_SUITE=bookworm
# Packages the tests use inside the tree besides the .deb's dependencies,
# comma-separated. bsd-mailx (for "mail root") depends on an MTA: named
# here, mmdebstrap would bring exim4 with it; rather fetch its .deb into
# the tree (mmdebstrap --customize-hook='chroot "$1" apt-get download
# bsd-mailx liblockfile1') and "dpkg -i" it after postern.
DEBPKG_BASE_EXTRA=${DEBPKG_BASE_EXTRA:-}
# Packages a test installs with dpkg -i into the tree after postern,
# space-separated: bsd-mailx (for "mail root") depends on an MTA, so
# mmdebstrap cannot install it before postern without bringing exim4.
# debpkg_after_debs fetches them once (apt-get download, on the host,
# which is the same Debian 12) into a cache whose name is a hash of the
# names and their candidate versions.
DEBPKG_AFTER=${DEBPKG_AFTER:-bsd-mailx liblockfile1 liblockfile-bin}

debpkg_top() {
	cd "$BATS_TEST_DIRNAME/.." && pwd
}

# Why the package cannot be built here, or nothing.
debpkg_build_missing() {
	command -v dpkg-buildpackage >/dev/null &&
		[ -f /usr/share/perl5/Debian/Debhelper/Dh_Lib.pm ] ||
		{ echo "dpkg-buildpackage and debhelper are not installed"; return; }
	command -v po2debconf >/dev/null ||
		{ echo "po-debconf is not installed"; return; }
	git -C "$(debpkg_top)" rev-parse --git-dir >/dev/null 2>&1 ||
		echo "not a git checkout: the tracked sources are unknown"
}

# What goes into the package: the tracked files but tests/ (nothing of it
# is installed, and the build runs no test: nocheck), doc/ and bench/
# (editing a test or run-tests does not rebuild).
debpkg_source_key() {
	local top
	top=$(debpkg_top)
	(cd "$top" && git ls-files -z -- . ':!tests' \
		':!doc' ':!bench' | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

debpkg_prune() {	# pattern
	find "$DEBPKG_CACHE" -maxdepth 1 -name "$1" -mtime +2 \
		-exec rm -rf {} + 2>/dev/null || true
}

# Sets DEB to the path of the package built from the tracked sources.
# Fails with the build's last lines.
debpkg_build() {
	local key dir tmp top
	top=$(debpkg_top)
	key=$(debpkg_source_key)
	dir=$DEBPKG_CACHE/postern-deb-$key
	exec {lock}>"$DEBPKG_CACHE/postern-deb.lock"
	flock "$lock"
	if ! ls "$dir"/postern_*.deb >/dev/null 2>&1; then
		debpkg_prune 'postern-deb-*'
		tmp=$(mktemp -d "$DEBPKG_CACHE/postern-deb-build.XXXXXX")
		mkdir "$tmp/postern"
		(cd "$top" && git ls-files -z | tar --null -T - -cf -) | tar -C "$tmp/postern" -xf -
		# Without the calling make's variables: under make
		# check-sanitize, MAKEFLAGS carries SANITIZE= and BUILD=, which
		# debian/rules' make would obey, and a sanitized package would
		# then sit in the cache under the sources' key.
		if ! (cd "$tmp/postern" && env -u MAKEFLAGS -u MFLAGS \
			-u MAKELEVEL -u MAKEOVERRIDES DEB_BUILD_OPTIONS=nocheck \
			dpkg-buildpackage -b -us -uc -j2 >"$tmp/build.log" 2>&1); then
			tail -n 30 "$tmp/build.log"
			rm -rf "$tmp"
			exec {lock}>&-
			return 1
		fi
		mkdir "$tmp/out"
		mv "$tmp"/*.deb "$tmp"/*.changes "$tmp"/*.buildinfo "$tmp/out/"
		rm -rf "$dir"
		mv "$tmp/out" "$dir"
		rm -rf "$tmp"
	fi
	exec {lock}>&-
	DEB=$(ls "$dir"/postern_*.deb | grep -v dbgsym | head -n 1)
	DEB_CHANGES=$(ls "$dir"/postern_*.changes | head -n 1)
}

# The apt sources mmdebstrap uses: the host's (apt works here).
debpkg_sources() {
	local f
	for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
		[ -s "$f" ] && { echo "$f"; return; }
	done
}

# Sets BASE_TAR to a cached minbase tree with the dependencies of $DEB,
# making it if needed (several minutes, from the mirror). Prints why and
# fails when mmdebstrap cannot run.
debpkg_base_tree() {
	local deps key sources tmp
	command -v mmdebstrap >/dev/null || { echo "mmdebstrap is not installed"; return 1; }
	[ "$(id -u)" -eq 0 ] || { echo "mmdebstrap --mode=root and chroot need root"; return 1; }
	# Depends of the .deb, without versions, the first of alternatives.
	deps=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' |
		sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' | grep -v '^$' | sort -u | tr '\n' ',')
	deps="${deps}${DEBPKG_BASE_EXTRA}"
	deps=${deps%,}
	sources=$(debpkg_sources)
	key=$( { echo "$DEBPKG_SUITE minbase $deps"; mmdebstrap --version;
		[ -n "$sources" ] && cat "$sources"; } | sha256sum | cut -c1-16)
	BASE_TAR=$DEBPKG_CACHE/postern-mmdebstrap-$key.tar
	exec {lock}>"$DEBPKG_CACHE/postern-mmdebstrap.lock"
	flock "$lock"
	if [ ! -s "$BASE_TAR" ]; then
		debpkg_prune 'postern-mmdebstrap-*.tar'
		tmp=$(mktemp "$DEBPKG_CACHE/postern-mmdebstrap.XXXXXX.tar")
		if ! timeout 900 mmdebstrap --quiet --variant=minbase --mode=root \
			--include="$deps" "$DEBPKG_SUITE" "$tmp" ${sources:+"$sources"} \
			>"$tmp.log" 2>&1; then
			echo "mmdebstrap could not make a $DEBPKG_SUITE tree: $(tail -n 3 "$tmp.log" | tr '\n' ' ')"
			rm -f "$tmp" "$tmp.log"
			exec {lock}>&-
			return 1
		fi
		rm -f "$tmp.log"
		mv "$tmp" "$BASE_TAR"
	fi
	exec {lock}>&-
}

# Unpack BASE_TAR into a fresh root R with /proc mounted and a
# policy-rc.d that starts no service. R is a tmpfs of its own: unpacked
# and thrown away in memory, not on a disk other tests are using.
debpkg_chroot_setup() {
	R=$(mktemp -d "$DEBPKG_CACHE/postern-debpkg-root.XXXXXX")
	mount -t tmpfs -o size=2g,mode=0755 postern-debpkg "$R"
	tar -C "$R" -xf "$BASE_TAR"
	[ -e "$R/dev/null" ] || mknod -m 0666 "$R/dev/null" c 1 3
	[ -e "$R/dev/urandom" ] || mknod -m 0666 "$R/dev/urandom" c 1 9
	mount -t proc proc "$R/proc"
	printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
	chmod 0755 "$R/usr/sbin/policy-rc.d"
	cp "$DEB" "$R/tmp/postern.deb"
}

# Run a command inside R, with a clean environment.
in_root() {
	chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# Kill what still runs from R (by the PIDs whose root is R), unmount
# /proc and the tmpfs, remove the empty mount point. Nothing is removed
# file by file: a tree with something still mounted in it is left alone.
debpkg_chroot_teardown() {
	[ -n "${R:-}" ] && [ -d "$R" ] || return 0
	local p root
	for p in /proc/[0-9]*; do
		root=$(readlink "$p/root" 2>/dev/null) || continue
		[ "$root" = "$R" ] && kill -9 "${p#/proc/}" 2>/dev/null
	done
	umount "$R/proc" 2>/dev/null || umount -l "$R/proc" 2>/dev/null || true
	umount "$R" 2>/dev/null || umount -l "$R" 2>/dev/null || true
	if findmnt -rn -o TARGET | grep -q "^$R\(/\|\$\)"; then
		echo "debpkg: something is still mounted on $R; left in place" >&2
		return 1
	fi
	rmdir "$R"
}

# lintian on $DEB, as "lintian --fail-on error,warning" would judge it:
# prints its tags, fails on an E: or W:. The verdict is kept beside the
# cached .deb for this lintian version: the same package and the same
# lintian give the same answer, and lintian takes a minute on a busy
# machine.
debpkg_lintian() {
	local dir version out
	dir=$(dirname "$DEB")
	version=$(lintian --version | tr -c 'A-Za-z0-9.\n' _)
	out=$dir/lintian-$version
	if [ ! -f "$out.status" ]; then
		lintian --no-cfg --fail-on error,warning "$DEB" >"$out.txt" 2>&1
		echo $? >"$out.status.new" && mv "$out.status.new" "$out.status"
	fi
	cat "$out.txt"
	return "$(cat "$out.status")"
}

# Sets AFTER_DEBS to a directory holding the .debs of DEBPKG_AFTER,
# downloading them once. Prints why and fails when apt cannot.
debpkg_after_debs() {
	local key tmp
	key=$( { echo "$DEBPKG_SUITE $DEBPKG_AFTER";
		apt-cache policy $DEBPKG_AFTER 2>/dev/null | grep -E '^[a-z0-9]|Candidate'; } |
		sha256sum | cut -c1-16)
	AFTER_DEBS=$DEBPKG_CACHE/postern-debpkg-after-$key
	[ -d "$AFTER_DEBS" ] && return 0
	debpkg_prune 'postern-debpkg-after-*'
	tmp=$(mktemp -d "$DEBPKG_CACHE/postern-debpkg-after.XXXXXX")
	# shellcheck disable=SC2086
	if ! (cd "$tmp" && timeout 300 apt-get download $DEBPKG_AFTER) >"$tmp.log" 2>&1; then
		echo "apt-get download $DEBPKG_AFTER failed: $(tail -n 2 "$tmp.log" | tr '\n' ' ')"
		rm -rf "$tmp" "$tmp.log"
		return 1
	fi
	rm -f "$tmp.log"
	mv "$tmp" "$AFTER_DEBS" 2>/dev/null || rm -rf "$tmp"
}
