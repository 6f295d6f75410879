/* sql/migrations.h - the numbered migrations of sql/, compiled into the
 * programs by sql/embed.sh so that `verona migrate` and the worker's
 * schema check need no files at run time.
 */
#ifndef VERONA_SQL_MIGRATIONS_H
#define VERONA_SQL_MIGRATIONS_H

struct migration {
    int version;        /* NNN of NNN_name.sql */
    const char *name;   /* the file name */
    const char *sql;
};

extern const struct migration migrations[];
extern const int migrations_count;
extern const int migrations_latest; /* highest version: what the worker needs */

#endif
