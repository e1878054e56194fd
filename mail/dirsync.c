/*
 * dirsync.c - group commit of directory fsyncs across processes
 * (dirsync.h). doc/architecture.md, "Where the fsyncs are", has the why.
 *
 * The rule it keeps: a caller returns 0 only after an fsync of its
 * directory that STARTED after the caller's rename had completed, and
 * completed without error. An fsync writes the directory's blocks as they
 * are when it runs, so every rename done before it started is covered.
 *
 * The table: a file of DIRSYNC_SLOTS slots, mapped MAP_SHARED by every
 * process, each slot keyed by a directory's device and inode (a hash
 * picks the slot; another directory on the same slot takes it over only
 * when no fsync runs there). Per slot:
 *   started  generations handed out to leaders, one per fsync (grows
 *            forever, across key changes: never reset)
 *   done     the highest generation whose fsync succeeded
 *   failed   the highest generation whose fsync failed (fail_errno why)
 *   leader   pid of the process whose fsync runs, 0 when none
 *   epoch    even while the key is valid, odd while it changes; a key
 *            change adds 2
 *   waiters  how many sleep on wake (the end of an fsync makes no
 *            futex call when none does)
 *   wake     a futex word, bumped when an fsync ends; a waiter sleeps
 *            on the bit of its target generation (FUTEX_WAIT_BITSET), so
 *            that the end of generation g wakes those it served and one
 *            waiter for g + 1, to lead it, and no one else
 * A caller, after its rename: checks that the slot holds its directory
 * (epoch e, even, the same before and after the key), reads started and
 * needs target = started + 1: any generation handed out from then on
 * belongs to an fsync that starts after the rename. It returns 0 once
 * done >= target and the epoch is still e; it fails once failed >=
 * target (an fsync that covered it failed, its entry may not be on disk);
 * while no leader runs it becomes one (compare-and-swap of leader): takes
 * generation g = ++started (so g >= target), checks the epoch is still e
 * (else its result counts for itself only), fsyncs, publishes done or
 * failed, clears leader and wakes the waiters. Otherwise it sleeps on
 * wake. Why a key change cannot fool anyone: a leader publishes only
 * when the epoch it validated is still current after it took its
 * generation, and every caller of a new key read started after the
 * change, so its target is above any generation taken before it.
 *
 * Trusts: the table is written only by root and by processes that mapped
 * it while root (the file is root's, mode 0600, in run_directory, which
 * only root writes; after the privilege drop no process can open it and
 * the kernel makes setuid processes non-dumpable, so no other process of
 * the daemon's user can write their memory). Even so every value read
 * from it can only make a caller wait (bounded: DIRSYNC_WAIT_MS) or fsync
 * alone, never skip its fsync, except a done counter that such a writer
 * forges: the same writer could as well unlink the mail. Every wait is
 * bounded: a leader killed mid-fsync (leader's pid gone) is replaced
 * within DIRSYNC_SLICE_MS, a stuck one after DIRSYNC_WAIT_MS, and the
 * caller then fsyncs alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dirsync.h"
#include "log.h"

#define DIRSYNC_MAGIC 0x31595344u	/* "DSY1": layout 1 */
#define DIRSYNC_SLOTS 1024
/* How long a caller waits for other processes' fsyncs before its own. */
#define DIRSYNC_WAIT_MS 1000
/* How often a waiter checks that the leader still lives. */
#define DIRSYNC_SLICE_MS 200

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2,
    "the table's atomics must work across processes");

/* One directory's group commit; 64 bytes, a cache line. */
struct dirsync_slot {
	_Atomic uint64_t dev, ino;
	_Atomic uint64_t epoch;
	_Atomic uint64_t started;
	_Atomic uint64_t done;
	_Atomic uint64_t failed;
	_Atomic uint32_t lock;		/* pid changing the key, 0 = none */
	_Atomic uint32_t leader;	/* pid fsyncing, 0 = none */
	_Atomic uint32_t wake;		/* futex word */
	_Atomic uint16_t fail_errno;
	_Atomic uint16_t waiters;	/* asleep on wake, or about to be */
};

