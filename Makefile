# postern - top-level GNU Makefile.
#
# make              build every program into build/
# make check        unit tests and end-to-end tests; ends "N passed, N failed"
# make check-sanitize   the same, built with AddressSanitizer and UBSan
# make run          start postern in the foreground from ./run/ (dev config)
# make bench        benchmarks against Postfix (bench/)
# make fuzz         build the libFuzzer harnesses (tests/fuzz/) with clang
# make fuzz-smoke   run each harness briefly over its corpus (check-sanitize)
# make install      install under DESTDIR/PREFIX
#
# Each program folder builds one program from all its .c files; admin/
# builds postern and sendmail (mailq and newaliases are links to sendmail).
# The shared code is in two layers, each a static library linked into
# every program: util/ (generic plumbing: strings, memory, bounded I/O,
# logging, sockets, privileges, typed IPC; no mail knowledge) becomes
# build/libutil.a, mail/ (config, the daemon skeleton, addresses, ESMTP,
# the queue, maps, DNS, TLS) build/libmail.a. util/ is compiled with only
# -Iutil, so a util/ file that includes a mail/ header does not build
# (doc/HACKING.md, "Layers").

BUILD ?= build
CC ?= gcc
PREFIX ?= /usr
SBINDIR ?= $(PREFIX)/sbin
LIBEXECDIR ?= $(PREFIX)/lib/postern
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc

HARDEN = -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fPIE
WARN = -Wall -Wextra -Wformat=2 -Wshadow -Wpointer-arith -Wstrict-prototypes \
	-Wmissing-prototypes -Wno-unused-parameter -Werror
OPT ?= -O2 -g
SANITIZE ?=
ifneq ($(SANITIZE),)
HARDEN = -fstack-protector-strong -fPIE
OPT = -O1 -g -fno-omit-frame-pointer -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
endif
CPPFLAGS += -D_GNU_SOURCE
CFLAGS += -std=c17 $(OPT) $(WARN) $(HARDEN) -MMD -MP
LDFLAGS += -pie -Wl,-z,relro,-z,now $(if $(SANITIZE),-fsanitize=$(SANITIZE))
LDLIBS += -lssl -lcrypto -lbsd -ldb -lresolv -lcrypt
# IDNA 2008 for domain names (mail/idna.c)
LDLIBS += -lidn2

