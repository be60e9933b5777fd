// Mints an access token for development and tests:
//   npm run -s token -- --user alice --name Alice --channel lobby --channel 'team-*' --publish --record --ttl 3600
// Signs with auth.jwtSecret from Parley's configuration (PARLEY_AUTH_JWT_SECRET or the
// PARLEY_CONFIG file), so the server must use the same secret.
import { parseArgs } from 'node:util';
import type { ParleyConfig } from '../config/schema.js';
import { ConfigError, loadConfig } from '../server/config/loadConfig.js';
import { mintAccessToken } from '../protocol/tokens.js';

const USAGE = `usage: npm run -s token -- --user ID [--name NAME] --channel NAME|PREFIX* [--channel ...]
                  [--publish] [--no-subscribe] [--record] [--ttl SECONDS]`;

function fail(message: string): never {
	process.stderr.write(`${message}\n${USAGE}\n`);
	process.exit(2);
}

let args;
try {
	args = parseArgs({
		options: {
			user: { type: 'string' },
			name: { type: 'string' },
			channel: { type: 'string', multiple: true },
			publish: { type: 'boolean', default: false },
			'no-subscribe': { type: 'boolean', default: false },
			record: { type: 'boolean', default: false },
			ttl: { type: 'string', default: '3600' },
		},
	}).values;
} catch (err) {
	fail((err as Error).message);
}
if (!args.user) fail('--user is required');
if (!args.channel?.length) fail('at least one --channel is required');
const ttlS = Number(args.ttl);
if (!Number.isInteger(ttlS) || ttlS <= 0) fail('--ttl must be a positive number of seconds');

let auth: ParleyConfig['auth'];
try {
	auth = loadConfig().auth;
} catch (err) {
	if (err instanceof ConfigError) fail(err.message);
	throw err;
}
const secret = auth.jwtSecret;
// The server refuses longer-lived tokens; better to say so now than at connect time.
if (ttlS > auth.maxTokenLifetimeS) fail(`--ttl ${ttlS} exceeds auth.maxTokenLifetimeS (${auth.maxTokenLifetimeS} s)`);
if (!secret) fail('auth.jwtSecret is not set: export PARLEY_AUTH_JWT_SECRET (32+ characters) for both this script and the server');

try {
	const token = await mintAccessToken(
		{
			userId: args.user,
			displayName: args.name,
			channels: args.channel,
			grants: { canPublish: args.publish, canSubscribe: !args['no-subscribe'], canRecord: args.record },
			ttlS,
			audience: auth.audience,
			issuer: auth.issuer,
		},
		secret,
	);
	process.stdout.write(`${token}\n`);
} catch (err) {
	fail(`cannot mint token: ${(err as Error).message}`);
}
