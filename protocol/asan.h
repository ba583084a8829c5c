/*
 * asan.h — whether AddressSanitizer is built in (PGNEAR_ASAN): GCC says
 * so with __SANITIZE_ADDRESS__, Clang 14 (the fuzz targets' compiler)
 * only through __has_feature(address_sanitizer).  Memory pgnear maps for
 * itself is poisoned, or made a root for LeakSanitizer, only when it is.
 */
#ifndef PGNEAR_PROTOCOL_ASAN_H
#define PGNEAR_PROTOCOL_ASAN_H

#if defined(__SANITIZE_ADDRESS__)
#define PGNEAR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PGNEAR_ASAN 1
#endif
#endif

#endif
