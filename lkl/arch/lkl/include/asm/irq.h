/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_IRQ_H
#define _ASM_LKL_IRQ_H

/* IRQ 0 is the timer; the rest are free for host-raised interrupts. */
#define NR_IRQS		64
#define LKL_TIMER_IRQ	0

#ifndef __ASSEMBLY__
int lkl_trigger_irq(int irq);
void lkl_run_pending_irqs(void);
#endif

#endif /* _ASM_LKL_IRQ_H */
