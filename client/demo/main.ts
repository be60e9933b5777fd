// The demo page: get a dev token, connect, join a channel, speak and listen (mute,
// push-to-talk, microphone picker and level, per-peer volume, local mute and connection
// quality), and send and play voice messages. Plain DOM, no framework; everything goes
// through the public library (client/index.ts); stable ids and data-testid attributes for
// the browser tests.
import {
	CHANNEL_NAME_PATTERN,
	isParleyError,
	isParleyErrorCode,
	listMicrophones,
	MAX_PEER_VOLUME,
	ParleyClient,
	ParleyError,
	type PeerQuality,
	type VoiceMessageInfo,
} from '../index.js';

declare global {
	interface Window {
		/** The page's client, for tests and debugging (set once created). */
		parley?: ParleyClient;
	}
}

/** How long a peer counts as speaking after the last audioLevels entry naming it. */
const SPEAKING_HOLD_MS = 600;
const SPEAKING_REFRESH_MS = 150;

// Hand-written checks: the page stays free of zod (the bundle is mostly mediasoup-client).
function asTokenResponse(body: unknown): { token: string; expiresAt: number } | undefined {
	const b = body as { token?: unknown; expiresAt?: unknown } | null;
	return typeof b?.token === 'string' && b.token.length > 0 && typeof b.expiresAt === 'number' ? { token: b.token, expiresAt: b.expiresAt } : undefined;
}

function asErrorResponse(body: unknown): { code: string; message: string } | undefined {
	const e = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
	return typeof e?.code === 'string' && typeof e.message === 'string' ? { code: e.code, message: e.message } : undefined;
}

function element<T extends HTMLElement>(id: string, type: new () => T): T {
	const found = document.getElementById(id);
	if (!(found instanceof type)) throw new Error(`the page has no #${id}`);
	return found;
}

const ui = {
	form: element('join-form', HTMLFormElement),
	name: element('name', HTMLInputElement),
	channel: element('channel', HTMLInputElement),
	join: element('join', HTMLButtonElement),
	room: element('room', HTMLElement),
	channelName: element('channel-name', HTMLElement),
	participants: element('participants', HTMLUListElement),
	mute: element('mute', HTMLButtonElement),
	ptt: element('ptt', HTMLButtonElement),
	leave: element('leave', HTMLButtonElement),
	micSelect: element('mic-select', HTMLSelectElement),
	micLevel: element('mic-level', HTMLMeterElement),
	micNote: element('mic-note', HTMLElement),
	reconnecting: element('reconnecting', HTMLElement),
	announcer: element('announcer', HTMLElement),
	state: element('state', HTMLElement),
	error: element('error', HTMLElement),
	record: element('record', HTMLButtonElement),
	upload: element('upload', HTMLButtonElement),
	uploadInput: element('upload-input', HTMLInputElement),
	uploadStatus: element('upload-status', HTMLElement),
	uploadProgress: element('upload-progress', HTMLProgressElement),
	uploadPercent: element('upload-percent', HTMLElement),
	uploadCancel: element('upload-cancel', HTMLButtonElement),
	voiceNote: element('voice-note', HTMLElement),
	voiceMessages: element('voice-messages', HTMLUListElement),
	voiceEmpty: element('voice-empty', HTMLElement),
	voiceMore: element('voice-more', HTMLButtonElement),
};

let client: ParleyClient | null = null;
let displayName = '';
const lastLoudAtMs = new Map<string, number>();
/**
 * The server names a dominant speaker only when it changes (never "nobody"); an empty
 * audioLevels report means the channel went silent, which ends their highlight.
 */
let dominantSpeaking = false;
let speakingTimer: ReturnType<typeof setInterval> | undefined;

/** Voice messages of the current channel, by id (rendered newest first). */
const voiceMessages = new Map<string, VoiceMessageInfo>();
/** Older page of the list, when there is one. */
let voiceCursor: string | undefined;
/** Display names by user id: everyone seen in the channel this visit (messages outlive presence). */
const knownNames = new Map<string, string>();
let recordTimer: ReturnType<typeof setInterval> | undefined;
/** A start or stop request is in flight: the button waits for it. */
let recordBusy = false;
let uploadController: AbortController | null = null;

// ---- errors -------------------------------------------------------------------------

function showError(error: unknown): void {
	const parleyError = error instanceof ParleyError ? error : null;
	ui.error.textContent = parleyError?.message ?? (error instanceof Error ? error.message : String(error));
	// Only ParleyErrors carry a code; anything else shows its message alone.
	if (parleyError) ui.error.dataset.code = parleyError.code;
	else delete ui.error.dataset.code;
	ui.error.hidden = false;
	// Keep the cause in the console for whoever debugs it.
	console.warn('[parley]', error);
}

function clearError(): void {
	ui.error.textContent = '';
	delete ui.error.dataset.code;
	ui.error.hidden = true;
}

// ---- token --------------------------------------------------------------------------

interface DevToken {
	token: string;
	/** Unix time, seconds. */
	expiresAt: number;
}

