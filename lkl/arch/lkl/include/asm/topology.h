/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_TOPOLOGY_H
#define _ASM_LKL_TOPOLOGY_H

#include <linux/cpumask.h>

#ifdef CONFIG_SCHED_MC
/**
 * cpu_coregroup_mask() - the CPUs that share a last-level cache with @cpu
 * @cpu: a CPU
 *
 * Every CPU is a host thread of the same process, so all of them do.
 *
 * Return: the online CPUs.
 */
static inline const struct cpumask *cpu_coregroup_mask(int cpu)
{
	return cpu_online_mask;
}
#endif

#include <asm-generic/topology.h>

#endif /* _ASM_LKL_TOPOLOGY_H */
