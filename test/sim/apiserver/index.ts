export {
  Api,
  type ApiOptions,
  type DeleteOptions,
  type ListOptions,
  type WatchOptions,
  type WriteOptions,
} from './api.js';
export { SimClock } from './clock.js';
export { ApiError, Errors, type Status } from './errors.js';
export type { FaultAction, FaultRule } from './faults.js';
export { BUILTIN_TYPES, apiVersionOf, type ResourceType } from './resources.js';
export {
  SimApiServer,
  SERVER_VERSION,
  type LogOptions,
  type LogSource,
  type RecordedRequest,
} from './server.js';
export type { KObject, ObjectMeta, OwnerReference } from './types.js';
