// Runs ffmpeg / ffprobe as a child process: arguments as an array (no shell, so no quoting
// bugs or injection through file names), stdin closed, stderr kept bounded for error reasons,
// and killed with SIGKILL when the caller's signal aborts (job timeout or close).
import { spawn } from 'node:child_process';

/** The tail of stderr kept for error reasons: ffmpeg's last lines say what went wrong, and a
 * corrupt file can make a decoder log one line per packet. */
export const STDERR_TAIL_BYTES = 4096;

export interface ToolRunOptions {
	/** Aborting kills the process (SIGKILL) and rejects with `signal.reason`. */
	signal: AbortSignal;
	/** Receives stdout as it arrives (stdout is not kept). */
	onStdout?: (chunk: Buffer) => void;
	/** Keep stdout up to this many bytes; beyond it the process is killed and
	 * `stdoutOverflow` is set. Ignored with onStdout. Default 1 MiB. */
	maxStdoutBytes?: number;
}

export interface ToolRun {
	exitCode: number | null;
	/** Set when the process died by a signal. */
	killedBy: NodeJS.Signals | null;
	stdout: Buffer;
	stdoutOverflow: boolean;
	stderrTail: string;
}

/** Thrown when the executable cannot be started (missing, not executable). */
export class ToolStartError extends Error {
	override readonly name = 'ToolStartError';
}

export function runTool(command: string, args: readonly string[], options: ToolRunOptions): Promise<ToolRun> {
	const { signal, onStdout } = options;
	const maxStdoutBytes = options.maxStdoutBytes ?? 1 << 20;
	return new Promise<ToolRun>((resolve, reject) => {
		if (signal.aborted) {
			reject(signal.reason);
			return;
		}
		const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], shell: false, windowsHide: true });
		const stdoutChunks: Buffer[] = [];
		let stdoutBytes = 0;
		let stdoutOverflow = false;
		let stderr = Buffer.alloc(0);
		let callbackError: unknown;
		let settled = false;

		const kill = (): void => {
			// exitCode/signalCode stay null until the child is reaped: only then is it gone.
			if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
		};
		const onAbort = (): void => kill();
		signal.addEventListener('abort', onAbort, { once: true });

		child.stdout.on('data', (chunk: Buffer) => {
			if (onStdout !== undefined) {
				if (callbackError !== undefined) return;
				try {
					onStdout(chunk);
				} catch (error) {
					callbackError = error;
					kill();
				}
				return;
			}
			if (stdoutOverflow) return;
			stdoutBytes += chunk.length;
			if (stdoutBytes > maxStdoutBytes) {
				stdoutOverflow = true;
				kill();
				return;
			}
			stdoutChunks.push(chunk);
		});
		child.stderr.on('data', (chunk: Buffer) => {
			stderr = Buffer.concat([stderr, chunk]);
			if (stderr.length > STDERR_TAIL_BYTES) stderr = stderr.subarray(stderr.length - STDERR_TAIL_BYTES);
		});

		const finish = (settle: () => void): void => {
			if (settled) return;
			settled = true;
			signal.removeEventListener('abort', onAbort);
			settle();
		};
		child.once('error', (error) => {
			// No pid: it never started (ENOENT, EACCES); no 'close' is guaranteed to follow.
			if (child.pid === undefined) finish(() => reject(new ToolStartError(`${command}: ${error.message}`, { cause: error })));
		});
		child.once('close', (exitCode, killedBy) => {
			finish(() => {
				if (signal.aborted) reject(signal.reason);
				else if (callbackError !== undefined) reject(callbackError);
				else
					resolve({
						exitCode,
						killedBy,
						stdout: Buffer.concat(stdoutChunks),
						stdoutOverflow,
						stderrTail: stderr.toString('utf8'),
					});
			});
		});
	});
}

/** Lines ffmpeg ends a failure with that add nothing to the line before them. */
const GENERIC_LINES = /^(Conversion failed!|Error opening input files?:.*|Error while opening encoder.*)$/;

/** ffmpeg's last stderr line, fit for people: the server's file paths and the
 * `[demuxer @ 0x55d1...]` prefixes are removed. When the last line only repeats the file
 * name with an errno text ("file:/x/y: Invalid data found..."), the line before it (the
 * cause, e.g. "moov atom not found") is kept in front. */
export function lastErrorLine(stderrTail: string, paths: readonly string[]): string {
	const clean = (line: string): { text: string; pathOnly: boolean } => {
		let text = line.replace(/^\[[^\]]*@ 0x[0-9a-f]+\]\s*/i, '').trim();
		let pathOnly = false;
		for (const p of paths) {
			for (const form of [`file:${p}`, p]) {
				if (text.startsWith(`${form}: `)) {
					text = text.slice(form.length + 2);
					pathOnly = true;
				}
				text = text.split(form).join('the file');
			}
		}
		return { text, pathOnly };
	};
	const lines = stderrTail
		.split(/\r?\n/)
		.map((line) => line.trim())
		.filter((line) => line !== '' && !/^Last message repeated/.test(line))
		.map(clean)
		.filter((line) => line.text !== '' && !GENERIC_LINES.test(line.text));
	const last = lines.at(-1);
	if (last === undefined) return 'no details from ffmpeg';
	const before = lines.at(-2);
	if (last.pathOnly && before !== undefined && !before.pathOnly && before.text !== last.text) return `${before.text} (${last.text})`;
	return last.text;
}
