/*
 * test_startup_options.c
 *    Unit tests for protocol/startup_options.c (cmocka, TAP output): the
 *    pgnear.* hints inside a StartupMessage's options string, split and
 *    read the way the server's pg_split_opts() and getopt read them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "protocol/startup_options.h"

#define OUT_CAP 512

struct result {
    int rc;
    struct startup_hints h;
    char out[OUT_CAP];
    char err[64];
};

static struct result extract(const char *opts)
{
    struct result r;

    startup_hints_init(&r.h);
    memset(r.out, 'X', sizeof(r.out));
    r.rc =
        startup_hints_extract(opts, strlen(opts), &r.h, r.out, sizeof(r.out), r.err, sizeof(r.err));
    return r;
}

/* opts leaves out behind and sets no hint. */
static void assert_kept(const char *opts, const char *out)
{
    struct result r = extract(opts);

    assert_int_equal(r.rc, HINTS_OK);
    assert_string_equal(r.out, out);
    assert_false(r.h.has_city || r.h.has_region || r.h.has_location);
}

/* opts is one city hint and nothing else. */
static void assert_city(const char *opts, const char *city)
{
    struct result r = extract(opts);

    assert_int_equal(r.rc, HINTS_OK);
    assert_string_equal(r.out, "");
    assert_true(r.h.has_city);
    assert_string_equal(r.h.city, city);
    assert_false(r.h.has_region || r.h.has_location);
}

static void assert_error(const char *opts, int rc, const char *errname)
{
    struct result r = extract(opts);

    assert_int_equal(r.rc, rc);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, errname);
}

static void test_empty(void **state)
{
    (void)state;
    struct result r = extract("");

    assert_int_equal(r.rc, HINTS_OK);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "");
    assert_kept("   \t\n ", "");
}

static void test_spellings(void **state)
{
    (void)state;
    assert_city("-c pgnear.city=seattle", "seattle");
    assert_city("-cpgnear.city=seattle", "seattle");
    assert_city("--pgnear.city=seattle", "seattle");
    assert_city("  -c   pgnear.city=seattle  ", "seattle");
    assert_city("-c\tpgnear.city=seattle\n", "seattle");
    /* the server compares names case-insensitively */
    assert_city("-c PGNEAR.City=seattle", "seattle");
    assert_city("--PgNear.CITY=seattle", "seattle");
    /* only the first '=' splits */
    assert_city("-c pgnear.city=a=b", "a=b");
}

static void test_all_hints(void **state)
{
    (void)state;
    struct result r =
        extract("-c pgnear.city=Paris --pgnear.region=eu-west -cpgnear.location=48.85,2.35");

    assert_int_equal(r.rc, HINTS_OK);
    assert_string_equal(r.out, "");
    assert_true(r.h.has_city && r.h.has_region && r.h.has_location);
    assert_string_equal(r.h.city, "Paris");
    assert_string_equal(r.h.region, "eu-west");
    assert_string_equal(r.h.location, "48.85,2.35");
}

static void test_escaping(void **state)
{
    (void)state;
    assert_city("-c pgnear.city=New\\ York", "New York");
    assert_city("-c pgnear.city=New\\ \\ York", "New  York");
    assert_city("-c pgnear.city=back\\\\slash", "back\\slash");
    assert_city("-c pgnear.city=\\S\\a\\o", "Sao");
    assert_city("-c pgnear.city=tab\\\there", "tab\there");
    /* an escaped backslash escapes nothing after it: the space still separates */
    struct result r = extract("-c search_path=a\\\\ -c pgnear.city=Rome");
    assert_int_equal(r.rc, HINTS_OK);
    assert_string_equal(r.out, "-c search_path=a\\\\");
    assert_string_equal(r.h.city, "Rome");
    /* a lone backslash at the end stands for nothing */
    assert_city("-c pgnear.city=Oslo\\", "Oslo");
    /* escapes count in names and switches too, as the server reads them */
    assert_city("-c pgnear\\.city=Rome", "Rome");
    assert_city("\\-c pgnear.city=Rome", "Rome");
    assert_city("-\\c pgnear.city=Rome", "Rome");
    /* an escaped space glues "-c" and the setting into one word: " pgnear.city" is not ours */
    assert_kept("-c\\ pgnear.city=Rome", "-c\\ pgnear.city=Rome");
}

