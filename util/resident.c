/*
 * resident.c - drop the page-table entries of a process's clean
 * read-only file mappings once its start-up is done (resident.h).
 *
 * Why (issue 20): RSS counts every page mapped in a process, and the
 * kernel maps file pages 64 KiB around each fault, so a process's RSS
 * holds most of the text its start-up touched (the config parser, the
 * loader's work, Landlock and seccomp set-up) whether or not it runs it
 * again. Which mappings: read-only, private, backed by a file, and
 * without a page of their own (smaps' Anonymous: 0 kB); MADV_DONTNEED
 * there only unmaps page-cache pages, which the next access maps back
 * as they were. A mapping with a private page (relocated data, RELRO)
 * is left alone: dropping it would undo the relocations.
 *
 * Trusts the kernel's /proc/self/smaps.
 */
#include <stdbool.h>
#include <stdio.h>
#include <sys/mman.h>

#include "resident.h"

/*
 * A library's clean segments (headers, text, constants) and the
 * program's own lie next to each other: one madvise() for each run of
 * adjacent ones, not one per mapping, since every call ends in a TLB
 * flush (an interrupt to the other CPUs the process has run on).
 */
struct drop_run {
	unsigned long start, end;	/* end == start: nothing pending */
};

static void drop_add(struct drop_run *run, unsigned long start,
    unsigned long end)
{
	if (run->end != run->start && run->end == start) {
		run->end = end;
		return;
	}
	if (run->end != run->start)
		madvise((void *)run->start, run->end - run->start,
		    MADV_DONTNEED);
	run->start = start;
	run->end = end;
}

void resident_drop_startup_pages(void)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	/* stdio reads /proc 1 KiB at a time (its st_blksize): smaps is
	 * some 40 KiB, a read() each. On the stack, which start-up has
	 * already made resident deeper than this. */
	char readbuf[8192];
	char line[512];
	unsigned long start = 0, end = 0, kb;
	bool clean_file_ro = false;
	struct drop_run run = { 0, 0 };

	if (f == NULL)
		return;
	setvbuf(f, readbuf, _IOFBF, sizeof(readbuf));
	while (fgets(line, sizeof(line), f) != NULL) {
		char perms[5];
		unsigned long s, e;
		int path = 0;
		/* A mapping's first line (a field's, "Anonymous:", would
		 * begin as hex: hence s and e, kept only on a whole match). */
		if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &s, &e, perms,
		    &path) == 3 && path > 0) {
			start = s;
			end = e;
			clean_file_ro = perms[1] == '-' && perms[3] == 'p' &&
			    line[path] == '/';
			continue;
		}
		if (clean_file_ro && sscanf(line, "Anonymous: %lu kB",
		    &kb) == 1) {
			if (kb == 0)
				drop_add(&run, start, end);
			clean_file_ro = false;
		}
	}
	fclose(f);
	drop_add(&run, 0, 0);	/* the last run */
}
