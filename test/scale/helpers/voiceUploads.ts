// Voice-message uploads handed straight to a node, as its tus server does once the last byte
// is in: for tests that need many finished uploads without the tus round trips.
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ParleyServer } from '../../../server/ParleyServer.js';
import { OggOpusWriter } from '../../../server/voice/ogg/OggOpusWriter.js';
import { encodeTone } from '../../helpers/audio.js';

export function sha256(data: Buffer | Uint8Array): string {
	return createHash('sha256').update(data).digest('hex');
}

/** A valid 1 s Ogg Opus file (the conversion validates it and remuxes it). */
export function oggFile(dir: string): { file: string; bytes: Buffer } {
	const file = path.join(dir, `${randomUUID()}.opus`);
	const writer = new OggOpusWriter(file);
	encodeTone(440, 50).forEach((frame, i) => writer.writePacket(frame, i * 960));
	writer.finalize();
	return { file, bytes: readFileSync(file) };
}

/** Hands a complete upload to the node as its tus server does once the last byte is in. */
export async function finishUpload(server: ParleyServer, dir: string, ownerId = 'ada'): Promise<{ id: string; bytes: Buffer }> {
	const { file, bytes } = oggFile(dir);
	const id = randomUUID();
	await server.voice.acceptUpload({ uploadId: id, ownerId, destination: { kind: 'channel', channel: 'room' }, fileName: 'hello.opus', fileType: 'audio/ogg', path: file, sizeBytes: bytes.length, sha256: sha256(bytes) });
	return { id, bytes };
}
