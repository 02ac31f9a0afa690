/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_CACHE_H
#define _ASM_LKL_CACHE_H

/* x86_64 hosts have 64-byte cache lines (an int: printk prints it as one). */
#define L1_CACHE_SHIFT		6
#define L1_CACHE_BYTES		64

#endif /* _ASM_LKL_CACHE_H */
