export { CHUNK_SIZE, dumpPath, narOfBytes } from './writer.js';
export { DEFAULT_NAR_LIMITS, NarParser, parseNarStream } from './parser.js';
export type { NarEvent, NarLimits, NarPath } from './parser.js';
export { restoreNar } from './restore.js';
export type { RestoreOptions, RestoreResult } from './restore.js';
export { narListing } from './listing.js';
export type { ListingOptions } from './listing.js';
