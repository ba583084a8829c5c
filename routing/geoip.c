/*
 * geoip.c — caller locality from GeoIP databases (.mmdb, via libmaxminddb).
 *
 * Each database's layout is recognised once, at open, and fixes the
 * lookup paths used for it; a lookup then walks the search tree and reads
 * four values with MMDB_aget_value, allocating nothing (MMDB_get_value
 * would calloc its path on every call).
 */
#include "routing/geoip.h"
#include "routing/file_id.h"

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <maxminddb.h>

/* Where a layout keeps each value: NULL-terminated MMDB_aget_value paths. */
struct geoip_layout {
    const char *name;
    const char *const *lat;
    const char *const *lon;
    const char *const *city;
    const char *const *country;
};

static const char *const mm_lat[] = {"location", "latitude", NULL};
static const char *const mm_lon[] = {"location", "longitude", NULL};
static const char *const mm_city[] = {"city", "names", "en", NULL};
static const char *const mm_country[] = {"country", "iso_code", NULL};

static const char *const flat_lat[] = {"latitude", NULL};
static const char *const flat_lon[] = {"longitude", NULL};
static const char *const flat_city[] = {"city", NULL};
static const char *const flat_country[] = {"country_code", NULL};

static const struct geoip_layout layout_maxmind = {
    "MaxMind City", mm_lat, mm_lon, mm_city, mm_country,
};

static const struct geoip_layout layout_flat = {
    "DB-IP flat", flat_lat, flat_lon, flat_city, flat_country,
};

struct geoip_db {
    MMDB_s mmdb; /* never moved once open: lookup results point back to it */
    const struct geoip_layout *layout;
    struct file_id id; /* taken before the open: a file replaced meanwhile shows as changed */
};

struct geoip_set {
    int refcount; /* one for each holder (atomic): configurations share a set */
    char *paths;  /* as given to geoip_open */
    size_t count;
    struct geoip_db dbs[];
};

/* Deepest IPv6 tree is 128 levels; a depth-first walk holds one pending
 * right-hand node a level. */
#define WALK_STACK 160
/* Nodes visited at most while looking for a sample record at open. */
#define WALK_BUDGET 65536

