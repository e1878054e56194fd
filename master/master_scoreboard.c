/*
 * master_scoreboard.c - master's side of the accept services'
 * scoreboards (mail/daemon_scoreboard.h): one sealed memfd per service
 * and generation, made with the service table (before the service's
 * first process or zygote), passed to each process master starts, read
 * whenever master wakes. It replaces the BUSY and IDLE records of the
 * status pipe, which cost a wake-up of master each, twice per
 * connection; workers still write one when master must act at once.
 *
 * Trusts: nothing in the page but as a hint. Master walks its own child
 * list, looks each child's slot up by the pid it knows (the slot index
 * it remembers is checked against that pid before use), and counts each
 * child once: whatever the workers write, nidle stays within
 * [0, nprocs] and no value read is used as an index or a size.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon_scoreboard.h"
#include "log.h"
#include "master.h"

/* Master's descriptors live above the ones it hands to children. */
#define SCOREBOARD_FD_FLOOR 64

void master_scoreboard_create(struct master_service *s)
{
	s->sb = NULL;
	s->sb_fd = -1;
	s->sb_slots = 0;
	if (!s->enabled || s->single || s->max_procs <= 0)
		return;
	size_t nslots = (size_t)s->max_procs;
	if (nslots > SCOREBOARD_MAX_SLOTS)
		nslots = SCOREBOARD_MAX_SLOTS;
	size_t size = daemon_scoreboard_size(nslots);
	int fd = memfd_create("postern-scoreboard", MFD_CLOEXEC |
	    MFD_ALLOW_SEALING);
	void *p = MAP_FAILED;
	/* Sealed at its size: a worker that shrank it would make master
	 * die of SIGBUS reading it. */
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
	    F_SEAL_SEAL) < 0 ||
	    (p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
	    0)) == MAP_FAILED) {
		log_warning("service %s: scoreboard: %m: its processes report "
		    "every connection", s->name);
		if (fd >= 0)
			close(fd);
		return;
	}
	int high = fcntl(fd, F_DUPFD_CLOEXEC, SCOREBOARD_FD_FLOOR);
	if (high >= 0) {
		close(fd);
		fd = high;
	}
	s->sb = p;
	s->sb_fd = fd;
	s->sb_slots = nslots;
	s->sb->head.magic = SCOREBOARD_MAGIC;
	atomic_store(&s->sb->head.min_idle, s->min_idle);
}

/* Old processes keep their own mapping of a retired service's page.
 * Only a page made here is closed: a service the table left before
 * create (zeroed: sb_fd 0) has none. */
void master_scoreboard_close(struct master_service *s)
{
	if (s->sb != NULL) {
		munmap(s->sb, daemon_scoreboard_size(s->sb_slots));
		close(s->sb_fd);
	}
	s->sb = NULL;
	s->sb_fd = -1;
	s->sb_slots = 0;
}

int master_scoreboard_pass(const struct master_service *s, int next_fd)
{
	unsetenv(SCOREBOARD_ENV);
	if (s->sb == NULL || dup2(s->sb_fd, next_fd) < 0)
		return next_fd;
	char num[16];
	snprintf(num, sizeof(num), "%d", next_fd);
	setenv(SCOREBOARD_ENV, num, 1);
	return next_fd + 1;
}

/* The child's slot, or NULL: found by the pid master knows. */
static struct scoreboard_slot *slot_of(struct master_child *c)
{
	struct master_service *s = c->svc;
	if (s == NULL || s->sb == NULL || c->zygote)
		return NULL;
	if (c->sb_slot < s->sb_slots &&
	    atomic_load_explicit(&s->sb->slot[c->sb_slot].pid,
	    memory_order_relaxed) == (int32_t)c->pid)
		return &s->sb->slot[c->sb_slot];
	for (size_t i = 0; i < s->sb_slots; i++) {
		if (atomic_load_explicit(&s->sb->slot[i].pid,
		    memory_order_relaxed) == (int32_t)c->pid) {
			c->sb_slot = i;
			return &s->sb->slot[i];
		}
	}
	return NULL;
}

void master_scoreboard_sync(struct master_service *services, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		services[i].nidle = 0;
		services[i].sb_starting = 0;
	}
	for (struct master_child *c = master_children(); c; c = c->next) {
		struct master_service *s = c->svc;
		if (s == NULL || c->zygote)
			continue;
		struct scoreboard_slot *slot = slot_of(c);
		/* A slot is taken once the worker is ready; any state but
		 * busy is idle. A child without one keeps what its status
		 * records said. */
		if (slot != NULL)
			c->state = atomic_load(&slot->state) ==
			    SCOREBOARD_BUSY ? DAEMON_BUSY : DAEMON_IDLE;
		if (c->state != DAEMON_BUSY)
			s->nidle++;
		if (c->state == 0)
			s->sb_starting++;
	}
	for (size_t i = 0; i < count; i++) {
		struct master_service *s = &services[i];
		if (s->sb != NULL) {
			atomic_store_explicit(&s->sb->head.starting,
			    s->sb_starting, memory_order_relaxed);
			atomic_store_explicit(&s->sb->head.min_idle,
			    s->min_idle, memory_order_relaxed);
		}
		int busy = s->nprocs - s->nidle;
		if (busy != s->sb_logged_busy || s->nprocs !=
		    s->sb_logged_procs) {
			log_debug("service %s: %d processes, %d busy", s->name,
			    s->nprocs, busy);
			s->sb_logged_busy = busy;
			s->sb_logged_procs = s->nprocs;
		}
	}
}

bool master_scoreboard_want_idle(struct master_service *s, bool want)
{
	if (s->sb == NULL)
		return false;
	/* Sequentially consistent, as the worker's store of its state and
	 * load of this flag: a worker that went idle before this store is
	 * seen by the sync that follows, one after it sees the flag. */
	int32_t was = atomic_exchange(&s->sb->head.want_idle, want ? 1 : 0);
	return want && !was;
}

void master_scoreboard_release(struct master_child *c)
{
	struct scoreboard_slot *slot = slot_of(c);
	if (slot == NULL)
		return;
	atomic_store(&slot->state, SCOREBOARD_FREE);
	atomic_store(&slot->pid, 0);
}