/*
 * The file: this header, then the slots. All zeros is a valid empty
 * table (no directory has inode 0), so a new file needs no set-up that
 * two processes could race on. Offsets are fixed (tests read the counts).
 */
struct dirsync_table {
	_Atomic uint32_t magic;
	uint32_t nslots;
	_Atomic uint64_t commits, fsyncs, covered, alone;
	uint64_t spare[3];
	struct dirsync_slot slot[DIRSYNC_SLOTS];
};

_Static_assert(sizeof(struct dirsync_slot) == 64, "slot layout");
_Static_assert(offsetof(struct dirsync_table, slot) == 64, "table layout");

static struct dirsync_table *table;
/* Our pid, asked once: glibc no longer caches it; a process that forks
 * after attaching calls dirsync_forked() in the child. */
static uint32_t dirsync_pid;
/* The table's pages this process has mapped (slot_page_map), at most
 * one entry per 4 KiB. */
static bool page_mapped[(sizeof(struct dirsync_table) + 4095) / 4096];
static size_t page_size;

void dirsync_forked(void)
{
	dirsync_pid = (uint32_t)getpid();
	/* A child does not inherit the entries of a shared mapping. */
	memset(page_mapped, 0, sizeof(page_mapped));
}

/*
 * Map the page of slot s into this process by a write fault, once
 * (issue 20): its first access being a read, the kernel would map the
 * 64 KiB around it (fault-around, for a read fault on a file), that is
 * the whole table in every smtpd door and lmtpd, 60 KiB of RSS each,
 * where each uses one or two slots. Every commit writes its slot anyway.
 * A kernel without MADV_POPULATE_WRITE (before 5.14) answers EINVAL and
 * the first read maps the page as before.
 */
static void slot_page_map(const struct dirsync_slot *s)
{
	size_t page = (size_t)((const char *)s - (const char *)table) /
	    page_size;
	if (page >= sizeof(page_mapped) || page_mapped[page])
		return;
	page_mapped[page] = true;
	(void)madvise((char *)table + page * page_size, page_size,
	    MADV_POPULATE_WRITE);
}

bool dirsync_attach(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0) {
		log_warning("dirsync: open %s: %m: each directory fsync alone",
		    path);
		return false;
	}
	/* Only a file of our own that nobody else may write is trusted. */
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 077) != 0 ||
	    (st.st_size != 0 && st.st_size != (off_t)sizeof(*table))) {
		log_warning("dirsync: %s is not a private table of the right "
		    "size: each directory fsync alone", path);
		close(fd);
		return false;
	}
	/* Growing from 0 to the size is the same for every racer. */
	if (st.st_size == 0 && ftruncate(fd, sizeof(*table)) != 0) {
		log_warning("dirsync: size %s: %m", path);
		close(fd);
		return false;
	}
	void *map = mmap(NULL, sizeof(*table), PROT_READ | PROT_WRITE,
	    MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		log_warning("dirsync: map %s: %m", path);
		return false;
	}
	struct dirsync_table *t = map;
	uint32_t zero = 0;
	if (!atomic_compare_exchange_strong(&t->magic, &zero, DIRSYNC_MAGIC) &&
	    zero != DIRSYNC_MAGIC) {
		log_warning("dirsync: %s has another layout", path);
		munmap(map, sizeof(*table));
		return false;
	}
	t->nslots = DIRSYNC_SLOTS;
	dirsync_pid = (uint32_t)getpid();
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	memset(page_mapped, 0, sizeof(page_mapped));
	table = t;
	return true;
}

bool dirsync_counts(struct dirsync_counts *out)
{
	if (table == NULL)
		return false;
	out->commits = atomic_load(&table->commits);
	out->fsyncs = atomic_load(&table->fsyncs);
	out->covered = atomic_load(&table->covered);
	out->alone = atomic_load(&table->alone);
	return true;
}

/* The futex bit of waiters for generation gen. */
static uint32_t gen_bit(uint64_t gen)
{
	return 1u << (gen & 31);
}

