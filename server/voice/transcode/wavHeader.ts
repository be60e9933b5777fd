// The length a WAV header declares. ffmpeg does not trust it (it clips to the file size and
// calls the result an estimate), but we want to know what it claims: a header declaring
// hours is refused as too long, and one declaring more than the file holds means the file
// was cut off.

/** Data chunk sizes that mean "unknown" (a recorder that never went back to fill it in). */
const UNKNOWN_SIZES = new Set([0, 0xffffffff]);

/** Milliseconds of audio the RIFF/RF64 header declares (data bytes / byte rate), or
 * undefined when the head does not say (no fmt or data chunk in it, unknown size). */
export function wavDeclaredDurationMs(head: Buffer): number | undefined {
	if (head.length < 12 || head.toString('latin1', 8, 12) !== 'WAVE') return undefined;
	const isRf64 = head.toString('latin1', 0, 4) === 'RF64';
	let byteRate: number | undefined;
	let dataBytes: number | undefined;
	let rf64DataBytes: number | undefined;
	for (let at = 12; at + 8 <= head.length; ) {
		const id = head.toString('latin1', at, at + 4);
		const size = head.readUInt32LE(at + 4);
		const body = at + 8;
		if (id === 'fmt ' && body + 12 <= head.length) byteRate = head.readUInt32LE(body + 8);
		// RF64 (EBU Tech 3306) puts 64-bit sizes in a ds64 chunk: RIFF size, then data size.
		if (id === 'ds64' && body + 16 <= head.length) rf64DataBytes = Number(head.readBigUInt64LE(body + 8));
		if (id === 'data') {
			dataBytes = isRf64 && size === 0xffffffff ? rf64DataBytes : size;
			break;
		}
		at = body + size + (size % 2); // chunks are padded to an even length
	}
	if (byteRate === undefined || byteRate === 0 || dataBytes === undefined) return undefined;
	if (!isRf64 && UNKNOWN_SIZES.has(dataBytes)) return undefined;
	return (dataBytes / byteRate) * 1000;
}
