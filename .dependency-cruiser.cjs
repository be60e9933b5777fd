// Which part of Parley may import which: `npm run check:deps` (part of `npm test`) fails on
// any import against this order and on any cycle. The README's Layout section shows the same
// layers. A layer may import the layers below it, never one above or beside it, so no two
// folders can import each other.
//
// Top to bottom (one line per layer; parts on one line are peers and must not import each other):
const LAYERS = [
	['server/main\\.ts$'],
	['server/ParleyServer\\.ts$'],
	['server/Teardown\\.ts$'],
	['server/metrics/'],
	// The two endpoints: the browsers' signaling and the backends' gRPC API.
	['server/signaling/', 'server/api/'],
	// Room events: told by channels, voice and the cluster; read by the API.
	['server/events/'],
	['server/cluster/', 'server/voice/'],
	['server/channels/', 'server/auth/', 'server/ratelimit/'],
	['server/media/', 'server/redis/', 'server/http/'],
	['server/telemetry/', 'server/config/', 'server/async/'],
	['config/'],
	['protocol/'],
];

/** Tests may use anything below them plus test helpers; the order binds production code. */
const TESTS = '\\.test\\.ts$';
const anyOf = (parts) => `^(${parts.join('|')})`;

const layerRules = LAYERS.flatMap((parts, i) => {
	const above = LAYERS.slice(0, i).flat();
	const rules = [];
	if (above.length > 0) {
		rules.push({
			name: `layer-${i}-not-up`,
			comment: `${parts.join(', ')} must not import a layer above it (${above.join(', ')})`,
			severity: 'error',
			from: { path: anyOf(parts), pathNot: TESTS },
			to: { path: anyOf(above) },
		});
	}
	// Peers of one layer stay independent of each other.
	for (const part of parts) {
		const peers = parts.filter((p) => p !== part);
		if (peers.length === 0) continue;
		rules.push({
			name: `layer-${i}-peers`,
			comment: `${part} must not import its peers (${peers.join(', ')})`,
			severity: 'error',
			from: { path: `^${part}`, pathNot: TESTS },
			to: { path: anyOf(peers) },
		});
	}
	return rules;
});

module.exports = {
	forbidden: [
		{
			name: 'no-cycles',
			comment: 'A cycle means two modules (or folders) cannot be understood, tested or moved apart.',
			severity: 'error',
			from: {},
			to: { circular: true },
		},
		...layerRules,
		{
			name: 'protocol-is-a-leaf',
			comment: 'protocol/ is the shared vocabulary: it imports nothing of server/, client/, bench/, testkit/ or test/.',
			severity: 'error',
			from: { path: '^protocol/' },
			to: { path: '^(server|client|bench|testkit|test|config|sdk)/' },
		},
		{
			name: 'client-imports-only-protocol',
			comment: 'The browser library speaks to the server only through the shared protocol.',
			severity: 'error',
			from: { path: '^client/', pathNot: `${TESTS}|^client/build\\.ts$` },
			to: { path: '^(server|bench|testkit|test|config)/' },
		},
		{
			name: 'sdk-imports-only-protocol',
			comment: 'The Node backend SDK ships without the server: it shares only the protocol (tokens, protos, error codes).',
			severity: 'error',
			from: { path: '^sdk/', pathNot: TESTS },
			to: { path: '^(server|client|bench|testkit|test|config)/' },
		},
		{
			name: 'server-not-into-tools',
			comment: 'Production code does not import the bench, the test kit or tests.',
			severity: 'error',
			from: { path: '^(server|config)/', pathNot: TESTS },
			to: { path: '^(bench|testkit|test|client|sdk)/' },
		},
		{
			name: 'bench-not-into-tests',
			comment: 'The bench shares helpers with tests through testkit/, never by importing test/.',
			severity: 'error',
			from: { path: '^bench/', pathNot: TESTS },
			to: { path: '^test/' },
		},
		{
			name: 'testkit-not-into-tests-or-bench',
			comment: 'testkit/ sits under both test/ and bench/.',
			severity: 'error',
			from: { path: '^testkit/', pathNot: TESTS },
			to: { path: '^(test|bench)/' },
		},
		{
			name: 'no-unresolvable',
			comment: 'An import that does not resolve is a typo or a missing dependency.',
			severity: 'error',
			from: {},
			to: { couldNotResolve: true },
		},
	],
	options: {
		doNotFollow: { path: 'node_modules' },
		exclude: { path: '^(node_modules|client/dist|data|coverage)/' },
		tsPreCompilationDeps: true,
		tsConfig: { fileName: 'tsconfig.json' },
		enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'], extensions: ['.ts', '.js', '.mjs', '.cjs', '.json', '.d.ts'] },
		// Type-only imports count: a type import against the order is still a tie between layers.
		moduleSystems: ['es6', 'cjs'],
	},
};
