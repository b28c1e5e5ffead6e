/**
 * The environment variables that point a process at the store's Redis. Their own module,
 * so that naming them does not load the Redis client (the embedded default never does).
 */
export const REDIS_URL_ENV = 'NIXYARD_REDIS_URL';
/** Seconds a lease or session registration lasts unless renewed (`--redis-ttl`). */
export const REDIS_TTL_ENV = 'NIXYARD_REDIS_TTL';
