export { DEFAULT_WIRE_LIMITS, wireLimits, type WireLimits } from './limits.js';
export { WireReader, type ByteSource } from './reader.js';
export {
  WireBuilder,
  encodeBool,
  encodeBytes,
  encodeString,
  encodeStringList,
  encodeStringMap,
  encodeU64,
} from './encode.js';
export { WireWriter } from './writer.js';
export {
  DEFAULT_FRAME_SIZE,
  FramedSink,
  FramedSource,
  assertFramedDone,
  drainFramed,
  encodeFramed,
  readFramed,
} from './framed.js';
