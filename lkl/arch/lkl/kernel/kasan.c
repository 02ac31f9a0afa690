// SPDX-License-Identifier: GPL-2.0
/*
 * Generic KASAN for the library kernel.
 *
 * The host maps the shadow of its whole address space before the first
 * instrumented instruction runs (asm/kasan.h), so no access ever finds its
 * shadow missing: not the kernel's, not one of host memory.  A process may
 * run many kernels, one after another at the same addresses: each clears
 * the shadow of its arena and image when it boots and when it halts, so no
 * kernel inherits another's poison.
 *
 * Kernel code runs on host thread stacks, and this arch leaves frames with
 * __builtin_longjmp().  The redzones that the instrumented frames it skips
 * had poisoned stay poisoned, under memory the next uninstrumented frames
 * (the arch's, the host's) use: each landing forgets them.
 */
#define pr_fmt(fmt) "lkl: " fmt

#include <linux/init.h>
#include <linux/mm.h>
#include <linux/kasan.h>
#include <linux/sched/task.h>
#include <asm/cpu.h>
#include <asm/host_ops.h>
#include <asm/kasan.h>
#include <asm/sections.h>

/* Deeper than any chain of kernel frames between a setjmp and its jump. */
#define LKL_KASAN_FRAMES	(32UL << 10)
#define LKL_KASAN_GRANULE	BIT(KASAN_SHADOW_SCALE_SHIFT)

/* Unpoison [@start, @end) by returning its shadow to zeroes. */
static void lkl_kasan_clear(const void *start, const void *end)
{
	unsigned long s = ALIGN_DOWN((unsigned long)start, LKL_KASAN_GRANULE);
	unsigned long e = ALIGN((unsigned long)end, LKL_KASAN_GRANULE);

	if (e > s)
		lkl_ops->shadow_clear((unsigned long)kasan_mem_to_shadow((void *)s),
				      (e - s) >> KASAN_SHADOW_SCALE_SHIFT);
}

static void lkl_kasan_clear_image(void)
{
	if (lkl_ops->image_end) {
		lkl_kasan_clear((void *)lkl_ops->image_start,
				(void *)lkl_ops->image_end);
		return;
	}
	/* Linked into the host program: only the kernel's own sections. */
	lkl_kasan_clear(__start_rodata, __end_rodata);
	lkl_kasan_clear(_sdata, _edata);
	lkl_kasan_clear(__bss_start, __bss_stop);
}

/**
 * lkl_kasan_map() - have the host map the shadow
 *
 * Called by lkl_start_kernel() before any instrumented code runs.
 *
 * Return: 0, or -ENOMEM if the host cannot reserve the address space.
 */
int lkl_kasan_map(void)
{
	if (lkl_ops->shadow_map(KASAN_SHADOW_START,
				KASAN_SHADOW_END - KASAN_SHADOW_START))
		return -ENOMEM;
	return 0;
}

/**
 * lkl_kasan_clear_arena() - forget earlier kernels' poison of the arena
 * @start: start of the arena
 * @size: its size in bytes
 */
void lkl_kasan_clear_arena(void *start, unsigned long size)
{
	lkl_kasan_clear(start, start + size);
}

/**
 * kasan_init() - start reporting
 *
 * Called from setup_arch() once the arena is known, before the
 * constructors register the kernel's globals (do_ctors()).
 */
void __init kasan_init(void)
{
	lkl_kasan_clear_image();
	init_task.kasan_depth = 0;
	pr_info("KernelAddressSanitizer initialized (generic)\n");
}

/**
 * lkl_kasan_forget_frames() - unpoison the stack below the caller
 *
 * Called where a __builtin_longjmp() lands, by the frame it lands in.
 */
void lkl_kasan_forget_frames(void)
{
	unsigned long sp = ALIGN_DOWN((unsigned long)__builtin_frame_address(0),
				      LKL_KASAN_GRANULE);

	__memset(kasan_mem_to_shadow((void *)(sp - LKL_KASAN_FRAMES)), 0,
		 LKL_KASAN_FRAMES >> KASAN_SHADOW_SCALE_SHIFT);
}

/**
 * lkl_kasan_cleanup() - forget this kernel's poison of its image
 *
 * Called by lkl_sys_halt() once no kernel code runs any more: the host may
 * load another kernel, or put its own data, at the same addresses.
 */
void lkl_kasan_cleanup(void)
{
	lkl_kasan_clear_image();
}
