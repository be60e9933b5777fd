// The ring alone: ids, eviction, resuming, a subscriber that falls a whole ring behind, and
// events of other nodes taken from a bus (an in-process one).
import { describe, expect, it } from 'vitest';
import { testLogger } from '../../test/helpers/logger.js';
import type { BusTopicListener, ClusterBus } from '../cluster/ClusterBus.js';
import { RoomEventLog, RoomEventOutOfRangeError } from './RoomEventLog.js';
import type { RoomEvent } from './roomEvents.js';

const log = (retention = 3) => new RoomEventLog({ nodeId: 'n1', retention, log: testLogger(), bootEpochMs: 1000 });
const emit = (l: RoomEventLog, channel = 'c') => l.emit('participant.joined', channel, { peerId: 'p', userId: 'u' }, {})!;

async function take(it: AsyncGenerator<RoomEvent>, n: number): Promise<RoomEvent[]> {
	const out: RoomEvent[] = [];
	while (out.length < n) {
		const r = await it.next();
		if (r.done) break;
		out.push(r.value);
	}
	return out;
}

describe('RoomEventLog', () => {
	it('names events <nodeId>.<bootEpochMs>.<seq> and keeps the newest `retention`', () => {
		const l = log();
		const ids = [1, 2, 3, 4].map(() => emit(l).eventId);
		expect(ids).toEqual(['n1.1000.1', 'n1.1000.2', 'n1.1000.3', 'n1.1000.4']);
		expect(l.retained.map((e) => e.eventId)).toEqual(ids.slice(1));
	});

	it('resumes after a retained id and refuses one it no longer keeps', async () => {
		const l = log();
		const ids = [1, 2, 3, 4].map(() => emit(l).eventId);
		const ac = new AbortController();
		const resumed = await take(l.subscribe({ after: ids[1], accept: () => true, signal: ac.signal }), 2);
		expect(resumed.map((e) => e.eventId)).toEqual(ids.slice(2));
		await expect(take(l.subscribe({ after: ids[0], accept: () => true, signal: ac.signal }), 1)).rejects.toBeInstanceOf(RoomEventOutOfRangeError);
		ac.abort();
	});

	it('ends a subscriber the ring overtook with out-of-range rather than skipping events', async () => {
		const l = log(2);
		const ac = new AbortController();
		const sub = l.subscribe({ accept: () => true, signal: ac.signal });
		const first = sub.next();
		emit(l);
		expect((await first).value?.eventId).toBe('n1.1000.1');
		for (let i = 0; i < 3; i++) emit(l); // 2..4: the ring keeps 3 and 4, the subscriber had read 1
		await expect(sub.next()).rejects.toBeInstanceOf(RoomEventOutOfRangeError);
		ac.abort();
	});

	it('takes other nodes’ events from the bus, drops malformed ones and its own echo', async () => {
		let listener: BusTopicListener | undefined;
		const published: unknown[] = [];
		const bus = { subscribe: async (_t: string, l: BusTopicListener) => ((listener = l), async () => undefined), publish: async (_t: string, m: unknown) => void published.push(m) } as unknown as ClusterBus;
		const l = log(10);
		await l.attachBus(bus);
		const mine = emit(l);
		expect(published).toEqual([mine]);
		listener!(mine, 'n1');
		listener!({ ...mine, eventId: 'n2.5.1', nodeId: 'n2' }, 'n2');
		listener!({ nonsense: true }, 'n2');
		listener!({ ...mine, eventId: 'n3.5.1', nodeId: 'n3' }, 'n2'); // claims another node
		expect(l.retained.map((e) => e.eventId)).toEqual(['n1.1000.1', 'n2.5.1']);
		await l.close();
	});
});
