// The service fixtures start real servers that answer real clients, stop, and start again
// on the same port with the same data; each is started once for the file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { startMariaDb, type TestMariaDb } from './mariadb.js';
import { startPostgres, type TestPostgres } from './postgres.js';

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