static void set_err(char *err, size_t errcap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats into err when the caller gave one. */
static void set_err(char *err, size_t errcap, const char *fmt, ...)
{
    if (err == NULL || errcap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errcap, fmt, ap);
    va_end(ap);
}

/* 1 when the path holds a value, 0 when this record has none there (or a
 * value of another shape), else minus the MMDB error code. */
static int get_value(MMDB_entry_s *entry, const char *const *path, MMDB_entry_data_s *data)
{
    int rc = MMDB_aget_value(entry, data, path);
    if (rc == MMDB_SUCCESS)
        return data->has_data ? 1 : 0;
    if (rc == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR || rc == MMDB_INVALID_LOOKUP_PATH_ERROR)
        return 0;
    return -rc;
}

/* The type of the value at a one-key path, or -1 when absent. */
static int key_type(MMDB_entry_s *entry, const char *key)
{
    const char *const path[] = {key, NULL};
    MMDB_entry_data_s data;
    return get_value(entry, path, &data) == 1 ? (int)data.type : -1;
}

/*
 * Finds some data record by walking the search tree depth-first, so that
 * the layout can be told from the keys records really have.  1 with
 * *sample set, 0 when the tree holds no data, -1 on a corrupt tree.
 */
static int find_sample(const MMDB_s *m, MMDB_entry_s *sample)
{
    uint32_t stack[WALK_STACK];
    size_t top = 0;
    if (m->metadata.node_count == 0)
        return 0;
    stack[top++] = 0;
    for (size_t budget = WALK_BUDGET; top > 0 && budget > 0; budget--) {
        MMDB_search_node_s node;
        if (MMDB_read_node(m, stack[--top], &node) != MMDB_SUCCESS)
            return -1;
        if (node.left_record_type == MMDB_RECORD_TYPE_DATA) {
            *sample = node.left_record_entry;
            return 1;
        }
        if (node.right_record_type == MMDB_RECORD_TYPE_DATA) {
            *sample = node.right_record_entry;
            return 1;
        }
        if (node.right_record_type == MMDB_RECORD_TYPE_SEARCH_NODE && top < WALK_STACK)
            stack[top++] = (uint32_t)node.right_record;
        if (node.left_record_type == MMDB_RECORD_TYPE_SEARCH_NODE && top < WALK_STACK)
            stack[top++] = (uint32_t)node.left_record;
    }
    return 0;
}

/* MaxMind City nests maps (city, country, location); the flat layout has
 * plain values at the top (city is a string there). */
static const struct geoip_layout *layout_from_keys(MMDB_entry_s *e)
{
    static const char *const nested[] = {"location", "city", "country", "registered_country"};
    for (size_t i = 0; i < sizeof nested / sizeof nested[0]; i++) {
        if (key_type(e, nested[i]) == MMDB_DATA_TYPE_MAP)
            return &layout_maxmind;
    }
    if (key_type(e, "latitude") >= 0 || key_type(e, "country_code") >= 0 ||
        key_type(e, "city") == MMDB_DATA_TYPE_UTF8_STRING)
        return &layout_flat;
    return NULL;
}

/* For records without a telling key.  DB-IP's own downloads
 * ("DBIP-City-Lite") use the GeoIP2 layout; ip-location-db's files are
 * "city ipv4", "city ipv6".  GeoLite2-ASN and the like are no locality. */
static const struct geoip_layout *layout_from_type(const char *type)
{
    static const char *const vendors[] = {"GeoIP2-", "GeoLite2-", "GeoIP-", "DBIP-"};
    static const char *const kinds[] = {"City", "Country", "Enterprise", "Location"};
    if (type == NULL)
        return NULL;
    if (strncmp(type, "city ", 5) == 0)
        return &layout_flat;
    bool vendor = false, kind = false;
    for (size_t i = 0; i < sizeof vendors / sizeof vendors[0]; i++)
        vendor = vendor || strncmp(type, vendors[i], strlen(vendors[i])) == 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        kind = kind || strstr(type, kinds[i]) != NULL;
    return vendor && kind ? &layout_maxmind : NULL;
}

/*
 * Which layout (MaxMind or DB-IP) the database uses: by the keys of a sample
 * record, else by its type; -1 with err set when neither fits.
 */
static int detect_layout(struct geoip_db *db, const char *path, char *err, size_t errcap)
{
    MMDB_entry_s sample;
    int found = find_sample(&db->mmdb, &sample);
    const char *type = db->mmdb.metadata.database_type;
    if (found < 0) {
        set_err(err, errcap, "geoip: %s: corrupt search tree", path);
        return -1;
    }
    db->layout = found ? layout_from_keys(&sample) : NULL;
    if (db->layout == NULL)
        db->layout = layout_from_type(type);
    if (db->layout != NULL)
        return 0;
    set_err(err, errcap,
            "geoip: %s: database type \"%s\" is neither the MaxMind City nor the DB-IP city "
            "layout (no location, city or country keys)",
            path, type ? type : "");
    return -1;
}

/*
 * Maps the file, keeping its identity (file_id) to notice a replaced file at
 * reload; -1 with err saying why, errno's text when it helps.
 */
static int open_db(struct geoip_db *db, const char *path, char *err, size_t errcap)
{
    errno = 0;
    int rc = file_id_of_path(path, &db->id) ? MMDB_open(path, MMDB_MODE_MMAP, &db->mmdb)
                                            : MMDB_FILE_OPEN_ERROR;
    int saved = errno;
    if (rc == MMDB_SUCCESS)
        return 0;
    if ((rc == MMDB_FILE_OPEN_ERROR || rc == MMDB_IO_ERROR) && saved != 0)
        set_err(err, errcap, "geoip: %s: %s (%s)", path, MMDB_strerror(rc), strerror(saved));
    else if (rc == MMDB_INVALID_METADATA_ERROR)
        set_err(err, errcap, "geoip: %s: not a MaxMind DB (.mmdb) file: %s", path,
                MMDB_strerror(rc));
    else
        set_err(err, errcap, "geoip: %s: %s", path, MMDB_strerror(rc));
    return -1;
}

/* Cuts leading and trailing blanks in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* Opens each path of the comma list into g->dbs, counting in g->count so
 * that geoip_close can undo a partial open. */
static int open_all(struct geoip_set *g, char *list, char *err, size_t errcap)
{
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        char *path = trim(tok);
        if (*path == '\0')
            continue;
        struct geoip_db *db = &g->dbs[g->count];
        if (open_db(db, path, err, errcap) < 0)
            return -1;
        g->count++;
        if (detect_layout(db, path, err, errcap) < 0)
            return -1;
    }
    if (g->count > 0)
        return 0;
    set_err(err, errcap, "geoip: no database file given");
    return -1;
}

