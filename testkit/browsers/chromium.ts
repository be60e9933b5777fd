// Headless Debian Chromium through playwright-core, as the tests and the bench start it: one
// process per fake microphone (the WAV file is a per-process flag), media permission granted,
// autoplay allowed.
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export interface ChromiumLaunchOptions {
	/** A WAV file Chromium loops as its microphone (else its fake beep). */
	fakeMicWav?: string;
	/** What to execute instead of CHROMIUM (a wrapper that runs it in a network namespace). */
	executablePath?: string;
	extraArgs?: string[];
}

export function launchChromium({ fakeMicWav, executablePath = CHROMIUM, extraArgs = [] }: ChromiumLaunchOptions = {}): Promise<Browser> {
	return chromium.launch({
		executablePath,
		args: [
			'--no-sandbox',
			'--disable-gpu',
			'--disable-quic',
			'--no-first-run',
			'--disable-background-networking',
			'--disable-component-update',
			'--disable-sync',
			'--use-fake-ui-for-media-stream',
			'--use-fake-device-for-media-stream',
			'--autoplay-policy=no-user-gesture-required',
			...(fakeMicWav ? [`--use-file-for-fake-audio-capture=${fakeMicWav}`] : []),
			...extraArgs,
		],
	});
}

/**
 * Loads the client library the server serves (client/dist/parley-client.js at /parley-client.js)
 * into `page` as `window.ParleyClient`. A module script: page.evaluate code is rewritten by
 * vitest, so a dynamic import() cannot live there.
 */
export async function loadClientLibrary(page: Page): Promise<void> {
	await page.addScriptTag({ type: 'module', content: "import { ParleyClient } from '/parley-client.js'; window.ParleyClient = ParleyClient;" });
	await page.waitForFunction(() => 'ParleyClient' in window, undefined, { timeout: 10_000 });
}
