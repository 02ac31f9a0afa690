/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_IRQ_H
#define _ASM_LKL_IRQ_H

/* IRQ 0 is the per-CPU timer; the rest are free for host interrupts. */
#define NR_IRQS		64
#define LKL_TIMER_IRQ	0

#endif /* _ASM_LKL_IRQ_H */