# Daemons: one program per folder, built only once the folder has code.
DAEMONS := $(foreach d,master smtpd qmgr deliver lmtpd local anvil,$(if $(wildcard $(d)/*.c),$(d)))
# screen: the first contact in front of smtpd (issue 17)
DAEMONS += $(if $(wildcard screen/*.c),screen)
# pickup: maildrop/ into incoming/, through non_smtpd_milters (issue 14).
DAEMONS += $(if $(wildcard pickup/*.c),pickup)
UTIL_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard util/*.c))
MAIL_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard mail/*.c))
# Order matters to the linker: mail/ uses util/.
LIB := $(BUILD)/libmail.a $(BUILD)/libutil.a

# admin/sendmail*.c build sendmail; the other admin/*.c are shared.
ADMIN_SHARED := $(filter-out admin/postern.c admin/sendmail%.c,$(wildcard admin/*.c))
ADMIN_SHARED_OBJ := $(ADMIN_SHARED:%.c=$(BUILD)/obj/%.o)
SENDMAIL_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard admin/sendmail*.c))

PROGRAMS := $(addprefix $(BUILD)/,$(DAEMONS) $(if $(wildcard admin/postern.c),postern) $(if $(wildcard admin/sendmail.c),sendmail))
LINKS := $(if $(wildcard admin/sendmail.c),$(BUILD)/mailq $(BUILD)/newaliases)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

all: $(PROGRAMS) $(LINKS) $(UNIT_BIN)

# The include path of each layer: util/ sees only itself.
$(BUILD)/obj/util/%.o: INCLUDES = -Iutil
INCLUDES ?= -Iutil -Imail

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(INCLUDES) $(CFLAGS) -c $< -o $@

$(BUILD)/libutil.a: $(UTIL_OBJ)
$(BUILD)/libmail.a: $(MAIL_OBJ)
$(LIB):
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

define daemon_rule
$(BUILD)/$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard $(1)/*.c)) $(LIB)
	$$(CC) $$(LDFLAGS) -o $$@ $$(filter %.o,$$^) $(LIB) $$(LDLIBS)
endef
$(foreach d,$(DAEMONS),$(eval $(call daemon_rule,$(d))))

$(BUILD)/postern: $(BUILD)/obj/admin/postern.o $(ADMIN_SHARED_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS)

$(BUILD)/sendmail: $(SENDMAIL_OBJ) $(ADMIN_SHARED_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS)

$(BUILD)/mailq $(BUILD)/newaliases: $(BUILD)/sendmail
	ln -sf sendmail $@

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Iutil -Imail -Itests/unit $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

check: all
	BUILD=$(abspath $(BUILD)) tests/run-tests

# Sanitizer reports inside daemons land in the test instance's log, which
# tests/helpers/suite.bash checks; tests/lsan.supp names third-party leaks
# (tests/run-tests copies it where confined daemons can read it).
check-sanitize:
	$(MAKE) BUILD=build-san SANITIZE=address,undefined check
	$(MAKE) BUILD=build-san fuzz-smoke

# Fuzzing: every tests/fuzz/fuzz_NAME.c becomes $(BUILD)/fuzz/fuzz_NAME,
# built by clang from the same sources with coverage instrumentation
# (-fsanitize=fuzzer-no-link) and ASan/UBSan, never from the gcc objects.
# util/ and mail/ become two instrumented archives as in the normal build;
# FUZZ_EXTRA_NAME names the program sources a harness tests. fuzz-smoke
# runs each harness for FUZZ_TIME seconds over a scratch copy of its
# corpus (tests/fuzz/corpus_NAME, with NAME.dict if there is one) and
# fails on the first crash, leak, timeout or sanitizer report; the input
# that did it is left in $(BUILD)/fuzz/ (tests/fuzz/README).
FUZZ_CC ?= clang
FUZZ_TIME ?= 20
FUZZ_SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=undefined
# clang's -Wformat=2 also flags vsnprintf in a va_list helper without a
# format attribute, which gcc (the build that gates) accepts.
FUZZ_CFLAGS = -std=c17 -g -O1 -fno-omit-frame-pointer $(FUZZ_SANITIZE) \
	$(WARN) -Wno-format-nonliteral -MMD -MP
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_LIB := $(BUILD)/fuzz/libmail.a $(BUILD)/fuzz/libutil.a
FUZZ_EXTRA_mime := deliver/deliver_mime.c
FUZZ_EXTRA_auth := smtpd/smtpd_sasl.c

$(BUILD)/fuzz/obj/util/%.o: INCLUDES = -Iutil
$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(INCLUDES) $(FUZZ_CFLAGS) \
		-fsanitize=fuzzer-no-link -c $< -o $@

$(BUILD)/fuzz/libutil.a: $(UTIL_OBJ:$(BUILD)/obj/%=$(BUILD)/fuzz/obj/%)
$(BUILD)/fuzz/libmail.a: $(MAIL_OBJ:$(BUILD)/obj/%=$(BUILD)/fuzz/obj/%)
$(FUZZ_LIB):
	rm -f $@
	ar rcs $@ $^

define fuzz_rule
$(BUILD)/fuzz/fuzz_$(1): tests/fuzz/fuzz_$(1).c $(patsubst %.c,$(BUILD)/fuzz/obj/%.o,$(FUZZ_EXTRA_$(1))) $(FUZZ_LIB)
	$$(FUZZ_CC) $$(CPPFLAGS) -Iutil -Imail $(addprefix -I,$(dir $(FUZZ_EXTRA_$(1)))) \
		$$(FUZZ_CFLAGS) -fsanitize=fuzzer -o $$@ $$< \
		$$(filter %.o,$$^) $$(FUZZ_LIB) $$(LDLIBS)
endef
$(foreach f,$(FUZZ_NAMES),$(eval $(call fuzz_rule,$(f))))

fuzz: $(FUZZ_BIN)

fuzz-smoke: fuzz
	@for f in $(FUZZ_NAMES); do \
		work=$(BUILD)/fuzz/work_$$f; rm -rf $$work; mkdir -p $$work; \
		dict=; [ -f tests/fuzz/$$f.dict ] && dict=-dict=tests/fuzz/$$f.dict; \
		echo "fuzz-smoke: $$f ($(FUZZ_TIME) s)"; \
		$(BUILD)/fuzz/fuzz_$$f -max_total_time=$(FUZZ_TIME) -timeout=10 \
			-rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix=$(BUILD)/fuzz/$$f- $$dict \
			$$work tests/fuzz/corpus_$$f > $(BUILD)/fuzz/$$f.log 2>&1 || { \
			tail -n 40 $(BUILD)/fuzz/$$f.log; \
			echo "fuzz-smoke: $$f FAILED (log: $(BUILD)/fuzz/$$f.log)"; \
			exit 1; }; \
		grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' \
			$(BUILD)/fuzz/$$f.log | tr '\n' ' '; echo; \
	done

run: all
	tests/helpers/make-run-config run
	$(BUILD)/postern -c $$(cd run && pwd -P) start -f

bench: all
	bench/run

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)/postern
	install -m 0755 $(BUILD)/postern $(DESTDIR)$(SBINDIR)/postern
	for p in $(DAEMONS); do install -m 0755 $(BUILD)/$$p $(DESTDIR)$(LIBEXECDIR)/$$p; done
	if [ -f $(BUILD)/sendmail ]; then \
		install -m 0755 $(BUILD)/sendmail $(DESTDIR)$(SBINDIR)/sendmail; \
		ln -sf sendmail $(DESTDIR)$(SBINDIR)/mailq; \
		ln -sf sendmail $(DESTDIR)$(SBINDIR)/newaliases; \
	fi
	for m in man/*.[158]; do [ -f "$$m" ] || continue; \
		s=$${m##*.}; install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done
	# bash completion for postern (admin/postern.bash-completion)
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 0644 admin/postern.bash-completion \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/postern
	# smtpd's door zygote, which each smtpd zygote execs (issue 20)
	install -m 0755 $(BUILD)/smtpd-door $(DESTDIR)$(LIBEXECDIR)/smtpd-door
	# the MTA-STS policy fetch, which deliver runs (issue 20, fetch)
	install -m 0755 $(BUILD)/mtasts-fetch $(DESTDIR)$(LIBEXECDIR)/mtasts-fetch

clean:
	rm -rf build build-san

.PHONY: all check check-sanitize run bench install clean fuzz fuzz-smoke

-include $(shell find $(BUILD)/obj $(BUILD)/tests $(BUILD)/fuzz -name '*.d' 2>/dev/null)

# MTA-STS (issue 16): the HTTPS fetch of a policy is the program
# mtasts-fetch (mtasts-fetch/), which deliver runs when a fetch is due
# (issue 20): it alone links libcurl, and what libcurl brings (gnutls,
# krb5, ldap, ssh...) is mapped in no deliver process.
FETCH_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard mtasts-fetch/*.c))
$(BUILD)/mtasts-fetch: $(FETCH_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(FETCH_OBJ) $(LIB) -lcurl -lbsd
all: $(BUILD)/mtasts-fetch

# What a process costs (issue 20, procs): each program links only the
# libraries its objects use. One list above, and --as-needed drops from
# each program what none of its objects calls (Debian's gcc passes it by
# default, but not in sanitizer builds nor on every toolchain), so smtpd
# loads no libcurl and master no libdb or libidn2 (tests/procs.bats
# checks the NEEDED lists). -O1 lets the linker optimise hash tables.
# Full RELRO stays (-z relro -z now, Debian's hardening): binding our own
# PLT at start costs about 250 symbol lookups, 4% of the 5 million
# instructions an smtpd start spends in the loader (the rest is the
# relocation of libcrypto and libssl, which are BIND_NOW themselves).
LDFLAGS += -Wl,-O1 -Wl,--as-needed

# smtpd's door (issue 20, rss): its own small program, smtpd-door, which
# each smtpd zygote execs once as its door zygote, which forks a door for
# each worker (issue 20, doorzyg; smtpd/smtpd_door.c built again with
# SMTPD_DOOR_PROGRAM: the door's side and its main). It links only
# what the door runs: util/, the queue writer, the config, the tables of
# smtpd_sasl_users and libcrypt; no OpenSSL, no libresolv (the config's
# DNSBL sites are parsed in mail/dnsbl_parse.c, apart from the lookups
# of mail/dns.c). Linked dynamically like
# every other program: a static door would carry its own copy of glibc,
# whose NSS (the door looks up `user`) loads the system's modules at run
# time and breaks when glibc is upgraded under it, and Debian wants no
# static binaries. The door drops its start-up pages instead
# (util/resident.c), so that libc's code its start-up ran does not stay
# counted in every session's RSS.
DOOR_OBJ := $(BUILD)/obj/smtpd-door/smtpd_door.o $(BUILD)/obj/smtpd/smtpd_auth_door.o
DOOR_LDFLAGS := $(LDFLAGS)
DOOR_LDLIBS := -lbsd -ldb -lcrypt
$(BUILD)/obj/smtpd-door/smtpd_door.o: smtpd/smtpd_door.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DSMTPD_DOOR_PROGRAM $(INCLUDES) $(CFLAGS) -c $< -o $@
$(BUILD)/smtpd-door: $(DOOR_OBJ) $(LIB)
	$(CC) $(DOOR_LDFLAGS) -o $@ $(DOOR_OBJ) $(LIB) $(DOOR_LDLIBS)
all: $(BUILD)/smtpd-door
-include $(BUILD)/obj/smtpd-door/smtpd_door.d
