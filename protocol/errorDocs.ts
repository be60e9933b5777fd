// Renders the error-code table of server/signaling/README.md from ERROR_CODES, so the
// documentation cannot drift from the codes the server sends (`npm run docs:errors`).
import { ERROR_CODES } from './errors.js';

export const ERROR_DOCS_START = '<!-- error-codes:start (generated from protocol/errors.ts by `npm run docs:errors`; a test fails when it is stale) -->';
export const ERROR_DOCS_END = '<!-- error-codes:end -->';

const cell = (text: string): string => text.replace(/\|/g, '\\|');

/** The generated part: the markers and the table between them. */
export function renderErrorTable(): string {
	const rows = Object.entries(ERROR_CODES).map(([code, e]) => `| \`${code}\` | ${e.httpStatus} | ${cell(e.message)} | ${cell(e.when)} |`);
	return [
		ERROR_DOCS_START,
		'',
		'Every code the server sends, on the WebSocket (a response\'s `error.code`, or a close',
		'reason `CODE: message`) and over HTTP (`{"error": {"code", "message"}}` with the status',
		'below). The message is the default; replies usually carry a more precise one.',
		'',
		'| Code | HTTP | Message | When it is sent |',
		'|---|---|---|---|',
		...rows,
		'',
		ERROR_DOCS_END,
	].join('\n');
}

/** `readme` with its generated part replaced by the current table. */
export function withErrorTable(readme: string): string {
	const start = readme.indexOf(ERROR_DOCS_START);
	const end = readme.indexOf(ERROR_DOCS_END);
	if (start < 0 || end < start) throw new Error('the error-code markers are missing from the README');
	return readme.slice(0, start) + renderErrorTable() + readme.slice(end + ERROR_DOCS_END.length);
}
