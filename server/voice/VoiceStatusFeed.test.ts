// The feed's sharing of log reads, against an in-memory log that counts its reads (the real
// logs are tested in store/VoiceEventLog.test.ts and through gRPC in server/api/): many
// subscribers at one position cost one read per commit, each still gets exactly the events
// its filter matches, in order, also when commits land while a read is in flight.
import { describe, expect, it } from 'vitest';
import { VoiceStatusFeed } from './VoiceStatusFeed.js';
import { matchesFilter, type LoggedVoiceEvent, type VoiceEventBatch, type VoiceEventFilter, type VoiceEventLog } from './store/VoiceEventLog.js';
import type { VoiceMessageEvent } from './voiceEvents.js';

class MemoryLog implements VoiceEventLog {
	readonly entries: LoggedVoiceEvent[] = [];
	reads = 0;
	/** Resolves reads a turn later, so commits can land while one is in flight. */
	async readEvents(after: string, filter: VoiceEventFilter, scanLimit: number): Promise<VoiceEventBatch> {
		this.reads++;
		const from = Number(after);
		const rows = this.entries.filter((e) => Number(e.position) > from).slice(0, scanLimit);
		await new Promise((r) => setTimeout(r, 1));
		return { events: rows.filter((e) => matchesFilter(e.event, filter)), readThrough: rows.length > 0 ? rows.at(-1)!.position : after };
	}
	async headPosition(): Promise<string> {
		return this.entries.at(-1)?.position ?? '0';
	}
	append(voiceMessageId: string, destination: string): void {
		const position = String(this.entries.length + 1);
		const event = { eventId: `e${position}`, sequence: 1, event: 'voiceMessage.created', voiceMessageId, status: 'processing', ownerId: 'u', destination, nodeId: 'n', at: 0 } as unknown as VoiceMessageEvent;
		this.entries.push({ position, event });
	}
}

async function collect(feed: VoiceStatusFeed, filter: VoiceEventFilter, signal: AbortSignal, into: string[]): Promise<void> {
	for await (const e of feed.subscribe({ filter, signal, after: '0' })) into.push(e.position);
}

const until = async (check: () => boolean, what: string) => {
	for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
	if (!check()) throw new Error(`timed out waiting for ${what}`);
};

describe('VoiceStatusFeed', () => {
	it('shares one read among the subscribers at a position, and each gets what its filter matches, in order', async () => {
		const log = new MemoryLog();
		const feed = new VoiceStatusFeed({ log, pollMs: 60_000 });
		const abort = new AbortController();
		const all = Array.from({ length: 200 }, () => [] as string[]);
		const onlyA: string[] = [];
		const running = [...all.map((into) => collect(feed, {}, abort.signal, into)), collect(feed, { destination: 'channel:a' }, abort.signal, onlyA)];
		await until(() => feed.subscribers === 201, 'the subscribers');
		await new Promise((r) => setTimeout(r, 20));
		log.reads = 0;
		const commits = 20;
		for (let i = 1; i <= commits; i++) {
			log.append(`m${i}`, i % 2 === 0 ? 'channel:a' : 'channel:b');
			feed.notify();
			// Every other commit lands while the previous one's read is in flight.
			if (i % 2 === 0) await new Promise((r) => setTimeout(r, 10));
		}
		const positions = Array.from({ length: commits }, (_, i) => String(i + 1));
		await until(() => all.every((got) => got.length === commits) && onlyA.length === commits / 2, 'every event at every subscriber');
		abort.abort();
		feed.notify();
		await Promise.all(running);
		for (const got of all) expect(got).toEqual(positions);
		expect(onlyA).toEqual(positions.filter((p) => Number(p) % 2 === 0));
		// One read per commit and position, not one per subscriber (201 x 20 before the change).
		expect(log.reads).toBeLessThanOrEqual(3 * commits);
	});
});
