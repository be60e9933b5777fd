// Scenario recording: how much of a voice message survives a lossy uplink. A publisher
// sends speech as real Opus through a UDP proxy that drops packets at random; Parley records
// its producer (the real VoiceMessageService: DirectTransport consumer, repair buffer, Ogg
// writer, metadata); the stored file is then read back and compared frame by frame with the
// frames the publisher encoded.
//
//   publisher (RED d=N or plain Opus) -> [uplink proxy, random loss] -> Parley -> recording -> Ogg file
//
// Modes: RED distance 2, 1 and off, with NACK on (`media.opusNack`: mediasoup asks the
// publisher for lost packets, which it answers from its history) and off. All modes stream
// at once (one Parley node per NACK setting), each its own channel and recording.
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { types as ms } from 'mediasoup';
import { Peer, SILENT_LINK, type TransportAppData } from '../../server/channels/Peer.js';
import { resolveWorkerBin } from '../../server/media/workerSettings.js';
import { readPages } from '../../server/voice/ogg/OggPageWriter.js';
import { LocalVoiceStorage } from '../../server/voice/files/VoiceStorage.js';
import type { RecordingCounts } from '../../server/voice/voiceMessage.js';
import { encodeOpusFrames } from '../audio/opusEncoding.js';
import { FRAME_MS, speechPcm } from '../audio/speech.js';
import { createLossModel } from '../loss/LossModel.js';
import { seedFrom } from '../loss/random.js';
import { UdpLossProxy } from '../loss/UdpLossProxy.js';
import { FramePacer } from '../peers/FramePacer.js';
import { RtpPublisher } from '../peers/RtpPublisher.js';
import { LOOPBACK, plainListenOptions } from '../targets/ForwardingTarget.js';
import { ParleyTarget } from '../targets/ParleyTarget.js';
import { probeRedSupport, type RedSupport } from '../targets/redSupport.js';

/** Payload types as Chromium numbers them. */
const PUBLISHER_OPUS_PT = 111;
const PUBLISHER_RED_PT = 63;
/** Frames sent after the measured ones, so that a loss among the last measured frames is
 * revealed by a later packet (as in any stream that goes on) and can be repaired. */
const TAIL_FRAMES = 10;

export interface RecordingMode {
	/** RED distance (0: plain Opus). */
	red: number;
	nack: boolean;
}

export interface RecordingRepairOptions {
	modes: RecordingMode[];
	lossRate: number;
	durationS: number;
	bitrateBps: number;
	seed: number;
}

export const RECORDING_REPAIR_DEFAULTS: RecordingRepairOptions = {
	modes: [
		{ red: 2, nack: true },
		{ red: 1, nack: true },
		{ red: 0, nack: true },
		{ red: 2, nack: false },
		{ red: 0, nack: false },
	],
	lossRate: 0.2,
	durationS: 60,
	bitrateBps: 32_000,
	seed: 1,
};

export interface RecordingModeResult extends RecordingMode {
	/** Frames measured: from the first the recording holds to the last measured one sent. */
	framesSent: number;
	/** The file's frame at each of them: the exact encoded bytes, concealment, or other bytes. */
	framesExact: number;
	framesMissing: number;
	framesWrong: number;
	missingPer1000: number;
	/** Frames sent before the first the recording holds (lost before any packet arrived). */
	framesBeforeFirst: number;
	/** Uplink packets the proxy dropped (retransmissions included) and let through. */
	uplinkDropped: number;
	uplinkForwarded: number;
	publisherRetransmissions: number;
	/** The recording's own counts, as stored in the message's metadata. */
	counts: RecordingCounts | undefined;
	durationMs: number | undefined;
}

export interface RecordingRepairResult {
	path: string;
	options: RecordingRepairOptions;
	/** The mediasoup-worker binary (RED reaches recordings only through the patched one). */
	worker: { path: string; sha256: string; modified: string };
	/** The worker probe's answer (null when no RED mode was asked for). */
	redSupport: RedSupport | null;
	modes: RecordingModeResult[];
	/** Modes not measured, and why. */
	errors: string[];
}

interface Rig {
	mode: RecordingMode;
	target: ParleyTarget;
	publisher: RtpPublisher;
	up: UdpLossProxy;
	messageId: string;
	close: () => void;
}

