// Headless Debian Chromium through playwright-core, one process per simulated speaker
// (the fake-microphone WAV is a per-process flag).
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launchBrowser(fakeMicWav?: string): Promise<Browser> {
	return chromium.launch({
		executablePath: CHROMIUM,
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
		],
	});
}

/** Opens a page that fails the test on uncaught page errors (collected in `errors`). */
export async function openPage(browser: Browser, url: string): Promise<{ page: Page; errors: string[] }> {
	const page = await browser.newPage();
	const errors: string[] = [];
	page.on('pageerror', (err) => errors.push(err.message));
	await page.goto(url);
	return { page, errors };
}
