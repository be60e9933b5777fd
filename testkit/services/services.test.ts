// The service fixtures start real servers that answer real clients, stop, and start again
// on the same port with the same data; each is started once for the file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { GetObjectCommand, HeadBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startMariaDb, type TestMariaDb } from './mariadb.js';
import { startPostgres, type TestPostgres } from './postgres.js';
import { startSwift, type TestSwift } from './swift.js';

describe('startPostgres', () => {
	let db: TestPostgres;
	beforeAll(async () => {
		db = await startPostgres();
		console.log(`postgres started in ${db.startMs} ms`);
	});
	afterAll(async () => {
		await db?.close();
	});

	it('answers SELECT 1 in database parley, and keeps data across stop and start on the same URL', async () => {
		const client = new pg.Client(db.url);
		await client.connect();
		expect((await client.query('SELECT 1 AS one, current_database() AS name')).rows).toEqual([{ one: 1, name: 'parley' }]);
		await client.query('CREATE TABLE kept (v text)');
		await client.query("INSERT INTO kept VALUES ('before')");
		await client.end();

		const began = Date.now();
		await db.restart();
		console.log(`postgres restarted in ${Date.now() - began} ms`);
		const again = new pg.Client(db.url);
		await again.connect();
		expect((await again.query('SELECT v FROM kept')).rows).toEqual([{ v: 'before' }]);
		await again.end();
	});

	it('refuses connections while stopped, and a crash (kill) keeps committed rows', async () => {
		await db.stop();
		const down = new pg.Client({ connectionString: db.url, connectionTimeoutMillis: 2000 });
		down.on('error', () => {});
		await expect(down.connect()).rejects.toThrow();
		await db.start();
		const client = new pg.Client(db.url);
		await client.connect();
		await client.query("INSERT INTO kept VALUES ('committed')");
		await client.end();
		await db.kill();
		await db.start();
		const after = new pg.Client(db.url);
		await after.connect();
		expect((await after.query('SELECT v FROM kept ORDER BY v')).rows.map((r) => r.v)).toEqual(['before', 'committed']);
		await after.end();
	});
});

describe('startMariaDb', () => {
	let db: TestMariaDb;
	beforeAll(async () => {
		db = await startMariaDb();
		console.log(`mariadb started in ${db.startMs} ms`);
	});
	afterAll(async () => {
		await db?.close();
	});

	it('answers SELECT 1 in database parley, and keeps data across stop and start on the same URL', async () => {
		const conn = await mysql.createConnection(db.url);
		const [rows] = await conn.query('SELECT 1 AS one, DATABASE() AS name');
		expect(rows).toEqual([{ one: 1, name: 'parley' }]);
		await conn.query('CREATE TABLE kept (v varchar(20)) ENGINE=InnoDB');
		await conn.query("INSERT INTO kept VALUES ('before')");
		await conn.end();

		const began = Date.now();
		await db.restart();
		console.log(`mariadb restarted in ${Date.now() - began} ms`);
		const again = await mysql.createConnection(db.url);
		expect((await again.query('SELECT v FROM kept'))[0]).toEqual([{ v: 'before' }]);
		await again.end();
	});

	it('refuses connections while stopped, and a crash (kill) keeps committed rows', async () => {
		await db.stop();
		await expect(mysql.createConnection({ uri: db.url, connectTimeout: 2000 })).rejects.toThrow();
		await db.start();
		const conn = await mysql.createConnection(db.url);
		await conn.query("INSERT INTO kept VALUES ('committed')");
		await conn.end();
		await db.kill();
		await db.start();
		const after = await mysql.createConnection(db.url);
		expect((await after.query('SELECT v FROM kept ORDER BY v'))[0]).toEqual([{ v: 'before' }, { v: 'committed' }]);
		await after.end();
	});
});

describe('startSwift', () => {
	let swift: TestSwift;
	let s3: S3Client;
	beforeAll(async () => {
		swift = await startSwift();
		console.log(`swift started in ${swift.startMs} ms`);
		s3 = swift.client();
	});
	afterAll(async () => {
		s3?.destroy();
		await swift?.close();
	});

	it('creates a bucket and stores and returns an object through s3api', async () => {
		await swift.createBucket('fixture-bucket');
		await s3.send(new HeadBucketCommand({ Bucket: 'fixture-bucket' }));
		await s3.send(new PutObjectCommand({ Bucket: 'fixture-bucket', Key: 'owner/202612/m1.ogg', Body: 'OggS voice', ContentType: 'audio/ogg' }));
		const got = await s3.send(new GetObjectCommand({ Bucket: 'fixture-bucket', Key: 'owner/202612/m1.ogg', Range: 'bytes=5-' }));
		expect(await got.Body?.transformToString()).toBe('voice');
		expect(got.ContentRange).toBe('bytes 5-9/10');
	});

	it('checks SigV4: a request signed with a wrong secret is refused with SignatureDoesNotMatch', async () => {
		const forged = new S3Client({
			endpoint: swift.endpoint,
			region: swift.region,
			forcePathStyle: true,
			credentials: { accessKeyId: swift.accessKeyId, secretAccessKey: 'not-the-secret' },
			maxAttempts: 1,
		});
		try {
			await expect(forged.send(new GetObjectCommand({ Bucket: 'fixture-bucket', Key: 'owner/202612/m1.ogg' }))).rejects.toMatchObject({
				name: 'SignatureDoesNotMatch',
			});
		} finally {
			forged.destroy();
		}
	});

	it('is unreachable while stopped and serves the same objects after start on the same endpoint', async () => {
		await swift.stop();
		const down = new S3Client({
			endpoint: swift.endpoint,
			region: swift.region,
			forcePathStyle: true,
			credentials: { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey },
			maxAttempts: 1,
		});
		try {
			await expect(down.send(new HeadBucketCommand({ Bucket: 'fixture-bucket' }))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
		} finally {
			down.destroy();
		}
		const began = Date.now();
		await swift.start();
		console.log(`swift restarted in ${Date.now() - began} ms`);
		const got = await s3.send(new GetObjectCommand({ Bucket: 'fixture-bucket', Key: 'owner/202612/m1.ogg' }));
		expect(await got.Body?.transformToString()).toBe('OggS voice');
	});
});