/*
 * Sleep on the slot's wake word while it is seen, until deadline (an
 * absolute CLOCK_MONOTONIC time: FUTEX_WAIT_BITSET takes one), or until
 * a wake for the bit of our target generation. Not FUTEX_PRIVATE_FLAG:
 * the word is shared between processes.
 */
static long futex_wait_gen(_Atomic uint32_t *word, uint32_t seen,
    uint64_t target, const struct timespec *deadline)
{
	return syscall(SYS_futex, word, FUTEX_WAIT_BITSET, seen, deadline,
	    NULL, gen_bit(target));
}

/* How many it woke, or -1. */
static long futex_wake_gen(_Atomic uint32_t *word, int count, uint64_t gen)
{
	return syscall(SYS_futex, word, FUTEX_WAKE_BITSET, count, NULL, NULL,
	    gen_bit(gen));
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A pid that no process has: its holder was killed. */
static bool pid_gone(uint32_t pid)
{
	return pid != 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* The fsync itself, counted. */
static int fsync_dir(int dirfd)
{
	int e = fsync(dirfd) == 0 ? 0 : errno;

	if (table != NULL)
		atomic_fetch_add(&table->fsyncs, 1);
	return e;
}

static int fsync_alone(int dirfd)
{
	if (table != NULL)
		atomic_fetch_add(&table->alone, 1);
	return fsync_dir(dirfd);
}

static void raise_to(_Atomic uint64_t *v, uint64_t to)
{
	uint64_t cur = atomic_load(v);
	while (cur < to && !atomic_compare_exchange_weak(v, &cur, to))
		;
}

static size_t slot_index(const struct stat *st)
{
	uint64_t h = (uint64_t)st->st_dev * 0x9e3779b97f4a7c15ull ^
	    (uint64_t)st->st_ino * 0xc2b2ae3d27d4eb4full;
	return (size_t)(h >> 54) % DIRSYNC_SLOTS;
}

/* The slot's key, read consistently: its even epoch, or 1 (odd) when it
 * is changing or is another directory's. */
static uint64_t slot_epoch_for(struct dirsync_slot *s, const struct stat *st)
{
	uint64_t e = atomic_load(&s->epoch);
	if (e & 1)
		return 1;
	if (atomic_load(&s->dev) != (uint64_t)st->st_dev ||
	    atomic_load(&s->ino) != (uint64_t)st->st_ino ||
	    atomic_load(&s->epoch) != e)
		return 1;
	return e;
}

/*
 * Give the slot to our directory: under its lock (the pid of the
 * changer; a dead changer's lock is taken over, a live one's never, so
 * two processes never write the key at once). The epoch is odd while the
 * key is written. Returns the new even epoch, or 1 when the slot is not
 * ours to take.
 */
static uint64_t slot_take(struct dirsync_slot *s, const struct stat *st,
    uint32_t me)
{
	uint32_t holder = 0;

	if (atomic_load(&s->leader) != 0)
		return 1;	/* another directory's fsync runs there */
	if (!atomic_compare_exchange_strong(&s->lock, &holder, me) &&
	    !(pid_gone(holder) &&
	    atomic_compare_exchange_strong(&s->lock, &holder, me)))
		return 1;
	uint64_t e = atomic_load(&s->epoch) | 1;
	atomic_store(&s->epoch, e);
	atomic_store(&s->dev, (uint64_t)st->st_dev);
	atomic_store(&s->ino, (uint64_t)st->st_ino);
	atomic_store(&s->epoch, e + 1);
	atomic_store(&s->lock, 0);
	return e + 1;
}

/* Leader: one fsync for everyone whose target is at most our generation. */
static int slot_lead(struct dirsync_slot *s, uint64_t epoch, int dirfd,
    uint32_t me)
{
	uint64_t gen = atomic_fetch_add(&s->started, 1) + 1;
	bool same = atomic_load(&s->epoch) == epoch;
	int e = fsync_dir(dirfd);

	if (same) {
		if (e == 0) {
			raise_to(&s->done, gen);
		} else {
			atomic_store(&s->fail_errno, (uint16_t)e);
			raise_to(&s->failed, gen);
		}
	}
	uint32_t mine = me;
	atomic_compare_exchange_strong(&s->leader, &mine, 0);
	atomic_fetch_add(&s->wake, 1);
	/* Those this fsync served, then one of those who need the next,
	 * to lead it (any other caller may win that race: no harm). A
	 * waiter counts itself before its futex wait, which returns at
	 * once when wake moved past what it saw: none is missed. Every
	 * sleeper the first wake finds was counted in asleep, so when it
	 * woke them all none waits for gen + 1 (one that counts itself
	 * later saw wake move, or leader cleared, and does not sleep on
	 * this fsync). */
	uint32_t asleep = atomic_load(&s->waiters);
	if (asleep != 0) {
		long woken = futex_wake_gen(&s->wake, INT_MAX, gen);
		if (woken < 0 || (uint32_t)woken < asleep)
			futex_wake_gen(&s->wake, 1, gen + 1);
	}
	return e;
}

/* A commit through the table of dirfd, whose stat is st. */
static int commit_shared(int dirfd, const struct stat *st)
{
	uint32_t me = dirsync_pid;
	struct dirsync_slot *s = &table->slot[slot_index(st)];
	slot_page_map(s);
	uint64_t epoch = slot_epoch_for(s, st);
	if (epoch == 1)
		epoch = slot_take(s, st, me);
	if (epoch == 1)
		return fsync_alone(dirfd);
	/*
	 * Generations handed out from here on are fsyncs after our rename.
	 * A read-modify-write, not a load: the leader's increment then
	 * reads from it, so our rename happens before its fsync (C11
	 * release sequence), not merely before in time.
	 */
	uint64_t target = atomic_fetch_add(&s->started, 0) + 1;
	if (atomic_load(&s->epoch) != epoch)
		return fsync_alone(dirfd);

	int64_t deadline = now_ms() + DIRSYNC_WAIT_MS;
	for (;;) {
		uint32_t seen = atomic_load(&s->wake);
		/* A failure first: a later success may not have written
		 * blocks that the failed writeback dropped. */
		if (atomic_load(&s->failed) >= target) {
			int e = (int)atomic_load(&s->fail_errno);
			if (atomic_load(&s->epoch) != epoch)
				return fsync_alone(dirfd);
			return e > 0 ? e : EIO;
		}
		if (atomic_load(&s->done) >= target) {
			if (atomic_load(&s->epoch) != epoch)
				return fsync_alone(dirfd);
			atomic_fetch_add(&table->covered, 1);
			return 0;
		}
		uint32_t leader = atomic_load(&s->leader);
		if (leader == 0) {
			if (atomic_compare_exchange_strong(&s->leader, &leader,
			    me))
				return slot_lead(s, epoch, dirfd, me);
			continue;
		}
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			/* A stuck leader: stop others from waiting on it. */
			atomic_compare_exchange_strong(&s->leader, &leader, 0);
			return fsync_alone(dirfd);
		}
		if (left > DIRSYNC_SLICE_MS)
			left = DIRSYNC_SLICE_MS;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)left * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		/* Counted before the kernel compares wake with seen: a
		 * leader that bumped wake since finds us, or we return. */
		atomic_fetch_add(&s->waiters, 1);
		long r = futex_wait_gen(&s->wake, seen, target, &ts);
		int why = errno;
		atomic_fetch_sub(&s->waiters, 1);
		if (r != 0 && why == ETIMEDOUT && pid_gone(leader)) {
			/* Killed mid-fsync: its generation never completes. */
			atomic_compare_exchange_strong(&s->leader, &leader, 0);
		}
	}
}

int dirsync_commit_fd(int dirfd)
{
	struct stat st;

	if (table != NULL && fstat(dirfd, &st) != 0) {
		int e = errno;
		atomic_fetch_add(&table->commits, 1);
		return e;
	}
	/* Without a table st is not looked at. */
	return dirsync_commit_fd_known(dirfd, table != NULL ? &st : NULL);
}

int dirsync_commit_fd_known(int dirfd, const struct stat *st)
{
	if (table == NULL)
		return fsync_dir(dirfd);
	atomic_fetch_add(&table->commits, 1);
	return commit_shared(dirfd, st);
}
