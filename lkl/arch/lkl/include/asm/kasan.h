/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_KASAN_H
#define _ASM_LKL_KASAN_H

#include <linux/const.h>

/*
 * Generic KASAN's shadow covers the host's whole 47-bit address space: the
 * kernel's arena and image, and the host memory and thread stacks kernel
 * code runs on or reads.  The host maps it once per process, without
 * reserving memory, and every kernel of the process shares it (each only
 * ever poisons its own memory).
 */
#define KASAN_SHADOW_SCALE_SHIFT	3
#define KASAN_SHADOW_OFFSET		_AC(CONFIG_KASAN_SHADOW_OFFSET, UL)
#define KASAN_HOST_ADDR_END		_AC(0x800000000000, UL)
#define KASAN_SHADOW_START		KASAN_SHADOW_OFFSET
#define KASAN_SHADOW_END		(KASAN_SHADOW_START + \
					 (KASAN_HOST_ADDR_END >> \
					  KASAN_SHADOW_SCALE_SHIFT))

#ifndef __ASSEMBLY__
#ifdef CONFIG_KASAN
int lkl_kasan_map(void);
void lkl_kasan_clear_arena(void *start, unsigned long size);
void kasan_init(void);
void lkl_kasan_forget_frames(void);
void lkl_kasan_cleanup(void);
#else
static inline int lkl_kasan_map(void) { return 0; }
static inline void lkl_kasan_clear_arena(void *start, unsigned long size) { }
static inline void kasan_init(void) { }
static inline void lkl_kasan_forget_frames(void) { }
static inline void lkl_kasan_cleanup(void) { }
#endif
#endif /* __ASSEMBLY__ */

#endif /* _ASM_LKL_KASAN_H */
