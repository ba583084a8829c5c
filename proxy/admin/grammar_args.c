/*
 * grammar_args.c — the arguments of the admin console's commands
 * (grammar.h): SHOW ROUTE's place and need, SET's setting and value,
 * KILL's client id, MIGRATE's version, region and FORCE, MOVE CLIENT(S)'
 * and MOVE DATABASE's regions and steps, MOVE CITY's city.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/admin/grammar.h"
#include "proxy/admin/grammar_int.h"
#include "routing/need.h"

/* "lat,lon" within the globe. */
static bool valid_location(const char *v)
{
    char *end;
    errno = 0;
    double lat = strtod(v, &end);
    if (end == v || errno != 0)
        return false;
    while (isspace((unsigned char)*end))
        end++;
    if (*end++ != ',')
        return false;
    const char *lon_text = end;
    double lon = strtod(lon_text, &end);
    if (end == lon_text || errno != 0)
        return false;
    while (isspace((unsigned char)*end))
        end++;
    return *end == '\0' && isfinite(lat) && isfinite(lon) && lat >= -90 && lat <= 90 &&
           lon >= -180 && lon <= 180;
}

/* [NEEDING target_session_attrs] after SHOW ROUTE's place. */
static int take_route_need(struct parser *ps)
{
    ps->out->need = -1; /* what a session that names none needs (target_session_attrs) */
    if (ps->tok.type != TOK_WORD || strcasecmp(ps->tok.text, "NEEDING") != 0)
        return 0;
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    const struct token *t = &ps->tok;
    enum session_need need;
    if ((t->type != TOK_WORD && t->type != TOK_STRING) || !need_parse(t->text, &need))
        return gram_fail(&ps->lx, t->start, "22023", NULL,
                         "invalid target_session_attrs: \"%.64s\" (one of: %s)", t->text,
                         need_choices());
    ps->out->need = (int)need;
    return gram_advance(ps);
}

/* FOR CITY|IP|LOCATION|REGION value [NEEDING need] */
static int take_route(struct parser *ps)
{
    static const char *const targets[] = {"CITY", "IP", "LOCATION", "REGION"};
    const char *hint = "Write SHOW ROUTE FOR CITY 'x', IP 'a.b.c.d', LOCATION 'lat,lon' or "
                       "REGION 'r'.";
    if (ps->tok.type != TOK_WORD || strcasecmp(ps->tok.text, "FOR") != 0)
        return gram_syntax_error(&ps->lx, &ps->tok, hint);
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    int target = -1;
    for (int i = 0; i < 4 && ps->tok.type == TOK_WORD; i++)
        if (strcasecmp(ps->tok.text, targets[i]) == 0)
            target = i;
    if (target < 0)
        return gram_syntax_error(&ps->lx, &ps->tok, hint);
    ps->out->route_target = (enum admin_route_target)target;
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    const struct token *t = &ps->tok;
    if (t->type != TOK_STRING && t->type != TOK_WORD && t->type != TOK_NAME)
        return gram_syntax_error(&ps->lx, t, hint);
    memcpy(ps->out->value, t->text, t->text_len + 1);
    struct in6_addr a;
    if (target == ADMIN_ROUTE_IP && inet_pton(AF_INET, t->text, &a) != 1 &&
        inet_pton(AF_INET6, t->text, &a) != 1)
        return gram_fail(&ps->lx, t->start, "22P02", NULL,
                         "invalid input syntax for an IP address: \"%.64s\"", t->text);
    if (target == ADMIN_ROUTE_LOCATION && !valid_location(t->text))
        return gram_fail(&ps->lx, t->start, "22023",
                         "A location is 'latitude,longitude' in degrees, latitude from -90 to 90, "
                         "longitude from -180 to 180.",
                         "invalid location: \"%.64s\"", t->text);
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    return take_route_need(ps);
}

/* A client id: a whole number, quoted or not, that fits 64 bits. */
static int take_client_id(struct parser *ps)
{
    const struct token *t = &ps->tok;
    if (t->type != TOK_WORD && t->type != TOK_STRING)
        return gram_syntax_error(&ps->lx, t,
                                 "Name the client by its id (SHOW CLIENTS lists them).");
    char *end;
    errno = 0;
    unsigned long long id = strtoull(t->text, &end, 10);
    if (t->text_len == 0 || !isdigit((unsigned char)t->text[0]) || *end != '\0' || errno != 0)
        return gram_fail(&ps->lx, t->start, "22023",
                         "A client id is a whole number from SHOW CLIENTS.",
                         "invalid client id: \"%.64s\"", t->text);
    ps->out->client_id = id;
    return gram_advance(ps);
}

