import { describe, expect, it } from 'vitest';
import { RtpReorderBuffer } from './RtpReorderBuffer.js';

function run(seqs: number[], capacity = 3) {
	const out: number[] = [];
	const buffer = new RtpReorderBuffer<number>(capacity, (item) => out.push(item));
	for (const s of seqs) buffer.push(s, s);
	buffer.flush();
	return { out, counts: buffer.counts };
}

describe('RtpReorderBuffer', () => {
	it('passes an in-order stream straight through', () => {
		expect(run([1, 2, 3, 4])).toMatchObject({ out: [1, 2, 3, 4], counts: { received: 4, emitted: 4, gaps: 0, duplicates: 0 } });
	});

	it('reorders within the window and drops duplicates', () => {
		expect(run([1, 3, 2, 2, 4, 3])).toMatchObject({ out: [1, 2, 3, 4], counts: { emitted: 4, duplicates: 2, late: 0 } });
	});

	it('counts gaps once the window gives up on them, and late arrivals after that', () => {
		const { out, counts } = run([1, 2, 5, 6, 7, 8, 3]);
		expect(out).toEqual([1, 2, 5, 6, 7, 8]);
		expect(counts).toMatchObject({ gaps: 1, missing: 2, late: 1, duplicates: 0 });
	});

	it('follows the 16-bit wrap', () => {
		expect(run([65534, 65535, 1, 0, 2]).out).toEqual([65534, 65535, 0, 1, 2]);
	});

	it('stays cheap when every packet jumps half the sequence space', () => {
		const t0 = performance.now();
		const { counts } = run(Array.from({ length: 2000 }, (_, i) => (i * 0x7fff) & 0xffff));
		expect(performance.now() - t0).toBeLessThan(500);
		expect(counts.emitted).toBe(2000);
	});
});