static void test_keeps_other_options(void **state)
{
    (void)state;
    struct result r = extract("-c search_path=a\\ b -c pgnear.city=Paris --work_mem=64MB");

    assert_int_equal(r.rc, HINTS_OK);
    assert_string_equal(r.out, "-c search_path=a\\ b --work_mem=64MB");
    assert_string_equal(r.h.city, "Paris");

    r = extract("-c pgnear.region=us-east   -c\tstatement_timeout=5s\n-cgeqo=off "
                "--pgnear.city=Boston --application_name=x\\\\y -c pgnear.location=1,2");
    assert_int_equal(r.rc, HINTS_OK);
    assert_string_equal(r.out, "-c statement_timeout=5s -cgeqo=off --application_name=x\\\\y");
    assert_string_equal(r.h.region, "us-east");
    assert_string_equal(r.h.city, "Boston");
    assert_string_equal(r.h.location, "1,2");

    /* nothing of ours: byte for byte, whitespace runs become single spaces */
    assert_kept("-c search_path=\"my\\ schema\",public", "-c search_path=\"my\\ schema\",public");
    assert_kept("  --work_mem=64MB \t -c geqo=off  ", "--work_mem=64MB -c geqo=off");
    /* names that only look like ours */
    assert_kept("-c pgnearby.city=x -c pgnear_city=x -c xpgnear.city=x -c pgnear=x",
                "-c pgnearby.city=x -c pgnear_city=x -c xpgnear.city=x -c pgnear=x");
    assert_kept("--pgnear-city=x", "--pgnear-city=x");
}

static void test_other_switches(void **state)
{
    (void)state;
    struct result r;

    /* a switch's argument is never read as a switch of its own */
    r = extract("-d 5 -c pgnear.city=Lima -B 128 -e");
    assert_int_equal(r.rc, HINTS_OK);
    assert_string_equal(r.out, "-d 5 -B 128 -e");
    assert_string_equal(r.h.city, "Lima");
    /* here "-c" is -d's argument, so the server sees no setting and neither do we */
    assert_kept("-d -c pgnear.city=Lima", "-d -c pgnear.city=Lima");
    assert_kept("-d5 -Fe -j", "-d5 -Fe -j");

    /* flags clustered before -c stay, the hint goes */
    r = extract("-Fc pgnear.city=Lima");
    assert_int_equal(r.rc, HINTS_OK);
    assert_string_equal(r.out, "-F");
    assert_string_equal(r.h.city, "Lima");
    r = extract("-eFcpgnear.city=Lima -j");
    assert_int_equal(r.rc, HINTS_OK);
    assert_string_equal(r.out, "-eF -j");
    assert_string_equal(r.h.city, "Lima");
    r = extract("-e-pgnear.city=Lima");
    assert_int_equal(r.rc, HINTS_OK);
    assert_string_equal(r.out, "-e");
    assert_string_equal(r.h.city, "Lima");
    /* -d's argument swallows the c */
    assert_kept("-dc pgnear.city=Lima", "-dc pgnear.city=Lima");

    /* "--" ends the switches: the rest goes to the server as it is */
    assert_kept("-- -c pgnear.city=Lima", "-- -c pgnear.city=Lima");
    assert_kept("-- pgnear.city=Lima", "-- pgnear.city=Lima");
    assert_kept("- plain words", "- plain words");
    assert_kept("pgnear.city=Lima", "pgnear.city=Lima");
}

static void test_last_wins_and_clearing(void **state)
{
    (void)state;
    struct result r = extract("-c pgnear.city=Lima -c pgnear.city=Quito");

    assert_int_equal(r.rc, HINTS_OK);
    assert_string_equal(r.h.city, "Quito");
    r = extract("-c pgnear.city=Lima -c pgnear.city=");
    assert_int_equal(r.rc, HINTS_OK);
    assert_string_equal(r.out, "");
    assert_false(r.h.has_city);
    assert_string_equal(r.h.city, "");
}

