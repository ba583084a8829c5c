/*
 * fuzz_region_list.c
 *    libFuzzer target for region_subset_parse (routing/region.c), which
 *    reads a [database NAME] section's regions = "r1, r2" against the
 *    configured regions.  Besides not crashing: a list it takes names
 *    1 to REGION_SUBSET_MAX configured regions, each once, and what
 *    region_subset_format writes of it parses back to the same subset; a
 *    list it refuses says why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "routing/region.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static struct region_set *regions(void)
{
    static struct region_set set;
    static int made;
    static const char *const names[] = {"us-east", "us-west", "eu-west", "EU-Central",
                                        "ap_1",    "a",       "b",       "lab"};
    if (!made) {
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            check(region_set_add(&set, names[i]) != NULL);
        made = 1;
    }
    return &set;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct region_set *set = regions();
    char *list = malloc(size + 1);
    if (list == NULL)
        return 0;
    memcpy(list, data, size);
    list[size] = '\0';
    struct region_subset got, again;
    char why[256] = "", text[4096];
    if (region_subset_parse(set, list, &got, why, sizeof(why)) != 0) {
        check(why[0] != '\0');
        free(list);
        return 0;
    }
    check(got.count >= 1 && got.count <= REGION_SUBSET_MAX);
    for (size_t i = 0; i < got.count; i++) {
        check(got.items[i] >= set->items && got.items[i] < set->items + set->count);
        for (size_t k = 0; k < i; k++)
            check(got.items[k] != got.items[i]);
    }
    region_subset_format(&got, text, sizeof(text));
    check(region_subset_parse(set, text, &again, why, sizeof(why)) == 0);
    check(again.count == got.count);
    for (size_t i = 0; i < got.count; i++)
        check(again.items[i] == got.items[i]);
    free(list);
    return 0;
}