export const modeLabel = (m: RecordingMode): string => `${m.red ? `RED d=${m.red}` : 'RED off'}, NACK ${m.nack ? 'on' : 'off'}`;

function producerParameters(ssrc: number, mode: RecordingMode): ms.RtpParameters {
	const rtcpFeedback = mode.nack ? [{ type: 'nack' }] : [];
	const opus = { mimeType: 'audio/opus', payloadType: PUBLISHER_OPUS_PT, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1 }, rtcpFeedback };
	// RED first, as Chromium offers it when the remote side does.
	const codecs = mode.red ? [{ mimeType: 'audio/red', payloadType: PUBLISHER_RED_PT, clockRate: 48000, channels: 2, rtcpFeedback }, opus] : [opus];
	return { codecs, encodings: [{ ssrc }] };
}

/** Compares the Ogg file's audio packets with the encoded frames, from the first it holds. */
export function compareRecording(file: string, sent: readonly Uint8Array[]): { exact: number; missing: number; wrong: number; first: number } {
	const packets = readPages(readFileSync(file))
		.flatMap((p) => p.packets)
		.slice(2); // OpusHead, OpusTags
	const firstReal = packets.findIndex((p) => p.length > 1);
	const key = (b: Uint8Array) => Buffer.from(b).toString('base64');
	const index = new Map<string, number>();
	for (let i = sent.length - 1; i >= 0; i--) index.set(key(sent[i]!), i);
	// The first frame written is the first packet that arrived; earlier frames were lost
	// before the recording saw anything of the stream.
	const first = firstReal < 0 ? sent.length : (index.get(key(packets[firstReal]!)) ?? sent.length) - firstReal;
	let exact = 0;
	let missing = 0;
	let wrong = 0;
	for (let i = Math.max(0, first); i < sent.length; i++) {
		const p = packets[i - first];
		if (p && Buffer.from(p).equals(Buffer.from(sent[i]!))) exact++;
		else if (!p || p.length === 1) missing++; // concealment (or the file ended)
		else wrong++;
	}
	return { exact, missing, wrong, first: Math.max(0, first) };
}

function workerInfo(bin: string): RecordingRepairResult['worker'] {
	return { path: bin, sha256: createHash('sha256').update(readFileSync(bin)).digest('hex').slice(0, 16), modified: statSync(bin).mtime.toISOString() };
}

