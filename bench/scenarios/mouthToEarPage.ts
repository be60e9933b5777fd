// What the mouth-to-ear scenario runs inside its Chromium pages, as one script installed with
// page.addInitScript (plain JavaScript in a string: nothing of the bench's own build runs in
// the page). It puts `window.__m2e` in each page:
// - startDetector(key, stream, options): an onset detector on a MediaStream. The stream goes
//   into an AudioContext, through an AudioWorklet that sees every sample: the RMS over a
//   sliding window of `windowFrames` (48 = 1 ms at 48 kHz) crossing `thresholdRms` is an
//   onset, once the level has stayed below it for `rearmMs` (a burst, its decay and its
//   concealment count once). The onset's sample frame is turned into the page's clock with
//   AudioContext.getOutputTimestamp() (the context time and performance.now() of the same
//   instant), then into the machine's clock with performance.timeOrigin: the speaker's and the
//   listener's pages, in two browser processes, stamp onsets on one clock. Both pages measure
//   the same way, so what the context adds (its input FIFO, its output latency) is in both
//   stamps and cancels in the difference. Resolution: one sample (1/48 ms); the window delays
//   the crossing by well under a millisecond at the levels heard here, the same at both ends.
// - onsets(key): the onsets so far (ms since the epoch); stopDetectors().
// - stats(path): the audio RTP stats of the page's peer connections of that path and
//   the Opus fmtp of the sending connection's remote description (what the encoder was told).
// - directOffer(track) / directAnswer(offer) / directAccept(answer): the direct path, a plain
//   RTCPeerConnection per page, the SDP carried by the bench (no trickle: each side's
//   candidates are all in its description). The speaker sends `track` (the one Parley's client
//   published, when both paths run at once) or opens its microphone with the constraints of
//   client/microphone.ts; the listener plays what it receives through a
//   hidden <audio autoplay> element as client/RemoteAudio.ts does (Chromium hands remote
//   WebRTC audio to Web Audio only while a media element plays it).
export const MOUTH_TO_EAR_PAGE_SCRIPT = String.raw`(() => {
	// window.__pcs: every peer connection the page makes (testkit's trackPeerConnections, an
	// init script registered before this one), for stats().
	const WORKLET = ${'`'}
		class OnsetProcessor extends AudioWorkletProcessor {
			constructor(options) {
				super();
				const o = options.processorOptions;
				this.threshold = o.thresholdRms * o.thresholdRms * o.windowFrames;
				this.ring = new Float64Array(o.windowFrames);
				this.pos = 0;
				this.sum = 0;
				this.rearmFrames = Math.round((o.rearmMs * sampleRate) / 1000);
				this.quiet = 0;
				this.armed = false;
				this.peak = 0;
			}
			process(inputs) {
				const channel = inputs[0] && inputs[0][0];
				const n = channel ? channel.length : 128;
				for (let i = 0; i < n; i++) {
					const x = channel ? channel[i] : 0;
					const sq = x * x;
					this.sum += sq - this.ring[this.pos];
					if (this.sum < 0) this.sum = 0;
					this.ring[this.pos] = sq;
					this.pos = (this.pos + 1) % this.ring.length;
					if (this.sum > this.threshold) {
						this.quiet = 0;
						if (this.armed) {
							this.armed = false;
							this.peak = 0;
							this.port.postMessage({ frame: currentFrame + i });
						}
						if (this.sum > this.peak) this.peak = this.sum;
					} else if (!this.armed && ++this.quiet >= this.rearmFrames) {
						this.armed = true;
						// The burst's loudest 1 ms, once it is over.
						if (this.peak > 0) this.port.postMessage({ peakRms: Math.sqrt(this.peak / this.ring.length) });
					}
				}
				return true;
			}
		}
		registerProcessor('m2e-onset', OnsetProcessor);
	${'`'};
	const detectors = new Map();
	const direct = { pc: null, stream: null, audio: null };
	const constraints = { audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true } };
	const gathered = (pc) => new Promise((resolve) => {
		if (pc.iceGatheringState === 'complete') return resolve();
		pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
	});
	const connected = (pc, timeoutMs) => new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error('direct: not connected within ' + timeoutMs + ' ms (' + pc.connectionState + ')')), timeoutMs);
		const check = () => {
			if (pc.connectionState === 'connected') { clearTimeout(timer); resolve(); }
			else if (pc.connectionState === 'failed') { clearTimeout(timer); reject(new Error('direct: connection failed')); }
		};
		pc.addEventListener('connectionstatechange', check);
		check();
	});
	const opusFmtp = (sdp) => {
		if (!sdp) return null;
		const m = /a=rtpmap:(\d+) opus\/48000\/2/i.exec(sdp);
		if (!m) return null;
		const f = new RegExp('a=fmtp:' + m[1] + ' ([^\\r\\n]*)').exec(sdp);
		const ptime = /a=ptime:(\d+)/.exec(sdp);
		return (f ? f[1] : '') + (ptime ? ' (a=ptime:' + ptime[1] + ')' : '');
	};
	window.__m2e = {
		async startDetector(key, stream, options) {
			const ctx = new AudioContext({ latencyHint: 'interactive' });
			await ctx.resume();
			const url = URL.createObjectURL(new Blob([WORKLET], { type: 'application/javascript' }));
			await ctx.audioWorklet.addModule(url);
			URL.revokeObjectURL(url);
			const source = ctx.createMediaStreamSource(stream);
			const node = new AudioWorkletNode(ctx, 'm2e-onset', { processorOptions: options });
			const d = { ctx, source, node, onsets: [], levels: [], arrivalLagMs: [] };
			node.port.onmessage = (event) => {
				if (event.data.peakRms !== undefined) return void d.levels.push(event.data.peakRms);
				const ts = ctx.getOutputTimestamp();
				const at = ts.performanceTime + (event.data.frame / ctx.sampleRate - ts.contextTime) * 1000;
				d.onsets.push(performance.timeOrigin + at);
				// How long after the onset's mapped instant its message reached this thread.
				d.arrivalLagMs.push(performance.now() - at);
			};
			// Pulled by the destination (the worklet outputs silence).
			source.connect(node).connect(ctx.destination);
			detectors.set(key, d);
			return { sampleRate: ctx.sampleRate, baseLatencyMs: ctx.baseLatency * 1000, outputLatencyMs: (ctx.outputLatency || 0) * 1000 };
		},
		onsets(key) {
			const d = detectors.get(key);
			return d ? { onsets: [...d.onsets], levels: [...d.levels], arrivalLagMs: [...d.arrivalLagMs] } : { onsets: [], levels: [], arrivalLagMs: [] };
		},
		async stopDetectors() {
			for (const d of detectors.values()) await d.ctx.close();
			detectors.clear();
		},
		async stats(path) {
			let inbound = null;
			let outbound = null;
			let fmtp = null;
			for (const pc of window.__pcs || []) {
				if (pc.connectionState === 'closed') continue;
				// With both paths in one page: the direct connection is ours, the others the client's.
				if ((path === 'direct') !== (pc === direct.pc)) continue;
				const report = await pc.getStats();
				report.forEach((s) => {
					if (s.kind !== 'audio') return;
					const codec = s.codecId ? report.get(s.codecId) : undefined;
					const withCodec = { ...s, codec: codec ? { mimeType: codec.mimeType, sdpFmtpLine: codec.sdpFmtpLine || '' } : null };
					if (s.type === 'inbound-rtp' && (!inbound || (s.packetsReceived || 0) > (inbound.packetsReceived || 0))) inbound = withCodec;
					if (s.type === 'outbound-rtp' && (!outbound || (s.packetsSent || 0) > (outbound.packetsSent || 0))) {
						outbound = withCodec;
						fmtp = opusFmtp(pc.remoteDescription && pc.remoteDescription.sdp);
					}
				});
			}
			return { inbound, outbound, opusFmtp: fmtp, at: performance.timeOrigin + performance.now() };
		},
		localTrack() { return direct.stream ? direct.stream.getAudioTracks()[0] : null; },
		remoteStream() { return direct.stream; },
		async directOffer(track) {
			const stream = track ? new MediaStream([track]) : await navigator.mediaDevices.getUserMedia(constraints);
			const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
			pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly', streams: [stream] });
			direct.pc = pc;
			direct.stream = stream;
			await pc.setLocalDescription(await pc.createOffer());
			await gathered(pc);
			return pc.localDescription.sdp;
		},
		async directAnswer(offer) {
			const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
			direct.pc = pc;
			pc.addEventListener('track', (event) => {
				const stream = event.streams[0] || new MediaStream([event.track]);
				direct.stream = stream;
				const audio = document.createElement('audio');
				audio.autoplay = true;
				audio.hidden = true;
				audio.srcObject = stream;
				document.body.appendChild(audio);
				direct.audio = audio;
				audio.play().catch(() => {});
			});
			await pc.setRemoteDescription({ type: 'offer', sdp: offer });
			await pc.setLocalDescription(await pc.createAnswer());
			await gathered(pc);
			return pc.localDescription.sdp;
		},
		async directAccept(answer, timeoutMs) {
			await direct.pc.setRemoteDescription({ type: 'answer', sdp: answer });
			await connected(direct.pc, timeoutMs);
		},
		async directConnected(timeoutMs) { await connected(direct.pc, timeoutMs); },
	};
})();`;