static void test_unknown(void **state)
{
    (void)state;
    assert_error("-c pgnear.x=1", HINTS_EUNKNOWN, "pgnear.x");
    assert_error("-c search_path=a --pgnear.cityy=1", HINTS_EUNKNOWN, "pgnear.cityy");
    assert_error("-c pgnear.=1", HINTS_EUNKNOWN, "pgnear.");
    assert_error("-c pgnear.city.x=1", HINTS_EUNKNOWN, "pgnear.city.x");
    /* '-' is '_' in names, as the server reads them */
    assert_error("--pgnear.ci-ty=1", HINTS_EUNKNOWN, "pgnear.ci_ty");
    assert_error("-cPGNEAR.Foo", HINTS_EUNKNOWN, "PGNEAR.Foo");

    /* errname is cut to its buffer; NULL is allowed */
    struct startup_hints h;
    char out[64], err[8];
    const char *opts = "-c pgnear.something_long=1";
    startup_hints_init(&h);
    assert_int_equal(
        startup_hints_extract(opts, strlen(opts), &h, out, sizeof(out), err, sizeof(err)),
        HINTS_EUNKNOWN);
    assert_string_equal(err, "pgnear.");
    assert_int_equal(startup_hints_extract(opts, strlen(opts), &h, out, sizeof(out), NULL, 0),
                     HINTS_EUNKNOWN);

    /* a very long pgnear.* name */
    char longname[300];
    strcpy(longname, "-c pgnear.");
    memset(longname + 10, 'a', 250);
    strcpy(longname + 260, "=1");
    struct result r = extract(longname);
    assert_int_equal(r.rc, HINTS_EUNKNOWN);
    assert_memory_equal(r.err, "pgnear.aaa", 10);
}

static void test_too_long(void **state)
{
    (void)state;
    char opts[512], want[HINT_VALUE_MAX + 2];
    struct result r;

    memset(want, 'v', sizeof(want));
    want[HINT_VALUE_MAX] = '\0';
    snprintf(opts, sizeof(opts), "-c pgnear.city=%s", want);
    assert_city(opts, want);

    want[HINT_VALUE_MAX] = 'v';
    want[HINT_VALUE_MAX + 1] = '\0';
    snprintf(opts, sizeof(opts), "-c pgnear.region=%s -c geqo=off", want);
    assert_error(opts, HINTS_ETOOLONG, "pgnear.region");

    /* the limit counts characters after unescaping */
    strcpy(opts, "-c pgnear.location=");
    for (int i = 0; i < HINT_VALUE_MAX; i++)
        strcat(opts, "\\ ");
    r = extract(opts);
    assert_int_equal(r.rc, HINTS_OK);
    assert_int_equal(strlen(r.h.location), HINT_VALUE_MAX);
    strcat(opts, "x");
    assert_error(opts, HINTS_ETOOLONG, "pgnear.location");
}

static void test_syntax(void **state)
{
    (void)state;
    assert_error("-c", HINTS_ESYNTAX, "-c");
    assert_error("-c pgnear.city=Lima -c", HINTS_ESYNTAX, "-c");
    assert_error("-c pgnear.city=Lima -c   ", HINTS_ESYNTAX, "-c");
    assert_error("-Fc", HINTS_ESYNTAX, "-c");
    assert_error("-B", HINTS_ESYNTAX, "-B");
    /* "-c\" is "-c" once unescaped */
    assert_error("-c\\", HINTS_ESYNTAX, "-c");
    /* a setting needs a value */
    assert_error("-c pgnear.city", HINTS_ESYNTAX, "pgnear.city");
    assert_error("--pgnear.region", HINTS_ESYNTAX, "pgnear.region");
    /* other settings without values are the server's business */
    assert_kept("-c geqo", "-c geqo");
}

