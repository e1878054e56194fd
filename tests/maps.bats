#!/usr/bin/env bats
# "postern map" as an administrator uses it: build, query and list tables
# from text files, and exchange tables with Postfix's own postmap and
# postalias (the real programs, reading and writing the same files).

bats_require_minimum_version 1.5.0
load helpers/suite

setup() {
	suite_init
	M=$T/maps
	mkdir -p "$M"
}

teardown() {
	local status=0
	suite_stop || status=$?
	rm -rf "$T"
	return $status
}

pmap() {
	"$POSTERN" -c "$T/conf" map "$@"
}

@test "map build then query: case-insensitive keys, values as written" {
	cat > "$M/mailboxes" <<'EOF'
# mailboxes lmtpd accepts
Alice@Example.ORG   example.org/Alice/
bob@example.org	example.org/bob/
EOF
	run pmap build "$M/mailboxes"
	[ "$status" -eq 0 ]
	[ -f "$M/mailboxes.db" ]
	run pmap query "$M/mailboxes" alice@example.org
	[ "$status" -eq 0 ]
	[ "$output" = "example.org/Alice/" ]
	run pmap query "hash:$M/mailboxes" BOB@EXAMPLE.ORG
	[ "$status" -eq 0 ]
	[ "$output" = "example.org/bob/" ]
}

@test "map query of a missing key prints nothing and exits 1" {
	echo "a b" > "$M/t"
	pmap build "$M/t"
	run --separate-stderr pmap query "$M/t" nosuch
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[ -z "$stderr" ]
}

@test "map query of a table never built fails temporarily, saying how to build it" {
	run --separate-stderr pmap query "$M/never" key
	[ "$status" -eq 2 ]
	[ -z "$output" ]
	[[ "$stderr" == *"postern map build"* ]]
}

@test "continuation lines and comments as in Postfix tables" {
	printf 'list one,\n# a comment inside the entry\n   two,\n\n\tthree\nk v # kept\n' > "$M/t"
	pmap build "$M/t"
	run pmap query "$M/t" list
	[ "$output" = "one, two, three" ]
	run pmap query "$M/t" k
	[ "$output" = "v # kept" ]
}

@test "a bad line fails the build with file:line and keeps the old table" {
	printf 'good old\n' > "$M/t"
	pmap build "$M/t"
	printf 'good new\n# comment\nkeyonly\n' > "$M/t"
	run --separate-stderr pmap build "$M/t"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"$M/t:3: expected \"key value\""* ]]
	run pmap query "$M/t" good
	[ "$output" = "old" ]
	# no temporary file left behind
	[ -z "$(find "$M" -name '*.tmp*')" ]
}

@test "duplicate keys: warning with the line, first entry wins, as postmap decides" {
	printf 'dup first\nother x\nDUP second\n' > "$M/t"
	run --separate-stderr pmap build "$M/t"
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"$M/t:3: duplicate key \"dup\""* ]]
	run pmap query "$M/t" dup
	[ "$output" = "first" ]
	# Postfix's postmap on the same source makes the same choice.
	cp "$M/t" "$M/pf"
	postmap "hash:$M/pf" 2>/dev/null
	run postmap -q dup "hash:$M/pf"
	[ "$output" = "first" ]
}

@test "Postfix's postmap reads a table postern built" {
	printf 'Alice@Example.org  example.org/alice/\nrelay.example smtp:[10.0.0.1]:25\n' > "$M/t"
	pmap build "$M/t"
	run postmap -q alice@example.org "hash:$M/t"
	[ "$status" -eq 0 ]
	[ "$output" = "example.org/alice/" ]
	run postmap -q relay.example "hash:$M/t"
	[ "$output" = "smtp:[10.0.0.1]:25" ]
}

@test "postern reads a table Postfix's postmap built" {
	printf 'alice@example.org  example.org/alice/\nbob@example.org example.org/bob/\n' > "$M/pf"
	postmap "hash:$M/pf"
	run pmap query "$M/pf" Alice@Example.org
	[ "$status" -eq 0 ]
	[ "$output" = "example.org/alice/" ]
	run pmap query "$M/pf" nobody@example.org
	[ "$status" -eq 1 ]
	run pmap list "$M/pf"
	[ "$output" = "$(printf 'alice@example.org\texample.org/alice/\nbob@example.org\texample.org/bob/')" ]
}

@test "aliases format: postern builds, postalias reads; list -a builds back the same table" {
	cat > "$M/aliases" <<'EOF'
# /etc/aliases style
Postmaster: root
root:   alice,
        bob
"john smith": john
EOF
	run pmap build -a "$M/aliases"
	[ "$status" -eq 0 ]
	run pmap query "$M/aliases" POSTMASTER
	[ "$output" = "root" ]
	run postalias -q root "hash:$M/aliases"
	[ "$output" = "alice, bob" ]
	run postalias -q "john smith" "hash:$M/aliases"
	[ "$output" = "john" ]

	run pmap list -a "$M/aliases"
	[ "$status" -eq 0 ]
	listing=$output
	[ "$listing" = "$(printf '"john smith": john\npostmaster: root\nroot: alice, bob')" ]
	printf '%s\n' "$listing" > "$M/again"
	pmap build -a "$M/again"
	run pmap list -a "$M/again"
	[ "$output" = "$listing" ]
}

