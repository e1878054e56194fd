/*
 * priv.h - dropping root for good.
 *
 * Only master keeps root. Every other program looks up its user, opens
 * what needs privilege, then calls priv_drop(). When not started as root
 * there is nothing to drop: the program runs as the invoking user
 * (developer and test mode) and logs that once.
 */
#ifndef POSTERN_PRIV_H
#define POSTERN_PRIV_H

#include <stdbool.h>
#include <sys/types.h>

bool priv_is_root(void);
/* Look up a user name; false if unknown. */
bool priv_lookup_user(const char *user, uid_t *uid, gid_t *gid);
bool priv_lookup_group(const char *group, gid_t *gid);
/*
 * Drop to user for good: no supplementary group, setresgid and setresuid
 * to the user's group and uid, each checked, then verify that every id
 * changed and root cannot be regained, and set PR_SET_NO_NEW_PRIVS. Not
 * root: only the last step.
 */
void priv_drop(const char *user);
/* PR_SET_NO_NEW_PRIVS, or fatal. */
void priv_no_new_privs(void);

#endif