struct geoip_set *geoip_open(const char *paths, char *err, size_t errcap)
{
    if (paths == NULL) {
        set_err(err, errcap, "geoip: no database file given");
        return NULL;
    }
    size_t items = 1;
    for (const char *p = paths; *p != '\0'; p++)
        items += *p == ',';
    struct geoip_set *g = calloc(1, sizeof *g + items * sizeof g->dbs[0]);
    char *list = strdup(paths);
    if (g == NULL || list == NULL || (g->paths = strdup(paths)) == NULL) {
        set_err(err, errcap, "geoip: out of memory");
        free(g);
        free(list);
        return NULL;
    }
    g->refcount = 1;
    int rc = open_all(g, list, err, errcap);
    free(list);
    if (rc == 0)
        return g;
    geoip_close(g);
    return NULL;
}

struct geoip_set *geoip_ref(struct geoip_set *g)
{
    __atomic_add_fetch(&g->refcount, 1, __ATOMIC_RELAXED);
    return g;
}

bool geoip_unchanged(const struct geoip_set *g, const char *paths)
{
    if (strcmp(g->paths, paths) != 0)
        return false;
    for (size_t i = 0; i < g->count; i++)
        if (!file_id_unchanged(&g->dbs[i].id, g->dbs[i].mmdb.filename))
            return false;
    return true;
}

