/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_CACHE_H
#define _ASM_LKL_CACHE_H

#include <linux/const.h>

/* x86_64 hosts have 64-byte cache lines. */
#define L1_CACHE_SHIFT		6
#define L1_CACHE_BYTES		(_AC(1, UL) << L1_CACHE_SHIFT)

#endif /* _ASM_LKL_CACHE_H */
