/*
 * print_migrations.c
 *    180_migrations.t's window on proxy/migrate/: what pgnear computes,
 *    so that the test writes history rows by hand with pgnear's own table
 *    text and checksums instead of copies of them.
 *
 *      print_migrations table         the CREATE TABLE of the history
 *      print_migrations steps DIR     "version|name|checksum|statements" a step
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "proxy/migrate/history.h"
#include "proxy/migrate/step_file.h"

static int print_steps(const char *dir)
{
    struct migrate_steps steps;
    char err[512];
    if (migrate_steps_load(dir, &steps, err, sizeof(err)) != 0) {
        fprintf(stderr, "print_migrations: %s\n", err);
        migrate_steps_free(&steps);
        return 1;
    }
    for (size_t i = 0; i < steps.count; i++) {
        const struct migrate_step *s = &steps.steps[i];
        printf("%" PRId64 "|%s|%s|%zu\n", s->version, s->name, s->up.checksum, s->up.sql.count);
    }
    migrate_steps_free(&steps);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "table") == 0) {
        printf("%s\n", migrate_history_create_sql);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "steps") == 0)
        return print_steps(argv[2]);
    fprintf(stderr, "usage: print_migrations table | steps DIR\n");
    return 2;
}
