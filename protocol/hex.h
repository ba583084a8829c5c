/*
 * hex.h — a hexadecimal digit's value, the one spelling of it that the
 * readers of \uXXXX escapes (json.c, sql_calls.c's U& names), %XX escapes
 * (geo_headers.c) and WAL positions (lsn.c) share.
 */
#ifndef PGNEAR_PROTOCOL_HEX_H
#define PGNEAR_PROTOCOL_HEX_H

/* The value of the hex digit c (either case), or -1 when it is not one. */
static inline int hex_digit_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
