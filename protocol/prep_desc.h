/*
 * prep_desc.h — what a client decodes a prepared statement's rows and
 * binds its parameters by, as a Describe 'S' answers it, in one number.
 *
 * Under transaction pooling a statement may be planned afresh on another
 * server connection than the one a client described it on (prepared.h):
 * that plan must be the one the client was told, or the client decodes
 * rows of another type with the old description (postgres.js does: an
 * int[] read as bytea).  prep_desc_hash folds the answer's messages into a
 * hash: ParameterDescription whole (the parameters' type OIDs), then
 * RowDescription's columns by name, type OID and type modifier (what
 * PostgreSQL compares before it refuses a stale plan with 0A000; not the
 * table's OID and column number, which a table made again with the same
 * columns changes), or NoData.  Two plans with one hash are described
 * alike to a client.
 */
#ifndef PGNEAR_PROTOCOL_PREP_DESC_H
#define PGNEAR_PROTOCOL_PREP_DESC_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/fnv.h"

/* The hash before the ParameterDescription ('t'), which begins every answer. */
#define PREP_DESC_BASIS FNV1A_BASIS

/*
 * h with one message of a Describe 'S' answer folded in: 't', 'T' or 'n'
 * (type), body len bytes.  A RowDescription that cannot be read is folded
 * whole (it then matches only itself).
 */
uint64_t prep_desc_hash(uint64_t h, uint8_t type, const uint8_t *body, size_t len);

#endif
