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

#endif /* _ASM_LKL_STRING_H */
