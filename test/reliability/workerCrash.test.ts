// A mediasoup worker killed (SIGKILL) under a live channel: two peers that each publish a
// tone and listen to the other, one of them recording. The channel closes, both peers get
// `channelClosing` and rejoin at once (as the browser client does), the channel is created
// again on a live worker, and audio flows again. Measured: kill to the first packet of the
// new consumer at each listener. The recording on the dead worker is finalized with what it
// received (status ready, duration = what was sent).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Notifications } from '../../protocol/messages.js';
import { LocalVoiceStorage } from '../../server/voice/files/VoiceStorage.js';
import { decodeFileToMono, dominantFrequency, encodeTone } from '../helpers/audio.js';
import { processAlive } from '../helpers/process.js';
import type { TestSignalingClient } from '../../testkit/signalingClient.js';
import { publishWithWerift, streamTone, type ToneStream, type WeriftPublisher } from '../../testkit/weriftPublisher.js';
import { mediaLoad, sleep, startHarness, waitUntil, type Harness, type RtpCapabilities } from './helpers/harness.js';
import { listenWithWerift, type WeriftListener } from '../../testkit/weriftListener.js';

/** The target for audio to resume after a worker dies. */
const RECOVERY_TARGET_MS = 3000;
const KILLS = 3;

interface Bot {
	name: string;
	client: TestSignalingClient;
	rtpCapabilities: RtpCapabilities;
	tone: Uint8Array[];
	publisher?: WeriftPublisher;
	stream?: ToneStream;
	listener?: WeriftListener;
}

