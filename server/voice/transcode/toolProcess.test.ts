import { describe, expect, it } from 'vitest';
import { lastErrorLine, runTool, STDERR_TAIL_BYTES, ToolStartError } from './toolProcess.js';

const never = new AbortController().signal;

describe('runTool', () => {
	it('passes arguments as they are, with no shell in between', async () => {
		const tricky = '$(echo injected); `id` | cat > /tmp/x';
		const result = await runTool(process.execPath, ['-e', 'process.stdout.write(process.argv[1])', tricky], { signal: never });
		expect(result.exitCode).toBe(0);
		expect(result.stdout.toString()).toBe(tricky);
	});

	it('keeps only the tail of stderr', async () => {
		const script = 'process.stderr.write("x".repeat(100000) + "\\nthe real reason\\n")';
		const result = await runTool(process.execPath, ['-e', script], { signal: never });
		expect(result.stderrTail.length).toBe(STDERR_TAIL_BYTES);
		expect(result.stderrTail.endsWith('the real reason\n')).toBe(true);
	});

	it('kills the process with SIGKILL when the signal aborts, and rejects with its reason', async () => {
		const controller = new AbortController();
		const started = Date.now();
		const running = runTool('sleep', ['30'], { signal: controller.signal });
		setTimeout(() => controller.abort(new Error('deadline')), 50);
		await expect(running).rejects.toThrow('deadline');
		expect(Date.now() - started).toBeLessThan(2000);
	});

	it('kills a process whose stdout exceeds the bound', async () => {
		const result = await runTool('yes', [], { signal: never, maxStdoutBytes: 100_000 });
		expect(result.stdoutOverflow).toBe(true);
		expect(result.killedBy).toBe('SIGKILL');
		expect(result.stdout.length).toBeLessThanOrEqual(100_000);
	});

	it('reports an executable that does not exist as ToolStartError', async () => {
		await expect(runTool('/nonexistent/ffmpeg', [], { signal: never })).rejects.toThrow(ToolStartError);
	});
});

describe('lastErrorLine', () => {
	it('keeps the cause before a line that only names the file, without paths or addresses', () => {
		const stderr = '[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d1c0ffee00] moov atom not found\nfile:/srv/uploads/a1b2: Invalid data found when processing input\n';
		expect(lastErrorLine(stderr, ['/srv/uploads/a1b2'])).toBe('moov atom not found (Invalid data found when processing input)');
	});

	it('skips generic closing lines and repeats', () => {
		const stderr = 'Error while decoding stream #0:0: Invalid data found when processing input\n    Last message repeated 3 times\nConversion failed!\n';
		expect(lastErrorLine(stderr, [])).toBe('Error while decoding stream #0:0: Invalid data found when processing input');
	});

	it('never shows a server path', () => {
		expect(lastErrorLine('Could not open file /srv/out/x.part\n', ['/srv/out/x.part'])).toBe('Could not open file the file');
		expect(lastErrorLine('', [])).toBe('no details from ffmpeg');
	});
});
