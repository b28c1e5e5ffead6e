export * from './worker.js';
export * from './serve.js';
export * from './versions.js';
export {
  type Codec,
  type Ctx,
  type Infer,
  type Shape,
  bool,
  byVersion,
  custom,
  flagged,
  int,
  list,
  longStr,
  map,
  none,
  optional,
  path,
  paths,
  shortStr,
  since,
  str,
  strings,
  struct,
  u64,
} from './codec.js';
export * from './types.js';
export * from './stderr.js';
export * from './handshake.js';
export * from './worker-ops.js';
export * from './serve-ops.js';
export * from './nar-stream.js';
export * from './export.js';
