// The demo page: get a dev token, connect, join a channel, speak and listen. Plain DOM, no
// framework; stable ids and data-testid attributes for the browser tests.
import { CHANNEL_NAME_PATTERN, ERROR_CODES } from '../../server/signaling/protocol.js';
import { ParleyClient } from '../ParleyClient.js';
import { CLIENT_ERROR_CODES, ParleyError, type ParleyErrorCode } from '../ParleyError.js';

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

// ---- errors -------------------------------------------------------------------------

function isKnownCode(code: string): code is ParleyErrorCode {
	return Object.hasOwn(ERROR_CODES, code) || Object.hasOwn(CLIENT_ERROR_CODES, code);
}

function showError(error: unknown): void {
	const parleyError = error instanceof ParleyError ? error : null;
	ui.error.textContent = parleyError?.message ?? (error instanceof Error ? error.message : String(error));
	ui.error.dataset.code = parleyError?.code ?? 'E_UNKNOWN';
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
		const code = error && isKnownCode(error.code) ? error.code : response.status >= 500 ? 'E_INTERNAL' : 'E_AUTH';
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
	}
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

// ---- flow ---------------------------------------------------------------------------

function wire(parley: ParleyClient): void {
	parley.on('connectionState', (state, error) => {
		if (parley !== client) return;
		renderState();
		if (state === 'reconnected') clearError();
		if (state === 'reconnected' || state === 'reconnecting') renderParticipants();
		if (state === 'disconnected') {
			if (error) showError(error);
			showRoom(false);
			renderMute();
		}
	});
	parley.on('peersChanged', renderParticipants);
	parley.on('peerMuteChanged', renderParticipants);
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
renderState();
