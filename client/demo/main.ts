// The demo page: get a dev token, connect, join a channel, speak and listen, and send and
// play voice messages. Plain DOM, no framework; stable ids and data-testid attributes for
// the browser tests.
import { CHANNEL_NAME_PATTERN } from '../../protocol/patterns.js';
import type { VoiceMessageInfo } from '../../protocol/schemas.js';
import { ParleyClient } from '../ParleyClient.js';
import { isParleyError, isParleyErrorCode, ParleyError } from '../ParleyError.js';

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
	leave: element('leave', HTMLButtonElement),
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
const SVG_NS = 'http://www.w3.org/2000/svg';

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
	if (inRoom) {
		clearInterval(speakingTimer);
		speakingTimer = setInterval(renderSpeaking, SPEAKING_REFRESH_MS);
	} else {
		clearInterval(speakingTimer);
		speakingTimer = undefined;
		lastLoudAtMs.clear();
		dominantSpeaking = false;
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

/** Reconciles the list by peer id so elements (and their classes) stay stable for tests. */
function renderParticipants(): void {
	const wanted = participants();
	const existing = new Map<string, HTMLLIElement>();
	for (const li of Array.from(ui.participants.querySelectorAll<HTMLLIElement>('li[data-peer-id]'))) existing.set(li.dataset.peerId ?? '', li);
	const items = wanted.map((participant) => {
		const li = existing.get(participant.peerId) ?? document.createElement('li');
		existing.delete(participant.peerId);
		li.dataset.peerId = participant.peerId;
		li.dataset.testid = 'participant';
		li.dataset.self = String(participant.self);
		li.dataset.muted = String(participant.muted);
		const name = document.createElement('span');
		name.className = 'name';
		name.textContent = participant.displayName;
		const tags: HTMLElement[] = [];
		if (participant.self) tags.push(tag('you', 'you'));
		if (participant.muted) tags.push(tag('muted', 'muted'));
		li.replaceChildren(name, ...tags);
		return li;
	});
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

/** A row of 100 bars (values 0-31), drawn as SVG so it scales with the layout. */
function waveformSvg(values: readonly number[]): SVGSVGElement {
	const svg = document.createElementNS(SVG_NS, 'svg');
	svg.setAttribute('class', 'waveform');
	svg.setAttribute('data-testid', 'waveform');
	svg.setAttribute('viewBox', `0 0 ${values.length * 2} 32`);
	svg.setAttribute('preserveAspectRatio', 'none');
	svg.setAttribute('aria-hidden', 'true');
	values.forEach((value, i) => {
		const height = Math.max(1, Math.min(31, value) + 1);
		const bar = document.createElementNS(SVG_NS, 'rect');
		bar.setAttribute('x', String(i * 2));
		bar.setAttribute('y', String((32 - height) / 2));
		bar.setAttribute('width', '1.4');
		bar.setAttribute('height', String(height));
		svg.append(bar);
	});
	return svg;
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
		remove.addEventListener('click', () => void deleteVoiceMessage(message.id));
		head.append(remove);
	}
	const parts: Element[] = [head];
	if (message.waveform?.length) parts.push(waveformSvg(message.waveform));
	if (message.status === 'ready' && client) {
		const audio = document.createElement('audio');
		audio.className = 'voice-message-audio';
		audio.controls = true;
		audio.preload = 'metadata';
		// A signed link for this message (the token stays out of the URL); the server's
		// error shows in the audio element's own failed state if it cannot be had.
		void client.voiceMessageAudioUrl(message).then(
			(url) => (audio.src = url),
			() => audio.classList.add('unavailable'),
		);
		parts.push(audio);
	}
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
		if (state === 'reconnected') {
			clearError();
			void loadVoiceMessages();
		}
		if (state === 'reconnected' || state === 'reconnecting') renderParticipants();
		renderRecord();
		if (state === 'disconnected') {
			if (error) showError(error);
			showRoom(false);
			renderMute();
		}
	});
	parley.on('peersChanged', renderParticipants);
	parley.on('peerMuteChanged', renderParticipants);
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
				// Still in the channel, listening: say why nobody hears us.
				showError(error);
			}
		}
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
