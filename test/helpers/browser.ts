// Headless Debian Chromium for the browser tests (testkit/browsers/chromium.ts), one process per
// simulated speaker, and the in-page measurements they share (testkit/browsers/pageAudio.ts).
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../../testkit/browsers/chromium.js';

export { CHROMIUM } from '../../testkit/browsers/chromium.js';
export { firstNewPacketAt, hearFirstRemoteStream, measureStreamInPage, trackPeerConnections, type Spectrum } from '../../testkit/browsers/pageAudio.js';

export function launchBrowser(fakeMicWav?: string): Promise<Browser> {
	return launchChromium(fakeMicWav ? { fakeMicWav } : {});
}

/** Opens a page that fails the test on uncaught page errors (collected in `errors`). */
export async function openPage(browser: Browser, url: string): Promise<{ page: Page; errors: string[] }> {
	const page = await browser.newPage();
	const errors: string[] = [];
	page.on('pageerror', (err) => errors.push(err.message));
	await page.goto(url);
	return { page, errors };
}

