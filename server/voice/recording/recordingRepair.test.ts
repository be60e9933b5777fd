// Recordings repaired on a real worker: a publisher behind 20% random uplink loss (the
// bench's RTP publisher and UDP loss proxy), recorded by Parley's VoiceMessageService, the
// stored Ogg file read back and compared frame by frame with the frames it encoded. With
// NACK, retransmissions fill the holes; with RED distance 2 as well, the copies in the next
// packets fill them first. Needs the worker with Parley's RED patch (scripts/mediasoup).
import { describe, expect, it } from 'vitest';
import { RECORDING_REPAIR_DEFAULTS, type RecordingModeResult, runRecordingRepair } from '../../../bench/scenarios/recordingRepair.js';

/** Bounds the runs meet with room to spare on a loaded machine (measured: 0 missing per
 * 1,000 with RED d=2 + NACK, 0-1.5 with NACK alone; about 200 without either). */
const MAX_MISSING_PER_1000 = { redAndNack: 2, nackOnly: 8 };

function print(m: RecordingModeResult): string {
	return `${m.red ? `RED d=${m.red}` : 'RED off'}, NACK ${m.nack ? 'on' : 'off'}: ${m.framesSent} frames, ${m.framesMissing} missing (${m.missingPer1000.toFixed(2)}/1000), ${m.counts?.framesFromRed} from RED, ${m.counts?.framesFromRetransmission} from retransmission, ${m.framesWrong} wrong; uplink dropped ${m.uplinkDropped}`;
}

describe('recordings repaired behind 20% random uplink loss', () => {
	it('holds the exact encoded frames: RED d=2 + NACK, NACK alone, and neither for contrast', async () => {
		const result = await runRecordingRepair({
			...RECORDING_REPAIR_DEFAULTS,
			durationS: 20,
			modes: [
				{ red: 2, nack: true },
				{ red: 0, nack: true },
				{ red: 0, nack: false },
			],
		});
		for (const m of result.modes) console.log(print(m));
		console.log(`worker ${result.worker.path} sha256 ${result.worker.sha256}`);
		// The worker without the RED patch aborts on a RED producer: the RED mode is not measured.
		expect(result.errors).toEqual([]);
		const mode = (red: number, nack: boolean) => result.modes.find((m) => m.red === red && m.nack === nack)!;
		const [red, nack, none] = [mode(2, true), mode(0, true), mode(0, false)];
		for (const m of result.modes) {
			// Never a frame other than the one encoded, whatever was lost.
			expect(m.framesWrong).toBe(0);
			expect(m.framesExact + m.framesMissing).toBe(m.framesSent);
			expect(m.framesSent).toBeGreaterThan(990);
			// The loss really happened (20% of about 1,000 packets, retransmissions included).
			expect(m.uplinkDropped / (m.uplinkDropped + m.uplinkForwarded)).toBeGreaterThan(0.15);
			// What the metadata says is missing is what the file misses (the tail frames after
			// the measured ones may add to the recording's own count).
			expect(m.counts!.packetsMissing).toBeGreaterThanOrEqual(m.framesMissing);
			expect(m.counts!.packetsMissing).toBeLessThanOrEqual(m.framesMissing + 10);
			expect(m.counts!.redInvalid).toBe(0);
		}
		expect(red.missingPer1000).toBeLessThanOrEqual(MAX_MISSING_PER_1000.redAndNack);
		// RED repairs first (the copy comes with the next packet, before any retransmission).
		expect(red.counts!.framesFromRed).toBeGreaterThan(100);
		expect(red.counts!.framesFromRed).toBeGreaterThan(red.counts!.framesFromRetransmission!);
		expect(nack.missingPer1000).toBeLessThanOrEqual(MAX_MISSING_PER_1000.nackOnly);
		expect(nack.counts!.framesFromRetransmission).toBeGreaterThan(100);
		expect(nack.counts!.framesFromRed).toBe(0);
		// Without either, the file misses what the uplink dropped.
		expect(none.missingPer1000).toBeGreaterThan(150);
		expect(none.counts).toMatchObject({ framesFromRed: 0, framesFromRetransmission: 0 });
	}, 120_000);
});
