/**
 * Several replicas acting as one, on Redis: `createRedisCoordinator` gives the {@link Coordinator} that
 * `MCPManager`, `createUpstreamTokenProvider` and `createOboTokenResolver` take as their `coordinator` option.
 * Import from `mcp-switchboard/redis`; it needs the optional package `redis` (node-redis 5), which no other
 * entry point loads.
 * @module mcp-switchboard/redis
 */
export { createRedisCoordinator } from './coordinator.js';
export type { RedisCoordinatorOptions } from './coordinator.js';
export type { Coordinator, CoordinatorLock, InvalidationEvent, SharedTokenCache } from '../coordination.js';