export async function runRecordingRepair(options: RecordingRepairOptions, log: (line: string) => void = () => {}): Promise<RecordingRepairResult> {
	const o = options;
	const frameCount = Math.round((o.durationS * 1000) / FRAME_MS);
	const frames = encodeOpusFrames(speechPcm(), frameCount + TAIL_FRAMES, { bitrateBps: o.bitrateBps, inbandFec: true, packetLossPercent: Math.round(o.lossRate * 100) });
	const errors: string[] = [];
	let modes = o.modes;
	let redSupport: RedSupport | null = null;
	if (modes.some((m) => m.red > 0)) {
		redSupport = await probeRedSupport();
		log(`recording repair: RED through this worker: ${redSupport.detail}`);
		if (!redSupport.forwardsRed) {
			// A RED producer would abort the worker (every recording with it) or be discarded.
			errors.push(`RED modes not measured: this mediasoup worker does not forward RED (${redSupport.detail}); build it with scripts/mediasoup's RED patch`);
			modes = modes.filter((m) => m.red === 0);
		}
	}
	log(`recording repair: ${modes.length} recordings of ${o.durationS} s in parallel, ${(o.lossRate * 100).toFixed(0)}% random uplink loss (${modes.map(modeLabel).join('; ')})`);
	const targets = new Map<boolean, ParleyTarget>();
	const rigs: Rig[] = [];
	try {
		for (const nack of new Set(modes.map((m) => m.nack))) targets.set(nack, await ParleyTarget.start({ workers: 1, opusNack: nack }));
		for (const [i, mode] of modes.entries()) {
			const target = targets.get(mode.nack)!;
			const server = target.server;
			const name = `recording-${i}`;
			const channel = await server.channels.open(name);
			const peer = new Peer({ userId: `bench-speaker-${i}`, displayName: `bench speaker ${i}`, grants: { canPublish: true, canSubscribe: false, canRecord: true }, rtpCapabilities: channel.router.rtpCapabilities, link: SILENT_LINK });
			channel.addPeer(peer);
			const transport = await channel.router.createPlainTransport<TransportAppData>({ ...plainListenOptions(undefined, true), appData: { peerId: peer.id, direction: 'send' } });
			peer.addTransport(transport);
			const ssrc = 0x20000 + i;
			const producer = await channel.produce(peer, transport.id, 'audio', producerParameters(ssrc, mode), false);
			const up = await UdpLossProxy.create({
				target: { address: LOOPBACK, port: transport.tuple.localPort },
				// One seed for every mode: the same packets are lost in each (until retransmissions,
				// which draw from the same sequence, shift it in the NACK modes).
				forward: createLossModel({ kind: 'random', lossRate: o.lossRate }, seedFrom('recording', o.seed)),
				seed: i,
			});
			const publisher = await RtpPublisher.create({
				ssrc,
				payloadType: PUBLISHER_OPUS_PT,
				frames,
				target: { address: LOOPBACK, port: up.frontPort },
				...(mode.red ? { red: { payloadType: PUBLISHER_RED_PT, distance: mode.red } } : {}),
			});
			const message = await server.voice.startRecording(peer.userId, { kind: 'channel', channel: name }, channel.router, producer);
			rigs.push({ mode, target, publisher, up, messageId: message.id, close: () => channel.close('bench recording done') });
		}

		const total = frameCount + TAIL_FRAMES;
		const pacer = new FramePacer(rigs.map((r) => ({ sendNext: () => r.publisher.sent < total && r.publisher.sendNext() })));
		pacer.start();
		const started = performance.now();
		while (rigs.some((r) => r.publisher.sent < total)) {
			await new Promise((r) => setTimeout(r, 100));
			if (performance.now() - started > o.durationS * 1000 + 10_000) throw new Error('recording publishers fell behind');
		}
		pacer.stop();
		if (pacer.skipped > 0) log(`warning: the pacer skipped ${pacer.skipped} frames (event loop too busy)`);
		// Retransmissions of the last packets, and the repair buffer's hold.
		await new Promise((r) => setTimeout(r, 1000));

		const results: RecordingModeResult[] = [];
		for (const r of rigs) {
			const server = r.target.server;
			const owner = `bench-speaker-${rigs.indexOf(r)}`;
			await server.voice.stopRecording(owner, r.messageId);
			let m = await server.voiceStore.get(r.messageId);
			const deadline = Date.now() + 30_000;
			while (m && m.status !== 'ready' && m.status !== 'failed' && Date.now() < deadline) {
				await new Promise((res) => setTimeout(res, 50));
				m = await server.voiceStore.get(r.messageId);
			}
			const measured = frames.slice(0, frameCount);
			const cmp = m?.status === 'ready' ? compareRecording(new LocalVoiceStorage(server.storageDir).pathOf(m), measured) : { exact: 0, missing: frameCount, wrong: 0, first: 0 };
			const framesSent = frameCount - cmp.first;
			results.push({
				...r.mode,
				framesSent,
				framesExact: cmp.exact,
				framesMissing: cmp.missing,
				framesWrong: cmp.wrong,
				missingPer1000: framesSent > 0 ? (cmp.missing * 1000) / framesSent : 1000,
				framesBeforeFirst: cmp.first,
				uplinkDropped: r.up.stats.forward.dropped,
				uplinkForwarded: r.up.stats.forward.forwarded,
				publisherRetransmissions: r.publisher.retransmitted,
				counts: m?.recording,
				durationMs: m?.durationMs,
			});
		}
		const anyTarget = [...targets.values()][0]!;
		return {
			path: 'plain RTP into Parley (bench control path: Channel + PlainTransport producer), recorded by VoiceMessageService; UDP loss proxy in-process',
			options: o,
			worker: workerInfo(resolveWorkerBin(anyTarget.config.media.workerBin)),
			redSupport,
			modes: results,
			errors,
		};
	} finally {
		for (const r of rigs) {
			r.publisher.close();
			r.up.close();
			r.close();
		}
		for (const t of targets.values()) await t.close();
	}
}