/* "-c pgnear.city=New York": the server would refuse "York"; pgnear says why first. */
static void test_stray_word(void **state)
{
    (void)state;
    struct result r = extract("-c pgnear.city=New York");

    assert_int_equal(r.rc, HINTS_ESTRAY);
    assert_string_equal(r.err, "pgnear.city York");
    assert_string_equal(r.out, "");
    assert_string_equal(r.h.city, "New"); /* what came before the space, for the message */
    assert_error("-c search_path=a --pgnear.city=Salt\\ Lake City -c geqo=off", HINTS_ESTRAY,
                 "pgnear.city City");
    assert_error("-cpgnear.region=eu west", HINTS_ESTRAY, "pgnear.region west");
    assert_error("-c pgnear.location=47.6, -122.3", HINTS_ESTRAY, "pgnear.location -122.3");
    assert_error("-c pgnear.city=New Yo\\ rk", HINTS_ESTRAY, "pgnear.city Yo rk");
    /* what the server reads as a switch after a hint is fine, and so is a stray word elsewhere */
    r = extract("-c pgnear.city=Lima -d 5 -c pgnear.region=x -- plain");
    assert_int_equal(r.rc, HINTS_OK);
    assert_string_equal(r.out, "-d 5 -- plain");
    assert_kept("-c geqo=off stray", "-c geqo=off stray");
    assert_city("-c pgnear.city=New\\ York", "New York");
    assert_city("-c pgnear.city=New_York", "New_York");
}

static void test_out_space(void **state)
{
    (void)state;
    struct startup_hints h;
    char out[32];
    const char *opts = "-c geqo=off -c pgnear.city=Oslo --work_mem=1MB";
    const char *want = "-c geqo=off --work_mem=1MB";
    size_t need = strlen(want) + 1;

    startup_hints_init(&h);
    assert_int_equal(startup_hints_extract(opts, strlen(opts), &h, out, need, NULL, 0), HINTS_OK);
    assert_string_equal(out, want);
    assert_int_equal(startup_hints_extract(opts, strlen(opts), &h, out, need - 1, NULL, 0),
                     HINTS_ENOSPACE);
    assert_string_equal(out, "");
    assert_int_equal(startup_hints_extract(opts, strlen(opts), &h, out, 0, NULL, 0),
                     HINTS_ENOSPACE);
    /* with nothing left, one byte is enough */
    assert_int_equal(startup_hints_extract("-c pgnear.city=Oslo", 19, &h, out, 1, NULL, 0),
                     HINTS_OK);
    assert_string_equal(out, "");
}

static void test_length_and_nul(void **state)
{
    (void)state;
    struct startup_hints h;
    char out[64];
    static const char opts[] = "-c pgnear.city=Oslo\0 -c pgnear.region=eu-north";

    startup_hints_init(&h);
    assert_int_equal(startup_hints_extract(opts, sizeof(opts) - 1, &h, out, sizeof(out), NULL, 0),
                     HINTS_OK);
    assert_string_equal(h.city, "Oslo");
    assert_false(h.has_region);

    /* only len bytes are read */
    startup_hints_init(&h);
    assert_int_equal(
        startup_hints_extract("-c pgnear.city=Oslo -c geqo=off", 17, &h, out, sizeof(out), NULL, 0),
        HINTS_OK);
    assert_string_equal(h.city, "Os");
    assert_string_equal(out, "");
    assert_int_equal(startup_hints_extract("-c geqo=off", 0, &h, out, sizeof(out), NULL, 0),
                     HINTS_OK);
    assert_string_equal(out, "");
    /* cut right after the switch */
    assert_int_equal(startup_hints_extract("-c pgnear.city=Oslo", 2, &h, out, sizeof(out), NULL, 0),
                     HINTS_ESYNTAX);
}