/* Drops a reference; the last one unmaps the databases. NULL is fine. */
void geoip_close(struct geoip_set *g)
{
    if (g == NULL || __atomic_sub_fetch(&g->refcount, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (size_t i = 0; i < g->count; i++)
        MMDB_close(&g->dbs[i].mmdb);
    free(g->paths);
    free(g);
}

/* ::ffff:a.b.c.d becomes a.b.c.d, so that IPv4-only databases can answer
 * it and IPv6 ones find it in their IPv4 data whether or not they alias
 * ::ffff:0:0/96 there. */
static const struct sockaddr *unmap_v4(const struct sockaddr *sa, struct sockaddr_in *buf)
{
    if (sa->sa_family != AF_INET6)
        return sa;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
        return sa;
    memset(buf, 0, sizeof *buf);
    buf->sin_family = AF_INET;
    buf->sin_port = s6->sin6_port;
    memcpy(&buf->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
    return (const struct sockaddr *)buf;
}

/* DB-IP stores coordinates as float, MaxMind as double; integers are
 * accepted too.  1 with *v set, 0 when absent or not a number. */
static int get_number(MMDB_entry_s *entry, const char *const *path, double *v)
{
    MMDB_entry_data_s d;
    int rc = get_value(entry, path, &d);
    if (rc <= 0)
        return rc;
    switch (d.type) {
    case MMDB_DATA_TYPE_DOUBLE:
        *v = d.double_value;
        return 1;
    case MMDB_DATA_TYPE_FLOAT:
        *v = d.float_value;
        return 1;
    case MMDB_DATA_TYPE_INT32:
        *v = d.int32;
        return 1;
    case MMDB_DATA_TYPE_UINT16:
        *v = d.uint16;
        return 1;
    case MMDB_DATA_TYPE_UINT32:
        *v = d.uint32;
        return 1;
    default:
        return 0;
    }
}

/* Copies UTF-8 text, cut at a character boundary when too long, with
 * control bytes replaced: the city ends up in log lines and SHOW output. */
static void copy_text(char *dst, size_t cap, const char *src, uint32_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    if (n < len) {
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
    }
    dst[n] = '\0';
}

/*
 * The city name at path, when the record has one; 0 also when it has none, <0
 * on a corrupt record.
 */
static int get_city(MMDB_entry_s *entry, const char *const *path, char *city, size_t cap)
{
    MMDB_entry_data_s d;
    int rc = get_value(entry, path, &d);
    if (rc == 1 && d.type == MMDB_DATA_TYPE_UTF8_STRING)
        copy_text(city, cap, d.utf8_string, d.data_size);
    return rc < 0 ? rc : 0;
}

/* Only a two-letter code is kept, in upper case. */
static int get_country(MMDB_entry_s *entry, const char *const *path, char cc[3])
{
    MMDB_entry_data_s d;
    int rc = get_value(entry, path, &d);
    if (rc != 1 || d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size != 2)
        return rc < 0 ? rc : 0;
    for (int i = 0; i < 2; i++) {
        char c = d.utf8_string[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c < 'A' || c > 'Z')
            return 0;
        cc[i] = c;
    }
    cc[2] = '\0';
    return 0;
}

/* Coordinates on the globe; a record with others is treated as having none. */
static bool valid_location(double lat, double lon)
{
    return isfinite(lat) && isfinite(lon) && lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180;
}

/* Fills r from one record; minus the MMDB error code on corrupt data. */
static int read_record(const struct geoip_db *db, MMDB_entry_s *entry, struct geoip_result *r)
{
    const struct geoip_layout *l = db->layout;
    double lat = 0, lon = 0;
    int has_lat = get_number(entry, l->lat, &lat);
    int has_lon = get_number(entry, l->lon, &lon);
    if (has_lat < 0 || has_lon < 0)
        return has_lat < 0 ? has_lat : has_lon;
    memset(r, 0, sizeof *r);
    r->found = true;
    r->db = db->mmdb.filename;
    if (has_lat && has_lon && valid_location(lat, lon)) {
        r->has_location = true;
        r->lat = lat;
        r->lon = lon;
    }
    int rc = get_city(entry, l->city, r->city, sizeof r->city);
    return rc < 0 ? rc : get_country(entry, l->country, r->country);
}

/* 1 when the database has an entry (in *r), 0 when not, -1 on error. */
static int lookup_one(const struct geoip_db *db, const struct sockaddr *sa, struct geoip_result *r,
                      char *err, size_t errcap)
{
    int mmerr = MMDB_SUCCESS;
    MMDB_lookup_result_s res = MMDB_lookup_sockaddr(&db->mmdb, sa, &mmerr);
    if (mmerr != MMDB_SUCCESS) {
        set_err(err, errcap, "geoip: %s: lookup failed: %s", db->mmdb.filename,
                MMDB_strerror(mmerr));
        return -1;
    }
    if (!res.found_entry)
        return 0;
    int rc = read_record(db, &res.entry, r);
    if (rc == 0)
        return 1;
    set_err(err, errcap, "geoip: %s: bad record: %s", db->mmdb.filename, MMDB_strerror(-rc));
    return -1;
}

int geoip_lookup(const struct geoip_set *g, const struct sockaddr *addr, struct geoip_result *out,
                 char *err, size_t errcap)
{
    struct sockaddr_in v4;
    memset(out, 0, sizeof *out);
    if (g == NULL || addr == NULL)
        return 0;
    const struct sockaddr *sa = unmap_v4(addr, &v4);
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
        return 0;
    for (size_t i = 0; i < g->count; i++) {
        const struct geoip_db *db = &g->dbs[i];
        struct geoip_result r;
        if (sa->sa_family == AF_INET6 && db->mmdb.metadata.ip_version == 4)
            continue;
        int rc = lookup_one(db, sa, &r, err, errcap);
        if (rc < 0)
            return -1;
        if (rc == 0)
            continue;
        if (r.has_location) {
            *out = r;
            return 0;
        }
        /* An entry without coordinates is kept only if no later database
         * has coordinates. */
        if (!out->found)
            *out = r;
    }
    return 0;
}

static void append(char *out, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* snprintf at *len; once out is full, further text is dropped. */
static void append(char *out, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = (size_t)n < cap - *len ? *len + (size_t)n : cap - 1;
}

/*
 * One database, appended at *len: file, layout, type, IP version and build
 * time, for the startup log and its checks.
 */
static void describe_db(const struct geoip_db *db, char *out, size_t cap, size_t *len)
{
    const MMDB_metadata_s *md = &db->mmdb.metadata;
    char built[32] = "?";
    time_t t = (time_t)md->build_epoch;
    struct tm tm;
    if (gmtime_r(&t, &tm) != NULL)
        strftime(built, sizeof built, "%Y-%m-%dT%H:%M:%SZ", &tm);
    append(out, cap, len, "%s (%s layout, type \"%s\", IPv%u, built %s, epoch %llu)",
           db->mmdb.filename, db->layout->name, md->database_type ? md->database_type : "",
           (unsigned)md->ip_version, built, (unsigned long long)md->build_epoch);
}

void geoip_describe(const struct geoip_set *g, char *out, size_t cap)
{
    size_t len = 0;
    if (cap == 0)
        return;
    out[0] = '\0';
    if (g == NULL) {
        append(out, cap, &len, "no GeoIP database");
        return;
    }
    append(out, cap, &len, "%zu GeoIP database%s: ", g->count, g->count == 1 ? "" : "s");
    for (size_t i = 0; i < g->count; i++) {
        if (i > 0)
            append(out, cap, &len, "; ");
        describe_db(&g->dbs[i], out, cap, &len);
    }
}
