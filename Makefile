# postern - top-level GNU Makefile.
#
# make              build every program into build/
# make check        unit tests and end-to-end tests; ends "N passed, N failed"
# make check-sanitize   the same, built with AddressSanitizer and UBSan
# make run          start postern in the foreground from ./run/ (dev config)
# make bench        benchmarks against Postfix (bench/)
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

# Daemons: one program per folder, built only once the folder has code.
DAEMONS := $(foreach d,master smtpd qmgr deliver lmtpd,$(if $(wildcard $(d)/*.c),$(d)))
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
# tests/helpers/suite.bash checks; tests/lsan.supp names third-party leaks.
check-sanitize:
	LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp):print_suppressions=0 \
		$(MAKE) BUILD=build-san SANITIZE=address,undefined check

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

clean:
	rm -rf build build-san

.PHONY: all check check-sanitize run bench install clean

-include $(shell find $(BUILD)/obj $(BUILD)/tests -name '*.d' 2>/dev/null)
