// The envelope of a tone as a page decodes it, for telling whether a listener heard it without
// gaps: the stream the page left in `window.__envelopeStream` goes through a band-pass at the
// tone (so noise and concealment artefacts elsewhere in the spectrum do not count as tone) into
// an AudioWorklet that keeps the RMS of every render quantum (128 samples, 2.7 ms at 48 kHz).
// Works in Chromium (playwright) and Firefox (puppeteer): each in-page function is
// self-contained and takes one serializable argument.

/** What the page recorded: one RMS value per render quantum, oldest first. */
export interface ToneEnvelope {
	sampleRate: number;
	quantumFrames: number;
	levels: number[];
}

/** The longest stretch where the tone was missing, and how the level was judged. */
export interface EnvelopeGaps {
	/** Median quantum RMS over the analysed part: the tone's level as heard. */
	medianLevel: number;
	/** A quantum below medianLevel * thresholdRatio counts as "no tone". */
	thresholdRatio: number;
	/** Longest run of such quanta, in milliseconds (0 when the tone never dropped out). */
	longestGapMs: number;
	/** How many times the tone dropped below the threshold (runs of any length). */
	gapCount: number;
	/** Runs longer than one quantum, in milliseconds, longest first (at most 20). */
	gapsMs: number[];
	analysedMs: number;
}

interface MinimalPage {
	evaluate<R, A>(fn: (arg: A) => R | Promise<R>, arg: A): Promise<R>;
}

/** Starts recording the envelope of `window.__envelopeStream` around `toneHz` in `page`. */
export async function startToneEnvelope(page: MinimalPage, toneHz: number): Promise<void> {
	await page.evaluate(async (hz: number) => {
		const w = window as unknown as { __envelopeStream: MediaStream; __envelope?: { ctx: AudioContext; levels: number[]; source: MediaStreamAudioSourceNode } };
		const ctx = new AudioContext();
		await ctx.resume();
		// The processor posts each quantum's RMS; a worklet sees every sample, where polling an
		// AnalyserNode from a timer would miss short dropouts.
		const processor = `
			class EnvelopeProcessor extends AudioWorkletProcessor {
				process(inputs) {
					const channel = inputs[0] && inputs[0][0];
					let sum = 0;
					if (channel) for (let i = 0; i < channel.length; i++) sum += channel[i] * channel[i];
					this.port.postMessage(channel ? Math.sqrt(sum / channel.length) : 0);
					return true;
				}
			}
			registerProcessor('envelope-processor', EnvelopeProcessor);`;
		const url = URL.createObjectURL(new Blob([processor], { type: 'application/javascript' }));
		await ctx.audioWorklet.addModule(url);
		URL.revokeObjectURL(url);
		const source = ctx.createMediaStreamSource(w.__envelopeStream);
		const bandPass = ctx.createBiquadFilter();
		bandPass.type = 'bandpass';
		bandPass.frequency.value = hz;
		bandPass.Q.value = 4;
		const node = new AudioWorkletNode(ctx, 'envelope-processor');
		const levels: number[] = [];
		node.port.onmessage = (event: MessageEvent<number>) => levels.push(event.data);
		// Connected to the destination (it outputs silence) so the graph is pulled.
		source.connect(bandPass).connect(node).connect(ctx.destination);
		w.__envelope = { ctx, levels, source };
	}, toneHz);
}

/** Stops the recording started by startToneEnvelope and returns it. */
export function stopToneEnvelope(page: MinimalPage): Promise<ToneEnvelope> {
	return page.evaluate(async () => {
		const w = window as unknown as { __envelope?: { ctx: AudioContext; levels: number[] } };
		const recording = w.__envelope;
		if (!recording) throw new Error('startToneEnvelope() was not called');
		delete w.__envelope;
		const sampleRate = recording.ctx.sampleRate;
		await recording.ctx.close();
		return { sampleRate, quantumFrames: 128, levels: [...recording.levels] };
	}, undefined);
}

/**
 * Where the tone dropped out: quanta below `thresholdRatio` of the median level (default 0.1,
 * i.e. 20 dB down), after skipping the first `skipMs` (the band-pass settling, the stream
 * starting).
 */
export function envelopeGaps(envelope: ToneEnvelope, { thresholdRatio = 0.1, skipMs = 300 } = {}): EnvelopeGaps {
	const quantumMs = (1000 * envelope.quantumFrames) / envelope.sampleRate;
	const levels = envelope.levels.slice(Math.ceil(skipMs / quantumMs));
	const sorted = [...levels].sort((a, b) => a - b);
	const medianLevel = sorted.length ? sorted[Math.floor(sorted.length / 2)]! : 0;
	const threshold = medianLevel * thresholdRatio;
	const runs: number[] = [];
	let run = 0;
	for (const level of levels) {
		// A median of 0 (nothing heard at all) makes every quantum a gap.
		if (level < threshold || medianLevel === 0) run++;
		else {
			if (run > 0) runs.push(run);
			run = 0;
		}
	}
	if (run > 0) runs.push(run);
	runs.sort((a, b) => b - a);
	return {
		medianLevel,
		thresholdRatio,
		longestGapMs: (runs[0] ?? 0) * quantumMs,
		gapCount: runs.length,
		gapsMs: runs.filter((r) => r > 1).slice(0, 20).map((r) => Math.round(r * quantumMs * 10) / 10),
		analysedMs: levels.length * quantumMs,
	};
}