/** A dev-mode token from the server; its error (4xx) becomes a ParleyError to show. */
async function fetchDevToken(name: string, channel: string): Promise<DevToken> {
	let response: Response;
	try {
		response = await fetch('/dev/token', {
			method: 'POST',
			headers: { 'content-type': 'application/json' },
			body: JSON.stringify({ displayName: name, channel }),
		});
	} catch (error) {
		throw new ParleyError('E_CONNECTION_CLOSED', 'Could not reach the server to get an access token.', { cause: error });
	}
	const body: unknown = await response.json().catch(() => null);
	if (!response.ok) {
		const error = asErrorResponse(body);
		const code = error && isParleyErrorCode(error.code) ? error.code : response.status >= 500 ? 'E_INTERNAL' : 'E_AUTH';
		const message = error ? error.message : `The token request failed (HTTP ${response.status}).`;
		throw new ParleyError(code, message);
	}
	const token = asTokenResponse(body);
	if (!token) throw new ParleyError('E_BAD_MESSAGE', 'The server answered the token request with something unexpected.');
	return token;
}

/** Fetch a new token when less than this is left. */
const TOKEN_RENEW_MARGIN_S = 30;

/**
 * Reconnects reuse the token while it is valid: each dev token is a new user id, and the
 * same user id lets the server replace our stale peer at once instead of showing a ghost
 * until it notices the old connection is gone.
 */
function tokenProvider(first: DevToken, name: string, channel: string): () => Promise<string> {
	let current = first;
	return async () => {
		if (current.expiresAt - Date.now() / 1000 < TOKEN_RENEW_MARGIN_S) current = await fetchDevToken(name, channel);
		return current.token;
	};
}