describe('mediasoup worker crash under a live channel', () => {
	let h: Harness;
	const bots: Bot[] = [];

	beforeAll(async () => {
		h = await startHarness({ PARLEY_MEDIA_WORKERS: '2', PARLEY_CHANNELS_EMPTY_CLOSE_DELAY_MS: '200' });
	});

	afterAll(async () => {
		for (const b of bots) {
			await b.stream?.stop();
			await b.publisher?.close();
			await b.listener?.close();
		}
		await h.close();
	});

	/** Publishes, then listens to the one other peer. */
	async function enter(bot: Bot): Promise<void> {
		bot.publisher = await publishWithWerift(bot.client);
		bot.stream = streamTone(bot.publisher, bot.tone);
		bot.listener = await listenWithWerift(bot.client, 1);
	}

	/** Rejoins after channelClosing the way ParleyClient does: same socket, new session. */
	async function rejoin(bot: Bot): Promise<void> {
		const old = { stream: bot.stream, publisher: bot.publisher, listener: bot.listener };
		void old.stream?.stop().then(() => old.publisher?.close());
		void old.listener?.close();
		const join = await bot.client.request('join', { channel: 'room', rtpCapabilities: bot.rtpCapabilities });
		if (!join.ok) throw new Error(`${bot.name} rejoin: ${join.error.code}`);
		await enter(bot);
	}

	it(`recovers within ${RECOVERY_TARGET_MS} ms, ${KILLS} times in a row, and finalizes the recording`, async () => {
		for (const [name, hz] of [
			['ada', 1000],
			['bob', 2000],
		] as const) {
			const j = await h.joined('room', { userId: name });
			bots.push({ name, client: j.client, rtpCapabilities: j.rtpCapabilities, tone: encodeTone(hz, 50) });
		}
		const [ada, bob] = bots as [Bot, Bot];
		await Promise.all([enter(ada), enter(bob)]);
		// Both hear each other before anything breaks.
		await waitUntil(() => ada.listener!.packets.length > 10 && bob.listener!.packets.length > 10, 5000, 'audio both ways');

		const rec = await ada.client.request('startRecording', { producerId: ada.publisher!.producerId, destination: { kind: 'channel', channel: 'room' } });
		if (!rec.ok) throw new Error(`startRecording: ${rec.error.code}`);
		const sentAtRecordStart = ada.stream!.sent;
		await sleep(2000);

		const recoveries: { killToClosingMs: number; killToAudioMs: number[]; replacedMs: number }[] = [];
		for (let k = 0; k < KILLS; k++) {
			const channel = h.server.channels.get('room')!;
			const index = h.server.workers.workerIndexOf(channel.router)!;
			const pid = h.server.workers.info()[index]!.pid!;
			const marks = bots.map((b) => b.client.notifications.length);
			const replaced = new Promise<number>((resolve) => h.server.workers.once('workerReplaced', () => resolve(performance.now())));
			const sentAtKill = ada.stream!.sent;

			const killedAt = performance.now();
			process.kill(pid, 'SIGKILL');

			const closingAt = await Promise.all(
				bots.map(async (b, i) => {
					await b.client.until(() => b.client.notifications.slice(marks[i]).some((n) => n.method === 'channelClosing'), 5000, 'channelClosing');
					return performance.now();
				}),
			);
			await Promise.all([rejoin(ada), rejoin(bob)]);
			await waitUntil(() => ada.listener!.packets.length > 0 && bob.listener!.packets.length > 0, RECOVERY_TARGET_MS * 2, 'audio after the crash');
			const killToAudioMs = bots.map((b) => Math.round(b.listener!.packets[0]!.atMs - killedAt));
			recoveries.push({ killToClosingMs: Math.round(Math.max(...closingAt) - killedAt), killToAudioMs, replacedMs: Math.round((await replaced) - killedAt) });

			// The channel lives on a running worker again, the dead one was replaced, and
			// nothing of the old channel is left over.
			expect(processAlive(pid)).toBe(false);
			const reopened = h.server.channels.get('room')!;
			expect(reopened).not.toBe(channel);
			expect(reopened.closed).toBe(false);
			const newIndex = h.server.workers.workerIndexOf(reopened.router)!;
			expect(h.server.workers.info()[newIndex]!.alive).toBe(true);
			expect(h.server.workers.healthy).toBe(true);
			expect(mediaLoad(h.server)).toMatchObject({ routers: 1, transports: 4, producers: 2, consumers: 2 });

			if (k === 0) {
				// The recording on the dead worker: finalized with what reached the server.
				const update = (status: string) => (n: { method: string; data: unknown }) =>
					n.method === 'voiceMessage' && (n.data as Notifications['voiceMessage']).message.id === rec.data.voiceMessageId && (n.data as Notifications['voiceMessage']).message.status === status;
				await ada.client.until(() => ada.client.notifications.some(update('ready')), 5000, 'recording ready');
				const m = (await h.server.voiceStore.get(rec.data.voiceMessageId))!;
				expect(m.status).toBe('ready');
				const sentWhileRecording = sentAtKill - sentAtRecordStart;
				// Everything sent until the kill, minus what was in flight (a few packets).
				expect(m.recording!.packetsWritten).toBeGreaterThanOrEqual(sentWhileRecording - 5);
				expect(m.recording!.packetsWritten).toBeLessThanOrEqual(sentWhileRecording + 5);
				expect(Math.abs(m.durationMs! - m.recording!.packetsWritten * 20)).toBeLessThanOrEqual(20);
				const audio = decodeFileToMono(new LocalVoiceStorage(h.server.storageDir).pathOf(m));
				expect(Math.abs(audio.length / 48 - m.durationMs!)).toBeLessThanOrEqual(40);
				expect(Math.abs(dominantFrequency(audio.subarray(4800)) - 1000)).toBeLessThanOrEqual(10);
			}
			// Keep the audio going a moment: it must keep flowing, not just start.
			const before = bots.map((b) => b.listener!.packets.length);
			await sleep(500);
			bots.forEach((b, i) => expect(b.listener!.packets.length - before[i]!).toBeGreaterThanOrEqual(20));
		}
		console.log(`worker crash recovery (kill -> first packet at each listener): ${JSON.stringify(recoveries)}`);
		for (const r of recoveries) for (const ms of r.killToAudioMs) expect(ms).toBeLessThan(RECOVERY_TARGET_MS);
	});
});
