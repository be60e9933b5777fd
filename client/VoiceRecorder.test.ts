// VoiceRecorder alone: its transitions (start, stop, ended by the server, lost with the
// producer), the answers and notifications that cross, and the ids remembered as ended.
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { ParleyError } from './ParleyError.js';
import { RECENT_ENDED_IDS_KEPT, VoiceRecorder, type StartedRecording, type VoiceRecording } from './VoiceRecorder.js';

const STARTED_AT_MS = 1_700_000_000_000;

function started(voiceMessageId: string): StartedRecording {
	return { voiceMessageId, destination: { kind: 'channel', channel: 'lobby' }, producerId: 'producer-1', maxDurationMs: 60_000 };
}

interface Context {
	recorder: VoiceRecorder;
	changes: [VoiceRecording | null, string | undefined][];
	/** Starts `id` the way the client does: the server answers, then started(). */
	start(id: string, producerLive?: boolean): Promise<string>;
}

describe('VoiceRecorder', () => {
	let ctx: Context;

	beforeEach(() => {
		const recorder = new VoiceRecorder({ now: () => STARTED_AT_MS });
		ctx = {
			recorder,
			changes: [],
			start: (id, producerLive = true) =>
				recorder.start(async () => {
					recorder.started(started(id), { producerLive });
					return id;
				}),
		};
		recorder.on('recordingChanged', (recording, reason) => ctx.changes.push([recording, reason]));
	});

	it('starts with nothing recorded or to stop', () => {
		expect(ctx.recorder.recording).toBeNull();
		expect(ctx.recorder.starting).toBe(false);
		expect(ctx.recorder.stoppableId).toBeNull();
	});

	it('a confirmed start becomes the recording, stamped by its clock, announced once', async () => {
		await expect(ctx.start('rec-1')).resolves.toBe('rec-1');
		const recording = { ...started('rec-1'), startedAtMs: STARTED_AT_MS };
		expect(ctx.recorder.recording).toEqual(recording);
		expect(ctx.recorder.stoppableId).toBe('rec-1');
		expect(ctx.changes).toEqual([[recording, undefined]]);
	});

	it('is starting while the request waits, and not once it settled', async () => {
		let answer!: () => void;
		const starting = ctx.recorder.start(() => new Promise<void>((resolve) => (answer = resolve)));
		expect(ctx.recorder.starting).toBe(true);
		answer();
		await starting;
		expect(ctx.recorder.starting).toBe(false);
	});

	it('refuses a start while another one is starting, without calling its request', async () => {
		let answer!: () => void;
		const first = ctx.recorder.start(() => new Promise<void>((resolve) => (answer = resolve)));
		const request = vi.fn(async () => 'rec-2');
		await expect(ctx.recorder.start(request)).rejects.toMatchObject({ code: 'E_INVALID_STATE', message: /Already recording/ });
		expect(request).not.toHaveBeenCalled();
		answer();
		await first;
	});

	it('refuses a start while a recording runs', async () => {
		await ctx.start('rec-1');
		await expect(ctx.start('rec-2')).rejects.toMatchObject({ code: 'E_INVALID_STATE', message: /Already recording/ });
		expect(ctx.recorder.recording?.voiceMessageId).toBe('rec-1');
	});

	it('a failed start leaves nothing behind, and a new start may follow', async () => {
		const failure = new ParleyError('E_TOO_MANY_RECORDINGS');
		await expect(ctx.recorder.start(() => Promise.reject(failure))).rejects.toBe(failure);
		expect(ctx.recorder.starting).toBe(false);
		expect(ctx.recorder.recording).toBeNull();
		expect(ctx.recorder.stoppableId).toBeNull();
		await expect(ctx.start('rec-1')).resolves.toBe('rec-1');
	});

	it('started() outside start() is a programming error', () => {
		expect(() => ctx.recorder.started(started('rec-1'), { producerLive: true })).toThrow(Error);
		expect(ctx.recorder.recording).toBeNull();
	});

	it('stop() asks for the running recording, then ends it without a reason', async () => {
		await ctx.start('rec-1');
		const request = vi.fn(async (id: string) => `stopped ${id}`);
		await expect(ctx.recorder.stop(request)).resolves.toBe('stopped rec-1');
		expect(request).toHaveBeenCalledWith('rec-1');
		expect(ctx.recorder.recording).toBeNull();
		expect(ctx.recorder.stoppableId).toBeNull();
		expect(ctx.changes.at(-1)).toEqual([null, undefined]);
	});

	it('stop() with nothing to stop is E_INVALID_STATE, without calling its request', async () => {
		const request = vi.fn(async () => undefined);
		await expect(ctx.recorder.stop(request)).rejects.toMatchObject({ code: 'E_INVALID_STATE', message: 'Not recording.' });
		expect(request).not.toHaveBeenCalled();
	});

	it('the producer lost ends the recording with the reason; stop() still collects it, once', async () => {
		await ctx.start('rec-1');
		ctx.recorder.lost('producer closed');
		expect(ctx.recorder.recording).toBeNull();
		expect(ctx.changes.at(-1)).toEqual([null, 'producer closed']);
		expect(ctx.recorder.stoppableId).toBe('rec-1');

		await ctx.recorder.stop(async () => undefined);
		expect(ctx.recorder.stoppableId).toBeNull();
		// Already announced as ended: collecting it says nothing more.
		expect(ctx.changes).toHaveLength(2);
		await expect(ctx.recorder.stop(async () => undefined)).rejects.toMatchObject({ code: 'E_INVALID_STATE' });
	});

	it('a loss with no recording running changes nothing', () => {
		ctx.recorder.lost('left the channel');
		expect(ctx.changes).toEqual([]);
		expect(ctx.recorder.stoppableId).toBeNull();
	});

	it('a recording ended by the server ends here with its reason; stop() still collects it', async () => {
		await ctx.start('rec-1');
		ctx.recorder.ended('rec-1', 'max duration reached');
		expect(ctx.recorder.recording).toBeNull();
		expect(ctx.changes.at(-1)).toEqual([null, 'max duration reached']);
		expect(ctx.recorder.stoppableId).toBe('rec-1');
	});

	it('another recording ending leaves ours running', async () => {
		await ctx.start('rec-1');
		ctx.recorder.ended('rec-other', 'max duration reached');
		expect(ctx.recorder.recording?.voiceMessageId).toBe('rec-1');
		expect(ctx.changes).toHaveLength(1);
	});

	it('an id remembered as ended is over when its start answer arrives: no recording, but stoppable', async () => {
		ctx.recorder.ended('rec-1');
		await expect(ctx.start('rec-1')).resolves.toBe('rec-1');
		expect(ctx.recorder.recording).toBeNull();
		expect(ctx.changes).toEqual([]);
		expect(ctx.recorder.stoppableId).toBe('rec-1');
	});

	it('a start whose producer went meanwhile is over before it began, but stoppable', async () => {
		await ctx.start('rec-1', false);
		expect(ctx.recorder.recording).toBeNull();
		expect(ctx.changes).toEqual([]);
		expect(ctx.recorder.stoppableId).toBe('rec-1');
	});

	it('a new recording replaces one that ended by itself as what stop() answers for', async () => {
		await ctx.start('rec-1');
		ctx.recorder.lost('producer closed');
		await ctx.start('rec-2');
		expect(ctx.recorder.stoppableId).toBe('rec-2');
		await ctx.recorder.stop(async () => undefined);
		expect(ctx.recorder.stoppableId).toBeNull();
	});

	it('forgets the recording when the server no longer knows it (E_NOT_FOUND)', async () => {
		await ctx.start('rec-1');
		const gone = new ParleyError('E_NOT_FOUND');
		await expect(ctx.recorder.stop(() => Promise.reject(gone))).rejects.toBe(gone);
		expect(ctx.recorder.recording).toBeNull();
		expect(ctx.recorder.stoppableId).toBeNull();
		expect(ctx.changes.at(-1)).toEqual([null, undefined]);
	});

	it('keeps the recording after any other stop failure, so stop() can be tried again', async () => {
		await ctx.start('rec-1');
		const timeout = new ParleyError('E_TIMEOUT');
		await expect(ctx.recorder.stop(() => Promise.reject(timeout))).rejects.toBe(timeout);
		expect(ctx.recorder.recording?.voiceMessageId).toBe('rec-1');
		await expect(ctx.recorder.stop(async (id) => id)).resolves.toBe('rec-1');
	});

	it(`remembers only the newest ${RECENT_ENDED_IDS_KEPT} ended ids`, async () => {
		ctx.recorder.ended('rec-oldest');
		for (let i = 0; i < RECENT_ENDED_IDS_KEPT; i++) ctx.recorder.ended(`rec-${i}`);
		// Forgotten: its start answer is taken as a live recording.
		await ctx.start('rec-oldest');
		expect(ctx.recorder.recording?.voiceMessageId).toBe('rec-oldest');
	});

	it('an id ended again counts as the newest', async () => {
		ctx.recorder.ended('rec-kept');
		for (let i = 0; i < RECENT_ENDED_IDS_KEPT - 1; i++) ctx.recorder.ended(`rec-${i}`);
		ctx.recorder.ended('rec-kept');
		ctx.recorder.ended('rec-one-more');
		await ctx.start('rec-kept');
		expect(ctx.recorder.recording).toBeNull();
	});
});