function signalingUrl(): string {
	return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

// ---- rendering ----------------------------------------------------------------------

function renderState(): void {
	const state = client?.state ?? 'disconnected';
	ui.state.textContent = state;
	ui.state.dataset.state = state;
	document.body.dataset.state = state;
}

function showRoom(inRoom: boolean): void {
	ui.room.hidden = !inRoom;
	ui.form.hidden = inRoom;
	ui.join.disabled = false;
	ui.join.textContent = 'Join';
	clearInterval(speakingTimer);
	clearInterval(qualityTimer);
	if (inRoom) {
		speakingTimer = setInterval(renderSpeaking, SPEAKING_REFRESH_MS);
		qualityTimer = setInterval(() => void refreshQuality(), QUALITY_REFRESH_MS);
	} else {
		speakingTimer = undefined;
		qualityTimer = undefined;
		lastLoudAtMs.clear();
		dominantSpeaking = false;
		rows.clear();
		qualities.clear();
		ownScore = null;
		stopTalking('any');
		stopMicLevel();
		showMicNote(null);
		renderBanner('disconnected');
		ui.micSelect.replaceChildren();
		ui.micSelect.disabled = true;
		ui.participants.replaceChildren();
		uploadController?.abort();
		voiceMessages.clear();
		voiceCursor = undefined;
		hideVoiceNote();
		renderVoiceMessages();
	}
	renderRecord();
	renderUpload();
}

function renderMute(): void {
	const muted = client?.muted ?? false;
	ui.mute.textContent = muted ? 'Unmute' : 'Mute';
	ui.mute.setAttribute('aria-pressed', String(muted));
	ui.mute.disabled = !client?.publishing;
	// Push-to-talk is for a muted microphone: held, it speaks; released, it is muted again.
	ui.ptt.disabled = !client?.publishing || (!muted && pushToTalk === null);
}

interface Participant {
	peerId: string;
	displayName: string;
	self: boolean;
	muted: boolean;
}

function participants(): Participant[] {
	if (!client) return [];
	const list: Participant[] = [];
	// While reconnecting we have no peer id (a rejoin gets a new one) but are still here.
	const selfId = client.peerId ?? (client.channel !== null ? 'self' : null);
	if (selfId !== null) list.push({ peerId: selfId, displayName: client.welcome?.displayName ?? displayName, self: true, muted: client.muted || !client.publishing });
	for (const peer of client.peers.values()) {
		knownNames.set(peer.userId, peer.displayName);
		list.push({ peerId: peer.peerId, displayName: peer.displayName, self: false, muted: client.isPeerMuted(peer.peerId) });
	}
	return list;
}

/** The parts of one participant row, made once so a focused slider survives re-renders. */
interface ParticipantRow {
	li: HTMLLIElement;
	name: HTMLElement;
	tags: HTMLElement;
	quality: HTMLElement;
	/** Remote peers only: our volume for them and our local mute. */
	volume: HTMLInputElement | null;
	volumeValue: HTMLOutputElement | null;
	silence: HTMLButtonElement | null;
}

const rows = new Map<string, ParticipantRow>();

function createRow(participant: Participant): ParticipantRow {
	const li = document.createElement('li');
	li.dataset.peerId = participant.peerId;
	li.dataset.testid = 'participant';
	li.dataset.self = String(participant.self);
	const head = document.createElement('div');
	head.className = 'who';
	const name = document.createElement('span');
	name.className = 'name';
	const tags = document.createElement('span');
	tags.className = 'tags';
	const quality = document.createElement('span');
	quality.className = 'quality';
	quality.dataset.testid = 'quality';
	head.append(name, tags);
	li.append(head);
	const row: ParticipantRow = { li, name, tags, quality, volume: null, volumeValue: null, silence: null };
	if (!participant.self) {
		const controls = document.createElement('div');
		controls.className = 'peer-controls';
		const volume = document.createElement('input');
		volume.type = 'range';
		volume.min = '0';
		volume.max = String(MAX_PEER_VOLUME * 100);
		volume.step = '10';
		volume.value = '100';
		volume.dataset.testid = 'peer-volume';
		const volumeValue = document.createElement('output');
		volumeValue.className = 'volume-value';
		volumeValue.textContent = '100%';
		const silence = document.createElement('button');
		silence.type = 'button';
		silence.className = 'link';
		silence.dataset.testid = 'peer-silence';
		silence.setAttribute('aria-pressed', 'false');
		silence.textContent = 'Silence';
		volume.addEventListener('input', () => {
			client?.setPeerVolume(participant.peerId, Number(volume.value) / 100);
			volumeValue.textContent = `${volume.value}%`;
		});
		silence.addEventListener('click', () => {
			if (!client) return;
			const muted = !client.peerPlayback(participant.peerId).muted;
			client.setPeerPlaybackMuted(participant.peerId, muted);
			renderParticipants();
		});
		controls.append(volume, volumeValue, silence);
		li.append(controls);
		Object.assign(row, { volume, volumeValue, silence });
	}
	// Its own line under the name and controls, so it never wraps between them.
	li.append(quality);
	return row;
}

/** Reconciles the list by peer id so elements (and their classes) stay stable for tests. */
function renderParticipants(): void {
	const wanted = participants();
	const seen = new Set<string>();
	const items = wanted.map((participant) => {
		seen.add(participant.peerId);
		let row = rows.get(participant.peerId);
		if (!row) {
			row = createRow(participant);
			rows.set(participant.peerId, row);
		}
		row.li.dataset.muted = String(participant.muted);
		row.name.textContent = participant.displayName;
		const tags: HTMLElement[] = [];
		if (participant.self) tags.push(tag('you', 'you'));
		if (participant.muted) tags.push(tag('muted', 'muted'));
		const playback = participant.self || !client ? null : client.peerPlayback(participant.peerId);
		if (playback?.muted) tags.push(tag('silenced', 'silenced'));
		row.tags.replaceChildren(...tags);
		if (row.volume && row.silence) {
			row.volume.setAttribute('aria-label', `Volume of ${participant.displayName}`);
			row.silence.setAttribute('aria-label', `Silence ${participant.displayName} for you`);
			row.silence.setAttribute('aria-pressed', String(playback?.muted ?? false));
			row.silence.textContent = playback?.muted ? 'Unsilence' : 'Silence';
		}
		renderQuality(participant.peerId);
		return row.li;
	});
	for (const peerId of [...rows.keys()]) if (!seen.has(peerId)) rows.delete(peerId);
	ui.participants.replaceChildren(...items);
	renderSpeaking();
}

function tag(text: string, className: string): HTMLElement {
	const span = document.createElement('span');
	span.className = `tag ${className}`;
	span.textContent = text;
	return span;
}

/** Speaking = the dominant speaker until silence, or above the threshold a moment ago. */
function renderSpeaking(): void {
	const now = performance.now();
	const active = dominantSpeaking ? (client?.activeSpeakerId ?? null) : null;
	for (const li of Array.from(ui.participants.querySelectorAll<HTMLLIElement>('li[data-peer-id]'))) {
		const peerId = li.dataset.peerId ?? '';
		const loudAt = lastLoudAtMs.get(peerId);
		// Muted people are not heard, whatever the last report said.
		const muted = li.dataset.muted === 'true';
		const speaking = !muted && (peerId === active || (loudAt !== undefined && now - loudAt < SPEAKING_HOLD_MS));
		li.classList.toggle('speaking', speaking);
	}
}


// ---- connection quality -------------------------------------------------------------

const QUALITY_REFRESH_MS = 2000;
const qualities = new Map<string, PeerQuality>();
/** The server's score of how it receives our microphone (producerScore). */
let ownScore: number | null = null;
let qualityTimer: ReturnType<typeof setInterval> | undefined;

function qualityLevel(score: number | null): 'good' | 'fair' | 'poor' | 'unknown' {
	if (score === null) return 'unknown';
	return score >= 8 ? 'good' : score >= 5 ? 'fair' : 'poor';
}

function renderQuality(peerId: string): void {
	const row = rows.get(peerId);
	if (!row) return;
	let score: number | null;
	let detail: string;
	if (row.li.dataset.self === 'true') {
		score = ownScore;
		detail = score === null ? '' : `sending ${score}/10`;
	} else {
		const quality = qualities.get(peerId);
		const scores = [quality?.score, quality?.producerScore].filter((v): v is number => typeof v === 'number');
		score = scores.length ? Math.min(...scores) : null;
		const parts: string[] = [];
		if (score !== null) parts.push(`${score}/10`);
		if (quality?.lossPercent != null) parts.push(`${quality.lossPercent.toFixed(1)}% loss`);
		if (quality?.jitterMs != null) parts.push(`${Math.round(quality.jitterMs)} ms jitter`);
		if (quality?.roundTripMs != null) parts.push(`${Math.round(quality.roundTripMs)} ms RTT`);
		detail = parts.join(' · ');
	}
	row.quality.dataset.level = qualityLevel(score);
	if (score !== null) row.quality.dataset.score = String(score);
	else delete row.quality.dataset.score;
	row.quality.textContent = detail;
	row.quality.title = score === null ? 'No quality report yet' : `Connection quality ${score} of 10`;
}

async function refreshQuality(): Promise<void> {
	const parley = client;
	if (!parley) return;
	for (const peerId of parley.peers.keys()) {
		try {
			qualities.set(peerId, await parley.peerQuality(peerId));
		} catch {
			// Stats race a closing consumer (peer leaving, reconnect): the next round has it.
			continue;
		}
		if (parley === client) renderQuality(peerId);
	}
}

// ---- microphone: level, picker ------------------------------------------------------

const LEVEL_REFRESH_MS = 100;
let levelMeter: { context: AudioContext; track: MediaStreamTrack; timer: ReturnType<typeof setInterval> } | null = null;

/** Follows the published microphone (it changes with the picker and after a rejoin). */
function renderMicLevel(): void {
	const track = client?.microphoneTrack ?? null;
	if (levelMeter && levelMeter.track === track) return;
	stopMicLevel();
	if (!track) return;
	const context = new AudioContext();
	void context.resume().catch(() => undefined);
	const analyser = context.createAnalyser();
	analyser.fftSize = 1024;
	context.createMediaStreamSource(new MediaStream([track])).connect(analyser);
	const samples = new Float32Array(analyser.fftSize);
	const timer = setInterval(() => {
		analyser.getFloatTimeDomainData(samples);
		let sum = 0;
		for (const sample of samples) sum += sample * sample;
		// RMS on a log-ish scale: speech sits in the middle of the meter, not at the bottom.
		const rms = Math.sqrt(sum / samples.length);
		const level = track.enabled ? Math.min(1, Math.sqrt(rms) * 1.6) : 0;
		ui.micLevel.value = level;
	}, LEVEL_REFRESH_MS);
	levelMeter = { context, track, timer };
}

function stopMicLevel(): void {
	if (!levelMeter) return;
	clearInterval(levelMeter.timer);
	void levelMeter.context.close().catch(() => undefined);
	levelMeter = null;
	ui.micLevel.value = 0;
}

function showMicNote(text: string | null, error?: unknown): void {
	ui.micNote.textContent = text ?? '';
	ui.micNote.hidden = text === null;
	if (isParleyError(error)) ui.micNote.dataset.code = error.code;
	else delete ui.micNote.dataset.code;
	if (error !== undefined) console.warn('[parley]', error);
}

async function renderMicrophones(): Promise<void> {
	const parley = client;
	if (!parley?.grants?.canPublish) {
		ui.micSelect.disabled = true;
		return;
	}
	let microphones: MediaDeviceInfo[];
	try {
		microphones = await listMicrophones();
	} catch (error) {
		showMicNote(error instanceof Error ? error.message : String(error));
		return;
	}
	if (parley !== client) return;
	const currentId = parley.microphoneTrack?.getSettings().deviceId;
	const options = microphones.map((device, i) => {
		const option = document.createElement('option');
		option.value = device.deviceId;
		option.textContent = device.label || `Microphone ${i + 1}`;
		option.selected = device.deviceId === currentId;
		return option;
	});
	if (options.length === 0) {
		const none = document.createElement('option');
		none.textContent = 'No microphone found';
		none.value = '';
		options.push(none);
	}
	ui.micSelect.replaceChildren(...options);
	ui.micSelect.disabled = microphones.length === 0;
}

async function chooseMicrophone(deviceId: string): Promise<void> {
	const parley = client;
	if (!parley || !deviceId) return;
	ui.micSelect.disabled = true;
	try {
		await parley.switchMicrophone(deviceId);
		showMicNote(null);
	} catch (error) {
		showMicNote(micProblem(error), error);
	} finally {
		ui.micSelect.disabled = false;
		renderMute();
		renderMicLevel();
		renderParticipants();
		renderRecord();
		void renderMicrophones();
	}
}

/** What to tell the user about a microphone failure, with what they can do about it. */
function micProblem(error: unknown): string {
	if (!isParleyError(error)) return error instanceof Error ? error.message : String(error);
	switch (error.code) {
		case 'E_MIC_PERMISSION_DENIED':
			return `${error.message} You can still listen.`;
		case 'E_MIC_ENDED':
			return `${error.message} Choose another microphone.`;
		case 'E_MIC_NOT_FOUND':
			return `${error.message} Plug one in or choose another.`;
		default:
			return error.message;
	}
}

// ---- push-to-talk -------------------------------------------------------------------

/** Held: unmuted for the hold, muted again on release (set only when it started muted). */
let pushToTalk: 'key' | 'button' | null = null;

function startTalking(source: 'key' | 'button'): void {
	if (!client?.publishing || !client.muted || pushToTalk !== null) return;
	pushToTalk = source;
	ui.ptt.setAttribute('aria-pressed', 'true');
	void client.unmute().catch(showError);
}

function stopTalking(source: 'key' | 'button' | 'any'): void {
	if (pushToTalk === null || (source !== 'any' && source !== pushToTalk)) return;
	pushToTalk = null;
	ui.ptt.setAttribute('aria-pressed', 'false');
	void client?.mute().catch(showError);
}

/** Space means "type a space" or "press this control" there, never "talk". */
function isTypingTarget(target: EventTarget | null): boolean {
	return target instanceof HTMLElement && (target.isContentEditable || target.closest('input, textarea, select, button, audio, [role="slider"]') !== null);
}

// ---- reconnecting banner, announcements ----------------------------------------------

function renderBanner(state: string, error?: ParleyError): void {
	if (state === 'reconnecting') {
		ui.reconnecting.textContent = `Reconnecting… ${error?.message ?? ''}`.trim();
		if (error) ui.reconnecting.dataset.code = error.code;
		ui.reconnecting.hidden = false;
	} else {
		ui.reconnecting.hidden = true;
		ui.reconnecting.textContent = '';
		delete ui.reconnecting.dataset.code;
	}
}

function announce(text: string): void {
	ui.announcer.textContent = text;
}

// ---- voice messages ---------------------------------------------------------------

/** m:ss, whole seconds down, as the browser's audio controls show it. */
function formatDuration(ms: number): string {
	const totalS = Math.max(0, Math.floor(ms / 1000));
	return `${Math.floor(totalS / 60)}:${String(totalS % 60).padStart(2, '0')}`;
}

function isCurrentChannel(message: VoiceMessageInfo): boolean {
	const channel = client?.channel;
	return channel != null && message.destination.kind === 'channel' && message.destination.channel === channel;
}

function senderName(ownerId: string): string {
	const self = client?.welcome;
	if (self && ownerId === self.userId) return `${self.displayName} (you)`;
	return knownNames.get(ownerId) ?? ownerId;
}

const WAVEFORM_BARS = 100;

/** A waveform on a canvas: bars of 0-1 peaks, the played part in the accent colour. */
interface Waveform {
	canvas: HTMLCanvasElement;
	peaks: number[];
	/** 0-1 of the message played. */
	progress: number;
}

function drawWaveform(waveform: Waveform): void {
	const { canvas, peaks, progress } = waveform;
	const ratio = window.devicePixelRatio || 1;
	const width = Math.max(1, Math.round((canvas.clientWidth || 300) * ratio));
	const height = Math.max(1, Math.round((canvas.clientHeight || 32) * ratio));
	if (canvas.width !== width) canvas.width = width;
	if (canvas.height !== height) canvas.height = height;
	const context = canvas.getContext('2d');
	if (!context || peaks.length === 0) return;
	const styles = getComputedStyle(canvas);
	const played = styles.getPropertyValue('--accent').trim() || '#2f6fed';
	const rest = styles.getPropertyValue('--wave-rest').trim() || '#9aa6b5';
	context.clearRect(0, 0, width, height);
	const step = width / peaks.length;
	peaks.forEach((peak, i) => {
		const bar = Math.max(ratio, peak * height);
		context.fillStyle = (i + 0.5) / peaks.length <= progress ? played : rest;
		context.fillRect(i * step, (height - bar) / 2, Math.max(ratio, step * 0.7), bar);
	});
}

/** The loudest sample in each of `bars` slices of the decoded audio, scaled to the loudest slice. */
function peaksOf(buffer: AudioBuffer, bars = WAVEFORM_BARS): number[] {
	const data = buffer.getChannelData(0);
	const size = Math.max(1, Math.floor(data.length / bars));
	const peaks: number[] = [];
	for (let bar = 0; bar < bars; bar++) {
		let peak = 0;
		for (let i = bar * size; i < Math.min(data.length, (bar + 1) * size); i++) peak = Math.max(peak, Math.abs(data[i]!));
		peaks.push(peak);
	}
	const loudest = Math.max(...peaks, 1e-6);
	return peaks.map((peak) => peak / loudest);
}

/** Decodes the Ogg Opus file with Web Audio for the waveform (the server's 100 values are shown meanwhile). */
async function decodePeaks(url: string): Promise<number[]> {
	const response = await fetch(url);
	if (!response.ok) throw new Error(`HTTP ${response.status}`);
	const decoder = new OfflineAudioContext(1, 1, 48_000);
	return peaksOf(await decoder.decodeAudioData(await response.arrayBuffer()));
}

function waveformCanvas(message: VoiceMessageInfo): Waveform {
	const canvas = document.createElement('canvas');
	canvas.className = 'waveform';
	canvas.dataset.testid = 'waveform';
	canvas.dataset.source = 'server';
	canvas.setAttribute('aria-hidden', 'true');
	const waveform: Waveform = { canvas, peaks: (message.waveform ?? []).map((v) => Math.min(31, v) / 31), progress: 0 };
	canvas.dataset.bars = String(waveform.peaks.length);
	// Drawn once laid out (the size comes from CSS).
	requestAnimationFrame(() => drawWaveform(waveform));
	return waveform;
}

/** Play/pause, the waveform (click to seek) and the time, around a hidden <audio>. */
function voicePlayer(message: VoiceMessageInfo, parley: ParleyClient): HTMLElement {
	const player = document.createElement('div');
	player.className = 'player';
	const play = document.createElement('button');
	play.type = 'button';
	play.className = 'play';
	play.dataset.testid = 'play';
	play.textContent = 'Play';
	play.setAttribute('aria-label', `Play voice message from ${senderName(message.ownerId)}`);
	const waveform = waveformCanvas(message);
	const time = document.createElement('span');
	time.className = 'time';
	time.dataset.testid = 'play-time';
	time.textContent = formatDuration(message.durationMs ?? 0);
	const audio = document.createElement('audio');
	audio.className = 'voice-message-audio';
	audio.preload = 'metadata';
	const redraw = (): void => {
		waveform.progress = audio.duration > 0 ? audio.currentTime / audio.duration : 0;
		const total = formatDuration(message.durationMs ?? 0);
		time.textContent = audio.paused && audio.currentTime === 0 ? total : `${formatDuration(audio.currentTime * 1000)} / ${total}`;
		drawWaveform(waveform);
	};
	audio.addEventListener('timeupdate', redraw);
	audio.addEventListener('play', () => {
		play.textContent = 'Pause';
		play.setAttribute('aria-pressed', 'true');
	});
	audio.addEventListener('pause', () => {
		play.textContent = 'Play';
		play.setAttribute('aria-pressed', 'false');
	});
	audio.addEventListener('ended', () => {
		audio.currentTime = 0;
		redraw();
	});
	play.addEventListener('click', () => {
		if (audio.paused) void audio.play().catch(showError);
		else audio.pause();
	});
	waveform.canvas.addEventListener('click', (event) => {
		if (!(audio.duration > 0)) return;
		const box = waveform.canvas.getBoundingClientRect();
		audio.currentTime = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width)) * audio.duration;
		redraw();
	});
	play.disabled = true;
	// A signed link for this message (the token stays out of the URL).
	void parley.voiceMessageAudioUrl(message).then(
		(url) => {
			audio.src = url;
			play.disabled = false;
			return decodePeaks(url).then((peaks) => {
				waveform.peaks = peaks;
				waveform.canvas.dataset.source = 'decoded';
				waveform.canvas.dataset.bars = String(peaks.length);
				drawWaveform(waveform);
			});
		},
		() => player.classList.add('unavailable'),
	).catch((error: unknown) => console.warn('[parley] waveform', error));
	player.append(play, waveform.canvas, time, audio);
	return player;
}

