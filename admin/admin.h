/*
 * admin.h - subcommands of the postern administration command.
 *
 * admin/postern.c holds the command table; each group of subcommands lives
 * in its own admin/postern_*.c and exposes one entry point here, called
 * with argv[0] being the subcommand's name ("queue", "map") and the config
 * already loaded into the global cfg.
 *
 * Names: what admin/ exports carries admin_, the folder's name, not
 * postern_: the same objects are linked into sendmail too (the Makefile's
 * ADMIN_SHARED), and admin_ reads as "the admin layer" from either
 * program, as queue_ or map_ name their modules in mail/.
 */
#ifndef POSTERN_ADMIN_H
#define POSTERN_ADMIN_H

#include <stdio.h>
#include <time.h>

#include "ipc.h"

int admin_queue_main(int argc, char **argv);	/* postern_queue.c */
int admin_map_main(int argc, char **argv);	/* postern_map.c */
int admin_dkim_main(int argc, char **argv);	/* postern_dkim.c */
int admin_spf_main(int argc, char **argv);	/* postern_spf.c */
int admin_check_main(int argc, char **argv);	/* postern_check.c */
int admin_config_main(int argc, char **argv);	/* postern_config.c */
int admin_top_main(int argc, char **argv);	/* postern_top.c */
int admin_tls_main(int argc, char **argv);	/* postern_tls.c */

/*
 * postern_audit.c: an administrator's action on message id, found in
 * queue, into the mail log with who did it (action: "removed", "placed
 * on hold", "released from hold", "requeued"). admin_audit_close() ends
 * the connection to qmgr the calls share.
 */
void admin_audit(const char *id, const char *action, const char *queue);
void admin_audit_close(void);

/*
 * postern_qtools.c: listing entries (type=entry, mail/qlist.h) as one
 * JSON object a line, postqueue -j's fields; and the qshape table of
 * pending recipients by domain and age (minutes: 5 10 20 ... 1280 1280+),
 * the busiest domains first (max_rows 0: all).
 */
void admin_qjson_entry(FILE *out, const struct ipc_msg *m);
struct admin_qshape;
struct admin_qshape *admin_qshape_new(time_t now);
void admin_qshape_add(struct admin_qshape *s, const struct ipc_msg *m);
void admin_qshape_print(struct admin_qshape *s, FILE *out, size_t max_rows);
void admin_qshape_free(struct admin_qshape *s);

#endif
