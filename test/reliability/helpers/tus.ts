// Raw tus 1.0.0 requests (fetch), for tests that need control over every header and chunk.
export interface TusTarget {
	base: string;
	token: string;
}

export function metadata(fields: Record<string, string>): string {
	return Object.entries(fields)
		.map(([k, v]) => `${k} ${Buffer.from(v).toString('base64')}`)
		.join(',');
}

/** POST: creates an upload; resolves with the response (Location holds the id). */
export function createUpload(t: TusTarget, lengthBytes: number | string, fields: Record<string, string> = { destination: 'channel:room', filename: 'a.wav', filetype: 'audio/wav' }, headers: Record<string, string> = {}): Promise<Response> {
	return fetch(`${t.base}/voice/uploads`, {
		method: 'POST',
		headers: { authorization: `Bearer ${t.token}`, 'tus-resumable': '1.0.0', 'upload-length': String(lengthBytes), 'upload-metadata': metadata(fields), ...headers },
	});
}

export async function createUploadId(t: TusTarget, lengthBytes: number, fields?: Record<string, string>): Promise<string> {
	const res = await createUpload(t, lengthBytes, fields);
	if (res.status !== 201) throw new Error(`POST /voice/uploads: ${res.status} ${await res.text()}`);
	return res.headers.get('location')!.split('/').pop()!;
}

export function patchUpload(t: TusTarget, id: string, offset: number | string, chunk: Uint8Array, headers: Record<string, string> = {}): Promise<Response> {
	return fetch(`${t.base}/voice/uploads/${id}`, {
		method: 'PATCH',
		headers: { authorization: `Bearer ${t.token}`, 'tus-resumable': '1.0.0', 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream', ...headers },
		body: new Uint8Array(chunk),
	});
}

export function headUpload(t: TusTarget, id: string): Promise<Response> {
	return fetch(`${t.base}/voice/uploads/${id}`, { method: 'HEAD', headers: { authorization: `Bearer ${t.token}`, 'tus-resumable': '1.0.0' } });
}

/** Uploads `file` in `chunkBytes` PATCHes; resolves with the upload (= voice message) id. */
export async function uploadFile(t: TusTarget, file: Uint8Array, chunkBytes = 64 * 1024, fields?: Record<string, string>): Promise<string> {
	const id = await createUploadId(t, file.length, fields);
	for (let off = 0; off < file.length; off += chunkBytes) {
		const res = await patchUpload(t, id, off, file.subarray(off, off + chunkBytes));
		if (res.status !== 204) throw new Error(`PATCH at ${off}: ${res.status} ${await res.text()}`);
	}
	return id;
}
