/*
 * resident.h - what a process keeps mapped of its code (issue 20).
 */
#ifndef POSTERN_RESIDENT_H
#define POSTERN_RESIDENT_H

/*
 * Unmap (MADV_DONTNEED) every page of this process's clean read-only
 * file mappings, those without a private page: its own and its
 * libraries' text and constants. The code it runs next is mapped back
 * from the page cache as it runs; nothing is read from disk while the
 * page cache holds the files. For a process that has finished its
 * start-up: its RSS then counts the code it serves with, not the code it
 * started with. Needs /proc/self/smaps (read before confinement, or with
 * /proc readable); does nothing without it.
 */
void resident_drop_startup_pages(void);

#endif