/* setting = value, or setting TO value */
static int take_setting(struct parser *ps)
{
    if (gram_take_name(ps, ps->out->setting, "setting") < 0)
        return ADMIN_PARSE_ERROR;
    const struct token *t = &ps->tok;
    if (t->type != TOK_EQUALS && !(t->type == TOK_WORD && strcasecmp(t->text, "TO") == 0))
        return gram_syntax_error(&ps->lx, t, "Write SET setting = value.");
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    if (t->type != TOK_STRING && t->type != TOK_WORD)
        return gram_syntax_error(&ps->lx, t, "Write SET setting = value.");
    memcpy(ps->out->value, t->text, t->text_len + 1);
    ps->out->value_quoted = t->type == TOK_STRING;
    return gram_advance(ps);
}

/* A step's version: a whole number from 1, as the step files number them. */
/* A step's version, at least min (0: MIGRATE DOWN TO 0 undoes every step). */
static int take_version(struct parser *ps, long long min)
{
    const struct token *t = &ps->tok;
    if (t->type != TOK_WORD)
        return gram_syntax_error(&ps->lx, t, "Write TO and a step's version.");
    char *end;
    errno = 0;
    long long v = strtoll(t->text, &end, 10);
    if (!isdigit((unsigned char)t->text[0]) || *end != '\0' || errno != 0 || v < min)
        return gram_fail(&ps->lx, t->start, "22023",
                         "A version is the whole number a step's file name starts with.",
                         "invalid step version: \"%.64s\"", t->text);
    ps->out->has_version = true;
    ps->out->version = v;
    return gram_advance(ps);
}

/* [FORCE], after a command that runs steps */
static int take_force(struct parser *ps, bool allowed)
{
    if (!allowed || !gram_at_keyword(ps, "FORCE"))
        return 0;
    ps->out->force = true;
    return gram_advance(ps) < 0 ? ADMIN_PARSE_ERROR : 0;
}

/*
 * [TO version] [IN REGION region] [FORCE], as far as the command takes
 * them: TO when to_min >= 0, with a version of at least to_min.
 */
static int take_migrate(struct parser *ps, int to_min, bool force_allowed)
{
    if (to_min >= 0 && gram_at_keyword(ps, "TO") &&
        (gram_advance(ps) < 0 || take_version(ps, to_min) < 0))
        return ADMIN_PARSE_ERROR;
    if (!gram_at_keyword(ps, "IN"))
        return take_force(ps, force_allowed);
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    if (!gram_at_keyword(ps, "REGION"))
        return gram_syntax_error(&ps->lx, &ps->tok, "Write IN REGION and the region's name.");
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    ps->out->has_region = true;
    if (gram_take_name(ps, ps->out->region, "region") < 0)
        return ADMIN_PARSE_ERROR;
    return take_force(ps, force_allowed);
}

/* version AS applied|failed, or version alone; then [IN REGION region] */
static int take_settle(struct parser *ps, bool resolve)
{
    if (take_version(ps, 1) < 0)
        return ADMIN_PARSE_ERROR;
    if (resolve) {
        if (!gram_at_keyword(ps, "AS") || gram_advance(ps) < 0)
            return gram_at_keyword(ps, "AS")
                       ? ADMIN_PARSE_ERROR
                       : gram_syntax_error(&ps->lx, &ps->tok,
                                           "Write AS applied, AS failed or AS reverted.");
        if (!gram_at_keyword(ps, "applied") && !gram_at_keyword(ps, "failed") &&
            !gram_at_keyword(ps, "reverted"))
            return gram_syntax_error(&ps->lx, &ps->tok,
                                     "Write AS applied, AS failed or AS reverted.");
        ps->out->resolve_applied = gram_at_keyword(ps, "applied");
        ps->out->resolve_reverted = gram_at_keyword(ps, "reverted");
        if (gram_advance(ps) < 0)
            return ADMIN_PARSE_ERROR;
    }
    return take_migrate(ps, -1, !resolve);
}

