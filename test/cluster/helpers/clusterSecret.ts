// The cluster secret every test node shares (test/helpers/config.ts sets it for config-built nodes).
import { ClusterSecret } from '../../../server/cluster/ClusterSecret.js';

export const TEST_CLUSTER_SECRET = 'test-cluster-secret-0123456789abcdef0123456789';
export const testClusterSecret = new ClusterSecret(TEST_CLUSTER_SECRET);
