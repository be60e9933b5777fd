// ffmpeg / ffprobe stand-ins that hang (like a decoder stuck on a hostile file) when one of
// their arguments contains `trigger`, and run the real tool otherwise. Each hanging process
// appends its pid to `pidFile`, so tests can check it was killed. Put `dir` first in PATH.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

export interface HangingTools {
	dir: string;
	pidFile: string;
}

export function hangingTools(trigger: string): HangingTools {
	const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-fake-tools-'));
	const pidFile = path.join(dir, 'hung.pids');
	for (const tool of ['ffmpeg', 'ffprobe']) {
		const real = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
		const script = [
			'#!/bin/sh',
			'for a in "$@"; do',
			`  case "$a" in *'${trigger}'*) echo $$ >> '${pidFile}'; exec sleep 3600;; esac`,
			'done',
			`exec '${real}' "$@"`,
			'',
		].join('\n');
		writeFileSync(path.join(dir, tool), script);
		chmodSync(path.join(dir, tool), 0o755);
	}
	writeFileSync(pidFile, '');
	return { dir, pidFile };
}