static void test_from_param(void **state)
{
    (void)state;
    struct startup_hints h;
    char big[HINT_VALUE_MAX + 2];

    startup_hints_init(&h);
    assert_int_equal(startup_hints_from_param("pgnear.city", "seattle", &h), 1);
    assert_true(h.has_city);
    assert_string_equal(h.city, "seattle");
    assert_int_equal(startup_hints_from_param("PGNEAR.Region", "us-west", &h), 1);
    assert_string_equal(h.region, "us-west");
    assert_int_equal(startup_hints_from_param("pgnear.location", "47.6,-122.3", &h), 1);
    assert_string_equal(h.location, "47.6,-122.3");

    assert_int_equal(startup_hints_from_param("application_name", "psql", &h), 0);
    assert_int_equal(startup_hints_from_param("options", "-c pgnear.city=x", &h), 0);
    assert_int_equal(startup_hints_from_param("pgnear", "x", &h), 0);
    assert_int_equal(startup_hints_from_param("pgnear_city", "x", &h), 0);
    assert_int_equal(startup_hints_from_param("pgnear.foo", "x", &h), HINTS_EUNKNOWN);
    assert_int_equal(startup_hints_from_param("pgnear.", "x", &h), HINTS_EUNKNOWN);

    memset(big, 'z', sizeof(big));
    big[HINT_VALUE_MAX] = '\0';
    assert_int_equal(startup_hints_from_param("pgnear.city", big, &h), 1);
    assert_int_equal(strlen(h.city), HINT_VALUE_MAX);
    big[HINT_VALUE_MAX] = 'z';
    big[HINT_VALUE_MAX + 1] = '\0';
    assert_int_equal(startup_hints_from_param("pgnear.city", big, &h), HINTS_ETOOLONG);
    /* the earlier value survives a refused one */
    assert_int_equal(strlen(h.city), HINT_VALUE_MAX);

    /* no escaping here: the value is taken as it is */
    assert_int_equal(startup_hints_from_param("pgnear.city", "New\\ York", &h), 1);
    assert_string_equal(h.city, "New\\ York");
    /* an empty value clears */
    assert_int_equal(startup_hints_from_param("pgnear.city", "", &h), 1);
    assert_false(h.has_city);
}

static void test_strerror(void **state)
{
    (void)state;
    static const int codes[] = {
        HINTS_OK, HINTS_EUNKNOWN, HINTS_ETOOLONG, HINTS_ESYNTAX, HINTS_ENOSPACE, HINTS_ESTRAY, 42};

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        assert_true(strlen(startup_hints_strerror(codes[i])) > 0);
    assert_string_equal(startup_hints_strerror(HINTS_EUNKNOWN), "unrecognized pgnear setting");
}

/* The list the 42704 hint gives: every hint, each one settable by that name. */
static void test_known(void **state)
{
    (void)state;
    char buf[256], small[12];
    assert_string_equal(startup_hints_known(buf, sizeof(buf)),
                        "pgnear.city, pgnear.region, pgnear.location, "
                        "pgnear.target_session_attrs, pgnear.min_lsn, pgnear.report_fence and "
                        "pgnear.movable");
    assert_int_equal(strlen(startup_hints_known(small, sizeof(small))), sizeof(small) - 1);
    const char *names[] = {"pgnear.city",     "pgnear.region",
                           "pgnear.location", "pgnear.target_session_attrs",
                           "pgnear.min_lsn",  "pgnear.report_fence",
                           "pgnear.movable"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct startup_hints h;
        startup_hints_init(&h);
        assert_int_equal(startup_hints_from_param(names[i], "on", &h), 1);
        assert_int_equal(h.has_city + h.has_region + h.has_location + h.has_need + h.has_min_lsn +
                             h.has_report_fence + h.has_movable,
                         1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_spellings),
        cmocka_unit_test(test_all_hints),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_keeps_other_options),
        cmocka_unit_test(test_other_switches),
        cmocka_unit_test(test_last_wins_and_clearing),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_syntax),
        cmocka_unit_test(test_stray_word),
        cmocka_unit_test(test_out_space),
        cmocka_unit_test(test_length_and_nul),
        cmocka_unit_test(test_from_param),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_known),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("startup_options", tests, NULL, NULL);
}