@test "a bad aliases line names file and line" {
	printf 'root: alice\nno colon\n' > "$M/aliases"
	run --separate-stderr pmap build -a "$M/aliases"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"$M/aliases:2: expected \"name: value\""* ]]
	[ ! -f "$M/aliases.db" ]
}

@test "a rebuild replaces the file atomically: new inode, same name" {
	echo "k old" > "$M/t"
	pmap build "$M/t"
	before=$(stat -c %i "$M/t.db")
	echo "k new" > "$M/t"
	pmap build "$M/t"
	after=$(stat -c %i "$M/t.db")
	[ "$before" != "$after" ]
	run pmap query "$M/t" k
	[ "$output" = "new" ]
}

@test "the table keeps the source's read permissions" {
	echo "user secret" > "$M/secret"
	chmod 0640 "$M/secret"
	pmap build "$M/secret"
	[ "$(stat -c %a "$M/secret.db")" = 640 ]
	echo "a b" > "$M/public"
	chmod 0644 "$M/public"
	pmap build "$M/public"
	[ "$(stat -c %a "$M/public.db")" = 644 ]
}

@test "the daemon user reads a public table but not a private one" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to switch to the test user"
	echo "user secret" > "$M/secret"
	chmod 0640 "$M/secret"
	echo "a b" > "$M/public"
	pmap build "$M/secret" "$M/public"
	chmod 755 "$M"
	run setpriv --reuid "$TEST_USER" --regid "$TEST_USER" --clear-groups \
		"$POSTERN" -c "$T/conf" map query "$M/public" a
	[ "$status" -eq 0 ]
	[ "$output" = "b" ]
	run --separate-stderr setpriv --reuid "$TEST_USER" --regid "$TEST_USER" \
		--clear-groups "$POSTERN" -c "$T/conf" map query "$M/secret" user
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"Permission denied"* ]]
}

@test "usage errors exit 2" {
	run pmap
	[ "$status" -eq 2 ]
	run pmap frobnicate x
	[ "$status" -eq 2 ]
	run pmap query "$M/t"
	[ "$status" -eq 2 ]
	run --separate-stderr pmap query "nosuchtype:$M/t" k
	[ "$status" -eq 2 ]
	[[ "$stderr" == *'unknown type "nosuchtype"'* ]]
	run pmap build
	[ "$status" -eq 2 ]
}

@test "map build of smtpd_sasl_users refuses weak hashes, naming file, line and user" {
	good6=$(openssl passwd -6 'pw')
	good5=$(openssl passwd -5 'pw')
	goody=$(perl -e 'print crypt("pw", "\$y\$j9T\$F5Jx5fExrKuPp53xLKQ..1\$")')
	printf 'alice %s\nbob %s\ncarol %s\n' "$good6" "$good5" "$goody" > "$M/sasl"
	suite_conf smtpd_sasl_users "hash:$M/sasl"
	run pmap build "$M/sasl"
	[ "$status" -eq 0 ]
	cp "$M/sasl.db" "$M/sasl.db.good"
	printf 'mallory %s\n' "$(openssl passwd -1 'pw')" >> "$M/sasl"
	run --separate-stderr pmap build "$M/sasl"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"$M/sasl:4: key \"mallory\": MD5-crypt (\$1\$) is a weak password hash; use yescrypt, sha512-crypt, sha256-crypt or bcrypt"* ]]
	# The table in place is the one built before.
	cmp "$M/sasl.db" "$M/sasl.db.good"
	printf 'alice %s\ndes %s\n' "$good6" "$(perl -e 'print crypt("pw", "ab")')" > "$M/sasl"
	run --separate-stderr pmap build "$M/sasl"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"$M/sasl:2: key \"des\": traditional DES crypt is a weak password hash"* ]]
	printf 'alice plaintext-password\n' > "$M/sasl"
	run --separate-stderr pmap build "$M/sasl"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"$M/sasl:1: key \"alice\": not a crypt(3) password hash"* ]]
	# Other tables hold what they like.
	printf 'mallory %s\n' "$(openssl passwd -1 'pw')" > "$M/other"
	run pmap build "$M/other"
	[ "$status" -eq 0 ]
}

@test "smtpd does not start on a smtpd_sasl_users table with a weak hash" {
	# Built while not yet named in smtpd_sasl_users (or by an older postern).
	printf 'alice %s\nmallory %s\n' "$(openssl passwd -6 'pw')" \
		"$(openssl passwd -1 'pw')" > "$M/sasl"
	run pmap build "$M/sasl"
	[ "$status" -eq 0 ]
	suite_conf smtpd_sasl_users "hash:$M/sasl"
	suite_start
	wait_for_log "fatal: smtpd_sasl_users hash:$M/sasl: user \"mallory\": MD5-crypt \(\\\$1\\\$\) is a weak password hash"
}
