// Headless Debian Firefox ESR through puppeteer-core over WebDriver BiDi (playwright-core
// cannot drive it: Playwright needs its own patched Firefox). The same shape as the Chromium
// launcher in test/helpers/browser.ts: one call, a browser with a fake microphone that asks
// no permission and plays remote audio without a gesture.
//
// Firefox's fake microphone is a fixed tone (1 kHz, see FIREFOX_FAKE_TONE_HZ); unlike
// Chromium it cannot play a file. Its AudioContext only runs with a sound server, so the
// launch takes the env of a throwaway PulseAudio (testkit/services/pulseaudio.ts).
import { existsSync } from 'node:fs';
import os from 'node:os';
import puppeteer, { type Browser } from 'puppeteer-core';

export const FIREFOX = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';

/** What Firefox's fake audio device plays (media.navigator.streams.fake): a sine at 1 kHz,
 * measured in the page with an AnalyserNode. There is no pref to change it. */
export const FIREFOX_FAKE_TONE_HZ = 1000;

/** Prefs that make the fake devices, autoplay and loopback ICE work without a person. */
export const FIREFOX_TEST_PREFS: Record<string, unknown> = {
	'media.navigator.streams.fake': true,
	'media.navigator.permission.disabled': true,
	'media.autoplay.default': 0, // 0 = allow audible autoplay
	'media.autoplay.blocking_policy': 0,
	// Asks for loopback candidates; Firefox 153 still gathers none here (see
	// mediaAddressForFirefox), but an older or newer one may.
	'media.peerconnection.ice.loopback': true,
	// Keep a headless test run quiet: no first-run pages, no update or telemetry traffic.
	'browser.shell.checkDefaultBrowser': false,
	'app.update.enabled': false,
	'datareporting.policy.dataSubmissionEnabled': false,
	'toolkit.telemetry.enabled': false,
};

export interface FirefoxLaunchOptions {
	/** Variables added to Firefox's environment: the sound server's (PULSE_SERVER, XDG_RUNTIME_DIR). */
	env?: Record<string, string>;
	extraPrefs?: Record<string, unknown>;
}

export async function launchFirefox({ env = {}, extraPrefs = {} }: FirefoxLaunchOptions = {}): Promise<Browser> {
	// Setup installs it (scripts/apt-packages.sh): missing means a broken machine, not a skip.
	if (!existsSync(FIREFOX)) throw new Error(`${FIREFOX} is not installed: run scripts/setup (it installs firefox-esr)`);
	return puppeteer.launch({
		browser: 'firefox',
		executablePath: FIREFOX,
		headless: true,
		env: { ...process.env, ...env },
		extraPrefsFirefox: { ...FIREFOX_TEST_PREFS, ...extraPrefs },
	});
}

/**
 * The address a media server under test must listen on and announce for Firefox to reach it:
 * the host's first non-internal IPv4 address. Firefox 153 gathers no loopback candidates
 * (even with media.peerconnection.ice.loopback; seen: only eth0's IPv4 and IPv6) and never
 * pairs its non-loopback candidates with a 127.0.0.1 server candidate, so against
 * PARLEY_MEDIA_LISTEN_IP=127.0.0.1 its ICE stays `new`. Chromium reaches this address too.
 */
export function mediaAddressForFirefox(): string {
	for (const addresses of Object.values(os.networkInterfaces())) {
		for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
	}
	throw new Error('no non-loopback IPv4 address: Firefox gathers no loopback ICE candidates, so its tests need one');
}
