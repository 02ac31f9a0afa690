// SPDX-License-Identifier: GPL-2.0
/*
 * Memory of the library kernel: one arena the host maps, handed to
 * memblock.  Physical addresses are host addresses (see asm/page.h).
 */
#define pr_fmt(fmt) "lkl: " fmt

#include <linux/init.h>
#include <linux/memblock.h>
#include <linux/mm.h>
#include <linux/percpu.h>
#include <linux/string.h>
#include <asm/cpu.h>
#include <asm/kasan.h>
#include <asm/sections.h>

#define LKL_DEFAULT_MEM_SIZE	(64UL << 20)
#define LKL_MIN_MEM_SIZE	(8UL << 20)

unsigned long memory_start, memory_end;
void *empty_zero_page;
static unsigned long mem_size = LKL_DEFAULT_MEM_SIZE;
static void *arena;

static int __init lkl_parse_mem(char *arg)
{
	unsigned long size = memparse(arg, NULL);

	if (size < LKL_MIN_MEM_SIZE)
		size = LKL_MIN_MEM_SIZE;
	mem_size = PAGE_ALIGN(size);
	return 0;
}
early_param("mem", lkl_parse_mem);

/**
 * lkl_mem_init() - get the kernel's memory from the host and hand it out
 *
 * Called from setup_arch() after the early parameters (mem=) were read.
 */
void __init lkl_mem_init(void)
{
	unsigned long max_zone_pfn[MAX_NR_ZONES] = { 0, };

	arena = lkl_ops->mem_alloc(mem_size);
	if (!arena)
		panic("lkl: cannot allocate %lu bytes of memory\n", mem_size);
	lkl_kasan_clear_arena(arena, mem_size);

	memory_start = (unsigned long)arena;
	memory_end = memory_start + mem_size;
	memblock_add(__pa(memory_start), mem_size);

	min_low_pfn = PFN_UP(__pa(memory_start));
	max_low_pfn = PFN_DOWN(__pa(memory_end));
	max_pfn = max_low_pfn;
	set_max_mapnr(max_low_pfn - min_low_pfn);

	empty_zero_page = memblock_alloc(PAGE_SIZE, PAGE_SIZE);
	if (!empty_zero_page)
		panic("lkl: cannot allocate the zero page\n");

	max_zone_pfn[ZONE_NORMAL] = max_low_pfn;
	free_area_init(max_zone_pfn);
	pr_info("memory: %lu KiB at 0x%lx\n", mem_size >> 10, memory_start);
}

unsigned long __per_cpu_offset[NR_CPUS] __read_mostly;

/**
 * setup_per_cpu_areas() - one contiguous unit of per-CPU data per CPU
 *
 * The generic version embeds the units and then checks their distance
 * against the vmalloc space, which a kernel without an MMU does not have.
 * Here they are simply adjacent, in one allocation from the arena.  Later
 * chunks come from the page allocator in powers of two pages, so the units
 * grow to fill one (exactly, when the number of CPUs is a power of two).
 */
void __init setup_per_cpu_areas(void)
{
	size_t static_size = __per_cpu_end - __per_cpu_start;
	size_t need = PFN_UP(max_t(size_t, PCPU_MIN_UNIT_SIZE,
				   static_size + PERCPU_MODULE_RESERVE +
				   PERCPU_DYNAMIC_RESERVE));
	unsigned int nr = nr_cpu_ids, cpu;
	size_t unit_size = roundup_pow_of_two(need * nr) / nr * PAGE_SIZE;
	struct pcpu_alloc_info *ai;
	void *units;

	ai = pcpu_alloc_alloc_info(1, nr);
	units = memblock_alloc(unit_size * nr, PAGE_SIZE);
	if (!ai || !units)
		panic("lkl: cannot allocate the per-CPU areas\n");

	ai->static_size = static_size;
	ai->reserved_size = PERCPU_MODULE_RESERVE;
	ai->dyn_size = unit_size - static_size - PERCPU_MODULE_RESERVE;
	ai->unit_size = unit_size;
	ai->atom_size = PAGE_SIZE;
	ai->alloc_size = unit_size;
	ai->groups[0].nr_units = nr;
	for (cpu = 0; cpu < nr; cpu++) {
		ai->groups[0].cpu_map[cpu] = cpu;
		memcpy(units + cpu * unit_size, __per_cpu_load, static_size);
	}

	pcpu_setup_first_chunk(ai, units);
	for_each_possible_cpu(cpu)
		__per_cpu_offset[cpu] = (unsigned long)pcpu_base_addr -
					(unsigned long)__per_cpu_start +
					pcpu_unit_offsets[cpu];
	pcpu_free_alloc_info(ai);
}

/**
 * mem_init() - release boot memory to the page allocator
 */
void __init mem_init(void)
{
	memblock_free_all();
}

/**
 * free_initmem() - keep the init sections
 *
 * They belong to the host program's image, not to the arena.
 */
void free_initmem(void)
{
}

static bool lkl_overlaps(unsigned long addr, unsigned long end,
			 const void *start, const void *stop)
{
	return addr < (unsigned long)stop && end > (unsigned long)start;
}

/**
 * lkl_addr_in_kernel() - whether a range overlaps the kernel's own memory
 * @addr: start of the range
 * @size: length of the range in bytes
 *
 * The kernel's own memory is the arena, the shared object the host loaded
 * the kernel from (if it did), and the kernel's sections: linked into the
 * host program, those lie among the program's own, which are user memory.
 *
 * Return: true if [@addr, @addr + @size) touches any of them.
 */
bool lkl_addr_in_kernel(unsigned long addr, unsigned long size)
{
	unsigned long end = addr + size;

	if (end < addr)
		return true;
	if (addr < memory_end && end > memory_start)
		return true;
	if (addr < lkl_ops->image_end && end > lkl_ops->image_start)
		return true;
	return lkl_overlaps(addr, end, _stext, _einittext) ||
	       lkl_overlaps(addr, end, __start_rodata, __end_rodata) ||
	       lkl_overlaps(addr, end, _sdata, _edata) ||
	       lkl_overlaps(addr, end, __bss_start, __bss_stop);
}

/**
 * lkl_mem_cleanup() - return the arena to the host after halt
 */
void lkl_mem_cleanup(void)
{
	lkl_kasan_clear_arena(arena, mem_size);
	lkl_ops->mem_free(arena, mem_size);
	arena = NULL;
}