/* MOVE CLIENT id TO REGION r; MOVE CLIENTS FROM REGION r [TO REGION r2] | HOME */
static int take_move(struct parser *ps, bool one)
{
    struct admin_cmd *out = ps->out;
    if (one) {
        if (take_client_id(ps) < 0)
            return ADMIN_PARSE_ERROR;
    } else if (gram_at_keyword(ps, "HOME")) {
        out->move_home = true;
        return gram_advance(ps);
    } else {
        if (!gram_at_keyword(ps, "FROM"))
            return gram_syntax_error(&ps->lx, &ps->tok, "Write FROM REGION and a region, or HOME.");
        if (gram_advance(ps) < 0 || gram_take_keyword_region(ps, out->region) < 0)
            return ADMIN_PARSE_ERROR;
        out->has_region = true;
        if (!gram_at_keyword(ps, "TO"))
            return 0;
    }
    if (!gram_at_keyword(ps, "TO"))
        return gram_syntax_error(&ps->lx, &ps->tok,
                                 "Write TO REGION and the region to move it to.");
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    return gram_take_keyword_region(ps, out->to_region);
}

/* MOVE DATABASE db TO REGION r | CUTOVER | REVERT | FINISH | ABORT */
static int take_move_database(struct parser *ps)
{
    static const char *const steps[] = {[ADMIN_DB_CUTOVER] = "CUTOVER",
                                        [ADMIN_DB_REVERT] = "REVERT",
                                        [ADMIN_DB_FINISH] = "FINISH",
                                        [ADMIN_DB_ABORT] = "ABORT"};
    struct admin_cmd *out = ps->out;
    if (gram_take_name(ps, out->database, "database") < 0)
        return ADMIN_PARSE_ERROR;
    for (int a = ADMIN_DB_CUTOVER; a <= ADMIN_DB_ABORT; a++)
        if (gram_at_keyword(ps, steps[a])) {
            out->db_action = (enum admin_db_action)a;
            return gram_advance(ps);
        }
    if (!gram_at_keyword(ps, "TO"))
        return gram_syntax_error(
            &ps->lx, &ps->tok,
            "Write TO REGION and a region, or CUTOVER, REVERT, FINISH or ABORT.");
    out->db_action = ADMIN_DB_MOVE;
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    return gram_take_keyword_region(ps, out->to_region);
}

/* MOVE CITY 'city' OF DATABASE db, then as MOVE DATABASE db */
static int take_move_city(struct parser *ps)
{
    const struct token *t = &ps->tok;
    const char *hint = "Write MOVE CITY 'city' OF DATABASE database and TO REGION region, or "
                       "CUTOVER, REVERT, FINISH or ABORT.";
    if (t->type != TOK_STRING)
        return gram_syntax_error(&ps->lx, t, hint);
    if (t->text_len == 0 || t->text_len > ADMIN_NAME_MAX)
        return gram_fail(&ps->lx, t->start, "22023", "A city's name is 1 to 63 bytes.",
                         "invalid city name: '%.64s'", t->text);
    memcpy(ps->out->city, t->text, t->text_len + 1);
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    if (!gram_at_keyword(ps, "OF"))
        return gram_syntax_error(&ps->lx, t, hint);
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    if (!gram_at_keyword(ps, "DATABASE"))
        return gram_syntax_error(&ps->lx, t, hint);
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    return take_move_database(ps);
}

int gram_take_args(struct parser *ps, int args)
{
    switch (args) {
    case ARGS_OPT_REGION:
        if (ps->tok.type != TOK_WORD && ps->tok.type != TOK_NAME)
            return 0;
        ps->out->has_region = true;
        return gram_take_name(ps, ps->out->region, "region");
    case ARGS_REGION:
        ps->out->has_region = true;
        return gram_take_name(ps, ps->out->region, "region");
    case ARGS_ROUTE:
        return take_route(ps);
    case ARGS_CLIENT:
        return take_client_id(ps);
    case ARGS_SET:
        return take_setting(ps);
    case ARGS_PLAN:
    case ARGS_UP:
    case ARGS_NEXT:
        return take_migrate(ps, args != ARGS_NEXT ? 1 : -1, args != ARGS_PLAN);
    case ARGS_DOWN:
        if (!gram_at_keyword(ps, "TO"))
            return gram_syntax_error(&ps->lx, &ps->tok, "Write TO and the version to go down to.");
        return take_migrate(ps, 0, true);
    case ARGS_RESOLVE:
    case ARGS_RETRY:
        return take_settle(ps, args == ARGS_RESOLVE);
    case ARGS_MOVE_ONE:
    case ARGS_MOVE_MANY:
        return take_move(ps, args == ARGS_MOVE_ONE);
    case ARGS_MOVE_DB:
        return take_move_database(ps);
    case ARGS_MOVE_CITY:
        return take_move_city(ps);
    default:
        return 0;
    }
}