function statusText(message: VoiceMessageInfo): string | null {
	switch (message.status) {
		case 'recording':
			return 'Recording…';
		case 'uploading':
			return 'Uploading…';
		case 'processing':
			return 'Processing…';
		case 'failed':
			return `Failed: ${message.failureReason ?? 'unknown reason'}`;
		default:
			return null;
	}
}

function voiceMessageItem(message: VoiceMessageInfo, li: HTMLLIElement): void {
	const head = document.createElement('div');
	head.className = 'vm-head';
	const sender = document.createElement('span');
	sender.className = 'sender';
	sender.textContent = senderName(message.ownerId);
	const when = document.createElement('time');
	when.className = 'when';
	when.dateTime = new Date(message.createdAt).toISOString();
	when.textContent = new Date(message.createdAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
	head.append(sender, when);
	if (message.durationMs !== undefined) {
		const duration = document.createElement('span');
		duration.className = 'duration';
		duration.dataset.testid = 'duration';
		duration.textContent = formatDuration(message.durationMs);
		head.append(duration);
	}
	if (message.source === 'upload') head.append(tag('upload', 'upload'));
	if (message.ownerId === client?.welcome?.userId && message.status !== 'recording') {
		const remove = document.createElement('button');
		remove.type = 'button';
		remove.className = 'link delete';
		remove.dataset.testid = 'delete-voice-message';
		remove.textContent = 'Delete';
		remove.setAttribute('aria-label', `Delete your voice message (${formatDuration(message.durationMs ?? 0)})`);
		remove.addEventListener('click', () => void deleteVoiceMessage(message.id));
		head.append(remove);
	}
	const parts: Element[] = [head];
	if (message.status === 'ready' && client) parts.push(voicePlayer(message, client));
	else if (message.waveform?.length) parts.push(waveformCanvas(message).canvas);
	const status = statusText(message);
	if (status !== null) {
		const p = document.createElement('p');
		p.className = `status ${message.status}`;
		p.dataset.testid = 'voice-message-status';
		p.textContent = status;
		parts.push(p);
	}
	li.replaceChildren(...parts);
}

/** What a rendered item shows; unchanged items are left alone (a playing <audio> keeps playing). */
function renderKey(message: VoiceMessageInfo): string {
	return JSON.stringify([message.status, message.durationMs, message.failureReason, message.waveform?.length, senderName(message.ownerId)]);
}

function renderVoiceMessages(): void {
	const existing = new Map<string, HTMLLIElement>();
	for (const li of Array.from(ui.voiceMessages.querySelectorAll<HTMLLIElement>('li[data-voice-message-id]'))) existing.set(li.dataset.voiceMessageId ?? '', li);
	const ordered = [...voiceMessages.values()].sort((a, b) => b.createdAt - a.createdAt || b.id.localeCompare(a.id));
	const items = ordered.map((message) => {
		let li = existing.get(message.id);
		const key = renderKey(message);
		if (!li || li.dataset.renderKey !== key) {
			li ??= document.createElement('li');
			li.dataset.testid = 'voice-message';
			li.dataset.voiceMessageId = message.id;
			li.dataset.status = message.status;
			li.dataset.source = message.source;
			li.dataset.renderKey = key;
			voiceMessageItem(message, li);
		}
		return li;
	});
	ui.voiceMessages.replaceChildren(...items);
	ui.voiceEmpty.hidden = items.length > 0;
	ui.voiceMore.hidden = voiceCursor === undefined;
}

/** How far along a status is: answers and notifications can cross, and must not go back. */
const STATUS_STAGE: Record<VoiceMessageInfo['status'], number> = { recording: 0, uploading: 0, processing: 1, ready: 2, failed: 2 };

function upsertVoiceMessage(message: VoiceMessageInfo): void {
	if (!isCurrentChannel(message)) return;
	const known = voiceMessages.get(message.id);
	if (known && STATUS_STAGE[known.status] > STATUS_STAGE[message.status]) return;
	voiceMessages.set(message.id, message);
	renderVoiceMessages();
}

/** The newest page (at join, and after a reconnect: notifications were missed meanwhile), or the next older one. */
async function loadVoiceMessages(older = false): Promise<void> {
	const parley = client;
	const channel = parley?.channel;
	if (!parley || channel == null || !parley.grants?.canSubscribe) return;
	if (older && voiceCursor === undefined) return;
	try {
		const page = await parley.listVoiceMessages({ channel }, { limit: 20, ...(older && voiceCursor !== undefined && { before: voiceCursor }) });
		if (parley !== client || parley.channel !== channel) return;
		if (older || voiceMessages.size === 0) voiceCursor = page.nextCursor;
		for (const message of page.messages) {
			const known = voiceMessages.get(message.id);
			if (!known || STATUS_STAGE[known.status] <= STATUS_STAGE[message.status]) voiceMessages.set(message.id, message);
		}
		renderVoiceMessages();
	} catch (error) {
		showError(error);
	}
}

async function deleteVoiceMessage(id: string): Promise<void> {
	if (!client) return;
	try {
		await client.deleteVoiceMessage(id);
		voiceMessages.delete(id);
		renderVoiceMessages();
	} catch (error) {
		showError(error);
	}
}

function showVoiceNote(text: string): void {
	ui.voiceNote.textContent = text;
	ui.voiceNote.hidden = false;
}

function hideVoiceNote(): void {
	ui.voiceNote.textContent = '';
	ui.voiceNote.hidden = true;
}

function recordUnavailableReason(): string | null {
	if (!client || client.channel === null) return 'Join a channel first.';
	if (!client.grants?.canRecord) return 'Your access token does not allow voice messages.';
	if (!client.publishing || client.producerId === null) return 'Recording needs your microphone on.';
	return null;
}

function renderRecord(): void {
	const recording = client?.recording ?? null;
	const unavailable = recording ? null : recordUnavailableReason();
	ui.record.disabled = recordBusy || unavailable !== null;
	ui.record.title = unavailable ?? (recording ? 'Stop and send' : 'Record a voice message to this channel');
	ui.record.setAttribute('aria-pressed', String(recording !== null));
	ui.record.dataset.recording = String(recording !== null);
	ui.record.textContent = recording ? `Stop ${formatDuration(Date.now() - recording.startedAtMs)}` : 'Record';
	if (recording && recordTimer === undefined) recordTimer = setInterval(renderRecord, 250);
	if (!recording && recordTimer !== undefined) {
		clearInterval(recordTimer);
		recordTimer = undefined;
	}
}

async function toggleRecord(): Promise<void> {
	const parley = client;
	if (!parley || recordBusy) return;
	recordBusy = true;
	renderRecord();
	try {
		if (parley.recording) upsertVoiceMessage(await parley.stopRecording());
		else {
			hideVoiceNote();
			await parley.startRecording();
		}
	} catch (error) {
		showError(error);
	} finally {
		recordBusy = false;
		renderRecord();
	}
}

function renderUpload(): void {
	const uploading = uploadController !== null;
	const canUpload = client?.channel != null && client.grants?.canRecord === true;
	ui.upload.disabled = uploading || !canUpload;
	ui.upload.title = canUpload ? 'Send an audio file to this channel' : 'Your access token does not allow voice messages.';
	ui.uploadStatus.hidden = !uploading;
}

function setUploadProgress(fraction: number): void {
	const percent = Math.round(fraction * 100);
	ui.uploadProgress.value = percent;
	ui.uploadPercent.textContent = `${percent}%`;
}

async function uploadFile(file: File): Promise<void> {
	const parley = client;
	if (!parley || uploadController) return;
	const controller = new AbortController();
	uploadController = controller;
	setUploadProgress(0);
	hideVoiceNote();
	renderUpload();
	try {
		const message = await parley.uploadVoiceMessage(file, {
			signal: controller.signal,
			onProgress: ({ bytesSent, bytesTotal }) => setUploadProgress(bytesTotal > 0 ? bytesSent / bytesTotal : 0),
		});
		if (parley === client) upsertVoiceMessage(message);
	} catch (error) {
		if (isParleyError(error, 'E_ABORTED')) showVoiceNote('Upload cancelled.');
		else showError(error);
	} finally {
		if (uploadController === controller) uploadController = null;
		renderUpload();
	}
}

function wireVoice(parley: ParleyClient): void {
	parley.on('voiceMessage', (message) => {
		if (parley === client) upsertVoiceMessage(message);
	});
	parley.on('recordingChanged', (recording, reason) => {
		if (parley !== client) return;
		if (recording === null && reason !== undefined) showVoiceNote(`Recording stopped: ${reason}.`);
		renderRecord();
	});
	parley.on('peersChanged', (peers) => {
		for (const peer of peers.values()) knownNames.set(peer.userId, peer.displayName);
	});
}

// ---- flow ---------------------------------------------------------------------------

function wire(parley: ParleyClient): void {
	parley.on('connectionState', (state, error) => {
		if (parley !== client) return;
		renderState();
		renderBanner(state, error);
		if (state === 'reconnected') {
			clearError();
			void loadVoiceMessages();
		}
		if (state === 'reconnected' || state === 'reconnecting') renderParticipants();
		if (state === 'reconnected') {
			renderMute();
			renderMicLevel();
		}
		renderRecord();
		if (state === 'disconnected') {
			if (error) showError(error);
			showRoom(false);
			renderMute();
		}
	});
	parley.on('peersChanged', renderParticipants);
	parley.on('peerJoined', (peer) => announce(`${peer.displayName} joined.`));
	parley.on('peerLeft', (peer) => {
		qualities.delete(peer.peerId);
		announce(`${peer.displayName} left.`);
	});
	parley.on('peerMuteChanged', (peerId, muted) => {
		renderParticipants();
		const name = parley.peers.get(peerId)?.displayName;
		if (name) announce(`${name} ${muted ? 'muted' : 'unmuted'}.`);
	});
	parley.on('peerScore', (peerId, score) => {
		qualities.set(peerId, { ...(qualities.get(peerId) ?? { lossPercent: null, jitterMs: null, roundTripMs: null }), ...score });
		renderQuality(peerId);
	});
	parley.on('producerScore', (score) => {
		ownScore = score;
		if (parley.peerId) renderQuality(parley.peerId);
	});
	wireVoice(parley);
	parley.on('muteChanged', () => {
		renderMute();
		renderParticipants();
	});
	parley.on('activeSpeaker', (peerId) => {
		dominantSpeaking = peerId !== null;
		renderSpeaking();
	});
	parley.on('audioLevels', (levels) => {
		const now = performance.now();
		if (levels.length === 0) dominantSpeaking = false;
		for (const { peerId } of levels) lastLoudAtMs.set(peerId, now);
		renderSpeaking();
	});
	parley.on('error', (error) => {
		if (error.code === 'E_MIC_ENDED') {
			// Unplugged or revoked: say so where the picker is, and offer what is left.
			showMicNote(micProblem(error), error);
			stopMicLevel();
			void renderMicrophones();
			return;
		}
		showError(error);
		// Autoplay refused: the next click anywhere retries playback.
		if (error.code === 'E_AUTOPLAY_BLOCKED') document.addEventListener('click', () => void parley.resumeAudio(), { once: true });
	});
}

async function join(event: SubmitEvent): Promise<void> {
	event.preventDefault();
	clearError();
	const name = ui.name.value.trim();
	const channel = ui.channel.value.trim() || 'lobby';
	if (!name) {
		showError(new ParleyError('E_BAD_REQUEST', 'Enter a display name.'));
		return;
	}
	if (!CHANNEL_NAME_PATTERN.test(channel)) {
		showError(new ParleyError('E_BAD_REQUEST', 'Channel names are 1-64 characters of A-Z a-z 0-9 . _ : - (not starting with punctuation).'));
		return;
	}
	ui.join.disabled = true;
	ui.join.textContent = 'Joining…';
	displayName = name;
	const previous = client;
	client = null;
	await previous?.close();
	let parley: ParleyClient | null = null;
	try {
		const token = await fetchDevToken(name, channel);
		parley = new ParleyClient({ url: signalingUrl(), token: tokenProvider(token, name, channel) });
		client = parley;
		window.parley = parley;
		wire(parley);
		const welcome = await parley.connect();
		await parley.join(channel);
		ui.channelName.textContent = channel;
		showRoom(true);
		renderParticipants();
		if (welcome.grants.canPublish) {
			try {
				await parley.publishMicrophone();
			} catch (error) {
				// Still in the channel, listening: say why nobody hears us, by the picker.
				showMicNote(micProblem(error), error);
			}
			// After the permission prompt: only then do devices have labels.
			await renderMicrophones();
		}
		renderMicLevel();
		renderMute();
		renderParticipants();
		renderRecord();
		renderUpload();
		await loadVoiceMessages();
	} catch (error) {
		showError(error);
		if (parley) await parley.close();
		showRoom(false);
		renderState();
	}
}

async function toggleMute(): Promise<void> {
	if (!client) return;
	try {
		if (client.muted) await client.unmute();
		else await client.mute();
	} catch (error) {
		showError(error);
	}
}

async function leave(): Promise<void> {
	const parley = client;
	if (!parley) return;
	ui.leave.disabled = true;
	try {
		await parley.close();
	} finally {
		ui.leave.disabled = false;
		showRoom(false);
		renderState();
		renderMute();
	}
}

ui.form.addEventListener('submit', (event) => void join(event));
ui.mute.addEventListener('click', () => void toggleMute());
ui.micSelect.addEventListener('change', () => void chooseMicrophone(ui.micSelect.value));
// A microphone plugged in or out: the list follows (a lost current one also ends its track).
navigator.mediaDevices?.addEventListener('devicechange', () => void renderMicrophones());
ui.ptt.addEventListener('pointerdown', (event) => {
	ui.ptt.setPointerCapture(event.pointerId);
	startTalking('button');
});
for (const type of ['pointerup', 'pointercancel', 'lostpointercapture'] as const) ui.ptt.addEventListener(type, () => stopTalking('button'));
ui.ptt.addEventListener('keydown', (event) => {
	if ((event.key === ' ' || event.key === 'Enter') && !event.repeat) {
		event.preventDefault();
		startTalking('button');
	}
});
ui.ptt.addEventListener('keyup', (event) => {
	if (event.key === ' ' || event.key === 'Enter') {
		event.preventDefault();
		stopTalking('button');
	}
});
document.addEventListener('keydown', (event) => {
	if (event.key.toLowerCase() === 'm' && !event.repeat && !event.ctrlKey && !event.metaKey && !event.altKey && !isTypingTarget(event.target) && !ui.room.hidden && !ui.mute.disabled) {
		void toggleMute();
		return;
	}
	if (event.code !== 'Space' || event.repeat || event.ctrlKey || event.metaKey || event.altKey || isTypingTarget(event.target) || ui.room.hidden) return;
	event.preventDefault();
	startTalking('key');
});
document.addEventListener('keyup', (event) => {
	if (event.code === 'Space') stopTalking('key');
});
// Switching windows mid-hold never delivers the keyup: stop talking then.
window.addEventListener('blur', () => stopTalking('any'));
ui.leave.addEventListener('click', () => void leave());
ui.record.addEventListener('click', () => void toggleRecord());
ui.upload.addEventListener('click', () => ui.uploadInput.click());
ui.uploadInput.addEventListener('change', () => {
	const file = ui.uploadInput.files?.[0];
	// Cleared so choosing the same file again fires 'change' again.
	ui.uploadInput.value = '';
	if (file) void uploadFile(file);
});
ui.uploadCancel.addEventListener('click', () => uploadController?.abort());
ui.voiceMore.addEventListener('click', () => void loadVoiceMessages(true));
renderState();
