/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_IRQ_H
#define _ASM_LKL_IRQ_H

/*
 * One interrupt: IRQ 0, the per-CPU timer.  Each descriptor costs its
 * /proc/irq directory and per-CPU counters at every boot, so there are
 * no spare ones; a host device would add its own.
 */
#define NR_IRQS		1
#define LKL_TIMER_IRQ	0

#endif /* _ASM_LKL_IRQ_H */
