/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_STRING_H
#define _ASM_LKL_STRING_H

#include <linux/types.h>

/*
 * The arch has its own memcpy(), memmove() and memset() (arch/lkl/lib/),
 * as the sanitizers ask: KCSAN's and KASAN's checked versions call these.
 */
#define __HAVE_ARCH_MEMCPY
#define __HAVE_ARCH_MEMMOVE
#define __HAVE_ARCH_MEMSET

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *s, int c, size_t n);

/*
 * The unchecked versions.  With KASAN, mm/kasan defines the mem*() names,
 * checks the range and calls these; code that KASAN does not instrument
 * calls them directly, as x86 does.
 */
void *__memcpy(void *dst, const void *src, size_t n);
void *__memmove(void *dst, const void *src, size_t n);
void *__memset(void *s, int c, size_t n);

#if defined(CONFIG_KASAN) && !defined(__SANITIZE_ADDRESS__)
#define memcpy(dst, src, n)	__memcpy(dst, src, n)
#define memmove(dst, src, n)	__memmove(dst, src, n)
#define memset(s, c, n)		__memset(s, c, n)
#endif

#endif /* _ASM_LKL_STRING_H */
