/*
 * print_query_values.c
 *    Prints values as protocol/query_values.c encodes them, for
 *    tests/integration/160_query_values.t to compare with what a real
 *    PostgreSQL server writes.  One request a line on stdin, one answer a
 *    line on stdout: "TEXT|BINARY-IN-HEX", or "ERR" where the encoder
 *    refused.  Requests:
 *
 *      float8 BITS            BITS: the double's 16 hex digits
 *      numeric BITS SCALE
 *      timestamptz SECONDS MICROSECONDS
 *      int8 N | int4 N | bool 0|1
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/query_values.h"

static double double_of_hex(const char *hex)
{
    unsigned long long bits = strtoull(hex, NULL, 16);
    double v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

static void print_answer(const char *text, int tn, const uint8_t *bin, int bn)
{
    if (tn < 0 || bn < 0) {
        printf("ERR\n");
        return;
    }
    printf("%s|", text);
    for (int i = 0; i < bn; i++)
        printf("%02x", bin[i]);
    printf("\n");
}

/* Encodes one request into text and bin; -1 in *tn for a request it does not know. */
static void encode(const char *kind, const char *a, const char *b, char *text, size_t cap, int *tn,
                   uint8_t *bin, size_t bcap, int *bn)
{
    *tn = *bn = -1;
    if (strcmp(kind, "float8") == 0) {
        *tn = qp_text_float8(text, cap, double_of_hex(a));
        *bn = qp_binary_float8(bin, double_of_hex(a));
    } else if (strcmp(kind, "numeric") == 0) {
        *tn = qp_text_numeric(text, cap, double_of_hex(a), atoi(b));
        *bn = *tn < 0 ? -1 : qp_binary_numeric(bin, bcap, text, (size_t)*tn);
    } else if (strcmp(kind, "timestamptz") == 0) {
        struct timeval tv = {.tv_sec = (time_t)strtoll(a, NULL, 10),
                             .tv_usec = (suseconds_t)strtol(b, NULL, 10)};
        *tn = qp_text_timestamptz(text, cap, &tv);
        *bn = qp_binary_timestamptz(bin, &tv);
    } else if (strcmp(kind, "int8") == 0) {
        *tn = qp_text_int8(text, cap, strtoll(a, NULL, 10));
        *bn = qp_binary_int8(bin, strtoll(a, NULL, 10));
    } else if (strcmp(kind, "int4") == 0) {
        *tn = qp_text_int4(text, cap, (int32_t)strtol(a, NULL, 10));
        *bn = qp_binary_int4(bin, (int32_t)strtol(a, NULL, 10));
    } else if (strcmp(kind, "bool") == 0) {
        *tn = qp_text_bool(text, cap, atoi(a) != 0);
        *bn = qp_binary_bool(bin, atoi(a) != 0);
    }
}

int main(void)
{
    char line[256];
    while (fgets(line, sizeof(line), stdin) != NULL) {
        char kind[32], a[64], b[64] = "0";
        if (sscanf(line, "%31s %63s %63s", kind, a, b) < 2) {
            fprintf(stderr, "print_query_values: bad request: %s", line);
            return 2;
        }
        static char text[2048];
        static uint8_t bin[2048];
        int tn, bn;
        encode(kind, a, b, text, sizeof(text), &tn, bin, sizeof(bin), &bn);
        print_answer(text, tn, bin, bn);
    }
    return 0;
}
