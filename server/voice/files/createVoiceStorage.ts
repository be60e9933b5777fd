// The VoiceStorage storage.backend names: the local directory, or an S3-compatible bucket.
import path from 'node:path';
import type { ParleyConfig } from '../../../config/schema.js';
import type { Logger } from '../../telemetry/logger.js';
import { createS3Location, type S3Location } from './s3Client.js';
import { S3VoiceStorage } from './S3VoiceStorage.js';
import { LocalVoiceStorage } from './VoiceStorage.js';

/** storage.backend disk: files under storage.dir; s3: in storage.s3.bucket, with storage.dir
 * as this node's work folder. `location` reuses an S3 client made elsewhere (one per node). */
export function createVoiceStorage(storage: ParleyConfig['storage'], log: Logger, location?: S3Location): LocalVoiceStorage | S3VoiceStorage {
	if (storage.backend === 'disk') return new LocalVoiceStorage(path.resolve(storage.dir));
	return new S3VoiceStorage({
		location: location ?? createS3Location(storage.s3),
		dir: storage.dir,
		presignedDownloadTtlS: storage.s3.presignedDownloadTtlS,
		log,
	});
}
